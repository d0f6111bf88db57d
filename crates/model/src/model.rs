//! The token-type transformer (DESIGN §6): token layout → causal pre-norm encoder → two heads.
//!
//! Parts, in the order data flows: [`AdModel::embed`] (transition Linear, query-state embedding,
//! `<c>`/`</c>` markers, token-type and position embeddings), [`Block`] × `n_layers`
//! ([`Attention`] + MLP), final norm, action and token-type heads. Training and cached
//! inference share [`AdModel::encode`]: each layer hands its fresh keys/values to a hook that
//! either returns them unchanged (full pass) or writes them into a cache and returns the cache
//! ([`crate::KvCache`]).

use burn::module::{Module, Param};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig,
    Linear, LinearConfig,
};
use burn::tensor::activation::{gelu, log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ccad_core::tokens::{
    NO_SLOT, TokenBatch, has_features, slot_table, token_kind, token_type, type_of_kind,
};

use crate::AdModelConfig;
use crate::bias::attention_bias;
use ccad_core::context::Visibility;

/// Score of a masked attention slot. Finite on purpose: `exp(MASKED - max)` is exactly 0 for
/// any real score, and a row with every slot masked (a padding query) stays finite instead of NaN.
pub(crate) const MASKED: f32 = -1.0e9;

/// Standard deviation of the embedding tables at initialisation (GPT-2's choice).
const EMBED_STD: f64 = 0.02;

/// Multi-head self-attention with a fused query/key/value projection.
#[derive(Module, Debug)]
pub(crate) struct Attention {
    qkv: Linear,
    out: Linear,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    n_heads: usize,
}

impl Attention {
    fn new(c: &AdModelConfig, device: &Device) -> Self {
        Self {
            qkv: LinearConfig::new(c.d_model, 3 * c.d_model).init(device),
            out: LinearConfig::new(c.d_model, c.d_model).init(device),
            attn_dropout: DropoutConfig::new(c.attention_dropout).init(),
            resid_dropout: DropoutConfig::new(c.dropout).init(),
            n_heads: c.n_heads,
        }
    }

    /// `[B, L, d]` → query, key, value `[B, H, L, d/H]`; the query is pre-scaled by
    /// `1/sqrt(d/H)` (cheaper than scaling the `[L, L]` scores).
    fn project(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [b, l, d] = x.dims();
        let dh = d / self.n_heads;
        let qkv = self.qkv.forward(x);
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i * d, d)
                .reshape([b, l, self.n_heads, dh])
                .swap_dims(1, 2)
        };
        let q = split(0).mul_scalar(1.0 / (dh as f64).sqrt());
        (q, split(1), split(2))
    }

    /// `softmax(q kᵀ + bias) v`, heads merged, output projection. `bias` broadcasts to
    /// `[B, H, Lq, Lk]` and holds 0 (visible) or [`MASKED`].
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<3> {
        let [b, h, lq, dh] = q.dims();
        let scores = q.matmul(k.swap_dims(2, 3)) + bias;
        let weights = self.attn_dropout.forward(softmax(scores, 3));
        let context = weights.matmul(v).swap_dims(1, 2).reshape([b, lq, h * dh]);
        self.resid_dropout.forward(self.out.forward(context))
    }
}

/// Pre-norm transformer block: `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Debug)]
pub(crate) struct Block {
    ln_attn: LayerNorm,
    attn: Attention,
    ln_mlp: LayerNorm,
    fc_in: Linear,
    fc_out: Linear,
    mlp_dropout: Dropout,
}

impl Block {
    fn new(c: &AdModelConfig, device: &Device) -> Self {
        Self {
            ln_attn: LayerNormConfig::new(c.d_model).init(device),
            attn: Attention::new(c, device),
            ln_mlp: LayerNormConfig::new(c.d_model).init(device),
            fc_in: LinearConfig::new(c.d_model, c.d_ff).init(device),
            fc_out: LinearConfig::new(c.d_ff, c.d_model).init(device),
            mlp_dropout: DropoutConfig::new(c.dropout).init(),
        }
    }

    /// `kv` receives this layer's keys/values for the new positions `[B, H, L, d/H]` and
    /// returns the keys/values to attend over (the same, or a cache that now holds them).
    fn forward(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        kv: impl FnOnce(Tensor<4>, Tensor<4>) -> (Tensor<4>, Tensor<4>),
    ) -> Tensor<3> {
        let (q, k, v) = self.attn.project(self.ln_attn.forward(x.clone()));
        let (k, v) = kv(k, v);
        let x = x + self.attn.attend(q, k, v, bias);
        let h = self
            .fc_out
            .forward(gelu(self.fc_in.forward(self.ln_mlp.forward(x.clone()))));
        x + self.mlp_dropout.forward(h)
    }
}

/// The compressed-context AD transformer. Build it with [`AdModelConfig::init`] or
/// [`AdModel::load`]; train on an autodiff device, infer after [`Module::valid`].
#[derive(Module, Debug)]
pub struct AdModel {
    /// Transition features `concat(s, one_hot(a), r, s')` → `d_model`.
    transition: Linear,
    /// Query `q(s_t)`: embedding of the discrete state index.
    query_state: Embedding,
    /// Learned `<c>` embedding.
    open: Param<Tensor<1>>,
    /// Learned `</c>` embedding.
    close: Param<Tensor<1>>,
    /// Token type (0 transition/query, 1 `<c>`, 2 `</c>`).
    token_type: Embedding,
    /// Learned position embedding, `max_len` rows.
    position: Embedding,
    /// Memory and kept tokens' slot and region-index embeddings
    /// (`ccad_core::tokens::slot_table`); none in a model without slots.
    slot: Option<Embedding>,
    embed_dropout: Dropout,
    blocks: Vec<Block>,
    norm: LayerNorm,
    action_head: Linear,
    type_head: Linear,
    #[module(skip)]
    config: AdModelConfig,
}

/// Per-position logits of a batch: `action [B, L, n_actions]`, `token_type [B, L, 3]`.
/// Positions past a sequence's length hold meaningless values.
#[derive(Debug, Clone)]
pub struct Logits<const D: usize> {
    pub action: Tensor<D>,
    pub token_type: Tensor<D>,
}

/// One batch's loss: `total` carries the autodiff graph; the parts are detached and read
/// from the device in one transfer by [`Loss::metrics`] (only when they are logged).
#[derive(Debug, Clone)]
pub struct Loss {
    /// `CE(action) + type_loss_weight · CE(token type)`, shape `[1]`.
    pub total: Tensor<1>,
    /// `[total, action, type, acc_action, acc_type, n_action, n_type]`, detached.
    parts: Tensor<1>,
}

/// Host copies of a [`Loss`]'s parts. Losses and accuracies are means over the labelled
/// positions of each head (0 when a head has no label in the batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossMetrics {
    pub total: f32,
    pub action: f32,
    pub token_type: f32,
    pub acc_action: f32,
    pub acc_token_type: f32,
    /// Positions with an action label.
    pub n_action: usize,
    /// Positions with a token-type label.
    pub n_token_type: usize,
}

impl Loss {
    /// Read the parts (one device → host transfer).
    pub fn metrics(&self) -> LossMetrics {
        let v = self
            .parts
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .expect("loss parts are f32");
        LossMetrics {
            total: v[0],
            action: v[1],
            token_type: v[2],
            acc_action: v[3],
            acc_token_type: v[4],
            n_action: v[5].round() as usize,
            n_token_type: v[6].round() as usize,
        }
    }
}

/// A [`TokenBatch`]'s inputs on the device: one tensor per buffer, no per-token work.
pub(crate) struct TokenTensors {
    features: Tensor<3>,
    kinds: Tensor<2, Int>,
    state_index: Tensor<2, Int>,
    /// Slot-table rows and masks `[B, L, 1]` of slot and region embeddings, when any token
    /// has a slot.
    slots: Option<[(Tensor<2, Int>, Tensor<3>); 2]>,
}

impl TokenTensors {
    pub(crate) fn new(batch: &TokenBatch, config: &AdModelConfig, device: &Device) -> Self {
        let (b, l, f) = (batch.batch, batch.seq_len, batch.feat_dim);
        assert_eq!(
            f, config.feat_dim,
            "TokenBatch.feat_dim {f} differs from the model's feat_dim {}",
            config.feat_dim
        );
        // Chains and slot tokens have explicit positions, checked where they are embedded.
        let explicit = batch.has_slots() || crate::chain::chains(batch).is_some();
        assert!(
            explicit || l <= config.max_len,
            "TokenBatch.seq_len {l} exceeds the model's max_len {}",
            config.max_len
        );
        assert_eq!(
            batch.features.len(),
            b * l * f,
            "TokenBatch.features length"
        );
        assert_eq!(batch.kinds.len(), b * l, "TokenBatch.kinds length");
        assert_eq!(
            batch.state_index.len(),
            b * l,
            "TokenBatch.state_index length"
        );
        // An out-of-range index would read outside the embedding table on some backends.
        let n_states = config.n_states as i32;
        assert!(
            batch
                .state_index
                .iter()
                .all(|&s| (0..n_states).contains(&s)),
            "TokenBatch.state_index outside [0, {n_states})"
        );
        let kinds_known = config.kinds();
        assert!(
            batch.kinds.iter().all(|&k| (k as usize) < kinds_known),
            "TokenBatch.kinds holds a value that is not a token_kind of this model"
        );
        assert_eq!(batch.slot.len(), b * l, "TokenBatch.slot length");
        assert_eq!(batch.region.len(), b * l, "TokenBatch.region length");
        assert!(
            batch
                .slot
                .iter()
                .all(|&s| s == NO_SLOT || (0..config.slots as i32).contains(&s)),
            "TokenBatch.slot outside the model's {} slots",
            config.slots
        );
        let kinds: Vec<i32> = batch.kinds.iter().map(|&k| k as i32).collect();
        let slots = batch.has_slots().then(|| {
            let table = |v: &[i32], row: fn(usize) -> usize| {
                let rows: Vec<i32> = v
                    .iter()
                    .map(|&s| if s < 0 { 0 } else { row(s as usize) as i32 })
                    .collect();
                let mask: Vec<f32> = v.iter().map(|&s| (s >= 0) as u8 as f32).collect();
                (
                    Tensor::<2, Int>::from_data(TensorData::new(rows, [b, l]), device),
                    Tensor::<3>::from_data(TensorData::new(mask, [b, l, 1]), device),
                )
            };
            [
                table(&batch.slot, slot_table::slot_row),
                table(&batch.region, slot_table::region_row),
            ]
        });
        Self {
            features: Tensor::from_data(TensorData::new(batch.features.clone(), [b, l, f]), device),
            kinds: Tensor::from_data(TensorData::new(kinds, [b, l]), device),
            state_index: Tensor::from_data(
                TensorData::new(batch.state_index.clone(), [b, l]),
                device,
            ),
            slots,
        }
    }
}

impl AdModel {
    pub(crate) fn new(c: &AdModelConfig, device: &Device) -> Self {
        let embed = |n: usize| {
            EmbeddingConfig::new(n, c.d_model)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: EMBED_STD,
                })
                .init(device)
        };
        let marker = || {
            Initializer::Normal {
                mean: 0.0,
                std: EMBED_STD,
            }
            .init([c.d_model], device)
        };
        Self {
            transition: LinearConfig::new(c.feat_dim, c.d_model).init(device),
            query_state: embed(c.n_states),
            open: marker(),
            close: marker(),
            token_type: embed(c.token_types),
            position: embed(c.max_len),
            slot: (c.slots > 0).then(|| embed(slot_table::rows(c.slots))),
            embed_dropout: DropoutConfig::new(c.dropout).init(),
            blocks: (0..c.n_layers).map(|_| Block::new(c, device)).collect(),
            norm: LayerNormConfig::new(c.d_model).init(device),
            action_head: LinearConfig::new(c.d_model, c.n_actions).init(device),
            type_head: LinearConfig::new(c.d_model, token_type::COUNT).init(device),
            config: c.clone(),
        }
    }

    /// The config this model was built from.
    pub fn config(&self) -> &AdModelConfig {
        &self.config
    }

    /// Per-position logits of a padded batch (tensors are created on `device`, which must be
    /// the model's).
    pub fn forward(&self, batch: &TokenBatch, device: &Device) -> Logits<3> {
        let h = self.hidden(batch, device);
        Logits {
            action: self.action_head.forward(h.clone()),
            token_type: self.type_head.forward(h),
        }
    }

    /// `CE(action) + type_loss_weight · CE(token type)`, each averaged over its labelled
    /// positions (label != `IGNORE`); also both heads' accuracies.
    pub fn loss(&self, batch: &TokenBatch, device: &Device) -> Loss {
        let n = batch.batch * batch.seq_len;
        assert_eq!(
            batch.target_action.len(),
            n,
            "TokenBatch.target_action length"
        );
        assert_eq!(batch.target_type.len(), n, "TokenBatch.target_type length");
        let logits = self.forward(batch, device);
        let labels =
            |v: &Vec<i32>| Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [n]), device);
        let action = masked_cross_entropy(
            logits.action.reshape([n, self.config.n_actions]),
            labels(&batch.target_action),
        );
        let kind = masked_cross_entropy(
            logits.token_type.reshape([n, token_type::COUNT]),
            labels(&batch.target_type),
        );
        let total =
            action.loss.clone() + kind.loss.clone().mul_scalar(self.config.type_loss_weight);
        let parts = Tensor::cat(
            vec![
                total.clone(),
                action.loss,
                kind.loss,
                action.accuracy,
                kind.accuracy,
                action.count,
                kind.count,
            ],
            0,
        )
        .detach();
        Loss { total, parts }
    }

    /// Final-norm hidden states `[B, L, d_model]` of a full pass under each sequence's
    /// visibility.
    fn hidden(&self, batch: &TokenBatch, device: &Device) -> Tensor<3> {
        self.hidden_with(batch, device, true)
    }

    /// [`hidden`](Self::hidden); with `block_sparse` false a chain is computed as one dense
    /// masked sequence instead (the mask of which tokens feed which): right for concat
    /// only, the tests' independent reference for the block-sparse pass.
    pub(crate) fn hidden_with(
        &self,
        batch: &TokenBatch,
        device: &Device,
        block_sparse: bool,
    ) -> Tensor<3> {
        let tokens = TokenTensors::new(batch, &self.config, device);
        let chains = crate::chain::chains(batch);
        let positions = if chains.is_some() || batch.has_slots() {
            self.positions_of(batch, device)
        } else {
            self.positions_from_zero(batch.seq_len)
        };
        let x = self.embed(&tokens, positions);
        if let Some(chains) = chains.filter(|_| block_sparse) {
            let plan = crate::chain::ChainPlan::new(batch, &chains, device);
            let h = self.encode(plan.to_blocks(x), plan.bias.clone(), |_, k, v| {
                (plan.with_memory(k), plan.with_memory(v))
            });
            return plan.to_tokens(h);
        }
        let visibility: Vec<&Visibility> = batch.visibility.iter().collect();
        self.encode(
            x,
            attention_bias(&visibility, batch.seq_len, device),
            |_, k, v| (k, v),
        )
    }

    /// Position embeddings `0..len` as `[1, len, d_model]`.
    pub(crate) fn positions_from_zero(&self, len: usize) -> Tensor<3> {
        self.position.weight.val().narrow(0, 0, len).unsqueeze()
    }

    /// `[B, L, d_model]`: each token's position embedding ([`TokenBatch::positions`]; slot
    /// tokens get row 0, which [`embed`](Self::embed) leaves out).
    pub(crate) fn positions_of(&self, batch: &TokenBatch, device: &Device) -> Tensor<3> {
        let (b, l) = (batch.batch, batch.seq_len);
        let positions = batch.positions();
        let max = self.config.max_len;
        assert!(
            (0..b * l).all(|i| positions[i] < max || i % l >= batch.lengths[i / l]),
            "TokenBatch: a position past the model's max_len {max}"
        );
        let idx: Vec<i32> = positions.iter().map(|&p| p.min(max - 1) as i32).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b * l]), device);
        self.position
            .weight
            .val()
            .select(0, idx)
            .reshape([b, l, self.config.d_model])
    }

    /// Position embeddings of given positions, one per row, as `[rows, 1, d_model]`.
    pub(crate) fn positions_at(&self, positions: &[usize], device: &Device) -> Tensor<3> {
        let idx: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [positions.len()]), device);
        self.position.weight.val().select(0, idx).unsqueeze_dim(1)
    }

    /// Token embeddings plus the given position embeddings (broadcast to `[B, L, d]`).
    pub(crate) fn embed(&self, t: &TokenTensors, positions: Tensor<3>) -> Tensor<3> {
        let [b, l] = t.kinds.dims();
        let d = self.config.d_model;
        let is = |kind: u8| {
            t.kinds
                .clone()
                .equal_elem(kind as i32)
                .float()
                .unsqueeze_dim::<3>(2)
        };
        let featured = if self.config.token_types > token_type::COUNT {
            is(token_kind::TRANSITION) + is(token_kind::KEPT)
        } else {
            is(token_kind::TRANSITION)
        };
        debug_assert!(has_features(token_kind::KEPT));
        let transitions = self.transition.forward(t.features.clone()) * featured;
        let queries = self.query_state.forward(t.state_index.clone()) * is(token_kind::QUERY);
        let per_kind = self
            .kind_table()
            .select(0, t.kinds.clone().reshape([b * l]))
            .reshape([b, l, d]);
        let mut x = transitions + queries + per_kind;
        match (&self.slot, &t.slots) {
            // Slot tokens (memory, kept) have no position: their slot rows replace it.
            (Some(table), Some(slots)) => {
                let no_slot = slots[0].1.clone().neg().add_scalar(1.0);
                x = x + positions * no_slot;
                for (rows, mask) in slots {
                    x = x + table.forward(rows.clone()) * mask.clone();
                }
            }
            _ => x = x + positions,
        }
        self.embed_dropout.forward(x)
    }

    /// `[kinds, d]`, row = token kind: its token-type embedding, plus the marker's own
    /// embedding for `<c>` / `</c>`. One lookup then adds both to every position.
    fn kind_table(&self) -> Tensor<2> {
        let device = self.open.val().device();
        let kinds: Vec<u8> = (0..self.config.kinds() as u8).collect();
        let types: Vec<i32> = kinds.iter().map(|&k| type_of_kind(k) as i32).collect();
        let types = Tensor::<1, Int>::from_data(TensorData::new(types, [kinds.len()]), &device);
        let zero = Tensor::<1>::zeros([self.config.d_model], &device);
        let markers = Tensor::stack::<2>(
            kinds
                .iter()
                .map(|&k| match k {
                    token_kind::OPEN => self.open.val(),
                    token_kind::CLOSE => self.close.val(),
                    _ => zero.clone(),
                })
                .collect(),
            0,
        );
        self.token_type.weight.val().select(0, types) + markers
    }

    /// Run the blocks and the final norm. `kv(layer, k, v)` decides what each layer attends
    /// over (see [`Block::forward`]).
    pub(crate) fn encode(
        &self,
        mut x: Tensor<3>,
        bias: Tensor<4>,
        mut kv: impl FnMut(usize, Tensor<4>, Tensor<4>) -> (Tensor<4>, Tensor<4>),
    ) -> Tensor<3> {
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, bias.clone(), |k, v| kv(i, k, v));
        }
        self.norm.forward(x)
    }

    /// Both heads on hidden states of any rank.
    pub(crate) fn heads<const D: usize>(&self, h: Tensor<D>) -> Logits<D> {
        Logits {
            action: self.action_head.forward(h.clone()),
            token_type: self.type_head.forward(h),
        }
    }
}

pub(crate) struct MaskedCe {
    pub(crate) loss: Tensor<1>,
    pub(crate) accuracy: Tensor<1>,
    pub(crate) count: Tensor<1>,
}

/// Mean cross-entropy and accuracy of `logits [N, C]` over rows whose label is not `IGNORE`
/// (negative). Unlabelled rows get weight 0, so they contribute neither value nor gradient.
pub(crate) fn masked_cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> MaskedCe {
    let [n, _] = logits.dims();
    let weight = labels.clone().greater_equal_elem(0).float();
    let labels = labels.clamp_min(0);
    let count = weight.clone().sum();
    let denom = count.clone().clamp_min(1.0);
    let nll = log_softmax(logits.clone(), 1)
        .gather(1, labels.clone().reshape([n, 1]))
        .reshape([n])
        .neg();
    let loss = (nll * weight.clone()).sum() / denom.clone();
    let hits = logits.detach().argmax(1).reshape([n]).equal(labels).float();
    let accuracy = (hits * weight).sum() / denom;
    MaskedCe {
        loss,
        accuracy,
        count,
    }
}
