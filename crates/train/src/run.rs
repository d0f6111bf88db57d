//! What training does to a run folder (its format: `model::run_folder`): config
//! compatibility between sessions, `--fresh`, clean-up after a killed session, and atomic
//! rotating checkpoints.
//!
//! A checkpoint is written into a temporary folder, every file fsynced, then renamed: a folder
//! named `step-*` is always complete. `latest` is rewritten (atomically) after the rename and
//! before old checkpoints are removed, so it always names a complete folder; readers may also
//! scan for the highest `step-*` (`RunDir::latest_checkpoint`), which is what resuming does.

use std::path::{Path, PathBuf};

use ccad_core::config::Config;
use ccad_core::{Error, Result};
use model::run_folder::{
    CheckpointState, LATEST_FILE, RUN_CONFIG_FILE, RunDir, STATE_FILE, STATS_FILE, checkpoint_name,
    is_partial_checkpoint, partial_checkpoint_name,
};

// The learner saves and finds its optimiser state under these names.
pub use model::run_folder::{NATIVE_OPTIMIZER_FILE, OPTIMIZER_FILE};

/// Config keys that may differ between sessions of one run: they change how a run is watched
/// or how long it goes, not what it learns. `train.steps` may grow or shrink: the cosine
/// schedule is then recomputed for the new length from the resumed step on. `train.engine`
/// may change here; whether a checkpoint can continue under another engine is the learner's
/// decision (its optimiser state is engine-specific).
pub const MAY_CHANGE: &[&str] = &[
    "train.run",
    "train.steps",
    "train.engine",
    "train.summary_interval",
    "train.eval_interval",
    "train.eval_batches",
    "train.ckpt_interval",
    "train.keep_checkpoints",
    "train.icl_interval",
    "train.icl_episodes",
    "dataset.prefetch",
];

/// Sections that never matter to training: `[ppo]` produced the dataset (training reads the
/// file, which the dataset crate checks against env and interval), `[eval]` comes after.
pub const IGNORED_SECTIONS: &[&str] = &["ppo", "eval"];

/// Training's side of a run folder.
pub trait RunDirTraining {
    /// `--fresh`: remove the whole run folder. It is renamed aside first, so an interruption
    /// never leaves a half-deleted run under the run's name.
    fn clear(&self) -> Result<()>;
    /// Remove checkpoint folders a killed process left half-written.
    fn remove_partial_checkpoints(&self) -> Result<()>;
    /// Remove what an earlier session wrote before its first checkpoint (TensorBoard files,
    /// stats): training restarts from step 0 and would otherwise draw a second curve.
    fn remove_stale_logs(&self) -> Result<()>;
    /// Refuse a run folder whose `config.toml` differs from `cfg` in a key that matters
    /// (anything outside [`MAY_CHANGE`] and [`IGNORED_SECTIONS`]). Returns notices for
    /// allowed changes (e.g. a new `train.steps`).
    fn check_config(&self, cfg: &Config) -> Result<Vec<String>>;
    /// Record `cfg` as the run's config.
    fn write_config(&self, cfg: &Config) -> Result<()>;
}

impl RunDirTraining for RunDir {
    fn clear(&self) -> Result<()> {
        if !self.root().exists() {
            return Ok(());
        }
        let name = self
            .root()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let trash = self
            .root()
            .with_file_name(format!(".{name}.trash-{}", std::process::id()));
        std::fs::rename(self.root(), &trash).map_err(|e| Error::io(self.root(), e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| Error::io(&trash, e))
    }

    fn remove_partial_checkpoints(&self) -> Result<()> {
        let dir = self.checkpoints();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_partial_checkpoint(&name) {
                std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(&e.path(), err))?;
            }
        }
        Ok(())
    }

    fn remove_stale_logs(&self) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(self.root()) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains("tfevents") || name == STATS_FILE {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(&e.path(), err))?;
            }
        }
        Ok(())
    }

    fn check_config(&self, cfg: &Config) -> Result<Vec<String>> {
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let file = path.display().to_string();
        let stored = Config::from_toml_str(&text, &file, &[])?;
        let (old, new) = (flatten(&stored), flatten(cfg));
        let mut notices = Vec::new();
        for (key, new_value) in &new {
            let old_value = old.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            if old_value == Some(new_value) {
                continue;
            }
            let shown = old_value.map_or("nothing".to_string(), |v| v.to_string());
            if IGNORED_SECTIONS
                .iter()
                .any(|s| key.starts_with(&format!("{s}.")))
            {
                continue;
            }
            if MAY_CHANGE.contains(&key.as_str()) {
                if key == "train.steps" {
                    notices.push(format!(
                        "train.steps changed from {shown} to {new_value}: the learning-rate schedule is recomputed for the new length"
                    ));
                }
                if key == "train.engine" && old_value.is_some() {
                    notices.push(format!("train.engine changed from {shown} to {new_value}"));
                }
                continue;
            }
            return Err(Error::file(
                &path,
                key.as_str(),
                format!(
                    "this run was trained with {shown}, the config now says {new_value}; pass --fresh to start over or --run NAME for a new run"
                ),
            ));
        }
        Ok(notices)
    }

    fn write_config(&self, cfg: &Config) -> Result<()> {
        ccad_core::atomic::write_atomic(&self.config_path(), cfg.to_toml_string().as_bytes())
    }
}

/// Write a complete checkpoint for `state.step` atomically: `fill` writes the model and
/// optimiser files into a temporary folder; then the state and config are added, everything
/// is fsynced, the folder renamed into place, `latest` updated, and all but the newest
/// `keep` checkpoints removed.
pub fn write_checkpoint(
    run: &RunDir,
    state: &CheckpointState,
    config_toml: &str,
    keep: usize,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dest = run.checkpoint_dir(state.step);
    let parent = run.checkpoints();
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let name = checkpoint_name(state.step);
    let tmp = parent.join(partial_checkpoint_name(state.step, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = (|| {
        fill(&tmp)?;
        std::fs::write(tmp.join(STATE_FILE), state.to_json()).map_err(|e| Error::io(&tmp, e))?;
        std::fs::write(tmp.join(RUN_CONFIG_FILE), config_toml).map_err(|e| Error::io(&tmp, e))?;
        sync_folder(&tmp)?;
        if dest.exists() {
            // Only when a run is re-checkpointed at the same step (e.g. Ctrl-C right after one).
            std::fs::remove_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
        }
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        sync_dir(&parent);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    ccad_core::atomic::write_atomic(&parent.join(LATEST_FILE), name.as_bytes())?;
    let all = run.list_checkpoints()?;
    let n_old = all.len().saturating_sub(keep.max(1));
    for (_, old) in &all[..n_old] {
        std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
    }
    Ok(dest)
}

fn sync_folder(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
    {
        let p = e.path();
        if p.is_file() {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|err| Error::io(&p, err))?;
        }
    }
    sync_dir(dir);
    Ok(())
}

/// Persist a folder's entries (renames); harmless where folders cannot be opened.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `section.key` → value of every leaf of a config, in a stable order.
fn flatten(cfg: &Config) -> Vec<(String, toml::Value)> {
    let value = toml::Value::try_from(cfg).expect("config serialises");
    let mut out = Vec::new();
    if let toml::Value::Table(sections) = value {
        for (section, v) in sections {
            if let toml::Value::Table(fields) = v {
                for (k, v) in fields {
                    out.push((format!("{section}.{k}"), v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(overrides: &[&str]) -> Config {
        let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::from_toml_str("", "test.toml", &ov).unwrap()
    }

    fn state(step: usize) -> CheckpointState {
        CheckpointState {
            step,
            sampler_position: step as u64,
            seed: 0,
            samples_seen: 0,
            labels_seen: 0,
            lr: 0.0,
            train_seconds: 0.0,
            backend: "flex".into(),
            engine: "native".into(),
        }
    }

    #[test]
    fn config_changes_that_matter_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert!(
            run.check_config(&cfg(&[])).unwrap().is_empty(),
            "no record yet"
        );
        run.write_config(&cfg(&[])).unwrap();
        assert!(run.check_config(&cfg(&[])).unwrap().is_empty());
        let ok = cfg(&[
            "train.eval_interval=7",
            "eval.episodes=3",
            "ppo.seed=9",
            "train.run=x",
        ]);
        assert!(run.check_config(&ok).unwrap().is_empty());
        let notes = run.check_config(&cfg(&["train.steps=99"])).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("train.steps"), "{notes:?}");
        let notes = run.check_config(&cfg(&["train.engine=burn"])).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("train.engine"), "{notes:?}");
        // A run folder from before `train.engine` existed: the key is new, not a conflict.
        let old = cfg(&[]).to_toml_string().replace("engine = \"auto\"\n", "");
        assert!(!old.contains("engine"));
        std::fs::write(run.config_path(), old).unwrap();
        assert!(run.check_config(&cfg(&["train.engine=native"])).is_ok());
        run.write_config(&cfg(&[])).unwrap();

        let e = run
            .check_config(&cfg(&["model.d_model=32"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.toml: model.d_model: this run was trained with 64"),
            "{e}"
        );
        assert!(e.contains("--fresh") && !e.contains('\n'), "{e}");
        let e = run
            .check_config(&cfg(&["dataset.context=window"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataset.context"), "{e}");
    }

    #[test]
    fn checkpoints_rotate_and_latest_names_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        for step in [10, 20, 30, 40] {
            write_checkpoint(&run, &state(step), "x = 1\n", 2, |d| {
                std::fs::write(d.join("model.safetensors"), b"w").map_err(|e| Error::io(d, e))
            })
            .unwrap();
        }
        let steps: Vec<usize> = run
            .list_checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(steps, vec![30, 40]);
        let latest = std::fs::read_to_string(run.checkpoints().join(LATEST_FILE)).unwrap();
        assert_eq!(latest, "step-00000040");
        let (step, newest) = run.latest_checkpoint().unwrap().unwrap();
        assert_eq!(step, 40);
        assert_eq!(CheckpointState::read(&newest).unwrap(), state(40));
        assert!(newest.join(RUN_CONFIG_FILE).exists() && newest.join("model.safetensors").exists());
    }

    #[test]
    fn a_failed_or_killed_checkpoint_leaves_no_step_folder() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        write_checkpoint(&run, &state(5), "", 3, |_| Ok(())).unwrap();
        let err = write_checkpoint(&run, &state(6), "", 3, |_| {
            Err(Error::file(Path::new("x"), "weights", "disk full"))
        });
        assert!(err.is_err());
        // A kill -9 mid-write leaves a temporary folder: ignored by the scan, removed on start.
        let partial = run.checkpoints().join(".step-00000007.tmp-1");
        std::fs::create_dir_all(&partial).unwrap();
        let steps: Vec<usize> = run
            .list_checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(steps, vec![5]);
        run.remove_partial_checkpoints().unwrap();
        assert!(!partial.exists());
    }

    #[test]
    fn clear_removes_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let run = RunDir::new(&root);
        run.write_config(&cfg(&[])).unwrap();
        run.clear().unwrap();
        assert!(!root.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        run.clear().unwrap();
    }
}
