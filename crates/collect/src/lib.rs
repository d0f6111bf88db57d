//! collect: one PPO learner per task (stable-baselines3's PPO with the config's values), whose
//! every transition is recorded with its compress marker into an HDF5 learning-history file
//! (DESIGN §4).
//!
//! - [`ppo`]: the algorithm top to bottom — rollout, GAE, epochs × minibatches, clipped
//!   losses, clip, Adam step, logging — and the native engine (plain Rust, rayon over
//!   learners, the fast path).
//! - [`net`]: the actor/critic MLPs in one flat parameter layout, orthogonal init, their
//!   forward and backward passes.
//! - [`record`]: history buffers with markers.
//! - [`burn_learners`]: the checked alternative engine on burn (learners stacked on a task
//!   axis); `--engine` picks one through `ccad_core::backend::Engine`.
//! - [`collect`](mod@collect), [`report`]: the stage (train, log, write the dataset) and its
//!   end-of-run table.

pub mod burn_learners;
pub mod collect;
pub mod net;
pub mod ppo;
pub mod record;
pub mod report;

pub use collect::{CollectOptions, bench, collect, same_collection, train_learners};
pub use ppo::Engine;
