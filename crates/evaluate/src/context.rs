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
//!
//! The dense objective (DESIGN §5a, [`RollingContext::dense`]) has no query token: step `t`
//! pushes one dense token `D(t)` = (previous transition, `s_t`), and the last token is where
//! the model reads `a_t`. A region closes after its `I`-th token has been acted on, so the
//! markers go in when the next token arrives:
//!
//! ```text
//! step 0        <c> D0
//! step t < I    <c> D0 .. Dt
//! step I        <c> D0 .. D(I-1) </c> <c> DI
//! step 2I       <c> DI .. D(2I-1) </c> <c> D(2I)                (region 0 dropped)
//! ```
//!
//! which is exactly the sequence `dataset::CompressedDense` trains each position with. Window
//! mode keeps the last `n_transit` dense tokens.

use ccad_core::config::{Boundary, Config, ContextMode, Objective};
use ccad_core::tokens::{PrevTransition, dense_feature_dim, dense_features};
use model::Token;

/// The dense-layout token of a step (DESIGN §5a): the environment's previous transition
/// (`None` at its first step; after an episode end, the terminal transition with
/// `done = true`) and the state `s` the next action is taken from.
pub fn dense_token(prev: Option<PrevTransition<'_>>, s: &[i32], n_actions: usize) -> Token {
    let mut f = vec![0.0; dense_feature_dim(s.len(), n_actions)];
    dense_features(prev, s, n_actions, &mut f);
    Token::Transition(f)
}

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

/// One environment's context: without the query ([`Objective::Query`]), or ending with the
/// token the model acts from ([`Objective::Dense`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RollingContext {
    spec: ContextSpec,
    objective: Objective,
    tokens: Vec<Token>,
    /// Compressed: transitions in the current (open) region.
    current: usize,
    /// Compressed: index of the current region's `<c>`; 0 while there is no previous region.
    current_open: usize,
    /// Regions closed so far.
    closed: usize,
}

impl RollingContext {
    /// An empty query-layout context: `<c>` in compressed mode, nothing in window mode.
    pub fn new(spec: ContextSpec) -> Self {
        Self::for_objective(spec, Objective::Query)
    }

    /// An empty dense-layout context (DESIGN §5a): `<c>` in compressed mode, nothing in window
    /// mode; [`Self::push`] then adds one dense token per step.
    pub fn dense(spec: ContextSpec) -> Self {
        Self::for_objective(spec, Objective::Dense)
    }

    /// An empty context in the token layout of `objective`.
    pub fn for_objective(spec: ContextSpec, objective: Objective) -> Self {
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
            objective,
            tokens,
            current: 0,
            current_open: 0,
            closed: 0,
        }
    }

    pub fn spec(&self) -> ContextSpec {
        self.spec
    }

    pub fn objective(&self) -> Objective {
        self.objective
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

    /// Transitions (dense tokens) in the current region (compressed) or in the window.
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

    /// The tokens followed by `query`: what the model reads to act (query layout).
    pub fn with_query(&self, query: Token) -> Vec<Token> {
        let mut v = Vec::with_capacity(self.tokens.len() + 1);
        v.extend_from_slice(&self.tokens);
        v.push(query);
        v
    }

    /// Query layout: add the transition just taken. `predicted_close`: the token-type head
    /// predicted `</c>` after it (used only with `Boundary::Predicted`; a region still closes
    /// at `interval`).
    ///
    /// Dense layout: add the next step's dense token. `predicted_close`: the token-type head
    /// predicted `</c>` after the current last token, the one just acted on. That token's
    /// region closes first if it is full (or by the prediction), then the new token goes in.
    pub fn push(&mut self, transition: Token, predicted_close: bool) -> Change {
        debug_assert!(matches!(transition, Token::Transition(_)));
        if self.objective == Objective::Dense {
            return self.push_dense(transition, predicted_close);
        }
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
                if self.close_region() {
                    Change::Shifted
                } else {
                    Change::Appended(3)
                }
            }
        }
    }

    fn push_dense(&mut self, token: Token, predicted_close: bool) -> Change {
        match self.spec {
            ContextSpec::Window { n_transit } => {
                self.tokens.push(token);
                if self.tokens.len() > n_transit {
                    self.tokens.remove(0);
                    Change::Shifted
                } else {
                    Change::Appended(1)
                }
            }
            ContextSpec::Compressed { interval, boundary } => {
                let close = self.current > 0
                    && (self.current >= interval
                        || (boundary == Boundary::Predicted && predicted_close));
                let shifted = close && self.close_region();
                self.tokens.push(token);
                self.current += 1;
                match (shifted, close) {
                    (true, _) => Change::Shifted,
                    (false, true) => Change::Appended(3),
                    (false, false) => Change::Appended(1),
                }
            }
        }
    }

    /// Close the current region: drop the previous region if there is one, then `</c> <c>`.
    /// Returns whether tokens were dropped at the front.
    fn close_region(&mut self) -> bool {
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

    // ---- dense layout ----

    fn dense(spec: ContextSpec) -> RollingContext {
        RollingContext::dense(spec)
    }

    /// Drive a dense compressed context for steps `0..=last` (head never closing); the token
    /// list after step t's token went in, i.e. what the model reads `a_t` from.
    fn dense_steps(i: usize, last: usize) -> (Vec<Vec<Token>>, Vec<Change>) {
        let mut ctx = dense(ContextSpec::Compressed {
            interval: i,
            boundary: Boundary::Fixed,
        });
        let (mut seen, mut changes) = (Vec::new(), Vec::new());
        for t in 0..=last {
            changes.push(ctx.push(tr(t), false));
            seen.push(ctx.tokens().to_vec());
        }
        (seen, changes)
    }

    #[test]
    fn dense_compressed_token_lists_at_the_design_steps() {
        let i = 5;
        let (seen, changes) = dense_steps(i, 3 * i + 1);
        let (o, c) = (Token::Open, Token::Close);
        // step 0: <c> D0
        assert_eq!(seen[0], vec![o.clone(), tr(0)]);
        // step I-1: <c> D0..D(I-1), the region full but not yet closed.
        let mut want = vec![o.clone()];
        want.extend(trs(0..i));
        assert_eq!(seen[i - 1], want);
        // step I: <c> D0..D(I-1) </c> <c> DI
        let mut want = vec![o.clone()];
        want.extend(trs(0..i));
        want.extend([c.clone(), o.clone(), tr(i)]);
        assert_eq!(seen[i], want);
        // step 2I-1: the longest, <c> P(I) </c> <c> C(I) = 2I + 3 tokens
        assert_eq!(seen[2 * i - 1].len(), 2 * i + 3);
        // step 2I: region 0 dropped: <c> DI..D(2I-1) </c> <c> D(2I)
        let mut want = vec![o.clone()];
        want.extend(trs(i..2 * i));
        want.extend([c.clone(), o.clone(), tr(2 * i)]);
        assert_eq!(seen[2 * i], want);
        // step 2I+1: <c> DI..D(2I-1) </c> <c> D(2I) D(2I+1)
        let mut want = vec![o.clone()];
        want.extend(trs(i..2 * i));
        want.extend([c.clone(), o.clone(), tr(2 * i), tr(2 * i + 1)]);
        assert_eq!(seen[2 * i + 1], want);
        // The last token is always the step's own.
        for (t, s) in seen.iter().enumerate() {
            assert_eq!(s.last(), Some(&tr(t)), "step {t}");
        }

        // Closes append `</c> <c> D` the first time, then drop a region (a cache rebuild).
        assert_eq!(changes[0], Change::Appended(1));
        assert_eq!(changes[i - 1], Change::Appended(1));
        assert_eq!(changes[i], Change::Appended(3));
        assert_eq!(changes[i + 1], Change::Appended(1));
        assert_eq!(changes[2 * i], Change::Shifted);
        assert_eq!(changes[3 * i], Change::Shifted);
        assert_eq!(changes.iter().filter(|c| **c == Change::Shifted).count(), 2);
    }

    #[test]
    fn dense_compressed_never_exceeds_2i_plus_3() {
        for i in [2, 3, 80] {
            let (seen, _) = dense_steps(i, 7 * i + 3);
            let longest = seen.iter().map(Vec::len).max().unwrap();
            assert_eq!(longest, 2 * i + 3, "I = {i}");
        }
    }

    #[test]
    fn dense_predicted_boundary_closes_after_the_token_acted_on() {
        let i = 4;
        let mut ctx = dense(ContextSpec::Compressed {
            interval: i,
            boundary: Boundary::Predicted,
        });
        // A prediction before any token of the region is ignored: a region is never empty.
        assert_eq!(ctx.push(tr(0), true), Change::Appended(1));
        assert_eq!(ctx.push(tr(1), false), Change::Appended(1));
        // The head at D1 predicted `</c>`: D2 opens region 1.
        assert_eq!(ctx.push(tr(2), true), Change::Appended(3));
        assert_eq!(
            ctx.tokens(),
            [Token::Open, tr(0), tr(1), Token::Close, Token::Open, tr(2)]
        );
        // Region 1 hits the cap I: D6 opens region 2 and region 0 goes.
        for t in 3..6 {
            assert_eq!(ctx.push(tr(t), false), Change::Appended(1));
        }
        assert_eq!(ctx.push(tr(6), false), Change::Shifted);
        let mut want = vec![Token::Open];
        want.extend(trs(2..6));
        want.extend([Token::Close, Token::Open, tr(6)]);
        assert_eq!(ctx.tokens(), want);
        assert_eq!(ctx.regions_closed(), 2);
        // Fixed boundaries ignore the head.
        let mut fixed = dense(ContextSpec::Compressed {
            interval: i,
            boundary: Boundary::Fixed,
        });
        fixed.push(tr(0), false);
        assert_eq!(fixed.push(tr(1), true), Change::Appended(1));
    }

    #[test]
    fn dense_window_keeps_the_last_n_transit_tokens() {
        let n = 3;
        let mut ctx = dense(ContextSpec::Window { n_transit: n });
        assert_eq!(ctx.objective(), Objective::Dense);
        assert!(ctx.is_empty());
        for t in 0..n {
            assert_eq!(ctx.push(tr(t), true), Change::Appended(1));
        }
        assert_eq!(ctx.tokens(), trs(0..3));
        assert_eq!(ctx.push(tr(3), false), Change::Shifted);
        assert_eq!(ctx.tokens(), trs(1..4));
        for t in 4..20 {
            ctx.push(tr(t), false);
            assert!(ctx.len() <= n);
        }
        assert_eq!(ctx.tokens(), trs(17..20));
    }

    #[test]
    fn dense_token_features() {
        // Dark Room (obs 2, 5 actions): 3·2 + 5 + 2 = 13 features.
        // First step: zeros but s_t = (2, 3).
        let Token::Transition(f) = dense_token(None, &[2, 3], 5) else {
            panic!("not a transition")
        };
        assert_eq!(f, [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 2., 3.]);
        // After an episode end: s (1, 4) -a3, r 1-> s' (0, 4), done, reset state (2, 2):
        // [s 1 4 | one_hot 0 0 0 1 0 | r 1 | s' 0 4 | done 1 | s_t 2 2].
        let prev = PrevTransition {
            s: &[1, 4],
            a: 3,
            r: 1.0,
            s_next: &[0, 4],
            done: true,
        };
        let Token::Transition(f) = dense_token(Some(prev), &[2, 2], 5) else {
            panic!("not a transition")
        };
        assert_eq!(f, [1., 4., 0., 0., 0., 1., 0., 1., 0., 4., 1., 2., 2.]);
    }
}
