//! The output side: final layer norm, the action and token-type heads and their masked
//! cross-entropy, forward and backward side by side, and the decoder's one-token forward.

use ccad_core::kernels::buffers::Pool;
use ccad_core::tokens::token_type;
use rayon::prelude::*;

use super::batch::Packed;
use super::linear::{
    NormCache, linear_backward, linear_decode, linear_forward, norm_backward, norm_decode,
    norm_forward,
};
use super::weights::{Grads, Weights};
use crate::LossMetrics;

/// What the heads keep for the backward pass.
pub(crate) struct HeadsCache {
    xf: Vec<f32>,
    xhatf: Vec<f32>,
    rstdf: Vec<f32>,
    action: Vec<f32>,
    types: Vec<f32>,
}

impl HeadsCache {
    /// `[n, n_actions]`.
    pub(crate) fn action_logits(&self) -> &[f32] {
        &self.action
    }

    pub(crate) fn give_back(self, pool: &Pool) {
        for v in [self.xf, self.xhatf, self.rstdf, self.action, self.types] {
            pool.give(v);
        }
    }
}

/// Final norm of `x [n, d]` and both heads' logits.
pub(crate) fn forward(w: &Weights, x: &[f32], pool: &Pool) -> HeadsCache {
    let d = w.norm_g.len();
    let n = x.len() / d;
    let (na, nt) = (w.action_b.len(), token_type::COUNT);
    let mut c = HeadsCache {
        xf: pool.take(n * d),
        xhatf: pool.take(n * d),
        rstdf: pool.take(n),
        action: pool.take(n * na),
        types: pool.take(n * nt),
    };
    let keep = NormCache {
        xhat: &mut c.xhatf,
        rstd: &mut c.rstdf,
    };
    norm_forward(x, (w.norm_g, w.norm_b), &mut c.xf, keep);
    linear_forward(&c.xf, w.action_w, w.action_b, &mut c.action);
    linear_forward(&c.xf, w.type_w, w.type_b, &mut c.types);
    c
}

/// The loss of the heads' logits against the packed targets, without gradients.
pub(crate) fn loss(c: &HeadsCache, p: &Packed, type_weight: f32) -> LossMetrics {
    let na = c.action.len() / p.n;
    let (action, acc_a, n_a) = cross_entropy(&c.action, na, &p.target_action, None);
    let (kind, acc_t, n_t) = cross_entropy(&c.types, token_type::COUNT, &p.target_type, None);
    metrics(action, kind, acc_a, acc_t, n_a, n_t, type_weight)
}

/// The loss and its backward through the heads and the final norm: the heads' parameter
/// gradients into `g`, the gradient of the final norm's input into `dx` (overwritten).
pub(crate) fn loss_backward(
    (w, g): (&Weights, &mut Grads),
    c: &HeadsCache,
    p: &Packed,
    (type_weight, pool): (f32, &Pool),
    dx: &mut [f32],
) -> LossMetrics {
    let (n, d) = (p.n, w.norm_g.len());
    let (na, nt) = (w.action_b.len(), token_type::COUNT);
    let mut dla = pool.take(n * na);
    let mut dlt = pool.take(n * nt);
    let (action, acc_a, n_a) =
        cross_entropy(&c.action, na, &p.target_action, Some((&mut dla, 1.0)));
    let (kind, acc_t, n_t) =
        cross_entropy(&c.types, nt, &p.target_type, Some((&mut dlt, type_weight)));
    let mut dxf = pool.take(n * d);
    let gw = (&mut *g.action_w, &mut *g.action_b);
    linear_backward(&c.xf, &dla, w.action_w, gw, Some((&mut dxf, false)));
    let gw = (&mut *g.type_w, &mut *g.type_b);
    linear_backward(&c.xf, &dlt, w.type_w, gw, Some((&mut dxf, true)));
    dx.fill(0.0);
    let gn = (&mut *g.norm_g, &mut *g.norm_b);
    norm_backward(&dxf, (&c.xhatf, &c.rstdf), w.norm_g, gn, dx);
    for v in [dla, dlt, dxf] {
        pool.give(v);
    }
    metrics(action, kind, acc_a, acc_t, n_a, n_t, type_weight)
}

/// [`forward`] of one token `x [d]`: action logits then token-type logits into `logits`.
pub(crate) fn decode(
    w: &Weights,
    x: &[f32],
    (h, xhat): (&mut [f32], &mut [f32]),
    logits: &mut [f32],
) {
    norm_decode(x, (w.norm_g, w.norm_b), h, xhat);
    let (a, t) = logits.split_at_mut(w.action_b.len());
    linear_decode(h, w.action_w, w.action_b, a);
    linear_decode(h, w.type_w, w.type_b, t);
}

/// Masked softmax cross-entropy of `logits [N, C]` against `labels` (negative = unlabelled).
/// Returns (mean loss, accuracy, count) and, when `dlogits` is given, writes
/// `scale · (softmax − onehot) / max(count, 1)` there (0 on unlabelled rows).
fn cross_entropy(
    logits: &[f32],
    c: usize,
    labels: &[i32],
    dlogits: Option<(&mut [f32], f32)>,
) -> (f32, f32, usize) {
    let count = labels.iter().filter(|&&y| y >= 0).count();
    let denom = count.max(1) as f32;
    let row_loss = |z: &[f32], y: usize, out: Option<&mut [f32]>, scale: f32| -> (f64, f64) {
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
        let lse = max + sum.ln();
        let argmax = z
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 { (i, v) } else { best }
            })
            .0;
        if let Some(o) = out {
            for (i, (o, &v)) in o.iter_mut().zip(z).enumerate() {
                let p = (v - lse).exp();
                *o = scale * (p - if i == y { 1.0 } else { 0.0 }) / denom;
            }
        }
        ((lse - z[y]) as f64, (argmax == y) as u8 as f64)
    };
    // Per-row terms summed in row order: independent of the thread count and scheduling.
    let rows: Vec<(f64, f64)> = match dlogits {
        Some((d, scale)) => d
            .par_chunks_mut(c)
            .zip(logits.par_chunks(c))
            .zip(labels.par_iter())
            .map(|((o, z), &y)| {
                if y < 0 {
                    o.fill(0.0);
                    (0.0, 0.0)
                } else {
                    row_loss(z, y as usize, Some(o), scale)
                }
            })
            .collect(),
        None => logits
            .par_chunks(c)
            .zip(labels.par_iter())
            .map(|(z, &y)| {
                if y < 0 {
                    (0.0, 0.0)
                } else {
                    row_loss(z, y as usize, None, 0.0)
                }
            })
            .collect(),
    };
    let (loss, hits) = rows.iter().fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    (
        (loss / denom as f64) as f32,
        (hits / denom as f64) as f32,
        count,
    )
}

pub(crate) fn metrics(
    action: f32,
    kind: f32,
    acc_a: f32,
    acc_t: f32,
    n_a: usize,
    n_t: usize,
    type_weight: f32,
) -> LossMetrics {
    LossMetrics {
        total: action + type_weight * kind,
        action,
        token_type: kind,
        acc_action: acc_a,
        acc_token_type: acc_t,
        n_action: n_a,
        n_token_type: n_t,
    }
}
