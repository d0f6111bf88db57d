//! ccad-core: what every stage of the pipeline shares.
//!
//! - [`config`]: the experiment config (TOML), validated, with one-line errors.
//! - [`env`]: environments behind one trait, stepped in batches.
//! - [`history`]: the learning-history HDF5 schema, writer and reader.
//! - [`tokens`]: compress markers and token types.
//! - [`backend`]: the one place that picks the compute device.
//! - [`kernels`]: flat `f32` kernels (matrix products, norms, activations, dropout, SIMD
//!   dispatch) for the hand-written numeric paths.
//! - [`tb`], [`progress`]: TensorBoard logs, Ctrl-C handling, progress bars.
//! - [`atomic`], [`seed`], [`error`], [`cli`]: output safety, randomness, errors, arguments.

pub mod atomic;
pub mod backend;
pub mod cli;
pub mod config;
pub mod env;
pub mod error;
pub mod history;
pub mod kernels;
pub mod progress;
pub mod seed;
pub mod tb;
pub mod tokens;

pub use burn;
pub use config::Config;
pub use error::{Error, Result};
