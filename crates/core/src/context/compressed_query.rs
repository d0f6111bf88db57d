//! Compressed context, query objective (DESIGN §5, §7): previous + current region with
//! markers, then the query.
//!
//! Training: sample `g` is transition `g` as the query; with `P` the previous region and `C`
//! the query's region: `<c> C[start..g] q(s_g)` in a history's first region, else
//! `<c> P </c> <c> C[start..g] q(s_g)`; the query is supervised with `a_g` and the type of
//! the token after `g`.
//!
//! Evaluation keeps at most two rollout regions with their markers:
//!
//! ```text
//! step 0        <c> q
//! step t < I    <c> T0 .. T(t-1) q
//! step I        <c> T0 .. T(I-1) </c> <c> q
//! step 2I       <c> T(I) .. T(2I-1) </c> <c> q            (region 0 dropped)
//! step 2I+1     <c> T(I) .. T(2I-1) </c> <c> T(2I) q
//! ```
//!
//! so a context with its query never exceeds `2I + 3` tokens. The query is not stored: the
//! caller appends `q(s_t)` when it asks the model for an action.

use super::tokens::{PrevTransition, transition_feature_dim};
use super::{
    CacheEvent, ContextLayout, HistoryView, RollingState, SequenceSink, Token, write_query,
};
use crate::config::Boundary;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedQuery {
    /// The compress interval `I`: the longest a region may be.
    pub interval: usize,
    /// How evaluation closes regions: after `interval` transitions, or earlier when the
    /// token-type head predicts `</c>` (`Boundary::Predicted`).
    pub boundary: Boundary,
}

impl CompressedQuery {
    pub fn new(interval: usize, boundary: Boundary) -> Self {
        Self { interval, boundary }
    }
}

/// Longest compressed sequence: `<c> P </c> <c>` + a region + one more (query or marker).
pub(super) fn compressed_max_len(interval: usize) -> usize {
    2 * interval + 3
}

impl ContextLayout for CompressedQuery {
    fn name(&self) -> &'static str {
        "compressed"
    }

    fn context_name(&self) -> &'static str {
        "compressed"
    }

    fn objective_name(&self) -> &'static str {
        "query"
    }

    fn feature_noun(&self) -> &'static str {
        "transitions"
    }

    fn max_len(&self) -> usize {
        compressed_max_len(self.interval)
    }

    fn feat_dim(&self, obs_dim: usize, n_actions: usize) -> usize {
        transition_feature_dim(obs_dim, n_actions)
    }

    fn n_samples(&self, view: &dyn HistoryView) -> usize {
        view.n_transitions()
    }

    fn sample_len(&self, view: &dyn HistoryView, g: usize) -> usize {
        let region = view.region_of(g);
        let prefix = g - view.region(region).start;
        match view.previous_region(region) {
            None => prefix + 2,
            Some(p) => p.len() + prefix + 4,
        }
    }

    fn write_sample(&self, view: &dyn HistoryView, g: usize, out: &mut dyn SequenceSink) {
        let region = view.region_of(g);
        out.open();
        if let Some(p) = view.previous_region(region) {
            for t in p.start..p.end {
                out.transition(t);
            }
            out.close();
            out.open();
        }
        for t in view.region(region).start..g {
            out.transition(t);
        }
        write_query(view, g, region, out);
    }

    fn start(&self, state: &mut RollingState) {
        let interval = self.interval;
        assert!(
            interval >= 2,
            "compress interval must be >= 2, got {interval}"
        );
        state.tokens.push(Token::Open);
    }

    fn first_token(&self, _s: &[i32], _n_actions: usize) -> Option<Token> {
        None
    }

    fn step_token(&self, prev: PrevTransition<'_>, _s_now: &[i32], n_actions: usize) -> Token {
        Token::transition(prev.s, prev.a, prev.r, prev.s_next, n_actions)
    }

    fn query_token(&self, state_index: usize) -> Option<Token> {
        Some(Token::Query(state_index))
    }

    /// Add the transition just taken; `predicted_close`: the head predicted `</c>` after it
    /// (used only with `Boundary::Predicted`; a region still closes at `interval`).
    fn push(&self, state: &mut RollingState, token: Token, predicted_close: bool) -> CacheEvent {
        state.tokens.push(token);
        state.current += 1;
        let close = state.current >= self.interval
            || (self.boundary == Boundary::Predicted && predicted_close);
        if !close {
            CacheEvent::Appended(1)
        } else if state.close_region() {
            CacheEvent::Shifted
        } else {
            CacheEvent::Appended(3)
        }
    }
}
