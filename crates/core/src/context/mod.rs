//! The token grammar, once (DESIGN §5–§7): which tokens, in which order, which labelled.
//!
//! - [`tokens`]: markers, token kinds and types, feature layouts, the model's [`TokenBatch`].
//! - [`Token`]: one context entry as evaluation holds it; [`batch_from_tokens`] packs lists.
//! - [`ContextLayout`]: one type per context mode × objective that owns both sides of it:
//!   * training: samples in a pass, a sample's length, writing its tokens and labels over a
//!     [`HistoryView`] into a [`SequenceSink`];
//!   * evaluation: what each step appends and drops ([`RollingContext`]), reported as
//!     [`CacheEvent`]s;
//!   * `max_len` (the model's position limit) and `feat_dim`.
//!
//!   [`CompressedQuery`], [`WindowQuery`], [`CompressedDense`], [`WindowDense`],
//!   [`MemoryDense`] (a whole history as a [`Chain`] of blocks with memory tokens),
//!   [`KeepDense`] (the selective baseline: rewarded tokens of dropped regions kept).
//! - [`layout_for`]: the registry, the one place that maps `dataset.context` ×
//!   `model.objective` to a layout. Adding a mode is one new file here plus its line there
//!   (and its name in `config::ContextMode`).
//!
//! Contract, held by this module's property test for every layout: at every evaluation step
//! the rolling context (plus the query, where the layout has one) equals, token for token,
//! the training sequence of the corresponding sample (or, for the dense objective, its prefix
//! up to the step's token).

mod chain;
mod compressed_dense;
mod compressed_query;
mod keep_dense;
mod memory_dense;
mod rolling;
mod token;
pub mod tokens;
mod view;
mod visibility;
mod window_dense;
mod window_query;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::config::{Config, ContextMode, Keep, Objective};

pub use chain::{Chain, MemoryRead, MemoryUpdate};
pub use compressed_dense::CompressedDense;
pub use compressed_query::CompressedQuery;
pub use keep_dense::KeepDense;
pub use memory_dense::MemoryDense;
pub use rolling::{CacheEvent, RollingContext, RollingState};
pub use token::{Token, batch_from_tokens, dense_token};
pub use tokens::{PrevTransition, TokenBatch};
pub use view::{HistoryView, RegionSpan, SequenceSink, TokenSequence};
pub use visibility::Visibility;
pub use window_dense::WindowDense;
pub use window_query::WindowQuery;

/// One context mode × objective: its training sequences and its rolling evaluation context.
pub trait ContextLayout: Send + Sync + std::fmt::Debug {
    /// Name for logs ("compressed", "window", "compressed-dense", "window-dense").
    fn name(&self) -> &'static str;
    /// The context mode's name ("compressed", "window").
    fn context_name(&self) -> &'static str;
    /// The objective's name ("query", "dense").
    fn objective_name(&self) -> &'static str;
    /// What one feature vector describes, for messages ("transitions", "dense tokens").
    fn feature_noun(&self) -> &'static str;
    /// Longest sequence, query included (the model's position limit).
    fn max_len(&self) -> usize;
    /// Length of a feature vector (the model's `feat_dim`).
    fn feat_dim(&self, obs_dim: usize, n_actions: usize) -> usize;
    /// Memory or kept-token slots the layout's tokens carry (the model's slot table); 0
    /// for layouts without them.
    fn slots(&self) -> usize {
        0
    }

    // ---- training side ----

    /// Called once with the histories the layout will serve, for layouts that index their
    /// samples; every other training method then gets that view.
    fn prepare(&mut self, _view: &dyn HistoryView) {}
    /// Samples in one pass; sample numbers are `0..n_samples`.
    fn n_samples(&self, view: &dyn HistoryView) -> usize;
    /// Tokens in the sequence of `sample`.
    fn sample_len(&self, view: &dyn HistoryView, sample: usize) -> usize;
    /// Write `sample`'s tokens and labels; pushes exactly `sample_len(view, sample)` tokens.
    fn write_sample(&self, view: &dyn HistoryView, sample: usize, out: &mut dyn SequenceSink);
    /// Mean supervised action labels per sample over one pass. A pass supervises every
    /// transition exactly once (held by the property test for every layout), so this is
    /// transitions / samples: what an equal label budget divides by.
    fn labels_per_sample(&self, view: &dyn HistoryView) -> f64 {
        view.n_transitions() as f64 / self.n_samples(view).max(1) as f64
    }

    // ---- evaluation side ----

    /// Fill an empty context with its first tokens (`<c>` or nothing).
    fn start(&self, state: &mut RollingState);
    /// The token an environment's first observation `s` adds, if the layout has one.
    fn first_token(&self, s: &[i32], n_actions: usize) -> Option<Token>;
    /// The token a step adds: the transition just taken `prev`, and `s_now`, the state the
    /// next action is taken from (after an episode end, the reset state).
    fn step_token(&self, prev: PrevTransition<'_>, s_now: &[i32], n_actions: usize) -> Token;
    /// The query read after the context, if the layout has one (else the context's last
    /// token is where the action is read).
    fn query_token(&self, state_index: usize) -> Option<Token>;
    /// Add `token` to the context. `predicted_close`: the token-type head predicted `</c>`
    /// at the position the last action was read from (used only by layouts with predicted
    /// boundaries).
    fn push(&self, state: &mut RollingState, token: Token, predicted_close: bool) -> CacheEvent;
}

/// A layout shared by every environment of a rollout.
#[derive(Debug, Clone)]
pub struct Layout(Arc<dyn ContextLayout>);

impl Layout {
    pub fn new(layout: impl ContextLayout + 'static) -> Self {
        Self(Arc::new(layout))
    }

    /// The layout a config trained with (see [`layout_for`]).
    pub fn from_config(cfg: &Config) -> Self {
        Self(Arc::from(layout_for(cfg)))
    }

    /// Whether the model reads a query after the context.
    pub fn has_query(&self) -> bool {
        self.query_token(0).is_some()
    }
}

impl std::ops::Deref for Layout {
    type Target = dyn ContextLayout;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

/// The registry: the layout of `dataset.context` × `model.objective`, with the config's
/// compress interval, window length and evaluation boundary.
pub fn layout_for(cfg: &Config) -> Box<dyn ContextLayout> {
    let (interval, boundary) = (cfg.compress_interval(), cfg.eval.boundary);
    let n_transit = cfg.dataset.n_transit;
    match (cfg.dataset.context, cfg.model.objective) {
        (ContextMode::Compressed, Objective::Query) => {
            Box::new(CompressedQuery::new(interval, boundary))
        }
        (ContextMode::Window, Objective::Query) => Box::new(WindowQuery::new(n_transit)),
        (ContextMode::Compressed, Objective::Dense) => {
            Box::new(CompressedDense::new(interval, boundary))
        }
        (ContextMode::Window, Objective::Dense) => Box::new(WindowDense::new(n_transit)),
        // Config validation refuses the query objective with memory.
        (ContextMode::Memory, _) if cfg.memory.keep == Keep::Rewarded => {
            let env = crate::env::make_env(&cfg.env);
            Box::new(KeepDense::new(
                interval,
                cfg.memory.keep_max,
                env.obs_dim(),
                env.n_actions(),
            ))
        }
        (ContextMode::Memory, _) => Box::new(
            MemoryDense::new(interval, cfg.memory.tokens, cfg.memory.update)
                .with_train_regions(cfg.memory.train_regions),
        ),
    }
}

/// Type label of the token after transition `g` of region `region`: `</c>` if `g` ends its
/// (closed) region, else a transition. Window layouts use it too, so both modes train the
/// same heads.
#[inline]
fn next_type(view: &dyn HistoryView, g: usize, region: usize) -> i32 {
    let r = view.region(region);
    if r.closed && g + 1 == r.end {
        tokens::token_type::CLOSE as i32
    } else {
        tokens::token_type::TRANSITION as i32
    }
}

/// Type label of the dense token of transition `g`: `</c>` follows it iff it carries the
/// `END` marker (region parsing makes that the last transition of a closed region).
#[inline]
fn dense_type(view: &dyn HistoryView, g: usize) -> i32 {
    if view.marker(g) == tokens::marker::END {
        tokens::token_type::CLOSE as i32
    } else {
        tokens::token_type::TRANSITION as i32
    }
}

/// Push the dense tokens of transitions `gs` of the history starting at `history_start`,
/// supervising each with `a_g` and its next-token type if `supervise`.
fn dense_run(
    view: &dyn HistoryView,
    gs: std::ops::Range<usize>,
    history_start: usize,
    supervise: bool,
    out: &mut dyn SequenceSink,
) {
    for g in gs {
        let pos = out.dense(g, history_start);
        if supervise {
            out.label(pos, view.action(g) as i32, dense_type(view, g));
        }
    }
}

/// Query objective: the query's position gets `a_g` and the type after `g`.
fn write_query(view: &dyn HistoryView, g: usize, region: usize, out: &mut dyn SequenceSink) {
    let q = out.query(g);
    out.label(q, view.action(g) as i32, next_type(view, g, region));
}
