//! Running an experiment: collect each distinct dataset once, then train and evaluate every
//! cell (arm × training seed) in child processes, skipping finished cells and resuming killed
//! ones; a failed cell is reported and the others go on. Then the outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ccad_core::atomic::write_atomic;
use ccad_core::{Error, Result};
use evaluate::Summary;
use model::run_folder::{RunDir, TrainStats};
use serde::{Deserialize, Serialize};

use super::file::Experiment;
use super::metrics::{CellCost, CellOutcome};
use super::plan::{self, ArmPlan, Cell};
use super::stage::Stage;

/// Written in a cell's folder once its training and evaluation both succeeded.
pub const CELL_DONE_FILE: &str = "cell.json";
/// The config a cell's stages read, in its folder.
pub const CELL_CONFIG_FILE: &str = "cell.toml";

/// A finished cell's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellDone {
    /// The cell's config (TOML): a cell is done only for the config it ran.
    pub config: String,
    /// Wall time of the training and evaluation commands that finished the cell (a resumed
    /// training counts only its last session).
    pub train_wall_s: f64,
    pub eval_wall_s: f64,
}

/// One command the runner ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub argv: Vec<String>,
    /// Exit status (`None`: killed by a signal or not started).
    pub status: Option<i32>,
    pub wall_s: f64,
    /// Where its output went.
    pub log: String,
    /// The commit of the binary that ran it (`crate::BUILD_COMMIT`; empty in manifests
    /// written before it was recorded).
    #[serde(default)]
    pub commit: String,
}

/// `manifest.json`: every command of every session of the experiment, in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub commands: Vec<CommandRecord>,
}

/// What a run of the experiment ended with.
#[derive(Debug)]
pub struct RunOutcome {
    /// The distinct commits of the binaries whose commands produced the finished cells, in
    /// order of first use ("unknown" for commands recorded before commits were).
    pub commits: Vec<String>,
    pub cells: Vec<CellOutcome>,
    /// `(arm, seed, message)` of each failed cell.
    pub failed: Vec<(String, u64, String)>,
    pub arms: Vec<ArmPlan>,
    pub plan: Vec<Cell>,
}

/// The runner's state on disk and the binary its children run.
pub struct Runner {
    pub exe: PathBuf,
    pub root: PathBuf,
    /// Evaluate finished cells again from their final checkpoints (their training is kept),
    /// e.g. after `evaluate` gained a metric; the commands join the manifest.
    pub reevaluate: bool,
    manifest: Manifest,
}

impl Runner {
    /// `exe`: the `experiment` binary (its `--stage` runs a stage). Creates the experiment
    /// folder and checks it is writable before any work.
    pub fn new(exp: &Experiment, exe: PathBuf) -> Result<Self> {
        let root = exp.root();
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let path = root.join("manifest.json");
        let manifest = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::file(&path, "manifest", e.to_string()))?,
            Err(_) => Manifest::default(),
        };
        let runner = Self {
            exe,
            root,
            reevaluate: false,
            manifest,
        };
        runner.save_manifest()?;
        Ok(runner)
    }

    fn save_manifest(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.manifest).expect("manifest serialises");
        write_atomic(&self.root.join("manifest.json"), text.as_bytes())
    }

    /// Run `stage` on the config at `config` in a child process, output appended to `log`;
    /// recorded in the manifest. Err (naming the log) if it fails.
    pub fn stage(&mut self, stage: Stage, config: &Path, log: &Path) -> Result<f64> {
        let mut argv = vec![
            self.exe.display().to_string(),
            "--stage".into(),
            stage.as_str().into(),
            "--config".into(),
            config.display().to_string(),
        ];
        if stage == Stage::Collect {
            let name = config
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("dataset");
            let logs = self.root.join("collect").join(name);
            argv.extend(["--log-dir".into(), logs.display().to_string()]);
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(log, e))?;
        let start = Instant::now();
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status();
        let wall_s = start.elapsed().as_secs_f64();
        let code = status.as_ref().ok().and_then(|s| s.code());
        self.manifest.commands.push(CommandRecord {
            argv,
            status: code,
            wall_s,
            log: log.display().to_string(),
            commit: crate::BUILD_COMMIT.to_string(),
        });
        self.save_manifest()?;
        match status {
            Ok(s) if s.success() => Ok(wall_s),
            Ok(s) => Err(Error::file(
                log,
                stage.as_str(),
                format!("failed ({s}): {}", last_line(log)),
            )),
            Err(e) => Err(Error::io(&self.exe, e)),
        }
    }

    /// Commits of the binaries that ran the train and evaluate commands of the finished
    /// `cells` (see [`RunOutcome::commits`]).
    pub fn commits_of(&self, cells: &[Cell]) -> Vec<String> {
        let logs: Vec<String> = cells
            .iter()
            .filter(|c| done_record(c).is_some())
            .flat_map(|c| {
                let dir = c.dir();
                ["train.log", "evaluate.log"].map(|l| dir.join(l).display().to_string())
            })
            .collect();
        let mut out: Vec<String> = Vec::new();
        for c in self
            .manifest
            .commands
            .iter()
            .filter(|c| logs.contains(&c.log))
        {
            let commit = if c.commit.is_empty() {
                "unknown"
            } else {
                &c.commit
            };
            if !out.iter().any(|o| o == commit) {
                out.push(commit.to_string());
            }
        }
        out
    }

    /// Collect every distinct dataset the arms need that is not already there.
    pub fn collect(&mut self, arms: &[ArmPlan]) -> Result<()> {
        let mut seen: Vec<&str> = Vec::new();
        for arm in arms {
            if seen.contains(&arm.dataset.as_str()) {
                continue;
            }
            seen.push(&arm.dataset);
            let path = arm.config.dataset_path();
            if collect::same_collection(&path, &arm.config).unwrap_or(false) {
                eprintln!("experiment: dataset {} is there; kept", path.display());
                continue;
            }
            let dir = self.root.join("datasets");
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let config = dir.join(format!("{}.toml", arm.dataset));
            write_atomic(&config, arm.config.to_toml_string().as_bytes())?;
            eprintln!(
                "experiment: collecting {} for arm {} (log: {})",
                path.display(),
                arm.name,
                dir.join(format!("{}.log", arm.dataset)).display()
            );
            let log = dir.join(format!("{}.log", arm.dataset));
            let wall = self.stage(Stage::Collect, &config, &log)?;
            eprintln!("experiment: collected {} in {wall:.0} s", path.display());
        }
        Ok(())
    }

    /// Train and evaluate every cell not yet done, in order; returns the failures as
    /// `(arm, seed, message)`.
    pub fn run_cells(&mut self, cells: &[Cell]) -> Vec<(String, u64, String)> {
        let total = cells.len();
        let mut failed = Vec::new();
        let mut spent = Vec::new();
        for (k, cell) in cells.iter().enumerate() {
            let tag = format!("[{}/{total}] {} seed {}", k + 1, cell.arm, cell.seed);
            if let Some(done) = done_record(cell) {
                if !self.reevaluate {
                    eprintln!("experiment: {tag}: done earlier");
                } else {
                    match self.reevaluate_cell(cell, done) {
                        Ok(wall) => eprintln!("experiment: {tag}: evaluated again in {wall:.0} s"),
                        Err(e) => failed.push(failure(&tag, "evaluating again ", cell, &e)),
                    }
                }
                continue;
            }
            let start = Instant::now();
            match self.run_cell(cell) {
                Ok(()) => {
                    spent.push(start.elapsed().as_secs_f64());
                    let left = cells[k + 1..]
                        .iter()
                        .filter(|c| done_record(c).is_none())
                        .count();
                    let mean = spent.iter().sum::<f64>() / spent.len() as f64;
                    eprintln!(
                        "experiment: {tag}: done in {:.0} s; {left} cells left, ETA {:.0} min",
                        spent.last().unwrap(),
                        mean * left as f64 / 60.0
                    );
                }
                Err(e) => failed.push(failure(&tag, "", cell, &e)),
            }
        }
        failed
    }

    fn run_cell(&mut self, cell: &Cell) -> Result<()> {
        let dir = cell.dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let config_text = cell.config.to_toml_string();
        let config = dir.join(CELL_CONFIG_FILE);
        write_atomic(&config, config_text.as_bytes())?;
        let train_wall_s = self.stage(Stage::Train, &config, &dir.join("train.log"))?;
        let eval_wall_s = self.stage(Stage::Evaluate, &config, &dir.join("evaluate.log"))?;
        write_done(
            &dir,
            &CellDone {
                config: config_text,
                train_wall_s,
                eval_wall_s,
            },
        )
    }

    /// Evaluate a finished cell again; its record keeps the training's wall time and takes
    /// the new evaluation's. A failed evaluation is reported as the cell's failure and leaves
    /// the record as it was.
    fn reevaluate_cell(&mut self, cell: &Cell, done: CellDone) -> Result<f64> {
        let dir = cell.dir();
        let config = dir.join(CELL_CONFIG_FILE);
        write_atomic(&config, done.config.as_bytes())?;
        let eval_wall_s = self.stage(Stage::Evaluate, &config, &dir.join("evaluate.log"))?;
        write_done(
            &dir,
            &CellDone {
                eval_wall_s,
                ..done
            },
        )?;
        Ok(eval_wall_s)
    }
}

/// Print a cell's failure on one line and return it as `(arm, seed, message)`.
fn failure(tag: &str, doing: &str, cell: &Cell, e: &Error) -> (String, u64, String) {
    let msg = e.to_string().replace('\n', " ");
    eprintln!("experiment: {tag}: {doing}FAILED: {msg}");
    (cell.arm.clone(), cell.seed, msg)
}

/// Mark the cell in `dir` finished.
fn write_done(dir: &Path, record: &CellDone) -> Result<()> {
    let text = serde_json::to_string_pretty(record).expect("cell record serialises");
    write_atomic(&dir.join(CELL_DONE_FILE), text.as_bytes())
}

/// A cell's record if it finished with its current config.
pub fn done_record(cell: &Cell) -> Option<CellDone> {
    let text = std::fs::read_to_string(cell.dir().join(CELL_DONE_FILE)).ok()?;
    let done: CellDone = serde_json::from_str(&text).ok()?;
    (done.config == cell.config.to_toml_string()).then_some(done)
}

/// What a finished cell produced, read back from its run folder.
pub fn outcome(cell: &Cell, done: &CellDone) -> Result<CellOutcome> {
    let run = RunDir::new(&cell.dir());
    let read = |path: PathBuf| -> Result<String> {
        std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))
    };
    let stats_path = run.stats_path();
    let stats: TrainStats = serde_json::from_str(&read(stats_path.clone())?)
        .map_err(|e| Error::file(&stats_path, "train_stats", e.to_string()))?;
    let summary_path = run.eval_dir().join(model::run_folder::SUMMARY_FILE);
    let summary: Summary = serde_json::from_str(&read(summary_path.clone())?)
        .map_err(|e| Error::file(&summary_path, "summary", e.to_string()))?;
    let cost = CellCost {
        labels_trained: stats.labels_trained,
        labels_per_sec: stats.labels_per_sec,
        samples_per_sec: stats.samples_per_sec,
        peak_memory_mib: stats.peak_memory_mib,
        tokens_attended_max: summary.cost.tokens_attended_max as f64,
        tokens_attended_mean: summary.cost.tokens_attended_mean,
        flops_per_action: summary.cost.flops_per_action,
        train_wall_s: done.train_wall_s,
        eval_wall_s: done.eval_wall_s,
    };
    Ok(CellOutcome {
        arm: cell.arm.clone(),
        train_seed: cell.seed,
        summary,
        cost,
    })
}

/// The last non-empty line of a log (what a failed child said last).
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no output".into())
}

/// Plan, collect, run the cells and gather what finished.
pub fn run(exp: &Experiment, runner: &mut Runner) -> Result<RunOutcome> {
    let arms = plan::arms(exp)?;
    runner.collect(&arms)?;
    let cells = plan::cells(exp, &arms, plan::dataset_labels_per_sample)?;
    super::protocol::write(exp, &arms, &cells, &runner.root)?;
    let failed = runner.run_cells(&cells);
    let mut outcomes = Vec::new();
    for cell in &cells {
        if let Some(done) = done_record(cell) {
            outcomes.push(outcome(cell, &done)?);
        }
    }
    Ok(RunOutcome {
        commits: runner.commits_of(&cells),
        cells: outcomes,
        failed,
        arms,
        plan: cells,
    })
}
