//! Causal multi-head attention of one sequence, forward and backward, visiting only the
//! `j ≤ i` half of the score matrix. Inputs are the fused projection rows `[T, 3d]`
//! (query | key | value, heads side by side within each), as `AdModel`'s `attn.qkv` gives.

use super::ops::{Site, View, mm_view};

/// Sizes shared by the forward and backward passes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub d: usize,
    pub heads: usize,
}

impl Shape {
    fn dh(&self) -> usize {
        self.d / self.heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dh() as f32).sqrt()
    }
}

/// Attention probabilities of a sequence of `t` tokens: `heads · t²` entries (row `i` of
/// head `h` at `(h·t + i)·t`, entries `j ≤ i` used).
pub(crate) fn probs_len(heads: usize, t: usize) -> usize {
    heads * t * t
}

/// `ctx [T, d]` = per head `dropout(softmax(q kᵀ/√dh + causal)) v`; `p` receives the
/// softmax before dropout (zeros above the diagonal). `drop` with the index of this
/// sequence's first probability. The products run through `gemm` on full `T×T` squares: twice
/// the arithmetic of the causal half, at many times the speed of a scalar loop over it.
pub(crate) fn forward(
    s: Shape,
    qkv: &[f32],
    ctx: &mut [f32],
    p: &mut [f32],
    drop: Option<(Site, u64)>,
) {
    let (d, dh, scale) = (s.d, s.dh(), s.scale());
    let t = qkv.len() / (3 * d);
    let tt = t * t;
    let mut dropped = if drop.is_some() { vec![0.0f32; tt] } else { Vec::new() };
    for h in 0..s.heads {
        let probs = &mut p[h * tt..(h + 1) * tt];
        mm_view(
            (t, dh, t),
            (qkv, View::new(h * dh, 3 * d, 1)),
            (qkv, View::new(d + h * dh, 1, 3 * d)),
            (probs, View::new(0, t, 1)),
            scale,
            false,
        );
        for i in 0..t {
            let row = &mut probs[i * t..(i + 1) * t];
            let (seen, future) = row.split_at_mut(i + 1);
            future.fill(0.0);
            let max = seen.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for r in seen.iter_mut() {
                *r = (*r - max).exp();
                sum += *r;
            }
            let inv = 1.0 / sum;
            seen.iter_mut().for_each(|r| *r *= inv);
        }
        let weights: &[f32] = match drop {
            Some((site, first)) => {
                let base = first + (h * tt) as u64;
                for (k, (o, &v)) in dropped.iter_mut().zip(probs.iter()).enumerate() {
                    *o = if v == 0.0 { 0.0 } else { v * site.factor(base + k as u64) };
                }
                &dropped
            }
            None => probs,
        };
        mm_view(
            (t, t, dh),
            (weights, View::new(0, t, 1)),
            (qkv, View::new(2 * d + h * dh, 3 * d, 1)),
            (ctx, View::new(h * dh, d, 1)),
            1.0,
            false,
        );
    }
}

/// Backward of [`forward`]: `dqkv [T, 3d]` (overwritten) from `dctx [T, d]`.
pub(crate) fn backward(
    s: Shape,
    qkv: &[f32],
    p: &[f32],
    dctx: &[f32],
    dqkv: &mut [f32],
    drop: Option<(Site, u64)>,
) {
    let (d, dh, scale) = (s.d, s.dh(), s.scale());
    let t = qkv.len() / (3 * d);
    let tt = t * t;
    let mut dweights = vec![0.0f32; tt];
    let mut factors = if drop.is_some() { vec![0.0f32; tt] } else { Vec::new() };
    let mut dropped = if drop.is_some() { vec![0.0f32; tt] } else { Vec::new() };
    for h in 0..s.heads {
        let probs = &p[h * tt..(h + 1) * tt];
        let weights: &[f32] = match drop {
            Some((site, first)) => {
                let base = first + (h * tt) as u64;
                for (k, ((f, o), &v)) in factors
                    .iter_mut()
                    .zip(dropped.iter_mut())
                    .zip(probs)
                    .enumerate()
                {
                    *f = site.factor(base + k as u64);
                    *o = v * *f;
                }
                &dropped
            }
            None => probs,
        };
        // d(weights) = dctx_h · v_hᵀ
        mm_view(
            (t, dh, t),
            (dctx, View::new(h * dh, d, 1)),
            (qkv, View::new(2 * d + h * dh, 1, 3 * d)),
            (&mut dweights, View::new(0, t, 1)),
            1.0,
            false,
        );
        // dv_h = weightsᵀ · dctx_h
        mm_view(
            (t, t, dh),
            (weights, View::new(0, 1, t)),
            (dctx, View::new(h * dh, d, 1)),
            (dqkv, View::new(2 * d + h * dh, 3 * d, 1)),
            1.0,
            false,
        );
        // Through dropout, then softmax: ds = p ∘ (dp − Σ p dp), zero above the diagonal.
        for i in 0..t {
            let row = &probs[i * t..(i + 1) * t];
            let dw = &mut dweights[i * t..(i + 1) * t];
            if drop.is_some() {
                dw.iter_mut()
                    .zip(&factors[i * t..(i + 1) * t])
                    .for_each(|(g, f)| *g *= f);
            }
            let dot: f32 = row[..=i].iter().zip(&dw[..=i]).map(|(p, g)| p * g).sum();
            for j in 0..=i {
                dw[j] = row[j] * (dw[j] - dot);
            }
            dw[i + 1..].fill(0.0);
        }
        let ds = &dweights;
        // dq_h = scale · ds · k_h,  dk_h = scale · dsᵀ · q_h
        mm_view(
            (t, t, dh),
            (ds, View::new(0, t, 1)),
            (qkv, View::new(d + h * dh, 3 * d, 1)),
            (dqkv, View::new(h * dh, 3 * d, 1)),
            scale,
            false,
        );
        mm_view(
            (t, t, dh),
            (ds, View::new(0, 1, t)),
            (qkv, View::new(h * dh, 3 * d, 1)),
            (dqkv, View::new(d + h * dh, 3 * d, 1)),
            scale,
            false,
        );
    }
}
