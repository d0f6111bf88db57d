//! Memory context, dense objective (DESIGN §5b): the compressed context plus `M` memory
//! tokens per closed region, through which every later region reads the dropped ones.
//!
//! A sample is one whole history, written as a [`Chain`] of blocks, one per region `k`:
//!
//! ```text
//! block 0   <c> C0 </c> m1 … mM
//! block k   <c> P </c> <c> Ck </c> m1 … mM          (P = region k-1; the last block of a
//!                                                    history ends after Ck if it is open)
//! ```
//!
//! with the compressed layout's positions inside each block (memory tokens have none: their
//! slot is embedded instead, and under concat their region's index). Every token of `Ck` is
//! supervised; the rest is context. A block's tokens attend to the memory of earlier blocks
//! (all of it under concat, slot means under merge) and causally to their own block; the
//! memory tokens close their block, so they see it whole.
//!
//! With `train_regions = R > 0` a history is cut into chunks of `R` regions: chunk `c`'s
//! sample is the chain of blocks `0 … cR+R-1` (the history's end at the latest), supervised
//! only in blocks `cR …`; the blocks before it only give the memory entering the chunk,
//! which takes no gradient ([`Chain::freeze_before`]). Every transition is still supervised
//! exactly once per pass.
//!
//! Evaluation keeps the same chain: at the close of region `j` it appends `</c>` and `M_j`,
//! then opens block `j+1` with `<c> R_j </c> <c>` (`R_j`: region `j`'s dense tokens again)
//! before the next step's token. Every event is an append; a key/value cache keeps only the
//! memory rows and the current block ([`Chain`] says which), so what a step attends to is
//! bounded under merge by `2I + 4 + 2M` tokens.

use super::chain::{Chain, MemoryUpdate};
use super::compressed_query::compressed_max_len;
use super::tokens::{PrevTransition, dense_feature_dim};
use super::{
    CacheEvent, ContextLayout, HistoryView, RollingState, SequenceSink, Token, Visibility,
    dense_run, dense_token,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryDense {
    /// The compress interval `I`: every region is `I` transitions long.
    pub interval: usize,
    /// `M`: memory tokens per closed region.
    pub slots: usize,
    pub update: MemoryUpdate,
    /// Regions supervised per sample; 0 = whole histories.
    pub train_regions: usize,
    /// `[n_histories + 1]`: prefix sums of each history's chunk count, made by `prepare`.
    chunks: Vec<usize>,
}

impl MemoryDense {
    pub fn new(interval: usize, slots: usize, update: MemoryUpdate) -> Self {
        Self {
            interval,
            slots,
            update,
            train_regions: 0,
            chunks: Vec::new(),
        }
    }

    /// Cut histories into chunks of `regions` regions (0: whole histories).
    pub fn with_train_regions(mut self, regions: usize) -> Self {
        self.train_regions = regions;
        self
    }

    /// History and chunk of `sample`: the history, and the blocks `[first, end)` its
    /// sequence supervises (`0..n_regions` for whole histories).
    fn chunk(&self, view: &dyn HistoryView, sample: usize) -> (usize, std::ops::Range<usize>) {
        if self.train_regions == 0 {
            return (sample, 0..regions_of(view, sample).len());
        }
        debug_assert_eq!(
            self.chunks.len(),
            view.n_histories() + 1,
            "MemoryDense used with histories it was not prepared for"
        );
        let h = self.chunks.partition_point(|&o| o <= sample) - 1;
        let first = (sample - self.chunks[h]) * self.train_regions;
        let end = (first + self.train_regions).min(regions_of(view, h).len());
        (h, first..end)
    }

    /// Region `k`'s memory token `i` (its region index is embedded only under concat).
    fn memory_token(&self, slot: usize, region: usize) -> Token {
        Token::Memory {
            slot,
            region: (self.update == MemoryUpdate::Concat).then_some(region),
        }
    }

    /// Tokens of block `k` over regions of `prev` and `cur` transitions (`prev` 0 for block
    /// 0), its memory included when the region is closed.
    fn block_len(&self, prev: Option<usize>, cur: usize, closed: bool) -> usize {
        let head = prev.map_or(1, |p| p + 3);
        head + cur + if closed { 1 + self.slots } else { 0 }
    }

    /// Push `</c>` and region `region`'s memory tokens at the end of `out`'s current block.
    fn write_memory(&self, region: usize, out: &mut dyn SequenceSink) -> usize {
        out.close();
        let first = out.memory(0, (self.update == MemoryUpdate::Concat).then_some(region));
        for slot in 1..self.slots {
            out.memory(
                slot,
                (self.update == MemoryUpdate::Concat).then_some(region),
            );
        }
        first
    }
}

impl ContextLayout for MemoryDense {
    fn name(&self) -> &'static str {
        match self.update {
            MemoryUpdate::Concat => "memory-concat-dense",
            MemoryUpdate::Merge => "memory-merge-dense",
        }
    }

    fn context_name(&self) -> &'static str {
        "memory"
    }

    fn objective_name(&self) -> &'static str {
        "dense"
    }

    fn feature_noun(&self) -> &'static str {
        "dense tokens"
    }

    /// Positions inside a block: `<c> P </c> <c> C </c>` (memory tokens take none).
    fn max_len(&self) -> usize {
        compressed_max_len(self.interval) + 1
    }

    fn feat_dim(&self, obs_dim: usize, n_actions: usize) -> usize {
        dense_feature_dim(obs_dim, n_actions)
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn prepare(&mut self, view: &dyn HistoryView) {
        if self.train_regions == 0 {
            return;
        }
        let r = self.train_regions;
        self.chunks = std::iter::once(0)
            .chain((0..view.n_histories()).scan(0, |acc, h| {
                *acc += regions_of(view, h).len().div_ceil(r);
                Some(*acc)
            }))
            .collect();
    }

    fn n_samples(&self, view: &dyn HistoryView) -> usize {
        if self.train_regions == 0 {
            return view.n_histories();
        }
        *self
            .chunks
            .last()
            .expect("MemoryDense is prepared before use")
    }

    fn sample_len(&self, view: &dyn HistoryView, sample: usize) -> usize {
        let (h, chunk) = self.chunk(view, sample);
        regions_of(view, h)
            .take(chunk.end)
            .map(|r| {
                let cur = view.region(r);
                let prev = view.previous_region(r).map(|p| p.len());
                self.block_len(prev, cur.len(), cur.closed)
            })
            .sum()
    }

    fn write_sample(&self, view: &dyn HistoryView, sample: usize, out: &mut dyn SequenceSink) {
        let (h, chunk) = self.chunk(view, sample);
        let h0 = view.history_range(h).start;
        let mut chain = Chain::new(self.update, self.slots);
        chain.freeze_before(chunk.start);
        let mut at = 0;
        for (k, r) in regions_of(view, h).take(chunk.end).enumerate() {
            let cur = view.region(r);
            chain.open_block(at);
            out.open();
            if let Some(p) = view.previous_region(r) {
                dense_run(view, p.start..p.end, h0, false, out);
                out.close();
                out.open();
            }
            dense_run(view, cur.start..cur.end, h0, k >= chunk.start, out);
            if cur.closed {
                chain.set_memory(self.write_memory(k, out));
            }
            let prev = view.previous_region(r).map(|p| p.len());
            at += self.block_len(prev, cur.len(), cur.closed);
        }
        out.visibility(Visibility::Chain(chain));
    }

    fn start(&self, state: &mut RollingState) {
        assert!(
            self.interval >= 2,
            "compress interval must be >= 2, got {}",
            self.interval
        );
        let mut chain = Chain::new(self.update, self.slots);
        chain.open_block(0);
        state.tokens.push(Token::Open);
        state.visibility = Visibility::Chain(chain);
    }

    fn first_token(&self, s: &[i32], n_actions: usize) -> Option<Token> {
        Some(dense_token(None, s, n_actions))
    }

    fn step_token(&self, prev: PrevTransition<'_>, s_now: &[i32], n_actions: usize) -> Token {
        dense_token(Some(prev), s_now, n_actions)
    }

    fn query_token(&self, _state_index: usize) -> Option<Token> {
        None
    }

    /// Add the next step's dense token, closing the current region first when it is full:
    /// `</c>`, its memory, then block `j+1`'s `<c> R_j </c> <c>`. Every change is an append.
    fn push(&self, state: &mut RollingState, token: Token, _predicted_close: bool) -> CacheEvent {
        let before = state.tokens.len();
        if state.current >= self.interval {
            let region = state.closed;
            let first = state.current_open + 1;
            let closed: Vec<Token> = state.tokens[first..first + state.current].to_vec();
            state.tokens.push(Token::Close);
            let Visibility::Chain(chain) = &mut state.visibility else {
                unreachable!("a memory context's visibility is its chain")
            };
            chain.set_memory(state.tokens.len());
            state
                .tokens
                .extend((0..self.slots).map(|i| self.memory_token(i, region)));
            chain.open_block(state.tokens.len());
            state.tokens.push(Token::Open);
            state.tokens.extend(closed);
            state.tokens.push(Token::Close);
            state.tokens.push(Token::Open);
            state.current_open = state.tokens.len() - 1;
            state.current = 0;
            state.closed += 1;
        }
        state.tokens.push(token);
        state.current += 1;
        CacheEvent::Appended(state.tokens.len() - before)
    }
}

/// Flat region numbers of history `h`, in order.
fn regions_of(view: &dyn HistoryView, h: usize) -> std::ops::Range<usize> {
    let range = view.history_range(h);
    let first = if range.is_empty() {
        0
    } else {
        view.region_of(range.start)
    };
    let n = if range.is_empty() {
        0
    } else {
        view.region_of(range.end - 1) + 1 - first
    };
    first..first + n
}
