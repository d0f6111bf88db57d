//! Causal multi-head attention of one sequence, forward and backward, visiting only the
//! `j ≤ i` half of the score matrix. Inputs are the fused projection rows `[T, 3d]`
//! (query | key | value, heads side by side within each), as `AdModel`'s `attn.qkv` gives.

use ccad_core::wide_fn;

use ccad_core::kernels::activation::exp;
use ccad_core::kernels::dropout::Site;
use ccad_core::kernels::matmul::{View, mm_view};
use ccad_core::kernels::reduce::{dot8, max8, sum8};

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
    let mut dropped = if drop.is_some() {
        vec![0.0f32; tt]
    } else {
        Vec::new()
    };
    let mut factors = dropped.clone();
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
        causal_softmax(probs, t);
        let weights = dropped_weights(drop, h, probs, &mut dropped, &mut factors, t);
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
    let mut factors = if drop.is_some() {
        vec![0.0f32; tt]
    } else {
        Vec::new()
    };
    let mut dropped = if drop.is_some() {
        vec![0.0f32; tt]
    } else {
        Vec::new()
    };
    for h in 0..s.heads {
        let probs = &p[h * tt..(h + 1) * tt];
        let weights = dropped_weights(drop, h, probs, &mut dropped, &mut factors, t);
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
        softmax_backward(probs, &mut dweights, &factors, t);
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

/// Head `h`'s attention weights after dropout: `probs` itself without dropout, else
/// `dropped = probs ∘ factors` (both filled here).
fn dropped_weights<'a>(
    drop: Option<(Site, u64)>,
    h: usize,
    probs: &'a [f32],
    dropped: &'a mut [f32],
    factors: &mut [f32],
    t: usize,
) -> &'a [f32] {
    match drop {
        Some((site, first)) => {
            drop_square(site.sub(first + h as u64), probs, dropped, factors, t);
            dropped
        }
        None => probs,
    }
}

wide_fn! {
    /// Row `i` of `probs [T, T]`: softmax over `j ≤ i`, zeros after.
    fn causal_softmax(probs: &mut [f32], t: usize) {
        for i in 0..t {
            let row = &mut probs[i * t..(i + 1) * t];
            let (seen, future) = row.split_at_mut(i + 1);
            future.fill(0.0);
            let max = max8(seen);
            for r in seen.iter_mut() {
                *r = exp(*r - max);
            }
            let inv = 1.0 / sum8(seen);
            seen.iter_mut().for_each(|r| *r *= inv);
        }
    }
}

wide_fn! {
    /// `factors` = the square's dropout multipliers, `dropped = probs ∘ factors`, over `j ≤ i`
    /// (zeros after).
    fn drop_square(site: Site, probs: &[f32], dropped: &mut [f32], factors: &mut [f32], t: usize) {
        for i in 0..t {
            let r = i * t..(i + 1) * t;
            let (f, o, p) = (&mut factors[r.clone()], &mut dropped[r.clone()], &probs[r]);
            let first = (i * t) as u32;
            let (f, f_future) = f.split_at_mut(i + 1);
            let (o, o_future) = o.split_at_mut(i + 1);
            for (j, ((f, o), p)) in f.iter_mut().zip(o.iter_mut()).zip(&p[..=i]).enumerate() {
                *f = site.factor(first + j as u32);
                *o = p * *f;
            }
            f_future.fill(0.0);
            o_future.fill(0.0);
        }
    }
}

wide_fn! {
    /// `dw ← p ∘ (dw·f − Σ_j p·dw·f)` row by row over `j ≤ i` (`f`: dropout factors, empty
    /// without dropout), zeros after.
    fn softmax_backward(probs: &[f32], dw: &mut [f32], factors: &[f32], t: usize) {
        for i in 0..t {
            let row = &probs[i * t..(i + 1) * t];
            let g = &mut dw[i * t..(i + 1) * t];
            if !factors.is_empty() {
                g.iter_mut()
                    .zip(&factors[i * t..(i + 1) * t])
                    .for_each(|(g, f)| *g *= f);
            }
            let (seen, future) = g.split_at_mut(i + 1);
            let dot = dot8(&row[..=i], seen);
            for (g, p) in seen.iter_mut().zip(&row[..=i]) {
                *g = p * (*g - dot);
            }
            future.fill(0.0);
        }
    }
}
