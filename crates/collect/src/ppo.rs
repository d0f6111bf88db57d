//! PPO as stable-baselines3 runs it, for a group of learners (one per task, each acting in
//! `n_streams` copies of its task), top to bottom in the order it runs:
//!
//! 1. **rollout** ([`run`], [`Rollouts::collect`]): `n_steps` steps per stream, actions sampled
//!    from the policy, every transition recorded with its compress marker ([`crate::record`]);
//! 2. **GAE** ([`gae`]): advantages and returns, bootstrapped from the value after the rollout;
//! 3. **epochs × minibatches** ([`NativeLearner::update`]): `n_epochs` passes over a fresh
//!    permutation, advantages normalised per minibatch ([`Minibatch::gather`]);
//! 4. **clipped losses** ([`policy_loss`], [`value_loss`]) with their gradients written out,
//!    then back through the networks ([`crate::net`]);
//! 5. **clip** each learner's gradient norm and 6. **step** Adam, both torch's
//!    ([`ccad_core::kernels::optim`]);
//! 7. **logging** ([`RolloutReport`], [`log_rollout`]).
//!
//! Steps 3–6 are an [`Engine`]'s: [`NativeEngine`] here (plain Rust, rayon over learners) or
//! [`crate::burn_learners`] (the checked alternative, learners batched on burn).

use std::time::Instant;

use rand::Rng as _;
use rand::seq::SliceRandom;

use ccad_core::Result;
use ccad_core::config::Config;
use ccad_core::env::Environment;
use ccad_core::kernels::optim::{ClipForm, clip_grad_norm};
use ccad_core::seed::{Rng, rng};
use ccad_core::tb::{RunLog, check_interrupt};

use crate::net::Layout;
use crate::record::Recorder;

mod buffers;
mod native;
mod settings;
mod stats;

pub use buffers::{Minibatch, RolloutBatch, Rollouts};
pub use native::{NativeEngine, NativeLearner};
pub use settings::{ADAM_BETAS, Hyper, n_rollouts, stream};
pub use stats::{Learned, LossStats, RolloutReport, finite_mean};

// ---------------------------------------------------------------------------------------------
// The loop

/// What computes a group of learners' numbers: their weights and optimiser states, forward
/// passes and updates (steps 3–6).
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

/// Builds the engine of a run from the layout, the settings and each learner's initial weights.
pub type MakeEngine<'a> = &'a dyn Fn(Layout, Hyper, Vec<Vec<f32>>) -> Box<dyn Engine>;

/// Train one learner per task in `tasks` and (optionally) record every transition.
/// `on_rollout` runs after each rollout's update (logging, progress, interrupt checks).
pub fn run(
    cfg: &Config,
    env: &dyn Environment,
    tasks: &[usize],
    make_engine: MakeEngine<'_>,
    record: bool,
    on_rollout: &mut dyn FnMut(&RolloutReport) -> Result<()>,
) -> Result<Learned> {
    let start = Instant::now();
    let p = &cfg.ppo;
    let n_rollouts = n_rollouts(cfg);
    let layout = Layout {
        obs_dim: env.obs_dim(),
        hidden: p.hidden,
        n_actions: env.n_actions(),
    };
    let init: Vec<Vec<f32>> = tasks
        .iter()
        .map(|&t| layout.init(&mut rng(p.seed, stream::of(t, stream::INIT))))
        .collect();
    let mut engine = make_engine(layout, Hyper::from(p), init);
    let rngs_for = |purpose| -> Vec<Rng> {
        let of = |&t: &usize| rng(p.seed, stream::of(t, purpose));
        tasks.iter().map(of).collect()
    };
    let (mut act_rngs, mut order_rngs) = (rngs_for(stream::ACTIONS), rngs_for(stream::ORDER));
    let mut recorder = record.then(|| {
        let steps = n_rollouts * p.n_steps;
        Recorder::new(env, tasks, steps, p.n_streams, cfg.compress_interval())
    });
    let mut rollouts = Rollouts::new(env, tasks, p.n_streams, p.n_steps);
    let mut all_returns = Vec::with_capacity(n_rollouts);
    for k in 0..n_rollouts {
        check_interrupt()?;
        // 1. Rollout.
        let returns = rollouts.collect(engine.as_mut(), &mut act_rngs, recorder.as_mut(), k);
        // 2. GAE, bootstrapped from the value of the observation after the rollout.
        let last_values = rollouts.values_of_current(engine.as_mut()).to_vec();
        for (g, rb) in rollouts.batches.iter_mut().enumerate() {
            let n_s = p.n_streams;
            let last = &last_values[g * n_s..(g + 1) * n_s];
            rb.advantages_and_returns(last, p.gamma as f32, p.gae_lambda as f32);
        }
        // 3.–6. Epochs × minibatches: losses, clip, step.
        let stats = engine.update(&rollouts.batches, &mut order_rngs);
        // 7. Logging.
        all_returns.push(returns.clone());
        on_rollout(&RolloutReport {
            index: k,
            n_rollouts,
            env_steps: (k + 1) * p.n_steps * p.n_streams,
            returns,
            stats,
        })?;
    }
    Ok(Learned {
        tasks: tasks.to_vec(),
        returns: all_returns,
        histories: recorder.map(|r| r.histories).unwrap_or_default(),
        params: engine.params(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Rollout

impl Rollouts<'_> {
    /// Rollout `k`: `n_steps` steps of every stream, each learner's actions drawn from its own
    /// generator. Returns each learner's mean return of the episodes that ended in it (NaN if
    /// none did).
    pub fn collect(
        &mut self,
        engine: &mut dyn Engine,
        act_rngs: &mut [Rng],
        mut recorder: Option<&mut Recorder>,
        k: usize,
    ) -> Vec<f64> {
        let (n_g, n_s, d, na) = (self.batches.len(), self.n_s, self.obs_dim, self.n_actions);
        let (mut ret_sum, mut ret_n) = (vec![0f64; n_g], vec![0usize; n_g]);
        for t in 0..self.n_steps {
            self.values_of_current(engine);
            for (g, rb) in self.batches.iter_mut().enumerate() {
                for s in 0..n_s {
                    let (i, j) = (g * n_s + s, t * n_s + s);
                    let u: f32 = act_rngs[g].random();
                    let logits = &self.logits[i * na..(i + 1) * na];
                    let (a, lp) = sample(logits, u, &mut self.logp_row);
                    self.actions[i] = a;
                    rb.obs[j * d..(j + 1) * d].copy_from_slice(&self.obs_f[i * d..(i + 1) * d]);
                    rb.actions[j] = a as i32;
                    rb.old_logp[j] = lp;
                    rb.values[j] = self.values[i];
                }
            }
            let before = self.obs.clone();
            let (obs, next) = (&mut self.obs, &mut self.next_obs);
            let (rewards, dones) = (&mut self.rewards, &mut self.dones);
            self.venv.step(&self.actions, next, obs, rewards, dones);
            for (g, rb) in self.batches.iter_mut().enumerate() {
                for s in 0..n_s {
                    let (i, j) = (g * n_s + s, t * n_s + s);
                    rb.rewards[j] = self.rewards[i];
                    rb.dones[j] = self.dones[i];
                    self.episode_return[i] += self.rewards[i] as f64;
                    if self.dones[i] {
                        ret_sum[g] += self.episode_return[i];
                        ret_n[g] += 1;
                        self.episode_return[i] = 0.0;
                    }
                    if let Some(rec) = recorder.as_deref_mut() {
                        let o = i * d..(i + 1) * d;
                        let (state, next) = (&before[o.clone()], &self.next_obs[o]);
                        let (a, r, done) = (self.actions[i], self.rewards[i], self.dones[i]);
                        rec.record(g, k * self.n_steps + t, s, state, next, a, r, done);
                    }
                }
            }
        }
        let mean = |(&s, &n): (&f64, &usize)| if n > 0 { s / n as f64 } else { f64::NAN };
        ret_sum.iter().zip(&ret_n).map(mean).collect()
    }

    /// The engine's logits and values of the current observations; returns the values.
    pub fn values_of_current(&mut self, engine: &mut dyn Engine) -> &[f32] {
        let obs_f = &mut self.obs_f;
        obs_f
            .iter_mut()
            .zip(&self.obs)
            .for_each(|(f, &o)| *f = o as f32);
        engine.act(obs_f, self.n_s, &mut self.logits, &mut self.values);
        &self.values
    }
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

// ---------------------------------------------------------------------------------------------
// 2. GAE

/// Generalised advantage estimation over one rollout, as stable-baselines3 computes it.
/// Buffers are time-major `[n_steps, n_streams]`; `dones[t][s]` says the step taken at `t`
/// ended an episode (a terminal: nothing is bootstrapped across it); `last_values` (the value
/// of each stream's observation after the rollout) bootstraps the streams whose last step did
/// not end an episode. Writes `(advantages, returns = advantages + values)`:
///
/// `δ_t = r_t + γ·V(s_{t+1})·(1 − done_t) − V(s_t)`,
/// `A_t = δ_t + γ·λ·(1 − done_t)·A_{t+1}`, with `V(s_T) = last_values`, `A_T = 0`.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_values: &[f32],
    (gamma, lambda): (f32, f32),
    (advantages, returns): (&mut [f32], &mut [f32]),
) {
    let n = last_values.len();
    let steps = rewards.len() / n;
    assert_eq!(rewards.len(), steps * n);
    assert_eq!(values.len(), steps * n);
    assert_eq!(dones.len(), steps * n);
    for (s, &last) in last_values.iter().enumerate() {
        let mut next_adv = 0.0f32;
        let mut next_value = last;
        for t in (0..steps).rev() {
            let i = t * n + s;
            let live = if dones[i] { 0.0 } else { 1.0 };
            let delta = rewards[i] + gamma * next_value * live - values[i];
            next_adv = delta + gamma * lambda * live * next_adv;
            advantages[i] = next_adv;
            returns[i] = next_adv + values[i];
            next_value = values[i];
        }
    }
}

impl RolloutBatch {
    /// Fill `advantages` and `returns` by [`gae`].
    pub fn advantages_and_returns(&mut self, last_values: &[f32], gamma: f32, lambda: f32) {
        let (rewards, values, dones) = (&self.rewards, &self.values, &self.dones);
        let out = (&mut self.advantages[..], &mut self.returns[..]);
        gae(rewards, values, dones, last_values, (gamma, lambda), out);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Epochs × minibatches

impl NativeLearner {
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

    /// One minibatch: gradients of the losses (step 4), clip this learner's norm (step 5),
    /// Adam (step 6).
    pub fn step(&mut self, mb: &Minibatch) -> LossStats {
        let s = self.gradients(mb);
        clip_grad_norm(&mut self.grads, self.hyper.max_grad_norm, ClipForm::Torch);
        self.adam
            .step(self.hyper.lr as f64, &mut self.params, &self.grads);
        s
    }

    /// Loss gradients of one minibatch into `self.grads` (not clipped): the losses' gradients
    /// with respect to the logits and values, then back through both networks.
    pub fn gradients(&mut self, mb: &Minibatch) -> LossStats {
        let (n, h, na) = (mb.len(), self.hyper, self.layout.n_actions);
        self.forward(&mb.obs, n);
        self.dlogits.resize(n * na, 0.0);
        self.dvalues.resize(n, 0.0);
        let policy = PolicyBatch {
            logits: &self.actor.out,
            n_actions: na,
            actions: &mb.actions,
            old_logp: &mb.old_logp,
            advantages: &mb.advantages,
        };
        let mut s = policy_loss(policy, h.clip, h.ent_coef, &mut self.dlogits);
        s.value_loss = value_loss(&self.critic.out, &mb.returns, h.vf_coef, &mut self.dvalues);
        let (p, g) = (&self.params, &mut self.grads);
        let actor = self.layout.actor();
        actor.backward(p, &mb.obs, n, &mut self.actor, &self.dlogits, g);
        let critic = self.layout.critic();
        critic.backward(p, &mb.obs, n, &mut self.critic, &self.dvalues, g);
        s
    }
}

/// A fresh permutation of all `n` samples (one per epoch, from the learner's own generator).
pub fn epoch_order(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order
}

/// Minibatch ranges of an epoch's order: `[0, b) [b, 2b) …`; the last one is shorter when `b`
/// does not divide `n` (stable-baselines3 keeps it).
pub fn minibatch_ranges(n: usize, b: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(b).map(move |s| s..(s + b).min(n))
}

impl Minibatch {
    /// Fill from the samples `idx` of `r` (buffers are reused) and normalise the advantages.
    pub fn gather(&mut self, r: &RolloutBatch, idx: &[usize]) {
        let d = r.obs_dim;
        self.obs.clear();
        self.actions.clear();
        self.old_logp.clear();
        self.advantages.clear();
        self.returns.clear();
        for &i in idx {
            self.obs.extend_from_slice(&r.obs[i * d..(i + 1) * d]);
            self.actions.push(r.actions[i]);
            self.old_logp.push(r.old_logp[i]);
            self.advantages.push(r.advantages[i]);
            self.returns.push(r.returns[i]);
        }
        normalize_advantages(&mut self.advantages);
    }
}

/// Advantage normalisation within a minibatch: `(a − mean) / (std + 1e-8)` with the sample
/// standard deviation (ddof 1, as torch's `std`). A single sample is left as is
/// (stable-baselines3 skips normalisation then).
pub fn normalize_advantages(a: &mut [f32]) {
    let n = a.len();
    if n < 2 {
        return;
    }
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let denom = var.sqrt() + 1e-8;
    a.iter_mut()
        .for_each(|x| *x = ((*x as f64 - mean) / denom) as f32);
}

// ---------------------------------------------------------------------------------------------
// 4. Clipped losses
//
// For a minibatch of `B` samples with normalised advantages `A`:
// `ratio = exp(logπ(a|s) − logπ_old(a|s))`,
// `policy_loss = −mean(min(A·ratio, A·clip(ratio, 1−ε, 1+ε)))`,
// `value_loss = mean((R − V(s))²)` (no value clipping),
// `loss = policy_loss − ent_coef·mean(entropy) + vf_coef·value_loss`.

/// Log-softmax of one row of logits, into `out`.
pub fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    out.iter_mut().zip(logits).for_each(|(o, &l)| *o = l - lse);
}

/// What the policy loss reads of a minibatch of `B` samples: the current logits
/// `[B, n_actions]` and the samples' columns.
#[derive(Debug, Clone, Copy)]
pub struct PolicyBatch<'a> {
    pub logits: &'a [f32],
    pub n_actions: usize,
    pub actions: &'a [i32],
    pub old_logp: &'a [f32],
    pub advantages: &'a [f32],
}

/// Clipped-surrogate policy loss (plus the entropy bonus), and its gradient with respect to
/// the logits written into `dlogits`. Returns the stats with `value_loss` zero.
///
/// Gradient: `∂loss/∂ratio_i = −A_i/B` where the unclipped term is the smaller one (inside the
/// clip range both are equal and the clipped one passes the gradient too), else 0;
/// `∂ratio/∂logits = ratio·(onehot(a) − softmax)`. Entropy `H = −Σ p log p`,
/// `∂H/∂logit_j = −p_j (log p_j + H)`.
pub fn policy_loss(b: PolicyBatch, clip: f32, ent_coef: f32, dlogits: &mut [f32]) -> LossStats {
    let (n, na) = (b.actions.len(), b.n_actions);
    let inv_b = 1.0 / n as f32;
    let mut logp = vec![0.0f32; na];
    let mut s = LossStats::default();
    for i in 0..n {
        let row = &b.logits[i * na..(i + 1) * na];
        let d = &mut dlogits[i * na..(i + 1) * na];
        log_softmax(row, &mut logp);
        let a = b.actions[i] as usize;
        let log_ratio = logp[a] - b.old_logp[i];
        let ratio = log_ratio.exp();
        let adv = b.advantages[i];
        let unclipped = adv * ratio;
        let clipped = adv * ratio.clamp(1.0 - clip, 1.0 + clip);
        s.policy_loss -= unclipped.min(clipped) as f64;
        s.approx_kl += ((ratio - 1.0) - log_ratio) as f64;
        if (ratio - 1.0).abs() > clip {
            s.clipfrac += 1.0;
        }
        let g_ratio = if unclipped <= clipped {
            -adv * inv_b
        } else {
            0.0
        };
        let entropy: f32 = -logp.iter().map(|&lp| lp.exp() * lp).sum::<f32>();
        s.entropy += entropy as f64;
        for j in 0..na {
            let p = logp[j].exp();
            let onehot = if j == a { 1.0 } else { 0.0 };
            d[j] = g_ratio * ratio * (onehot - p);
            if ent_coef != 0.0 {
                // loss −= ent_coef · H / B
                d[j] += ent_coef * inv_b * p * (logp[j] + entropy);
            }
        }
    }
    s.policy_loss /= n as f64;
    s.entropy /= n as f64;
    s.approx_kl /= n as f64;
    s.clipfrac /= n as f64;
    s.policy_loss -= ent_coef as f64 * s.entropy;
    s
}

/// `vf_coef · mean((R − V)²)`'s gradient with respect to the values into `dvalues`; returns
/// the unscaled MSE.
pub fn value_loss(values: &[f32], returns: &[f32], vf_coef: f32, dvalues: &mut [f32]) -> f64 {
    let b = values.len() as f32;
    let mut mse = 0.0f64;
    for ((d, &v), &r) in dvalues.iter_mut().zip(values).zip(returns) {
        mse += ((v - r) as f64).powi(2);
        *d = vf_coef * 2.0 * (v - r) / b;
    }
    mse / b as f64
}

// ---------------------------------------------------------------------------------------------
// 7. Logging

/// TensorBoard scalars of a rollout: each task's mean return, their mean, and the learners'
/// mean losses. `n_available` (the environment's task count) sets the task tags' width.
/// Returns the mean return.
pub fn log_rollout(
    log: &mut RunLog,
    tasks: &[usize],
    n_available: usize,
    r: &RolloutReport,
) -> f64 {
    let width = n_available.saturating_sub(1).to_string().len().max(2);
    for (&task, &ret) in tasks.iter().zip(&r.returns) {
        if ret.is_finite() {
            let tag = format!("collect/return/task_{task:0width$}");
            log.scalar(&tag, ret, r.env_steps);
        }
    }
    let mean = finite_mean(&r.returns);
    log.scalar("collect/return_mean", mean, r.env_steps);
    let s = LossStats::mean(&r.stats);
    log.scalar("losses/value_loss", s.value_loss, r.env_steps);
    log.scalar("losses/policy_loss", s.policy_loss, r.env_steps);
    log.scalar("losses/approx_kl", s.approx_kl, r.env_steps);
    log.scalar("losses/clipfrac", s.clipfrac, r.env_steps);
    log.flush();
    mean
}

#[cfg(test)]
mod tests;
