//! train: distil learning histories into the AD transformer (DESIGN §6, §8).
//!
//! - [`trainer`]: [`train`] / [`train_at`] (the loop: AdamW, warm-up + cosine schedule, global
//!   gradient clipping, TensorBoard scalars, held-out metrics, checkpoints, resume),
//!   [`Learner`] (one optimiser step, shared with the benchmark), [`IclProbe`] (the hook for
//!   in-context rollouts during training).
//! - [`icl`]: [`icl::EvaluateProbe`], that hook over `evaluate::in_context_curve`.
//! - [`run`]: the run folder's layout, atomic rotating checkpoints, config compatibility,
//!   [`latest_checkpoint`] (where `evaluate` finds the model).
//! - [`schedule`]: the learning rate of a step.
//! - [`optim`]: AdamW from the config, global-norm clipping, stable parameter ids.
//! - [`stats`]: `train_stats.json` and peak memory.
//! - [`bench`]: speed and memory per (batch, context) setting, one process each.
//!
//! Choices where DESIGN is silent:
//! - Clipping is global over all gradients (PyTorch's `clip_grad_norm_`), not burn's
//!   per-tensor `GradientClipping::Norm`.
//! - The schedule warms up linearly over `warmup_steps` and decays by cosine to 0 at `steps`.
//! - All randomness is a function of `(train.seed, step)`: data order through the sampler's
//!   seekable batches, dropout through reseeding the device every step. Resuming therefore
//!   continues the same run exactly; a checkpoint stores only the step and seed.
//! - A run folder refuses a config that differs in anything but `run::MAY_CHANGE` keys and the
//!   `[ppo]` / `[eval]` sections; `train.steps` may change (the schedule follows the new length).
//! - Steps logged after the last checkpoint of a killed session are logged again after the
//!   resume (TensorBoard shows both; the values are the same up to timing).

pub mod bench;
pub mod icl;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod trainer;

pub use run::{CheckpointState, RunDir, latest_checkpoint, list_checkpoints};
pub use stats::TrainStats;
pub use trainer::{
    IclProbe, IclResult, Learner, StepOutput, TrainOptions, TrainOutcome, held_out_metrics, train,
    train_at,
};
