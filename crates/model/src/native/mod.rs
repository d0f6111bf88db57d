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
//! Dropout uses its own counter-based random numbers (a hash of seed, site and element), so
//! a step's masks depend on its seed alone; they are not burn's numbers.

mod attention;
mod compute;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::{Device, Tensor, TensorData};
use ccad_core::tokens::{TokenBatch, token_kind, token_type, type_of_kind};

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

/// Offsets of one block's tensors in the flat vector ([`NativeNet::params`]).
#[derive(Debug, Clone)]
pub struct LayerAt {
    pub ln1_g: usize,
    pub ln1_b: usize,
    pub qkv_w: usize,
    pub qkv_b: usize,
    pub out_w: usize,
    pub out_b: usize,
    pub ln2_g: usize,
    pub ln2_b: usize,
    pub fc_in_w: usize,
    pub fc_in_b: usize,
    pub fc_out_w: usize,
    pub fc_out_b: usize,
}

/// Offsets of every tensor the computation reads, in [`NativeNet::params`]. Weights are
/// row-major `[d_in, d_out]` (burn's `Linear` layout).
#[derive(Debug, Clone)]
pub struct Offsets {
    pub transition_w: usize,
    pub transition_b: usize,
    pub query: usize,
    pub token_type: usize,
    pub open: usize,
    pub close: usize,
    pub position: usize,
    pub layers: Vec<LayerAt>,
    pub norm_g: usize,
    pub norm_b: usize,
    pub action_w: usize,
    pub action_b: usize,
    pub type_w: usize,
    pub type_b: usize,
}

/// [`AdModel`]'s parameters as one flat `f32` vector, with the native training computation.
#[derive(Debug, Clone)]
pub struct NativeNet {
    config: AdModelConfig,
    params: Vec<f32>,
    slots: Vec<ParamSlot>,
    at: Offsets,
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
        let at = offsets(model.config(), &slots)?;
        Ok(Self {
            config: model.config().clone(),
            params,
            slots,
            at,
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
    pub fn offsets(&self) -> &Offsets {
        &self.at
    }

    /// `[4, d]` by token kind: token-type embedding plus the marker's own embedding for
    /// `<c>` / `</c>` (one lookup then adds both to a token).
    pub fn kind_table(&self) -> Vec<f32> {
        let d = self.config.d_model;
        let (w, at) = (&self.params, &self.at);
        let mut t = vec![0.0f32; 4 * d];
        for k in 0..4u8 {
            let ty = type_of_kind(k) as usize;
            let row = &mut t[k as usize * d..(k as usize + 1) * d];
            row.copy_from_slice(&w[at.token_type + ty * d..][..d]);
            let marker = match k {
                token_kind::OPEN => Some(at.open),
                token_kind::CLOSE => Some(at.close),
                _ => None,
            };
            if let Some(m) = marker {
                row.iter_mut().zip(&w[m..m + d]).for_each(|(r, m)| *r += m);
            }
        }
        t
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
        compute::train_step(self, batch, Some(dropout_seed), Some(grads))
    }

    /// Loss and metrics in inference mode (no dropout, no gradients).
    pub fn loss(&self, batch: &TokenBatch) -> LossMetrics {
        compute::train_step(self, batch, None, None)
    }
}

/// Find every tensor the computation needs, with its expected shape.
fn offsets(c: &AdModelConfig, slots: &[ParamSlot]) -> Result<Offsets, String> {
    let mut by_name: HashMap<&str, &ParamSlot> =
        slots.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut take = |name: &str, shape: &[usize]| -> Result<usize, String> {
        let s = by_name
            .remove(name)
            .ok_or_else(|| format!("model parameter {name} not found"))?;
        if s.shape != shape {
            return Err(format!(
                "model parameter {name} has shape {:?}, expected {shape:?}",
                s.shape
            ));
        }
        Ok(s.offset)
    };
    let (d, ff) = (c.d_model, c.d_ff);
    let mut layers = Vec::with_capacity(c.n_layers);
    let transition_w = take("transition.weight", &[c.feat_dim, d])?;
    let transition_b = take("transition.bias", &[d])?;
    let query = take("query_state.weight", &[c.n_states, d])?;
    let token_type_at = take("token_type.weight", &[token_type::COUNT, d])?;
    let open = take("open", &[d])?;
    let close = take("close", &[d])?;
    let position = take("position.weight", &[c.max_len, d])?;
    for i in 0..c.n_layers {
        let p = |s: &str| format!("blocks.{i}.{s}");
        layers.push(LayerAt {
            ln1_g: take(&p("ln_attn.gamma"), &[d])?,
            ln1_b: take(&p("ln_attn.beta"), &[d])?,
            qkv_w: take(&p("attn.qkv.weight"), &[d, 3 * d])?,
            qkv_b: take(&p("attn.qkv.bias"), &[3 * d])?,
            out_w: take(&p("attn.out.weight"), &[d, d])?,
            out_b: take(&p("attn.out.bias"), &[d])?,
            ln2_g: take(&p("ln_mlp.gamma"), &[d])?,
            ln2_b: take(&p("ln_mlp.beta"), &[d])?,
            fc_in_w: take(&p("fc_in.weight"), &[d, ff])?,
            fc_in_b: take(&p("fc_in.bias"), &[ff])?,
            fc_out_w: take(&p("fc_out.weight"), &[ff, d])?,
            fc_out_b: take(&p("fc_out.bias"), &[d])?,
        });
    }
    let at = Offsets {
        transition_w,
        transition_b,
        query,
        token_type: token_type_at,
        open,
        close,
        position,
        layers,
        norm_g: take("norm.gamma", &[d])?,
        norm_b: take("norm.beta", &[d])?,
        action_w: take("action_head.weight", &[d, c.n_actions])?,
        action_b: take("action_head.bias", &[c.n_actions])?,
        type_w: take("type_head.weight", &[d, token_type::COUNT])?,
        type_b: take("type_head.bias", &[token_type::COUNT])?,
    };
    if let Some(name) = by_name.keys().next() {
        return Err(format!(
            "model parameter {name} is not used by the native implementation"
        ));
    }
    Ok(at)
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
