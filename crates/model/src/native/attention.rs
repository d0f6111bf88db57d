//! Multi-head attention (causal, or under a sequence's [`Visibility`]), forward and backward side by side (per sequence, and over
//! every sequence of a packed batch in parallel), and the decoder's one-token form over a
//! key/value cache. Inputs are the fused projection rows `[T, 3d]` (query | key | value,
//! heads side by side within each), as `AdModel`'s `attn.qkv` gives.

use ccad_core::context::Visibility;
use ccad_core::kernels::buffers::split_lengths;
use ccad_core::kernels::dropout::Site;
use ccad_core::kernels::matmul::{View, axpy, mm_view};
use ccad_core::kernels::reduce::dot8;
use ccad_core::kernels::softmax::softmax_in_place;
use ccad_core::wide_fn;
use rayon::prelude::*;

use super::batch::Packed;
use crate::model::MASKED;

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

/// [`forward`] of every sequence of `p`, in parallel: `ctx [n, d]` and each sequence's
/// probabilities (at `p.probs_at`) from `qkv [n, 3d]`. `site`: this layer's attention dropout.
/// Chain blocks also read their memory rows, which `mem [reads_total, 2d]` receives first.
pub(crate) fn forward_packed(
    s: Shape,
    p: &Packed,
    (qkv, mem): (&[f32], &mut [f32]),
    (ctx, probs): (&mut [f32], &mut [f32]),
    site: Option<Site>,
) {
    let d = s.d;
    super::chain::gather(p, d, qkv, mem);
    let mem = &*mem;
    let ctx_parts = split_lengths(
        ctx,
        &p.seqs.iter().map(|&(_, len)| len * d).collect::<Vec<_>>(),
    );
    let prob_parts = split_lengths(
        probs,
        &p.seqs
            .iter()
            .zip(&p.reads)
            .map(|(&(_, len), &(_, r))| seq_probs_len(s.heads, len, r))
            .collect::<Vec<_>>(),
    );
    ctx_parts
        .into_par_iter()
        .zip(prob_parts)
        .enumerate()
        .for_each(|(k, (ctx, probs))| {
            let (row0, len) = p.seqs[k];
            let rows = &qkv[row0 * 3 * d..(row0 + len) * 3 * d];
            let dr = site.map(|site| (site, p.probs_at[k] as u64));
            match p.reads[k] {
                (_, 0) => forward(s, rows, ctx, probs, (&p.visibility[k], dr)),
                (at, r) => {
                    let mem = &mem[at * 2 * d..(at + r) * 2 * d];
                    super::chain::forward(s, rows, mem, ctx, probs, dr);
                }
            }
        });
}

/// Probabilities of a sequence of `len` tokens reading `reads` memory rows.
fn seq_probs_len(heads: usize, len: usize, reads: usize) -> usize {
    if reads == 0 {
        probs_len(heads, len)
    } else {
        super::chain::probs_len(heads, len, reads)
    }
}

/// Backward of [`forward_packed`]: `dqkv [n, 3d]` (overwritten) from `dctx [n, d]`;
/// `dmem [reads_total, 2d]` is scratch for the memory rows' gradients, which end in the
/// memory tokens' keys and values.
pub(crate) fn backward_packed(
    s: Shape,
    p: &Packed,
    (qkv, mem, probs): (&[f32], &[f32], &[f32]),
    dctx: &[f32],
    (dqkv, dmem): (&mut [f32], &mut [f32]),
    site: Option<Site>,
) {
    let d = s.d;
    let parts = split_lengths(
        dqkv,
        &p.seqs
            .iter()
            .map(|&(_, len)| len * 3 * d)
            .collect::<Vec<_>>(),
    );
    let dmem_parts = split_lengths(
        dmem,
        &p.reads.iter().map(|&(_, r)| r * 2 * d).collect::<Vec<_>>(),
    );
    parts
        .into_par_iter()
        .zip(dmem_parts)
        .enumerate()
        .for_each(|(k, (dq, dm))| {
            let (row0, len) = p.seqs[k];
            let pa = p.probs_at[k];
            let (at, r) = p.reads[k];
            let probs = &probs[pa..pa + seq_probs_len(s.heads, len, r)];
            let dr = site.map(|site| (site, pa as u64));
            let rows = &qkv[row0 * 3 * d..(row0 + len) * 3 * d];
            let dctx = &dctx[row0 * d..(row0 + len) * d];
            if r == 0 {
                backward(s, rows, probs, dctx, dq, dr);
            } else {
                let mem = &mem[at * 2 * d..(at + r) * 2 * d];
                super::chain::backward(s, rows, mem, probs, dctx, dq, dm, dr);
            }
        });
    super::chain::scatter(p, d, dmem, dqkv);
}

wide_fn! {
    /// One token's attention over a cache: `out [d]` = per head `softmax(q kᵀ/√dh) v` with
    /// `q [d]` (this token's query) over the `T` cached rows of `keys` and `values` (`[T, d]`,
    /// this token's own included). `seen`: which rows it may attend to (`None`: all).
    /// `scores`: scratch of at least `T`.
    pub(crate) fn decode(
        s: Shape,
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        seen: Option<&[bool]>,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let (d, dh, scale) = (s.d, s.dh(), s.scale());
        let t = keys.len() / d;
        let scores = &mut scores[..t];
        for h in 0..s.heads {
            let head = h * dh..(h + 1) * dh;
            let q = &q[head.clone()];
            for (j, score) in scores.iter_mut().enumerate() {
                *score = dot8(q, &keys[j * d + h * dh..][..dh]) * scale;
            }
            if let Some(seen) = seen {
                mask_scores(scores, seen);
            }
            softmax_in_place(scores);
            let out = &mut out[head];
            out.fill(0.0);
            for (j, &w) in scores.iter().enumerate() {
                axpy(w, &values[j * d + h * dh..][..dh], out);
            }
        }
    }
}

/// `ctx [T, d]` = per head `dropout(softmax(q kᵀ/√dh + mask)) v`, the mask from
/// `visibility`; `p` receives the softmax before dropout (zeros above the diagonal and at
/// hidden keys, so the backward pass needs no mask). `drop` with the index of this
/// sequence's first probability. The products run through `gemm` on full `T×T` squares: twice
/// the arithmetic of the causal half, at many times the speed of a scalar loop over it.
pub(crate) fn forward(
    s: Shape,
    qkv: &[f32],
    ctx: &mut [f32],
    p: &mut [f32],
    (visibility, drop): (&Visibility, Option<(Site, u64)>),
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
        if visibility.is_causal() {
            causal_softmax(probs, t);
        } else {
            masked_softmax(probs, t, visibility);
        }
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
            softmax_in_place(seen);
        }
    }
}

/// Hide the scores of keys a token does not see (exactly 0 after the softmax, as burn's
/// additive bias gives).
fn mask_scores(scores: &mut [f32], seen: &[bool]) {
    for (x, &v) in scores.iter_mut().zip(seen) {
        if !v {
            *x = MASKED;
        }
    }
}

/// Row `i` of `probs [T, T]`: softmax over the keys `j ≤ i` that `visibility` lets `i` see,
/// zeros elsewhere.
fn masked_softmax(probs: &mut [f32], t: usize, visibility: &Visibility) {
    let mut seen = vec![false; t];
    for i in 0..t {
        let row = &mut probs[i * t..(i + 1) * t];
        visibility.key_mask(i, &mut seen[..=i]);
        let (past, future) = row.split_at_mut(i + 1);
        future.fill(0.0);
        mask_scores(past, &seen[..=i]);
        softmax_in_place(past);
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
