//! Token layouts: how one sample becomes one token sequence with its labels (DESIGN §5, §5a).
//!
//! A [`TokenLayout`] says how many samples a pass holds, how long each sample's sequence is,
//! and writes it through a [`Row`], which turns tokens into the model's inputs. The query
//! objective (one label per sequence, at the query) has [`CompressedQuery`] and
//! [`WindowQuery`]; the dense objective (a label at every token whose next action is defined)
//! has [`CompressedDense`] (one sequence per region) and [`WindowDense`] (one sequence per
//! chunk of `n_transit` steps). Loading, sampling and batching are the same for all four.

use ccad_core::Result;
use ccad_core::config::{Config, ContextMode, Objective};
use ccad_core::tokens::{IGNORE, marker, token_kind, token_type};

use crate::Corpus;
use crate::history::Histories;

/// How samples become token sequences.
pub trait TokenLayout: Send + Sync + std::fmt::Debug {
    /// Name for logs ("compressed", "window", "compressed-dense", "window-dense").
    fn name(&self) -> &'static str;
    /// Samples in one pass over `c`; sample numbers are `0..n_samples`.
    fn n_samples(&self, c: &Corpus) -> usize;
    /// Tokens in the sequence of `sample`.
    fn len(&self, c: &Corpus, sample: usize) -> usize;
    /// Longest sequence this layout can produce (the model's position limit).
    fn max_len(&self, c: &Corpus) -> usize;
    /// Write `sample`'s tokens and labels into an all-padding row; must push exactly
    /// `len(c, sample)` tokens.
    fn write(&self, c: &Corpus, sample: usize, row: &mut Row<'_>);
    /// Length of a transition token's feature vector (the model's `feat_dim`).
    fn feat_dim(&self, c: &Corpus) -> usize {
        c.histories.feat_dim()
    }
    /// Called once by [`crate::Dataset::new`] with the corpus the layout will serve, for
    /// layouts that index their samples; every other method then gets that corpus.
    fn prepare(&mut self, _c: &Corpus) {}
}

/// The layout a config asks for: `dataset.context` × `model.objective`.
pub fn layout_for(cfg: &Config) -> Result<Box<dyn TokenLayout>> {
    let n_transit = cfg.dataset.n_transit;
    Ok(match (cfg.model.objective, cfg.dataset.context) {
        (Objective::Query, ContextMode::Compressed) => Box::new(CompressedQuery),
        (Objective::Query, ContextMode::Window) => Box::new(WindowQuery { n_transit }),
        (Objective::Dense, ContextMode::Compressed) => Box::new(CompressedDense),
        (Objective::Dense, ContextMode::Window) => Box::new(WindowDense::new(n_transit)),
    })
}

/// Type label of the token after transition `g`: `</c>` if `g` ends its region, else a
/// transition.
#[inline]
pub fn next_type(c: &Corpus, g: usize, region: usize) -> i32 {
    let r = &c.regions.regions()[region];
    if r.closed && g + 1 == r.end {
        token_type::CLOSE as i32
    } else {
        token_type::TRANSITION as i32
    }
}

/// Compressed context, query objective. Sample `g` is transition `g` as the query; with `P`
/// the previous region and `C` the query's region:
/// `<c> C[start..g] q(s_g)` in a history's first region, else `<c> P </c> <c> C[start..g] q(s_g)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompressedQuery;

impl TokenLayout for CompressedQuery {
    fn name(&self) -> &'static str {
        "compressed"
    }

    fn n_samples(&self, c: &Corpus) -> usize {
        c.histories.n_transitions()
    }

    fn len(&self, c: &Corpus, g: usize) -> usize {
        let loc = c.regions.locate(g, &c.histories);
        let prefix = g - c.regions.regions()[loc.region].start;
        match c.regions.previous(loc.region) {
            None => prefix + 2,
            Some(p) => p.len() + prefix + 4,
        }
    }

    fn max_len(&self, c: &Corpus) -> usize {
        2 * c.regions.interval() + 3
    }

    fn write(&self, c: &Corpus, g: usize, row: &mut Row<'_>) {
        let loc = c.regions.locate(g, &c.histories);
        row.open();
        if let Some(p) = c.regions.previous(loc.region) {
            row.transitions(p.start..p.end);
            row.close();
            row.open();
        }
        row.transitions(c.regions.regions()[loc.region].start..g);
        let q = row.query(g);
        row.label(
            q,
            c.histories.actions[g] as i32,
            next_type(c, g, loc.region),
        );
    }
}

/// Window context (standard AD), query objective: the last `n_transit - 1` transitions of the
/// same history before `g` (fewer near the history's start), then `q(s_g)`; no markers.
/// The type label is the same as in compressed mode so both modes train the same heads.
#[derive(Debug, Clone, Copy)]
pub struct WindowQuery {
    pub n_transit: usize,
}

impl WindowQuery {
    fn first(&self, c: &Corpus, g: usize, history: usize) -> usize {
        c.histories.offsets[history].max((g + 1).saturating_sub(self.n_transit))
    }
}

impl TokenLayout for WindowQuery {
    fn name(&self) -> &'static str {
        "window"
    }

    fn n_samples(&self, c: &Corpus) -> usize {
        c.histories.n_transitions()
    }

    fn len(&self, c: &Corpus, g: usize) -> usize {
        let loc = c.regions.locate(g, &c.histories);
        g - self.first(c, g, loc.history) + 1
    }

    fn max_len(&self, _c: &Corpus) -> usize {
        self.n_transit
    }

    fn write(&self, c: &Corpus, g: usize, row: &mut Row<'_>) {
        let loc = c.regions.locate(g, &c.histories);
        row.transitions(self.first(c, g, loc.history)..g);
        let q = row.query(g);
        row.label(
            q,
            c.histories.actions[g] as i32,
            next_type(c, g, loc.region),
        );
    }
}

/// Type label of the dense token of transition `g`: `</c>` follows it iff it carries the
/// `END` marker (region parsing makes that the last transition of a closed region).
#[inline]
fn dense_type(c: &Corpus, g: usize) -> i32 {
    if c.histories.markers[g] == marker::END {
        token_type::CLOSE as i32
    } else {
        token_type::TRANSITION as i32
    }
}

/// Push the dense tokens of transitions `gs` of the history starting at `history_start`,
/// supervising each with `a_g` and its next-token type if `supervise`.
fn dense_run(
    c: &Corpus,
    gs: std::ops::Range<usize>,
    history_start: usize,
    supervise: bool,
    row: &mut Row<'_>,
) {
    for g in gs {
        let pos = row.dense(g, history_start);
        if supervise {
            row.label(pos, c.histories.actions[g] as i32, dense_type(c, g));
        }
    }
}

/// Compressed context, dense objective (DESIGN §5a). Sample `r` is flat region `r` (region
/// `k` of its history) with `P` the previous region and `C` region `r`, as dense tokens:
/// `<c> C` if `k = 0`, else `<c> P </c> <c> C`. Every token of `C` is supervised; `P` and the
/// markers are context only. Each token of `C` thus sees exactly the context evaluation
/// gives it, and every transition is supervised once per pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompressedDense;

impl TokenLayout for CompressedDense {
    fn name(&self) -> &'static str {
        "compressed-dense"
    }

    fn n_samples(&self, c: &Corpus) -> usize {
        c.regions.regions().len()
    }

    fn len(&self, c: &Corpus, r: usize) -> usize {
        let cur = c.regions.regions()[r].len();
        match c.regions.previous(r) {
            None => cur + 1,
            Some(p) => p.len() + cur + 3,
        }
    }

    fn max_len(&self, c: &Corpus) -> usize {
        2 * c.regions.interval() + 3
    }

    fn feat_dim(&self, c: &Corpus) -> usize {
        c.histories.dense_feat_dim()
    }

    fn write(&self, c: &Corpus, r: usize, row: &mut Row<'_>) {
        let cur = c.regions.regions()[r];
        let h0 = c.histories.offsets[cur.history as usize];
        row.open();
        if let Some(p) = c.regions.previous(r) {
            dense_run(c, p.start..p.end, h0, false, row);
            row.close();
            row.open();
        }
        dense_run(c, cur.start..cur.end, h0, true, row);
    }
}

/// Window context, dense objective (DESIGN §5a): each history is cut into chunks of
/// `n_transit` consecutive steps from its start (the last may be shorter); sample = chunk, as
/// dense tokens, every one supervised, no markers.
#[derive(Debug, Clone, Default)]
pub struct WindowDense {
    pub n_transit: usize,
    /// `[n_histories + 1]`: prefix sums of each history's chunk count, made by `prepare`.
    chunks: Vec<usize>,
}

impl WindowDense {
    pub fn new(n_transit: usize) -> Self {
        assert!(n_transit > 0, "n_transit must be > 0");
        Self {
            n_transit,
            chunks: Vec::new(),
        }
    }

    /// Transitions `[start, end)` (global ids) of chunk `sample` and its history's start.
    fn chunk(&self, c: &Corpus, sample: usize) -> (std::ops::Range<usize>, usize) {
        debug_assert_eq!(
            self.chunks.len(),
            c.histories.n_histories() + 1,
            "WindowDense used with a corpus it was not prepared for"
        );
        let h = self.chunks.partition_point(|&o| o <= sample) - 1;
        let range = c.histories.range(h);
        let start = range.start + (sample - self.chunks[h]) * self.n_transit;
        (start..(start + self.n_transit).min(range.end), range.start)
    }
}

impl TokenLayout for WindowDense {
    fn name(&self) -> &'static str {
        "window-dense"
    }

    fn n_samples(&self, _c: &Corpus) -> usize {
        *self
            .chunks
            .last()
            .expect("WindowDense is prepared by Dataset::new before use")
    }

    fn len(&self, c: &Corpus, sample: usize) -> usize {
        self.chunk(c, sample).0.len()
    }

    fn max_len(&self, _c: &Corpus) -> usize {
        self.n_transit
    }

    fn feat_dim(&self, c: &Corpus) -> usize {
        c.histories.dense_feat_dim()
    }

    fn prepare(&mut self, c: &Corpus) {
        let h = &c.histories;
        self.chunks = std::iter::once(0)
            .chain((0..h.n_histories()).scan(0, |acc, i| {
                *acc += h.range(i).len().div_ceil(self.n_transit);
                Some(*acc)
            }))
            .collect();
    }

    fn write(&self, c: &Corpus, sample: usize, row: &mut Row<'_>) {
        let (gs, h0) = self.chunk(c, sample);
        dense_run(c, gs, h0, true, row);
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

    /// `<c>`
    pub fn open(&mut self) -> usize {
        self.push(token_kind::OPEN)
    }

    /// `</c>`
    pub fn close(&mut self) -> usize {
        self.push(token_kind::CLOSE)
    }

    /// Transition tokens for global transition ids `gs`, in order.
    pub fn transitions(&mut self, gs: std::ops::Range<usize>) {
        let fd = self.feat_dim;
        for g in gs {
            let pos = self.push(token_kind::TRANSITION);
            self.histories
                .features(g, &mut self.features[pos * fd..(pos + 1) * fd]);
        }
    }

    /// The dense-layout token of transition `g` (previous transition of the same history and
    /// `s_g`; `history_start` is that history's first transition); returns its position.
    pub fn dense(&mut self, g: usize, history_start: usize) -> usize {
        let fd = self.feat_dim;
        let pos = self.push(token_kind::TRANSITION);
        self.histories.dense_features(
            g,
            history_start,
            &mut self.features[pos * fd..(pos + 1) * fd],
        );
        pos
    }

    /// The query `q(s_g)`; returns its position.
    pub fn query(&mut self, g: usize) -> usize {
        let pos = self.push(token_kind::QUERY);
        self.state_index[pos] = self.histories.state_index[g] as i32;
        pos
    }

    /// Supervise position `pos` with an action and a next-token-type label.
    pub fn label(&mut self, pos: usize, action: i32, next_type: i32) {
        debug_assert!(pos < self.len && action != IGNORE);
        self.target_action[pos] = action;
        self.target_type[pos] = next_type;
    }
}
