//! In-context rollouts (DESIGN §7): every (task, seed) environment is stepped together, one
//! batched model call per step, with no weight updates.
//!
//! Each environment has its own [`RollingContext`], in the grammar of the spec's layout
//! (`ccad_core::context`). Every step hands each row's token list (context + query) and how
//! much of it is unchanged to one [`Decoder`], chosen once from [`Inference`]: a cache
//! ([`Inference::Native`], [`Inference::Cached`]) drops the old query, appends the new transition (and markers, when a region closes) and the new query, so a step
//! costs O(context), and a row whose context shifted (a region dropped) is rebuilt once;
//! [`Inference::Full`] re-runs every context from scratch each step, the reference's way, kept
//! to check the caches and to measure what they save.
//!
//! The layout says which tokens a step adds: the query objective appends `q(s_t)` after the
//! context and reads the action there; the dense objective (DESIGN §5a) appends one dense
//! token per step, and the context's last token is where the action is read.

use burn::tensor::Device;
use ccad_core::context::{CacheEvent as Change, RollingContext};
use ccad_core::env::{Environment, VecEnv};
use ccad_core::seed::{Rng, rng};
use ccad_core::tokens::{PrevTransition, token_type};
use model::{AdModel, Decoder, RowTokens, Token};

pub use crate::sampling::{Sampling, argmax, choose};
pub use crate::spec::{Inference, RolloutResult, RolloutSpec, RolloutStats, check_model};

/// A rollout in progress: [`Rollout::step`] until [`Rollout::done`], then [`Rollout::finish`].
/// [`rollout`] does all of it; the stepwise form lets a benchmark time phases.
pub struct Rollout<'a> {
    model: &'a AdModel,
    env: &'a dyn Environment,
    spec: RolloutSpec,
    envs: VecEnv<'a>,
    contexts: Vec<RollingContext>,
    rngs: Vec<Rng>,
    decoder: Box<dyn Decoder + 'a>,
    obs_dim: usize,
    /// `[n, obs_dim]`: observation each environment acts from.
    obs: Vec<i32>,
    prev_obs: Vec<i32>,
    next_obs: Vec<i32>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    /// `[n, n_actions]` and `[n, 3]`: logits at each row's query.
    action_logits: Vec<f32>,
    type_logits: Vec<f32>,
    episode_return: Vec<f32>,
    returns: Vec<Vec<f32>>,
    /// Per environment: steps taken in the current episode, and the step at which its return
    /// first reached each of the environment's milestones (0: not yet).
    episode_step: Vec<u32>,
    reached_at: Vec<Vec<u32>>,
    milestone_steps: Vec<Vec<Vec<u32>>>,
    actions: Vec<Vec<u8>>,
    stats: RolloutStats,
}

impl<'a> Rollout<'a> {
    /// Reset every environment and read the first queries. `model` must be in inference mode
    /// (`model.valid()`) on `device`.
    ///
    /// # Panics
    /// If [`check_model`] fails, or `spec` has no environments or mismatched lengths.
    pub fn new(
        model: &'a AdModel,
        env: &'a dyn Environment,
        spec: RolloutSpec,
        device: &Device,
    ) -> Self {
        if let Err((field, msg)) = check_model(model.config(), env, &*spec.layout) {
            panic!("model {field} {msg}");
        }
        let n = spec.n_envs();
        assert!(n > 0, "a rollout needs at least one environment");
        assert_eq!(spec.seeds.len(), n, "one seed per environment");
        assert!(
            spec.tasks.iter().all(|&t| t < env.n_tasks()),
            "task out of range"
        );
        let envs = VecEnv::new(env, spec.tasks.clone());
        let obs_dim = env.obs_dim();
        let mut obs = vec![0; n * obs_dim];
        envs.observe(&mut obs);
        // One generator per environment, keyed by (seed, task): an environment's actions do
        // not depend on which other environments share the batch.
        let rngs = spec
            .tasks
            .iter()
            .zip(&spec.seeds)
            .map(|(&task, &seed)| rng(seed, task as u64))
            .collect();
        let decoder = spec.inference.decoder(model, n, device);
        let mut r = Self {
            model,
            env,
            contexts: vec![RollingContext::new(spec.layout.clone()); n],
            spec,
            envs,
            rngs,
            decoder,
            obs_dim,
            prev_obs: obs.clone(),
            next_obs: obs.clone(),
            obs,
            rewards: vec![0.0; n],
            dones: vec![false; n],
            action_logits: Vec::new(),
            type_logits: Vec::new(),
            episode_return: vec![0.0; n],
            returns: vec![Vec::new(); n],
            episode_step: vec![0; n],
            reached_at: vec![vec![0; env.milestones().len()]; n],
            milestone_steps: vec![Vec::new(); n],
            actions: vec![Vec::new(); n],
            stats: RolloutStats::default(),
        };
        // Each environment's first token, where the layout has one (no previous transition).
        for i in 0..n {
            let s = &r.obs[i * obs_dim..(i + 1) * obs_dim];
            r.contexts[i].begin(s, env.n_actions());
        }
        let changes = vec![Change::Shifted; n]; // prefill = rebuild every row
        r.read_logits(&changes);
        r.stats = RolloutStats::default();
        r
    }

    pub fn n_envs(&self) -> usize {
        self.contexts.len()
    }

    /// Episodes every environment has finished.
    pub fn episodes_done(&self) -> usize {
        self.returns.iter().map(Vec::len).min().unwrap_or(0)
    }

    pub fn done(&self) -> bool {
        self.episodes_done() >= self.spec.episodes
    }

    pub fn contexts(&self) -> &[RollingContext] {
        &self.contexts
    }

    pub fn stats(&self) -> RolloutStats {
        self.stats
    }

    /// Act in every environment once and read the next queries' logits.
    pub fn step(&mut self) {
        let n = self.n_envs();
        let n_actions = self.env.n_actions();
        let mut actions = vec![0usize; n];
        let mut close = vec![false; n];
        for i in 0..n {
            let logits = &self.action_logits[i * n_actions..(i + 1) * n_actions];
            actions[i] = choose(logits, self.spec.sampling, &mut self.rngs[i]);
            let types = &self.type_logits[i * token_type::COUNT..(i + 1) * token_type::COUNT];
            close[i] = argmax(types) == token_type::CLOSE as usize;
        }
        self.prev_obs.copy_from_slice(&self.obs);
        self.envs.step(
            &actions,
            &mut self.next_obs,
            &mut self.obs,
            &mut self.rewards,
            &mut self.dones,
        );
        let d = self.obs_dim;
        let mut changes = Vec::with_capacity(n);
        for i in 0..n {
            self.actions[i].push(actions[i] as u8);
            self.episode_return[i] += self.rewards[i];
            self.episode_step[i] += 1;
            for (at, &(_, threshold)) in self.reached_at[i].iter_mut().zip(self.env.milestones()) {
                if *at == 0 && self.episode_return[i] >= threshold {
                    *at = self.episode_step[i];
                }
            }
            if self.dones[i] {
                if self.returns[i].len() < self.spec.episodes {
                    self.returns[i].push(self.episode_return[i]);
                    self.milestone_steps[i].push(self.reached_at[i].clone());
                }
                self.episode_return[i] = 0.0;
                self.episode_step[i] = 0;
                self.reached_at[i].fill(0);
            }
            let (s, s_next) = (
                &self.prev_obs[i * d..(i + 1) * d],
                &self.next_obs[i * d..(i + 1) * d],
            );
            let prev = PrevTransition {
                s,
                a: actions[i],
                r: self.rewards[i],
                s_next,
                done: self.dones[i],
            };
            // After an episode end `obs` is already the reset state.
            let s_now = &self.obs[i * d..(i + 1) * d];
            let before = self.contexts[i].regions_closed();
            changes.push(self.contexts[i].observe(prev, s_now, n_actions, close[i]));
            self.stats.regions_closed += self.contexts[i].regions_closed() - before;
        }
        self.stats.steps += 1;
        self.read_logits(&changes);
    }

    /// The query token of environment `i`'s current observation; `None` in the dense layout,
    /// whose context already ends with the token to act from.
    fn query(&self, i: usize) -> Option<Token> {
        let d = self.obs_dim;
        let ctx = &self.contexts[i];
        if !self.spec.layout.has_query() {
            return None;
        }
        ctx.query(self.env.state_index(&self.obs[i * d..(i + 1) * d]))
    }

    /// Bring the model's view up to date with the contexts (+ queries) and read the logits at
    /// every row's last token into `action_logits` / `type_logits`.
    fn read_logits(&mut self, changes: &[Change]) {
        let n = self.n_envs();
        let queries: Vec<Option<Token>> = (0..n).map(|i| self.query(i)).collect();
        let rows: Vec<RowTokens> = (0..n)
            .map(|i| {
                let context = self.contexts[i].tokens();
                RowTokens {
                    context,
                    last: queries[i].as_ref(),
                    // The previous query (if any) is replaced, so it is never counted.
                    unchanged: changes[i].unchanged(context.len()),
                    visibility: self.contexts[i].visibility(),
                }
            })
            .collect();
        let (a, t) = (self.model.config().n_actions, token_type::COUNT);
        self.action_logits.resize(n * a, 0.0);
        self.type_logits.resize(n * t, 0.0);
        // Counted from the contexts, not from the decoder: a row whose only cached token was
        // the replaced query starts over inside the decoder without its context shifting.
        self.stats.rows_rebuilt += changes.iter().filter(|c| **c == Change::Shifted).count();
        for r in &rows {
            let keys = |p: usize| r.visibility.keys_read(p);
            let last = keys(r.len() - 1);
            self.stats.reads += 1;
            self.stats.keys_read += last as u64;
            self.stats.keys_read_max = self.stats.keys_read_max.max(last);
            self.stats.tokens_decoded += (r.len() - r.unchanged) as u64;
            self.stats.keys_decoded += (r.unchanged..r.len()).map(keys).sum::<usize>() as u64;
        }
        self.decoder
            .decode(&rows, &mut self.action_logits, &mut self.type_logits);
    }

    /// Returns and actions (each environment's returns cut at `spec.episodes`).
    pub fn finish(self) -> RolloutResult {
        let optimal = self
            .spec
            .tasks
            .iter()
            .map(|&t| self.env.optimal_return(t))
            .collect();
        RolloutResult {
            tasks: self.spec.tasks,
            seeds: self.spec.seeds,
            optimal,
            returns: self.returns,
            milestone_steps: self.milestone_steps,
            actions: self.actions,
            stats: self.stats,
        }
    }
}

/// Roll `model` out as `spec` says. `on_episode(k)` runs each time every environment has
/// finished `k` episodes. Stops with `Error::Interrupted` after Ctrl-C.
pub fn rollout(
    model: &AdModel,
    env: &dyn Environment,
    spec: RolloutSpec,
    device: &Device,
    mut on_episode: impl FnMut(usize),
) -> ccad_core::Result<RolloutResult> {
    let mut r = Rollout::new(model, env, spec, device);
    let mut reported = 0;
    while !r.done() {
        r.step();
        let k = r.episodes_done();
        if k > reported {
            reported = k;
            on_episode(k);
            ccad_core::tb::check_interrupt()?;
        }
    }
    Ok(r.finish())
}
