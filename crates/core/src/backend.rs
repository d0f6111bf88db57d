//! The one place that turns a build feature into a compute device, and that picks the engine
//! each binary computes with. No other crate names a backend: they take the [`Device`] this
//! returns and the [`Engine`] [`Engine::resolve`] gives.
//!
//! | build            | device                                                        |
//! |------------------|---------------------------------------------------------------|
//! | default          | burn `flex` (pure Rust CPU)                                   |
//! | `--features cuda`| burn CUDA, GPU 0 (`CCAD_CUDA_DEVICE` picks another)           |
//! | `--features tch` | libtorch; CPU unless `CCAD_DEVICE=cuda` (then GPU 0)          |

pub use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// What computes a stage's numbers: `--engine` of collect, train and evaluate (and
/// `train.engine`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The faster engine of this stage on this build, as the benchmarks measured it (the
    /// table in [`Engine::resolve`] and the README).
    #[default]
    Auto,
    /// Plain Rust on the CPU: collect's PPO learners (rayon over learners), the model's native
    /// training step, its KV-cached native decoder.
    Native,
    /// burn on the build's backend: learners stacked on a task axis, burn autodiff with burn's
    /// AdamW, burn's key/value cache.
    Burn,
}

/// A binary whose engine is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Collect,
    Train,
    Evaluate,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::Native => "native",
            Engine::Burn => "burn",
        }
    }

    /// `Auto` made concrete for `stage` on this build; a named engine stays as it is.
    ///
    /// | stage    | CPU builds (`flex`, `tch` on the CPU) | GPU builds (`cuda`, `tch` + CUDA) |
    /// |----------|---------------------------------------|-----------------------------------|
    /// | collect  | native                                | native (burn on a GPU unmeasured) |
    /// | train    | native on `flex`, burn on `tch`       | burn                              |
    /// | evaluate | native                                | burn (its key/value cache)        |
    pub fn resolve(self, stage: Stage) -> Engine {
        if self != Engine::Auto {
            return self;
        }
        let backend = backend_name();
        match stage {
            // Many tiny per-learner products (`collect --bench --engine E` compares them); no
            // GPU build has been measured, so native there too.
            Stage::Collect => Engine::Native,
            Stage::Train if backend == "flex" => Engine::Native,
            Stage::Train => Engine::Burn,
            Stage::Evaluate if is_gpu(backend) => Engine::Burn,
            Stage::Evaluate => Engine::Native,
        }
    }
}

fn is_gpu(backend: &str) -> bool {
    matches!(backend, "cuda" | "tch-cuda")
}

/// Device for inference and data work (no autodiff graph).
pub fn device() -> Device {
    select()
}

/// Device whose tensors record an autodiff graph, for training.
pub fn autodiff_device() -> Device {
    select().autodiff()
}

/// Human-readable backend name for logs and run records.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "tch") {
        if wants_cuda() { "tch-cuda" } else { "tch-cpu" }
    } else {
        "flex"
    }
}

#[allow(dead_code)]
fn wants_cuda() -> bool {
    std::env::var("CCAD_DEVICE").is_ok_and(|v| v.eq_ignore_ascii_case("cuda"))
}

#[cfg(feature = "cuda")]
fn select() -> Device {
    let index = std::env::var("CCAD_CUDA_DEVICE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    Device::cuda(index)
}

#[cfg(all(feature = "tch", not(feature = "cuda")))]
#[allow(deprecated)] // burn-tch is the libtorch backend the project asked for
fn select() -> Device {
    if wants_cuda() {
        Device::libtorch_cuda(0)
    } else {
        Device::libtorch()
    }
}

#[cfg(not(any(feature = "cuda", feature = "tch")))]
fn select() -> Device {
    Device::flex()
}

/// Seed the backend's own generator (dropout masks, random init).
pub fn seed_device(device: &Device, seed: u64) {
    device.seed(seed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_engine_is_kept_and_auto_resolves_per_stage() {
        for stage in [Stage::Collect, Stage::Train, Stage::Evaluate] {
            assert_eq!(Engine::Native.resolve(stage), Engine::Native);
            assert_eq!(Engine::Burn.resolve(stage), Engine::Burn);
            assert_ne!(Engine::Auto.resolve(stage), Engine::Auto);
        }
        assert_eq!(Engine::Auto.resolve(Stage::Collect), Engine::Native);
        if backend_name() == "flex" {
            assert_eq!(Engine::Auto.resolve(Stage::Train), Engine::Native);
            assert_eq!(Engine::Auto.resolve(Stage::Evaluate), Engine::Native);
        }
    }
}
