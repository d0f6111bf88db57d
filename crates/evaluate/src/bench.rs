//! Speed of the rollout: env-steps/s with a key/value cache (the model's native layers,
//! [`model::native::NativeDecoder`], and burn's [`model::KvCache`]) against a full re-run of every context each step (the
//! reference's way), for a freshly initialised model of the default
//! shape on Dark Room. Two phases of one rollout (compressed context, interval `I`):
//!
//! - `short`: the first two episodes (steps `0..2·horizon`): contexts of 2 to `2·horizon + 1`
//!   tokens;
//! - `full`: one whole region cycle in the steady state (steps `2I..3I`): contexts grow from
//!   `I + 4` to `2I + 3` tokens, and every row is rebuilt once (a region dropped).
//!
//! Each figure counts every environment's step: batched steps × environments / seconds.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use ccad_core::config::{Boundary, EnvConfig, ModelConfig};
use ccad_core::context::{CompressedQuery, Layout};
use ccad_core::env::make_env;
use model::AdModelConfig;

use crate::rollout::{Inference, Rollout, RolloutSpec, Sampling};

/// One measured phase.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub inference: Inference,
    pub phase: &'static str,
    /// Batched steps timed.
    pub steps: usize,
    /// Shortest and longest context (query included) seen in the phase.
    pub tokens: (usize, usize),
    pub env_steps_per_s: f64,
}

/// Time both phases for every inference mode with `n_envs` environments.
/// The best of `repeats` rollouts is kept per phase: on a shared machine the fastest run is
/// the one least disturbed.
pub fn bench(
    n_envs: usize,
    interval: usize,
    repeats: usize,
    device: &Device,
    seed: u64,
) -> Vec<BenchRow> {
    let env_cfg = EnvConfig::default();
    let env = make_env(&env_cfg);
    let layout = Layout::new(CompressedQuery::new(interval, Boundary::Fixed));
    let config = AdModelConfig::new(
        &ModelConfig::default(),
        layout.feat_dim(env.obs_dim(), env.n_actions()),
        env.n_states(),
        env.n_actions(),
        layout.max_len(),
    );
    ccad_core::backend::seed_device(device, seed);
    let model = config.init(device).valid();
    let tasks: Vec<usize> = (0..n_envs).map(|i| i % env.n_tasks()).collect();
    let horizon = env.horizon();
    let phases = [
        ("short", 0, 2 * horizon),
        ("full", 2 * interval, 3 * interval),
    ];
    let mut rows = Vec::new();
    for inference in [Inference::Native, Inference::Cached, Inference::Full] {
        let spec = RolloutSpec {
            tasks: tasks.clone(),
            seeds: vec![seed; n_envs],
            episodes: usize::MAX,
            sampling: Sampling::Temperature(1.0),
            layout: layout.clone(),
            inference,
        };
        // Warm-up: thread pools, allocator, caches.
        let mut warm = Rollout::new(&model, env.as_ref(), spec.clone(), device);
        for _ in 0..horizon {
            warm.step();
        }
        drop(warm);
        let mut best: Vec<Option<BenchRow>> = vec![None; phases.len()];
        for _ in 0..repeats.max(1) {
            let mut r = Rollout::new(&model, env.as_ref(), spec.clone(), device);
            for (k, &(phase, start, end)) in phases.iter().enumerate() {
                while r.stats().steps < start {
                    r.step();
                }
                let mut tokens = (usize::MAX, 0);
                let t = Instant::now();
                while r.stats().steps < end {
                    for c in r.contexts() {
                        tokens.0 = tokens.0.min(c.len() + 1);
                        tokens.1 = tokens.1.max(c.len() + 1);
                    }
                    r.step();
                }
                let rate = ((end - start) * n_envs) as f64 / t.elapsed().as_secs_f64();
                if best[k].as_ref().is_none_or(|b| rate > b.env_steps_per_s) {
                    best[k] = Some(BenchRow {
                        inference,
                        phase,
                        steps: end - start,
                        tokens,
                        env_steps_per_s: rate,
                    });
                }
            }
        }
        rows.extend(best.into_iter().flatten());
    }
    rows
}
