//! train: distil learning histories into the AD transformer (DESIGN §6, §8).
//!
//! - [`trainer`]: [`train`] / [`train_at`] (the loop: warm-up + cosine schedule, TensorBoard
//!   scalars, held-out metrics, checkpoints, resume), [`IclProbe`] (the hook for in-context
//!   rollouts during training).
//! - [`learner`]: [`Learner`] (one optimiser step, shared with the benchmark) for either
//!   engine (`train.engine`): `native`, the model crate's plain-Rust CPU step with AdamW over
//!   flat vectors (the default on the CPU build), or `burn`, burn autodiff and burn's AdamW
//!   (the default on GPU builds).
//! - [`icl`]: [`icl::EvaluateProbe`], that hook over `evaluate::in_context_curve`.
//! - [`run`]: what training does to a run folder (whose format is `model::run_folder`):
//!   atomic rotating checkpoints, config compatibility, clean-up after a killed session.
//! - [`schedule`]: the learning rate of a step.
//! - [`optim`]: AdamW from the config (burn's, and [`optim::FlatAdamW`], its flat-vector
//!   copy), global-norm clipping, stable parameter ids.
//! - [`stats`]: peak memory and CPU time for `train_stats.json` and the benchmark.
//! - [`bench`]: speed and memory per (batch, context) setting, one process each.
//! - [`experiment`]: the experiment runner's statistics, per-cell metrics and output files.
//!
//! Choices where DESIGN is silent:
//! - Clipping is global over all gradients (PyTorch's `clip_grad_norm_`), not burn's
//!   per-tensor `GradientClipping::Norm`.
//! - The schedule warms up linearly over `warmup_steps` and decays by cosine to 0 at `steps`.
//! - All randomness is a function of `(train.seed, step)`: data order through the sampler's
//!   seekable batches, dropout through reseeding the device every step (burn) or through the
//!   step's dropout seed (native). Resuming therefore continues the same run exactly; a
//!   checkpoint stores only the step and seed. The two engines draw different dropout masks,
//!   so a run is continued by the engine that wrote its checkpoint (`auto` does that itself).
//! - A run folder refuses a config that differs in anything but `run::MAY_CHANGE` keys and the
//!   `[ppo]` / `[eval]` sections; `train.steps` may change (the schedule follows the new length).
//! - Steps logged after the last checkpoint of a killed session are logged again after the
//!   resume (TensorBoard shows both; the values are the same up to timing).

pub mod bench;
pub mod experiment;
pub mod icl;
pub mod learner;
pub mod optim;
mod record;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod trainer;

pub use learner::{GradNorm, Learner, StepOutput, held_out_metrics, step_seed};
pub use run::RunDirTraining;
pub use trainer::{
    IclProbe, IclResult, TrainOptions, TrainOutcome, train, train_at, train_with_probe,
};

/// The commit these binaries were built from (`+dirty`: with uncommitted changes to tracked
/// files; `unknown`: built outside a git checkout). Set by `build.rs`.
pub const BUILD_COMMIT: &str = env!("CCAD_BUILD_COMMIT");

#[cfg(test)]
mod build_tests {
    #[test]
    fn the_build_commit_is_a_commit_or_unknown() {
        let c = super::BUILD_COMMIT;
        let head = c.strip_suffix("+dirty").unwrap_or(c);
        assert!(
            c == "unknown" || (head.len() == 40 && head.chars().all(|ch| ch.is_ascii_hexdigit())),
            "{c}"
        );
    }
}
