//! The buffers PPO's steps read and write: each learner's rollout, all learners' streams, and
//! a learner's minibatch. What fills them is in [`super`], step by step.

use ccad_core::env::{Environment, VecEnv};

/// One learner's rollout, flat over `i = t·n_streams + s` (time-major, `n` samples).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutBatch {
    pub obs_dim: usize,
    /// `[n, obs_dim]`, observations as float (row, col).
    pub obs: Vec<f32>,
    pub actions: Vec<i32>,
    /// Log-probability of the action under the policy that acted.
    pub old_logp: Vec<f32>,
    /// The critic's value of each observation, the reward and whether the step ended an
    /// episode: what [`gae`] reads.
    pub values: Vec<f32>,
    pub rewards: Vec<f32>,
    pub dones: Vec<bool>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

impl RolloutBatch {
    /// Zeroed buffers for `n` samples of `obs_dim` features.
    pub fn zeros(n: usize, obs_dim: usize) -> Self {
        Self {
            obs_dim,
            obs: vec![0.0; n * obs_dim],
            actions: vec![0; n],
            old_logp: vec![0.0; n],
            values: vec![0.0; n],
            rewards: vec![0.0; n],
            dones: vec![false; n],
            advantages: vec![0.0; n],
            returns: vec![0.0; n],
        }
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// All learners' streams and rollout buffers. Copy `i = g·n_s + s` is stream `s` of learner `g`.
pub struct Rollouts<'e> {
    pub(super) venv: VecEnv<'e>,
    pub(super) n_s: usize,
    pub(super) n_steps: usize,
    pub(super) obs_dim: usize,
    pub(super) n_actions: usize,
    pub(super) obs: Vec<i32>,
    pub(super) next_obs: Vec<i32>,
    pub(super) obs_f: Vec<f32>,
    pub(super) logits: Vec<f32>,
    pub(super) values: Vec<f32>,
    pub(super) actions: Vec<usize>,
    pub(super) rewards: Vec<f32>,
    pub(super) dones: Vec<bool>,
    pub(super) episode_return: Vec<f64>,
    pub(super) logp_row: Vec<f32>,
    /// One per learner, `[n_steps, n_s]`.
    pub batches: Vec<RolloutBatch>,
}

impl<'e> Rollouts<'e> {
    pub fn new(env: &'e dyn Environment, tasks: &[usize], n_s: usize, n_steps: usize) -> Self {
        let (d, na) = (env.obs_dim(), env.n_actions());
        let copies: Vec<usize> = tasks
            .iter()
            .flat_map(|&t| std::iter::repeat_n(t, n_s))
            .collect();
        let c = copies.len();
        let venv = VecEnv::new(env, copies);
        let mut obs = vec![0i32; c * d];
        venv.observe(&mut obs);
        Self {
            venv,
            n_s,
            n_steps,
            obs_dim: d,
            n_actions: na,
            obs,
            next_obs: vec![0i32; c * d],
            obs_f: vec![0f32; c * d],
            logits: vec![0f32; c * na],
            values: vec![0f32; c],
            actions: vec![0usize; c],
            rewards: vec![0f32; c],
            dones: vec![false; c],
            episode_return: vec![0f64; c],
            logp_row: vec![0f32; na],
            batches: vec![RolloutBatch::zeros(n_steps * n_s, d); tasks.len()],
        }
    }
}

/// One learner's minibatch, advantages normalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minibatch {
    pub obs: Vec<f32>,
    pub actions: Vec<i32>,
    pub old_logp: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

impl Minibatch {
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}
