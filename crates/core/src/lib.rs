//! ccad-core: what every stage of the pipeline shares.
//!
//! - [`config`]: the experiment config (TOML), validated, with one-line errors.
//! - [`env`]: environments behind one trait, stepped in batches.
//! - [`history`]: the learning-history HDF5 schema, writer and reader.
//! - [`context`]: the token grammar: markers, token kinds, features, and per context mode ×
//!   objective its training sequences and rolling evaluation context ([`tokens`] is
//!   `context::tokens`, re-exported under its old path).
//! - [`backend`]: the one place that picks the compute device.
//! - [`kernels`]: flat `f32` kernels (matrix products, norms, activations, dropout, SIMD
//!   dispatch) for the hand-written numeric paths.
//! - [`tb`], [`progress`]: TensorBoard logs, Ctrl-C handling, progress bars.
//! - [`atomic`], [`seed`], [`error`], [`cli`]: output safety, randomness, errors, arguments.

pub mod atomic;
pub mod backend;
pub mod cli;
pub mod config;
pub mod context;
pub mod env;
pub mod error;
pub mod hash;
pub mod history;
pub mod kernels;
pub mod lock;
pub mod progress;
pub mod seed;
pub mod tb;

pub use burn;

pub use config::Config;
pub use context::tokens;
pub use error::{Error, Result};
