//! [`RollingContext`]: one environment's context during evaluation (DESIGN §7), as plain data,
//! and the [`CacheEvent`]s that tell a key/value cache what each step did to it.

use super::token::Token;
use super::tokens::PrevTransition;
use super::{Layout, Visibility};

/// What a step did to a context's token list, i.e. what a key/value cache of it must do.
///
/// Every change a layout makes is one of three kinds, which is all a cache needs to know
/// (the [`Visibility`] of the new entries travels with the context):
/// - tokens appended at the end: a transition, `</c> <c>`, or memory tokens summarising a
///   dropped region (memory is ordinary context entries with their own visibility, so the
///   "extra key/value slots" a memory needs are cache rows like any other);
/// - the list rewritten from position `p` on: a region dropped (the entries after it
///   re-based), a region re-encoded under a new visibility, memory merged into fewer slots —
///   the cache keeps its first `p` entries and recomputes the rest;
/// - `p = 0`: every position moved (today's front drop), the row is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// `n` tokens were appended at the end; earlier tokens kept their positions and their
    /// visibility, so a key/value cache of the context only needs these `n` appended.
    Appended(usize),
    /// Tokens from position `from` (≥ 1) on were replaced or re-based; the first `from` are
    /// unchanged, so a cache keeps them and recomputes the rest.
    Rewritten { from: usize },
    /// Tokens were dropped at the front (a region or the oldest window transition): every
    /// position moved, so a cache of this context must be rebuilt from position 0.
    Shifted,
}

impl CacheEvent {
    /// Leading tokens of a context of `len` tokens (after the event) that a cache of it
    /// still holds correctly; 0 means rebuild.
    pub fn unchanged(self, len: usize) -> usize {
        match self {
            CacheEvent::Appended(n) => len - n,
            CacheEvent::Rewritten { from } => from.min(len),
            CacheEvent::Shifted => 0,
        }
    }
}

/// The token list of a rolling context and the bookkeeping its layout keeps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RollingState {
    /// The tokens, query not included.
    pub tokens: Vec<Token>,
    /// Transitions (dense tokens) in the current region, or in the window.
    pub current: usize,
    /// Compressed: index of the current region's `<c>`; 0 while there is no previous region.
    pub current_open: usize,
    /// Regions closed so far.
    pub closed: usize,
    /// Which earlier tokens each token sees (the query included, as the last block's).
    pub visibility: Visibility,
    /// Tokens before the first region's `<c>` (kept tokens of dropped regions).
    pub prefix: usize,
}

impl RollingState {
    /// Close the current region: drop the previous region if there is one, then `</c> <c>`.
    /// Returns whether tokens were dropped at the front.
    pub fn close_region(&mut self) -> bool {
        self.closed += 1;
        self.current = 0;
        // `current_open > 0` means `<c> P </c>` precedes the region that just closed.
        let shifted = self.current_open > 0;
        if shifted {
            self.tokens.drain(..self.current_open);
        }
        self.tokens.push(Token::Close);
        self.tokens.push(Token::Open);
        self.current_open = self.tokens.len() - 1;
        shifted
    }

    /// Append `token` and drop the oldest while more than `keep` remain (window layouts).
    pub fn push_window(&mut self, token: Token, keep: usize) -> CacheEvent {
        self.tokens.push(token);
        let shifted = self.tokens.len() > keep;
        if shifted {
            self.tokens.remove(0);
        }
        self.current = self.tokens.len();
        if shifted {
            CacheEvent::Shifted
        } else {
            CacheEvent::Appended(1)
        }
    }
}

/// One environment's context, in the grammar of its [`Layout`].
#[derive(Debug, Clone)]
pub struct RollingContext {
    layout: Layout,
    state: RollingState,
}

impl RollingContext {
    /// An empty context (`<c>` in compressed layouts, nothing in window layouts).
    pub fn new(layout: Layout) -> Self {
        let mut state = RollingState::default();
        layout.start(&mut state);
        Self { layout, state }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The tokens, query not included.
    pub fn tokens(&self) -> &[Token] {
        &self.state.tokens
    }

    /// Which earlier tokens each token sees (causal in every layout today).
    pub fn visibility(&self) -> &Visibility {
        &self.state.visibility
    }

    pub fn len(&self) -> usize {
        self.state.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.tokens.is_empty()
    }

    /// Transitions (dense tokens) in the current region (compressed) or in the window.
    pub fn current_region_len(&self) -> usize {
        self.state.current
    }

    /// Regions closed so far (compressed layouts).
    pub fn regions_closed(&self) -> usize {
        self.state.closed
    }

    /// The environment's first observation `s`: its token, if the layout has one.
    pub fn begin(&mut self, s: &[i32], n_actions: usize) -> CacheEvent {
        match self.layout.first_token(s, n_actions) {
            Some(t) => self.push(t, false),
            None => CacheEvent::Appended(0),
        }
    }

    /// A step was taken: add its token (see [`super::ContextLayout::step_token`]).
    pub fn observe(
        &mut self,
        prev: PrevTransition<'_>,
        s_now: &[i32],
        n_actions: usize,
        predicted_close: bool,
    ) -> CacheEvent {
        let token = self.layout.step_token(prev, s_now, n_actions);
        self.push(token, predicted_close)
    }

    /// Add a token as the layout's grammar says (see [`super::ContextLayout::push`]).
    pub fn push(&mut self, token: Token, predicted_close: bool) -> CacheEvent {
        debug_assert!(matches!(token, Token::Transition(_)));
        self.layout.push(&mut self.state, token, predicted_close)
    }

    /// The query of state `state_index`, if the layout reads one after the context.
    pub fn query(&self, state_index: usize) -> Option<Token> {
        self.layout.query_token(state_index)
    }

    /// What the model reads: the tokens, then `query` if there is one.
    pub fn with_query(&self, query: Option<&Token>) -> Vec<Token> {
        let mut v = Vec::with_capacity(self.len() + 1);
        v.extend_from_slice(&self.state.tokens);
        v.extend(query.cloned());
        v
    }
}
