//! Window context (standard AD), query objective: the last `n_transit - 1` transitions of the
//! same history (fewer near its start), then `q(s_t)`; no markers. The type label is the same
//! as in compressed mode so both modes train the same heads.

use super::tokens::{PrevTransition, transition_feature_dim};
use super::{
    CacheEvent, ContextLayout, HistoryView, RollingState, SequenceSink, Token, write_query,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowQuery {
    /// Sequence length, query included.
    pub n_transit: usize,
}

impl WindowQuery {
    pub fn new(n_transit: usize) -> Self {
        Self { n_transit }
    }

    /// First transition of the window of sample `g`, which lies in flat region `region`.
    fn first(&self, view: &dyn HistoryView, g: usize, region: usize) -> usize {
        let history = view.region(region).history;
        view.history_range(history)
            .start
            .max((g + 1).saturating_sub(self.n_transit))
    }
}

impl ContextLayout for WindowQuery {
    fn name(&self) -> &'static str {
        "window"
    }

    fn context_name(&self) -> &'static str {
        "window"
    }

    fn objective_name(&self) -> &'static str {
        "query"
    }

    fn feature_noun(&self) -> &'static str {
        "transitions"
    }

    fn max_len(&self) -> usize {
        self.n_transit
    }

    fn feat_dim(&self, obs_dim: usize, n_actions: usize) -> usize {
        transition_feature_dim(obs_dim, n_actions)
    }

    fn n_samples(&self, view: &dyn HistoryView) -> usize {
        view.n_transitions()
    }

    fn sample_len(&self, view: &dyn HistoryView, g: usize) -> usize {
        g - self.first(view, g, view.region_of(g)) + 1
    }

    fn write_sample(&self, view: &dyn HistoryView, g: usize, out: &mut dyn SequenceSink) {
        let region = view.region_of(g);
        for t in self.first(view, g, region)..g {
            out.transition(t);
        }
        write_query(view, g, region, out);
    }

    fn start(&self, _state: &mut RollingState) {
        let n_transit = self.n_transit;
        assert!(n_transit >= 2, "n_transit must be >= 2, got {n_transit}");
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

    fn push(&self, state: &mut RollingState, token: Token, _predicted_close: bool) -> CacheEvent {
        state.push_window(token, self.n_transit - 1)
    }
}
