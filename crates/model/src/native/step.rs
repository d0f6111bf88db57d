//! One training (or evaluation) step of [`NativeNet`]: pack the batch, run the layers
//! forward, masked cross-entropy, then the layers backward into the flat gradient.

use ccad_core::kernels::dropout::Dropout;
use ccad_core::tokens::TokenBatch;

use super::attention::Shape;
use super::batch::{Packed, pack};
use super::block::{self, BackwardScratch, SITE_EMBED, StepCtx};
use super::{NativeNet, embedding, heads};
use crate::LossMetrics;

/// Forward (and, with `grads`, backward) of one batch.
pub(crate) fn train_step(
    net: &NativeNet,
    batch: &TokenBatch,
    seed: Option<u64>,
    grads: Option<&mut [f32]>,
) -> LossMetrics {
    let c = &net.config;
    let p = pack(c, batch);
    let n = p.n;
    let d = c.d_model;
    let type_weight = c.type_loss_weight as f32;
    if n == 0 {
        // No real token: nothing is labelled, the loss is 0 (as burn's masked mean) and so is
        // every gradient.
        if let Some(g) = grads {
            g.fill(0.0);
        }
        return heads::metrics(0.0, 0.0, 0.0, 0.0, 0, 0, type_weight);
    }
    let w = net.weights();
    let s = step_ctx(net, &p, seed);
    let pool = s.pool;

    let mut x = pool.take(n * d);
    embedding::forward(&w, &w.kind_table(), &p, &mut x);
    if let Some(dr) = s.drop {
        dr.site(SITE_EMBED).apply(&mut x);
    }
    let mut o = pool.take(n * d);
    let caches: Vec<_> = (w.layers.iter().enumerate())
        .map(|(li, lw)| block::forward(&s, li, lw, &mut x, &mut o))
        .collect();
    let out = heads::forward(&w, &x, pool);

    let metrics = match grads {
        None => heads::loss(&out, &p, type_weight),
        Some(g) => {
            g.fill(0.0);
            let mut g = net.layout.grads(g);
            let mut dx = pool.take(n * d);
            let m = heads::loss_backward((&w, &mut g), &out, &p, (type_weight, pool), &mut dx);
            let mut scratch = BackwardScratch::take(&s);
            let layers = w.layers.iter().zip(g.layers.iter_mut()).zip(&caches);
            for (li, ((lw, lg), lc)) in layers.enumerate().rev() {
                block::backward(&s, li, (lw, lg), lc, &mut dx, &mut scratch);
            }
            if let Some(dr) = s.drop {
                dr.site(SITE_EMBED).apply(&mut dx);
            }
            embedding::backward(&mut g, &p, &dx);
            scratch.give_back(pool);
            pool.give(dx);
            m
        }
    };
    for c in caches {
        c.give_back(pool);
    }
    out.give_back(pool);
    pool.give(x);
    pool.give(o);
    metrics
}

/// Action logits `[n, n_actions]` at every real token of `batch`, packed (sequence by
/// sequence, padding dropped), in inference mode.
pub(crate) fn action_logits(net: &NativeNet, batch: &TokenBatch) -> Vec<f32> {
    let c = &net.config;
    let p = pack(c, batch);
    let (n, d) = (p.n, c.d_model);
    let w = net.weights();
    let s = step_ctx(net, &p, None);
    let pool = s.pool;
    let mut x = pool.take(n * d);
    embedding::forward(&w, &w.kind_table(), &p, &mut x);
    let mut o = pool.take(n * d);
    for (li, lw) in w.layers.iter().enumerate() {
        block::forward(&s, li, lw, &mut x, &mut o).give_back(pool);
    }
    let out = heads::forward(&w, &x, pool);
    let logits = out.action_logits().to_vec();
    out.give_back(pool);
    pool.give(x);
    pool.give(o);
    logits
}

/// The blocks' shared inputs for `packed`; `seed` draws dropout (`None`: inference mode).
fn step_ctx<'a>(net: &'a NativeNet, packed: &'a Packed, seed: Option<u64>) -> StepCtx<'a> {
    let c = &net.config;
    StepCtx {
        shape: Shape {
            d: c.d_model,
            heads: c.n_heads,
        },
        d_ff: c.d_ff,
        packed,
        pool: &net.pool,
        drop: Dropout::new(c.dropout, seed),
        attn_drop: Dropout::new(c.attention_dropout, seed),
    }
}
