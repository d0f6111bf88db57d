//! Elementwise functions: a branch-free `exp`, `erf`, and exact GELU forward and backward.

use rayon::prelude::*;

use crate::wide_fn;

/// `erf` to about 1.2e-7 absolute (Abramowitz & Stegun 7.1.26 is too coarse for a
/// gradient check; this is the Numerical Recipes `erfc` Chebyshev fit, in f32).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp(poly);
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// Exact GELU `x/2 · (1 + erf(x/√2))` of `pre` into `out` (burn's `gelu`).
pub fn gelu(pre: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(4096)
        .zip(pre.par_chunks(4096))
        .for_each(|(o, p)| gelu_chunk(p, o));
}

wide_fn! {
    /// [`gelu`] on the calling thread (the decoder's one token).
    pub fn gelu_chunk(pre: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(pre) {
            *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// `d = d · gelu'(pre)` in place.
pub fn gelu_backward(pre: &[f32], d: &mut [f32]) {
    d.par_chunks_mut(4096)
        .zip(pre.par_chunks(4096))
        .for_each(|(d, p)| gelu_backward_chunk(p, d));
}

wide_fn! {
    fn gelu_backward_chunk(pre: &[f32], d: &mut [f32]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for (d, &x) in d.iter_mut().zip(pre) {
            let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
            *d *= cdf + x * pdf;
        }
    }
}

/// `e^x` for `x` in about [-87, 88] (clamped outside), within 2 ulp: Cephes' `expf`, written
/// without branches so loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_erf_are_accurate() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64) - want).abs() / want);
            x += 0.0137;
        }
        assert!(worst < 4e-7, "exp relative error {worst}");
        // Far below the range it is clamped to a tiny positive number, never NaN or negative.
        assert!(exp(-1e9) >= 0.0 && exp(-1e9) < 1e-37);
        // erf against values from tables (Abramowitz & Stegun 7.1): erf(0.5), erf(1), erf(2).
        for (x, want) in [
            (0.5f32, 0.520_499_9f32),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (0.0, 0.0),
        ] {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 3e-7);
        }
    }

    #[test]
    fn gelu_by_hand() {
        // gelu(1) = 0.5 (1 + erf(0.7071)) = 0.5 · 1.6826895 = 0.8413447; gelu(-1) = -0.1586553.
        let mut out = [0.0; 3];
        gelu_chunk(&[1.0, -1.0, 0.0], &mut out);
        assert!((out[0] - 0.841_344_7).abs() < 1e-6, "{out:?}");
        assert!((out[1] + 0.158_655_3).abs() < 1e-6, "{out:?}");
        assert_eq!(out[2], 0.0);
    }
}
