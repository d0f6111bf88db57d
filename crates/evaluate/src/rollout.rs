//! In-context rollouts (DESIGN §7): every (task, seed) environment is stepped together, one
//! batched model call per step, with no weight updates.
//!
//! Each environment has its own [`RollingContext`], in the grammar of the spec's [`Layout`]
//! (`ccad_core::context`). Every step hands each row's token list (context + query) and how
//! much of it is unchanged to one [`Decoder`], chosen once from [`Inference`]: a cache ([`Inference::Native`], [`Inference::Cached`]) drops the old query,
//! appends the new transition (and markers, when a region closes) and the new query, so a step
//! costs O(context), and a row whose context shifted (a region dropped) is rebuilt once;
//! [`Inference::Full`] re-runs every context from scratch each step, the reference's way, kept
//! to check the caches and to measure what they save.
//!
//! The layout says which tokens a step adds: the query objective appends `q(s_t)` after the
//! context and reads the action there; the dense objective (DESIGN §5a) appends one dense
//! token per step, and the context's last token is where the action is read.

use burn::tensor::Device;
use ccad_core::config::{Config, EvalConfig};
use ccad_core::context::{CacheEvent as Change, ContextLayout, Layout, RollingContext};
use ccad_core::env::{Environment, VecEnv};
use ccad_core::seed::{Rng, rng};
use ccad_core::tokens::{PrevTransition, token_type};
use model::native::NativeDecoder;
use model::{AdModel, AdModelConfig, BurnCacheDecoder, Decoder, FullRerun, RowTokens, Token};
use rand::Rng as _;

/// How an action is chosen from the action logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Argmax (ties: the lowest action).
    Greedy,
    /// Sample from `softmax(logits / temperature)`.
    Temperature(f64),
}

impl Sampling {
    pub fn from_config(eval: &EvalConfig) -> Self {
        if eval.greedy {
            Sampling::Greedy
        } else {
            Sampling::Temperature(eval.temperature)
        }
    }
}

/// How the model reads the contexts each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inference {
    /// The model's [`model::KvCache`] on the burn device: append the new tokens, rebuild rows
    /// whose context shifted.
    Cached,
    /// The same on the CPU through [`NativeDecoder`], the model's native layers: far fewer
    /// fixed costs per token than burn's small tensor operations.
    Native,
    /// A full causal pass over every context every step (the reference's way).
    Full,
}

impl Inference {
    /// [`Inference::Native`] where the model runs on the CPU anyway, [`Inference::Cached`] on
    /// a GPU build (`cuda`, or `tch` with `CCAD_DEVICE=cuda`).
    pub fn for_backend() -> Self {
        match ccad_core::backend::backend_name() {
            "cuda" | "tch-cuda" => Inference::Cached,
            _ => Inference::Native,
        }
    }

    /// The [`Decoder`] of this choice for `rows` contexts; `model` in inference mode on
    /// `device`.
    ///
    /// # Panics
    /// For [`Inference::Native`], if the model's layout is not the one the native layers read.
    pub fn decoder<'m>(
        self,
        model: &'m AdModel,
        rows: usize,
        device: &Device,
    ) -> Box<dyn Decoder + 'm> {
        match self {
            Inference::Cached => Box::new(BurnCacheDecoder::new(model, rows, device)),
            Inference::Native => Box::new(
                NativeDecoder::new(model, rows).unwrap_or_else(|e| panic!("native inference: {e}")),
            ),
            Inference::Full => Box::new(FullRerun::new(model, device)),
        }
    }
}

/// What to roll out.
#[derive(Debug, Clone)]
pub struct RolloutSpec {
    /// Task of each environment.
    pub tasks: Vec<usize>,
    /// Sampling seed of each environment.
    pub seeds: Vec<u64>,
    /// Episodes each environment plays.
    pub episodes: usize,
    pub sampling: Sampling,
    /// Context mode × objective the model was trained with.
    pub layout: Layout,
    pub inference: Inference,
}

impl RolloutSpec {
    /// `tasks × eval.seeds` environments, task-major (task 0 seed 0, task 0 seed 1, …); seed `k`
    /// of a task is `eval.seed + k`. Episodes, sampling from `eval`; a cache
    /// ([`Inference::for_backend`]).
    pub fn new(tasks: &[usize], eval: &EvalConfig, layout: Layout) -> Self {
        let mut env_tasks = Vec::with_capacity(tasks.len() * eval.seeds);
        let mut seeds = Vec::with_capacity(tasks.len() * eval.seeds);
        for &task in tasks {
            for k in 0..eval.seeds as u64 {
                env_tasks.push(task);
                seeds.push(eval.seed + k);
            }
        }
        Self {
            tasks: env_tasks,
            seeds,
            episodes: eval.episodes,
            sampling: Sampling::from_config(eval),
            layout,
            inference: Inference::for_backend(),
        }
    }

    /// [`Self::new`] with the layout the config trained with ([`Layout::from_config`]).
    pub fn from_config(tasks: &[usize], cfg: &Config) -> Self {
        Self::new(tasks, &cfg.eval, Layout::from_config(cfg))
    }

    pub fn n_envs(&self) -> usize {
        self.tasks.len()
    }
}

/// Counters of a rollout's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RolloutStats {
    /// Batched steps (each steps every environment once).
    pub steps: usize,
    /// Cache rows rebuilt because their context shifted.
    pub rows_rebuilt: usize,
    /// Regions closed, all environments together.
    pub regions_closed: usize,
}

/// Returns and actions of a finished rollout. Environment `i` ran `tasks[i]` with `seeds[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutResult {
    pub tasks: Vec<usize>,
    pub seeds: Vec<u64>,
    /// Optimal return of each environment's task.
    pub optimal: Vec<f32>,
    /// `[n_envs][episodes]`: each episode's return.
    pub returns: Vec<Vec<f32>>,
    /// `[n_envs][steps]`: every action taken.
    pub actions: Vec<Vec<u8>>,
    pub stats: RolloutStats,
}

impl RolloutResult {
    pub fn n_envs(&self) -> usize {
        self.returns.len()
    }

    pub fn n_episodes(&self) -> usize {
        self.returns.first().map_or(0, Vec::len)
    }

    /// Mean return over environments, per episode index.
    pub fn mean_curve(&self) -> Vec<f64> {
        let n = self.n_envs().max(1) as f64;
        (0..self.n_episodes())
            .map(|k| self.returns.iter().map(|r| r[k] as f64).sum::<f64>() / n)
            .collect()
    }

    /// Returns as one row-major `[n_envs, n_episodes]` buffer (the `.npy` layout).
    pub fn returns_flat(&self) -> Vec<f32> {
        self.returns.concat()
    }
}

/// Whether `model` can act in `env` with `layout`. Error: (field of the model config,
/// message).
pub fn check_model(
    model: &AdModelConfig,
    env: &dyn Environment,
    layout: &dyn ContextLayout,
) -> Result<(), (&'static str, String)> {
    if model.n_actions != env.n_actions() {
        return Err((
            "n_actions",
            format!(
                "is {}, {} has {} actions",
                model.n_actions,
                env.name(),
                env.n_actions()
            ),
        ));
    }
    if model.n_states != env.n_states() {
        return Err((
            "n_states",
            format!(
                "is {}, {} has {} states",
                model.n_states,
                env.name(),
                env.n_states()
            ),
        ));
    }
    let (feat, what) = (
        layout.feat_dim(env.obs_dim(), env.n_actions()),
        layout.feature_noun(),
    );
    if model.feat_dim != feat {
        return Err((
            "feat_dim",
            format!(
                "is {}, {} {what} have {feat} features",
                model.feat_dim,
                env.name()
            ),
        ));
    }
    if model.max_len < layout.max_len() {
        return Err((
            "max_len",
            format!(
                "is {}, the {} context needs {} positions",
                model.max_len,
                layout.context_name(),
                layout.max_len()
            ),
        ));
    }
    Ok(())
}

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
            if self.dones[i] {
                if self.returns[i].len() < self.spec.episodes {
                    self.returns[i].push(self.episode_return[i]);
                }
                self.episode_return[i] = 0.0;
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
                let unchanged = match changes[i] {
                    Change::Shifted => 0,
                    // The previous query (if any) is replaced, so it is not counted.
                    Change::Appended(k) => context.len() - k,
                };
                RowTokens {
                    context,
                    last: queries[i].as_ref(),
                    unchanged,
                }
            })
            .collect();
        let (a, t) = (self.model.config().n_actions, token_type::COUNT);
        self.action_logits.resize(n * a, 0.0);
        self.type_logits.resize(n * t, 0.0);
        self.stats.rows_rebuilt +=
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

/// Index of the largest value (the first of equals).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// An action from logits: argmax, or a draw from `softmax(logits / temperature)` by inverting
/// the cumulative distribution at one uniform number.
pub fn choose(logits: &[f32], sampling: Sampling, rng: &mut Rng) -> usize {
    match sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::Temperature(temp) => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let inv = 1.0 / temp;
            let weights: Vec<f64> = logits
                .iter()
                .map(|&x| ((x - max) as f64 * inv).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut u = rng.random::<f64>() * total;
            for (i, w) in weights.iter().enumerate() {
                if u < *w {
                    return i;
                }
                u -= w;
            }
            // Rounding left `u` past the last weight: the last action with any weight.
            weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, -1.0]), 1);
        assert_eq!(argmax(&[3.0]), 0);
    }

    #[test]
    fn sampling_follows_the_tempered_softmax() {
        // logits ln(1), ln(3) → probabilities 1/4, 3/4 at temperature 1; at temperature 2 the
        // logits halve: weights 1, sqrt(3) → 1/(1 + 1.732) = 0.366 for action 0.
        let logits = [0.0f32, 3f32.ln()];
        let mut r = rng(7, 0);
        let n = 20_000;
        let zeros = (0..n)
            .filter(|_| choose(&logits, Sampling::Temperature(1.0), &mut r) == 0)
            .count();
        assert!((zeros as f64 / n as f64 - 0.25).abs() < 0.015, "{zeros}");
        let zeros = (0..n)
            .filter(|_| choose(&logits, Sampling::Temperature(2.0), &mut r) == 0)
            .count();
        assert!((zeros as f64 / n as f64 - 0.366).abs() < 0.015, "{zeros}");
        assert_eq!(choose(&logits, Sampling::Greedy, &mut r), 1);
        // A huge logit gap: the other action's weight underflows to exactly 0.
        assert!((0..100).all(|_| choose(&[0.0, 1e4], Sampling::Temperature(1.0), &mut r) == 1));
    }

    #[test]
    fn spec_is_task_major_with_consecutive_seeds() {
        let eval = EvalConfig {
            seeds: 2,
            seed: 10,
            episodes: 7,
            greedy: true,
            ..EvalConfig::default()
        };
        let ctx = Layout::new(ccad_core::context::WindowQuery::new(4));
        let s = RolloutSpec::new(&[5, 3], &eval, ctx);
        assert_eq!(s.tasks, vec![5, 5, 3, 3]);
        assert_eq!(s.seeds, vec![10, 11, 10, 11]);
        assert_eq!((s.episodes, s.sampling), (7, Sampling::Greedy));
    }
}
