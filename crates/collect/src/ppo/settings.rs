//! PPO's settings: the update's hyperparameters as f32, the learners' optimiser, their random
//! streams, and the number of rollouts of a run.

use ccad_core::config::{Config, PpoConfig};
use ccad_core::kernels::optim::{AdamConfig, AdamForm};

/// The settings an update needs, as f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub lr: f32,
    pub adam_eps: f32,
    pub clip: f32,
    pub ent_coef: f32,
    pub vf_coef: f32,
    pub max_grad_norm: f32,
    pub n_epochs: usize,
    pub minibatch: usize,
}

impl From<&PpoConfig> for Hyper {
    fn from(c: &PpoConfig) -> Self {
        Self {
            lr: c.lr as f32,
            adam_eps: c.adam_eps as f32,
            clip: c.clip_range as f32,
            ent_coef: c.ent_coef as f32,
            vf_coef: c.vf_coef as f32,
            max_grad_norm: c.max_grad_norm as f32,
            n_epochs: c.n_epochs,
            minibatch: c.minibatch_size,
        }
    }
}

/// torch's default Adam betas, which stable-baselines3 keeps.
pub const ADAM_BETAS: (f32, f32) = (0.9, 0.999);

impl Hyper {
    /// The learners' optimiser: torch's Adam with [`ADAM_BETAS`] and the configured epsilon.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            beta1: ADAM_BETAS.0,
            beta2: ADAM_BETAS.1,
            epsilon: self.adam_eps,
            form: AdamForm::Torch,
        }
    }
}

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

/// Number of rollouts: `total_steps` rounded up to whole rollouts (stable-baselines3 keeps
/// collecting until the count is reached).
pub fn n_rollouts(cfg: &Config) -> usize {
    cfg.ppo
        .total_steps
        .div_ceil(cfg.ppo.n_steps * cfg.ppo.n_streams)
}
