//! The collect stage (DESIGN §4): train one PPO learner per task ([`crate::ppo`], on the
//! engine a run picks), log and report, and write every learner's recorded history to one HDF5
//! file; or, with `--bench`, only measure the speed.

use std::path::{Path, PathBuf};

use ccad_core::backend::{self, Stage};
use ccad_core::config::Config;
use ccad_core::env::{Environment, checked_split, make_env};
use ccad_core::history::{HistoryMeta, HistoryWriter};
use ccad_core::tb::{RunLog, check_interrupt};
use ccad_core::{Error, Result};

use crate::burn_learners::BurnEngine;
use crate::net::Layout;
use crate::ppo::{self, Engine, Hyper, Learned, NativeEngine, RolloutReport, n_rollouts};
use crate::report::Report;

/// Train one learner per task in `tasks` on `engine` (resolved for [`Stage::Collect`]: the
/// native engine, plain Rust with rayon over learners, or burn with every learner stacked on a
/// task axis and one batched step per minibatch) and (optionally) record every
/// transition. `on_rollout` runs after each rollout's update (logging, progress, interrupt
/// checks).
pub fn train_learners(
    cfg: &Config,
    env: &dyn Environment,
    tasks: &[usize],
    engine: backend::Engine,
    record: bool,
    on_rollout: &mut dyn FnMut(&RolloutReport) -> Result<()>,
) -> Result<Learned> {
    let burn = engine.resolve(Stage::Collect) == backend::Engine::Burn;
    let make_engine = |layout: Layout, hyper: Hyper, init: Vec<Vec<f32>>| -> Box<dyn Engine> {
        if burn {
            Box::new(BurnEngine::new(layout, hyper, &init, &backend::device()))
        } else {
            Box::new(NativeEngine::new(layout, hyper, init))
        }
    };
    ppo::run(cfg, env, tasks, &make_engine, record, on_rollout)
}

/// Options of a collect run besides the config.
#[derive(Debug, Clone, Default)]
pub struct CollectOptions {
    /// Output file; `None` = `cfg.dataset_path()`.
    pub out: Option<PathBuf>,
    /// Replace an existing file.
    pub force: bool,
    /// `--engine` (`auto`: [`backend::Engine::resolve`]).
    pub engine: backend::Engine,
    /// TensorBoard folder; `None` = `runs/collect-<dataset>` (`<dataset>`: the output file's
    /// stem with `--out`, else `collect.dataset`).
    pub log_dir: Option<PathBuf>,
    /// No progress bar (tests).
    pub quiet: bool,
}

/// Refuse to overwrite an existing dataset unless forced.
/// For `--keep-existing`: `Ok(false)` if `path` does not exist, `Ok(true)` if it holds histories
/// collected with the same `[env]`, `[ppo]` and `[collect]` as `cfg` (configs that differ only in
/// how the data is used share one dataset), and an error naming the file otherwise.
pub fn same_collection(path: &Path, cfg: &Config) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let existing = ccad_core::history::HistoryReader::open(path)?;
    let stored = Config::from_toml_str(
        &existing.meta.config,
        &format!("{}: config attribute", path.display()),
        &[],
    )?;
    if (&stored.env, &stored.ppo, &stored.collect) == (&cfg.env, &cfg.ppo, &cfg.collect) {
        return Ok(true);
    }
    Err(Error::file(
        path,
        "config",
        "exists but was collected with another [env]/[ppo]/[collect] config; pass --force to overwrite it",
    ))
}

pub fn check_output(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(Error::file(
            path,
            "file",
            "already exists; pass --force to overwrite it",
        ));
    }
    Ok(())
}

/// `.NAME.lock` beside an output file.
fn lock_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    dest.with_file_name(format!(".{name}.lock"))
}

/// The whole collect stage: train every task's learner, log, write the dataset atomically.
pub fn collect(cfg: &Config, opts: &CollectOptions) -> Result<Report> {
    let dest = opts.out.clone().unwrap_or_else(|| cfg.dataset_path());
    // One writer per output: the existence check below and the final rename are then not racing
    // another collect.
    let _lock = ccad_core::lock::Lock::acquire(&lock_path(&dest), &dest)?;
    check_output(&dest, opts.force)?;
    let env = make_env(&cfg.env);
    let (train, test) = checked_split(&cfg.env, env.as_ref(), env.n_tasks())?;
    let mut tasks: Vec<usize> = train.iter().chain(&test).copied().collect();
    tasks.sort_unstable();

    // Logs follow the dataset's name: `--out x/foo.hdf5` logs to runs/collect-foo.
    let name = opts
        .out
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| cfg.collect.dataset.clone());
    let log_dir = opts
        .log_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("collect-{name}")));
    let mut log = RunLog::create(&log_dir)?;
    let per_rollout = cfg.ppo.n_steps * cfg.ppo.n_streams;
    let total = (n_rollouts(cfg) * per_rollout * tasks.len()) as u64;
    let bar = if opts.quiet {
        ccad_core::progress::Progress::hidden()
    } else {
        ccad_core::progress::bar(total, "collect", "env-steps")
    };
    let n_available = env.n_tasks();
    let mut on_rollout = |r: &RolloutReport| -> Result<()> {
        let mean = ppo::log_rollout(&mut log, &tasks, n_available, r);
        bar.inc((per_rollout * r.returns.len()) as u64);
        bar.set_message(format!(
            "rollout {}/{} return {mean:.2}",
            r.index + 1,
            r.n_rollouts
        ));
        check_interrupt()
    };
    let learned = train_learners(
        cfg,
        env.as_ref(),
        &tasks,
        opts.engine,
        true,
        &mut on_rollout,
    )?;
    bar.finish_and_clear();

    let meta = HistoryMeta::for_config(cfg, &*env, train, test);
    // Checked again: another run may have written it meanwhile.
    check_output(&dest, opts.force)?;
    let mut w = HistoryWriter::create(&dest, &meta)?;
    for h in &learned.histories {
        w.write_task(h)?;
    }
    w.finish()?;
    Ok(Report::new(
        env.as_ref(),
        &learned,
        tasks.len() * n_rollouts(cfg) * per_rollout,
    ))
}

/// Speed measurement: train the configured learners without recording or writing anything.
pub fn bench(cfg: &Config, engine: backend::Engine) -> Result<Report> {
    let env = make_env(&cfg.env);
    let (train, test) = checked_split(&cfg.env, env.as_ref(), env.n_tasks())?;
    let mut tasks: Vec<usize> = train.iter().chain(&test).copied().collect();
    tasks.sort_unstable();
    let per_rollout = cfg.ppo.n_steps * cfg.ppo.n_streams;
    let bar = ccad_core::progress::bar(
        (n_rollouts(cfg) * per_rollout * tasks.len()) as u64,
        "bench",
        "env-steps",
    );
    let mut on_rollout = |r: &RolloutReport| -> Result<()> {
        bar.inc((per_rollout * r.returns.len()) as u64);
        check_interrupt()
    };
    let learned = train_learners(cfg, env.as_ref(), &tasks, engine, false, &mut on_rollout)?;
    bar.finish_and_clear();
    Ok(Report::new(
        env.as_ref(),
        &learned,
        tasks.len() * n_rollouts(cfg) * per_rollout,
    ))
}
