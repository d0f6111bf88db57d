//! The one place that turns a build feature into a compute device, and that picks the engine
//! each binary computes with. No other crate names a backend: they take the [`Device`] this
//! returns and the [`Engine`] [`Engine::resolve`] gives.
//!
//! | build            | device                                                        |
//! |------------------|---------------------------------------------------------------|
//! | default          | burn `flex` (pure Rust CPU)                                   |
//! | `--features cuda`| burn CUDA, GPU 0 (`CCAD_CUDA_DEVICE` picks another)           |
//! | `--features tch` | libtorch; CPU unless `CCAD_DEVICE=cuda` (then GPU 0)          |
//! | `--features wgpu`| burn wgpu (Vulkan, Metal, DX12): the adapter `CCAD_WGPU_DEVICE` names, |
//! |                  | else wgpu's default (a high-power GPU first; a CPU driver such as lavapipe last) |
//!
//! A binary calls [`init`] first: it makes the device (so a missing GPU driver or a bad
//! `CCAD_WGPU_DEVICE` is a one-line error before any work) and says which device it is.

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

/// [`init`] for a binary about to compute with burn: on GPU builds it prints which device
/// (`device: …` on stderr).
pub fn start_device() -> Result<(), crate::Error> {
    let about = init()?;
    if is_gpu_build() {
        eprintln!("device: {about}");
    }
    Ok(())
}

/// Whether this build computes on a GPU (or a GPU API: wgpu on a CPU driver counts).
pub fn is_gpu_build() -> bool {
    is_gpu(backend_name())
}

fn is_gpu(backend: &str) -> bool {
    matches!(backend, "cuda" | "tch-cuda" | "wgpu")
}

/// Make the build's device once and describe it (`flex (CPU)`, the wgpu adapter's name and
/// graphics API, ...); the error is one line (no adapter, a bad `CCAD_WGPU_DEVICE`).
/// [`device`] and [`autodiff_device`] return this device afterwards. On GPU builds the
/// binaries print the description.
pub fn init() -> Result<String, crate::Error> {
    #[cfg(feature = "wgpu")]
    {
        wgpu::get()
            .map(|(_, about)| about.clone())
            .map_err(crate::Error::Device)
    }
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = select();
        Ok(match backend_name() {
            "flex" => "flex (CPU)".to_string(),
            "cuda" => format!("cuda:{}", cuda_index()),
            other => other.to_string(),
        })
    }
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
    } else if cfg!(feature = "wgpu") {
        "wgpu"
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

#[allow(dead_code)]
fn cuda_index() -> usize {
    std::env::var("CCAD_CUDA_DEVICE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
}

#[cfg(feature = "cuda")]
fn select() -> Device {
    Device::cuda(cuda_index())
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
fn select() -> Device {
    match wgpu::get() {
        Ok((device, _)) => device.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The wgpu device, made once per process (burn's wgpu runtime can be set up only once).
#[cfg(feature = "wgpu")]
mod wgpu {
    use std::sync::OnceLock;

    use burn::tensor::Device;

    /// Environment variable naming the adapter.
    pub const VAR: &str = "CCAD_WGPU_DEVICE";

    static DEVICE: OnceLock<Result<(Device, String), String>> = OnceLock::new();

    pub fn get() -> Result<&'static (Device, String), String> {
        DEVICE
            .get_or_init(|| {
                let value = std::env::var(VAR).unwrap_or_default();
                let kind = super::parse_wgpu_device(&value).map_err(|e| format!("{VAR}: {e}"))?;
                let (device, setup) = Device::wgpu_options()
                    .device_kind(kind.clone())
                    .init_with_setup()
                    .map_err(|e| {
                        let e = e.to_string().replace('\n', " ");
                        format!("wgpu: no {kind:?} adapter could be set up ({e}); is a Vulkan or Metal driver installed? ({VAR} picks the adapter)")
                    })?;
                let info = setup.adapter.get_info();
                let about = format!("wgpu: {} ({:?}, {:?})", info.name, info.backend, info.device_type);
                Ok((device, about))
            })
            .as_ref()
            .map_err(|e| e.clone())
    }
}

/// `CCAD_WGPU_DEVICE`: `default` or empty (wgpu's choice), `discrete[:N]`, `integrated[:N]`,
/// `virtual[:N]` (the N-th adapter of that kind, 0 by default) or `cpu` (a CPU driver such as
/// lavapipe).
#[allow(dead_code)]
fn parse_wgpu_device(value: &str) -> Result<burn::tensor::DeviceKind, String> {
    use burn::tensor::DeviceKind;
    let value = value.trim().to_ascii_lowercase();
    let (name, index) = match value.split_once(':') {
        Some((name, index)) => {
            let index = index
                .parse::<usize>()
                .map_err(|_| format!("'{value}': the adapter index must be a number"))?;
            (name, Some(index))
        }
        None => (value.as_str(), None),
    };
    let i = index.unwrap_or(0);
    match (name, index) {
        ("" | "default", None) => Ok(DeviceKind::DefaultDevice),
        ("cpu", None) => Ok(DeviceKind::Cpu),
        ("discrete", _) => Ok(DeviceKind::DiscreteGpu(i)),
        ("integrated", _) => Ok(DeviceKind::IntegratedGpu(i)),
        ("virtual", _) => Ok(DeviceKind::VirtualGpu(i)),
        _ => Err(format!(
            "'{value}' is not an adapter: use default, discrete[:N], integrated[:N], virtual[:N] or cpu"
        )),
    }
}

#[cfg(all(feature = "tch", not(any(feature = "cuda", feature = "wgpu"))))]
#[allow(deprecated)] // burn-tch is the libtorch backend the project asked for
fn select() -> Device {
    if wants_cuda() {
        Device::libtorch_cuda(0)
    } else {
        Device::libtorch()
    }
}

#[cfg(not(any(feature = "cuda", feature = "tch", feature = "wgpu")))]
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
        if backend_name() == "wgpu" {
            assert_eq!(Engine::Auto.resolve(Stage::Train), Engine::Burn);
            assert_eq!(Engine::Auto.resolve(Stage::Evaluate), Engine::Burn);
        }
    }

    #[test]
    fn wgpu_adapter_names_parse_and_bad_ones_are_refused() {
        use burn::tensor::DeviceKind;
        for (value, want) in [
            ("", DeviceKind::DefaultDevice),
            ("default", DeviceKind::DefaultDevice),
            (" CPU ", DeviceKind::Cpu),
            ("discrete", DeviceKind::DiscreteGpu(0)),
            ("discrete:1", DeviceKind::DiscreteGpu(1)),
            ("integrated:0", DeviceKind::IntegratedGpu(0)),
            ("virtual:2", DeviceKind::VirtualGpu(2)),
        ] {
            assert_eq!(parse_wgpu_device(value), Ok(want), "{value:?}");
        }
        assert_eq!(
            parse_wgpu_device("gpu0").unwrap_err(),
            "'gpu0' is not an adapter: use default, discrete[:N], integrated[:N], virtual[:N] or cpu"
        );
        assert_eq!(
            parse_wgpu_device("discrete:x").unwrap_err(),
            "'discrete:x': the adapter index must be a number"
        );
        assert!(parse_wgpu_device("cpu:1").is_err());
    }

    #[test]
    fn init_names_the_device() {
        let about = init().unwrap();
        eprintln!("device: {about}"); // shown with --nocapture: which adapter a run found
        match backend_name() {
            "flex" => assert_eq!(about, "flex (CPU)"),
            "wgpu" => assert!(about.starts_with("wgpu: "), "{about}"),
            _ => assert!(!about.is_empty()),
        }
    }
}
