//! One training (or evaluation) step of [`NativeNet`]: pack the batch, forward, masked
//! cross-entropy, backward into the flat gradient.

use ccad_core::tokens::{TokenBatch, token_kind, token_type, type_of_kind};
use rayon::prelude::*;

use super::attention::{self, Shape};
use ccad_core::kernels::activation::{gelu, gelu_backward};
use ccad_core::kernels::buffers::{Pool, split_lengths};
use ccad_core::kernels::dropout::Dropout;
use ccad_core::kernels::matmul::{add_bias, add_column_sums, mm, mm_nt, mm_tn};
use ccad_core::kernels::norm::{layer_norm, layer_norm_backward};
use super::{NativeNet, Offsets};
use crate::LossMetrics;

/// Dropout sites: the embedding, then per layer the attention weights, the attention
/// branch's output and the MLP's output.
const SITE_EMBED: u64 = 0;
fn site_attn(layer: usize) -> u64 {
    1 + 3 * layer as u64
}
fn site_resid(layer: usize) -> u64 {
    2 + 3 * layer as u64
}
fn site_mlp(layer: usize) -> u64 {
    3 + 3 * layer as u64
}

/// The batch's real tokens, packed back to back (padding dropped).
struct Packed {
    /// `(first row, length)` of every non-empty sequence.
    seqs: Vec<(usize, usize)>,
    /// Offset of each sequence's attention probabilities (one head-major square each).
    probs_at: Vec<usize>,
    probs_total: usize,
    n: usize,
    features: Vec<f32>,
    kinds: Vec<u8>,
    state: Vec<usize>,
    position: Vec<usize>,
    target_action: Vec<i32>,
    target_type: Vec<i32>,
}

fn pack(net: &NativeNet, b: &TokenBatch) -> Packed {
    let c = &net.config;
    let (l, f) = (b.seq_len, b.feat_dim);
    assert_eq!(
        f, c.feat_dim,
        "TokenBatch.feat_dim differs from the model's"
    );
    assert!(
        l <= c.max_len,
        "TokenBatch.seq_len exceeds the model's max_len"
    );
    assert_eq!(
        b.features.len(),
        b.batch * l * f,
        "TokenBatch.features length"
    );
    assert_eq!(b.kinds.len(), b.batch * l, "TokenBatch.kinds length");
    assert_eq!(
        b.state_index.len(),
        b.batch * l,
        "TokenBatch.state_index length"
    );
    assert_eq!(
        b.target_action.len(),
        b.batch * l,
        "TokenBatch.target_action length"
    );
    assert_eq!(
        b.target_type.len(),
        b.batch * l,
        "TokenBatch.target_type length"
    );
    assert_eq!(b.lengths.len(), b.batch, "TokenBatch.lengths length");
    let n: usize = b.lengths.iter().sum();
    let mut p = Packed {
        seqs: Vec::new(),
        probs_at: Vec::new(),
        probs_total: 0,
        n,
        features: Vec::with_capacity(n * f),
        kinds: Vec::with_capacity(n),
        state: Vec::with_capacity(n),
        position: Vec::with_capacity(n),
        target_action: Vec::with_capacity(n),
        target_type: Vec::with_capacity(n),
    };
    for (s, &len) in b.lengths.iter().enumerate() {
        assert!(len <= l, "TokenBatch.lengths[{s}] exceeds seq_len");
        let row0 = s * l;
        // Labels on padding would count in burn's loss and not here: refuse them.
        assert!(
            (row0 + len..row0 + l).all(|r| b.target_action[r] < 0 && b.target_type[r] < 0),
            "TokenBatch: a label past the sequence's length"
        );
        if len == 0 {
            continue;
        }
        p.seqs.push((p.kinds.len(), len));
        p.probs_at.push(p.probs_total);
        p.probs_total += attention::probs_len(c.n_heads, len);
        for r in row0..row0 + len {
            let kind = b.kinds[r];
            assert!(
                kind <= token_kind::QUERY,
                "TokenBatch.kinds: not a token_kind"
            );
            let state = b.state_index[r];
            assert!(
                (0..c.n_states as i32).contains(&state),
                "TokenBatch.state_index outside [0, {})",
                c.n_states
            );
            p.features
                .extend_from_slice(&b.features[r * f..(r + 1) * f]);
            p.kinds.push(kind);
            p.state.push(state as usize);
            p.position.push(r - row0);
            p.target_action.push(b.target_action[r]);
            p.target_type.push(b.target_type[r]);
        }
    }
    p
}

/// What one block keeps for its backward pass.
struct LayerCache {
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    a1: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    ctx: Vec<f32>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
    a2: Vec<f32>,
    hpre: Vec<f32>,
    hact: Vec<f32>,
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
    let (loss, hits) = match dlogits {
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
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1)),
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
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1)),
    };
    (
        (loss / denom as f64) as f32,
        (hits / denom as f64) as f32,
        count,
    )
}

/// Forward (and, with `grads`, backward) of one batch.
pub(crate) fn train_step(
    net: &NativeNet,
    batch: &TokenBatch,
    seed: Option<u64>,
    grads: Option<&mut [f32]>,
) -> LossMetrics {
    let c = &net.config;
    let at: &Offsets = &net.at;
    let w = &net.params[..];
    let (d, ff, f) = (c.d_model, c.d_ff, c.feat_dim);
    let shape = Shape {
        d,
        heads: c.n_heads,
    };
    let p = pack(net, batch);
    let n = p.n;
    let type_weight = c.type_loss_weight as f32;
    if n == 0 {
        // No real token: nothing is labelled, the loss is 0 (as burn's masked mean) and so is
        // every gradient.
        if let Some(g) = grads {
            g.fill(0.0);
        }
        return metrics(0.0, 0.0, 0.0, 0.0, 0, 0, type_weight);
    }
    let drop = Dropout::new(c.dropout, seed);
    let attn_drop = Dropout::new(c.attention_dropout, seed);

    // Embedding.
    let kinds = net.kind_table();
    let pool = &net.pool;
    let mut trans = pool.take(n * d);
    mm(
        n,
        f,
        d,
        &p.features,
        &w[at.transition_w..],
        &mut trans,
        false,
    );
    let mut x = trans;
    x.par_chunks_mut(d).enumerate().for_each(|(r, row)| {
        let kind = p.kinds[r];
        match kind {
            token_kind::TRANSITION => {
                row.iter_mut()
                    .zip(&w[at.transition_b..at.transition_b + d])
                    .for_each(|(v, b)| *v += b);
            }
            token_kind::QUERY => {
                row.copy_from_slice(&w[at.query + p.state[r] * d..][..d]);
            }
            _ => row.fill(0.0),
        }
        let kt = &kinds[kind as usize * d..][..d];
        let pos = &w[at.position + p.position[r] * d..][..d];
        for i in 0..d {
            row[i] += kt[i] + pos[i];
        }
    });
    if let Some(dr) = drop {
        dr.site(SITE_EMBED).apply(&mut x);
    }

    // Blocks.
    let mut o = pool.take(n * d);
    let mut caches: Vec<LayerCache> = Vec::with_capacity(c.n_layers);
    for (li, la) in at.layers.iter().enumerate() {
        let mut lc = LayerCache {
            xhat1: pool.take(n * d),
            rstd1: pool.take(n),
            a1: pool.take(n * d),
            qkv: pool.take(n * 3 * d),
            probs: pool.take(p.probs_total),
            ctx: pool.take(n * d),
            xhat2: pool.take(n * d),
            rstd2: pool.take(n),
            a2: pool.take(n * d),
            hpre: pool.take(n * ff),
            hact: pool.take(n * ff),
        };
        layer_norm(
            &x,
            &w[la.ln1_g..la.ln1_g + d],
            &w[la.ln1_b..la.ln1_b + d],
            &mut lc.a1,
            &mut lc.xhat1,
            &mut lc.rstd1,
        );
        mm(n, d, 3 * d, &lc.a1, &w[la.qkv_w..], &mut lc.qkv, false);
        add_bias(&mut lc.qkv, &w[la.qkv_b..la.qkv_b + 3 * d]);
        {
            let site = attn_drop.map(|dr| dr.site(site_attn(li)));
            let ctx_parts = split_lengths(
                &mut lc.ctx,
                &p.seqs.iter().map(|&(_, len)| len * d).collect::<Vec<_>>(),
            );
            let prob_parts = split_lengths(
                &mut lc.probs,
                &p.seqs
                    .iter()
                    .map(|&(_, len)| attention::probs_len(c.n_heads, len))
                    .collect::<Vec<_>>(),
            );
            let qkv = &lc.qkv;
            ctx_parts
                .into_par_iter()
                .zip(prob_parts)
                .enumerate()
                .for_each(|(s, (ctx, probs))| {
                    let (row0, len) = p.seqs[s];
                    let rows = &qkv[row0 * 3 * d..(row0 + len) * 3 * d];
                    let dr = site.map(|site| (site, p.probs_at[s] as u64));
                    attention::forward(shape, rows, ctx, probs, dr);
                });
        }
        mm(n, d, d, &lc.ctx, &w[la.out_w..], &mut o, false);
        add_bias(&mut o, &w[la.out_b..la.out_b + d]);
        if let Some(dr) = drop {
            dr.site(site_resid(li)).apply(&mut o);
        }
        x.par_iter_mut().zip(&o).for_each(|(x, o)| *x += o);
        layer_norm(
            &x,
            &w[la.ln2_g..la.ln2_g + d],
            &w[la.ln2_b..la.ln2_b + d],
            &mut lc.a2,
            &mut lc.xhat2,
            &mut lc.rstd2,
        );
        mm(n, d, ff, &lc.a2, &w[la.fc_in_w..], &mut lc.hpre, false);
        add_bias(&mut lc.hpre, &w[la.fc_in_b..la.fc_in_b + ff]);
        gelu(&lc.hpre, &mut lc.hact);
        mm(n, ff, d, &lc.hact, &w[la.fc_out_w..], &mut o, false);
        add_bias(&mut o, &w[la.fc_out_b..la.fc_out_b + d]);
        if let Some(dr) = drop {
            dr.site(site_mlp(li)).apply(&mut o);
        }
        x.par_iter_mut().zip(&o).for_each(|(x, o)| *x += o);
        caches.push(lc);
    }

    // Final norm and heads.
    let (mut xf, mut xhatf, mut rstdf) = (pool.take(n * d), pool.take(n * d), pool.take(n));
    layer_norm(
        &x,
        &w[at.norm_g..at.norm_g + d],
        &w[at.norm_b..at.norm_b + d],
        &mut xf,
        &mut xhatf,
        &mut rstdf,
    );
    let (na, nt) = (c.n_actions, token_type::COUNT);
    let mut la_ = pool.take(n * na);
    mm(n, d, na, &xf, &w[at.action_w..], &mut la_, false);
    add_bias(&mut la_, &w[at.action_b..at.action_b + na]);
    let mut lt = pool.take(n * nt);
    mm(n, d, nt, &xf, &w[at.type_w..], &mut lt, false);
    add_bias(&mut lt, &w[at.type_b..at.type_b + nt]);

    let Some(g) = grads else {
        let (action, acc_a, n_a) = cross_entropy(&la_, na, &p.target_action, None);
        let (kind, acc_t, n_t) = cross_entropy(&lt, nt, &p.target_type, None);
        give_back(pool, caches, [x, o, xf, xhatf, rstdf, la_, lt]);
        return metrics(action, kind, acc_a, acc_t, n_a, n_t, type_weight);
    };

    // Backward.
    g.fill(0.0);
    let mut dla = pool.take(n * na);
    let mut dlt = pool.take(n * nt);
    let (action, acc_a, n_a) = cross_entropy(&la_, na, &p.target_action, Some((&mut dla, 1.0)));
    let (kind, acc_t, n_t) = cross_entropy(&lt, nt, &p.target_type, Some((&mut dlt, type_weight)));
    mm_tn(
        d,
        n,
        na,
        &xf,
        &dla,
        &mut g[at.action_w..at.action_w + d * na],
        true,
    );
    add_column_sums(&dla, na, &mut g[at.action_b..at.action_b + na]);
    mm_tn(
        d,
        n,
        nt,
        &xf,
        &dlt,
        &mut g[at.type_w..at.type_w + d * nt],
        true,
    );
    add_column_sums(&dlt, nt, &mut g[at.type_b..at.type_b + nt]);
    let mut dxf = pool.take(n * d);
    mm_nt(n, na, d, &dla, &w[at.action_w..], &mut dxf, false);
    mm_nt(n, nt, d, &dlt, &w[at.type_w..], &mut dxf, true);
    let mut dx = pool.zeros(n * d);
    ln_backward_into(g, at.norm_g, at.norm_b, &dxf, &xhatf, &rstdf, w, &mut dx);

    let mut dbuf = pool.take(n * d);
    let mut dh = pool.take(n * ff);
    let mut dqkv = pool.take(n * 3 * d);
    let mut dctx = pool.take(n * d);
    for (li, (la, lc)) in at.layers.iter().zip(&caches).enumerate().rev() {
        // MLP branch: dx is the gradient of the block's output.
        dbuf.copy_from_slice(&dx);
        if let Some(dr) = drop {
            dr.site(site_mlp(li)).apply(&mut dbuf);
        }
        mm_tn(
            ff,
            n,
            d,
            &lc.hact,
            &dbuf,
            &mut g[la.fc_out_w..la.fc_out_w + ff * d],
            true,
        );
        add_column_sums(&dbuf, d, &mut g[la.fc_out_b..la.fc_out_b + d]);
        mm_nt(n, d, ff, &dbuf, &w[la.fc_out_w..], &mut dh, false);
        gelu_backward(&lc.hpre, &mut dh);
        mm_tn(
            d,
            n,
            ff,
            &lc.a2,
            &dh,
            &mut g[la.fc_in_w..la.fc_in_w + d * ff],
            true,
        );
        add_column_sums(&dh, ff, &mut g[la.fc_in_b..la.fc_in_b + ff]);
        mm_nt(n, ff, d, &dh, &w[la.fc_in_w..], &mut dbuf, false);
        ln_backward_into(
            g, la.ln2_g, la.ln2_b, &dbuf, &lc.xhat2, &lc.rstd2, w, &mut dx,
        );

        // Attention branch: dx is now the gradient of the block's midpoint.
        dbuf.copy_from_slice(&dx);
        if let Some(dr) = drop {
            dr.site(site_resid(li)).apply(&mut dbuf);
        }
        mm_tn(
            d,
            n,
            d,
            &lc.ctx,
            &dbuf,
            &mut g[la.out_w..la.out_w + d * d],
            true,
        );
        add_column_sums(&dbuf, d, &mut g[la.out_b..la.out_b + d]);
        mm_nt(n, d, d, &dbuf, &w[la.out_w..], &mut dctx, false);
        {
            let site = attn_drop.map(|dr| dr.site(site_attn(li)));
            let parts = split_lengths(
                &mut dqkv,
                &p.seqs
                    .iter()
                    .map(|&(_, len)| len * 3 * d)
                    .collect::<Vec<_>>(),
            );
            parts.into_par_iter().enumerate().for_each(|(s, dq)| {
                let (row0, len) = p.seqs[s];
                let pa = p.probs_at[s];
                let probs = &lc.probs[pa..pa + attention::probs_len(c.n_heads, len)];
                let dr = site.map(|site| (site, pa as u64));
                attention::backward(
                    shape,
                    &lc.qkv[row0 * 3 * d..(row0 + len) * 3 * d],
                    probs,
                    &dctx[row0 * d..(row0 + len) * d],
                    dq,
                    dr,
                );
            });
        }
        mm_tn(
            d,
            n,
            3 * d,
            &lc.a1,
            &dqkv,
            &mut g[la.qkv_w..la.qkv_w + d * 3 * d],
            true,
        );
        add_column_sums(&dqkv, 3 * d, &mut g[la.qkv_b..la.qkv_b + 3 * d]);
        mm_nt(n, 3 * d, d, &dqkv, &w[la.qkv_w..], &mut dbuf, false);
        ln_backward_into(
            g, la.ln1_g, la.ln1_b, &dbuf, &lc.xhat1, &lc.rstd1, w, &mut dx,
        );
    }

    // Embedding backward.
    if let Some(dr) = drop {
        dr.site(SITE_EMBED).apply(&mut dx);
    }
    // Features are zero outside transitions, so the weight gradient needs no mask.
    mm_tn(
        f,
        n,
        d,
        &p.features,
        &dx,
        &mut g[at.transition_w..at.transition_w + f * d],
        true,
    );
    for r in 0..n {
        let row = &dx[r * d..(r + 1) * d];
        let kind = p.kinds[r];
        let mut add = |off: usize| {
            g[off..off + d]
                .iter_mut()
                .zip(row)
                .for_each(|(g, v)| *g += v);
        };
        match kind {
            token_kind::TRANSITION => add(at.transition_b),
            token_kind::QUERY => add(at.query + p.state[r] * d),
            token_kind::OPEN => add(at.open),
            token_kind::CLOSE => add(at.close),
            _ => {}
        }
        add(at.token_type + type_of_kind(kind) as usize * d);
        add(at.position + p.position[r] * d);
    }
    give_back(pool, caches, [x, o, xf, xhatf, rstdf, la_, lt]);
    for v in [dla, dlt, dxf, dx, dbuf, dh, dqkv, dctx] {
        pool.give(v);
    }
    metrics(action, kind, acc_a, acc_t, n_a, n_t, type_weight)
}

fn give_back<const N: usize>(pool: &Pool, caches: Vec<LayerCache>, more: [Vec<f32>; N]) {
    for c in caches {
        for v in [
            c.xhat1, c.rstd1, c.a1, c.qkv, c.probs, c.ctx, c.xhat2, c.rstd2, c.a2, c.hpre, c.hact,
        ] {
            pool.give(v);
        }
    }
    for v in more {
        pool.give(v);
    }
}

/// Layer-norm backward adding `dx` into `dx_acc` and the affine gradients into `g`.
#[allow(clippy::too_many_arguments)]
fn ln_backward_into(
    g: &mut [f32],
    gamma_at: usize,
    beta_at: usize,
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
    dx_acc: &mut [f32],
) {
    // Rows are never empty here (`train_step` returns early without tokens).
    let d = dy.len() / rstd.len();
    let (mut dgam, mut dbet) = (vec![0.0f32; d], vec![0.0f32; d]);
    layer_norm_backward(
        dy,
        xhat,
        rstd,
        &w[gamma_at..gamma_at + d],
        dx_acc,
        &mut dgam,
        &mut dbet,
    );
    g[gamma_at..gamma_at + d]
        .iter_mut()
        .zip(&dgam)
        .for_each(|(g, v)| *g += v);
    g[beta_at..beta_at + d]
        .iter_mut()
        .zip(&dbet)
        .for_each(|(g, v)| *g += v);
}

fn metrics(
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
