//! The three stages an experiment runs, each in a child process of the `experiment` binary
//! (`experiment --stage NAME --config FILE`): a failed or killed stage cannot take the
//! runner down, and each child's peak memory is its own. Each does what the stage's own
//! binary does with that config.

use std::path::{Path, PathBuf};

use ccad_core::Result;
use ccad_core::config::Config;
use serde::{Deserialize, Serialize};

/// A stage of a cell or of the collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Collect,
    Train,
    Evaluate,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Collect => "collect",
            Stage::Train => "train",
            Stage::Evaluate => "evaluate",
        }
    }
}

/// Run `stage` on the config at `path` in this process. `log_dir`: collect's TensorBoard
/// folder.
pub fn run_stage(stage: Stage, path: &Path, log_dir: Option<PathBuf>) -> Result<()> {
    let cfg = Config::load(path, &[])?;
    match stage {
        Stage::Collect => {
            // The runner decided that the file is missing or stale (a dataset's name is the
            // hash of what it collects, so an existing file of that name is only an
            // interrupted or older collection of the same thing).
            let opts = collect::CollectOptions {
                force: true,
                log_dir,
                ..Default::default()
            };
            let report = collect::collect(&cfg, &opts)?;
            println!("{report}");
        }
        Stage::Train => {
            ccad_core::backend::start_device()?;
            let opts = crate::TrainOptions {
                fresh: false,
                stop_after: None,
                progress: true,
                verbose: true,
                allow_dataset_change: false,
            };
            crate::train_with_probe(&cfg, &opts)?;
        }
        Stage::Evaluate => {
            ccad_core::backend::start_device()?;
            let opts = evaluate::run::EvalOptions {
                run_dir: cfg.run_dir(),
                progress: true,
                ..Default::default()
            };
            let out = evaluate::run::evaluate_run(&opts, &ccad_core::backend::device())?;
            print!("{}", out.summary.table());
        }
    }
    Ok(())
}
