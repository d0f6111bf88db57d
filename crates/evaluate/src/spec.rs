//! What a rollout is asked to do and what it gives back: the engine that reads the logits
//! ([`Inference`]), the environments and their seeds ([`RolloutSpec`]), the returns and
//! actions ([`RolloutResult`]), and whether a model fits an environment ([`check_model`]).

use burn::tensor::Device;
use ccad_core::backend::{Engine, Stage};
use ccad_core::config::{Config, EvalConfig};
use ccad_core::context::{ContextLayout, Layout};
use ccad_core::env::Environment;
use model::native::NativeDecoder;
use model::{AdModel, AdModelConfig, BurnCacheDecoder, Decoder, FullRerun};

use crate::sampling::Sampling;

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
    /// The cache of `engine` (`--engine`), resolved for [`Stage::Evaluate`]: the native
    /// decoder on CPU builds, burn's cache on GPU builds.
    pub fn for_engine(engine: Engine) -> Self {
        match engine.resolve(Stage::Evaluate) {
            Engine::Burn => Inference::Cached,
            _ => Inference::Native,
        }
    }

    /// The engine this choice computes with (a full re-run is burn's forward pass).
    pub fn engine(self) -> Engine {
        match self {
            Inference::Native => Engine::Native,
            Inference::Cached | Inference::Full => Engine::Burn,
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
    /// of a task is `eval.seed + k`. Episodes, sampling from `eval`; the cache `auto` picks
    /// ([`Inference::for_engine`]).
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
            inference: Inference::for_engine(Engine::Auto),
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
    /// Logit reads (one per environment per step): each is where an action is taken.
    pub reads: u64,
    /// Keys the read tokens attended to, summed over reads, and the most in one read.
    pub keys_read: u64,
    pub keys_read_max: usize,
    /// Tokens a key/value cache had to compute (new or rebuilt), and the keys they attended
    /// to in all: what [`model::AdModelConfig::decode_flops`] counts.
    pub tokens_decoded: u64,
    pub keys_decoded: u64,
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
    /// `[n_envs][episodes][milestones]`: the step of the episode (from 1) at which its return
    /// first reached each of the environment's milestones (`Environment::milestones`, e.g.
    /// Key-to-Door's door), 0 where it did not; empty where not recorded.
    pub milestone_steps: Vec<Vec<Vec<u32>>>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
