//! The optimiser side of a training step: AdamW from the `[train]` section, global
//! gradient-norm clipping, and stable parameter ids so optimiser state survives a checkpoint.
//!
//! burn's optimiser keys its per-parameter state by `ParamId`, and a freshly built model gets
//! random ids (SafeTensors stores none). Numbering the parameters in visiting order
//! ([`number_params`]) on every start, fresh or resumed, makes the saved state line up again.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use ccad_core::config::TrainConfig;

/// AdamW with the run's betas and weight decay. Clipping happens before the step
/// ([`clip_global_norm`]): burn's own `GradientClipping::Norm` clips each tensor separately.
pub fn adamw(t: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_weight_decay(t.weight_decay as f32)
        // PyTorch's default, which the reference used.
        .with_epsilon(1e-8)
        .init()
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

    #[test]
    fn numbering_is_by_visiting_order() {
        let (layer, _) = layer_and_grads();
        let layer = number_params(layer);
        assert_eq!(layer.weight.id, ParamId::from(1));
        assert_eq!(layer.bias.as_ref().unwrap().id, ParamId::from(2));
    }
}
