//! The optimiser side of a training step: AdamW from the `[train]` section, global
//! gradient-norm clipping, and stable parameter ids so optimiser state survives a checkpoint.
//! [`FlatAdamW`] and [`clip_global_norm_flat`] are the same two operations over one flat
//! parameter vector, for the native engine (core's flat kernels in burn's arrangement, plus the
//! optimiser state's file).
//!
//! burn's optimiser keys its per-parameter state by `ParamId`, and a freshly built model gets
//! random ids (SafeTensors stores none). Numbering the parameters in visiting order
//! ([`number_params`]) on every start, fresh or resumed, makes the saved state line up again.

use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use ccad_core::config::TrainConfig;
use ccad_core::kernels::optim::{Adam, AdamConfig, AdamForm, ClipForm, clip_grad_norm};
use ccad_core::{Error, Result};
use model::native::ParamSlot;
use serde::{Deserialize, Serialize};

/// AdamW's epsilon: PyTorch's default, which the reference used.
pub const ADAM_EPSILON: f32 = 1e-8;

/// AdamW with the run's betas and weight decay. Clipping happens before the step
/// ([`clip_global_norm`]): burn's own `GradientClipping::Norm` clips each tensor separately.
pub fn adamw(t: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_weight_decay(t.weight_decay as f32)
        .with_epsilon(ADAM_EPSILON)
        .init()
}

/// [`adamw`] over one flat `f32` parameter vector: core's [`Adam`] in burn's arrangement
/// ([`AdamForm::BurnW`]), so both engines follow the same trajectory from the same gradients,
/// plus the checkpoint file of its state. Derefs to the [`Adam`] (`time`, `m`, `v`).
#[derive(Debug, Clone, PartialEq)]
pub struct FlatAdamW(Adam);

impl Deref for FlatAdamW {
    type Target = Adam;
    fn deref(&self) -> &Adam {
        &self.0
    }
}

impl DerefMut for FlatAdamW {
    fn deref_mut(&mut self) -> &mut Adam {
        &mut self.0
    }
}

/// Start of a [`FlatAdamW`] file.
const FLAT_MAGIC: &[u8; 8] = b"CCADADAM";

/// The JSON header of a [`FlatAdamW`] file: what the moments that follow belong to.
#[derive(Debug, Serialize, Deserialize)]
struct FlatHeader {
    version: u32,
    time: u32,
    n_params: usize,
    /// Parameter tensors in order, `(name, len)`: the moments' layout.
    slots: Vec<(String, usize)>,
}

impl FlatAdamW {
    /// Zero moments for `n` parameters, hyperparameters from `t` as in [`adamw`].
    pub fn new(t: &TrainConfig, n: usize) -> Self {
        let config = AdamConfig {
            beta1: t.beta1 as f32,
            beta2: t.beta2 as f32,
            epsilon: ADAM_EPSILON,
            form: AdamForm::BurnW {
                weight_decay: t.weight_decay as f32,
            },
        };
        Self(Adam::new(config, n))
    }

    /// Write the step count and moments to `path` (atomically): an 8-byte magic, the JSON
    /// header's length (u64 LE), the header, then `m` and `v` as little-endian `f32`.
    pub fn save(&self, path: &Path, slots: &[ParamSlot]) -> Result<()> {
        let header = FlatHeader {
            version: 1,
            time: self.time,
            n_params: self.m.len(),
            slots: slots.iter().map(|s| (s.name.clone(), s.len)).collect(),
        };
        let json = serde_json::to_vec(&header).expect("header serialises");
        ccad_core::atomic::write_atomic_with(path, |w| {
            w.write_all(FLAT_MAGIC)?;
            w.write_all(&(json.len() as u64).to_le_bytes())?;
            w.write_all(&json)?;
            for x in self.m.iter().chain(&self.v) {
                w.write_all(&x.to_le_bytes())?;
            }
            Ok(())
        })
    }

    /// Read a file written by [`save`](Self::save) for a model whose parameters are laid out
    /// as `slots`; hyperparameters come from `t`. Errors are one line naming the file.
    pub fn load(path: &Path, t: &TrainConfig, slots: &[ParamSlot]) -> Result<Self> {
        let bad = |msg: String| Error::file(path, "optimizer", msg);
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if bytes.len() < 16 || &bytes[..8] != FLAT_MAGIC {
            return Err(bad("not a native AdamW state file".into()));
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let json = bytes
            .get(16..16usize.saturating_add(len))
            .ok_or_else(|| bad("truncated header".into()))?;
        let header: FlatHeader =
            serde_json::from_slice(json).map_err(|e| bad(format!("header: {e}")))?;
        let expect: Vec<(String, usize)> = slots.iter().map(|s| (s.name.clone(), s.len)).collect();
        if header.slots != expect {
            return Err(bad(
                "holds the moments of another parameter layout than this model's".into(),
            ));
        }
        let n = header.n_params;
        let body = &bytes[16 + len..];
        if n != expect.iter().map(|s| s.1).sum::<usize>() || body.len() != 8 * n {
            return Err(bad(format!(
                "expected {} bytes of moments for {n} parameters, found {}",
                8 * n,
                body.len()
            )));
        }
        let floats: Vec<f32> = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let mut state = Self::new(t, n);
        state.time = header.time;
        state.m.copy_from_slice(&floats[..n]);
        state.v.copy_from_slice(&floats[n..]);
        Ok(state)
    }
}

/// [`clip_global_norm`] over one flat gradient vector: scale by
/// `min(1, max_norm / (‖g‖ + 1e-6))` in burn's rounding ([`ClipForm::Burn`]). Returns `‖g‖`
/// before clipping.
pub fn clip_global_norm_flat(grads: &mut [f32], max_norm: f64) -> f32 {
    clip_grad_norm(grads, max_norm as f32, ClipForm::Burn)
}

/// Give the float parameters ids 1, 2, … in visiting order (deterministic for a given
/// architecture), so optimiser records written by one process apply in another.
pub fn number_params<M: Module>(module: M) -> M {
    struct Numbering(u64);
    impl ModuleMapper for Numbering {
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.0 += 1;
            param.id = ParamId::from(self.0);
            param
        }
    }
    module.map(&mut Numbering(0))
}

/// Scale all gradients by `min(1, max_norm / (‖g‖ + 1e-6))`, where `‖g‖` is the L2 norm of
/// every gradient of `module` together (PyTorch's `clip_grad_norm_`). Returns `‖g‖` before
/// clipping, as a `[1]` tensor left on the device (no host transfer).
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Option<Tensor<1>> {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        coef: Tensor<1>,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let coef = self.coef.clone().reshape([1; D]);
                self.grads.register(param.id, g * coef);
            }
        }
    }

    let mut sum = SumSquares { grads, total: None };
    module.visit(&mut sum);
    let norm = sum.total?.sqrt();
    // Computed on the device: no synchronisation with the host.
    let coef = norm
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    module.visit(&mut Scale { grads, coef });
    Some(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::TensorData;

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// A 2 → 1 linear layer with weight [[3], [0]] and bias [0]; loss = sum(layer(x)) with
    /// x = [[1, 0]] gives grad(weight) = xᵀ = [[1], [0]] and grad(bias) = [1].
    fn layer_and_grads() -> (Linear, GradientsParams) {
        let device = ccad_core::backend::autodiff_device();
        let mut layer: Linear = LinearConfig::new(2, 1).init(&device);
        layer.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![3.0f32, 0.0], [2, 1]),
            &device,
        ));
        layer.bias = Some(Param::from_tensor(Tensor::zeros([1], &device)));
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 2]), &device);
        let loss = layer.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        (layer, grads)
    }

    #[test]
    fn clips_the_global_norm_by_hand() {
        // ‖g‖ = sqrt(1² + 0² + 1²) = √2 ≈ 1.41421. Clip at 1: coef = 1 / (√2 + 1e-6), so
        // every entry of 1 becomes ≈ 0.7071064 (1/√2 = 0.7071068 less the epsilon's share).
        let (layer, mut grads) = layer_and_grads();
        let norm = clip_global_norm(&layer, &mut grads, 1.0).unwrap();
        assert!((host(norm)[0] - 2f32.sqrt()).abs() < 1e-6);
        let w = host(grads.get::<2>(layer.weight.id).unwrap());
        let b = host(grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap());
        let expect = 1.0 / (2f64.sqrt() + 1e-6);
        assert!((w[0] as f64 - expect).abs() < 1e-6, "{w:?}");
        assert_eq!(w[1], 0.0);
        assert!((b[0] as f64 - expect).abs() < 1e-6, "{b:?}");
        // Global, not per tensor: the joint norm is now 1.
        let joint = (w[0] * w[0] + b[0] * b[0]).sqrt();
        assert!((joint - 1.0).abs() < 1e-5);
    }

    #[test]
    fn leaves_small_gradients_alone() {
        // ‖g‖ = √2 < 10: coef clamps to 1, gradients unchanged.
        let (layer, mut grads) = layer_and_grads();
        clip_global_norm(&layer, &mut grads, 10.0).unwrap();
        assert_eq!(
            host(grads.get::<2>(layer.weight.id).unwrap()),
            vec![1.0, 0.0]
        );
        assert_eq!(
            host(grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap()),
            vec![1.0]
        );
    }

    fn train_config(beta1: f64, beta2: f64, weight_decay: f64) -> TrainConfig {
        TrainConfig {
            beta1,
            beta2,
            weight_decay,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn flat_clip_by_hand() {
        // g = [3, 0, -4]: ‖g‖ = 5; clip at 1: coef = 1 / (5 + 1e-6) ≈ 0.19999996.
        let mut g = vec![3.0f32, 0.0, -4.0];
        let norm = clip_global_norm_flat(&mut g, 1.0);
        assert_eq!(norm, 5.0);
        let coef = 1.0 / (5.0 + 1e-6);
        assert!((g[0] as f64 - 3.0 * coef).abs() < 1e-7, "{g:?}");
        assert_eq!(g[1], 0.0);
        assert!((g[2] as f64 + 4.0 * coef).abs() < 1e-7, "{g:?}");
        // Under the limit: untouched, bit for bit.
        let mut g = vec![0.3f32, -0.4];
        assert!((clip_global_norm_flat(&mut g, 1.0) - 0.5).abs() < 1e-7);
        assert_eq!(g, vec![0.3, -0.4]);
    }

    #[test]
    fn flat_adamw_is_core_burn_form_adamw_with_the_train_config() {
        // The arithmetic is core's (checked by hand there); here: the config's values reach it.
        let mut opt = FlatAdamW::new(&train_config(0.8, 0.95, 0.02), 3);
        let mut want = Adam::new(
            AdamConfig {
                beta1: 0.8,
                beta2: 0.95,
                epsilon: 1e-8,
                form: AdamForm::BurnW { weight_decay: 0.02 },
            },
            3,
        );
        let (mut p, mut q) = (vec![1.0f32, -2.0, 0.5], vec![1.0f32, -2.0, 0.5]);
        for g in [[0.6f32, 0.0, -0.8], [-0.6, 0.5, 0.0]] {
            opt.step(0.1, &mut p, &g);
            want.step(0.1, &mut q, &g);
        }
        assert_eq!(p, q);
        assert_eq!(*opt, want);
        assert_ne!(p, vec![1.0, -2.0, 0.5]);
    }

    #[test]
    fn flat_adamw_state_round_trips_and_checks_the_layout() {
        let slot = |name: &str, offset, len| ParamSlot {
            name: name.into(),
            shape: vec![len],
            offset,
            len,
        };
        let slots = vec![slot("a", 0, 2), slot("b", 2, 1)];
        let t = train_config(0.9, 0.99, 0.01);
        let mut opt = FlatAdamW::new(&t, 3);
        let mut p = vec![1.0f32, 2.0, 3.0];
        opt.step(0.01, &mut p, &[0.5, -1.0, 2.0]);
        opt.step(0.01, &mut p, &[0.1, 0.2, -0.3]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt.bin");
        opt.save(&path, &slots).unwrap();
        assert_eq!(FlatAdamW::load(&path, &t, &slots).unwrap(), opt);

        let other = vec![slot("a", 0, 2), slot("c", 2, 1)];
        let e = FlatAdamW::load(&path, &t, &other).unwrap_err().to_string();
        assert!(
            e.contains("opt.bin: optimizer: ") && e.contains("layout"),
            "{e}"
        );
        std::fs::write(&path, b"CCADADAM\x05").unwrap();
        let e = FlatAdamW::load(&path, &t, &slots).unwrap_err().to_string();
        assert!(e.contains("opt.bin: optimizer: "), "{e}");
    }

    #[test]
    fn numbering_is_by_visiting_order() {
        let (layer, _) = layer_and_grads();
        let layer = number_params(layer);
        assert_eq!(layer.weight.id, ParamId::from(1));
        assert_eq!(layer.bias.as_ref().unwrap().id, ParamId::from(2));
    }
}
