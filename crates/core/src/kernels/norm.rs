//! Layer norm over rows, forward and backward (burn's `LayerNorm`: biased variance).

use rayon::prelude::*;

use super::ROWS_PER_TASK;
use super::reduce::{dot8, sum8};
use crate::wide_fn;

/// `burn::nn::LayerNorm`'s default epsilon.
pub const LN_EPS: f32 = 1e-5;

/// Layer norm of every `d`-row of `x` into `y`; keeps `xhat` (normalised input) and the
/// reciprocal standard deviation of each row for the backward pass.
pub fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    let d = gamma.len();
    y.par_chunks_mut(d * ROWS_PER_TASK)
        .zip(xhat.par_chunks_mut(d * ROWS_PER_TASK))
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .zip(x.par_chunks(d * ROWS_PER_TASK))
        .for_each(|(((y, xh), rs), x)| layer_norm_rows(x, gamma, beta, y, xh, rs));
}

wide_fn! {
    /// [`layer_norm`] of whole `d`-rows on the calling thread (the decoder's one token).
    pub fn layer_norm_rows(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
        xh: &mut [f32],
        rs: &mut [f32],
    ) {
        let d = gamma.len();
        for (((y, xh), r), x) in y
            .chunks_exact_mut(d)
            .zip(xh.chunks_exact_mut(d))
            .zip(rs.iter_mut())
            .zip(x.chunks_exact(d))
        {
            let mean = sum8(x) / d as f32;
            for (h, v) in xh.iter_mut().zip(x) {
                *h = v - mean;
            }
            let var = dot8(xh, xh) / d as f32;
            let inv = 1.0 / (var + LN_EPS).sqrt();
            *r = inv;
            for ((y, h), (g, b)) in y.iter_mut().zip(xh.iter_mut()).zip(gamma.iter().zip(beta)) {
                *h *= inv;
                *y = *h * g + b;
            }
        }
    }
}

/// Backward of [`layer_norm`]: adds `dx` into `dx_acc`, `dgamma`/`dbeta` into their slots.
pub fn layer_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dx_acc: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let d = gamma.len();
    // Per-chunk sums added in chunk order: independent of the thread count and scheduling.
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx_acc
        .par_chunks_mut(d * ROWS_PER_TASK)
        .zip(dy.par_chunks(d * ROWS_PER_TASK))
        .zip(xhat.par_chunks(d * ROWS_PER_TASK))
        .zip(rstd.par_chunks(ROWS_PER_TASK))
        .map(|(((dx, dy), xh), rs)| {
            let mut dg = vec![0.0f32; d];
            let mut db = vec![0.0f32; d];
            let mut g = vec![0.0f32; d];
            layer_norm_backward_rows(dx, dy, xh, rs, gamma, &mut dg, &mut db, &mut g);
            (dg, db)
        })
        .collect();
    let (mut dg, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
    for (c, e) in &partial {
        dg.iter_mut().zip(c).for_each(|(a, c)| *a += c);
        db.iter_mut().zip(e).for_each(|(b, e)| *b += e);
    }
    dgamma.iter_mut().zip(&dg).for_each(|(o, v)| *o += v);
    dbeta.iter_mut().zip(&db).for_each(|(o, v)| *o += v);
}

wide_fn! {
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_backward_rows(
        dx: &mut [f32],
        dy: &[f32],
        xh: &[f32],
        rs: &[f32],
        gamma: &[f32],
        dg: &mut [f32],
        db: &mut [f32],
        g: &mut [f32],
    ) {
        let d = gamma.len();
        for (((dx, dy), xh), &r) in dx
            .chunks_exact_mut(d)
            .zip(dy.chunks_exact(d))
            .zip(xh.chunks_exact(d))
            .zip(rs)
        {
            for i in 0..d {
                dg[i] += dy[i] * xh[i];
                db[i] += dy[i];
                g[i] = dy[i] * gamma[i];
            }
            let mean_g = sum8(g) / d as f32;
            let mean_gx = dot8(g, xh) / d as f32;
            for ((dx, g), h) in dx.iter_mut().zip(g.iter()).zip(xh) {
                *dx += r * (g - mean_g - h * mean_gx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_layer_norm_by_hand() {
        // x = [1, 2, 3, 6]: mean 3, biased variance (4 + 1 + 0 + 9)/4 = 3.5.
        let (mut out, mut xhat, mut rstd) = ([0.0; 4], [0.0; 4], [0.0; 1]);
        layer_norm_rows(
            &[1.0, 2.0, 3.0, 6.0],
            &[1.0, 1.0, 2.0, 1.0],
            &[0.0, 0.5, 0.0, 0.0],
            &mut out,
            &mut xhat,
            &mut rstd,
        );
        let s = (3.5f32 + LN_EPS).sqrt();
        assert!((rstd[0] - 1.0 / s).abs() < 1e-6);
        assert!((out[0] + 2.0 / s).abs() < 1e-6);
        assert!((out[1] - (0.5 - 1.0 / s)).abs() < 1e-6);
        assert_eq!(out[2], 0.0);
        assert!((out[3] - 3.0 / s).abs() < 1e-6);
    }
}
