//! Window context, dense objective (DESIGN §5a). Training: each history is cut into chunks of
//! `n_transit` consecutive steps from its start (the last may be shorter); sample = chunk, as
//! dense tokens, every one supervised, no markers. Evaluation keeps the last `n_transit`
//! dense tokens, so it equals a chunk's prefix while `t < n_transit` and a whole chunk where
//! one ends; in between, the chunk's prefix is the end of the evaluation window.

use super::tokens::{PrevTransition, dense_feature_dim};
use super::{
    CacheEvent, ContextLayout, HistoryView, RollingState, SequenceSink, Token, dense_run,
    dense_token,
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowDense {
    pub n_transit: usize,
    /// `[n_histories + 1]`: prefix sums of each history's chunk count, made by `prepare`.
    chunks: Vec<usize>,
}

impl WindowDense {
    pub fn new(n_transit: usize) -> Self {
        assert!(n_transit > 0, "n_transit must be > 0");
        Self {
            n_transit,
            chunks: Vec::new(),
        }
    }

    /// Transitions `[start, end)` (global ids) of chunk `sample` and its history's start.
    fn chunk(&self, view: &dyn HistoryView, sample: usize) -> (std::ops::Range<usize>, usize) {
        debug_assert_eq!(
            self.chunks.len(),
            view.n_histories() + 1,
            "WindowDense used with histories it was not prepared for"
        );
        let h = self.chunks.partition_point(|&o| o <= sample) - 1;
        let range = view.history_range(h);
        let start = range.start + (sample - self.chunks[h]) * self.n_transit;
        (start..(start + self.n_transit).min(range.end), range.start)
    }
}

impl ContextLayout for WindowDense {
    fn name(&self) -> &'static str {
        "window-dense"
    }

    fn context_name(&self) -> &'static str {
        "window"
    }

    fn objective_name(&self) -> &'static str {
        "dense"
    }

    fn feature_noun(&self) -> &'static str {
        "dense tokens"
    }

    fn max_len(&self) -> usize {
        self.n_transit
    }

    fn feat_dim(&self, obs_dim: usize, n_actions: usize) -> usize {
        dense_feature_dim(obs_dim, n_actions)
    }

    fn prepare(&mut self, view: &dyn HistoryView) {
        self.chunks = std::iter::once(0)
            .chain((0..view.n_histories()).scan(0, |acc, i| {
                *acc += view.history_range(i).len().div_ceil(self.n_transit);
                Some(*acc)
            }))
            .collect();
    }

    fn n_samples(&self, _view: &dyn HistoryView) -> usize {
        *self
            .chunks
            .last()
            .expect("WindowDense is prepared before use")
    }

    fn sample_len(&self, view: &dyn HistoryView, sample: usize) -> usize {
        self.chunk(view, sample).0.len()
    }

    fn write_sample(&self, view: &dyn HistoryView, sample: usize, out: &mut dyn SequenceSink) {
        let (gs, h0) = self.chunk(view, sample);
        dense_run(view, gs, h0, true, out);
    }

    fn start(&self, _state: &mut RollingState) {
        let n_transit = self.n_transit;
        assert!(n_transit >= 2, "n_transit must be >= 2, got {n_transit}");
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

    fn push(&self, state: &mut RollingState, token: Token, _predicted_close: bool) -> CacheEvent {
        state.push_window(token, self.n_transit)
    }
}
