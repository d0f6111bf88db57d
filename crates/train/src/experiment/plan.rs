//! From an [`Experiment`] to what runs: each arm's config, the distinct datasets, the cells
//! (arm × training seed) with their `train.steps`, and the source learners' curve.

use std::path::{Path, PathBuf};

use ccad_core::Result;
use ccad_core::cli::check_split;
use ccad_core::config::{Config, TaskSet};
use ccad_core::env::make_env;
use ccad_core::error::ConfigError;
use ccad_core::hash::{FNV_OFFSET, fnv1a};
use ccad_core::history::HistoryReader;
use serde::Serialize;

use super::file::{Budget, Experiment, steps_for_labels};

/// One arm's config: the file's config with the experiment's and the arm's overrides, the
/// evaluation seeds, and a dataset named after what it collects.
#[derive(Debug, Clone, Serialize)]
pub struct ArmPlan {
    pub name: String,
    #[serde(skip)]
    pub config: Config,
    /// `datasets/<dataset>.hdf5`
    pub dataset: String,
}

/// One training run and its evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub arm: String,
    pub seed: u64,
    /// `train.steps` from the budget.
    pub steps: usize,
    /// Supervised labels per sequence of the arm's dataset and layout.
    pub labels_per_sample: f64,
    #[serde(skip)]
    pub config: Config,
}

impl Cell {
    /// `runs/experiment-NAME/cells/ARM/seed-S`: the run folder, which also holds the cell's
    /// config (`cell.toml`), logs and `cell.json`.
    pub fn dir(&self) -> PathBuf {
        self.config.run_dir()
    }
}

/// Each arm's config, every one loaded and checked (task split included) before any work.
pub fn arms(exp: &Experiment) -> Result<Vec<ArmPlan>> {
    exp.arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let mut overrides = exp.set.clone();
            overrides.extend(arm.set.iter().cloned());
            overrides.push(format!("eval.seeds={}", exp.eval_seeds));
            let mut cfg = Config::load(&arm.config, &overrides).map_err(|e| {
                let file = exp.file.display().to_string();
                ConfigError::new(&file, &format!("arms[{i}]"), e.to_string())
            })?;
            check_split(&cfg, &arm.config.display().to_string())?;
            cfg.collect.dataset = dataset_name(&cfg);
            Ok(ArmPlan {
                name: arm.name.clone(),
                dataset: cfg.collect.dataset.clone(),
                config: cfg,
            })
        })
        .collect()
}

/// `exp-<16 hex digits>`: a stable hash of what a dataset's content depends on (`[env]`,
/// `[ppo]`, `[collect]` but its name), so arms that collect the same histories share one
/// file and an edited collection never reuses an old one.
pub fn dataset_name(cfg: &Config) -> String {
    let mut c = cfg.clone();
    c.collect.dataset.clear();
    let text = format!(
        "{}\n{}\n{}",
        toml::to_string(&c.env).expect("env serialises"),
        toml::to_string(&c.ppo).expect("ppo serialises"),
        toml::to_string(&c.collect).expect("collect serialises"),
    );
    format!("exp-{:016x}", fnv1a(text.as_bytes(), FNV_OFFSET))
}

/// The cells, seed-major (every arm's seed 0, then seed 1, …) so a partial experiment is
/// balanced across arms. `labels_per_sample(arm)` reads the arm's dataset.
pub fn cells(
    exp: &Experiment,
    arms: &[ArmPlan],
    mut labels_per_sample: impl FnMut(&ArmPlan) -> Result<f64>,
) -> Result<Vec<Cell>> {
    let mut per_arm = Vec::with_capacity(arms.len());
    for arm in arms {
        let lps = labels_per_sample(arm)?;
        let steps = match exp.budget {
            Budget::Labels(n) => steps_for_labels(n, arm.config.train.batch_size, lps),
            Budget::Steps(n) => n,
        };
        per_arm.push((lps, steps));
    }
    let mut cells = Vec::new();
    for &seed in &exp.train_seeds {
        for (arm, &(lps, steps)) in arms.iter().zip(&per_arm) {
            let mut config = arm.config.clone();
            config.train.seed = seed;
            config.train.steps = steps;
            config.train.warmup_steps = config.train.warmup_steps.min(steps);
            config.train.run = format!("experiment-{}/cells/{}/seed-{seed}", exp.name, arm.name);
            config.validate().map_err(|(field, msg)| {
                ConfigError::new(&exp.file.display().to_string(), field, msg)
            })?;
            cells.push(Cell {
                arm: arm.name.clone(),
                seed,
                steps,
                labels_per_sample: lps,
                config,
            });
        }
    }
    Ok(cells)
}

/// Labels per sequence of an arm's layout over its dataset's train tasks.
pub fn dataset_labels_per_sample(arm: &ArmPlan) -> Result<f64> {
    let path = arm.config.dataset_path();
    let ds = dataset::Dataset::load(&path, &arm.config, TaskSet::Train)?;
    Ok(ds.labels_per_sample())
}

/// The source PPO learners' mean return per episode over the dataset's held-out tasks
/// (every stream of every held-out task; an episode ends at a `done`). Episodes are counted
/// per stream, so x = episodes means the same as in-context episodes.
pub fn source_curve(path: &Path, cfg: &Config) -> Result<Vec<f64>> {
    let reader = HistoryReader::open(path)?;
    let param_name = make_env(&cfg.env).task_param_name();
    let (mut sums, mut counts) = (Vec::<f64>::new(), Vec::<usize>::new());
    for &task in &reader.meta.test_tasks {
        let h = reader.read_task(task, param_name)?;
        for stream in 0..h.n_stream {
            let (mut ret, mut episode) = (0.0f64, 0);
            for t in 0..h.steps {
                let i = t * h.n_stream + stream;
                ret += h.rewards[i] as f64;
                if h.dones[i] != 0 {
                    if sums.len() <= episode {
                        sums.push(0.0);
                        counts.push(0);
                    }
                    sums[episode] += ret;
                    counts[episode] += 1;
                    (ret, episode) = (0.0, episode + 1);
                }
            }
        }
    }
    Ok(sums
        .iter()
        .zip(&counts)
        .map(|(s, &n)| s / n as f64)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_named_by_what_they_collect() {
        let base = Config::from_toml_str("", "x.toml", &[]).unwrap();
        let other_model = Config::from_toml_str(
            "",
            "x.toml",
            &["model.d_model=32".into(), "collect.dataset=\"y\"".into()],
        )
        .unwrap();
        assert_eq!(dataset_name(&base), dataset_name(&other_model));
        let other_ppo = Config::from_toml_str("", "x.toml", &["ppo.seed=1".into()]).unwrap();
        assert_ne!(dataset_name(&base), dataset_name(&other_ppo));
        assert!(dataset_name(&base).starts_with("exp-") && dataset_name(&base).len() == 20);
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every experiment file under configs/experiments parses and its arms' configs load,
    /// with the task split checked (the reference's goals exist).
    #[test]
    fn shipped_experiments_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = root.join("configs/experiments");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_str().unwrap();
            let mut exp = Experiment::parse(&text, &path.display().to_string(), name)
                .unwrap_or_else(|e| panic!("{e}"));
            for arm in &mut exp.arms {
                arm.config = root.join(&arm.config);
            }
            let arms = arms(&exp).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(arms.len(), exp.arms.len());
            n += 1;
        }
        assert!(n >= 2, "expected context-modes and reference-protocol");
    }
}
