//! evaluate: in-context rollouts of a trained AD transformer with the rolling two-region
//! context (DESIGN §7–§8). No weight is updated: the model improves, or not, from its context.
//!
//! - [`RollingContext`], [`Layout`], [`CacheEvent`] (from `ccad_core::context`, the token
//!   grammar): one environment's context as plain data, in the grammar of the context mode ×
//!   objective the model was trained with, and what each step did to it.
//! - [`rollout`]: [`rollout`]`(model, env, spec, device, on_episode)`: all (task × seed)
//!   environments in one batch, one [`model::Decoder`] call per step: burn's key/value cache
//!   ([`Inference::Cached`]), the model's native layers with their own cache
//!   ([`Inference::Native`], [`model::native::NativeDecoder`]), or a full re-run
//!   ([`Inference::Full`]); [`Rollout`] steps it by hand.
//! - [`summary`]: curves, first/last-10 means, per-task table, JSON.
//! - [`npy`]: `eval_result.npy` (NumPy format 1.0, float32).
//! - [`run`]: a run folder → checkpoint, config, task split → outputs in `runs/<run>/eval/`.
//! - [`bench`]: cached vs full re-run env-steps/s (`eval_bench` binary).
//!
//! For periodic probes during training, [`in_context_curve`] is the one call:
//! ```no_run
//! # fn f(model: &model::AdModel, cfg: &ccad_core::Config) -> ccad_core::Result<()> {
//! let device = ccad_core::backend::device();
//! // `model` in inference mode (`.valid()`) on `device`.
//! let curve = evaluate::in_context_curve(model, cfg, &[3, 17], 10, &device)?;
//! assert_eq!(curve.len(), 10); // mean return per episode index
//! # Ok(()) }
//! ```

pub mod bench;
pub mod npy;
pub mod plot_style;
pub mod rollout;
pub mod run;
pub mod sampling;
pub mod spec;
pub mod summary;

pub use ccad_core::context::{CacheEvent, Layout, RollingContext, dense_token};
pub use rollout::{
    Inference, Rollout, RolloutResult, RolloutSpec, RolloutStats, Sampling, check_model, rollout,
};
pub use summary::Summary;

use burn::tensor::Device;
use ccad_core::Config;
use model::AdModel;

/// Mean return per episode index (episode 0 first) of `model` on `tasks`, each with
/// `cfg.eval.seeds` seeds, for `episodes` episodes, with the config's context, token layout
/// (`model.objective`), sampling and boundary. `model` must be in inference mode (`model.valid()`) on `device`, and fit the
/// config's environment ([`check_model`]; panics otherwise).
pub fn in_context_curve(
    model: &AdModel,
    cfg: &Config,
    tasks: &[usize],
    episodes: usize,
    device: &Device,
) -> ccad_core::Result<Vec<f64>> {
    let env = ccad_core::env::make_env(&cfg.env);
    let mut spec = RolloutSpec::from_config(tasks, cfg);
    spec.episodes = episodes;
    let result = rollout(model, env.as_ref(), spec, device, |_| {})?;
    Ok(result.mean_curve())
}
