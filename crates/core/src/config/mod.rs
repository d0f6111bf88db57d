//! Experiment configuration: one TOML file with sections `[env] [ppo] [collect] [dataset] [model]
//! [train] [eval]`. Every field has a default here (the paper-scale Dark Room values), unknown
//! keys are refused, and every error names the file and the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Engine;
use crate::error::ConfigError;

#[cfg(test)]
mod tests;
mod validate;

/// The name a config file uses for a unit variant (`"compressed"`, `"dense"`), from serde so
/// that a new variant needs no second list of names.
pub fn variant_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("a unit variant serialises to a string, got {other:?}"),
    }
}

/// Config used when a binary gets no `--config`.
pub const DEFAULT_CONFIG: &str = "configs/quick.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub env: EnvConfig,
    pub ppo: PpoConfig,
    pub collect: CollectConfig,
    pub dataset: DatasetConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    pub memory: MemoryConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvName {
    /// One task per goal cell; start in the centre.
    Darkroom,
    /// Goal at the far corner, start at (0, 0); one task per permutation of the 5 actions.
    DarkroomPermuted,
    /// Dark Room whose goal pays only the first time it is reached in an episode (17 × 17 in
    /// the AD paper); one task per goal cell, start in the centre.
    DarkroomHard,
    /// An invisible key, then an invisible door (1 each, once an episode); one task per ordered
    /// pair of distinct cells, start in the centre.
    KeyToDoor,
}

impl EnvName {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvName::Darkroom => "darkroom",
            EnvName::DarkroomPermuted => "darkroom-permuted",
            EnvName::DarkroomHard => "darkroom-hard",
            EnvName::KeyToDoor => "key-to-door",
        }
    }

    /// Number of tasks the family offers in a `grid`-sided room: one per goal cell (g²), one
    /// per permutation of the 5 actions (5! = 120), or one per ordered (key, door) pair of
    /// distinct cells (g² · (g² − 1): 6,480 on 9 × 9). Here, not in `env`, so that validating a
    /// config needs nothing from the environments.
    pub fn task_count(self, grid: usize) -> usize {
        let cells = grid.saturating_mul(grid);
        match self {
            EnvName::Darkroom | EnvName::DarkroomHard => cells,
            EnvName::DarkroomPermuted => 120,
            EnvName::KeyToDoor => cells.saturating_mul(cells.saturating_sub(1)),
        }
    }

    /// Episode length the family's farthest task needs to earn its whole optimum, for the
    /// sparse families whose returns are normalised by a fixed optimum (1 or 2): `None` for the
    /// Dark Rooms that pay every step (their optimum shrinks with the distance instead).
    ///
    /// From the centre `c = ⌊g/2⌋`, the farthest cell is the corner (0, 0), `2c` steps away
    /// (`c ≥ g − 1 − c`). Dark Room Hard needs `2c`. Key-to-Door needs start → key → door: at
    /// most `2c` to the key and `2(g − 1)` from any key to any door, both reached with the key
    /// at (0, 0) and the door at (g − 1, g − 1): `2c + 2(g − 1)` (24 on 9 × 9). Both are ≥ 1, so
    /// the one step a target under the start needs is covered.
    pub fn horizon_needed(self, grid: usize) -> Option<usize> {
        let far = 2 * (grid / 2);
        match self {
            EnvName::Darkroom | EnvName::DarkroomPermuted => None,
            EnvName::DarkroomHard => Some(far),
            EnvName::KeyToDoor => Some(far + 2 * grid.saturating_sub(1)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    pub name: EnvName,
    /// Side of the square room.
    pub grid: usize,
    /// Steps per episode; the last step ends the episode as a terminal.
    pub horizon: usize,
    /// Number of tasks used: the first `n_tasks` in the environment's task order (0 = all it
    /// has: grid² goals, 120 permutations, or grid² · (grid² − 1) key/door pairs).
    pub n_tasks: usize,
    /// Seed of the train/test task shuffle.
    pub split_seed: u64,
    /// Fraction of tasks used for training (rounded to the nearest task); used when neither
    /// `test_tasks` nor the counts are given.
    pub train_ratio: f64,
    /// Explicit held-out tasks by their parameters (`[row, col]` goals, permutations, or
    /// `[key_row, key_col, door_row, door_col]`);
    /// empty = not used. Takes precedence over the counts and `train_ratio`.
    pub test_tasks: Vec<Vec<i32>>,
    /// Seeded sample of this many train tasks (with `n_test_tasks`); 0 = not used. Takes
    /// precedence over `train_ratio`.
    pub n_train_tasks: usize,
    /// Held-out tasks of the seeded sample (with `n_train_tasks`).
    pub n_test_tasks: usize,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            name: EnvName::Darkroom,
            grid: 9,
            horizon: 20,
            n_tasks: 0,
            split_seed: 0,
            train_ratio: 0.9,
            test_tasks: Vec::new(),
            n_train_tasks: 0,
            n_test_tasks: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Parallel copies of each task (streams) one learner acts in.
    pub n_streams: usize,
    /// Steps per stream between two updates (one rollout region).
    pub n_steps: usize,
    pub minibatch_size: usize,
    pub n_epochs: usize,
    pub lr: f64,
    pub adam_eps: f64,
    pub gamma: f64,
    pub gae_lambda: f64,
    pub clip_range: f64,
    pub ent_coef: f64,
    pub vf_coef: f64,
    pub max_grad_norm: f64,
    /// Width of both hidden layers of actor and critic.
    pub hidden: usize,
    /// Environment steps per task (all streams together); rounded up to whole rollouts.
    pub total_steps: usize,
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            n_streams: 100,
            n_steps: 80,
            minibatch_size: 40,
            n_epochs: 20,
            lr: 3e-4,
            adam_eps: 1e-5,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_range: 0.2,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            hidden: 64,
            total_steps: 100_000,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Dataset name: written to `datasets/<dataset>.hdf5`.
    pub dataset: String,
    /// Transitions per compress region; absent = `ppo.n_steps` (one region per PPO rollout).
    pub compress_interval: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContextMode {
    /// Previous region + current region with `<c>` / `</c>` marker tokens.
    Compressed,
    /// The last `n_transit - 1` transitions, no markers (standard AD).
    Window,
    /// Compressed, plus a memory of the dropped regions (`[memory]`): memory tokens, or the
    /// rewarded tokens kept.
    Memory,
}

/// What a memory-mode context keeps of dropped regions besides memory tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// Memory tokens only.
    None,
    /// No memory tokens: the dense tokens of dropped regions whose previous transition was
    /// rewarded, newest first, at most `keep_max` (the selective baseline).
    Rewarded,
}

/// `[memory]`: the memory of dropped regions (`dataset.context = "memory"`, dense objective).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Memory tokens `M` written at the close of every region.
    pub tokens: usize,
    /// `"merge"`: `M` slots, the running mean of every region's memory (bounded context);
    /// `"concat"`: every region's `M` tokens (the context grows by `M` a region).
    pub update: crate::context::MemoryUpdate,
    /// `"none"`, or `"rewarded"`: no memory tokens, keep rewarded tokens instead.
    pub keep: Keep,
    /// Most tokens kept by `keep = "rewarded"`.
    pub keep_max: usize,
    /// Regions supervised per training sequence: 0 = whole histories in one pass; `R > 0`:
    /// chunks of `R` regions whose entering memory (from the earlier regions) takes no gradient.
    pub train_regions: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            tokens: 4,
            update: crate::context::MemoryUpdate::Merge,
            keep: Keep::None,
            keep_max: 16,
            train_regions: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetConfig {
    pub context: ContextMode,
    /// Window mode: context of `n_transit - 1` transitions plus the query.
    pub n_transit: usize,
    /// Batches assembled ahead of the training step on a background thread.
    pub prefetch: usize,
    /// Group samples of similar length into a batch to cut padding.
    pub bucket_by_length: bool,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            context: ContextMode::Compressed,
            n_transit: 240,
            prefetch: 4,
            bucket_by_length: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// One label per sequence: the query's action (the seed's objective).
    Query,
    /// Every position whose next action is defined is supervised.
    Dense,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub dropout: f64,
    /// Weight of the token-type loss: loss = CE(action) + w · CE(token type).
    pub type_loss_weight: f64,
    pub objective: Objective,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            d_model: 64,
            n_layers: 4,
            n_heads: 4,
            d_ff: 256,
            dropout: 0.1,
            type_loss_weight: 0.1,
            objective: Objective::Query,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run name: outputs go to `runs/<run>/`.
    pub run: String,
    pub batch_size: usize,
    pub steps: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    pub summary_interval: usize,
    pub eval_interval: usize,
    /// Held-out batches averaged at each eval.
    pub eval_batches: usize,
    pub ckpt_interval: usize,
    /// Checkpoints kept on disk (oldest removed first).
    pub keep_checkpoints: usize,
    /// Steps between short in-context rollouts logged to TensorBoard (0 = never).
    pub icl_interval: usize,
    /// Episodes of each such rollout.
    pub icl_episodes: usize,
    pub seed: u64,
    /// What computes the training step (`auto`: [`Engine::resolve`] for [`Stage::Train`]).
    /// Both engines start from the same initial weights and write the same model folders; only
    /// the optimiser state file of a checkpoint differs.
    pub engine: Engine,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            run: String::new(),
            batch_size: 512,
            steps: 50_000,
            lr: 3e-4,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.01,
            warmup_steps: 1000,
            grad_clip: 1.0,
            summary_interval: 50,
            eval_interval: 500,
            eval_batches: 4,
            ckpt_interval: 1000,
            keep_checkpoints: 3,
            icl_interval: 0,
            icl_episodes: 10,
            seed: 0,
            engine: Engine::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskSet {
    Train,
    Test,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Boundary {
    /// A region closes after exactly `compress_interval` transitions.
    Fixed,
    /// The token-type head closes regions (capped at `compress_interval`).
    Predicted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    pub episodes: usize,
    /// Rollouts per task, each with its own seed.
    pub seeds: usize,
    pub tasks: TaskSet,
    /// Argmax actions instead of sampling.
    pub greedy: bool,
    pub temperature: f64,
    pub boundary: Boundary,
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            episodes: 500,
            seeds: 3,
            tasks: TaskSet::Test,
            greedy: false,
            temperature: 1.0,
            boundary: Boundary::Fixed,
            seed: 0,
        }
    }
}

impl Config {
    /// Load a config file, apply `section.key=value` overrides, validate.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&file, "", format!("cannot read: {e}")))?;
        Self::from_toml_str(&text, &file, overrides)
    }

    /// Parse TOML text; `file` names the source in errors.
    pub fn from_toml_str(
        text: &str,
        file: &str,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|s| format!("line {}", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            ConfigError::new(file, &line, format!("invalid TOML: {msg}"))
        })?;
        for ov in overrides {
            apply_override(&mut table, ov)
                .map_err(|(field, msg)| ConfigError::new("--set", &field, msg))?;
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." { String::new() } else { field };
                ConfigError::new(file, &field, clean_serde_message(&e.inner().to_string()))
            })?;
        config.resolve();
        config
            .validate()
            .map_err(|(field, msg)| ConfigError::new(file, field, msg))?;
        Ok(config)
    }

    /// Fill values that default to other fields.
    fn resolve(&mut self) {
        if self.collect.compress_interval.is_none() {
            self.collect.compress_interval = Some(self.ppo.n_steps);
        }
        if self.collect.dataset.is_empty() {
            self.collect.dataset = self.env.name.as_str().to_string();
        }
        if self.train.run.is_empty() {
            self.train.run = self.collect.dataset.clone();
        }
    }

    /// Transitions per compress region.
    pub fn compress_interval(&self) -> usize {
        self.collect.compress_interval.unwrap_or(self.ppo.n_steps)
    }

    /// `datasets/<name>.hdf5`
    pub fn dataset_path(&self) -> PathBuf {
        PathBuf::from("datasets").join(format!("{}.hdf5", self.collect.dataset))
    }

    /// `runs/<run>`
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from("runs").join(&self.train.run)
    }

    /// The config as TOML text (stored in datasets and run folders).
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

/// `section.key=value`; the value is read as a TOML value, or as a string when it is not one.
fn apply_override(table: &mut toml::Table, ov: &str) -> Result<(), (String, String)> {
    let (key, raw) = ov
        .split_once('=')
        .ok_or_else(|| (ov.to_string(), "expected section.key=value".to_string()))?;
    let key = key.trim();
    let (section, field) = key
        .split_once('.')
        .ok_or_else(|| (key.to_string(), "expected section.key=value".to_string()))?;
    let value = format!("v = {}", raw.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let sec = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match sec {
        toml::Value::Table(t) => {
            t.insert(field.to_string(), value);
            Ok(())
        }
        _ => Err((section.to_string(), "is not a section".to_string())),
    }
}

/// serde's messages can span lines; errors here are one line.
fn clean_serde_message(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}
