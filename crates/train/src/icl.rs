//! In-context rollouts during training through `evaluate`'s rollout library: the
//! [`IclProbe`] the binary plugs into the loop when `train.icl_interval > 0`.

use std::path::Path;

use ccad_core::config::Config;
use ccad_core::history::HistoryReader;
use ccad_core::{Result, backend};
use model::AdModel;

use crate::trainer::{IclProbe, IclResult};

/// Tasks of each set a probe rolls out on (the first ones of the dataset's lists): enough
/// to see a trend, few enough to keep the probe short.
pub const PROBE_TASKS: usize = 4;

/// `train.icl_episodes` episodes on up to [`PROBE_TASKS`] train and test tasks, one seed
/// each, with the run's context, sampling and boundary settings.
pub struct EvaluateProbe {
    cfg: Config,
    train_tasks: Vec<usize>,
    test_tasks: Vec<usize>,
}

impl EvaluateProbe {
    /// Tasks from the history file's train/test lists.
    pub fn from_dataset(cfg: &Config, dataset_path: &Path) -> Result<Self> {
        let meta = HistoryReader::open(dataset_path)?.meta;
        let mut cfg = cfg.clone();
        cfg.eval.seeds = 1;
        let first = |v: &[usize]| v.iter().copied().take(PROBE_TASKS).collect();
        Ok(Self {
            train_tasks: first(&meta.train_tasks),
            test_tasks: first(&meta.test_tasks),
            cfg,
        })
    }
}

impl IclProbe for EvaluateProbe {
    fn run(&mut self, model: &AdModel, _step: usize) -> Result<IclResult> {
        let device = backend::device();
        let episodes = self.cfg.train.icl_episodes;
        let curve = |tasks: &[usize]| -> Result<Vec<f64>> {
            if tasks.is_empty() {
                return Ok(Vec::new());
            }
            evaluate::in_context_curve(model, &self.cfg, tasks, episodes, &device)
        };
        Ok(IclResult {
            train_returns: curve(&self.train_tasks)?,
            test_returns: curve(&self.test_tasks)?,
        })
    }
}
