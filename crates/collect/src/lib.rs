//! collect: one PPO learner per task (stable-baselines3's PPO with the config's values), whose
//! every transition is recorded with its compress marker into an HDF5 learning-history file
//! (DESIGN §4).
//!
//! - [`collect`]: the loop — rollouts, sampling, GAE, recording, logging, writing.
//! - [`ppo`], [`gae`], [`batch`], [`optim`]: PPO's losses and gradients, advantages, the
//!   learner's minibatches, Adam and clipping.
//! - [`net`]: the actor/critic MLPs in one flat parameter layout, orthogonal init.
//! - [`engine`]: where the learners' numbers are computed: [`native`] (plain Rust, rayon over
//!   learners, the fast path) or [`burn_learners`] (burn, learners stacked on a task axis).
//! - [`record`], [`report`]: history buffers with markers; the end-of-run table.

pub mod batch;
pub mod burn_learners;
pub mod collect;
pub mod engine;
pub mod gae;
pub mod gemm;
pub mod native;
pub mod net;
pub mod optim;
pub mod ppo;
pub mod record;
pub mod report;

pub use collect::{CollectOptions, bench, collect, same_collection, train_learners};
pub use engine::{Engine, EngineKind};
