//! One run folder's records (format: `model::run_folder`), read and cross-checked: what
//! train measured (`train_stats.json`: speed, memory, context length), the config the run
//! trained with, the evaluation's setup and each environment's optimum (`eval/summary.json`)
//! and its returns (`eval/eval_result.npy`).
//!
//! Every problem is one error naming the file and the field.

use std::path::{Path, PathBuf};

use ccad_core::config::Config;
use ccad_core::{Error, Result};
use evaluate::summary::Summary;
use model::run_folder::{RESULT_FILE, RunDir, SUMMARY_FILE, TrainStats};
use serde::de::DeserializeOwned;

/// A run's evaluation: returns of `n_envs` (task × seed) environments over `n_episodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRecord {
    /// "test" (held-out), "train" or "all".
    pub task_set: String,
    pub checkpoint_step: Option<u64>,
    pub n_envs: usize,
    pub n_episodes: usize,
    /// Per environment.
    pub optimal: Vec<f32>,
    /// Row-major `[n_envs, n_episodes]`.
    pub returns: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub dir: PathBuf,
    /// The folder's name.
    pub name: String,
    pub stats: TrainStats,
    pub config: Config,
    pub eval: EvalRecord,
}

fn require_file(path: &Path, field: &str, hint: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::file(path, field, format!("missing ({hint})")))
    }
}

/// Parse a JSON file into `T`; a bad value names its field path (e.g. `envs[2].optimal_return`).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // No path ("." or "?") for a syntax error or a missing top-level field.
        let field = match e.path().to_string() {
            p if p == "." || p == "?" => "json".to_string(),
            p => p,
        };
        Error::file(path, field, e.inner().to_string())
    })
}

/// Read and cross-check one run folder.
pub fn load_run(dir: &Path) -> Result<RunRecord> {
    if !dir.is_dir() {
        return Err(Error::file(dir, "run", "run folder does not exist"));
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::file(dir, "run", "has no folder name"))?;

    let run = RunDir::new(dir);
    let stats_path = run.stats_path();
    require_file(&stats_path, "train_stats", "run train first")?;
    let stats: TrainStats = read_json(&stats_path)?;

    let config_path = run.config_path();
    require_file(&config_path, "config", "not a training run folder")?;
    let config = Config::load(&config_path, &[])?;

    let eval_dir = run.eval_dir();
    let summary_path = eval_dir.join(SUMMARY_FILE);
    require_file(&summary_path, "summary", "run evaluate first")?;
    let summary: Summary = read_json(&summary_path)?;
    let npy_path = eval_dir.join(RESULT_FILE);
    require_file(&npy_path, "eval_result", "run evaluate first")?;
    let (shape, returns) = evaluate::npy::read_npy_f32(&npy_path)?;

    check_same_model(&config, &stats, &stats_path, &summary, &summary_path)?;

    let (n_envs, n_episodes) = (summary.n_envs, summary.n_episodes);
    if n_envs == 0 || n_episodes == 0 {
        return Err(Error::file(
            &summary_path,
            if n_envs == 0 { "n_envs" } else { "n_episodes" },
            "is 0: nothing was evaluated",
        ));
    }
    if summary.envs.len() != n_envs {
        return Err(Error::file(
            &summary_path,
            "envs",
            format!("has {} entries, n_envs says {n_envs}", summary.envs.len()),
        ));
    }
    if shape != [n_envs, n_episodes] {
        return Err(Error::file(
            &npy_path,
            "shape",
            format!("is {shape:?}, summary.json says [{n_envs}, {n_episodes}]"),
        ));
    }
    if let Some(i) = returns.iter().position(|r| !r.is_finite()) {
        return Err(Error::file(
            &npy_path,
            "values",
            format!(
                "non-finite return at [{}, {}]",
                i / n_episodes,
                i % n_episodes
            ),
        ));
    }
    let optimal: Vec<f32> = summary.envs.iter().map(|e| e.optimal_return).collect();
    if !optimal.iter().any(|&o| o > 0.0) {
        return Err(Error::file(
            &summary_path,
            "envs.optimal_return",
            "no environment has a positive optimum: returns cannot be normalised",
        ));
    }

    Ok(RunRecord {
        dir: dir.to_path_buf(),
        name,
        stats,
        config,
        eval: EvalRecord {
            task_set: summary.info.task_set,
            checkpoint_step: summary.info.checkpoint_step,
            n_envs,
            n_episodes,
            optimal,
            returns,
        },
    })
}

/// The run's config, its `train_stats.json` and its evaluation summary must describe the same
/// model (context mode and objective).
fn check_same_model(
    config: &Config,
    stats: &TrainStats,
    stats_path: &Path,
    summary: &Summary,
    summary_path: &Path,
) -> Result<()> {
    let layout = ccad_core::context::layout_for(config);
    let context = layout.context_name();
    if stats.context != context {
        return Err(Error::file(
            stats_path,
            "context",
            format!("is {:?}, config.toml says {context:?}", stats.context),
        ));
    }
    if summary.info.context != context {
        return Err(Error::file(
            summary_path,
            "info.context",
            format!(
                "is {:?}, config.toml says {context:?}",
                summary.info.context
            ),
        ));
    }
    let objective = layout.objective_name();
    if stats.objective != objective {
        return Err(Error::file(
            stats_path,
            "objective",
            format!("is {:?}, config.toml says {objective:?}", stats.objective),
        ));
    }
    // Empty: written before the dense objective existed.
    let o = summary.info.objective.as_str();
    if !o.is_empty() && o != objective {
        return Err(Error::file(
            summary_path,
            "info.objective",
            format!("is {o:?}, config.toml says {objective:?}"),
        ));
    }
    Ok(())
}
