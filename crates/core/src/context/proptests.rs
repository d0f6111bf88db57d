//! The grammar's contract, for every layout: driving the rolling (evaluation) side over a
//! history gives, at every step, exactly the training sequence of the corresponding sample.

use proptest::prelude::*;

use super::tokens::{
    PrevTransition, dense_feature_dim, dense_features, marker, marker_at, transition_features,
};
use super::*;
use crate::config::Boundary;

const OBS: usize = 2;
const ACTIONS: usize = 3;

/// Random histories laid end to end, with regions cut at multiples of the interval.
struct Synthetic {
    offsets: Vec<usize>,
    states: Vec<i32>,
    next_states: Vec<i32>,
    actions: Vec<usize>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    markers: Vec<u8>,
    regions: Vec<RegionSpan>,
    /// First region (flat number) of each history.
    first_region: Vec<usize>,
}

impl Synthetic {
    fn new(interval: usize, lengths: &[usize], seed: u64) -> Self {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % m) as i32
        };
        let mut s = Synthetic {
            offsets: vec![0],
            states: vec![],
            next_states: vec![],
            actions: vec![],
            rewards: vec![],
            dones: vec![],
            markers: vec![],
            regions: vec![],
            first_region: vec![],
        };
        for (h, &len) in lengths.iter().enumerate() {
            let h0 = *s.offsets.last().unwrap();
            s.first_region.push(s.regions.len());
            for t in 0..len {
                s.states.extend([next(5), next(5)]);
                s.next_states.extend([next(5), next(5)]);
                s.actions.push(next(ACTIONS as u64) as usize);
                s.rewards.push(next(2) as f32);
                s.dones.push(next(4) == 0);
                s.markers.push(marker_at(t, interval));
                if t % interval == 0 {
                    s.regions.push(RegionSpan {
                        history: h,
                        start: h0 + t,
                        end: (h0 + t + interval).min(h0 + len),
                        closed: t + interval <= len,
                    });
                }
            }
            s.offsets.push(h0 + len);
        }
        s
    }

    fn prev(&self, g: usize) -> PrevTransition<'_> {
        PrevTransition {
            s: &self.states[g * OBS..(g + 1) * OBS],
            a: self.actions[g],
            r: self.rewards[g],
            s_next: &self.next_states[g * OBS..(g + 1) * OBS],
            done: self.dones[g],
        }
    }

    fn s(&self, g: usize) -> &[i32] {
        &self.states[g * OBS..(g + 1) * OBS]
    }
}

impl HistoryView for Synthetic {
    fn obs_dim(&self) -> usize {
        OBS
    }
    fn n_actions(&self) -> usize {
        ACTIONS
    }
    fn n_histories(&self) -> usize {
        self.offsets.len() - 1
    }
    fn history_range(&self, h: usize) -> std::ops::Range<usize> {
        self.offsets[h]..self.offsets[h + 1]
    }
    fn n_transitions(&self) -> usize {
        *self.offsets.last().unwrap()
    }
    fn n_regions(&self) -> usize {
        self.regions.len()
    }
    fn region(&self, r: usize) -> RegionSpan {
        self.regions[r]
    }
    fn previous_region(&self, r: usize) -> Option<RegionSpan> {
        (r > self.first_region[self.regions[r].history]).then(|| self.regions[r - 1])
    }
    fn region_of(&self, g: usize) -> usize {
        self.regions.partition_point(|r| r.start <= g) - 1
    }
    fn action(&self, g: usize) -> usize {
        self.actions[g]
    }
    fn marker(&self, g: usize) -> u8 {
        self.markers[g]
    }
    fn state_index(&self, g: usize) -> usize {
        let s = self.s(g);
        (s[0] * 5 + s[1]) as usize
    }
    fn transition_features(&self, g: usize, out: &mut [f32]) {
        let p = self.prev(g);
        transition_features(p.s, p.a, p.r, p.s_next, ACTIONS, out);
    }
    fn dense_features(&self, g: usize, history_start: usize, out: &mut [f32]) {
        let prev = (g > history_start).then(|| self.prev(g - 1));
        dense_features(prev, self.s(g), ACTIONS, out);
    }
    fn reward(&self, g: usize) -> f32 {
        self.rewards[g]
    }
}

/// A key/value cache as the events describe it: must track the context token for token.
fn apply(cache: &mut Vec<Token>, event: CacheEvent, ctx: &RollingContext) {
    let keep = event.unchanged(ctx.len());
    assert!(
        keep <= cache.len(),
        "event keeps more tokens than the cache holds"
    );
    cache.truncate(keep);
    cache.extend_from_slice(&ctx.tokens()[keep..]);
    assert_eq!(cache.as_slice(), ctx.tokens(), "cache events lost a token");
}

/// Whether two attention patterns agree on a sequence of `len` tokens.
fn same_pattern(a: &Visibility, b: &Visibility, len: usize) -> bool {
    (a.is_causal() && b.is_causal())
        || (0..len).all(|i| (0..=i).all(|j| a.allows(i, j) == b.allows(i, j)))
}

/// Query layouts: before acting at step `t`, context + query = the sample of transition `g`.
fn check_query(layout: Layout, view: &Synthetic) -> Result<(), TestCaseError> {
    for h in 0..view.n_histories() {
        let mut ctx = RollingContext::new(layout.clone());
        let mut cache = ctx.tokens().to_vec();
        for g in view.history_range(h) {
            let q = ctx.query(view.state_index(g));
            let input = ctx.with_query(q.as_ref());
            let train = TokenSequence::of_sample(&*layout, view, g);
            prop_assert_eq!(&input, &train.tokens, "transition {}", g);
            prop_assert!(same_pattern(
                ctx.visibility(),
                &train.visibility,
                input.len()
            ));
            prop_assert_eq!(layout.sample_len(view, g), input.len());
            prop_assert!(input.len() <= layout.max_len());
            let last = input.len() - 1;
            prop_assert_eq!(train.target_action[last], view.actions[g] as i32);
            let labelled = train.target_action.iter().filter(|&&a| a >= 0).count();
            prop_assert_eq!(labelled, 1);
            let event = ctx.observe(view.prev(g), view.s(g), ACTIONS, false);
            apply(&mut cache, event, &ctx);
        }
    }
    Ok(())
}

/// Dense layouts: after step `t`'s token went in, the context is the sample's prefix up to
/// that token (compressed), or ends with it and equals it at a chunk's start or end (window).
fn check_dense(
    layout: Layout,
    view: &Synthetic,
    chunk: Option<usize>,
) -> Result<(), TestCaseError> {
    let mut chunk_base = 0;
    for h in 0..view.n_histories() {
        let range = view.history_range(h);
        let mut ctx = RollingContext::new(layout.clone());
        let mut cache = ctx.tokens().to_vec();
        let event = ctx.begin(view.s(range.start), ACTIONS);
        apply(&mut cache, event, &ctx);
        for g in range.clone() {
            let t = g - range.start;
            let (sample, prefix) = match chunk {
                None => {
                    let r = view.region_of(g);
                    (r, ctx.len())
                }
                Some(n) => (chunk_base + t / n, t % n + 1),
            };
            let train = TokenSequence::of_sample(&*layout, view, sample);
            prop_assert!(prefix <= train.tokens.len());
            prop_assert_eq!(layout.sample_len(view, sample), train.tokens.len());
            let want = &train.tokens[..prefix];
            let have = &ctx.tokens()[ctx.len() - prefix..];
            prop_assert_eq!(have, want, "transition {}", g);
            // Kept tokens lead the context and take no position.
            let kept = ctx
                .tokens()
                .iter()
                .take_while(|t| t.slot().is_some())
                .count();
            prop_assert!(ctx.len() - kept <= layout.max_len());
            prop_assert!(kept <= layout.slots());
            if chunk.is_none_or(|n| t < n || t % n == n - 1) {
                prop_assert_eq!(ctx.len(), prefix, "transition {}", g);
                prop_assert!(same_pattern(ctx.visibility(), &train.visibility, prefix));
            }
            prop_assert_eq!(train.target_action[prefix - 1], view.actions[g] as i32);
            let end = view.markers[g] == marker::END;
            let want_type = if end { 2 } else { 0 };
            prop_assert_eq!(train.target_type[prefix - 1], want_type);
            if g + 1 < range.end {
                let event = ctx.observe(view.prev(g), view.s(g + 1), ACTIONS, false);
                apply(&mut cache, event, &ctx);
            }
        }
        if let Some(n) = chunk {
            chunk_base += range.len().div_ceil(n);
        }
    }
    prop_assert_eq!(
        chunk.map_or(view.n_regions(), |_| chunk_base),
        layout.n_samples(view)
    );
    Ok(())
}

/// Memory layouts: after step `t`'s token went in, the context equals the history's training
/// sequence up to that token, under the same chain, and every event is an append.
fn check_memory(layout: Layout, view: &Synthetic) -> Result<(), TestCaseError> {
    for h in 0..view.n_histories() {
        let range = view.history_range(h);
        let train = TokenSequence::of_sample(&*layout, view, h);
        prop_assert_eq!(layout.sample_len(view, h), train.tokens.len());
        let Visibility::Chain(chain) = &train.visibility else {
            return Err(TestCaseError::fail(
                "a memory sample's visibility is a chain",
            ));
        };
        prop_assert!(chain.validate(train.tokens.len()).is_ok());
        let mut ctx = RollingContext::new(layout.clone());
        let mut cache = ctx.tokens().to_vec();
        let event = ctx.begin(view.s(range.start), ACTIONS);
        apply(&mut cache, event, &ctx);
        for g in range.clone() {
            let n = ctx.len();
            prop_assert_eq!(ctx.tokens(), &train.tokens[..n], "transition {}", g);
            let Visibility::Chain(now) = ctx.visibility() else {
                return Err(TestCaseError::fail(
                    "a memory context's visibility is a chain",
                ));
            };
            // The same blocks so far, with the same memory.
            for b in 0..now.n_blocks() {
                prop_assert_eq!(now.start(b), chain.start(b));
                if b + 1 < now.n_blocks() {
                    prop_assert_eq!(now.block_range(b, n), chain.block_range(b, n));
                    prop_assert_eq!(now.memory_range(b), chain.memory_range(b));
                }
            }
            prop_assert_eq!(train.target_action[n - 1], view.actions[g] as i32);
            let want_type = if view.markers[g] == marker::END { 2 } else { 0 };
            prop_assert_eq!(train.target_type[n - 1], want_type);
            let in_block = n - now.start(now.n_blocks() - 1);
            prop_assert!(in_block <= layout.max_len());
            if g + 1 < range.end {
                let event = ctx.observe(view.prev(g), view.s(g + 1), ACTIONS, false);
                prop_assert!(matches!(event, CacheEvent::Appended(_)));
                apply(&mut cache, event, &ctx);
            }
        }
    }
    Ok(())
}

/// A pass over every sample supervises as many labels as there are transitions, so
/// `labels_per_sample` (transitions / samples) is the mean of the labels the samples carry.
fn check_labels(mut layout: Box<dyn ContextLayout>, view: &Synthetic) -> Result<(), TestCaseError> {
    layout.prepare(view);
    let n = layout.n_samples(view);
    let total: usize = (0..n)
        .map(|sample| {
            let seq = TokenSequence::of_sample(&*layout, view, sample);
            seq.target_action.iter().filter(|&&a| a >= 0).count()
        })
        .sum();
    prop_assert_eq!(total, view.n_transitions());
    prop_assert!((layout.labels_per_sample(view) - total as f64 / n as f64).abs() < 1e-12);
    Ok(())
}

/// Every layout of interval `i`, window `n`.
fn all_layouts(i: usize, n: usize) -> Vec<Box<dyn ContextLayout>> {
    vec![
        Box::new(CompressedQuery::new(i, Boundary::Fixed)),
        Box::new(WindowQuery::new(n)),
        Box::new(CompressedDense::new(i, Boundary::Fixed)),
        Box::new(WindowDense::new(n)),
        Box::new(MemoryDense::new(i, 2, MemoryUpdate::Concat)),
        Box::new(MemoryDense::new(i, 3, MemoryUpdate::Merge)),
        Box::new(KeepDense::new(i, 3, OBS, ACTIONS)),
        Box::new(MemoryDense::new(i, 2, MemoryUpdate::Merge).with_train_regions(2)),
    ]
}

#[test]
fn labels_per_sample_by_hand() {
    // Two histories of 10 and 6 transitions, interval 4, window 3. Query layouts: one sample
    // and one label per transition → 1. Compressed dense: one sample per region, regions of
    // 4 + 4 + 2 and 4 + 2 → 16 labels / 5 samples = 3.2. Window dense: chunks of 3 →
    // ⌈10/3⌉ + ⌈6/3⌉ = 4 + 2 = 6 samples → 16 / 6.
    let view = Synthetic::new(4, &[10, 6], 1);
    // Memory: one sample per history → 16 / 2.
    // Keep: one sample per region, as compressed dense → 3.2.
    // Memory in chunks of 2 regions: ⌈3/2⌉ + ⌈2/2⌉ = 3 samples → 16 / 3.
    let want = [1.0, 1.0, 3.2, 16.0 / 6.0, 8.0, 8.0, 3.2, 16.0 / 3.0];
    for (mut layout, want) in all_layouts(4, 3).into_iter().zip(want) {
        layout.prepare(&view);
        let got = layout.labels_per_sample(&view);
        assert!(
            (got - want).abs() < 1e-12,
            "{}: {got} vs {want}",
            layout.name()
        );
    }
}

fn arb_case() -> impl Strategy<Value = (usize, usize, Vec<usize>, u64)> {
    (
        2usize..6,
        2usize..8,
        prop::collection::vec(1usize..30, 1..4),
        any::<u64>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn compressed_query_evaluation_equals_training((i, _, lens, seed) in arb_case()) {
        let view = Synthetic::new(i, &lens, seed);
        check_query(Layout::new(CompressedQuery::new(i, Boundary::Fixed)), &view)?;
    }

    #[test]
    fn window_query_evaluation_equals_training((i, n, lens, seed) in arb_case()) {
        let view = Synthetic::new(i, &lens, seed);
        check_query(Layout::new(WindowQuery::new(n)), &view)?;
    }

    #[test]
    fn compressed_dense_evaluation_equals_training((i, _, lens, seed) in arb_case()) {
        let view = Synthetic::new(i, &lens, seed);
        check_dense(Layout::new(CompressedDense::new(i, Boundary::Fixed)), &view, None)?;
    }

    #[test]
    fn every_layout_supervises_each_transition_once((i, n, lens, seed) in arb_case()) {
        let view = Synthetic::new(i, &lens, seed);
        for layout in all_layouts(i, n) {
            check_labels(layout, &view)?;
        }
    }

    #[test]
    fn memory_evaluation_equals_training((i, m, lens, seed) in arb_case()) {
        let view = Synthetic::new(i, &lens, seed);
        for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
            check_memory(Layout::new(MemoryDense::new(i, m.min(4), update)), &view)?;
        }
    }

    #[test]
    fn keep_evaluation_equals_training((i, n, lens, seed) in arb_case()) {
        let view = Synthetic::new(i, &lens, seed);
        check_dense(Layout::new(KeepDense::new(i, n, OBS, ACTIONS)), &view, None)?;
    }

    #[test]
    fn window_dense_evaluation_equals_training((i, n, lens, seed) in arb_case()) {
        let view = Synthetic::new(i, &lens, seed);
        let mut layout = WindowDense::new(n);
        layout.prepare(&view);
        check_dense(Layout::new(layout), &view, Some(n))?;
    }
}

/// The memory layout of one history of 9 transitions, I = 3, M = 2, written out by hand:
/// tokens, labels, positions, and who sees whom.
#[test]
fn memory_chain_by_hand() {
    let view = Synthetic::new(3, &[9], 7);
    for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
        let layout = MemoryDense::new(3, 2, update);
        let seq = TokenSequence::of_sample(&layout, &view, 0);
        // block 0: 0 <c>, 1-3 C0, 4 </c>, 5-6 M0
        // block 1: 7 <c>, 8-10 P=C0, 11 </c>, 12 <c>, 13-15 C1, 16 </c>, 17-18 M1
        // block 2: 19 <c>, 20-22 P=C1, 23 </c>, 24 <c>, 25-27 C2, 28 </c>, 29-30 M2
        let kind: String = seq
            .tokens
            .iter()
            .map(|t| match t {
                Token::Open => '<',
                Token::Close => '>',
                Token::Transition(_) => 't',
                Token::Memory { .. } => 'm',
                _ => '?',
            })
            .collect();
        assert_eq!(kind, "<ttt>mm<ttt><ttt>mm<ttt><ttt>mm");
        let region = |r: usize| (update == MemoryUpdate::Concat).then_some(r);
        assert_eq!(
            seq.tokens[5],
            Token::Memory {
                slot: 0,
                region: region(0)
            }
        );
        assert_eq!(
            seq.tokens[30],
            Token::Memory {
                slot: 1,
                region: region(2)
            }
        );
        // P of block 1 is C0 again, token for token.
        assert_eq!(seq.tokens[8..11], seq.tokens[1..4]);
        assert_eq!(seq.tokens[20..23], seq.tokens[13..16]);
        let labelled: Vec<usize> = (0..31).filter(|&i| seq.target_action[i] >= 0).collect();
        assert_eq!(labelled, [1, 2, 3, 13, 14, 15, 25, 26, 27]);
        assert_eq!(seq.target_action[14], view.actions[4] as i32);
        assert_eq!(seq.target_type[3], 2);
        assert_eq!(seq.target_type[27], 2);
        assert_eq!(seq.target_type[26], 0);

        let Visibility::Chain(chain) = &seq.visibility else {
            panic!("not a chain")
        };
        // Row i sees: its own block up to i, and the memory of earlier blocks.
        let sees = |i: usize| -> Vec<usize> {
            match i {
                0..=6 => (0..=i).collect(),
                7..=18 => [5, 6].into_iter().chain(7..=i).collect(),
                _ => [5, 6, 17, 18].into_iter().chain(19..=i).collect(),
            }
        };
        for i in 0..31 {
            let got: Vec<usize> = (0..31).filter(|&j| chain.reads_token(i, j)).collect();
            assert_eq!(got, sees(i), "row {i}");
        }
        // What each block reads, key by key.
        assert!(chain.reads(0).is_empty());
        let reads = |b: usize| -> Vec<Vec<(usize, f32)>> {
            chain.reads(b).into_iter().map(|r| r.sources).collect()
        };
        match update {
            MemoryUpdate::Concat => {
                assert_eq!(reads(1), [vec![(5, 1.0)], vec![(6, 1.0)]]);
                assert_eq!(
                    reads(2),
                    [
                        vec![(5, 1.0)],
                        vec![(6, 1.0)],
                        vec![(17, 1.0)],
                        vec![(18, 1.0)]
                    ]
                );
            }
            MemoryUpdate::Merge => {
                assert_eq!(reads(1), [vec![(5, 1.0)], vec![(6, 1.0)]]);
                assert_eq!(
                    reads(2),
                    [vec![(5, 0.5), (17, 0.5)], vec![(6, 0.5), (18, 0.5)]]
                );
            }
        }
        assert_eq!(chain.n_reads(2), reads(2).len());

        // Positions restart in each block; memory tokens take none.
        let batch = batch_from_tokens(
            std::slice::from_ref(&seq.tokens),
            seq.tokens[1].features().unwrap().len(),
        );
        let mut batch = batch;
        batch.visibility[0] = seq.visibility.clone();
        let pos = batch.positions();
        assert_eq!(&pos[..7], &[0, 1, 2, 3, 4, 0, 0]);
        assert_eq!(&pos[7..19], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0]);
        assert_eq!(&pos[19..], &pos[7..19]);
        assert_eq!(batch.slot[5..7], [0, 1]);
        assert_eq!(batch.slot[4], -1);
    }
}

/// `train_regions = 2` cuts the 3-region history of `memory_chain_by_hand` into two
/// samples: the first is blocks 0-1 with both supervised, the second the whole chain with
/// only block 2 supervised and blocks 0-1 frozen (their memory enters without gradient).
/// Each sample's tokens are the whole history's, cut after its last block.
#[test]
fn memory_chunks_by_hand() {
    let view = Synthetic::new(3, &[9], 7);
    for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
        let whole = TokenSequence::of_sample(&MemoryDense::new(3, 2, update), &view, 0);
        let mut layout = MemoryDense::new(3, 2, update).with_train_regions(2);
        layout.prepare(&view);
        assert_eq!(layout.n_samples(&view), 2);
        let first = TokenSequence::of_sample(&layout, &view, 0);
        let second = TokenSequence::of_sample(&layout, &view, 1);
        assert_eq!(layout.sample_len(&view, 0), 19);
        assert_eq!(first.tokens[..], whole.tokens[..19]);
        assert_eq!(second.tokens, whole.tokens);
        let labelled = |s: &TokenSequence| -> Vec<usize> {
            (0..s.tokens.len())
                .filter(|&i| s.target_action[i] >= 0)
                .collect()
        };
        assert_eq!(labelled(&first), [1, 2, 3, 13, 14, 15]);
        assert_eq!(labelled(&second), [25, 26, 27]);
        assert!(
            (0..25).all(|i| second.target_type[i] < 0),
            "no type labels before the chunk"
        );
        assert_eq!(second.target_action[25..28], whole.target_action[25..28]);
        let frozen = |s: &TokenSequence| match &s.visibility {
            Visibility::Chain(c) => (c.frozen(), c.n_blocks()),
            _ => panic!("not a chain"),
        };
        assert_eq!(frozen(&first), (0, 2));
        assert_eq!(frozen(&second), (2, 3));
    }
}

/// Under merge, what a step attends to is bounded by 2I + 4 + 2M tokens, however many
/// regions have closed; under concat it grows by M a region.
#[test]
fn merge_context_is_bounded() {
    let (i, m) = (3, 2);
    for update in [MemoryUpdate::Merge, MemoryUpdate::Concat] {
        let layout = Layout::new(MemoryDense::new(i, m, update));
        let mut ctx = RollingContext::new(layout);
        ctx.begin(&[0, 0], ACTIONS);
        let prev = PrevTransition {
            s: &[0, 0],
            a: 0,
            r: 0.0,
            s_next: &[0, 1],
            done: false,
        };
        for _ in 0..200 {
            ctx.observe(prev, &[0, 1], ACTIONS, false);
        }
        let Visibility::Chain(chain) = ctx.visibility() else {
            panic!("not a chain")
        };
        // Keys token t attends to: what its block reads, and its block up to itself.
        let attended = |t: usize| {
            let b = chain.block_of(t);
            chain.n_reads(b) + t - chain.start(b) + 1
        };
        let most = (0..ctx.len()).map(attended).max().unwrap();
        match update {
            // The last memory token: M slots, `<c> P </c> <c> C </c>`, the M - 1 before it,
            // itself.
            MemoryUpdate::Merge => {
                assert_eq!(most, m + (2 * i + 4) + m);
                assert!(most <= 2 * i + 4 + 2 * m);
            }
            MemoryUpdate::Concat => assert!(most > 100, "{most}"),
        }
    }
}

/// The selective baseline by hand: I = 2, keep_max 2, one history of 8 transitions whose
/// rewards are 1 at transitions 0, 1 and 3 (so the dense tokens D1, D2 and D4 carry a
/// reward). Region 3's sequence (P = region 2) keeps, newest first, the rewarded tokens of
/// regions 0 and 1: D2 then D1.
#[test]
fn keep_rewarded_by_hand() {
    let mut view = Synthetic::new(2, &[8], 3);
    view.rewards = vec![1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    let layout = KeepDense::new(2, 2, OBS, ACTIONS);
    let seq = TokenSequence::of_sample(&layout, &view, 3);
    let dense = |g: usize| {
        let mut f = vec![0.0; dense_feature_dim(OBS, ACTIONS)];
        view.dense_features(g, 0, &mut f);
        f
    };
    let kept = |g: usize, slot: usize| Token::Kept {
        features: dense(g),
        slot,
    };
    let t = |g: usize| Token::Transition(dense(g));
    assert_eq!(
        seq.tokens,
        [
            kept(2, 0),
            kept(1, 1),
            Token::Open,
            t(4),
            t(5),
            Token::Close,
            Token::Open,
            t(6),
            t(7)
        ]
    );
    let labelled: Vec<usize> = (0..9).filter(|&i| seq.target_action[i] >= 0).collect();
    assert_eq!(labelled, [7, 8]);
    // Region 2 (P = region 1, holding D2) keeps only region 0's rewarded D1.
    let seq = TokenSequence::of_sample(&layout, &view, 2);
    assert_eq!(seq.tokens[0], kept(1, 0));
    assert_eq!(seq.tokens[1], Token::Open);
    // Positions skip the kept tokens.
    let mut batch = batch_from_tokens(std::slice::from_ref(&seq.tokens), dense(0).len());
    batch.visibility[0] = seq.visibility.clone();
    assert_eq!(&batch.positions()[..3], &[0, 0, 1]);
}
