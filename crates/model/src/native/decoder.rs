//! [`NativeDecoder`]: evaluation's incremental inference in plain Rust, a key/value cache per
//! row over the native layers' one-token forward.
//!
//! Why: evaluation appends one or two tokens per environment per step. Through burn every
//! append is a few hundred small tensor operations, and their fixed cost, not arithmetic,
//! sets the speed (about 1 000 env-steps/s for 8 environments on 2 cores). Here one token is a
//! handful of matrix-vector products (about 0.3 M multiply-adds per token at the default
//! size), and rows run in parallel.

use rayon::prelude::*;

use super::attention::Shape;
use super::block::{self, DecodeScratch};
use super::weights::Weights;
use super::{NativeNet, embedding, heads};
use crate::decode::{Decoder, RowTokens};
use crate::{AdModel, Token};
use ccad_core::context::Visibility;
use ccad_core::tokens::token_type;

/// Fewer tokens than this in one update run on the calling thread: an ordinary step (two
/// tokens per row, about 50 µs each) is too short to gain from waking other threads, and on a
/// busy machine waiting for them costs more than it saves. Rebuilds and large batches go
/// parallel.
const PARALLEL_TOKENS: usize = 32;

/// Key/value caches of `rows` independent contexts over the model's weights (copied once).
pub struct NativeDecoder {
    net: NativeNet,
    /// `[4, d]`: [`Weights::kind_table`].
    kinds: Vec<f32>,
    rows: Vec<Row>,
}

/// One context's keys/values and scratch space.
struct Row {
    len: usize,
    /// A chained context's memory (the memory layout), when the row is one.
    chain: Option<ChainState>,
    /// Per layer `[max_len, d]`.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    x: Vec<f32>,
    scratch: DecodeScratch,
    /// Logits after the last appended token: action then token type.
    logits: Vec<f32>,
}

impl NativeDecoder {
    /// Copy `model`'s weights. Err names a parameter the native layers expect and did not
    /// find (or found with another shape): the model's layout changed.
    pub fn new(model: &AdModel, rows: usize) -> Result<Self, String> {
        let net = NativeNet::from_model(model)?;
        let c = net.config().clone();
        let kinds = net.weights().kind_table();
        // Slot tokens (kept tokens) come on top of the positions.
        let capacity = c.max_len + c.slots;
        let per_layer = || (0..c.n_layers).map(|_| vec![0.0; capacity * c.d_model]);
        let row = || Row {
            len: 0,
            chain: None,
            keys: per_layer().collect(),
            values: per_layer().collect(),
            x: vec![0.0; c.d_model],
            scratch: DecodeScratch::new(c.d_model, c.d_ff, capacity),
            logits: vec![0.0; c.n_actions + token_type::COUNT],
        };
        Ok(Self {
            net,
            kinds,
            rows: (0..rows).map(|_| row()).collect(),
        })
    }

    /// Tokens a row holds.
    pub fn len(&self, row: usize) -> usize {
        self.rows[row].len
    }

    /// For each row: forget all but its first `unchanged` tokens, then append the rest.
    /// Rows run in parallel when there is enough work. Afterwards [`Self::logits`] of every
    /// row are the logits at its last token.
    ///
    /// # Panics
    /// If a row would exceed the model's `max_len`, a token does not fit the model, or a row
    /// has no new token or claims more unchanged tokens than it holds.
    pub fn update(&mut self, rows: &[RowTokens]) {
        assert_eq!(rows.len(), self.rows.len(), "one entry per row");
        let c = self.net.config();
        let shape = Shape {
            d: c.d_model,
            heads: c.n_heads,
        };
        let (w, kinds) = (self.net.weights(), &self.kinds[..]);
        let run = |row: &mut Row, r: &RowTokens| {
            let mut keep = r.unchanged;
            assert!(keep <= row.len, "keep {keep} of {} tokens", row.len);
            if let Visibility::Chain(chain) = r.visibility {
                // A chain's cache holds only its current block and memory: a change inside
                // it replays the chain from the start.
                if keep < row.len {
                    keep = 0;
                }
                let end = r.len();
                assert!(keep < end, "no new token in a chained row");
                row.len = keep;
                if keep == 0 {
                    row.chain = None;
                }
                for (t, token) in r.iter().enumerate().skip(keep) {
                    row.append_chained((&w, kinds, shape), (token, chain), t + 1 == end);
                }
                return;
            }
            row.chain = None;
            let new: Vec<&Token> = r.new_tokens().collect();
            // Positions count the tokens without a slot (kept tokens lead the context).
            let lead = r.leading_slots();
            row.len = keep;
            for (i, t) in new.iter().enumerate() {
                let position = match t.slot() {
                    Some(_) => 0,
                    None => keep + i - lead,
                };
                let token = (*t, position, r.visibility);
                row.append((&w, kinds, shape), token, i + 1 == new.len());
            }
        };
        let tokens: usize = rows
            .iter()
            .map(|r| r.len() - r.unchanged.min(r.len()))
            .sum();
        if tokens >= PARALLEL_TOKENS {
            self.rows
                .par_iter_mut()
                .zip(rows.par_iter())
                .with_max_len(1)
                .for_each(|(row, r)| run(row, r));
        } else {
            self.rows
                .iter_mut()
                .zip(rows)
                .for_each(|(row, r)| run(row, r));
        }
    }

    /// `(action, token_type)` logits at a row's last appended token.
    pub fn logits(&self, row: usize) -> (&[f32], &[f32]) {
        self.rows[row].logits.split_at(self.net.config().n_actions)
    }
}

impl Row {
    /// Run one token (at `position`, its position embedding) through the layers into cache
    /// entry `len` under the row's `visibility`,
    /// storing its keys/values; compute the heads only when `with_heads` (the caller reads
    /// the last token's logits alone).
    fn append(
        &mut self,
        (w, kinds, shape): (&Weights, &[f32], Shape),
        (token, position, visibility): (&Token, usize, &Visibility),
        with_heads: bool,
    ) {
        let pos = self.len;
        let max_len = self.scratch.seen.len();
        assert!(
            pos < max_len,
            "context longer than the model's max_len {max_len}"
        );
        self.scratch.masked = !visibility.is_causal();
        if self.scratch.masked {
            visibility.key_mask(pos, &mut self.scratch.seen[..=pos]);
        }
        self.run((w, kinds, shape), (token, position), pos, with_heads);
    }

    /// Embed `token` at `position`, run it through the layers into cache entry `entry`
    /// (attending to the entries before it that `scratch` lets it see), count it, and
    /// compute the heads when `with_heads`.
    fn run(
        &mut self,
        (w, kinds, shape): (&Weights, &[f32], Shape),
        (token, position): (&Token, usize),
        entry: usize,
        with_heads: bool,
    ) {
        embedding::decode(w, kinds, token, position, &mut self.x);
        let n_layers = w.layers.len();
        for (l, lw) in w.layers.iter().enumerate() {
            // The last layer's output of a token feeds nothing but the heads.
            let output = with_heads || l + 1 < n_layers;
            let cache = (&mut self.keys[l][..], &mut self.values[l][..]);
            let scratch = (&mut self.scratch, output);
            block::decode(shape, lw, cache, entry, &mut self.x, scratch);
        }
        self.len += 1;
        if with_heads {
            let t = &mut self.scratch;
            heads::decode(w, &self.x, (&mut t.h, &mut t.xhat), &mut self.logits);
        }
    }
}

/// What a chained row's current block reads, per layer, at the front of its keys/values.
struct ChainState {
    /// Block of the row's last token.
    block: usize,
    /// Memory rows before the block's own keys/values.
    reads: usize,
    /// Position of the block's next token without a slot.
    next_position: usize,
    /// Merge: per layer the running sums of each slot's keys and values; regions summed.
    sums: Vec<(Vec<f32>, Vec<f32>)>,
    count: usize,
    /// Concat: per layer every earlier memory token's key and value.
    all: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Row {
    /// [`Row::append`] for a chained row: the token at chain position `len` attends to the
    /// memory its block reads and to its block so far. A token that opens a block first
    /// folds the previous block's memory tokens into the memory (concat: appended; merge:
    /// added to the slot sums) and starts the block's cache after it.
    fn append_chained(
        &mut self,
        (w, kinds, shape): (&Weights, &[f32], Shape),
        (token, chain): (&Token, &ccad_core::context::Chain),
        with_heads: bool,
    ) {
        let (t, d, n_layers) = (self.len, shape.d, w.layers.len());
        let b = chain.block_of(t);
        let m = chain.slots();
        let state = self.chain.get_or_insert_with(|| ChainState {
            block: 0,
            reads: 0,
            next_position: 0,
            sums: vec![(vec![0.0; m * d], vec![0.0; m * d]); n_layers],
            count: 0,
            all: vec![(Vec::new(), Vec::new()); n_layers],
        });
        if b != state.block {
            assert_eq!(b, state.block + 1, "a chained row skipped a block");
            let prev = state.block;
            if let Some(mem) = chain.memory_range(prev) {
                let at = (state.reads + mem.start - chain.start(prev)) * d;
                state.count += 1;
                for l in 0..n_layers {
                    let (k, v) = (
                        &self.keys[l][at..at + m * d],
                        &self.values[l][at..at + m * d],
                    );
                    let (sk, sv) = &mut state.sums[l];
                    sk.iter_mut().zip(k).for_each(|(s, x)| *s += x);
                    sv.iter_mut().zip(v).for_each(|(s, x)| *s += x);
                    let (ak, av) = &mut state.all[l];
                    ak.extend_from_slice(k);
                    av.extend_from_slice(v);
                }
            }
            state.reads = match chain.update() {
                ccad_core::context::MemoryUpdate::Concat => state.count * m,
                ccad_core::context::MemoryUpdate::Merge if state.count > 0 => m,
                ccad_core::context::MemoryUpdate::Merge => 0,
            };
            let scale = 1.0 / state.count.max(1) as f32;
            for l in 0..n_layers {
                let (keys, values) = (&mut self.keys[l], &mut self.values[l]);
                let need = (state.reads + chain.block_range(b, t + 1).len()) * d;
                if keys.len() < need {
                    keys.resize(need, 0.0);
                    values.resize(need, 0.0);
                }
                match chain.update() {
                    ccad_core::context::MemoryUpdate::Concat => {
                        let (ak, av) = &state.all[l];
                        keys[..ak.len()].copy_from_slice(ak);
                        values[..av.len()].copy_from_slice(av);
                    }
                    ccad_core::context::MemoryUpdate::Merge => {
                        let (sk, sv) = &state.sums[l];
                        let rows = state.reads * d;
                        for (o, s) in keys[..rows].iter_mut().zip(sk) {
                            *o = s * scale;
                        }
                        for (o, s) in values[..rows].iter_mut().zip(sv) {
                            *o = s * scale;
                        }
                    }
                }
            }
            state.block = b;
            state.next_position = 0;
        }
        let pos = state.reads + t - chain.start(b);
        let position = if token.slot().is_some() {
            0
        } else {
            state.next_position += 1;
            state.next_position - 1
        };
        for l in 0..n_layers {
            if self.keys[l].len() < (pos + 1) * d {
                let grow = ((pos + 1) * d).max(2 * self.keys[l].len());
                self.keys[l].resize(grow, 0.0);
                self.values[l].resize(grow, 0.0);
            }
        }
        if self.scratch.scores.len() <= pos {
            self.scratch.scores.resize(2 * (pos + 1), 0.0);
        }
        self.scratch.masked = false;
        self.run((w, kinds, shape), (token, position), pos, with_heads);
    }
}

impl Decoder for NativeDecoder {
    fn decode(&mut self, rows: &[RowTokens], action: &mut [f32], token_type: &mut [f32]) -> usize {
        self.update(rows);
        let (a, t) = (self.net.config().n_actions, token_type::COUNT);
        for i in 0..rows.len() {
            let (la, lt) = self.logits(i);
            action[i * a..(i + 1) * a].copy_from_slice(la);
            token_type[i * t..(i + 1) * t].copy_from_slice(lt);
        }
        rows.iter().filter(|r| r.unchanged == 0).count()
    }
}
