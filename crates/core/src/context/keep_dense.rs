//! Memory context with `keep = "rewarded"`, dense objective (DESIGN §5b): the selective
//! baseline, no memory tokens. The compressed context keeps, as a prefix, the dense tokens of
//! dropped regions whose previous transition was rewarded — newest first, at most
//! `keep_max` — each with the kept token type and its index among the kept as a slot
//! embedding (no position):
//!
//! ```text
//! k = 0, 1 :  <c> [P </c> <c>] C                   nothing dropped yet
//! k ≥ 2    :  K_0 … K_{n-1} <c> P </c> <c> C       K: kept tokens of regions 0 … k-2
//! ```
//!
//! Training: one sequence per region, causal, every `C` token supervised. Evaluation: at
//! every close after the first, the region that leaves the context adds its rewarded tokens
//! to the kept ones, and the context is rebuilt (`CacheEvent::Shifted`).

use super::compressed_dense::CompressedDense;
use super::compressed_query::compressed_max_len;
use super::tokens::{PrevTransition, dense_feature_dim};
use super::{
    CacheEvent, ContextLayout, HistoryView, RollingState, SequenceSink, Token, dense_token,
};
use crate::config::Boundary;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepDense {
    /// The compress interval `I`.
    pub interval: usize,
    /// Most tokens kept.
    pub keep_max: usize,
    /// Index of `r_{t-1}` in a dense token's features (`obs_dim + n_actions`: after
    /// `s_{t-1}` and `one_hot(a_{t-1})`).
    pub reward_at: usize,
}

impl KeepDense {
    pub fn new(interval: usize, keep_max: usize, obs_dim: usize, n_actions: usize) -> Self {
        Self {
            interval,
            keep_max,
            reward_at: obs_dim + n_actions,
        }
    }

    fn block(&self) -> CompressedDense {
        CompressedDense::new(self.interval, Boundary::Fixed)
    }

    /// Transitions `g` whose dense tokens region `r`'s sequence keeps, newest first: those of
    /// the history's regions before `r`'s previous one whose previous transition (in the same
    /// history) was rewarded.
    fn kept(&self, view: &dyn HistoryView, r: usize) -> Vec<usize> {
        let cur = view.region(r);
        let h0 = view.history_range(cur.history).start;
        let Some(prev) = view.previous_region(r) else {
            return Vec::new();
        };
        (h0 + 1..prev.start)
            .rev()
            .filter(|&g| view.reward(g - 1) > 0.0)
            .take(self.keep_max)
            .collect()
    }

    fn rewarded(&self, token: &Token) -> bool {
        matches!(token, Token::Transition(f) if f[self.reward_at] > 0.0)
    }
}

impl ContextLayout for KeepDense {
    fn name(&self) -> &'static str {
        "memory-keep-dense"
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

    /// Positions of the block (kept tokens take none).
    fn max_len(&self) -> usize {
        compressed_max_len(self.interval)
    }

    fn feat_dim(&self, obs_dim: usize, n_actions: usize) -> usize {
        dense_feature_dim(obs_dim, n_actions)
    }

    fn slots(&self) -> usize {
        self.keep_max
    }

    fn n_samples(&self, view: &dyn HistoryView) -> usize {
        view.n_regions()
    }

    fn sample_len(&self, view: &dyn HistoryView, r: usize) -> usize {
        self.kept(view, r).len() + self.block().sample_len(view, r)
    }

    fn write_sample(&self, view: &dyn HistoryView, r: usize, out: &mut dyn SequenceSink) {
        let h0 = view.history_range(view.region(r).history).start;
        for (slot, g) in self.kept(view, r).into_iter().enumerate() {
            out.kept(g, h0, slot);
        }
        self.block().write_sample(view, r, out);
    }

    fn start(&self, state: &mut RollingState) {
        self.block().start(state);
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

    /// Add the next step's dense token, closing the current region first when it is full.
    /// From the second close on, the previous region leaves the context: its rewarded tokens
    /// join the kept ones (newest first, at most `keep_max`) and the context is rebuilt.
    fn push(&self, state: &mut RollingState, token: Token, _predicted_close: bool) -> CacheEvent {
        if state.current < self.interval {
            state.tokens.push(token);
            state.current += 1;
            return CacheEvent::Appended(1);
        }
        if state.closed == 0 {
            // First close: nothing leaves the context yet.
            let event = self.block().push(state, token, false);
            return event;
        }
        // tokens = kept | <c> P </c> <c> C
        let prefix = state.prefix;
        let p_end = state.current_open - 1;
        let mut kept: Vec<Token> = state.tokens[prefix + 1..p_end]
            .iter()
            .rev()
            .filter(|t| self.rewarded(t))
            .cloned()
            .collect();
        kept.extend(
            state.tokens[..prefix]
                .iter()
                .map(|t| Token::Transition(t.features().expect("kept").to_vec())),
        );
        kept.truncate(self.keep_max);
        let current: Vec<Token> = state.tokens[state.current_open + 1..].to_vec();
        state.tokens.clear();
        state
            .tokens
            .extend(kept.into_iter().enumerate().map(|(slot, t)| Token::Kept {
                features: t.features().expect("a dense token").to_vec(),
                slot,
            }));
        state.prefix = state.tokens.len();
        state.tokens.push(Token::Open);
        state.tokens.extend(current);
        state.tokens.push(Token::Close);
        state.tokens.push(Token::Open);
        state.current_open = state.tokens.len() - 1;
        state.closed += 1;
        state.current = 1;
        state.tokens.push(token);
        CacheEvent::Shifted
    }
}
