//! Compressed context, dense objective (DESIGN §5a): one dense token per step, no query; the
//! context's last token is where the model reads `a_t`.
//!
//! Training: sample `r` is flat region `r` (region `k` of its history) with `P` the previous
//! region and `C` region `r`, as dense tokens: `<c> C` if `k = 0`, else `<c> P </c> <c> C`.
//! Every token of `C` is supervised; `P` and the markers are context only. Each token of `C`
//! thus sees exactly the context evaluation gives it, and every transition is supervised once
//! per pass.
//!
//! Evaluation: step `t` pushes `D(t)` = (previous transition, `s_t`). A region closes after
//! its `I`-th token has been acted on, so the markers go in when the next token arrives:
//!
//! ```text
//! step 0        <c> D0
//! step t < I    <c> D0 .. Dt
//! step I        <c> D0 .. D(I-1) </c> <c> DI
//! step 2I       <c> DI .. D(2I-1) </c> <c> D(2I)                (region 0 dropped)
//! ```

use super::compressed_query::compressed_max_len;
use super::tokens::{PrevTransition, dense_feature_dim};
use super::{
    CacheEvent, ContextLayout, HistoryView, RollingState, SequenceSink, Token, dense_run,
    dense_token,
};
use crate::config::Boundary;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedDense {
    /// The compress interval `I`: the longest a region may be.
    pub interval: usize,
    /// How evaluation closes regions (see [`super::CompressedQuery::boundary`]).
    pub boundary: Boundary,
}

impl CompressedDense {
    pub fn new(interval: usize, boundary: Boundary) -> Self {
        Self { interval, boundary }
    }
}

impl ContextLayout for CompressedDense {
    fn name(&self) -> &'static str {
        "compressed-dense"
    }

    fn context_name(&self) -> &'static str {
        "compressed"
    }

    fn objective_name(&self) -> &'static str {
        "dense"
    }

    fn feature_noun(&self) -> &'static str {
        "dense tokens"
    }

    fn max_len(&self) -> usize {
        compressed_max_len(self.interval)
    }

    fn feat_dim(&self, obs_dim: usize, n_actions: usize) -> usize {
        dense_feature_dim(obs_dim, n_actions)
    }

    fn n_samples(&self, view: &dyn HistoryView) -> usize {
        view.n_regions()
    }

    fn sample_len(&self, view: &dyn HistoryView, r: usize) -> usize {
        let cur = view.region(r).len();
        match view.previous_region(r) {
            None => cur + 1,
            Some(p) => p.len() + cur + 3,
        }
    }

    fn write_sample(&self, view: &dyn HistoryView, r: usize, out: &mut dyn SequenceSink) {
        let cur = view.region(r);
        let h0 = view.history_range(cur.history).start;
        out.open();
        if let Some(p) = view.previous_region(r) {
            dense_run(view, p.start..p.end, h0, false, out);
            out.close();
            out.open();
        }
        dense_run(view, cur.start..cur.end, h0, true, out);
    }

    fn start(&self, state: &mut RollingState) {
        let interval = self.interval;
        assert!(
            interval >= 2,
            "compress interval must be >= 2, got {interval}"
        );
        state.tokens.push(Token::Open);
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

    /// Add the next step's dense token. `predicted_close`: the head predicted `</c>` after
    /// the current last token, the one just acted on. That token's region closes first if it
    /// is full (or by the prediction), then the new token goes in; a region is never empty.
    fn push(&self, state: &mut RollingState, token: Token, predicted_close: bool) -> CacheEvent {
        let close = state.current > 0
            && (state.current >= self.interval
                || (self.boundary == Boundary::Predicted && predicted_close));
        let shifted = close && state.close_region();
        state.tokens.push(token);
        state.current += 1;
        match (shifted, close) {
            (true, _) => CacheEvent::Shifted,
            (false, true) => CacheEvent::Appended(3),
            (false, false) => CacheEvent::Appended(1),
        }
    }
}
