//! The rolling side of each layout at the steps DESIGN §7 and §5a draw (moved from evaluate).

use super::*;
use crate::config::{Boundary, Config, ContextMode};

/// Transition `i` of a scripted policy, recognisable by its first feature.
fn tr(i: usize) -> Token {
    Token::Transition(vec![i as f32])
}

fn trs(range: std::ops::Range<usize>) -> Vec<Token> {
    range.map(tr).collect()
}

fn compressed(interval: usize, boundary: Boundary) -> RollingContext {
    RollingContext::new(Layout::new(CompressedQuery::new(interval, boundary)))
}

/// Context + query at step `t`, after pushing transitions 0..t.
fn at(ctx: &RollingContext) -> Vec<Token> {
    ctx.with_query(Some(&Token::Query(0)))
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
    assert_eq!(changes[i - 2], CacheEvent::Appended(1));
    assert_eq!(changes[i - 1], CacheEvent::Appended(3));
    assert_eq!(changes[i], CacheEvent::Appended(1));
    assert_eq!(changes[2 * i - 1], CacheEvent::Shifted);
    assert_eq!(changes[3 * i - 1], CacheEvent::Shifted);
    let shifts = changes
        .iter()
        .filter(|c| **c == CacheEvent::Shifted)
        .count();
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
    assert_eq!(ctx.push(tr(0), true), CacheEvent::Appended(1));
    assert_eq!(ctx.current_region_len(), 1);
}

#[test]
fn predicted_boundary_closes_early_and_is_capped_at_i() {
    let i = 4;
    let mut ctx = compressed(i, Boundary::Predicted);
    // Region 0: closed by the head after 2 transitions.
    assert_eq!(ctx.push(tr(0), false), CacheEvent::Appended(1));
    assert_eq!(ctx.push(tr(1), true), CacheEvent::Appended(3));
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
        assert_eq!(ctx.push(tr(t), false), CacheEvent::Appended(1));
    }
    assert_eq!(ctx.push(tr(2 + i - 1), false), CacheEvent::Shifted);
    let mut want = vec![Token::Open];
    want.extend(trs(2..2 + i));
    want.extend([Token::Close, Token::Open, Token::Query(0)]);
    assert_eq!(at(&ctx), want);
    // Region 2 closed after one transition: region 1 dropped.
    assert_eq!(ctx.push(tr(9), true), CacheEvent::Shifted);
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
    let mut ctx = RollingContext::new(Layout::new(WindowQuery::new(n)));
    assert_eq!(at(&ctx), vec![Token::Query(0)]);
    // Steps 1..=3: the window grows to n - 1 = 3 transitions, appended in place.
    for t in 0..n - 1 {
        assert_eq!(ctx.push(tr(t), false), CacheEvent::Appended(1));
    }
    assert_eq!(at(&ctx), vec![tr(0), tr(1), tr(2), Token::Query(0)]);
    // From then on the oldest transition drops every step.
    assert_eq!(ctx.push(tr(3), true), CacheEvent::Shifted);
    assert_eq!(at(&ctx), vec![tr(1), tr(2), tr(3), Token::Query(0)]);
    for t in 4..20 {
        assert_eq!(ctx.push(tr(t), false), CacheEvent::Shifted);
        assert!(at(&ctx).len() <= n);
    }
    assert_eq!(at(&ctx), vec![tr(17), tr(18), tr(19), Token::Query(0)]);
}

#[test]
fn layout_from_config_and_max_len() {
    let mut cfg = Config::from_toml_str("", "x.toml", &[]).unwrap();
    let layout = Layout::from_config(&cfg);
    assert_eq!(
        format!("{:?}", &*layout),
        format!("{:?}", CompressedQuery::new(80, Boundary::Fixed))
    );
    assert_eq!(layout.max_len(), 163);
    assert_eq!(
        (layout.name(), layout.context_name()),
        ("compressed", "compressed")
    );
    assert!(layout.has_query());
    cfg.dataset.context = ContextMode::Window;
    let layout = Layout::from_config(&cfg);
    assert_eq!((layout.name(), layout.max_len()), ("window", 240));
}

// ---- dense layout ----

fn dense(layout: impl ContextLayout + 'static) -> RollingContext {
    RollingContext::new(Layout::new(layout))
}

/// Drive a dense compressed context for steps `0..=last` (head never closing); the token
/// list after step t's token went in, i.e. what the model reads `a_t` from.
fn dense_steps(i: usize, last: usize) -> (Vec<Vec<Token>>, Vec<CacheEvent>) {
    let mut ctx = dense(CompressedDense::new(i, Boundary::Fixed));
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
    assert_eq!(changes[0], CacheEvent::Appended(1));
    assert_eq!(changes[i - 1], CacheEvent::Appended(1));
    assert_eq!(changes[i], CacheEvent::Appended(3));
    assert_eq!(changes[i + 1], CacheEvent::Appended(1));
    assert_eq!(changes[2 * i], CacheEvent::Shifted);
    assert_eq!(changes[3 * i], CacheEvent::Shifted);
    assert_eq!(
        changes
            .iter()
            .filter(|c| **c == CacheEvent::Shifted)
            .count(),
        2
    );
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
    let mut ctx = dense(CompressedDense::new(i, Boundary::Predicted));
    // A prediction before any token of the region is ignored: a region is never empty.
    assert_eq!(ctx.push(tr(0), true), CacheEvent::Appended(1));
    assert_eq!(ctx.push(tr(1), false), CacheEvent::Appended(1));
    // The head at D1 predicted `</c>`: D2 opens region 1.
    assert_eq!(ctx.push(tr(2), true), CacheEvent::Appended(3));
    assert_eq!(
        ctx.tokens(),
        [Token::Open, tr(0), tr(1), Token::Close, Token::Open, tr(2)]
    );
    // Region 1 hits the cap I: D6 opens region 2 and region 0 goes.
    for t in 3..6 {
        assert_eq!(ctx.push(tr(t), false), CacheEvent::Appended(1));
    }
    assert_eq!(ctx.push(tr(6), false), CacheEvent::Shifted);
    let mut want = vec![Token::Open];
    want.extend(trs(2..6));
    want.extend([Token::Close, Token::Open, tr(6)]);
    assert_eq!(ctx.tokens(), want);
    assert_eq!(ctx.regions_closed(), 2);
    // Fixed boundaries ignore the head.
    let mut fixed = dense(CompressedDense::new(i, Boundary::Fixed));
    fixed.push(tr(0), false);
    assert_eq!(fixed.push(tr(1), true), CacheEvent::Appended(1));
}

#[test]
fn dense_window_keeps_the_last_n_transit_tokens() {
    let n = 3;
    let mut ctx = dense(WindowDense::new(n));
    assert_eq!(ctx.layout().objective_name(), "dense");
    assert!(ctx.is_empty());
    for t in 0..n {
        assert_eq!(ctx.push(tr(t), true), CacheEvent::Appended(1));
    }
    assert_eq!(ctx.tokens(), trs(0..3));
    assert_eq!(ctx.push(tr(3), false), CacheEvent::Shifted);
    assert_eq!(ctx.tokens(), trs(1..4));
    for t in 4..20 {
        ctx.push(tr(t), false);
        assert!(ctx.len() <= n);
    }
    assert_eq!(ctx.tokens(), trs(17..20));
}
