//! A plain-Rust CPU implementation of [`AdModel`]'s training step: forward, loss and
//! backward over one flat parameter vector.
//!
//! Why: through burn's CPU backend a training step at the default size is a few hundred
//! tensor operations whose fixed costs, scalar `exp`/`erf`, page faults of fresh buffers and
//! one-core elementwise kernels dominate (≈1.5 s at batch 64 × 163 tokens, where the
//! arithmetic is ≈18 GFLOP, a tenth of a second on this CPU). Here the matrix products go
//! to the `gemm` crate (the kernel burn's CPU backend itself uses), padding is never
//! computed (sequences are packed back to back), causal attention only visits `j ≤ i`, and
//! every elementwise pass runs on all cores.
//!
//! The computation is [`AdModel`]'s, parameter for parameter (DESIGN §6,
//! `crates/model/src/model.rs`), and the tests hold the loss and every gradient against burn's
//! autodiff ([`reference_loss_and_grads`]). Parameters are stored in the order burn visits
//! them, under burn's names, so [`NativeNet::from_model`] / [`NativeNet::to_model`] convert
//! both ways and checkpoints stay ordinary [`AdModel`] folders.
//!
//! The layers (`embedding`, `block` with `attention`, `heads`, over the affine pieces of
//! `linear`) each hold their forward and backward side by side, over [`Weights`]: the flat
//! vector viewed by parameter name. `step` drives them for a training step; [`NativeDecoder`]
//! runs their one-token forms over a key/value cache for evaluation.
//!
//! Dropout uses its own counter-based random numbers (a hash of seed, site and element), so
//! a step's masks depend on its seed alone; they are not burn's numbers.

mod attention;
mod batch;
mod block;
mod chain;
mod decoder;
mod embedding;
mod heads;
mod linear;
mod step;
#[cfg(test)]
mod tests;
mod weights;

pub use decoder::NativeDecoder;
pub use weights::{LayerParts, Layout, Parts, Weights};

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::{Device, Tensor, TensorData};
use ccad_core::tokens::TokenBatch;

use crate::{AdModel, AdModelConfig, LossMetrics};

/// One parameter tensor inside the flat vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSlot {
    /// burn's path, e.g. `blocks.0.attn.qkv.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
}

/// [`AdModel`]'s parameters as one flat `f32` vector, with the native training computation.
#[derive(Debug, Clone)]
pub struct NativeNet {
    config: AdModelConfig,
    params: Vec<f32>,
    slots: Vec<ParamSlot>,
    layout: Layout,
    /// Step buffers reused from one step to the next.
    pool: ccad_core::kernels::buffers::Pool,
}

impl NativeNet {
    /// Copy `model`'s parameters. Err names a parameter this code expects and did not find
    /// (or found with another shape): the model's layout changed.
    pub fn from_model(model: &AdModel) -> Result<Self, String> {
        let mut params = Vec::new();
        let mut slots = Vec::new();
        for t in model.collect(None, None, false) {
            let data = bridge::to_data(&t).map_err(|e| format!("{}: {e}", t.name))?;
            let values = data
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| format!("{}: {e:?}", t.name))?;
            slots.push(ParamSlot {
                name: t.name.clone(),
                shape: t.shape.to_vec(),
                offset: params.len(),
                len: values.len(),
            });
            params.extend_from_slice(&values);
        }
        let layout = weights::layout(model.config(), &slots)?;
        Ok(Self {
            config: model.config().clone(),
            params,
            slots,
            layout,
            pool: ccad_core::kernels::buffers::Pool::default(),
        })
    }

    /// A fresh [`AdModel`] on `device` holding these parameters.
    pub fn to_model(&self, device: &Device) -> AdModel {
        struct Fill<'a> {
            net: &'a NativeNet,
            by_name: HashMap<&'a str, &'a ParamSlot>,
            path: Vec<String>,
            device: Device,
        }
        impl ModuleMapper for Fill<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let name = self.path.join(".");
                let slot = self.by_name[name.as_str()];
                let values = self.net.params[slot.offset..slot.offset + slot.len].to_vec();
                let data = TensorData::new(values, slot.shape.clone());
                let device = self.device.clone();
                param.map(|old| {
                    assert_eq!(old.dims().to_vec(), slot.shape, "{name}: shape");
                    Tensor::from_data(data, &device)
                })
            }
        }
        let model = self.config.init(device);
        let by_name = self.slots.iter().map(|s| (s.name.as_str(), s)).collect();
        model.map(&mut Fill {
            net: self,
            by_name,
            path: Vec::new(),
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &AdModelConfig {
        &self.config
    }

    /// All parameters, in [`slots`](Self::slots) order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// Where the computation finds each tensor in [`params`](Self::params).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The parameters by name.
    pub fn weights(&self) -> Weights<'_> {
        self.layout.weights(&self.params)
    }

    /// Where each named tensor lives in [`params`](Self::params) (and in a gradient vector).
    pub fn slots(&self) -> &[ParamSlot] {
        &self.slots
    }

    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    /// Loss, metrics and the gradient of `loss.total` with respect to every parameter
    /// (written into `grads`, which must have [`n_params`](Self::n_params) entries; old
    /// contents are overwritten). `dropout_seed` draws this step's dropout masks (ignored when
    /// the config's dropout rates are 0).
    pub fn loss_and_grads(
        &self,
        batch: &TokenBatch,
        dropout_seed: u64,
        grads: &mut [f32],
    ) -> LossMetrics {
        assert_eq!(grads.len(), self.params.len(), "gradient vector length");
        step::train_step(self, batch, Some(dropout_seed), Some(grads))
    }

    /// Action logits `[n, n_actions]` at every real token of `batch`, sequence by sequence
    /// (padding dropped), in inference mode: the one-pass forward evaluation is held to.
    pub fn action_logits(&self, batch: &TokenBatch) -> Vec<f32> {
        step::action_logits(self, batch)
    }

    /// Loss and metrics in inference mode (no dropout, no gradients).
    pub fn loss(&self, batch: &TokenBatch) -> LossMetrics {
        step::train_step(self, batch, None, None)
    }
}

/// burn's answer for the same step: `model`'s loss on `batch` (on `device`, an autodiff
/// device) and the gradient of `loss.total` laid out like [`NativeNet::params`]. The oracle
/// the native computation is tested against.
pub fn reference_loss_and_grads(
    model: &AdModel,
    batch: &TokenBatch,
    device: &Device,
) -> (LossMetrics, Vec<f32>) {
    struct Gather<'a> {
        grads: &'a GradientsParams,
        by_name: HashMap<String, ParamSlot>,
        path: Vec<String>,
        out: Vec<f32>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let slot = &self.by_name[&self.path.join(".")];
            if let Some(g) = self.grads.get::<D>(param.id) {
                let v = g.into_data().try_to_vec::<f32>().expect("f32 gradient");
                self.out[slot.offset..slot.offset + slot.len].copy_from_slice(&v);
            }
        }
    }
    let net = NativeNet::from_model(model).expect("native layout");
    let loss = model.loss(batch, device);
    let grads = GradientsParams::from_grads(loss.total.backward(), model);
    let mut gather = Gather {
        grads: &grads,
        by_name: net
            .slots
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect(),
        path: Vec::new(),
        out: vec![0.0; net.n_params()],
    };
    model.visit(&mut gather);
    (loss.metrics(), gather.out)
}
