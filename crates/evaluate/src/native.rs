//! A plain-Rust copy of [`AdModel`]'s inference for CPU rollouts, with its own key/value cache.
//!
//! Why: evaluation appends one or two tokens per environment per step. Through burn every
//! append is a few hundred small tensor operations, and their fixed cost, not arithmetic,
//! sets the speed (about 1 000 env-steps/s for 8 environments on 2 cores). Here one token is a
//! handful of matrix-vector products over weights copied once from the model (about 0.3 M
//! multiply-adds per token at the default size), and rows run in parallel.
//!
//! The computation is the model's (DESIGN §6; `crates/model/src/model.rs`): token embedding
//! (transition Linear, query-state embedding, token-type embedding plus the `<c>`/`</c>`
//! embeddings, position embedding), pre-norm blocks `x + attn(ln(x))`, `x + mlp(ln(x))` with
//! erf GELU, final norm, action and token-type heads. Weights come through
//! [`model::native::NativeNet`], which reads them by parameter name, so a change of the model's
//! layout fails loudly in [`NativeModel::from_model`]; the tests
//! hold both implementations' logits against each other.

use ccad_core::tokens::token_type;
use model::native::NativeNet;
use model::{AdModel, Token};
use rayon::prelude::*;

/// Fewer tokens than this in one update run on the calling thread: an ordinary step (two
/// tokens per row, about 50 µs each) is too short to gain from waking other threads, and on a
/// busy machine waiting for them costs more than it saves. Rebuilds and large batches go
/// parallel.
const PARALLEL_TOKENS: usize = 32;

/// `burn::nn::LayerNorm`'s default epsilon, which the model uses.
const LN_EPS: f32 = 1e-5;

struct Layer {
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    /// `[d, 3d]`: query | key | value, heads side by side within each.
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
    fc_in_w: Vec<f32>,
    fc_in_b: Vec<f32>,
    fc_out_w: Vec<f32>,
    fc_out_b: Vec<f32>,
}

/// The model's weights as flat row-major `[d_in, d_out]` matrices (burn's `Linear` layout).
pub struct NativeModel {
    d: usize,
    heads: usize,
    ff: usize,
    feat_dim: usize,
    n_states: usize,
    n_actions: usize,
    max_len: usize,
    transition_w: Vec<f32>,
    transition_b: Vec<f32>,
    query: Vec<f32>,
    /// `[4, d]` by token kind: token-type embedding plus the marker's own embedding.
    kind: Vec<f32>,
    position: Vec<f32>,
    layers: Vec<Layer>,
    norm_g: Vec<f32>,
    norm_b: Vec<f32>,
    action_w: Vec<f32>,
    action_b: Vec<f32>,
    type_w: Vec<f32>,
    type_b: Vec<f32>,
}

impl NativeModel {
    /// Copy `model`'s weights, through [`NativeNet`]'s reading of the model's layout. Err names
    /// a parameter it expects and did not find (or found with another shape): the model's
    /// layout changed.
    pub fn from_model(model: &AdModel) -> Result<Self, String> {
        let net = NativeNet::from_model(model)?;
        let c = net.config();
        let (w, at) = (net.params(), net.offsets());
        let take = |offset: usize, len: usize| w[offset..offset + len].to_vec();
        let (d, ff) = (c.d_model, c.d_ff);
        let layers = at
            .layers
            .iter()
            .map(|la| Layer {
                ln1_g: take(la.ln1_g, d),
                ln1_b: take(la.ln1_b, d),
                qkv_w: take(la.qkv_w, d * 3 * d),
                qkv_b: take(la.qkv_b, 3 * d),
                out_w: take(la.out_w, d * d),
                out_b: take(la.out_b, d),
                ln2_g: take(la.ln2_g, d),
                ln2_b: take(la.ln2_b, d),
                fc_in_w: take(la.fc_in_w, d * ff),
                fc_in_b: take(la.fc_in_b, ff),
                fc_out_w: take(la.fc_out_w, ff * d),
                fc_out_b: take(la.fc_out_b, d),
            })
            .collect();
        Ok(Self {
            d,
            heads: c.n_heads,
            ff,
            feat_dim: c.feat_dim,
            n_states: c.n_states,
            n_actions: c.n_actions,
            max_len: c.max_len,
            transition_w: take(at.transition_w, c.feat_dim * d),
            transition_b: take(at.transition_b, d),
            query: take(at.query, c.n_states * d),
            kind: net.kind_table(),
            position: take(at.position, c.max_len * d),
            layers,
            norm_g: take(at.norm_g, d),
            norm_b: take(at.norm_b, d),
            action_w: take(at.action_w, d * c.n_actions),
            action_b: take(at.action_b, c.n_actions),
            type_w: take(at.type_w, d * token_type::COUNT),
            type_b: take(at.type_b, token_type::COUNT),
        })
    }

    pub fn n_actions(&self) -> usize {
        self.n_actions
    }
}

/// One context's keys/values and scratch space.
struct Row {
    len: usize,
    /// Per layer `[max_len, d]`.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    scores: Vec<f32>,
    hidden: Vec<f32>,
    /// Logits after the last appended token: action then token type.
    logits: Vec<f32>,
}

/// Key/value cache of `rows` independent contexts for a [`NativeModel`].
pub struct NativeCache {
    rows: Vec<Row>,
}

impl NativeCache {
    pub fn new(m: &NativeModel, rows: usize) -> Self {
        let row = || Row {
            len: 0,
            keys: (0..m.layers.len())
                .map(|_| vec![0.0; m.max_len * m.d])
                .collect(),
            values: (0..m.layers.len())
                .map(|_| vec![0.0; m.max_len * m.d])
                .collect(),
            x: vec![0.0; m.d],
            h: vec![0.0; m.d],
            qkv: vec![0.0; 3 * m.d],
            attn: vec![0.0; m.d],
            scores: vec![0.0; m.max_len],
            hidden: vec![0.0; m.ff],
            logits: vec![0.0; m.n_actions + token_type::COUNT],
        };
        Self {
            rows: (0..rows).map(|_| row()).collect(),
        }
    }

    pub fn len(&self, row: usize) -> usize {
        self.rows[row].len
    }

    /// For each row given `Some((keep, tokens))`: forget all but its first `keep` tokens, then
    /// append `tokens` (at least one). Rows run in parallel when there is enough work. Afterwards [`Self::logits`] of
    /// those rows are the logits at their last token.
    ///
    /// # Panics
    /// If a row would exceed the model's `max_len`, or a token does not fit the model.
    pub fn update(&mut self, m: &NativeModel, work: &[Option<(usize, &[Token])>]) {
        assert_eq!(work.len(), self.rows.len(), "one entry per row");
        let run = |row: &mut Row, w: &Option<(usize, &[Token])>| {
            if let Some((keep, tokens)) = w {
                assert!(*keep <= row.len, "keep {keep} of {} tokens", row.len);
                assert!(!tokens.is_empty(), "nothing to append");
                row.len = *keep;
                for (i, t) in tokens.iter().enumerate() {
                    row.append(m, t, i + 1 == tokens.len());
                }
            }
        };
        let tokens: usize = work.iter().flatten().map(|(_, t)| t.len()).sum();
        if tokens >= PARALLEL_TOKENS {
            self.rows
                .par_iter_mut()
                .zip(work.par_iter())
                .with_max_len(1)
                .for_each(|(row, w)| run(row, w));
        } else {
            self.rows
                .iter_mut()
                .zip(work)
                .for_each(|(row, w)| run(row, w));
        }
    }

    /// `(action, token_type)` logits at a row's last appended token.
    pub fn logits(&self, row: usize, n_actions: usize) -> (&[f32], &[f32]) {
        self.rows[row].logits.split_at(n_actions)
    }
}

impl Row {
    /// Run one token through the model at position `len`, storing its keys/values; compute
    /// the heads only when `heads` (the caller reads the last token's logits alone).
    ///
    /// The default build targets baseline x86-64 (4-wide SSE2); where the CPU has AVX2 the same
    /// code is compiled 8 wide. Neither fuses multiply-adds, so both give the same numbers.
    fn append(&mut self, m: &NativeModel, token: &Token, heads: bool) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, the only feature `append_avx2` is compiled for.
            return unsafe { self.append_avx2(m, token, heads) };
        }
        self.append_impl(m, token, heads)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn append_avx2(&mut self, m: &NativeModel, token: &Token, heads: bool) {
        self.append_impl(m, token, heads)
    }

    #[inline(always)]
    fn append_impl(&mut self, m: &NativeModel, token: &Token, heads: bool) {
        let (d, pos) = (m.d, self.len);
        assert!(
            pos < m.max_len,
            "context longer than the model's max_len {}",
            m.max_len
        );
        // Embedding.
        let kind = token.kind() as usize;
        self.x.copy_from_slice(&m.kind[kind * d..(kind + 1) * d]);
        add(&mut self.x, &m.position[pos * d..(pos + 1) * d]);
        match token {
            Token::Transition(f) => {
                assert_eq!(
                    f.len(),
                    m.feat_dim,
                    "transition features vs the model's feat_dim"
                );
                matvec_add(f, &m.transition_w, &m.transition_b, &mut self.h);
                add(&mut self.x, &self.h);
            }
            Token::Query(s) => {
                assert!(
                    *s < m.n_states,
                    "query state {s} outside the model's {} states",
                    m.n_states
                );
                add(&mut self.x, &m.query[s * d..(s + 1) * d]);
            }
            Token::Open | Token::Close => {}
        }

        let (heads_n, dh) = (m.heads, d / m.heads);
        let scale = 1.0 / (dh as f32).sqrt();
        for (l, layer) in m.layers.iter().enumerate() {
            layer_norm(&self.x, &layer.ln1_g, &layer.ln1_b, &mut self.h);
            matvec_add(&self.h, &layer.qkv_w, &layer.qkv_b, &mut self.qkv);
            self.keys[l][pos * d..(pos + 1) * d].copy_from_slice(&self.qkv[d..2 * d]);
            self.values[l][pos * d..(pos + 1) * d].copy_from_slice(&self.qkv[2 * d..3 * d]);
            if !heads && l + 1 == m.layers.len() {
                // Only this token's keys/values outlive it; the last layer's output feeds
                // nothing but the heads.
                break;
            }
            let (keys, values) = (&self.keys[l], &self.values[l]);
            for hd in 0..heads_n {
                let q = &self.qkv[hd * dh..(hd + 1) * dh];
                let scores = &mut self.scores[..=pos];
                for (s, score) in scores.iter_mut().enumerate() {
                    let k = &keys[s * d + hd * dh..s * d + (hd + 1) * dh];
                    *score = dot(q, k) * scale;
                }
                softmax(scores);
                let out = &mut self.attn[hd * dh..(hd + 1) * dh];
                out.fill(0.0);
                for (s, &w) in scores.iter().enumerate() {
                    axpy(w, &values[s * d + hd * dh..s * d + (hd + 1) * dh], out);
                }
            }
            matvec_add(&self.attn, &layer.out_w, &layer.out_b, &mut self.h);
            add(&mut self.x, &self.h);

            layer_norm(&self.x, &layer.ln2_g, &layer.ln2_b, &mut self.h);
            matvec_add(&self.h, &layer.fc_in_w, &layer.fc_in_b, &mut self.hidden);
            self.hidden.iter_mut().for_each(|v| *v = gelu(*v));
            matvec_add(&self.hidden, &layer.fc_out_w, &layer.fc_out_b, &mut self.h);
            add(&mut self.x, &self.h);
        }
        self.len += 1;
        if heads {
            layer_norm(&self.x, &m.norm_g, &m.norm_b, &mut self.h);
            let (a, t) = self.logits.split_at_mut(m.n_actions);
            matvec_add(&self.h, &m.action_w, &m.action_b, a);
            matvec_add(&self.h, &m.type_w, &m.type_b, t);
        }
    }
}

/// `out = x · w + b` with `w` row-major `[x.len(), out.len()]`: rows of `w` scaled and summed,
/// so the inner loop runs over contiguous memory.
#[inline(always)]
fn matvec_add(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
    let n = out.len();
    debug_assert_eq!(w.len(), x.len() * n);
    out.copy_from_slice(b);
    for (xi, row) in x.iter().zip(w.chunks_exact(n)) {
        axpy(*xi, row, out);
    }
}

#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

#[inline(always)]
fn add(y: &mut [f32], x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += x);
}

/// Eight partial sums, so the loop vectorises (a single running sum fixes the order).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    v.iter_mut().for_each(|x| *x *= inv);
}

/// Biased variance, as burn's `LayerNorm`.
#[inline(always)]
fn layer_norm(x: &[f32], g: &[f32], b: &[f32], out: &mut [f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + LN_EPS).sqrt();
    for i in 0..x.len() {
        out[i] = (x[i] - mean) * inv * g[i] + b[i];
    }
}

/// Exact GELU `x/2 · (1 + erf(x/√2))`, as burn's `gelu`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2) as f32)
}

/// The error function to about 1e-7 (Abramowitz & Stegun 7.1.26 is 1.5e-7; this is the
/// complementary-error-function fit of Numerical Recipes, `erfc` with relative error
/// < 1.2e-7 everywhere), in f64.
#[inline(always)]
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu_values() {
        // erf(0.5) = 0.5204998778, erf(1) = 0.8427007929, erf(2) = 0.9953222650 (tables).
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7);
        assert!((erf(1.0) - 0.842_700_792_9).abs() < 2e-7);
        assert!((erf(-2.0) + 0.995_322_265_0).abs() < 2e-7);
        assert!(erf(0.0).abs() < 2e-7);
        // gelu(1) = 0.5 (1 + erf(0.7071)) = 0.5 · 1.6826895 = 0.8413447.
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
    }

    #[test]
    fn layer_norm_and_softmax_values() {
        // x = [1, 2, 3, 6]: mean 3, biased variance (4 + 1 + 0 + 9)/4 = 3.5.
        let mut out = [0.0; 4];
        layer_norm(
            &[1.0, 2.0, 3.0, 6.0],
            &[1.0, 1.0, 2.0, 1.0],
            &[0.0, 0.5, 0.0, 0.0],
            &mut out,
        );
        let s = (3.5f32 + 1e-5).sqrt();
        assert!((out[0] + 2.0 / s).abs() < 1e-6);
        assert!((out[1] - (0.5 - 1.0 / s)).abs() < 1e-6);
        assert_eq!(out[2], 0.0);
        assert!((out[3] - 3.0 / s).abs() < 1e-6);
        // softmax [0, ln 3] = [1/4, 3/4].
        let mut v = [0.0, 3f32.ln()];
        softmax(&mut v);
        assert!((v[0] - 0.25).abs() < 1e-6 && (v[1] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn matvec_uses_the_input_by_output_layout() {
        // x [1, 2] · w [[1, 2, 3], [4, 5, 6]] + b [0.5, 0, 0] = [9.5, 12, 15].
        let mut out = [0.0; 3];
        matvec_add(
            &[1.0, 2.0],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[0.5, 0.0, 0.0],
            &mut out,
        );
        assert_eq!(out, [9.5, 12.0, 15.0]);
    }
}
