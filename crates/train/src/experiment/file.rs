//! The experiment file (`configs/experiments/NAME.toml`): arms, baseline, seeds, budget.
//!
//! ```toml
//! baseline = "compressed"          # the arm every other is compared with
//! train_seeds = [0, 1, 2]          # one training run per arm per seed (train.seed)
//! eval_seeds = 4                   # evaluation seeds per held-out task (eval.seeds)
//! set = ["eval.episodes=100"]      # overrides for every arm (optional)
//!
//! [budget]
//! labels = 7_680_000               # supervised action labels per run (default), or: steps = 6000
//!
//! [[arms]]
//! name = "compressed"
//! config = "configs/quick.toml"
//! set = []                         # this arm's overrides (optional)
//! ```
//!
//! Every problem is one line naming the file and the field.

use std::path::{Path, PathBuf};

use ccad_core::error::ConfigError;
use serde::{Deserialize, Serialize};

/// quick.toml's budget: 6,000 steps × 16 sequences × 80 labels.
pub const DEFAULT_LABELS: u64 = 7_680_000;

/// How much training every arm gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// Supervised action labels: each arm's `train.steps` is set from its own labels per
    /// sequence, so every arm trains on the same number of labels (± half a batch).
    Labels(u64),
    /// The same `train.steps` for every arm.
    Steps(usize),
}

/// One arm: a config and its overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    pub name: String,
    pub config: PathBuf,
    #[serde(default)]
    pub set: Vec<String>,
}

/// A parsed and checked experiment file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    /// The file's stem: outputs go to `runs/experiment-NAME/`.
    pub name: String,
    pub file: PathBuf,
    pub baseline: String,
    pub train_seeds: Vec<u64>,
    pub eval_seeds: usize,
    pub set: Vec<String>,
    pub budget: Budget,
    pub arms: Vec<Arm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    baseline: String,
    train_seeds: Vec<u64>,
    #[serde(default = "default_eval_seeds")]
    eval_seeds: usize,
    #[serde(default)]
    set: Vec<String>,
    #[serde(default)]
    budget: RawBudget,
    arms: Vec<Arm>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    labels: Option<u64>,
    steps: Option<usize>,
}

fn default_eval_seeds() -> usize {
    4
}

impl Experiment {
    /// Read and check `path` (arm config paths are relative to the working directory, like
    /// every binary's `--config`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&file, "", format!("cannot read: {e}")))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        Self::parse(&text, &file, &name)
    }

    /// Parse experiment text; `file` names the source in errors, `name` the experiment.
    pub fn parse(text: &str, file: &str, name: &str) -> Result<Self, ConfigError> {
        let err = |field: &str, msg: String| ConfigError::new(file, field, msg);
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let msg = e.message().replace('\n', " ");
            let line = e
                .span()
                .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            err("", format!("{msg}{line}"))
        })?;
        if !is_plain(name) {
            return Err(err(
                "",
                format!("the file name {name:?} must be a plain name (letters, digits, '-', '_')"),
            ));
        }
        if raw.arms.is_empty() {
            return Err(err("arms", "no arm given".into()));
        }
        for (i, arm) in raw.arms.iter().enumerate() {
            if !is_plain(&arm.name) {
                return Err(err(
                    &format!("arms[{i}].name"),
                    format!(
                        "{:?} must be a plain name (letters, digits, '-', '_')",
                        arm.name
                    ),
                ));
            }
            if raw.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(err(
                    &format!("arms[{i}].name"),
                    format!("{:?} is used twice", arm.name),
                ));
            }
        }
        if !raw.arms.iter().any(|a| a.name == raw.baseline) {
            return Err(err(
                "baseline",
                format!("{:?} is not one of the arms", raw.baseline),
            ));
        }
        if raw.train_seeds.is_empty() {
            return Err(err("train_seeds", "no seed given".into()));
        }
        for (i, s) in raw.train_seeds.iter().enumerate() {
            if raw.train_seeds[..i].contains(s) {
                return Err(err("train_seeds", format!("seed {s} is listed twice")));
            }
        }
        if raw.eval_seeds == 0 {
            return Err(err("eval_seeds", "must be > 0".into()));
        }
        let budget = match (raw.budget.labels, raw.budget.steps) {
            (Some(_), Some(_)) => {
                return Err(err("budget", "give labels or steps, not both".into()));
            }
            (Some(0), _) => return Err(err("budget.labels", "must be > 0".into())),
            (_, Some(0)) => return Err(err("budget.steps", "must be > 0".into())),
            (Some(n), None) => Budget::Labels(n),
            (None, Some(n)) => Budget::Steps(n),
            (None, None) => Budget::Labels(DEFAULT_LABELS),
        };
        Ok(Self {
            name: name.to_string(),
            file: PathBuf::from(file),
            baseline: raw.baseline,
            train_seeds: raw.train_seeds,
            eval_seeds: raw.eval_seeds,
            set: raw.set,
            budget,
            arms: raw.arms,
        })
    }

    /// `runs/experiment-NAME`
    pub fn root(&self) -> PathBuf {
        PathBuf::from("runs").join(format!("experiment-{}", self.name))
    }
}

fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `train.steps` that trains `labels` labels at `batch` sequences of `labels_per_sample`
/// each: the nearest whole number of steps (at least 1), so the labels trained differ from
/// the budget by at most half a batch.
pub fn steps_for_labels(labels: u64, batch: usize, labels_per_sample: f64) -> usize {
    let per_step = batch as f64 * labels_per_sample;
    ((labels as f64 / per_step).round() as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
baseline = "compressed"
train_seeds = [0, 1, 2]
[budget]
labels = 7_680_000
[[arms]]
name = "compressed"
config = "configs/quick.toml"
[[arms]]
name = "window"
config = "configs/quick.toml"
set = ['dataset.context="window"']
"#;

    fn parse(text: &str) -> Result<Experiment, ConfigError> {
        Experiment::parse(text, "configs/experiments/x.toml", "x")
    }

    #[test]
    fn a_good_file_parses_with_defaults() {
        let e = parse(GOOD).unwrap();
        assert_eq!(e.budget, Budget::Labels(7_680_000));
        assert_eq!((e.eval_seeds, e.train_seeds.len()), (4, 3));
        assert_eq!(e.arms[1].set, vec![r#"dataset.context="window""#]);
        assert_eq!(e.root(), Path::new("runs/experiment-x"));
        let steps = parse(&GOOD.replace("labels = 7_680_000", "steps = 100")).unwrap();
        assert_eq!(steps.budget, Budget::Steps(100));
        let default = parse(&GOOD.replace("[budget]\nlabels = 7_680_000\n", "")).unwrap();
        assert_eq!(default.budget, Budget::Labels(DEFAULT_LABELS));
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_the_field() {
        let cases = [
            (
                GOOD.replace("baseline = \"compressed\"", "baseline = \"dense\""),
                "baseline: \"dense\" is not one of the arms",
            ),
            (
                GOOD.replace("[0, 1, 2]", "[0, 1, 0]"),
                "train_seeds: seed 0 is listed twice",
            ),
            (
                GOOD.replace("[0, 1, 2]", "[]"),
                "train_seeds: no seed given",
            ),
            (
                GOOD.replace("name = \"window\"", "name = \"compressed\""),
                "arms[1].name: \"compressed\" is used twice",
            ),
            (
                GOOD.replace("name = \"window\"", "name = \"a/b\""),
                "arms[1].name: \"a/b\" must be a plain name",
            ),
            (
                GOOD.replace("labels = 7_680_000", "labels = 5\nsteps = 3"),
                "budget: give labels or steps, not both",
            ),
            (
                GOOD.replace("labels = 7_680_000", "steps = 0"),
                "budget.steps: must be > 0",
            ),
            (
                GOOD.replace("train_seeds", "eval_seeds = 0\ntrain_seeds"),
                "eval_seeds: must be > 0",
            ),
            (
                GOOD.replace("baseline", "baselin"),
                "unknown field `baselin`",
            ),
        ];
        for (text, want) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.starts_with("configs/experiments/x.toml: "), "{e}");
            assert!(e.contains(want), "{e} should contain {want}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn steps_give_the_budget_within_half_a_batch() {
        // Compressed dense on quick.toml: 16 × 80 = 1,280 labels a step → 6,000 steps.
        assert_eq!(steps_for_labels(7_680_000, 16, 80.0), 6_000);
        // Window dense: histories of 1,040 steps in chunks of 240 → 5 chunks, 208 labels
        // each on average; 7,680,000 / (16 × 208) = 2,307.7 → 2,308 steps (the issue's).
        assert_eq!(steps_for_labels(7_680_000, 16, 1_040.0 / 5.0), 2_308);
        // Query objective: one label per sequence → 480,000 steps at batch 16.
        assert_eq!(steps_for_labels(7_680_000, 16, 1.0), 480_000);
        // Never 0.
        assert_eq!(steps_for_labels(1, 16, 80.0), 1);
    }
}
