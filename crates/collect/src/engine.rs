//! Where the learners' numbers are computed. The collection loop (rollouts, sampling, GAE,
//! recording) is shared; an [`Engine`] holds the weights and Adam states of a group of
//! learners and computes their forward passes and updates.
//!
//! - [`crate::native::NativeEngine`]: plain Rust, rayon over learners (the fast path).
//! - [`crate::burn_learners::BurnEngine`]: burn, all learners stacked on a task axis and every
//!   minibatch step one batched forward/backward.

use ccad_core::seed::Rng;

use crate::batch::RolloutBatch;
use crate::ppo::LossStats;

pub trait Engine {
    fn name(&self) -> &'static str;

    /// Policy logits `[G, n, n_actions]` and values `[G, n]` of observations `[G, n, obs_dim]`
    /// (`G` learners, `n` observations each).
    fn act(&mut self, obs: &[f32], n: usize, logits: &mut [f32], values: &mut [f32]);

    /// Every learner's PPO update on its own rollout, its minibatch order drawn from its own
    /// generator. Returns each learner's mean loss statistics.
    fn update(&mut self, rollouts: &[RolloutBatch], rngs: &mut [Rng]) -> Vec<LossStats>;

    /// Each learner's flat parameters (see [`crate::net::Layout`]).
    fn params(&self) -> Vec<Vec<f32>>;
}

/// Which engine a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineKind {
    /// Plain Rust, rayon over learners (checked against burn's autodiff in the tests).
    #[default]
    Native,
    /// burn, learners stacked on a task axis, one batched step per minibatch.
    Burn,
}
