//! [`KvCache`]: incremental inference for a batch of independent contexts (evaluation).
//!
//! Each layer keeps keys and values of shape `[rows, heads, capacity, d_model/heads]`
//! (`capacity` = the model's `max_len`); row `r` holds its first `len(r)` slots. Appending a
//! token writes slot `len(r)` of every row at once and attends over slots `0..=len(r)`, so
//! one step costs O(capacity) per row, not a re-run of the context. A row whose context
//! changes other than at its end (a region dropped: every position shifts) is rebuilt from
//! its token list; slots past a row's length are stale but never visible. Each row has a
//! [`Visibility`] (causal unless set) that rebuilds and appends attend under.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ccad_core::context::Visibility;

use crate::bias::attention_bias;
use crate::model::{MASKED, TokenTensors};
use crate::{AdModel, Token, batch_from_tokens};

/// A row's new slots, each a weighted sum of old slots: `(old slot, weight)` lists.
pub type SlotMap = Vec<Vec<(usize, f32)>>;

/// Logits at one position per row: `action [n, n_actions]`, `token_type [n, 3]`.
pub type StepLogits = crate::Logits<2>;

impl StepLogits {
    /// Host copies `(action, token_type)`, row-major.
    pub fn to_host(&self) -> (Vec<f32>, Vec<f32>) {
        let read = |t: &Tensor<2>| {
            t.clone()
                .into_data()
                .try_to_vec::<f32>()
                .expect("logits are f32")
        };
        (read(&self.action), read(&self.token_type))
    }
}

/// Key/value cache of `rows` independent contexts. Use the model in inference mode
/// (`model.valid()`), and the same model for every call.
#[derive(Debug, Clone)]
pub struct KvCache {
    device: Device,
    capacity: usize,
    lengths: Vec<usize>,
    visibility: Vec<Visibility>,
    /// Per layer, `[rows, heads, capacity, head_dim]`.
    keys: Vec<Tensor<4>>,
    values: Vec<Tensor<4>>,
}

impl KvCache {
    /// An empty cache (every row length 0) for `rows` contexts of up to the model's `max_len`
    /// positions plus its slot tokens.
    pub fn new(model: &AdModel, rows: usize, device: &Device) -> Self {
        let c = model.config();
        // Slot tokens (kept tokens) come on top of the positions.
        let capacity = c.max_len + c.slots;
        let shape = [rows, c.n_heads, capacity, c.d_model / c.n_heads];
        let zeros = || {
            (0..c.n_layers)
                .map(|_| Tensor::zeros(shape, device))
                .collect()
        };
        Self {
            device: device.clone(),
            capacity,
            lengths: vec![0; rows],
            visibility: vec![Visibility::Causal; rows],
            keys: zeros(),
            values: zeros(),
        }
    }

    pub fn rows(&self) -> usize {
        self.lengths.len()
    }

    /// Tokens a row holds.
    pub fn len(&self, row: usize) -> usize {
        self.lengths[row]
    }

    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Longest context a row can hold (the model's `max_len` plus its slots, grown on demand
    /// by chains).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forget all but the first `len` tokens of a row (e.g. drop the query before appending
    /// the transition that replaces it). Free: the slots just become invisible.
    pub fn truncate(&mut self, row: usize, len: usize) {
        assert!(
            len <= self.lengths[row],
            "truncate row {row} to {len}: it holds only {}",
            self.lengths[row]
        );
        self.lengths[row] = len;
    }

    /// The attention pattern of a row's tokens for the next rebuilds and appends. Entries
    /// already cached keep what they were computed with: change a pattern for tokens the
    /// cache holds only together with a rebuild or a truncation below them.
    pub fn set_visibility(&mut self, row: usize, visibility: &Visibility) {
        if self.visibility[row] != *visibility {
            self.visibility[row] = visibility.clone();
        }
    }

    /// Empty every row.
    pub fn clear(&mut self) {
        self.lengths.fill(0);
    }

    /// Replace every row's context (`contexts.len() == rows`, each non-empty); returns the
    /// logits at each row's last token.
    pub fn prefill<C: AsRef<[Token]>>(&mut self, model: &AdModel, contexts: &[C]) -> StepLogits {
        assert_eq!(
            contexts.len(),
            self.rows(),
            "prefill needs one context per row"
        );
        let rows: Vec<usize> = (0..self.rows()).collect();
        self.rebuild(model, &rows, contexts)
    }

    /// Replace the contexts of some rows (distinct indices; the others are untouched), with
    /// positions restarting at 0; returns the logits at each given row's last token, in the
    /// order given. Costs one causal pass over the new contexts.
    pub fn rebuild<C: AsRef<[Token]>>(
        &mut self,
        model: &AdModel,
        rows: &[usize],
        contexts: &[C],
    ) -> StepLogits {
        assert_eq!(
            rows.len(),
            contexts.len(),
            "rebuild needs one context per row"
        );
        assert!(!rows.is_empty(), "rebuild of no rows");
        let mut seen = vec![false; self.rows()];
        for (&r, c) in rows.iter().zip(contexts) {
            assert!(
                r < self.rows(),
                "row {r} out of range ({} rows)",
                self.rows()
            );
            assert!(
                !std::mem::replace(&mut seen[r], true),
                "row {r} given twice"
            );
            let len = c.as_ref().len();
            assert!(
                (1..=self.capacity).contains(&len),
                "row {r}: context of {len} tokens, need 1..={}",
                self.capacity
            );
        }

        let c = model.config();
        let batch = batch_from_tokens(contexts, c.feat_dim);
        let (n, l, d) = (rows.len(), batch.seq_len, c.d_model);
        let tokens = TokenTensors::new(&batch, c, &self.device);
        let positions = if batch.has_slots() {
            model.positions_of(&batch, &self.device)
        } else {
            model.positions_from_zero(l)
        };
        let x = model.embed(&tokens, positions);
        let mut fresh = Vec::with_capacity(c.n_layers);
        let visibility: Vec<&Visibility> = rows.iter().map(|&r| &self.visibility[r]).collect();
        let bias = attention_bias(&visibility, l, &self.device);
        let h = model.encode(x, bias, |_, k, v| {
            fresh.push((k.clone(), v.clone()));
            (k, v)
        });

        // Place the new rows' keys/values at slots 0..l of their cache rows.
        let whole = n == self.rows() && rows.iter().enumerate().all(|(i, &r)| i == r);
        let mut source = vec![0i32; self.rows()];
        let mut chosen = vec![0.0f32; self.rows()];
        for (i, &r) in rows.iter().enumerate() {
            source[r] = i as i32;
            chosen[r] = 1.0;
        }
        let source =
            Tensor::<1, Int>::from_data(TensorData::new(source, [self.rows()]), &self.device);
        let chosen = Tensor::<4>::from_data(
            TensorData::new(chosen, [self.rows(), 1, 1, 1]),
            &self.device,
        );
        let capacity = self.capacity;
        let device = self.device.clone();
        let place = |old: Tensor<4>, new: Tensor<4>| -> Tensor<4> {
            let [b, h, _, dh] = new.dims();
            let new = if l < capacity {
                Tensor::cat(
                    vec![new, Tensor::zeros([b, h, capacity - l, dh], &device)],
                    2,
                )
            } else {
                new
            };
            if whole {
                new
            } else {
                blend(old, new.select(0, source.clone()), chosen.clone())
            }
        };
        for (layer, (k, v)) in fresh.into_iter().enumerate() {
            self.keys[layer] = place(self.keys[layer].clone(), k);
            self.values[layer] = place(self.values[layer].clone(), v);
        }
        for (&r, context) in rows.iter().zip(contexts) {
            self.lengths[r] = context.as_ref().len();
        }

        let last: Vec<i32> = rows
            .iter()
            .enumerate()
            .map(|(i, &r)| (i * l + self.lengths[r] - 1) as i32)
            .collect();
        let last = Tensor::<1, Int>::from_data(TensorData::new(last, [n]), &self.device);
        model.heads(h.reshape([n * l, d]).select(0, last))
    }

    /// Append one token to every row; returns the logits at each row's new token.
    pub fn append(&mut self, model: &AdModel, tokens: &[Token]) -> StepLogits {
        let tokens: Vec<Option<Token>> = tokens.iter().cloned().map(Some).collect();
        self.append_rows(model, &tokens)
    }

    /// Append a token to the rows given `Some`; rows given `None` keep their context (their
    /// logits in the result are meaningless). One batched step for all rows.
    ///
    /// # Panics
    /// If a row given a token is full (`len == capacity`).
    pub fn append_rows(&mut self, model: &AdModel, tokens: &[Option<Token>]) -> StepLogits {
        let positions: Vec<usize> = self
            .lengths
            .iter()
            .map(|&s| s.min(self.capacity - 1))
            .collect();
        self.append_rows_at(model, tokens, &positions)
    }

    /// [`append_rows`](Self::append_rows) with each row's token at the given position
    /// (a chained row's position inside its block, 0 for slot tokens) instead of its slot.
    pub fn append_rows_at(
        &mut self,
        model: &AdModel,
        tokens: &[Option<Token>],
        positions: &[usize],
    ) -> StepLogits {
        let rows = self.rows();
        assert_eq!(positions.len(), rows, "append needs one position per row");
        assert_eq!(tokens.len(), rows, "append needs one entry per row");
        for (r, t) in tokens.iter().enumerate() {
            assert!(
                t.is_none() || self.lengths[r] < self.capacity,
                "row {r} is full ({} tokens)",
                self.capacity
            );
        }
        let c = model.config();
        // Idle rows still flow through (one batched step); their slot write lands past
        // their length, where it stays invisible.
        let step: Vec<[Token; 1]> = tokens
            .iter()
            .map(|t| [t.clone().unwrap_or(Token::Open)])
            .collect();
        let batch = batch_from_tokens(&step, c.feat_dim);
        let tokens_t = TokenTensors::new(&batch, c, &self.device);
        let slots: Vec<usize> = self.lengths.clone();
        let max = c.max_len - 1;
        let positions: Vec<usize> = positions.iter().map(|&p| p.min(max)).collect();
        let x = model.embed(&tokens_t, model.positions_at(&positions, &self.device));

        // Slot mask [rows, 1, capacity, 1] (nothing for a full idle row) and the visibility
        // bias [rows, 1, 1, span]: the slots 0..=slot of each row its pattern allows.
        let span = (slots.iter().max().copied().unwrap_or(0) + 1).min(self.capacity);
        let mut write = vec![0.0f32; rows * self.capacity];
        let mut bias = vec![MASKED; rows * span];
        let mut seen = vec![false; span];
        for (r, &s) in slots.iter().enumerate() {
            if s < self.capacity {
                write[r * self.capacity + s] = 1.0;
            }
            let row = &mut bias[r * span..r * span + (s + 1).min(span)];
            if self.visibility[r].is_causal() {
                row.fill(0.0);
            } else {
                self.visibility[r].key_mask(s, &mut seen[..row.len()]);
                for (o, &v) in row.iter_mut().zip(&seen) {
                    if v {
                        *o = 0.0;
                    }
                }
            }
        }
        let write = Tensor::<4>::from_data(
            TensorData::new(write, [rows, 1, self.capacity, 1]),
            &self.device,
        );
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [rows, 1, 1, span]), &self.device);

        let (keys, values) = (&mut self.keys, &mut self.values);
        let h = model.encode(x, bias, |layer, k, v| {
            keys[layer] = blend(keys[layer].clone(), k, write.clone());
            values[layer] = blend(values[layer].clone(), v, write.clone());
            (
                keys[layer].clone().narrow(2, 0, span),
                values[layer].clone().narrow(2, 0, span),
            )
        });
        for (r, t) in tokens.iter().enumerate() {
            if t.is_some() {
                self.lengths[r] += 1;
            }
        }
        model.heads(h.reshape([rows, c.d_model]))
    }
}

impl KvCache {
    /// Hold at least `capacity` slots per row (new slots are zero and invisible).
    pub fn ensure_capacity(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        let grow = capacity.max(2 * self.capacity) - self.capacity;
        let pad = |t: Tensor<4>| {
            let [b, h, _, dh] = t.dims();
            let zeros = Tensor::zeros([b, h, grow, dh], &t.device());
            Tensor::cat(vec![t, zeros], 2)
        };
        for l in 0..self.keys.len() {
            self.keys[l] = pad(self.keys[l].clone());
            self.values[l] = pad(self.values[l].clone());
        }
        self.capacity += grow;
    }

    /// Rewrite some rows' slots, at every layer: slot `j` of row `r` becomes
    /// `Σ weight · old slot` over `sources[j]`, and the row holds `sources.len()` slots. A
    /// chain's memory folds this way when its block ends (concat: the old memory, then the
    /// block's memory tokens; merge: each slot's running mean updated with the new one).
    /// Rows not listed keep their slots exactly (their map is the identity).
    pub fn remap(&mut self, rows: &[(usize, SlotMap)]) {
        if rows.is_empty() {
            return;
        }
        let (n, cap) = (self.rows(), self.capacity);
        let mut w = vec![0.0f32; n * cap * cap];
        for r in 0..n {
            for j in 0..cap {
                w[(r * cap + j) * cap + j] = 1.0;
            }
        }
        for (r, sources) in rows {
            let block = &mut w[r * cap * cap..(r + 1) * cap * cap];
            block.fill(0.0);
            for (j, src) in sources.iter().enumerate() {
                for &(from, weight) in src {
                    assert!(from < self.lengths[*r], "row {r}: slot {from} is not held");
                    block[j * cap + from] = weight;
                }
            }
            self.lengths[*r] = sources.len();
        }
        let heads = self.keys[0].dims()[1];
        let w = Tensor::<4>::from_data(TensorData::new(w, [n, 1, cap, cap]), &self.device)
            .repeat_dim(1, heads);
        for l in 0..self.keys.len() {
            self.keys[l] = w.clone().matmul(self.keys[l].clone());
            self.values[l] = w.clone().matmul(self.values[l].clone());
        }
    }
}

/// `old` where `mask` is 0, `new` where it is 1 (`mask` and `new` broadcast to `old`'s shape).
/// Exact in both cases since the cache only ever holds finite values.
fn blend(old: Tensor<4>, new: Tensor<4>, mask: Tensor<4>) -> Tensor<4> {
    old * mask.clone().neg().add_scalar(1.0) + new * mask
}
