//! The dataset's side of the token grammar (`ccad_core::context`, DESIGN §5, §5a): the
//! [`Corpus`] seen as a [`HistoryView`], and [`Row`], the batch writer every layout writes
//! its samples through. Which tokens, in which order, which labelled, is decided in core.

use std::ops::Range;

use ccad_core::context::{HistoryView, RegionSpan, SequenceSink, Visibility};
use ccad_core::tokens::{IGNORE, NO_SLOT, token_kind};

use crate::history::Histories;
use crate::{Corpus, Region};

pub use ccad_core::context::{
    CompressedDense, CompressedQuery, ContextLayout, MemoryDense, WindowDense, WindowQuery,
    layout_for,
};

fn span(r: &Region) -> RegionSpan {
    RegionSpan {
        history: r.history as usize,
        start: r.start,
        end: r.end,
        closed: r.closed,
    }
}

impl HistoryView for Corpus {
    fn obs_dim(&self) -> usize {
        self.histories.obs_dim
    }

    fn n_actions(&self) -> usize {
        self.histories.n_actions
    }

    fn n_histories(&self) -> usize {
        self.histories.n_histories()
    }

    fn history_range(&self, h: usize) -> Range<usize> {
        self.histories.range(h)
    }

    fn n_transitions(&self) -> usize {
        self.histories.n_transitions()
    }

    fn n_regions(&self) -> usize {
        self.regions.regions().len()
    }

    #[inline]
    fn region(&self, r: usize) -> RegionSpan {
        span(&self.regions.regions()[r])
    }

    #[inline]
    fn previous_region(&self, r: usize) -> Option<RegionSpan> {
        self.regions.previous(r).map(span)
    }

    #[inline]
    fn region_of(&self, g: usize) -> usize {
        self.regions.locate(g, &self.histories).region
    }

    #[inline]
    fn action(&self, g: usize) -> usize {
        self.histories.actions[g] as usize
    }

    #[inline]
    fn marker(&self, g: usize) -> u8 {
        self.histories.markers[g]
    }

    #[inline]
    fn state_index(&self, g: usize) -> usize {
        self.histories.state_index[g] as usize
    }

    #[inline]
    fn transition_features(&self, g: usize, out: &mut [f32]) {
        self.histories.features(g, out);
    }

    #[inline]
    fn dense_features(&self, g: usize, history_start: usize, out: &mut [f32]) {
        self.histories.dense_features(g, history_start, out);
    }

    #[inline]
    fn reward(&self, g: usize) -> f32 {
        self.histories.rewards[g]
    }
}

/// One sequence of a [`ccad_core::tokens::TokenBatch`] being written: tokens are pushed left
/// to right; positions not pushed stay padding.
pub struct Row<'a> {
    pub(crate) histories: &'a Histories,
    pub(crate) feat_dim: usize,
    pub(crate) features: &'a mut [f32],
    pub(crate) kinds: &'a mut [u8],
    pub(crate) state_index: &'a mut [i32],
    pub(crate) target_action: &'a mut [i32],
    pub(crate) target_type: &'a mut [i32],
    pub(crate) visibility: &'a mut Visibility,
    pub(crate) slot: &'a mut [i32],
    pub(crate) region: &'a mut [i32],
    pub(crate) len: usize,
}

impl Row<'_> {
    /// Tokens pushed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, kind: u8) -> usize {
        let pos = self.len;
        self.kinds[pos] = kind;
        self.len += 1;
        pos
    }

    fn feature_slot(&mut self, pos: usize) -> &mut [f32] {
        let fd = self.feat_dim;
        &mut self.features[pos * fd..(pos + 1) * fd]
    }
}

impl SequenceSink for Row<'_> {
    fn open(&mut self) -> usize {
        self.push(token_kind::OPEN)
    }

    fn close(&mut self) -> usize {
        self.push(token_kind::CLOSE)
    }

    #[inline]
    fn transition(&mut self, g: usize) -> usize {
        let pos = self.push(token_kind::TRANSITION);
        let histories = self.histories;
        histories.features(g, self.feature_slot(pos));
        pos
    }

    #[inline]
    fn dense(&mut self, g: usize, history_start: usize) -> usize {
        let pos = self.push(token_kind::TRANSITION);
        let histories = self.histories;
        histories.dense_features(g, history_start, self.feature_slot(pos));
        pos
    }

    fn query(&mut self, g: usize) -> usize {
        let pos = self.push(token_kind::QUERY);
        self.state_index[pos] = self.histories.state_index[g] as i32;
        pos
    }

    fn memory(&mut self, slot: usize, region: Option<usize>) -> usize {
        let pos = self.push(token_kind::MEMORY);
        self.slot[pos] = slot as i32;
        self.region[pos] = region.map_or(NO_SLOT, |r| r as i32);
        pos
    }

    fn kept(&mut self, g: usize, history_start: usize, slot: usize) -> usize {
        let pos = self.push(token_kind::KEPT);
        let histories = self.histories;
        histories.dense_features(g, history_start, self.feature_slot(pos));
        self.slot[pos] = slot as i32;
        pos
    }

    fn label(&mut self, pos: usize, action: i32, next_type: i32) {
        debug_assert!(pos < self.len && action != IGNORE);
        self.target_action[pos] = action;
        self.target_type[pos] = next_type;
    }

    fn visibility(&mut self, visibility: Visibility) {
        *self.visibility = visibility;
    }
}
