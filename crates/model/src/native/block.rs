//! One pre-norm transformer block, `x + attn(ln₁(x))` then `x + mlp(ln₂(x))` with exact GELU,
//! forward and backward side by side, and the decoder's one-token forward over its key/value
//! cache. Dropout (training only) sits on the attention weights and on each branch's output.

use ccad_core::kernels::activation::{gelu, gelu_backward, gelu_chunk};
use ccad_core::kernels::buffers::Pool;
use ccad_core::kernels::dropout::Dropout;

use super::attention::{self, Shape};
use super::batch::Packed;
use super::linear::{
    NormCache, add_residual, add_residual_decode, linear_backward, linear_decode, linear_forward,
    norm_backward, norm_decode, norm_forward,
};
use super::weights::LayerParts;

/// Dropout sites: the embedding, then per layer the attention weights, the attention
/// branch's output and the MLP's output.
pub(crate) const SITE_EMBED: u64 = 0;
fn site_attn(layer: usize) -> u64 {
    1 + 3 * layer as u64
}
fn site_resid(layer: usize) -> u64 {
    2 + 3 * layer as u64
}
fn site_mlp(layer: usize) -> u64 {
    3 + 3 * layer as u64
}

/// A training step's fixed inputs, shared by every block.
#[derive(Clone, Copy)]
pub(crate) struct StepCtx<'a> {
    pub shape: Shape,
    pub d_ff: usize,
    pub packed: &'a Packed,
    pub pool: &'a Pool,
    /// Dropout of activations and of attention weights (`None` in inference mode).
    pub drop: Option<Dropout>,
    pub attn_drop: Option<Dropout>,
}

/// What one block keeps for its backward pass.
pub(crate) struct BlockCache {
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    a1: Vec<f32>,
    qkv: Vec<f32>,
    /// Chain blocks' memory rows at this layer (`[reads_total, 2d]`).
    mem: Vec<f32>,
    probs: Vec<f32>,
    ctx: Vec<f32>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
    a2: Vec<f32>,
    hpre: Vec<f32>,
    hact: Vec<f32>,
}

impl BlockCache {
    fn take(s: &StepCtx) -> Self {
        let (n, d, ff, pool) = (s.packed.n, s.shape.d, s.d_ff, s.pool);
        Self {
            xhat1: pool.take(n * d),
            rstd1: pool.take(n),
            a1: pool.take(n * d),
            qkv: pool.take(n * 3 * d),
            mem: pool.take(s.packed.reads_total * 2 * d),
            probs: pool.take(s.packed.probs_total),
            ctx: pool.take(n * d),
            xhat2: pool.take(n * d),
            rstd2: pool.take(n),
            a2: pool.take(n * d),
            hpre: pool.take(n * ff),
            hact: pool.take(n * ff),
        }
    }

    pub(crate) fn give_back(self, pool: &Pool) {
        for v in [
            self.xhat1, self.rstd1, self.a1, self.qkv, self.mem, self.probs, self.ctx, self.xhat2,
            self.rstd2, self.a2, self.hpre, self.hact,
        ] {
            pool.give(v);
        }
    }
}

/// Block `li` on `x [n, d]` in place; `o [n, d]` is scratch.
pub(crate) fn forward(
    s: &StepCtx,
    li: usize,
    w: &LayerParts<&[f32]>,
    x: &mut [f32],
    o: &mut [f32],
) -> BlockCache {
    let mut c = BlockCache::take(s);
    let keep1 = NormCache {
        xhat: &mut c.xhat1,
        rstd: &mut c.rstd1,
    };
    norm_forward(x, (w.ln1_g, w.ln1_b), &mut c.a1, keep1);
    linear_forward(&c.a1, w.qkv_w, w.qkv_b, &mut c.qkv);
    let site = s.attn_drop.map(|dr| dr.site(site_attn(li)));
    let qkv = (&c.qkv[..], &mut c.mem[..]);
    attention::forward_packed(s.shape, s.packed, qkv, (&mut c.ctx, &mut c.probs), site);
    linear_forward(&c.ctx, w.out_w, w.out_b, o);
    if let Some(dr) = s.drop {
        dr.site(site_resid(li)).apply(o);
    }
    add_residual(x, o);

    let keep2 = NormCache {
        xhat: &mut c.xhat2,
        rstd: &mut c.rstd2,
    };
    norm_forward(x, (w.ln2_g, w.ln2_b), &mut c.a2, keep2);
    linear_forward(&c.a2, w.fc_in_w, w.fc_in_b, &mut c.hpre);
    gelu(&c.hpre, &mut c.hact);
    linear_forward(&c.hact, w.fc_out_w, w.fc_out_b, o);
    if let Some(dr) = s.drop {
        dr.site(site_mlp(li)).apply(o);
    }
    add_residual(x, o);
    c
}

/// Scratch of a block's backward pass, reused by every block.
pub(crate) struct BackwardScratch {
    dbuf: Vec<f32>,
    dh: Vec<f32>,
    dqkv: Vec<f32>,
    dmem: Vec<f32>,
    dctx: Vec<f32>,
}

impl BackwardScratch {
    pub(crate) fn take(s: &StepCtx) -> Self {
        let (n, d, pool) = (s.packed.n, s.shape.d, s.pool);
        Self {
            dbuf: pool.take(n * d),
            dh: pool.take(n * s.d_ff),
            dqkv: pool.take(n * 3 * d),
            dmem: pool.take(s.packed.reads_total * 2 * d),
            dctx: pool.take(n * d),
        }
    }

    pub(crate) fn give_back(self, pool: &Pool) {
        for v in [self.dbuf, self.dh, self.dqkv, self.dmem, self.dctx] {
            pool.give(v);
        }
    }
}

/// Backward of block `li`: `dx` holds the gradient of the block's output and becomes that of
/// its input; the block's parameter gradients go into `g`.
pub(crate) fn backward(
    s: &StepCtx,
    li: usize,
    (w, g): (&LayerParts<&[f32]>, &mut LayerParts<&mut [f32]>),
    c: &BlockCache,
    dx: &mut [f32],
    t: &mut BackwardScratch,
) {
    // MLP branch: dx is the gradient of the block's output.
    t.dbuf.copy_from_slice(dx);
    if let Some(dr) = s.drop {
        dr.site(site_mlp(li)).apply(&mut t.dbuf);
    }
    let gw = (&mut *g.fc_out_w, &mut *g.fc_out_b);
    linear_backward(&c.hact, &t.dbuf, w.fc_out_w, gw, Some((&mut t.dh, false)));
    gelu_backward(&c.hpre, &mut t.dh);
    let gw = (&mut *g.fc_in_w, &mut *g.fc_in_b);
    linear_backward(&c.a2, &t.dh, w.fc_in_w, gw, Some((&mut t.dbuf, false)));
    let gn = (&mut *g.ln2_g, &mut *g.ln2_b);
    norm_backward(&t.dbuf, (&c.xhat2, &c.rstd2), w.ln2_g, gn, dx);

    // Attention branch: dx is now the gradient of the block's midpoint.
    t.dbuf.copy_from_slice(dx);
    if let Some(dr) = s.drop {
        dr.site(site_resid(li)).apply(&mut t.dbuf);
    }
    let gw = (&mut *g.out_w, &mut *g.out_b);
    linear_backward(&c.ctx, &t.dbuf, w.out_w, gw, Some((&mut t.dctx, false)));
    let site = s.attn_drop.map(|dr| dr.site(site_attn(li)));
    let saved = (&c.qkv[..], &c.mem[..], &c.probs[..]);
    let grads = (&mut t.dqkv[..], &mut t.dmem[..]);
    attention::backward_packed(s.shape, s.packed, saved, &t.dctx, grads, site);
    let gw = (&mut *g.qkv_w, &mut *g.qkv_b);
    linear_backward(&c.a1, &t.dqkv, w.qkv_w, gw, Some((&mut t.dbuf, false)));
    let gn = (&mut *g.ln1_g, &mut *g.ln1_b);
    norm_backward(&t.dbuf, (&c.xhat1, &c.rstd1), w.ln1_g, gn, dx);
}

/// A decoder row's scratch for one token through a block.
pub(crate) struct DecodeScratch {
    pub h: Vec<f32>,
    pub xhat: Vec<f32>,
    pub qkv: Vec<f32>,
    pub attn: Vec<f32>,
    pub scores: Vec<f32>,
    pub hidden: Vec<f32>,
    pub hidden_act: Vec<f32>,
    /// Which cached rows the token attends to, when `masked` (else all of `0..=pos`).
    pub seen: Vec<bool>,
    pub masked: bool,
}

impl DecodeScratch {
    pub(crate) fn new(d: usize, d_ff: usize, max_len: usize) -> Self {
        Self {
            h: vec![0.0; d],
            xhat: vec![0.0; d],
            qkv: vec![0.0; 3 * d],
            attn: vec![0.0; d],
            scores: vec![0.0; max_len],
            hidden: vec![0.0; d_ff],
            hidden_act: vec![0.0; d_ff],
            seen: vec![true; max_len],
            masked: false,
        }
    }
}

/// [`forward`] of one token `x [d]` at position `pos` of a row whose earlier keys and values
/// sit in `keys` / `values` (`[max_len, d]`; this token's are written at `pos`). With
/// `output` false only the keys and values are computed (the last layer's output of a token
/// feeds nothing but the heads). The token sees the rows `t.seen` marks when `t.masked`.
pub(crate) fn decode(
    shape: Shape,
    w: &LayerParts<&[f32]>,
    (keys, values): (&mut [f32], &mut [f32]),
    pos: usize,
    x: &mut [f32],
    (t, output): (&mut DecodeScratch, bool),
) {
    let d = shape.d;
    norm_decode(x, (w.ln1_g, w.ln1_b), &mut t.h, &mut t.xhat);
    linear_decode(&t.h, w.qkv_w, w.qkv_b, &mut t.qkv);
    keys[pos * d..(pos + 1) * d].copy_from_slice(&t.qkv[d..2 * d]);
    values[pos * d..(pos + 1) * d].copy_from_slice(&t.qkv[2 * d..3 * d]);
    if !output {
        return;
    }
    let cached = (pos + 1) * d;
    let q = &t.qkv[..d];
    attention::decode(
        shape,
        q,
        &keys[..cached],
        &values[..cached],
        t.masked.then(|| &t.seen[..=pos]),
        &mut t.scores,
        &mut t.attn,
    );
    linear_decode(&t.attn, w.out_w, w.out_b, &mut t.h);
    add_residual_decode(x, &t.h);

    norm_decode(x, (w.ln2_g, w.ln2_b), &mut t.h, &mut t.xhat);
    linear_decode(&t.h, w.fc_in_w, w.fc_in_b, &mut t.hidden);
    gelu_chunk(&t.hidden, &mut t.hidden_act);
    linear_decode(&t.hidden_act, w.fc_out_w, w.fc_out_b, &mut t.h);
    add_residual_decode(x, &t.h);
}
