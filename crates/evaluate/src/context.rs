//! [`RollingContext`]: one environment's context during evaluation (DESIGN §7), as plain data.
//!
//! Compressed mode keeps at most two rollout regions with their markers:
//!
//! ```text
//! step 0        <c> q
//! step t < I    <c> T0 .. T(t-1) q
//! step I        <c> T0 .. T(I-1) </c> <c> q
//! step 2I       <c> T(I) .. T(2I-1) </c> <c> q            (region 0 dropped)
//! step 2I+1     <c> T(I) .. T(2I-1) </c> <c> T(2I) q
//! ```
//!
//! so a context with its query never exceeds `2I + 3` tokens. Window mode keeps the last
//! `n_transit - 1` transitions, no markers. The query is not stored here: the caller appends
//! `q(s_t)` when it asks the model for an action.

use ccad_core::config::{Boundary, Config, ContextMode};
use model::Token;

/// Which context an evaluation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextSpec {
    /// Previous + current region with `<c>` / `</c>`; a region closes after `interval`
    /// transitions, or earlier when the token-type head predicts `</c>` (`Boundary::Predicted`).
    Compressed { interval: usize, boundary: Boundary },
    /// The last `n_transit - 1` transitions.
    Window { n_transit: usize },
}

impl ContextSpec {
    /// The context the config trained with (`dataset.context`), with `eval.boundary`.
    pub fn from_config(cfg: &Config) -> Self {
        match cfg.dataset.context {
            ContextMode::Compressed => ContextSpec::Compressed {
                interval: cfg.compress_interval(),
                boundary: cfg.eval.boundary,
            },
            ContextMode::Window => ContextSpec::Window {
                n_transit: cfg.dataset.n_transit,
            },
        }
    }

    /// Longest sequence, query included: `2I + 3` compressed, `n_transit` window.
    pub fn max_len(&self) -> usize {
        match *self {
            ContextSpec::Compressed { interval, .. } => 2 * interval + 3,
            ContextSpec::Window { n_transit } => n_transit,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ContextSpec::Compressed { .. } => "compressed",
            ContextSpec::Window { .. } => "window",
        }
    }
}

/// What [`RollingContext::push`] did to the token list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `n` tokens were appended at the end; earlier tokens kept their positions, so a key/value
    /// cache of the context only needs these `n` appended.
    Appended(usize),
    /// Tokens were dropped at the front (a region or the oldest window transition): every
    /// position moved, so a cache of this context must be rebuilt.
    Shifted,
}

/// One environment's context, without the query.
#[derive(Debug, Clone, PartialEq)]
pub struct RollingContext {
    spec: ContextSpec,
    tokens: Vec<Token>,
    /// Compressed: transitions in the current (open) region.
    current: usize,
    /// Compressed: index of the current region's `<c>`; 0 while there is no previous region.
    current_open: usize,
    /// Regions closed so far.
    closed: usize,
}

impl RollingContext {
    /// An empty context: `<c>` in compressed mode, nothing in window mode.
    pub fn new(spec: ContextSpec) -> Self {
        let tokens = match spec {
            ContextSpec::Compressed { interval, .. } => {
                assert!(
                    interval >= 2,
                    "compress interval must be >= 2, got {interval}"
                );
                vec![Token::Open]
            }
            ContextSpec::Window { n_transit } => {
                assert!(n_transit >= 2, "n_transit must be >= 2, got {n_transit}");
                Vec::new()
            }
        };
        Self {
            spec,
            tokens,
            current: 0,
            current_open: 0,
            closed: 0,
        }
    }

    pub fn spec(&self) -> ContextSpec {
        self.spec
    }

    /// The tokens, query not included.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Transitions in the current region (compressed) or in the window.
    pub fn current_region_len(&self) -> usize {
        match self.spec {
            ContextSpec::Compressed { .. } => self.current,
            ContextSpec::Window { .. } => self.tokens.len(),
        }
    }

    /// Regions closed so far (compressed mode).
    pub fn regions_closed(&self) -> usize {
        self.closed
    }

    /// The tokens followed by `query`: what the model reads to act.
    pub fn with_query(&self, query: Token) -> Vec<Token> {
        let mut v = Vec::with_capacity(self.tokens.len() + 1);
        v.extend_from_slice(&self.tokens);
        v.push(query);
        v
    }

    /// Add the transition just taken. `predicted_close`: the token-type head predicted `</c>`
    /// after it (used only with `Boundary::Predicted`; a region still closes at `interval`).
    pub fn push(&mut self, transition: Token, predicted_close: bool) -> Change {
        debug_assert!(matches!(transition, Token::Transition(_)));
        match self.spec {
            ContextSpec::Window { n_transit } => {
                self.tokens.push(transition);
                if self.tokens.len() > n_transit - 1 {
                    self.tokens.remove(0);
                    Change::Shifted
                } else {
                    Change::Appended(1)
                }
            }
            ContextSpec::Compressed { interval, boundary } => {
                self.tokens.push(transition);
                self.current += 1;
                let close = self.current >= interval
                    || (boundary == Boundary::Predicted && predicted_close);
                if !close {
                    return Change::Appended(1);
                }
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
                if shifted {
                    Change::Shifted
                } else {
                    Change::Appended(3)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transition `i` of a scripted policy, recognisable by its first feature.
    fn tr(i: usize) -> Token {
        Token::Transition(vec![i as f32])
    }

    fn trs(range: std::ops::Range<usize>) -> Vec<Token> {
        range.map(tr).collect()
    }

    fn compressed(interval: usize, boundary: Boundary) -> RollingContext {
        RollingContext::new(ContextSpec::Compressed { interval, boundary })
    }

    /// Context + query at step `t`, after pushing transitions 0..t.
    fn at(ctx: &RollingContext) -> Vec<Token> {
        ctx.with_query(Token::Query(0))
    }

    #[test]
    fn compressed_token_lists_at_the_design_steps() {
        let i = 5;
        let mut ctx = compressed(i, Boundary::Fixed);
        let q = Token::Query(0);
        let mut changes = Vec::new();
        let mut seen = std::collections::BTreeMap::new();
        for t in 0..=(3 * i + 1) {
            let seq = at(&ctx);
            assert!(seq.len() <= 2 * i + 3, "step {t}: {} tokens", seq.len());
            seen.insert(t, seq);
            changes.push(ctx.push(tr(t), false));
        }
        // step 0: <c> q
        assert_eq!(seen[&0], vec![Token::Open, q.clone()]);
        // step I-1: <c> T0..T(I-2) q
        let mut want = vec![Token::Open];
        want.extend(trs(0..i - 1));
        want.push(q.clone());
        assert_eq!(seen[&(i - 1)], want);
        // step I: <c> T0..T(I-1) </c> <c> q
        let mut want = vec![Token::Open];
        want.extend(trs(0..i));
        want.extend([Token::Close, Token::Open, q.clone()]);
        assert_eq!(seen[&i], want);
        // step 2I-1: the longest, <c> P(I) </c> <c> C(I-1) q = 2I + 3 tokens
        assert_eq!(seen[&(2 * i - 1)].len(), 2 * i + 3);
        // step 2I: region 0 dropped: <c> T(I)..T(2I-1) </c> <c> q
        let mut want = vec![Token::Open];
        want.extend(trs(i..2 * i));
        want.extend([Token::Close, Token::Open, q.clone()]);
        assert_eq!(seen[&(2 * i)], want);
        // step 2I+1: <c> T(I)..T(2I-1) </c> <c> T(2I) q
        let mut want = vec![Token::Open];
        want.extend(trs(i..2 * i));
        want.extend([Token::Close, Token::Open, tr(2 * i), q.clone()]);
        assert_eq!(seen[&(2 * i + 1)], want);

        // Pushing transition t: the first close appends `T </c> <c>`; later closes drop a region.
        assert_eq!(changes[i - 2], Change::Appended(1));
        assert_eq!(changes[i - 1], Change::Appended(3));
        assert_eq!(changes[i], Change::Appended(1));
        assert_eq!(changes[2 * i - 1], Change::Shifted);
        assert_eq!(changes[3 * i - 1], Change::Shifted);
        let shifts = changes.iter().filter(|c| **c == Change::Shifted).count();
        assert_eq!(shifts, 2, "one rebuild per dropped region");
        assert_eq!(ctx.regions_closed(), 3);
    }

    #[test]
    fn compressed_never_exceeds_2i_plus_3_over_many_regions() {
        for i in [2, 3, 80] {
            let mut ctx = compressed(i, Boundary::Fixed);
            let mut longest = 0;
            for t in 0..(7 * i + 3) {
                longest = longest.max(at(&ctx).len());
                ctx.push(tr(t), false);
            }
            assert_eq!(longest, 2 * i + 3, "I = {i}");
        }
    }

    #[test]
    fn fixed_boundary_ignores_the_prediction() {
        let mut ctx = compressed(4, Boundary::Fixed);
        assert_eq!(ctx.push(tr(0), true), Change::Appended(1));
        assert_eq!(ctx.current_region_len(), 1);
    }

    #[test]
    fn predicted_boundary_closes_early_and_is_capped_at_i() {
        let i = 4;
        let mut ctx = compressed(i, Boundary::Predicted);
        // Region 0: closed by the head after 2 transitions.
        assert_eq!(ctx.push(tr(0), false), Change::Appended(1));
        assert_eq!(ctx.push(tr(1), true), Change::Appended(3));
        assert_eq!(
            at(&ctx),
            vec![
                Token::Open,
                tr(0),
                tr(1),
                Token::Close,
                Token::Open,
                Token::Query(0)
            ]
        );
        // Region 1: the head never predicts `</c>`; the cap closes it after I transitions and
        // region 0 is dropped.
        for t in 2..2 + i - 1 {
            assert_eq!(ctx.push(tr(t), false), Change::Appended(1));
        }
        assert_eq!(ctx.push(tr(2 + i - 1), false), Change::Shifted);
        let mut want = vec![Token::Open];
        want.extend(trs(2..2 + i));
        want.extend([Token::Close, Token::Open, Token::Query(0)]);
        assert_eq!(at(&ctx), want);
        // Region 2 closed after one transition: region 1 dropped.
        assert_eq!(ctx.push(tr(9), true), Change::Shifted);
        assert_eq!(
            at(&ctx),
            vec![
                Token::Open,
                tr(9),
                Token::Close,
                Token::Open,
                Token::Query(0)
            ]
        );
        assert_eq!(ctx.regions_closed(), 3);
    }

    #[test]
    fn window_keeps_the_last_n_transit_minus_one() {
        let n = 4;
        let mut ctx = RollingContext::new(ContextSpec::Window { n_transit: n });
        assert_eq!(at(&ctx), vec![Token::Query(0)]);
        // Steps 1..=3: the window grows to n - 1 = 3 transitions, appended in place.
        for t in 0..n - 1 {
            assert_eq!(ctx.push(tr(t), false), Change::Appended(1));
        }
        assert_eq!(at(&ctx), vec![tr(0), tr(1), tr(2), Token::Query(0)]);
        // From then on the oldest transition drops every step.
        assert_eq!(ctx.push(tr(3), true), Change::Shifted);
        assert_eq!(at(&ctx), vec![tr(1), tr(2), tr(3), Token::Query(0)]);
        for t in 4..20 {
            assert_eq!(ctx.push(tr(t), false), Change::Shifted);
            assert!(at(&ctx).len() <= n);
        }
        assert_eq!(at(&ctx), vec![tr(17), tr(18), tr(19), Token::Query(0)]);
    }

    #[test]
    fn spec_from_config_and_max_len() {
        let mut cfg = Config::from_toml_str("", "x.toml", &[]).unwrap();
        let spec = ContextSpec::from_config(&cfg);
        assert_eq!(
            spec,
            ContextSpec::Compressed {
                interval: 80,
                boundary: Boundary::Fixed
            }
        );
        assert_eq!(spec.max_len(), 163);
        cfg.dataset.context = ContextMode::Window;
        assert_eq!(ContextSpec::from_config(&cfg).max_len(), 240);
    }
}
