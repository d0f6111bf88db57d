//! The collection loop (DESIGN §4): one PPO learner per task, each acting in `n_streams`
//! copies of its task; every rollout of `n_steps` steps per stream is one compress region and is
//! followed by the learner's update. Sampling, GAE and recording happen here; the learners'
//! numbers are an [`Engine`]'s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::Rng as _;

use ccad_core::config::Config;
use ccad_core::env::{Environment, VecEnv, make_env, split_tasks};
use ccad_core::history::{HistoryMeta, HistoryWriter, TaskHistory};
use ccad_core::seed::{Rng, rng};
use ccad_core::tb::{RunLog, check_interrupt};
use ccad_core::{Error, Result, backend};

use crate::batch::RolloutBatch;
use crate::burn_learners::BurnEngine;
use crate::engine::{Engine, EngineKind};
use crate::gae::gae;
use crate::native::NativeEngine;
use crate::net::Layout;
use crate::ppo::{Hyper, LossStats, log_softmax};
use crate::record::Recorder;
use crate::report::Report;

/// Generator streams of a learner: `seed::rng(ppo.seed, 3·task + purpose)`, keyed by the task
/// id so a learner's randomness does not depend on which other learners run beside it.
pub mod stream {
    pub const INIT: u64 = 0;
    pub const ACTIONS: u64 = 1;
    pub const ORDER: u64 = 2;

    pub fn of(task: usize, purpose: u64) -> u64 {
        3 * task as u64 + purpose
    }
}

/// What one finished rollout reports (all learners).
#[derive(Debug, Clone)]
pub struct RolloutReport {
    /// Rollout (region) index.
    pub index: usize,
    pub n_rollouts: usize,
    /// Environment steps per learner so far.
    pub env_steps: usize,
    /// Each learner's mean return of the episodes that ended in this rollout.
    pub returns: Vec<f64>,
    /// Each learner's mean update diagnostics.
    pub stats: Vec<LossStats>,
}

/// The outcome of training a group of learners.
pub struct Learned {
    pub tasks: Vec<usize>,
    /// `[rollout][learner]` mean episode return.
    pub returns: Vec<Vec<f64>>,
    /// Recorded histories (empty when not recording).
    pub histories: Vec<TaskHistory>,
    /// Final flat parameters of every learner.
    pub params: Vec<Vec<f32>>,
    pub seconds: f64,
}

/// Number of rollouts: `total_steps` rounded up to whole rollouts (stable-baselines3 keeps
/// collecting until the count is reached).
pub fn n_rollouts(cfg: &Config) -> usize {
    cfg.ppo
        .total_steps
        .div_ceil(cfg.ppo.n_steps * cfg.ppo.n_streams)
}

/// Sample an action from logits with `u ∈ [0, 1)`; returns (action, log-probability).
pub fn sample(logits: &[f32], u: f32, logp: &mut [f32]) -> (usize, f32) {
    log_softmax(logits, logp);
    let mut acc = 0.0;
    for (a, &lp) in logp.iter().enumerate() {
        acc += lp.exp();
        if u < acc {
            return (a, lp);
        }
    }
    // Rounding left the cumulative sum just under u: take the last action with mass.
    let a = logp.iter().rposition(|lp| lp.exp() > 0.0).unwrap_or(0);
    (a, logp[a])
}

/// Train one learner per task in `tasks` and (optionally) record every transition.
/// `on_rollout` runs after each rollout's update (logging, progress, interrupt checks).
pub fn train_learners(
    cfg: &Config,
    env: &dyn Environment,
    tasks: &[usize],
    engine_kind: EngineKind,
    record: bool,
    on_rollout: &mut dyn FnMut(&RolloutReport) -> Result<()>,
) -> Result<Learned> {
    let start = Instant::now();
    let p = &cfg.ppo;
    let (n_g, n_s, d, na) = (tasks.len(), p.n_streams, env.obs_dim(), env.n_actions());
    let n_rollouts = n_rollouts(cfg);
    let layout = Layout {
        obs_dim: d,
        hidden: p.hidden,
        n_actions: na,
    };
    let hyper = Hyper::from(p);
    let init: Vec<Vec<f32>> = tasks
        .iter()
        .map(|&t| layout.init(&mut rng(p.seed, stream::of(t, stream::INIT))))
        .collect();
    let mut engine: Box<dyn Engine> = match engine_kind {
        EngineKind::Native => Box::new(NativeEngine::new(layout, hyper, init)),
        EngineKind::Burn => Box::new(BurnEngine::new(layout, hyper, &init, &backend::device())),
    };
    let mut act_rngs: Vec<Rng> = tasks
        .iter()
        .map(|&t| rng(p.seed, stream::of(t, stream::ACTIONS)))
        .collect();
    let mut order_rngs: Vec<Rng> = tasks
        .iter()
        .map(|&t| rng(p.seed, stream::of(t, stream::ORDER)))
        .collect();
    let mut recorder = record.then(|| {
        Recorder::new(
            env,
            tasks,
            n_rollouts * p.n_steps,
            n_s,
            cfg.compress_interval(),
        )
    });

    // Copy i = g·n_s + s is stream s of learner g.
    let copies: Vec<usize> = tasks
        .iter()
        .flat_map(|&t| std::iter::repeat_n(t, n_s))
        .collect();
    let mut venv = VecEnv::new(env, copies);
    let c = n_g * n_s;
    let (mut obs, mut next_obs) = (vec![0i32; c * d], vec![0i32; c * d]);
    venv.observe(&mut obs);
    let mut obs_f = vec![0f32; c * d];
    let (mut logits, mut values) = (vec![0f32; c * na], vec![0f32; c]);
    let (mut actions, mut rewards, mut dones) = (vec![0usize; c], vec![0f32; c], vec![false; c]);
    let mut episode_return = vec![0f64; c];
    let mut logp_row = vec![0f32; na];
    // Rollout buffers per learner, time-major `[n_steps, n_s]`.
    let per = p.n_steps * n_s;
    let mut rollouts: Vec<RolloutBatch> = (0..n_g)
        .map(|_| RolloutBatch {
            obs_dim: d,
            obs: vec![0.0; per * d],
            actions: vec![0; per],
            old_logp: vec![0.0; per],
            advantages: vec![0.0; per],
            returns: vec![0.0; per],
        })
        .collect();
    let (mut r_val, mut r_rew, mut r_done) = (
        vec![vec![0f32; per]; n_g],
        vec![vec![0f32; per]; n_g],
        vec![vec![false; per]; n_g],
    );
    let mut all_returns = Vec::with_capacity(n_rollouts);

    for k in 0..n_rollouts {
        check_interrupt()?;
        let (mut ret_sum, mut ret_n) = (vec![0f64; n_g], vec![0usize; n_g]);
        for t in 0..p.n_steps {
            obs_f.iter_mut().zip(&obs).for_each(|(f, &o)| *f = o as f32);
            engine.act(&obs_f, n_s, &mut logits, &mut values);
            for g in 0..n_g {
                let rb = &mut rollouts[g];
                for s in 0..n_s {
                    let i = g * n_s + s;
                    let j = t * n_s + s;
                    let u: f32 = act_rngs[g].random();
                    let (a, lp) = sample(&logits[i * na..(i + 1) * na], u, &mut logp_row);
                    actions[i] = a;
                    rb.obs[j * d..(j + 1) * d].copy_from_slice(&obs_f[i * d..(i + 1) * d]);
                    rb.actions[j] = a as i32;
                    rb.old_logp[j] = lp;
                    r_val[g][j] = values[i];
                }
            }
            let before = obs.clone();
            venv.step(&actions, &mut next_obs, &mut obs, &mut rewards, &mut dones);
            let tg = k * p.n_steps + t;
            for g in 0..n_g {
                for s in 0..n_s {
                    let (i, j) = (g * n_s + s, t * n_s + s);
                    r_rew[g][j] = rewards[i];
                    r_done[g][j] = dones[i];
                    episode_return[i] += rewards[i] as f64;
                    if dones[i] {
                        ret_sum[g] += episode_return[i];
                        ret_n[g] += 1;
                        episode_return[i] = 0.0;
                    }
                    if let Some(rec) = recorder.as_mut() {
                        let o = i * d..(i + 1) * d;
                        rec.record(
                            g,
                            tg,
                            s,
                            &before[o.clone()],
                            &next_obs[o],
                            actions[i],
                            rewards[i],
                            dones[i],
                        );
                    }
                }
            }
        }
        // Bootstrap from the value of the observation after the rollout.
        obs_f.iter_mut().zip(&obs).for_each(|(f, &o)| *f = o as f32);
        engine.act(&obs_f, n_s, &mut logits, &mut values);
        for g in 0..n_g {
            let rb = &mut rollouts[g];
            gae(
                &r_rew[g],
                &r_val[g],
                &r_done[g],
                &values[g * n_s..(g + 1) * n_s],
                p.gamma as f32,
                p.gae_lambda as f32,
                &mut rb.advantages,
                &mut rb.returns,
            );
        }
        let stats = engine.update(&rollouts, &mut order_rngs);
        let returns: Vec<f64> = ret_sum
            .iter()
            .zip(&ret_n)
            .map(|(&s, &n)| if n > 0 { s / n as f64 } else { f64::NAN })
            .collect();
        let report = RolloutReport {
            index: k,
            n_rollouts,
            env_steps: (k + 1) * per,
            returns: returns.clone(),
            stats,
        };
        all_returns.push(returns);
        on_rollout(&report)?;
    }
    Ok(Learned {
        tasks: tasks.to_vec(),
        returns: all_returns,
        histories: recorder.map(|r| r.histories).unwrap_or_default(),
        params: engine.params(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Options of a collect run besides the config.
#[derive(Debug, Clone, Default)]
pub struct CollectOptions {
    /// Output file; `None` = `cfg.dataset_path()`.
    pub out: Option<PathBuf>,
    /// Replace an existing file.
    pub force: bool,
    pub engine: EngineKind,
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

fn tb_tag_task(task: usize, n_available: usize) -> String {
    let width = n_available.saturating_sub(1).to_string().len().max(2);
    format!("collect/return/task_{task:0width$}")
}

/// The whole collect stage: train every task's learner, log, write the dataset atomically.
pub fn collect(cfg: &Config, opts: &CollectOptions) -> Result<Report> {
    let dest = opts.out.clone().unwrap_or_else(|| cfg.dataset_path());
    check_output(&dest, opts.force)?;
    let env = make_env(&cfg.env);
    let (train, test) = split_tasks(&cfg.env, env.n_tasks());
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
        for (&task, &ret) in tasks.iter().zip(&r.returns) {
            if ret.is_finite() {
                log.scalar(&tb_tag_task(task, n_available), ret, r.env_steps);
            }
        }
        let mean = crate::report::finite_mean(&r.returns);
        log.scalar("collect/return_mean", mean, r.env_steps);
        let s = LossStats::mean(&r.stats);
        log.scalar("losses/value_loss", s.value_loss, r.env_steps);
        log.scalar("losses/policy_loss", s.policy_loss, r.env_steps);
        log.scalar("losses/approx_kl", s.approx_kl, r.env_steps);
        log.scalar("losses/clipfrac", s.clipfrac, r.env_steps);
        log.flush();
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
pub fn bench(cfg: &Config, engine: EngineKind) -> Result<Report> {
    let env = make_env(&cfg.env);
    let (train, test) = split_tasks(&cfg.env, env.n_tasks());
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
