//! What the training side reads and writes: a [`HistoryView`] over learning histories (dataset's
//! `Corpus` implements it, so core does not depend on dataset) and a [`SequenceSink`] that
//! receives one sample's tokens and labels (dataset's batch row, or a [`TokenSequence`]).

use std::ops::Range;

use super::Visibility;
use super::token::Token;
use super::tokens::{IGNORE, dense_feature_dim, transition_feature_dim};

/// One rollout region of a history: transitions `start..end` (global ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionSpan {
    pub history: usize,
    pub start: usize,
    pub end: usize,
    /// Whether it ends with an `END` marker (only a history's last region may not).
    pub closed: bool,
}

impl RegionSpan {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Learning histories laid end to end (history-major global transition ids), with their
/// regions numbered flat (history-major, then region).
pub trait HistoryView: Sync {
    fn obs_dim(&self) -> usize;
    fn n_actions(&self) -> usize;
    fn n_histories(&self) -> usize;
    /// Global transition ids of history `h`.
    fn history_range(&self, h: usize) -> Range<usize>;
    fn n_transitions(&self) -> usize;
    fn n_regions(&self) -> usize;
    fn region(&self, r: usize) -> RegionSpan;
    /// The region before region `r` in the same history, if any.
    fn previous_region(&self, r: usize) -> Option<RegionSpan>;
    /// The flat region holding transition `g`.
    fn region_of(&self, g: usize) -> usize;
    /// `a_g`.
    fn action(&self, g: usize) -> usize;
    /// Compress marker of transition `g` (`tokens::marker`).
    fn marker(&self, g: usize) -> u8;
    /// Discrete state index of `s_g` (the query's input).
    fn state_index(&self, g: usize) -> usize;
    /// `concat(s, one_hot(a), r, s')` of transition `g`.
    fn transition_features(&self, g: usize, out: &mut [f32]);
    /// The dense-layout token of transition `g` (previous transition of the history starting
    /// at `history_start`, then `s_g`).
    fn dense_features(&self, g: usize, history_start: usize, out: &mut [f32]);
    /// `r_g`.
    fn reward(&self, g: usize) -> f32;
}

/// Receives one sample's tokens left to right; every push returns the token's position.
pub trait SequenceSink {
    /// `<c>`
    fn open(&mut self) -> usize;
    /// `</c>`
    fn close(&mut self) -> usize;
    /// The transition token of global transition `g`.
    fn transition(&mut self, g: usize) -> usize;
    /// The dense-layout token of transition `g` of the history starting at `history_start`.
    fn dense(&mut self, g: usize, history_start: usize) -> usize;
    /// The query `q(s_g)`.
    fn query(&mut self, g: usize) -> usize;
    /// Memory token `<m_slot>`; `region`: its region's index where the layout embeds it.
    fn memory(&mut self, slot: usize, region: Option<usize>) -> usize;
    /// The dense-layout token of transition `g` kept from a dropped region, as kept slot
    /// `slot`.
    fn kept(&mut self, g: usize, history_start: usize, slot: usize) -> usize;
    /// Supervise position `pos` with an action and a next-token-type label.
    fn label(&mut self, pos: usize, action: i32, next_type: i32);
    /// The sequence's attention pattern, for layouts that are not causal (sequences start
    /// causal).
    fn visibility(&mut self, visibility: Visibility);
}

/// A sample written out as [`Token`]s with its labels and visibility: what evaluation's
/// contexts are compared with, and a readable form of a training sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSequence {
    pub tokens: Vec<Token>,
    /// Per position: action label, or [`IGNORE`].
    pub target_action: Vec<i32>,
    /// Per position: next-token-type label, or [`IGNORE`].
    pub target_type: Vec<i32>,
    pub visibility: Visibility,
}

impl TokenSequence {
    /// Write sample `sample` of `layout` over `view`.
    pub fn of_sample(
        layout: &dyn super::ContextLayout,
        view: &dyn HistoryView,
        sample: usize,
    ) -> Self {
        let mut w = TokenSequenceWriter {
            view,
            seq: TokenSequence {
                tokens: Vec::new(),
                target_action: Vec::new(),
                target_type: Vec::new(),
                visibility: Visibility::Causal,
            },
        };
        layout.write_sample(view, sample, &mut w);
        w.seq
    }
}

/// [`SequenceSink`] building a [`TokenSequence`] from a view.
struct TokenSequenceWriter<'a> {
    view: &'a dyn HistoryView,
    seq: TokenSequence,
}

impl TokenSequenceWriter<'_> {
    fn push(&mut self, t: Token) -> usize {
        self.seq.tokens.push(t);
        self.seq.target_action.push(IGNORE);
        self.seq.target_type.push(IGNORE);
        self.seq.tokens.len() - 1
    }
}

impl SequenceSink for TokenSequenceWriter<'_> {
    fn open(&mut self) -> usize {
        self.push(Token::Open)
    }

    fn close(&mut self) -> usize {
        self.push(Token::Close)
    }

    fn transition(&mut self, g: usize) -> usize {
        let v = self.view;
        let mut f = vec![0.0; transition_feature_dim(v.obs_dim(), v.n_actions())];
        v.transition_features(g, &mut f);
        self.push(Token::Transition(f))
    }

    fn dense(&mut self, g: usize, history_start: usize) -> usize {
        let v = self.view;
        let mut f = vec![0.0; dense_feature_dim(v.obs_dim(), v.n_actions())];
        v.dense_features(g, history_start, &mut f);
        self.push(Token::Transition(f))
    }

    fn query(&mut self, g: usize) -> usize {
        self.push(Token::Query(self.view.state_index(g)))
    }

    fn memory(&mut self, slot: usize, region: Option<usize>) -> usize {
        self.push(Token::Memory { slot, region })
    }

    fn kept(&mut self, g: usize, history_start: usize, slot: usize) -> usize {
        let v = self.view;
        let mut features = vec![0.0; dense_feature_dim(v.obs_dim(), v.n_actions())];
        v.dense_features(g, history_start, &mut features);
        self.push(Token::Kept { features, slot })
    }

    fn label(&mut self, pos: usize, action: i32, next_type: i32) {
        self.seq.target_action[pos] = action;
        self.seq.target_type[pos] = next_type;
    }

    fn visibility(&mut self, visibility: Visibility) {
        self.seq.visibility = visibility;
    }
}
