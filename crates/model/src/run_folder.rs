//! The run folder's format, declared once: train writes it, evaluate and the report read it.
//!
//! ```text
//! runs/<run>/
//!   config.toml                      the config the run trains with (atomic)
//!   train_stats.json                 TrainStats: speed/memory record, rewritten at every summary (atomic)
//!   dataset.json                     DatasetRecord: the dataset's content hash and split, from the first step
//!   events.out.tfevents.*            TensorBoard (one file per training session)
//!   checkpoints/
//!     latest                         name of the newest complete checkpoint, e.g. "step-00002000"
//!     step-00001500/  step-00002000/ the newest `keep_checkpoints`, each complete:
//!       model.json  model.safetensors   the model (`AdModel::load(folder, device)`)
//!       optimizer.bpk                   AdamW state of the burn engine (burnpack), parameters numbered 1..n
//!       optimizer-native.bin            or that of the native engine (step count, flat moments)
//!       state.json                      CheckpointState: step, sampler position, seed, counters
//!       config.toml                     the config at that step
//!     .step-00002500.tmp-<pid>/      a checkpoint being written (removed on the next start)
//!   eval/
//!     eval_result.npy                float32 [n_envs, n_episodes] returns
//!     summary.json                   evaluate's Summary
//!     events.out.tfevents.*          the in-context learning curve
//! ```
//!
//! A folder named `step-*` is always complete: checkpoints are written under the temporary
//! name and renamed (train's `write_checkpoint`). Readers therefore find the newest checkpoint
//! by scanning for the highest `step-*` ([`RunDir::latest_checkpoint`]).

use std::path::{Path, PathBuf};

use ccad_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The config a run trains with, in the run folder and in every checkpoint.
pub const RUN_CONFIG_FILE: &str = "config.toml";
/// [`TrainStats`] as JSON.
pub const STATS_FILE: &str = "train_stats.json";
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Inside [`CHECKPOINTS_DIR`]: the name of the newest complete checkpoint.
pub const LATEST_FILE: &str = "latest";
/// [`CheckpointState`] as JSON inside a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// The model's `AdModelConfig` as JSON inside a model folder (a checkpoint is one).
pub const MODEL_CONFIG_FILE: &str = "model.json";
/// The model's weights (SafeTensors) inside a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The burn engine's optimiser state.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// The native engine's optimiser state (train's `optim::FlatAdamW`).
pub const NATIVE_OPTIMIZER_FILE: &str = "optimizer-native.bin";
/// Evaluation outputs, under the run folder unless evaluate is told otherwise.
pub const EVAL_DIR: &str = "eval";
/// Inside [`EVAL_DIR`]: float32 `[n_envs, n_episodes]` returns.
pub const RESULT_FILE: &str = "eval_result.npy";
/// Inside [`EVAL_DIR`]: evaluate's summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// [`DatasetRecord`] as JSON.
pub const DATASET_FILE: &str = "dataset.json";

const STEP_PREFIX: &str = "step-";
/// Marks a checkpoint folder still being written: `.step-N.tmp-<pid>`.
const PARTIAL_MARK: &str = ".tmp-";

/// `step-00001000`: the folder name of the checkpoint after `step` optimiser steps.
pub fn checkpoint_name(step: usize) -> String {
    format!("{STEP_PREFIX}{step:08}")
}

/// The step of a complete checkpoint's folder name; `None` for anything else (partial
/// checkpoints, `latest`, malformed names).
pub fn checkpoint_step(name: &str) -> Option<usize> {
    name.strip_prefix(STEP_PREFIX)?.parse().ok()
}

/// `.step-00001000.tmp-<pid>`: where process `pid` writes a checkpoint before renaming it.
pub fn partial_checkpoint_name(step: usize, pid: u32) -> String {
    format!(".{}{PARTIAL_MARK}{pid}", checkpoint_name(step))
}

/// Whether a name in [`CHECKPOINTS_DIR`] is a checkpoint a killed process left half-written.
pub fn is_partial_checkpoint(name: &str) -> bool {
    name.starts_with(&format!(".{STEP_PREFIX}")) && name.contains(PARTIAL_MARK)
}

/// `runs/<run>` and the paths in it.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(RUN_CONFIG_FILE)
    }

    pub fn stats_path(&self) -> PathBuf {
        self.root.join(STATS_FILE)
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.root.join(CHECKPOINTS_DIR)
    }

    /// `checkpoints/step-00001000`
    pub fn checkpoint_dir(&self, step: usize) -> PathBuf {
        self.checkpoints().join(checkpoint_name(step))
    }

    pub fn eval_dir(&self) -> PathBuf {
        self.root.join(EVAL_DIR)
    }

    pub fn dataset_record_path(&self) -> PathBuf {
        self.root.join(DATASET_FILE)
    }

    /// `runs/.<run>.lock`, beside the folder (a fresh start deletes the folder itself): held by
    /// the one process training this run.
    pub fn lock_path(&self) -> PathBuf {
        let name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let parent = self.root.parent().unwrap_or(Path::new("."));
        parent.join(format!(".{name}.lock"))
    }

    /// Complete checkpoints `(step, folder)`, oldest first; none if the folder is missing.
    /// Partial and malformed names are ignored.
    pub fn list_checkpoints(&self) -> Result<Vec<(usize, PathBuf)>> {
        let dir = self.checkpoints();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out: Vec<(usize, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let step = checkpoint_step(&e.file_name().to_string_lossy())?;
                Some((step, e.path()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The newest complete checkpoint `(step, folder)`, if any: what resuming continues from
    /// and what evaluation loads.
    pub fn latest_checkpoint(&self) -> Result<Option<(usize, PathBuf)>> {
        Ok(self.list_checkpoints()?.pop())
    }

    /// [`latest_checkpoint`](Self::latest_checkpoint) for a reader that needs one: a run
    /// without any (or without a readable checkpoints folder) is a one-line error.
    pub fn require_latest_checkpoint(&self) -> Result<(usize, PathBuf)> {
        let dir = self.checkpoints();
        self.latest_checkpoint()
            .ok()
            .flatten()
            .ok_or_else(|| Error::file(&dir, "checkpoint", "no checkpoint found (run train first)"))
    }
}

/// What a checkpoint needs besides the model and optimiser to continue the same run
/// ([`STATE_FILE`]). Data order and dropout masks are functions of `(seed, step)` (the
/// sampler's batch `i` depends only on its seed and `i`; the device is reseeded every step),
/// so `step` and `seed` are the whole random state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimiser steps done.
    pub step: usize,
    /// Number of the next batch the sampler hands out.
    pub sampler_position: u64,
    pub seed: u64,
    /// Samples trained on so far.
    pub samples_seen: u64,
    /// Supervised action labels trained on so far (0 in checkpoints from before it was kept).
    #[serde(default)]
    pub labels_seen: u64,
    /// Learning rate of the last step taken.
    pub lr: f64,
    /// Seconds spent in training steps over all sessions.
    pub train_seconds: f64,
    pub backend: String,
    /// `"native"` or `"burn"`: the engine that wrote the checkpoint (empty in checkpoints
    /// from before engines).
    #[serde(default)]
    pub engine: String,
}

impl CheckpointState {
    /// Read a checkpoint folder's [`STATE_FILE`].
    pub fn read(checkpoint: &Path) -> Result<Self> {
        let path = checkpoint.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::file(&path, "state", e.to_string()))
    }

    /// The JSON written into a checkpoint folder.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("state serialises")
    }
}

/// [`STATS_FILE`]: what a report needs to compare runs on speed and memory. Train rewrites it
/// atomically at every summary; the report reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    /// `ccad_core::backend::backend_name()`.
    pub backend: String,
    /// `"native"` or `"burn"`: what computed the training steps (empty in older files).
    #[serde(default)]
    pub engine: String,
    /// `"compressed"` or `"window"`.
    pub context: String,
    /// `"query"` or `"dense"`.
    pub objective: String,
    /// Longest sequence the layout can produce (`2I + 3` or `n_transit`).
    pub max_context_tokens: usize,
    pub batch_size: usize,
    pub steps_done: usize,
    pub steps_total: usize,
    /// Mean over this session's training steps (batch wait included; evaluation and
    /// checkpoints excluded).
    pub samples_per_sec: f64,
    /// Supervised action labels per second, this session (0 in older files).
    #[serde(default)]
    pub labels_per_sec: f64,
    /// Supervised action labels trained on, all sessions (0 in older files).
    #[serde(default)]
    pub labels_trained: u64,
    pub seconds_per_step: f64,
    /// Mean real tokens per sample and mean padded length per batch, this session. The
    /// report has never required them, so files without them still load (as 0).
    #[serde(default)]
    pub mean_tokens: f64,
    #[serde(default)]
    pub mean_padded_len: f64,
    /// The process's peak resident memory so far (`VmHWM`), MiB; 0 where unknown.
    pub peak_memory_mib: f64,
    pub n_params: usize,
}

/// The dataset a run trains on ([`DATASET_FILE`]), recorded when its training starts: a run
/// must never silently read other data. Train refuses to resume, and evaluate to run, on a
/// file whose content hash differs, unless told to accept the change (then recorded here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub path: String,
    /// `ccad_core::hash::file_hash` of the file's bytes.
    pub hash: String,
    pub train_tasks: Vec<usize>,
    pub test_tasks: Vec<usize>,
    /// Hashes of datasets accepted later with `--allow-dataset-change`, oldest first.
    #[serde(default)]
    pub accepted_changes: Vec<String>,
}

impl DatasetRecord {
    /// The record of the history file at `path` as it is now.
    pub fn of_file(path: &Path) -> Result<Self> {
        let meta = ccad_core::history::HistoryReader::open(path)?.meta;
        Ok(Self {
            path: path.display().to_string(),
            hash: ccad_core::hash::file_hash(path)?,
            train_tasks: meta.train_tasks,
            test_tasks: meta.test_tasks,
            accepted_changes: Vec::new(),
        })
    }

    /// A run's record; `None` for runs from before records were kept.
    pub fn read(run: &RunDir) -> Result<Option<Self>> {
        let path = run.dataset_record_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::file(&path, "dataset", e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    pub fn write(&self, run: &RunDir) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("record serialises");
        ccad_core::atomic::write_atomic(&run.dataset_record_path(), json.as_bytes())
    }

    /// Whether `now` (the dataset file as it is) is the data this run recorded. A different
    /// hash is an error naming both, unless `allow`: then the new hash is accepted and
    /// recorded (returns true when the record changed and must be written).
    pub fn check(&mut self, now: &DatasetRecord, run: &RunDir, allow: bool) -> Result<bool> {
        if now.hash == self.hash {
            return Ok(false);
        }
        if !allow {
            let now_what = if now.path == self.path {
                format!("that file now has hash {} (re-collected?)", now.hash)
            } else {
                format!(
                    "this run's config names {}, whose hash is {}",
                    now.path, now.hash
                )
            };
            return Err(Error::file(
                &run.dataset_record_path(),
                "hash",
                format!(
                    "the run trained on {} with content hash {}; {now_what}; \
                     pass --allow-dataset-change to go on with it anyway",
                    self.path, self.hash
                ),
            ));
        }
        self.accepted_changes.push(now.hash.clone());
        self.hash = now.hash.clone();
        self.train_tasks = now.train_tasks.clone();
        self.test_tasks = now.test_tasks.clone();
        Ok(true)
    }
}

impl TrainStats {
    /// Write as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("stats serialise");
        ccad_core::atomic::write_atomic(path, json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdir(p: &Path) {
        std::fs::create_dir_all(p).unwrap();
    }

    fn steps(run: &RunDir) -> Vec<usize> {
        run.list_checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect()
    }

    #[test]
    fn names_of_a_run_folder() {
        let run = RunDir::new(Path::new("runs/quick"));
        assert_eq!(run.config_path(), Path::new("runs/quick/config.toml"));
        assert_eq!(run.stats_path(), Path::new("runs/quick/train_stats.json"));
        assert_eq!(
            run.checkpoint_dir(1500),
            Path::new("runs/quick/checkpoints/step-00001500")
        );
        assert_eq!(run.eval_dir(), Path::new("runs/quick/eval"));
        assert_eq!(checkpoint_name(2000), "step-00002000");
        assert_eq!(partial_checkpoint_name(7, 42), ".step-00000007.tmp-42");
        assert!(is_partial_checkpoint(&partial_checkpoint_name(7, 42)));
        assert!(!is_partial_checkpoint("step-00000007"));
        assert!(!is_partial_checkpoint(".step-00000007"));
        assert_eq!(checkpoint_step("step-00000007"), Some(7));
        // Steps past the zero padding still parse.
        assert_eq!(checkpoint_step("step-123456789"), Some(123456789));
        assert_eq!(checkpoint_step(".step-00000007.tmp-1"), None);
        assert_eq!(checkpoint_step("step-7x"), None);
        assert_eq!(checkpoint_step("latest"), None);
    }

    #[test]
    fn listing_takes_complete_step_folders_and_the_highest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.latest_checkpoint().unwrap(), None, "no folder yet");
        let e = run.require_latest_checkpoint().unwrap_err().to_string();
        assert!(
            e.ends_with("checkpoints: checkpoint: no checkpoint found (run train first)"),
            "{e}"
        );
        assert!(!e.contains('\n'));

        mkdir(&run.checkpoint_dir(20));
        mkdir(&run.checkpoint_dir(3));
        // Step 100 without zero padding sorts by number, not by name.
        mkdir(&run.checkpoints().join("step-100"));
        // Ignored: a partial write, malformed names, a file, the `latest` pointer.
        mkdir(&run.checkpoints().join(partial_checkpoint_name(500, 1)));
        mkdir(&run.checkpoints().join("step-abc"));
        mkdir(&run.checkpoints().join("old-00000900"));
        std::fs::write(run.checkpoints().join("step-00000700"), b"not a folder").unwrap();
        std::fs::write(run.checkpoints().join(LATEST_FILE), b"step-00000020").unwrap();

        assert_eq!(steps(&run), vec![3, 20, 100]);
        let latest = run.latest_checkpoint().unwrap().unwrap();
        assert_eq!(latest, (100, run.checkpoints().join("step-100")));
        assert_eq!(run.require_latest_checkpoint().unwrap(), latest);
    }

    #[test]
    fn an_empty_checkpoints_folder_has_no_latest() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        mkdir(&run.checkpoints().join(partial_checkpoint_name(1, 1)));
        assert!(steps(&run).is_empty());
        assert!(run.require_latest_checkpoint().is_err());
    }

    #[test]
    fn checkpoint_state_round_trip_and_older_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = CheckpointState {
            step: 40,
            sampler_position: 40,
            seed: 3,
            samples_seen: 2560,
            labels_seen: 204_800,
            lr: 1.5e-4,
            train_seconds: 12.25,
            backend: "flex".into(),
            engine: "native".into(),
        };
        std::fs::write(dir.path().join(STATE_FILE), state.to_json()).unwrap();
        assert_eq!(CheckpointState::read(dir.path()).unwrap(), state);
        // Written before engines existed: no `engine`.
        let old = r#"{"step": 5, "sampler_position": 5, "seed": 0, "samples_seen": 320,
            "lr": 0.0003, "train_seconds": 1.0, "backend": "flex"}"#;
        std::fs::write(dir.path().join(STATE_FILE), old).unwrap();
        let read = CheckpointState::read(dir.path()).unwrap();
        assert_eq!((read.step, read.engine.as_str()), (5, ""));
        std::fs::write(dir.path().join(STATE_FILE), "{}").unwrap();
        let e = CheckpointState::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("state.json: state: missing field"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn a_changed_dataset_is_refused_naming_both_hashes_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(DatasetRecord::read(&run).unwrap(), None);
        let record = |hash: &str, test: Vec<usize>| DatasetRecord {
            path: "datasets/quick.hdf5".into(),
            hash: hash.into(),
            train_tasks: vec![0, 1, 2],
            test_tasks: test,
            accepted_changes: vec![],
        };
        let mut recorded = record("00000000000000aa", vec![3]);
        recorded.write(&run).unwrap();
        assert_eq!(DatasetRecord::read(&run).unwrap(), Some(recorded.clone()));
        // The same file: nothing to record.
        assert!(
            !recorded
                .check(&record("00000000000000aa", vec![3]), &run, false)
                .unwrap()
        );
        // Re-collected with another split.
        let now = record("00000000000000bb", vec![2]);
        let e = recorded.check(&now, &run, false).unwrap_err().to_string();
        assert!(e.contains("dataset.json: hash: the run trained on datasets/quick.hdf5 with content hash 00000000000000aa; that file now has hash 00000000000000bb"), "{e}");
        assert!(!e.contains('\n'));
        // Another file named at evaluation: the message names it, not the recorded one.
        let other = DatasetRecord {
            path: "datasets/other.hdf5".into(),
            ..record("00000000000000cc", vec![3])
        };
        let e = recorded.check(&other, &run, false).unwrap_err().to_string();
        assert!(e.contains("content hash 00000000000000aa; this run's config names datasets/other.hdf5, whose hash is 00000000000000cc"), "{e}");
        assert_eq!(recorded.hash, "00000000000000aa");
        // Allowed: the new data is recorded, and that it was accepted.
        assert!(recorded.check(&now, &run, true).unwrap());
        assert_eq!(
            (
                recorded.hash.as_str(),
                recorded.test_tasks.clone(),
                recorded.accepted_changes.clone()
            ),
            (
                "00000000000000bb",
                vec![2],
                vec!["00000000000000bb".to_string()]
            )
        );
    }

    /// `train_stats.json` exactly as train writes it.
    const STATS_AS_WRITTEN: &str = r#"{
  "backend": "flex",
  "engine": "native",
  "context": "compressed",
  "objective": "query",
  "max_context_tokens": 163,
  "batch_size": 64,
  "steps_done": 6000,
  "steps_total": 6000,
  "samples_per_sec": 512.5,
  "labels_per_sec": 512.5,
  "labels_trained": 384000,
  "seconds_per_step": 0.125,
  "mean_tokens": 120.5,
  "mean_padded_len": 150.25,
  "peak_memory_mib": 812.0,
  "n_params": 217416
}"#;

    #[test]
    fn train_stats_round_trip_and_files_in_older_formats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATS_FILE);
        let stats: TrainStats = serde_json::from_str(STATS_AS_WRITTEN).unwrap();
        assert_eq!(
            (
                stats.max_context_tokens,
                stats.n_params,
                stats.mean_padded_len
            ),
            (163, 217416, 150.25)
        );
        stats.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), STATS_AS_WRITTEN);
        let back: TrainStats =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, stats);

        // Before engines and label counts, and as the report's own fixtures write it: no
        // `engine`, no token means, no labels, an unknown field.
        let mut v: serde_json::Value = serde_json::from_str(STATS_AS_WRITTEN).unwrap();
        let fields = v.as_object_mut().unwrap();
        for key in [
            "engine",
            "mean_tokens",
            "mean_padded_len",
            "labels_per_sec",
            "labels_trained",
        ] {
            fields.remove(key);
        }
        fields.insert("future_field".into(), 1.into());
        let old: TrainStats = serde_json::from_value(v).unwrap();
        assert_eq!((old.engine.as_str(), old.mean_tokens), ("", 0.0));
        assert_eq!((old.labels_per_sec, old.labels_trained), (0.0, 0));
        assert_eq!(old.peak_memory_mib, 812.0);
    }
}
