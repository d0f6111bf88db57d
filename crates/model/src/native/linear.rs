//! The two affine layers every part of the model is built from, forward and backward side
//! by side, and the decoder's one-token forward of each:
//!
//! - linear `y = x · W + b` (`W` row-major `[d_in, d_out]`, burn's `Linear`);
//! - layer norm (burn's `LayerNorm`, biased variance).
//!
//! Batched forms run over `n` rows through `gemm` and the thread pool; the one-token forms run
//! on the calling thread (a decoder step is far too small to share).

use ccad_core::kernels::matmul::{add_bias, add_column_sums, matvec_acc, mm, mm_nt, mm_tn};
use ccad_core::kernels::norm::{layer_norm, layer_norm_backward, layer_norm_rows};

/// `y [n, d_out] = x [n, d_in] · w + b`.
pub(crate) fn linear_forward(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    let d_out = b.len();
    let d_in = w.len() / d_out;
    let n = x.len() / d_in;
    mm(n, d_in, d_out, x, w, y, false);
    add_bias(y, b);
}

/// Backward of [`linear_forward`]: `gw += xᵀ dy`, `gb += Σ_rows dy`, and, when `dx` is given,
/// `dx = dy · wᵀ` (`+= ` when its flag is set).
pub(crate) fn linear_backward(
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    (gw, gb): (&mut [f32], &mut [f32]),
    dx: Option<(&mut [f32], bool)>,
) {
    let d_out = gb.len();
    let d_in = gw.len() / d_out;
    let n = dy.len() / d_out;
    mm_tn(d_in, n, d_out, x, dy, gw, true);
    add_column_sums(dy, d_out, gb);
    if let Some((dx, acc)) = dx {
        mm_nt(n, d_out, d_in, dy, w, dx, acc);
    }
}

/// [`linear_forward`] of one token.
pub(crate) fn linear_decode(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    y.copy_from_slice(b);
    matvec_acc(x, w, y);
}

/// What a layer norm keeps for its backward pass: the normalised input and each row's
/// reciprocal standard deviation.
pub(crate) struct NormCache<'a> {
    pub xhat: &'a mut [f32],
    pub rstd: &'a mut [f32],
}

/// Layer norm of every `d`-row of `x` into `y`.
pub(crate) fn norm_forward(x: &[f32], (g, b): (&[f32], &[f32]), y: &mut [f32], keep: NormCache) {
    layer_norm(x, g, b, y, keep.xhat, keep.rstd);
}

/// Backward of [`norm_forward`]: adds the input gradient into `dx_acc` and the gain and shift
/// gradients into `(gg, gb)`.
pub(crate) fn norm_backward(
    dy: &[f32],
    (xhat, rstd): (&[f32], &[f32]),
    gamma: &[f32],
    (gg, gb): (&mut [f32], &mut [f32]),
    dx_acc: &mut [f32],
) {
    // Rows are never empty here (the step returns early without tokens).
    let d = gamma.len();
    let (mut dgam, mut dbet) = (vec![0.0f32; d], vec![0.0f32; d]);
    layer_norm_backward(dy, xhat, rstd, gamma, dx_acc, &mut dgam, &mut dbet);
    gg.iter_mut().zip(&dgam).for_each(|(g, v)| *g += v);
    gb.iter_mut().zip(&dbet).for_each(|(g, v)| *g += v);
}

/// [`norm_forward`] of one token (`xhat`: scratch of the row's width).
pub(crate) fn norm_decode(x: &[f32], (g, b): (&[f32], &[f32]), y: &mut [f32], xhat: &mut [f32]) {
    layer_norm_rows(x, g, b, y, xhat, &mut [0.0]);
}

/// `x += y` (a residual connection).
pub(crate) fn add_residual(x: &mut [f32], y: &[f32]) {
    use rayon::prelude::*;
    x.par_iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

/// [`add_residual`] of one token.
pub(crate) fn add_residual_decode(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}
