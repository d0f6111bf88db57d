//! dataset: learning histories → padded token batches for the model (DESIGN §4–§5a).
//!
//! - [`history`]: [`Histories`], a history file loaded into history-major arrays and checked
//!   against the config (environment, parameters, interval, actions, shapes);
//!   [`env_from_meta`], the environment a file's own attributes name (no config needed).
//! - [`region`]: [`RegionIndex`], every history's rollout regions from its compress markers,
//!   with O(log n) look-up from a transition to (history, region, step).
//! - [`layout`]: the [`Corpus`] as a `ccad_core::context::HistoryView` and [`Row`], the batch
//!   writer. How a sample becomes a token sequence is `ccad_core::context`'s
//!   [`ContextLayout`] (re-exported here): query objective [`CompressedQuery`]
//!   (`<c> P </c> <c> C[..t] q(s_t)`) and [`WindowQuery`] (last `n_transit - 1` transitions,
//!   then `q(s_t)`); dense objective [`CompressedDense`] and [`WindowDense`] (below).
//!   [`layout_for`] picks one from `dataset.context` × `model.objective`.
//! - [`sampler`]: [`Sampler`] (seeded, epoch-free shuffling, optional length bucketing),
//!   [`Prefetcher`] (batches assembled on a background thread), [`fixed_batches`] and
//!   [`sequential_batches`] (deterministic held-out batches).
//! - [`synthetic`]: random-walk history files for tests and the benchmark.
//!
//! Dense objective (`model.objective = "dense"`, DESIGN §5a). Every transition `t` of a
//! history becomes one token of kind TRANSITION whose features are
//! `ccad_core::tokens::dense_features(prev, s_t)`: `concat(s_{t-1}, one_hot(a_{t-1}), r_{t-1},
//! s'_{t-1}, done_{t-1}, s_t)`, all zeros but `s_t` at the history's first step (length
//! `dense_feature_dim(obs_dim, n_actions)`, which [`Dataset::feat_dim`] reports). The token
//! predicts `a_t` (`target_action`) and the next token's type (`target_type`: `2` if transition
//! `t` carries the `END` marker, else `0`). Markers carry no labels; there are no QUERY tokens:
//! in evaluation the context's last token plays the query. A token holds only actions before
//! `a_t`, so under causal attention no position sees its own or a later action.
//! - [`CompressedDense`]: one sample per (history, region `k`): `<c> C` for `k = 0`, else
//!   `<c> P </c> <c> C` (`P` = region `k - 1` whole, context only; `C` = region `k`, every
//!   token supervised). Each supervised token sees exactly `[<c> P </c>] <c> C[..j]`, the
//!   context evaluation gives it.
//! - [`WindowDense`]: one sample per chunk of `n_transit` consecutive steps of one history,
//!   cut at multiples of `n_transit` from the history's start (the last chunk may be shorter);
//!   every token supervised, no markers.
//!
//! In both, a pass supervises every transition exactly once.
//!
//! Choices where DESIGN is silent:
//! - Query objective: a sample is one query transition; sample number = global transition id
//!   (history-major: history `(task, stream)` in the file's task-list order, then stream, then
//!   step). Dense: sample number = flat region number ([`RegionIndex::regions`]) or chunk
//!   number (history-major, then chunk).
//! - Markers are parsed strictly: a history starts with `<c>`; after an `END` the next
//!   transition is a `START`; only a history's last region may lack its `END`; no region is
//!   longer than `compress_interval` (so no sequence exceeds `2I + 3`).
//! - The next-token-type label is the same in window mode as in compressed mode (`2` where the
//!   stream's region ends), so both modes train the same two heads.
//! - Batches are ordered by an endless stream of seeded passes; a batch may straddle two passes.
//! - `dones` are loaded as `Vec<bool>` (a flag other than 0/1 is a load error); only dense
//!   tokens read them.
//!
//! Typical use (train):
//! ```no_run
//! # fn main() -> ccad_core::Result<()> {
//! use std::sync::Arc;
//! use ccad_core::config::{Config, TaskSet};
//! let cfg = Config::from_toml_str("", "x.toml", &[]).unwrap();
//! let train = Arc::new(dataset::Dataset::load(&cfg.dataset_path(), &cfg, TaskSet::Train)?);
//! let test = Arc::new(dataset::Dataset::load(&cfg.dataset_path(), &cfg, TaskSet::Test)?);
//! let held_out = dataset::fixed_batches(&test, cfg.train.eval_batches, cfg.train.batch_size, 0);
//! let sampler = dataset::Sampler::new(
//!     train.clone(), cfg.train.batch_size, cfg.train.seed, cfg.dataset.bucket_by_length);
//! let mut batches = dataset::Prefetcher::spawn(sampler, cfg.dataset.prefetch);
//! let batch = batches.next_batch(); // a ccad_core::tokens::TokenBatch
//! # let _ = (held_out, batch); Ok(()) }
//! ```

pub mod history;
pub mod layout;
pub mod region;
pub mod sampler;
pub mod synthetic;

use std::path::Path;
use std::sync::Arc;

use ccad_core::Result;
use ccad_core::config::{Config, TaskSet};
use ccad_core::context::SequenceSink;
use ccad_core::tokens::TokenBatch;
use rayon::prelude::*;

pub use history::{Histories, env_from_meta};
pub use layout::{
    CompressedDense, CompressedQuery, ContextLayout, Row, WindowDense, WindowQuery, layout_for,
};
pub use region::{Location, Region, RegionIndex};
pub use sampler::{Prefetcher, Sampler, fixed_batches, sequential_batches};

/// Histories and their regions: what every layout reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    pub histories: Histories,
    pub regions: RegionIndex,
}

impl Corpus {
    /// Index the regions of `histories` (regions of at most `meta.compress_interval`).
    pub fn new(histories: Histories) -> Result<Self> {
        let regions = RegionIndex::build(&histories, histories.meta.compress_interval)?;
        Ok(Self { histories, regions })
    }
}

/// A corpus seen through one token layout: numbered samples that become batches.
#[derive(Debug)]
pub struct Dataset {
    /// Shared, so several layouts (or modes) can read one loaded file.
    pub corpus: Arc<Corpus>,
    layout: Box<dyn ContextLayout>,
}

impl Dataset {
    /// Load the tasks `which` selects (train tasks for training, test tasks for held-out
    /// loss) from a history file, check it against `cfg`, index it, and pick the layout
    /// `cfg.dataset.context` / `cfg.model.objective` name.
    pub fn load(path: &Path, cfg: &Config, which: TaskSet) -> Result<Self> {
        let layout = layout_for(cfg);
        let histories = Histories::load(path, cfg, which)?;
        Ok(Self::new(Arc::new(Corpus::new(histories)?), layout))
    }

    /// Pair a corpus with a layout (the layout indexes its samples here if it needs to).
    pub fn new(corpus: Arc<Corpus>, mut layout: Box<dyn ContextLayout>) -> Self {
        layout.prepare(corpus.as_ref());
        Self { corpus, layout }
    }

    pub fn layout(&self) -> &dyn ContextLayout {
        self.layout.as_ref()
    }

    /// Samples in one pass.
    pub fn n_samples(&self) -> usize {
        self.layout.n_samples(self.corpus.as_ref())
    }

    /// Tokens in sample `i`'s sequence.
    pub fn sample_len(&self, i: usize) -> usize {
        self.layout.sample_len(self.corpus.as_ref(), i)
    }

    /// Mean supervised action labels per sample over a pass (what a label budget divides by).
    pub fn labels_per_sample(&self) -> f64 {
        self.layout.labels_per_sample(self.corpus.as_ref())
    }

    /// Longest possible sequence (the model's position limit).
    pub fn max_len(&self) -> usize {
        self.layout.max_len()
    }

    /// Length of a transition token's feature vector: `transition_feature_dim` for the query
    /// objective, `dense_feature_dim` for the dense one (the model is built from it).
    pub fn feat_dim(&self) -> usize {
        let h = &self.corpus.histories;
        self.layout.feat_dim(h.obs_dim, h.n_actions)
    }

    /// Memory or kept-token slots the layout's tokens carry (the model's slot table).
    pub fn slots(&self) -> usize {
        self.layout.slots()
    }

    /// The batch of `samples`, in that order, padded to its longest sequence. Rows are
    /// written in parallel.
    pub fn batch(&self, samples: &[usize]) -> TokenBatch {
        let lengths: Vec<usize> = samples.iter().map(|&i| self.sample_len(i)).collect();
        let seq_len = lengths.iter().copied().max().unwrap_or(0);
        let fd = self.feat_dim();
        let mut b = TokenBatch::zeros(samples.len(), seq_len, fd);
        if seq_len == 0 {
            return b;
        }
        let histories = &self.corpus.histories;
        let mut rows: Vec<Row<'_>> = b
            .features
            .chunks_mut(seq_len * fd)
            .zip(b.kinds.chunks_mut(seq_len))
            .zip(b.state_index.chunks_mut(seq_len))
            .zip(b.target_action.chunks_mut(seq_len))
            .zip(b.target_type.chunks_mut(seq_len))
            .zip(b.visibility.iter_mut())
            .zip(b.slot.chunks_mut(seq_len).zip(b.region.chunks_mut(seq_len)))
            .map(
                |(
                    (((((features, kinds), state_index), target_action), target_type), visibility),
                    (slot, region),
                )| Row {
                    histories,
                    feat_dim: fd,
                    features,
                    kinds,
                    state_index,
                    target_action,
                    target_type,
                    visibility,
                    slot,
                    region,
                    len: 0,
                },
            )
            .collect();
        rows.par_iter_mut()
            .zip(samples.par_iter())
            .with_min_len(16)
            .for_each(|(row, &i)| {
                self.layout
                    .write_sample(self.corpus.as_ref(), i, row as &mut dyn SequenceSink)
            });
        debug_assert!(rows.iter().zip(&lengths).all(|(r, &l)| r.len == l));
        drop(rows);
        b.lengths = lengths;
        b
    }
}

/// Share of a batch's positions that are padding.
pub fn padding_fraction(b: &TokenBatch) -> f64 {
    let cells = b.batch * b.seq_len;
    if cells == 0 {
        return 0.0;
    }
    1.0 - b.lengths.iter().sum::<usize>() as f64 / cells as f64
}
