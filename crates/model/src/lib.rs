//! model: the token-type transformer of compressed-context Algorithm Distillation
//! (DESIGN §5–§6), shared by `train` and `evaluate`.
//!
//! - [`AdModelConfig`]: the `[model]` section plus the data's dimensions ([`DataDims`]); JSON
//!   on disk.
//! - [`AdModel`]: token layout (transition Linear, query-state embedding, learned `<c>`/`</c>`,
//!   token-type and position embeddings) → causal pre-norm encoder → action and token-type
//!   heads at every position.
//!   - [`AdModel::forward`]`(&TokenBatch, &Device) -> Logits<3>`: per-position logits.
//!   - [`AdModel::loss`]`(&TokenBatch, &Device) -> Loss`: `CE(action) + w · CE(type)` over
//!     labelled positions (label != `IGNORE`); [`Loss::metrics`] reads losses and accuracies.
//!   - [`AdModel::save`] / [`AdModel::load`]: `model.json` + `model.safetensors` in a folder.
//! - [`KvCache`]: evaluation's incremental inference for many independent contexts:
//!   [`KvCache::prefill`], [`KvCache::rebuild`] (rows whose context shifted),
//!   [`KvCache::append`] / [`KvCache::append_rows`] (one token per row),
//!   [`KvCache::truncate`].
//! - [`Decoder`]: the one interface evaluation reads logits through, with three
//!   implementations: [`BurnCacheDecoder`] (over [`KvCache`]), [`native::NativeDecoder`]
//!   (plain Rust on the CPU) and [`FullRerun`] (burn forward over whole contexts).
//! - [`Token`], [`batch_from_tokens`]: contexts as evaluation holds them.
//! - [`native::NativeNet`]: the same model's layers in plain Rust over one flat parameter
//!   vector, each with its forward and backward side by side: the training step (forward,
//!   loss, backward) for CPU training, and the KV-cached [`native::NativeDecoder`]; converts
//!   to and from [`AdModel`] and is tested gradient by gradient and logit by logit against burn.
//! - [`run_folder`]: the run folder's format (file names, checkpoint listing, `state.json`,
//!   `train_stats.json`), written by `train`, read by `evaluate` and its report.
//!
//! Input contract: [`ccad_core::tokens::TokenBatch`], left-aligned and right-padded.
//! Padding never reaches a real position (causal attention over left-aligned rows) nor the
//! loss (weight 0). Devices come from `ccad_core::backend`; train on
//! `autodiff_device()`, evaluate with `model.valid()` on `device()`.
//!
//! ```no_run
//! use burn::module::Module;
//! use ccad_core::{backend, config::ModelConfig};
//! use model::{AdModelConfig, KvCache, Token};
//!
//! let config = AdModelConfig::new(&ModelConfig::default(), 10, 81, 5, 163);
//! let model = config.init(&backend::device()).valid();
//! let mut cache = KvCache::new(&model, 2, &backend::device());
//! cache.prefill(&model, &[vec![Token::Open, Token::Query(40)], vec![Token::Query(3)]]);
//! cache.truncate(0, 1); // drop the query, then append what replaces it
//! let logits = cache.append(&model, &[Token::Close, Token::Query(4)]);
//! let (action, _token_type) = logits.to_host(); // [2 * 5] row-major
//! ```

mod bias;
mod cache;
mod chain;
mod checkpoint;
mod config;
pub mod decode;
mod model;
pub mod native;
pub mod run_folder;
mod token;

pub use cache::{KvCache, StepLogits};
pub use config::{AdModelConfig, DataDims};
pub use decode::{BurnCacheDecoder, Decoder, FullRerun, RowTokens};
pub use model::{AdModel, Logits, Loss, LossMetrics};
// A model folder's files, under the names `AdModel::save` has always exported them as.
pub use run_folder::{MODEL_CONFIG_FILE as CONFIG_FILE, WEIGHTS_FILE};
pub use token::{Token, batch_from_tokens};

#[cfg(test)]
mod memory_fixture;
#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod tests;
