//! dataset: learning histories → padded token batches for the model (DESIGN §4–§5).
//!
//! - [`history`]: [`Histories`], a history file loaded into history-major arrays and checked
//!   against the config (environment, parameters, interval, actions, shapes).
//! - [`region`]: [`RegionIndex`], every history's rollout regions from its compress markers,
//!   with O(log n) look-up from a transition to (history, region, step).
//! - [`layout`]: [`TokenLayout`], how a sample becomes a token sequence: [`CompressedQuery`]
//!   (`<c> P </c> <c> C[..t] q(s_t)`) and [`WindowQuery`] (last `n_transit - 1` transitions).
//! - [`sampler`]: [`Sampler`] (seeded, epoch-free shuffling, optional length bucketing),
//!   [`Prefetcher`] (batches assembled on a background thread), [`fixed_batches`] and
//!   [`sequential_batches`] (deterministic held-out batches).
//! - [`synthetic`]: random-walk history files for tests and the benchmark.
//!
//! Choices where DESIGN is silent:
//! - A sample is one query transition; sample number = global transition id (history-major:
//!   history `(task, stream)` in the file's task-list order, then stream, then step).
//! - Markers are parsed strictly: a history starts with `<c>`; after an `END` the next
//!   transition is a `START`; only a history's last region may lack its `END`; no region is
//!   longer than `compress_interval` (so no sequence exceeds `2I + 3`).
//! - The next-token-type label is the same in window mode as in compressed mode (`2` where the
//!   stream's region ends), so both modes train the same two heads.
//! - Batches are ordered by an endless stream of seeded passes; a batch may straddle two passes.
//! - `dones` are not loaded: no token uses them (an episode end shows in the next state).
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
use ccad_core::tokens::TokenBatch;
use rayon::prelude::*;

pub use history::Histories;
pub use layout::{CompressedQuery, Row, TokenLayout, WindowQuery, layout_for};
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
    layout: Box<dyn TokenLayout>,
}

impl Dataset {
    /// Load the tasks `which` selects (train tasks for training, test tasks for held-out
    /// loss) from a history file, check it against `cfg`, index it, and pick the layout
    /// `cfg.dataset.context` / `cfg.model.objective` name.
    pub fn load(path: &Path, cfg: &Config, which: TaskSet) -> Result<Self> {
        let layout = layout_for(cfg)?;
        let histories = Histories::load(path, cfg, which)?;
        Ok(Self::new(Arc::new(Corpus::new(histories)?), layout))
    }

    pub fn new(corpus: Arc<Corpus>, layout: Box<dyn TokenLayout>) -> Self {
        Self { corpus, layout }
    }

    pub fn layout(&self) -> &dyn TokenLayout {
        self.layout.as_ref()
    }

    /// Samples in one pass.
    pub fn n_samples(&self) -> usize {
        self.layout.n_samples(&self.corpus)
    }

    /// Tokens in sample `i`'s sequence.
    pub fn sample_len(&self, i: usize) -> usize {
        self.layout.len(&self.corpus, i)
    }

    /// Longest possible sequence (`2I + 3` compressed, `n_transit` window).
    pub fn max_len(&self) -> usize {
        self.layout.max_len(&self.corpus)
    }

    /// Length of a transition's feature vector.
    pub fn feat_dim(&self) -> usize {
        self.corpus.histories.feat_dim()
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
            .map(
                |((((features, kinds), state_index), target_action), target_type)| Row {
                    histories,
                    feat_dim: fd,
                    features,
                    kinds,
                    state_index,
                    target_action,
                    target_type,
                    len: 0,
                },
            )
            .collect();
        rows.par_iter_mut()
            .zip(samples.par_iter())
            .with_min_len(16)
            .for_each(|(row, &i)| self.layout.write(&self.corpus, i, row));
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
