//! Test batches of memory-layout chains: the memory layout's grammar over random histories.

use ccad_core::context::{
    ContextLayout, HistoryView, MemoryDense, MemoryUpdate, RegionSpan, TokenSequence, Visibility,
};
use ccad_core::tokens::{
    PrevTransition, TokenBatch, dense_feature_dim, dense_features, marker_at, transition_features,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::batch_from_tokens;

pub(crate) const OBS: usize = 2;
pub(crate) const ACTIONS: usize = 5;
/// Dense features of Dark Room: 3·2 + 5 + 2.
pub(crate) const FEAT: usize = 13;

/// Random Dark Room-like histories of whole regions.
pub(crate) struct Histories {
    interval: usize,
    len: usize,
    n: usize,
    states: Vec<i32>,
    next_states: Vec<i32>,
    actions: Vec<usize>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
}

impl Histories {
    pub(crate) fn new(n: usize, regions: usize, interval: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = regions * interval;
        let t = n * len;
        let mut cell = || rng.random_range(0..9);
        let states = (0..t * OBS).map(|_| cell()).collect();
        let next_states = (0..t * OBS).map(|_| cell()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        Self {
            interval,
            len,
            n,
            states,
            next_states,
            actions: (0..t).map(|_| rng.random_range(0..ACTIONS)).collect(),
            rewards: (0..t).map(|_| rng.random_bool(0.2) as u8 as f32).collect(),
            dones: (0..t).map(|g| g % 20 == 19).collect(),
        }
    }

    /// `s_g`.
    pub(crate) fn state(&self, g: usize) -> &[i32] {
        &self.states[g * OBS..(g + 1) * OBS]
    }

    /// Transition `g`, as the next step's dense token carries it.
    pub(crate) fn prev(&self, g: usize) -> PrevTransition<'_> {
        PrevTransition {
            s: &self.states[g * OBS..(g + 1) * OBS],
            a: self.actions[g],
            r: self.rewards[g],
            s_next: &self.next_states[g * OBS..(g + 1) * OBS],
            done: self.dones[g],
        }
    }
}

impl HistoryView for Histories {
    fn obs_dim(&self) -> usize {
        OBS
    }
    fn n_actions(&self) -> usize {
        ACTIONS
    }
    fn n_histories(&self) -> usize {
        self.n
    }
    fn history_range(&self, h: usize) -> std::ops::Range<usize> {
        h * self.len..(h + 1) * self.len
    }
    fn n_transitions(&self) -> usize {
        self.n * self.len
    }
    fn n_regions(&self) -> usize {
        self.n * self.len / self.interval
    }
    fn region(&self, r: usize) -> RegionSpan {
        RegionSpan {
            history: r * self.interval / self.len,
            start: r * self.interval,
            end: (r + 1) * self.interval,
            closed: true,
        }
    }
    fn previous_region(&self, r: usize) -> Option<RegionSpan> {
        let per = self.len / self.interval;
        (!r.is_multiple_of(per)).then(|| self.region(r - 1))
    }
    fn region_of(&self, g: usize) -> usize {
        g / self.interval
    }
    fn action(&self, g: usize) -> usize {
        self.actions[g]
    }
    fn marker(&self, g: usize) -> u8 {
        marker_at(g % self.len, self.interval)
    }
    fn state_index(&self, g: usize) -> usize {
        (self.states[g * OBS] * 9 + self.states[g * OBS + 1]) as usize
    }
    fn transition_features(&self, g: usize, out: &mut [f32]) {
        let p = self.prev(g);
        transition_features(p.s, p.a, p.r, p.s_next, ACTIONS, out);
    }
    fn reward(&self, g: usize) -> f32 {
        self.rewards[g]
    }
    fn dense_features(&self, g: usize, history_start: usize, out: &mut [f32]) {
        let prev = (g > history_start).then(|| self.prev(g - 1));
        dense_features(prev, &self.states[g * OBS..(g + 1) * OBS], ACTIONS, out);
    }
}

/// Every history of `view` as one chain each, labelled as training labels them.
pub(crate) fn chain_batch(view: &Histories, layout: &MemoryDense) -> TokenBatch {
    assert_eq!(dense_feature_dim(OBS, ACTIONS), FEAT);
    let batch = labelled_batch(layout, view, view.n_histories());
    assert!(matches!(batch.visibility[0], Visibility::Chain(_)));
    batch
}

/// Samples `0..n` of a prepared chunked memory layout (`train_regions > 0`) over `view`.
pub(crate) fn chunk_batch(view: &Histories, layout: &MemoryDense, n: usize) -> TokenBatch {
    assert!(layout.train_regions > 0 && n <= layout.n_samples(view));
    labelled_batch(layout, view, n)
}

/// Samples `0..n` of `layout` over `view`, with their labels and visibility.
fn labelled_batch(layout: &dyn ContextLayout, view: &Histories, n: usize) -> TokenBatch {
    let seqs: Vec<TokenSequence> = (0..n)
        .map(|i| TokenSequence::of_sample(layout, view, i))
        .collect();
    let tokens: Vec<_> = seqs.iter().map(|s| s.tokens.clone()).collect();
    let mut batch = batch_from_tokens(&tokens, FEAT);
    let l = batch.seq_len;
    for (b, s) in seqs.iter().enumerate() {
        batch.target_action[b * l..b * l + s.tokens.len()].copy_from_slice(&s.target_action);
        batch.target_type[b * l..b * l + s.tokens.len()].copy_from_slice(&s.target_type);
        batch.visibility[b] = s.visibility.clone();
    }
    batch
}

/// The memory layout of `interval`, `slots`, `update`, and its model's position limit.
pub(crate) fn layout(interval: usize, slots: usize, update: MemoryUpdate) -> (MemoryDense, usize) {
    let l = MemoryDense::new(interval, slots, update);
    let max_len = l.max_len();
    (l, max_len)
}

/// Every region of `view` under the selective baseline, one sequence each, labelled as
/// training labels them.
pub(crate) fn keep_batch(view: &Histories, layout: &ccad_core::context::KeepDense) -> TokenBatch {
    labelled_batch(layout, view, view.n_regions())
}
