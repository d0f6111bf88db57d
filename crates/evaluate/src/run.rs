//! Evaluating a training run: find its config and newest checkpoint, check them against each
//! other and the environment, roll out, write `runs/<run>/eval/` (the folder's format:
//! `model::run_folder`; the TensorBoard curve there is `eval/return_mean` and
//! `eval/return_normalized` against the episode index).
//!
//! The config is the run's own copy; `--set` overrides apply on top of it, but only to what does
//! not change the model's world: `[env]`, the context (`dataset.context`, `dataset.n_transit`,
//! `collect.compress_interval`) and `[model]` must stay as trained.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use ccad_core::backend::Engine;
use ccad_core::config::{Boundary, Config, TaskSet};
use ccad_core::context::Layout;
use ccad_core::env::{Environment, checked_split, make_env};
use ccad_core::history::{HistoryReader, attrs};
use ccad_core::tb::RunLog;
use ccad_core::{Error, Result};
use model::run_folder::{DatasetRecord, RESULT_FILE, RunDir, SUMMARY_FILE};
use model::{AdModel, AdModelConfig};

use crate::npy::write_npy;
use crate::rollout::{Inference, RolloutResult, RolloutSpec, check_model, rollout};
use crate::summary::{EvalCost, EvalInfo, Summary};

/// What to evaluate and how; `None` keeps the run config's value.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    pub run_dir: PathBuf,
    /// Output folder; default `<run_dir>/eval`.
    pub out_dir: Option<PathBuf>,
    /// `section.key=value` overrides applied to the run's config.
    pub overrides: Vec<String>,
    pub tasks: Option<TaskSet>,
    pub greedy: Option<bool>,
    pub boundary: Option<Boundary>,
    pub episodes: Option<usize>,
    pub seeds: Option<usize>,
    /// What computes the logits (`--engine`; `auto`: [`Inference::for_engine`]).
    pub engine: Engine,
    /// Show a progress bar over episodes.
    pub progress: bool,
    /// Evaluate although the dataset file's content changed since the run trained on it
    /// (its `dataset.json`); refused otherwise.
    pub allow_dataset_change: bool,
}

#[derive(Debug)]
pub struct EvalOutcome {
    pub out_dir: PathBuf,
    pub result: RolloutResult,
    pub summary: Summary,
}

/// The run's config with `overrides`, refusing overrides that change what the model was
/// trained for.
pub fn load_run_config(run_dir: &Path, overrides: &[String]) -> Result<Config> {
    if !run_dir.is_dir() {
        return Err(Error::file(
            run_dir,
            "run",
            "run folder does not exist (run train first, or pass --run)",
        ));
    }
    let path = RunDir::new(run_dir).config_path();
    if !path.is_file() {
        return Err(Error::file(
            &path,
            "config",
            "missing: not a training run folder",
        ));
    }
    let stored = Config::load(&path, &[])?;
    let cfg = Config::load(&path, overrides)?;
    let fixed: [(&str, bool); 5] = [
        ("env", stored.env == cfg.env),
        ("model", stored.model == cfg.model),
        (
            "dataset.context",
            stored.dataset.context == cfg.dataset.context,
        ),
        (
            "dataset.n_transit",
            stored.dataset.n_transit == cfg.dataset.n_transit,
        ),
        (
            "collect.compress_interval",
            stored.compress_interval() == cfg.compress_interval(),
        ),
    ];
    if let Some((field, _)) = fixed.iter().find(|(_, same)| !same) {
        return Err(Error::file(
            &path,
            *field,
            "cannot be overridden at evaluation: the model was trained with the run's value",
        ));
    }
    Ok(cfg)
}

/// Check a loaded model's shape against the run's config and the environment.
pub fn check_checkpoint(
    model: &AdModelConfig,
    cfg: &Config,
    env: &dyn Environment,
    ckpt: &Path,
) -> Result<()> {
    let file = ckpt.join(model::run_folder::MODEL_CONFIG_FILE);
    // The model the run's config builds for the checkpoint's data; the data's side is checked
    // against the environment and context below.
    let want = AdModelConfig::for_data(&cfg.model, model.data_dims());
    let pairs = [
        ("d_model", model.d_model, want.d_model),
        ("n_layers", model.n_layers, want.n_layers),
        ("n_heads", model.n_heads, want.n_heads),
        ("d_ff", model.d_ff, want.d_ff),
    ];
    for (field, have, want) in pairs {
        if have != want {
            return Err(Error::file(
                &file,
                field,
                format!("is {have}, the run's config says {want} (checkpoint of another run?)"),
            ));
        }
    }
    check_model(model, env, &*Layout::from_config(cfg)).map_err(|(field, msg)| {
        Error::file(
            &file,
            field,
            format!("{msg} (model trained for another environment or context?)"),
        )
    })
}

/// Train and test tasks: the split recorded in the dataset file (checked against the config's
/// environment), which must be the file the run trained on (its `dataset.json`: same content
/// hash, unless `allow_change`). When the file is gone: the split the run recorded, or for runs
/// from before records, the config's split.
pub fn task_split(
    cfg: &Config,
    env: &dyn Environment,
    run: &RunDir,
    allow_change: bool,
) -> Result<(Vec<usize>, Vec<usize>, Option<String>)> {
    let path = cfg.dataset_path();
    if let Some(mut recorded) = DatasetRecord::read(run)? {
        if !path.exists() {
            let note = format!(
                "{} not found: using the split the run recorded in {}",
                path.display(),
                run.dataset_record_path().display()
            );
            return Ok((recorded.train_tasks, recorded.test_tasks, Some(note)));
        }
        recorded.check(&DatasetRecord::of_file(&path)?, run, allow_change)?;
    }
    if !path.exists() {
        let (train, test) = checked_split(&cfg.env, env, env.n_tasks())?;
        let note = format!(
            "{} not found: using the config's task split (env.split_seed = {})",
            path.display(),
            cfg.env.split_seed
        );
        return Ok((train, test, Some(note)));
    }
    let meta = HistoryReader::open(&path)?.meta;
    if meta.env_name != env.name() {
        return Err(Error::file(
            &path,
            attrs::ENV_NAME,
            format!(
                "is {:?}, the run's config says {:?}",
                meta.env_name,
                env.name()
            ),
        ));
    }
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    if parse(&meta.env_params) != parse(&env.params_json()) {
        return Err(Error::file(
            &path,
            attrs::ENV_PARAMS,
            format!(
                "is {}, the run's config says {}",
                meta.env_params,
                env.params_json()
            ),
        ));
    }
    if let Some(&t) = meta
        .train_tasks
        .iter()
        .chain(&meta.test_tasks)
        .find(|&&t| t >= env.n_tasks())
    {
        return Err(Error::file(
            &path,
            attrs::TRAIN_TASKS,
            format!("task {t} out of range"),
        ));
    }
    Ok((meta.train_tasks, meta.test_tasks, None))
}

/// The tasks a task set selects, ascending.
pub fn select_tasks(set: TaskSet, train: &[usize], test: &[usize]) -> Vec<usize> {
    let mut v = match set {
        TaskSet::Train => train.to_vec(),
        TaskSet::Test => test.to_vec(),
        TaskSet::All => [train, test].concat(),
    };
    v.sort_unstable();
    v
}

fn task_set_name(s: TaskSet) -> &'static str {
    match s {
        TaskSet::Train => "train",
        TaskSet::Test => "test",
        TaskSet::All => "all",
    }
}

/// Evaluate a run's newest checkpoint and write the outputs. Notes (e.g. a missing dataset)
/// go to stderr.
pub fn evaluate_run(opts: &EvalOptions, device: &Device) -> Result<EvalOutcome> {
    let run = RunDir::new(&opts.run_dir);
    let mut cfg = load_run_config(&opts.run_dir, &opts.overrides)?;
    let e = &mut cfg.eval;
    e.tasks = opts.tasks.unwrap_or(e.tasks);
    e.greedy = opts.greedy.unwrap_or(e.greedy);
    e.boundary = opts.boundary.unwrap_or(e.boundary);
    e.episodes = opts.episodes.unwrap_or(e.episodes);
    e.seeds = opts.seeds.unwrap_or(e.seeds);
    cfg.validate()
        .map_err(|(field, msg)| Error::file(&run.config_path(), field, msg))?;

    let (step, ckpt) = run.require_latest_checkpoint()?;
    check_out_dir(opts.out_dir.as_deref().unwrap_or(&run.eval_dir()))?;
    let env = make_env(&cfg.env);
    let model = AdModel::load(&ckpt, device)?.valid();
    check_checkpoint(model.config(), &cfg, env.as_ref(), &ckpt)?;
    let (train, test, note) = task_split(&cfg, env.as_ref(), &run, opts.allow_dataset_change)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let tasks = select_tasks(cfg.eval.tasks, &train, &test);
    if tasks.is_empty() {
        return Err(Error::file(
            &cfg.dataset_path(),
            "tasks",
            format!("the {} task set is empty", task_set_name(cfg.eval.tasks)),
        ));
    }

    let mut spec = RolloutSpec::from_config(&tasks, &cfg);
    spec.inference = Inference::for_engine(opts.engine);
    let engine = spec.inference.engine();
    let layout = spec.layout.clone();
    let bar = opts.progress.then(|| {
        let b = ccad_core::progress::bar(spec.episodes as u64, "evaluate", "episodes");
        b.set_message(format!("{} envs", spec.n_envs()));
        b
    });
    let result = rollout(&model, env.as_ref(), spec, device, |k| {
        if let Some(b) = &bar {
            b.set_position(k as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let info = EvalInfo {
        run: opts.run_dir.display().to_string(),
        checkpoint: ckpt.display().to_string(),
        checkpoint_step: Some(step as u64),
        env: env.name().to_string(),
        task_set: task_set_name(cfg.eval.tasks).to_string(),
        context: layout.context_name().to_string(),
        objective: layout.objective_name().to_string(),
        compress_interval: cfg.compress_interval(),
        boundary: match cfg.eval.boundary {
            Boundary::Fixed => "fixed",
            Boundary::Predicted => "predicted",
        }
        .to_string(),
        greedy: cfg.eval.greedy,
        temperature: cfg.eval.temperature,
        episodes: cfg.eval.episodes,
        seeds: cfg.eval.seeds,
        backend: ccad_core::backend::backend_name().to_string(),
        engine: engine.as_str().to_string(),
    };
    let mut summary = Summary::new(&result, env.task_param_name(), |t| env.task_params(t), info)
        .with_milestones(env.milestones(), &result.milestone_steps);
    summary.cost = EvalCost::new(&result.stats, model.config());
    let out_dir = opts.out_dir.clone().unwrap_or_else(|| run.eval_dir());
    write_outputs(&out_dir, &result, &summary)?;
    Ok(EvalOutcome {
        out_dir,
        result,
        summary,
    })
}

/// Refuse an output folder whose TensorBoard event files are not an earlier evaluation's (a
/// run folder: writing there would delete its training logs). An evaluation folder is one
/// with evaluate's `summary.json`; a missing or empty folder is fine.
pub fn check_out_dir(out_dir: &Path) -> Result<()> {
    if out_dir.join(SUMMARY_FILE).is_file() {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(out_dir) else {
        return Ok(());
    };
    let foreign = entries
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("tfevents"));
    if foreign {
        return Err(Error::file(
            out_dir,
            "--out",
            "holds TensorBoard logs that are not an evaluation's (a run folder?); choose an \
             empty folder or an earlier evaluation's",
        ));
    }
    Ok(())
}

/// `eval_result.npy`, `summary.json` (both atomic) and the TensorBoard curve in `out_dir`.
/// Event files of an earlier evaluation in that folder are removed so TensorBoard shows one
/// curve; a folder holding other event files is refused ([`check_out_dir`]).
pub fn write_outputs(out_dir: &Path, result: &RolloutResult, summary: &Summary) -> Result<()> {
    check_out_dir(out_dir)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    write_npy(
        &out_dir.join(RESULT_FILE),
        &result.returns_flat(),
        result.n_envs(),
        result.n_episodes(),
    )?;
    ccad_core::atomic::write_atomic(&out_dir.join(SUMMARY_FILE), summary.to_json().as_bytes())?;
    for entry in std::fs::read_dir(out_dir)
        .map_err(|e| Error::io(out_dir, e))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().contains("tfevents") {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(&entry.path(), e))?;
        }
    }
    let mut log = RunLog::create(out_dir)?;
    for (k, (&mean, &norm)) in summary
        .mean_return
        .iter()
        .zip(&summary.normalized_return)
        .enumerate()
    {
        log.scalar("eval/return_mean", mean, k);
        if norm.is_finite() {
            log.scalar("eval/return_normalized", norm, k);
        }
        for m in &summary.milestones {
            log.scalar(&format!("eval/reached_{}", m.name), m.reached[k], k);
        }
    }
    log.flush();
    Ok(())
}
