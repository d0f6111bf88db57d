//! Synthetic learning histories: uniform random walks in the config's environment, stored with
//! the real schema and markers. For tests and the benchmark when no collected file exists;
//! they exercise every code path but carry no learning signal.

use std::path::Path;

use ccad_core::config::Config;
use ccad_core::env::{Environment, checked_split, make_env};
use ccad_core::history::{HistoryMeta, HistoryWriter, TaskHistory};
use ccad_core::tokens::marker_at;
use ccad_core::{Result, seed};
use rand::Rng;
use rayon::prelude::*;

/// Size of a synthetic file. Paper scale: 81 tasks × 100 streams × 1040 steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    pub tasks: usize,
    pub streams: usize,
    pub steps: usize,
    pub seed: u64,
}

/// One task's random-walk histories, time-major, markers every `cfg.compress_interval()`.
pub fn random_walk(
    env: &dyn Environment,
    cfg: &Config,
    task: usize,
    spec: &SyntheticSpec,
) -> TaskHistory {
    let (t_len, s_len, d) = (spec.steps, spec.streams, env.obs_dim());
    let interval = cfg.compress_interval();
    let mut rng = seed::rng(spec.seed, task as u64);
    let mut states = vec![env.reset(task); s_len];
    let mut h = TaskHistory {
        task,
        param_name: env.task_param_name().to_string(),
        params: env.task_params(task),
        optimal_return: env.optimal_return(task),
        steps: t_len,
        n_stream: s_len,
        obs_dim: d,
        states: vec![0; t_len * s_len * d],
        next_states: vec![0; t_len * s_len * d],
        actions: vec![0; t_len * s_len],
        rewards: vec![0.0; t_len * s_len],
        dones: vec![0; t_len * s_len],
        compress_markers: vec![0; t_len * s_len],
    };
    for t in 0..t_len {
        for (s, st) in states.iter_mut().enumerate() {
            let i = t * s_len + s;
            env.observe(st, &mut h.states[i * d..(i + 1) * d]);
            let a = rng.random_range(0..env.n_actions());
            let out = env.step(task, st, a);
            env.observe(st, &mut h.next_states[i * d..(i + 1) * d]);
            h.actions[i] = a as i32;
            h.rewards[i] = out.reward;
            h.dones[i] = out.done as u8;
            h.compress_markers[i] = marker_at(t, interval);
            if out.done {
                *st = env.reset(task);
            }
        }
    }
    h
}

/// Write a synthetic history file for `cfg`'s environment and interval at `path`, with the
/// config's train/test split over `spec.tasks` tasks.
pub fn write_synthetic(path: &Path, cfg: &Config, spec: &SyntheticSpec) -> Result<()> {
    let env = make_env(&cfg.env);
    let n_tasks = spec.tasks.min(env.n_tasks());
    let (train_tasks, test_tasks) = checked_split(&cfg.env, env.as_ref(), n_tasks)?;
    let meta = HistoryMeta::for_config(cfg, &*env, train_tasks, test_tasks);
    let mut w = HistoryWriter::create(path, &meta)?;
    // Generate a few tasks at a time in parallel; HDF5 writes stay on this thread.
    let ids: Vec<usize> = (0..n_tasks).collect();
    for chunk in ids.chunks(8) {
        let made: Vec<TaskHistory> = chunk
            .par_iter()
            .map(|&t| random_walk(env.as_ref(), cfg, t, spec))
            .collect();
        for h in &made {
            w.write_task(h)?;
        }
    }
    w.finish()
}
