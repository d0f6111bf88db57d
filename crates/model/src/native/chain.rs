//! The memory layout's chains in the native step (DESIGN §5b): each block of a chain is a
//! packed sequence of its own that also reads `R` memory rows — keys and values gathered,
//! at every layer, from the memory tokens of earlier blocks (concat: all of them; merge: a
//! running mean per slot, one cumulative sum over the chain). Attention of a block then runs
//! over `R + t` keys: every memory row, and its own tokens causally. The backward pass
//! returns the memory rows' gradients, which flow back to the memory tokens they came from
//! (merge: a reverse cumulative sum), so every compression step gets its gradient.

use ccad_core::context::MemoryUpdate;
use ccad_core::kernels::dropout::Site;
use ccad_core::kernels::matmul::{View, mm_view};
use ccad_core::kernels::reduce::dot8;
use ccad_core::kernels::softmax::softmax_in_place;

use super::attention::Shape;
use super::batch::Packed;

/// One chain of a packed batch.
#[derive(Debug, Clone)]
pub(crate) struct PackedChain {
    pub update: MemoryUpdate,
    /// `M`.
    pub slots: usize,
    /// Per block, in order: its packed sequence (index into `Packed::seqs`) and the packed
    /// row of its first memory token, if it has its memory.
    pub blocks: Vec<(usize, Option<usize>)>,
    /// Blocks before this one give memory without gradient (`Chain::frozen`).
    pub frozen: usize,
}

impl PackedChain {
    /// Memory rows block `k` reads.
    pub(crate) fn n_reads(&self, k: usize) -> usize {
        let earlier = self.blocks[..k].iter().filter(|b| b.1.is_some()).count();
        match self.update {
            MemoryUpdate::Concat => earlier * self.slots,
            MemoryUpdate::Merge if earlier > 0 => self.slots,
            MemoryUpdate::Merge => 0,
        }
    }
}

/// Fill `mem [Σ reads, 2d]` (key | value per row) with every block's memory rows from this
/// layer's `qkv [n, 3d]`.
pub(crate) fn gather(p: &Packed, d: usize, qkv: &[f32], mem: &mut [f32]) {
    let kv = |row: usize| &qkv[row * 3 * d + d..(row + 1) * 3 * d];
    for chain in &p.chains {
        let m = chain.slots;
        let mut sum = vec![0.0f32; m * 2 * d];
        let mut count = 0usize;
        let mut earlier: Vec<usize> = Vec::new();
        for &(seq, memory) in &chain.blocks {
            let (at, reads) = p.reads[seq];
            let out = &mut mem[at * 2 * d..(at + reads) * 2 * d];
            match chain.update {
                MemoryUpdate::Concat => {
                    let sources = earlier
                        .iter()
                        .flat_map(|&first| (0..m).map(move |i| first + i));
                    for (row, src) in out.chunks_exact_mut(2 * d).zip(sources) {
                        row.copy_from_slice(kv(src));
                    }
                }
                MemoryUpdate::Merge if count > 0 => {
                    let w = 1.0 / count as f32;
                    out.iter_mut().zip(&sum).for_each(|(o, s)| *o = s * w);
                }
                MemoryUpdate::Merge => {}
            }
            if let Some(first) = memory {
                earlier.push(first);
                count += 1;
                for i in 0..m {
                    let row = &mut sum[i * 2 * d..(i + 1) * 2 * d];
                    row.iter_mut().zip(kv(first + i)).for_each(|(s, v)| *s += v);
                }
            }
        }
    }
}

/// Backward of [`gather`]: add the memory rows' gradients `dmem [Σ reads, 2d]` to the key
/// and value gradients of the memory tokens they came from, in `dqkv [n, 3d]` — except the
/// memory of a chain's frozen blocks, which takes no gradient.
pub(crate) fn scatter(p: &Packed, d: usize, dmem: &[f32], dqkv: &mut [f32]) {
    for chain in &p.chains {
        let m = chain.slots;
        // Frozen blocks come first, so their memory rows lie before the first trained block.
        let trained_from = chain
            .blocks
            .get(chain.frozen)
            .map_or(usize::MAX, |&(seq, _)| p.seqs[seq].0);
        let mut add = |row: usize, g: &[f32]| {
            if row < trained_from {
                return;
            }
            let dst = &mut dqkv[row * 3 * d + d..(row + 1) * 3 * d];
            dst.iter_mut().zip(g).for_each(|(o, g)| *o += g);
        };
        match chain.update {
            MemoryUpdate::Concat => {
                let mut earlier: Vec<usize> = Vec::new();
                for &(seq, memory) in &chain.blocks {
                    let (at, reads) = p.reads[seq];
                    let g = &dmem[at * 2 * d..(at + reads) * 2 * d];
                    let sources = earlier
                        .iter()
                        .flat_map(|&first| (0..m).map(move |i| first + i));
                    for (row, src) in g.chunks_exact(2 * d).zip(sources) {
                        add(src, row);
                    }
                    earlier.extend(memory);
                }
            }
            MemoryUpdate::Merge => {
                // Block j's memory gets Σ_{k > j} dmem_k / count_k: a reverse cumulative sum.
                let counts: Vec<usize> = chain
                    .blocks
                    .iter()
                    .scan(0, |c, b| {
                        let before = *c;
                        *c += b.1.is_some() as usize;
                        Some(before)
                    })
                    .collect();
                let mut acc = vec![0.0f32; m * 2 * d];
                for j in (0..chain.blocks.len()).rev() {
                    if let Some(&(seq, _)) = chain.blocks.get(j + 1)
                        && counts[j + 1] > 0
                    {
                        let (at, reads) = p.reads[seq];
                        let w = 1.0 / counts[j + 1] as f32;
                        let g = &dmem[at * 2 * d..(at + reads) * 2 * d];
                        acc.iter_mut().zip(g).for_each(|(a, g)| *a += g * w);
                    }
                    if let Some(first) = chain.blocks[j].1 {
                        for i in 0..m {
                            add(first + i, &acc[i * 2 * d..(i + 1) * 2 * d]);
                        }
                    }
                }
            }
        }
    }
}

/// Attention probabilities of a block of `t` tokens reading `r` memory rows.
pub(crate) fn probs_len(heads: usize, t: usize, r: usize) -> usize {
    heads * t * (r + t)
}

/// `ctx [t, d]` = per head `dropout(softmax(q [kmem; k]ᵀ/√dh)) [vmem; v]`, where row `i`
/// sees every memory row and its own tokens `j ≤ i`; `p [H, t, r + t]` receives the
/// softmax before dropout (zeros where hidden). `mem [r, 2d]`: key | value rows.
pub(crate) fn forward(
    s: Shape,
    qkv: &[f32],
    mem: &[f32],
    ctx: &mut [f32],
    p: &mut [f32],
    drop: Option<(Site, u64)>,
) {
    let (d, dh, scale) = (s.d, s.d / s.heads, 1.0 / ((s.d / s.heads) as f32).sqrt());
    let t = qkv.len() / (3 * d);
    let r = mem.len() / (2 * d);
    let w = r + t;
    let mut dropped = vec![0.0f32; if drop.is_some() { t * w } else { 0 }];
    let mut factors = dropped.clone();
    for h in 0..s.heads {
        let probs = &mut p[h * t * w..(h + 1) * t * w];
        let q = (qkv, View::new(h * dh, 3 * d, 1));
        mm_view(
            (t, dh, r),
            q,
            (mem, View::new(h * dh, 1, 2 * d)),
            (probs, View::new(0, w, 1)),
            scale,
            false,
        );
        mm_view(
            (t, dh, t),
            (qkv, View::new(h * dh, 3 * d, 1)),
            (qkv, View::new(d + h * dh, 1, 3 * d)),
            (probs, View::new(r, w, 1)),
            scale,
            false,
        );
        for i in 0..t {
            let row = &mut probs[i * w..(i + 1) * w];
            let (seen, hidden) = row.split_at_mut(r + i + 1);
            hidden.fill(0.0);
            softmax_in_place(seen);
        }
        let weights: &[f32] = match drop {
            Some((site, first)) => {
                let site = site.sub(first + h as u64);
                for (k, ((o, f), p)) in dropped
                    .iter_mut()
                    .zip(&mut factors)
                    .zip(&*probs)
                    .enumerate()
                {
                    *f = site.factor(k as u32);
                    *o = p * *f;
                }
                &dropped
            }
            None => probs,
        };
        mm_view(
            (t, r, dh),
            (weights, View::new(0, w, 1)),
            (mem, View::new(d + h * dh, 2 * d, 1)),
            (ctx, View::new(h * dh, d, 1)),
            1.0,
            false,
        );
        mm_view(
            (t, t, dh),
            (weights, View::new(r, w, 1)),
            (qkv, View::new(2 * d + h * dh, 3 * d, 1)),
            (ctx, View::new(h * dh, d, 1)),
            1.0,
            true,
        );
    }
}

/// Backward of [`forward`]: `dqkv [t, 3d]` and `dmem [r, 2d]` (both overwritten) from
/// `dctx [t, d]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    s: Shape,
    qkv: &[f32],
    mem: &[f32],
    p: &[f32],
    dctx: &[f32],
    dqkv: &mut [f32],
    dmem: &mut [f32],
    drop: Option<(Site, u64)>,
) {
    let (d, dh, scale) = (s.d, s.d / s.heads, 1.0 / ((s.d / s.heads) as f32).sqrt());
    let t = qkv.len() / (3 * d);
    let r = mem.len() / (2 * d);
    let w = r + t;
    let mut dw = vec![0.0f32; t * w];
    let mut factors = vec![0.0f32; if drop.is_some() { t * w } else { 0 }];
    let mut dropped = factors.clone();
    for h in 0..s.heads {
        let probs = &p[h * t * w..(h + 1) * t * w];
        let weights: &[f32] = match drop {
            Some((site, first)) => {
                let site = site.sub(first + h as u64);
                for (k, ((o, f), p)) in dropped.iter_mut().zip(&mut factors).zip(probs).enumerate()
                {
                    *f = site.factor(k as u32);
                    *o = p * *f;
                }
                &dropped
            }
            None => probs,
        };
        let dctx_h = (dctx, View::new(h * dh, d, 1));
        // d(weights) = dctx_h · [vmem; v]ᵀ
        mm_view(
            (t, dh, r),
            dctx_h,
            (mem, View::new(d + h * dh, 1, 2 * d)),
            (&mut dw, View::new(0, w, 1)),
            1.0,
            false,
        );
        mm_view(
            (t, dh, t),
            (dctx, View::new(h * dh, d, 1)),
            (qkv, View::new(2 * d + h * dh, 1, 3 * d)),
            (&mut dw, View::new(r, w, 1)),
            1.0,
            false,
        );
        // dvmem = weights[:, :r]ᵀ · dctx_h, dv = weights[:, r:]ᵀ · dctx_h
        mm_view(
            (r, t, dh),
            (weights, View::new(0, 1, w)),
            (dctx, View::new(h * dh, d, 1)),
            (dmem, View::new(d + h * dh, 2 * d, 1)),
            1.0,
            false,
        );
        mm_view(
            (t, t, dh),
            (weights, View::new(r, 1, w)),
            (dctx, View::new(h * dh, d, 1)),
            (dqkv, View::new(2 * d + h * dh, 3 * d, 1)),
            1.0,
            false,
        );
        // Through dropout, then the softmax over the keys each row sees.
        for i in 0..t {
            let g = &mut dw[i * w..(i + 1) * w];
            if !factors.is_empty() {
                g.iter_mut()
                    .zip(&factors[i * w..(i + 1) * w])
                    .for_each(|(g, f)| *g *= f);
            }
            let n = r + i + 1;
            let row = &probs[i * w..i * w + n];
            let (seen, hidden) = g.split_at_mut(n);
            let dot = dot8(row, seen);
            for (g, p) in seen.iter_mut().zip(row) {
                *g = p * (*g - dot);
            }
            hidden.fill(0.0);
        }
        let ds = &dw;
        // dq = scale · (ds[:, :r] · kmem + ds[:, r:] · k)
        mm_view(
            (t, r, dh),
            (ds, View::new(0, w, 1)),
            (mem, View::new(h * dh, 2 * d, 1)),
            (dqkv, View::new(h * dh, 3 * d, 1)),
            scale,
            false,
        );
        mm_view(
            (t, t, dh),
            (ds, View::new(r, w, 1)),
            (qkv, View::new(d + h * dh, 3 * d, 1)),
            (dqkv, View::new(h * dh, 3 * d, 1)),
            scale,
            true,
        );
        // dkmem = scale · ds[:, :r]ᵀ · q, dk = scale · ds[:, r:]ᵀ · q
        mm_view(
            (r, t, dh),
            (ds, View::new(0, 1, w)),
            (qkv, View::new(h * dh, 3 * d, 1)),
            (dmem, View::new(h * dh, 2 * d, 1)),
            scale,
            false,
        );
        mm_view(
            (t, t, dh),
            (ds, View::new(r, 1, w)),
            (qkv, View::new(h * dh, 3 * d, 1)),
            (dqkv, View::new(d + h * dh, 3 * d, 1)),
            scale,
            false,
        );
    }
}
