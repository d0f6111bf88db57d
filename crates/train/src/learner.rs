//! Parameters, optimiser state and the one function that advances them, for either engine
//! (`train.engine`): burn autodiff with burn's AdamW, or the model crate's plain-Rust CPU step
//! ([`model::native::NativeNet`]) with the same AdamW written out over flat vectors
//! ([`FlatAdamW`]). Shared by the training loop and the benchmark so both time the same work.
//!
//! Both engines start from the same weights (the burn model initialised from the device seeded
//! with `train.seed`), clip the global gradient norm the same way, follow the same schedule and
//! save ordinary model folders; they differ in their dropout numbers and in the optimiser file
//! a checkpoint holds ([`OPTIMIZER_FILE`] or [`NATIVE_OPTIMIZER_FILE`]), which is why a run is
//! continued by the engine that wrote its checkpoint.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use ccad_core::backend::{Engine, Stage};
use ccad_core::config::TrainConfig;
use ccad_core::tokens::TokenBatch;
use ccad_core::{Error, Result, backend};
use model::native::NativeNet;
use model::{AdModel, AdModelConfig, LossMetrics};

use crate::optim::{FlatAdamW, adamw, clip_global_norm, clip_global_norm_flat, number_params};
use crate::run::{NATIVE_OPTIMIZER_FILE, OPTIMIZER_FILE};
use crate::schedule::lr_at;

/// One step's host-side results.
#[derive(Debug, Clone, Copy)]
pub struct StepOutput {
    pub metrics: LossMetrics,
    pub lr: f64,
}

/// The gradient norm before clipping: burn's stays on the device until it is logged (reading
/// it every step would synchronise with the device), the native engine's is a number.
pub enum GradNorm {
    Device(Box<Tensor<1>>),
    Host(f64),
}

impl std::ops::Add for GradNorm {
    type Output = GradNorm;

    /// The sum of two norms (for an interval's mean).
    fn add(self, other: GradNorm) -> GradNorm {
        match (self, other) {
            (GradNorm::Device(a), GradNorm::Device(b)) => GradNorm::Device(Box::new(*a + *b)),
            (GradNorm::Host(a), GradNorm::Host(b)) => GradNorm::Host(a + b),
            (GradNorm::Device(a), GradNorm::Host(b)) | (GradNorm::Host(b), GradNorm::Device(a)) => {
                GradNorm::Host(a.into_scalar::<f32>() as f64 + b)
            }
        }
    }
}

impl GradNorm {
    /// Read the value (a device transfer for burn's).
    pub fn value(self) -> f64 {
        match self {
            GradNorm::Device(t) => t.into_scalar::<f32>() as f64,
            GradNorm::Host(v) => v,
        }
    }
}

/// Device seed of step `step`: dropout masks depend on (seed, step) alone, so a resumed run
/// draws the same masks as an uninterrupted one.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    // SplitMix64 finaliser over (seed, step): neighbouring steps get unrelated seeds.
    let mut z = seed
        ^ (step as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The engine that wrote a checkpoint folder, judged by its optimiser file (`None` when it
/// holds neither or both).
pub fn checkpoint_engine(dir: &Path) -> Option<Engine> {
    let burn = dir.join(OPTIMIZER_FILE).is_file();
    let native = dir.join(NATIVE_OPTIMIZER_FILE).is_file();
    match (burn, native) {
        (true, false) => Some(Engine::Burn),
        (false, true) => Some(Engine::Native),
        _ => None,
    }
}

/// The optimiser file `engine` writes.
pub fn optimizer_file(engine: Engine) -> &'static str {
    match engine {
        Engine::Native => NATIVE_OPTIMIZER_FILE,
        _ => OPTIMIZER_FILE,
    }
}

/// Parameters and optimiser state of either engine.
pub enum Learner {
    Burn(Box<BurnLearner>),
    Native(Box<NativeLearner>),
}

impl Learner {
    /// A freshly initialised model (the device `device`, an autodiff device, seeded with
    /// `train.seed`) for the engine `train.engine` names (`auto`: [`Engine::resolve`]).
    pub fn new(config: &AdModelConfig, train: &TrainConfig, device: &Device) -> Self {
        let burn = BurnLearner::new(config, train, device);
        match train.engine.resolve(Stage::Train) {
            Engine::Native => Learner::Native(Box::new(NativeLearner::from_burn(burn))),
            _ => Learner::Burn(Box::new(burn)),
        }
    }

    /// Model and optimiser state from a checkpoint folder; the model's shape must be `config`.
    /// `train.engine = "auto"` continues with the engine that wrote the checkpoint; a named
    /// engine whose optimiser file the checkpoint lacks, while it holds the other's, is
    /// refused with a one-line error that says how to continue.
    pub fn resume(
        dir: &Path,
        config: &AdModelConfig,
        train: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let written_by = checkpoint_engine(dir);
        let engine = match (train.engine, written_by) {
            (Engine::Auto, Some(e)) => e,
            (e, _) => e.resolve(Stage::Train),
        };
        if let Some(other) = written_by.filter(|&w| w != engine) {
            let file = dir.join(optimizer_file(other));
            return Err(Error::file(
                &file,
                "train.engine",
                format!(
                    "this checkpoint's optimiser state was written by the {} engine, not {}; continue the run with --engine {} (or train.engine = \"auto\"), or start over with --fresh",
                    other.as_str(),
                    engine.as_str(),
                    other.as_str()
                ),
            ));
        }
        let model = match engine {
            Engine::Native => AdModel::load(dir, &backend::device())?,
            _ => AdModel::load(dir, device)?,
        };
        if model.config() != config {
            return Err(Error::file(
                &dir.join(model::CONFIG_FILE),
                "model",
                format!(
                    "checkpoint holds {:?}, the data and config give {:?}; pass --fresh to start over",
                    model.config(),
                    config
                ),
            ));
        }
        Ok(match engine {
            Engine::Native => {
                let net = NativeNet::from_model(&model)
                    .map_err(|e| Error::file(&dir.join(model::WEIGHTS_FILE), "native", e))?;
                let path = dir.join(NATIVE_OPTIMIZER_FILE);
                let optim = FlatAdamW::load(&path, train, net.slots())?;
                Learner::Native(Box::new(NativeLearner::with_state(net, optim, train)))
            }
            _ => {
                let path = dir.join(OPTIMIZER_FILE);
                let optim = adamw(train)
                    .load(&path)
                    .map_err(|e| Error::file(&path, "optimizer", one_line(&e.to_string())))?;
                Learner::Burn(Box::new(BurnLearner {
                    model: Some(number_params(model)),
                    optim,
                    device: device.clone(),
                    train: train.clone(),
                }))
            }
        })
    }

    /// `Native` or `Burn`.
    pub fn engine(&self) -> Engine {
        match self {
            Learner::Burn(_) => Engine::Burn,
            Learner::Native(_) => Engine::Native,
        }
    }

    /// Replace the training settings (e.g. a longer `train.steps` after resuming).
    pub fn set_train_config(&mut self, train: &TrainConfig) {
        match self {
            Learner::Burn(l) => l.train = train.clone(),
            Learner::Native(l) => l.train = train.clone(),
        }
    }

    /// Optimiser step number `step` (0-based) on `batch`: forward, backward, clip the global
    /// gradient norm, AdamW with the scheduled learning rate; dropout drawn from
    /// [`step_seed`]`(train.seed, step)`. Returns the gradient norm before clipping.
    pub fn step(&mut self, batch: &TokenBatch, step: usize) -> (StepOutput, Option<GradNorm>) {
        match self {
            Learner::Burn(l) => {
                let (out, norm) = l.step(batch, step);
                (out, norm.map(|n| GradNorm::Device(Box::new(n))))
            }
            Learner::Native(l) => {
                let (out, norm) = l.step(batch, step);
                (out, Some(GradNorm::Host(norm as f64)))
            }
        }
    }

    /// Save the model (an ordinary model folder) and the engine's optimiser state into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        match self {
            Learner::Burn(l) => l.save(dir),
            Learner::Native(l) => l.save(dir),
        }
    }

    pub fn num_params(&self) -> usize {
        match self {
            Learner::Burn(l) => l.model().num_params(),
            Learner::Native(l) => l.net.n_params(),
        }
    }

    /// An inference copy of the model on `ccad_core::backend::device()` (for the in-context
    /// probe).
    pub fn inference_model(&self) -> AdModel {
        match self {
            Learner::Burn(l) => l.model().valid(),
            Learner::Native(l) => l.net.to_model(&backend::device()),
        }
    }

    /// Held-out loss and accuracy over `batches`, in inference mode (see
    /// [`held_out_metrics`]); the native engine computes them itself.
    pub fn held_out_metrics(&self, batches: &[TokenBatch]) -> LossMetrics {
        match self {
            Learner::Burn(l) => held_out_metrics(l.model(), batches),
            Learner::Native(l) => mean_metrics(
                l.net.config().type_loss_weight,
                batches.iter().map(|b| l.net.loss(b)),
            ),
        }
    }
}

/// burn autodiff and burn's AdamW on the build's backend.
pub struct BurnLearner {
    model: Option<AdModel>,
    optim: ModuleOptimizer,
    device: Device,
    train: TrainConfig,
}

impl BurnLearner {
    /// A freshly initialised model (device seeded with `train.seed`) on `device` (an
    /// autodiff device).
    pub fn new(config: &AdModelConfig, train: &TrainConfig, device: &Device) -> Self {
        backend::seed_device(device, train.seed);
        let model = number_params(config.init(device));
        Self {
            model: Some(model),
            optim: adamw(train),
            device: device.clone(),
            train: train.clone(),
        }
    }

    pub fn model(&self) -> &AdModel {
        self.model.as_ref().expect("model present between steps")
    }

    /// Reseed the device, forward, backward, clip, AdamW. The norm stays on the device.
    pub fn step(&mut self, batch: &TokenBatch, step: usize) -> (StepOutput, Option<Tensor<1>>) {
        let lr = lr_at(&self.train, step);
        backend::seed_device(&self.device, step_seed(self.train.seed, step));
        let model = self.model.take().expect("model present between steps");
        let loss = model.loss(batch, &self.device);
        let mut grads = GradientsParams::from_grads(loss.total.backward(), &model);
        let norm = clip_global_norm(&model, &mut grads, self.train.grad_clip);
        self.model = Some(self.optim.step(lr, model, grads));
        (
            StepOutput {
                metrics: loss.metrics(),
                lr,
            },
            norm,
        )
    }

    /// Save model and optimiser ([`OPTIMIZER_FILE`]) into a (checkpoint) folder.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.model().save(dir)?;
        let path = dir.join(OPTIMIZER_FILE);
        self.optim
            .save(&path)
            .map_err(|e| Error::file(&path, "optimizer", one_line(&e.to_string())))
    }
}

/// The native CPU step ([`NativeNet::loss_and_grads`]), [`clip_global_norm_flat`] and
/// [`FlatAdamW`].
pub struct NativeLearner {
    net: NativeNet,
    optim: FlatAdamW,
    grads: Vec<f32>,
    train: TrainConfig,
}

impl NativeLearner {
    /// Take over a freshly initialised burn learner's weights (fresh optimiser state).
    pub fn from_burn(burn: BurnLearner) -> Self {
        let net = NativeNet::from_model(burn.model())
            .unwrap_or_else(|e| panic!("the model has no native implementation: {e}"));
        let optim = FlatAdamW::new(&burn.train, net.n_params());
        Self::with_state(net, optim, &burn.train)
    }

    /// Parameters and optimiser state as given.
    pub fn with_state(net: NativeNet, optim: FlatAdamW, train: &TrainConfig) -> Self {
        let grads = vec![0.0; net.n_params()];
        Self {
            net,
            optim,
            grads,
            train: train.clone(),
        }
    }

    pub fn net(&self) -> &NativeNet {
        &self.net
    }

    pub fn optimizer(&self) -> &FlatAdamW {
        &self.optim
    }

    /// Forward and backward with dropout seeded by [`step_seed`], clip, AdamW. Returns the
    /// gradient norm before clipping.
    pub fn step(&mut self, batch: &TokenBatch, step: usize) -> (StepOutput, f32) {
        let lr = lr_at(&self.train, step);
        let seed = step_seed(self.train.seed, step);
        let metrics = self.net.loss_and_grads(batch, seed, &mut self.grads);
        let norm = clip_global_norm_flat(&mut self.grads, self.train.grad_clip);
        self.optim.step(lr, self.net.params_mut(), &self.grads);
        (StepOutput { metrics, lr }, norm)
    }

    /// Save the model (an ordinary model folder) and [`NATIVE_OPTIMIZER_FILE`].
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.net.to_model(&backend::device()).save(dir)?;
        let path: PathBuf = dir.join(NATIVE_OPTIMIZER_FILE);
        self.optim.save(&path, self.net.slots())
    }
}

/// Held-out loss and accuracy: means over the labelled positions of all `batches`, with the
/// model in inference mode (no dropout) on `ccad_core::backend::device()`.
pub fn held_out_metrics(model: &AdModel, batches: &[TokenBatch]) -> LossMetrics {
    let device = backend::device();
    let valid = model.valid();
    mean_metrics(
        model.config().type_loss_weight,
        batches.iter().map(|b| valid.loss(b, &device).metrics()),
    )
}

/// Means over the labelled positions of several batches' metrics.
fn mean_metrics(type_loss_weight: f64, metrics: impl Iterator<Item = LossMetrics>) -> LossMetrics {
    let mut sum = [0.0f64; 4];
    let (mut n_a, mut n_t) = (0usize, 0usize);
    for m in metrics {
        sum[0] += m.action as f64 * m.n_action as f64;
        sum[1] += m.acc_action as f64 * m.n_action as f64;
        sum[2] += m.token_type as f64 * m.n_token_type as f64;
        sum[3] += m.acc_token_type as f64 * m.n_token_type as f64;
        n_a += m.n_action;
        n_t += m.n_token_type;
    }
    let (da, dt) = (n_a.max(1) as f64, n_t.max(1) as f64);
    let action = (sum[0] / da) as f32;
    let token_type = (sum[2] / dt) as f32;
    LossMetrics {
        total: action + (type_loss_weight as f32) * token_type,
        action,
        token_type,
        acc_action: (sum[1] / da) as f32,
        acc_token_type: (sum[3] / dt) as f32,
        n_action: n_a,
        n_token_type: n_t,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_seeds_differ_and_repeat() {
        assert_eq!(step_seed(3, 10), step_seed(3, 10));
        assert_ne!(step_seed(3, 10), step_seed(3, 11));
        assert_ne!(step_seed(3, 10), step_seed(4, 10));
    }

    #[test]
    fn grad_norms_add_on_either_side() {
        let n = GradNorm::Host(1.5) + GradNorm::Host(2.0);
        assert_eq!(n.value(), 3.5);
        let device = backend::device();
        let t = |v: f32| {
            GradNorm::Device(Box::new(Tensor::<1>::from_data(
                burn::tensor::TensorData::new(vec![v], [1]),
                &device,
            )))
        };
        assert_eq!((t(1.0) + t(2.0)).value(), 3.0);
        assert_eq!((t(1.0) + GradNorm::Host(0.5)).value(), 1.5);
    }
}
