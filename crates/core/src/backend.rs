//! The one place that turns a build feature into a compute device. No other crate names a
//! backend: they take the [`Device`] this returns.
//!
//! | build            | device                                                        |
//! |------------------|---------------------------------------------------------------|
//! | default          | burn `flex` (pure Rust CPU)                                   |
//! | `--features cuda`| burn CUDA, GPU 0 (`CCAD_CUDA_DEVICE` picks another)           |
//! | `--features tch` | libtorch; CPU unless `CCAD_DEVICE=cuda` (then GPU 0)          |

pub use burn::tensor::Device;

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
