//! Softmax over one row of scores (attention's probabilities).

use super::activation::exp;
use super::reduce::{max8, sum8};
use crate::wide_fn;

/// `x ← softmax(x)`: shifted by the row's maximum so `exp` never overflows. Inlined into the
/// caller's (possibly AVX2) code; [`softmax`] is the stand-alone form.
#[inline(always)]
pub fn softmax_in_place(x: &mut [f32]) {
    let max = max8(x);
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum8(x);
    x.iter_mut().for_each(|v| *v *= inv);
}

wide_fn! {
    /// [`softmax_in_place`] compiled for AVX2/FMA where the CPU has it.
    pub fn softmax(x: &mut [f32]) {
        softmax_in_place(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_by_hand() {
        // [0, ln 3] → [1/4, 3/4]; a shift by a constant changes nothing.
        let mut v = [0.0, 3f32.ln()];
        softmax(&mut v);
        assert!(
            (v[0] - 0.25).abs() < 1e-6 && (v[1] - 0.75).abs() < 1e-6,
            "{v:?}"
        );
        let mut v = [100.0, 100.0 + 3f32.ln()];
        softmax_in_place(&mut v);
        assert!(
            (v[0] - 0.25).abs() < 1e-6 && (v[1] - 0.75).abs() < 1e-6,
            "{v:?}"
        );
        // Nine entries (one full lane of eight and a remainder): [ln 1, …, ln 9] / 45.
        let mut v: Vec<f32> = (1..=9).map(|k| (k as f32).ln()).collect();
        softmax(&mut v);
        for (k, p) in v.iter().enumerate() {
            assert!((p - (k + 1) as f32 / 45.0).abs() < 1e-6, "{k}: {p}");
        }
    }
}
