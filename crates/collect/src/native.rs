//! The fast path: every learner's PPO update in plain Rust (the MLP forward/backward of
//! [`crate::net`], Adam, per-learner clipping), learners in parallel on rayon. A learner's whole
//! update runs on one thread with its parameters, gradients and Adam moments (≈150 KB) hot in
//! that core's cache. `burn_learners` computes the same on burn; tests compare the two.

use rayon::prelude::*;

use ccad_core::seed::Rng;

use crate::batch::{Minibatch, RolloutBatch, epoch_order, minibatch_ranges};
use crate::engine::Engine;
use crate::net::{Activations, Layout};
use crate::optim::{Adam, clip_grad_norm};
use crate::ppo::{Hyper, LossStats, policy_loss, value_loss};

/// One PPO learner: weights, Adam state and scratch buffers.
#[derive(Debug, Clone)]
pub struct NativeLearner {
    layout: Layout,
    hyper: Hyper,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    adam: Adam,
    actor: Activations,
    critic: Activations,
    dlogits: Vec<f32>,
    dvalues: Vec<f32>,
}

impl NativeLearner {
    pub fn new(layout: Layout, hyper: Hyper, params: Vec<f32>) -> Self {
        assert_eq!(params.len(), layout.len());
        Self {
            layout,
            hyper,
            grads: vec![0.0; params.len()],
            adam: Adam::new(params.len(), hyper.lr, hyper.adam_eps),
            params,
            actor: Activations::default(),
            critic: Activations::default(),
            dlogits: Vec::new(),
            dvalues: Vec::new(),
        }
    }

    /// Logits `[n, n_actions]` and values `[n]` of `n` observations.
    pub fn forward(&mut self, obs: &[f32], n: usize) -> (&[f32], &[f32]) {
        self.layout
            .actor()
            .forward(&self.params, obs, n, &mut self.actor);
        self.layout
            .critic()
            .forward(&self.params, obs, n, &mut self.critic);
        (&self.actor.out, &self.critic.out)
    }

    /// Loss gradients of one minibatch into `self.grads` (not clipped).
    pub fn gradients(&mut self, mb: &Minibatch) -> LossStats {
        let n = mb.len();
        let h = self.hyper;
        let na = self.layout.n_actions;
        self.forward(&mb.obs, n);
        self.dlogits.resize(n * na, 0.0);
        self.dvalues.resize(n, 0.0);
        let mut s = policy_loss(
            &self.actor.out,
            na,
            &mb.actions,
            &mb.old_logp,
            &mb.advantages,
            h.clip,
            h.ent_coef,
            &mut self.dlogits,
        );
        s.value_loss = value_loss(&self.critic.out, &mb.returns, h.vf_coef, &mut self.dvalues);
        let (actor, critic) = (self.layout.actor(), self.layout.critic());
        actor.backward(
            &self.params,
            &mb.obs,
            n,
            &mut self.actor,
            &self.dlogits,
            &mut self.grads,
        );
        critic.backward(
            &self.params,
            &mb.obs,
            n,
            &mut self.critic,
            &self.dvalues,
            &mut self.grads,
        );
        s
    }

    /// One gradient step: gradients, clip this learner's norm, Adam.
    pub fn step(&mut self, mb: &Minibatch) -> LossStats {
        let s = self.gradients(mb);
        clip_grad_norm(&mut self.grads, self.hyper.max_grad_norm);
        self.adam.step(&mut self.params, &self.grads);
        s
    }

    /// The whole update on one rollout: `n_epochs` passes over a fresh permutation, minibatch
    /// by minibatch. Returns the mean stats over all minibatches.
    pub fn update(&mut self, r: &RolloutBatch, rng: &mut Rng) -> LossStats {
        let mut mb = Minibatch::default();
        let mut total = LossStats::default();
        let mut count = 0usize;
        for _ in 0..self.hyper.n_epochs {
            let order = epoch_order(rng, r.len());
            for range in minibatch_ranges(r.len(), self.hyper.minibatch) {
                mb.gather(r, &order[range]);
                total.add(&self.step(&mb));
                count += 1;
            }
        }
        total.scaled(1.0 / count.max(1) as f64)
    }
}

/// All learners of a run, stepped in parallel.
pub struct NativeEngine {
    pub learners: Vec<NativeLearner>,
}

impl NativeEngine {
    pub fn new(layout: Layout, hyper: Hyper, params: Vec<Vec<f32>>) -> Self {
        Self {
            learners: params
                .into_iter()
                .map(|p| NativeLearner::new(layout, hyper, p))
                .collect(),
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
