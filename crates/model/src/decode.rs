//! [`Decoder`]: the one interface evaluation reads logits through, whatever runs the model.
//!
//! Each call gets, per row, the row's whole current token list, its [`Visibility`], and how
//! many of its leading tokens are unchanged since the previous call (0: the row is new or its
//! positions moved, so it is rebuilt), and writes the logits at every row's last token. Three implementations:
//!
//! - [`BurnCacheDecoder`]: burn's [`KvCache`] on the model's device;
//! - [`crate::native::NativeDecoder`]: the native layers' key/value cache on the CPU;
//! - [`FullRerun`]: one full pass over every row's tokens (the reference's way; it
//!   ignores `unchanged`, and checks the other two).

use burn::tensor::Device;
use ccad_core::context::Visibility;
use ccad_core::tokens::token_type;

use crate::cache::SlotMap;
use crate::{AdModel, KvCache, Token, batch_from_tokens};

/// One row's input to [`Decoder::decode`]: its whole current token list, held as the
/// context plus an optional last token (the query) so callers need not copy contexts.
#[derive(Debug, Clone, Copy)]
pub struct RowTokens<'a> {
    pub context: &'a [Token],
    /// The query, in layouts that read the action there; `None` when the context's own last
    /// token is read.
    pub last: Option<&'a Token>,
    /// Leading tokens unchanged since the previous call; 0 rebuilds the row.
    pub unchanged: usize,
    /// Which earlier tokens each token sees (the last token included). The unchanged tokens
    /// must have the same pattern as when they were decoded.
    pub visibility: &'a Visibility,
}

impl<'a> RowTokens<'a> {
    /// Tokens in the whole list.
    pub fn len(&self) -> usize {
        self.context.len() + usize::from(self.last.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every token, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a Token> + use<'a> {
        self.context.iter().chain(self.last)
    }

    /// The tokens after the unchanged prefix (at least one).
    ///
    /// # Panics
    /// If no token is new.
    pub fn new_tokens(&self) -> impl Iterator<Item = &'a Token> + use<'a> {
        assert!(
            self.unchanged < self.len(),
            "{} of {} tokens unchanged: nothing to read logits at",
            self.unchanged,
            self.len()
        );
        self.iter().skip(self.unchanged)
    }

    /// The whole list as one vector.
    pub fn to_vec(&self) -> Vec<Token> {
        self.iter().cloned().collect()
    }

    /// Tokens with a slot at the start of the list (kept tokens), which take no position.
    ///
    /// # Panics
    /// If a slot token follows a token without one outside a chain.
    pub fn leading_slots(&self) -> usize {
        let lead = self.iter().take_while(|t| t.slot().is_some()).count();
        debug_assert!(
            matches!(self.visibility, Visibility::Chain(_))
                || self.iter().skip(lead).all(|t| t.slot().is_none()),
            "slot tokens must lead an unchained context"
        );
        lead
    }
}

/// Incremental inference over a fixed number of rows.
pub trait Decoder {
    /// Bring every row (one entry per row, in row order) up to date and write the logits at
    /// each row's last token into `action [rows, n_actions]` and `token_type [rows, 3]`.
    /// Returns how many rows' caches were rebuilt from scratch (0 without a cache).
    fn decode(&mut self, rows: &[RowTokens], action: &mut [f32], token_type: &mut [f32]) -> usize;
}

/// [`Decoder`] over burn's [`KvCache`]: rebuilt rows in one causal pass, the others' new
/// tokens appended in batched one-token steps.
pub struct BurnCacheDecoder<'m> {
    model: &'m AdModel,
    cache: KvCache,
    /// Chained rows' bookkeeping (the memory layout); `None` for other rows.
    chains: Vec<Option<ChainRow>>,
}

/// Where a chained row stands: the cache holds the memory its block reads (slots
/// `0..reads`), then the block's tokens.
#[derive(Debug, Clone, Default)]
struct ChainRow {
    /// Chain tokens consumed.
    done: usize,
    block: usize,
    reads: usize,
    /// Position of the block's next token without a slot.
    next_position: usize,
    /// Blocks whose memory the merge means hold.
    count: usize,
}

/// One token a chained row appends: its position, and the fold of the previous block's
/// memory to apply first when it opens a block (see [`KvCache::remap`]).
struct ChainStep {
    token: Token,
    position: usize,
    fold: Option<SlotMap>,
}

impl ChainRow {
    /// The steps that bring the row from `self.done` tokens to all of `r`'s.
    fn steps(&mut self, r: &RowTokens, chain: &ccad_core::context::Chain) -> Vec<ChainStep> {
        use ccad_core::context::MemoryUpdate;
        let m = chain.slots();
        let mut out = Vec::new();
        for (t, token) in r.iter().enumerate().skip(self.done) {
            let b = chain.block_of(t);
            let mut fold = None;
            if t > 0 && b != self.block {
                assert_eq!(b, self.block + 1, "a chained row skipped a block");
                let keep: Vec<Vec<(usize, f32)>> =
                    (0..self.reads).map(|j| vec![(j, 1.0)]).collect();
                let sources = match chain.memory_range(self.block) {
                    None => keep,
                    Some(mem) => {
                        let at = self.reads + mem.start - chain.start(self.block);
                        match chain.update() {
                            MemoryUpdate::Concat => keep
                                .into_iter()
                                .chain((0..m).map(|i| vec![(at + i, 1.0)]))
                                .collect(),
                            MemoryUpdate::Merge => {
                                self.count += 1;
                                let c = self.count as f32;
                                (0..m)
                                    .map(|i| match self.count {
                                        1 => vec![(at + i, 1.0)],
                                        _ => vec![(i, (c - 1.0) / c), (at + i, 1.0 / c)],
                                    })
                                    .collect()
                            }
                        }
                    }
                };
                self.reads = sources.len();
                self.block = b;
                self.next_position = 0;
                fold = Some(sources);
            }
            let position = if token.slot().is_some() {
                0
            } else {
                self.next_position += 1;
                self.next_position - 1
            };
            out.push(ChainStep {
                token: token.clone(),
                position,
                fold,
            });
        }
        self.done = r.len();
        out
    }
}

impl<'m> BurnCacheDecoder<'m> {
    /// `rows` empty contexts; `model` in inference mode (`model.valid()`) on `device`.
    pub fn new(model: &'m AdModel, rows: usize, device: &Device) -> Self {
        Self {
            model,
            cache: KvCache::new(model, rows, device),
            chains: vec![None; rows],
        }
    }
}

impl Decoder for BurnCacheDecoder<'_> {
    fn decode(&mut self, rows: &[RowTokens], action: &mut [f32], token_type: &mut [f32]) -> usize {
        if rows
            .iter()
            .any(|r| matches!(r.visibility, Visibility::Chain(_)))
        {
            return self.decode_chains(rows, action, token_type);
        }
        let (model, cache) = (self.model, &mut self.cache);
        let (a, t) = (model.config().n_actions, token_type::COUNT);
        for (i, r) in rows.iter().enumerate() {
            cache.set_visibility(i, r.visibility);
        }
        let mut write = |i: usize, la: &[f32], lt: &[f32], k: usize| {
            action[i * a..(i + 1) * a].copy_from_slice(&la[k * a..(k + 1) * a]);
            token_type[i * t..(i + 1) * t].copy_from_slice(&lt[k * t..(k + 1) * t]);
        };

        // Rows whose positions moved: one causal pass over their new tokens.
        let rebuild: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].unchanged == 0)
            .collect();
        if !rebuild.is_empty() {
            let ctx: Vec<Vec<Token>> = rebuild.iter().map(|&i| rows[i].to_vec()).collect();
            let (la, lt) = cache.rebuild(model, &rebuild, &ctx).to_host();
            for (k, &i) in rebuild.iter().enumerate() {
                write(i, &la, &lt, k);
            }
        }

        // Other rows: forget what changed, append the new tokens. Rows are right-aligned
        // over the calls so every row's last token lands in the last one.
        let pending: Vec<Vec<Token>> = rows
            .iter()
            .map(|r| match r.unchanged {
                0 => Vec::new(),
                _ => r.new_tokens().cloned().collect(),
            })
            .collect();
        let calls = pending.iter().map(|p| p.len()).max().unwrap_or(0);
        if calls > 0 {
            for (i, p) in pending.iter().enumerate() {
                if !p.is_empty() {
                    cache.truncate(i, rows[i].unchanged);
                }
            }
            // Positions count the tokens without a slot (kept tokens lead the context).
            let lead: Vec<usize> = rows.iter().map(RowTokens::leading_slots).collect();
            let mut last = None;
            for call in 0..calls {
                let at = |p: &Vec<Token>| (call + p.len()).checked_sub(calls);
                let step: Vec<Option<Token>> = pending
                    .iter()
                    .map(|p| at(p).map(|j| p[j].clone()))
                    .collect();
                let positions: Vec<usize> = (0..rows.len())
                    .map(|i| match at(&pending[i]) {
                        Some(j) if pending[i][j].slot().is_none() => {
                            rows[i].unchanged + j - lead[i]
                        }
                        _ => 0,
                    })
                    .collect();
                last = Some(cache.append_rows_at(model, &step, &positions));
            }
            let (la, lt) = last.expect("at least one call").to_host();
            for (i, p) in pending.iter().enumerate() {
                if !p.is_empty() {
                    write(i, &la, &lt, i);
                }
            }
        }
        rebuild.len()
    }
}

impl BurnCacheDecoder<'_> {
    /// [`Decoder::decode`] when rows are chains (the memory layout; every row must be one):
    /// each row's new tokens go in one by one, in batched steps across rows, and a token that
    /// opens a block first folds the previous block's memory into the slots its block reads.
    fn decode_chains(
        &mut self,
        rows: &[RowTokens],
        action: &mut [f32],
        token_type: &mut [f32],
    ) -> usize {
        let (model, cache) = (self.model, &mut self.cache);
        let (a, t) = (model.config().n_actions, token_type::COUNT);
        let mut rebuilt = 0;
        let pending: Vec<Vec<ChainStep>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let Visibility::Chain(chain) = r.visibility else {
                    panic!("row {i}: chained and unchained rows in one decoder");
                };
                let state = self.chains[i].get_or_insert_with(ChainRow::default);
                if r.unchanged < state.done || r.unchanged == 0 {
                    // Anything but an append replays the chain from its start.
                    *state = ChainRow::default();
                    cache.truncate(i, 0);
                    rebuilt += 1;
                }
                cache.set_visibility(i, &Visibility::Causal);
                state.steps(r, chain)
            })
            .collect();
        let calls = pending.iter().map(Vec::len).max().unwrap_or(0);
        assert!(calls > 0, "no new token in any chained row");
        let mut last = None;
        for call in 0..calls {
            let at = |p: &Vec<ChainStep>| (call + p.len()).checked_sub(calls);
            let folds: Vec<(usize, SlotMap)> = pending
                .iter()
                .enumerate()
                .filter_map(|(i, p)| at(p).and_then(|j| p[j].fold.clone().map(|f| (i, f))))
                .collect();
            let need = pending
                .iter()
                .enumerate()
                .map(|(i, p)| match at(p) {
                    Some(j) => {
                        let len = p[j].fold.as_ref().map_or(cache.len(i), Vec::len);
                        len.max(cache.len(i)) + 1
                    }
                    None => 0,
                })
                .max()
                .unwrap_or(0);
            cache.ensure_capacity(need);
            cache.remap(&folds);
            let step: Vec<Option<Token>> = pending
                .iter()
                .map(|p| at(p).map(|j| p[j].token.clone()))
                .collect();
            let positions: Vec<usize> = pending
                .iter()
                .map(|p| at(p).map_or(0, |j| p[j].position))
                .collect();
            last = Some(cache.append_rows_at(model, &step, &positions));
        }
        let (la, lt) = last.expect("at least one call").to_host();
        for (i, p) in pending.iter().enumerate() {
            if !p.is_empty() {
                action[i * a..(i + 1) * a].copy_from_slice(&la[i * a..(i + 1) * a]);
                token_type[i * t..(i + 1) * t].copy_from_slice(&lt[i * t..(i + 1) * t]);
            }
        }
        rebuilt
    }
}

/// [`Decoder`] without a cache: every call runs the model over every row's whole token list.
pub struct FullRerun<'m> {
    model: &'m AdModel,
    device: Device,
}

impl<'m> FullRerun<'m> {
    /// `model` in inference mode (`model.valid()`) on `device`.
    pub fn new(model: &'m AdModel, device: &Device) -> Self {
        Self {
            model,
            device: device.clone(),
        }
    }
}

impl Decoder for FullRerun<'_> {
    fn decode(&mut self, rows: &[RowTokens], action: &mut [f32], token_type: &mut [f32]) -> usize {
        let c = self.model.config();
        let contexts: Vec<Vec<Token>> = rows.iter().map(RowTokens::to_vec).collect();
        let mut batch = batch_from_tokens(&contexts, c.feat_dim);
        batch.visibility = rows.iter().map(|r| r.visibility.clone()).collect();
        let logits = self.model.forward(&batch, &self.device);
        let read =
            |t: burn::tensor::Tensor<3>| t.into_data().try_to_vec::<f32>().expect("f32 logits");
        let (la, lt) = (read(logits.action), read(logits.token_type));
        let (l, a, t) = (batch.seq_len, c.n_actions, token_type::COUNT);
        for (b, &len) in batch.lengths.iter().enumerate() {
            let p = b * l + len - 1;
            action[b * a..(b + 1) * a].copy_from_slice(&la[p * a..(p + 1) * a]);
            token_type[b * t..(b + 1) * t].copy_from_slice(&lt[p * t..(p + 1) * t]);
        }
        0
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
pub(crate) mod tests;
