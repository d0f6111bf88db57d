//! Token layouts: how one sample becomes one token sequence with its labels (DESIGN §5).
//!
//! A [`TokenLayout`] says how many samples a pass holds, how long each sample's sequence is,
//! and writes it through a [`Row`], which turns tokens into the model's inputs. The two
//! query layouts here (one label per sequence, at the query) are [`CompressedQuery`] and
//! [`WindowQuery`]; a layout that supervises every position of one sequence per region adds
//! itself as a new implementor without touching loading, sampling or batching.

use ccad_core::config::{Config, ContextMode, Objective};
use ccad_core::error::ConfigError;
use ccad_core::tokens::{IGNORE, token_kind, token_type};
use ccad_core::{Error, Result};

use crate::Corpus;
use crate::history::Histories;

/// How samples become token sequences.
pub trait TokenLayout: Send + Sync + std::fmt::Debug {
    /// Name for logs ("compressed", "window").
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
}

/// The layout a config asks for.
pub fn layout_for(cfg: &Config) -> Result<Box<dyn TokenLayout>> {
    match (cfg.model.objective, cfg.dataset.context) {
        (Objective::Query, ContextMode::Compressed) => Ok(Box::new(CompressedQuery)),
        (Objective::Query, ContextMode::Window) => Ok(Box::new(WindowQuery {
            n_transit: cfg.dataset.n_transit,
        })),
        (Objective::Dense, _) => Err(Error::Config(ConfigError::new(
            "config",
            "model.objective",
            "\"dense\" has no token layout yet; use \"query\"",
        ))),
    }
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
