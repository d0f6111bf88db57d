//! The native engine: each learner's weights, Adam state and scratch buffers in plain Rust,
//! learners in parallel on rayon. Its update (PPO's steps 3–6) is in [`super`].

use rayon::prelude::*;

use ccad_core::kernels::optim::Adam;
use ccad_core::seed::Rng;

use super::{Engine, Hyper, LossStats, RolloutBatch};
use crate::net::{Activations, Layout};

/// One PPO learner on the native engine: weights, Adam state and scratch buffers.
#[derive(Debug, Clone)]
pub struct NativeLearner {
    pub(super) layout: Layout,
    pub(super) hyper: Hyper,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    pub(super) adam: Adam,
    pub(super) actor: Activations,
    pub(super) critic: Activations,
    pub(super) dlogits: Vec<f32>,
    pub(super) dvalues: Vec<f32>,
}

impl NativeLearner {
    pub fn new(layout: Layout, hyper: Hyper, params: Vec<f32>) -> Self {
        assert_eq!(params.len(), layout.len());
        Self {
            layout,
            hyper,
            grads: vec![0.0; params.len()],
            adam: Adam::new(hyper.adam(), params.len()),
            params,
            actor: Activations::default(),
            critic: Activations::default(),
            dlogits: Vec::new(),
            dvalues: Vec::new(),
        }
    }

    /// Logits `[n, n_actions]` and values `[n]` of `n` observations.
    pub fn forward(&mut self, obs: &[f32], n: usize) -> (&[f32], &[f32]) {
        let p = &self.params;
        self.layout.actor().forward(p, obs, n, &mut self.actor);
        self.layout.critic().forward(p, obs, n, &mut self.critic);
        (&self.actor.out, &self.critic.out)
    }
}

/// All learners of a run on the native engine, stepped in parallel: a learner's whole update
/// runs on one thread with its parameters, gradients and Adam moments (≈150 KB) hot in that
/// core's cache.
pub struct NativeEngine {
    pub learners: Vec<NativeLearner>,
}

impl NativeEngine {
    pub fn new(layout: Layout, hyper: Hyper, params: Vec<Vec<f32>>) -> Self {
        let learner = |p| NativeLearner::new(layout, hyper, p);
        Self {
            learners: params.into_iter().map(learner).collect(),
        }
    }
}

impl Engine for NativeEngine {
    fn name(&self) -> &'static str {
        "native"
    }

    fn act(&mut self, obs: &[f32], n: usize, logits: &mut [f32], values: &mut [f32]) {
        let Some(first) = self.learners.first() else {
            return;
        };
        let (d, na) = (first.layout.obs_dim, first.layout.n_actions);
        self.learners
            .par_iter_mut()
            .zip(obs.par_chunks(n * d))
            .zip(logits.par_chunks_mut(n * na).zip(values.par_chunks_mut(n)))
            .for_each(|((l, o), (lg, v))| {
                let (a, b) = l.forward(o, n);
                lg.copy_from_slice(a);
                v.copy_from_slice(b);
            });
    }

    fn update(&mut self, rollouts: &[RolloutBatch], rngs: &mut [Rng]) -> Vec<LossStats> {
        self.learners
            .par_iter_mut()
            .zip(rollouts)
            .zip(rngs)
            .with_max_len(1)
            .map(|((l, r), rng)| l.update(r, rng))
            .collect()
    }

    fn params(&self) -> Vec<Vec<f32>> {
        self.learners.iter().map(|l| l.params.clone()).collect()
    }
}
