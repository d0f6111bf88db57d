//! The flat optimiser kernels: Adam / AdamW over one `f32` parameter vector and global
//! gradient-norm clipping. collect's PPO learners follow torch (the reference stable-baselines3
//! runs on); the model's native training step follows burn's AdamW (its burn engine is the
//! reference there). The two references arrange the same formulas with different roundings, so
//! each is kept exactly as a [`AdamForm`] / [`ClipForm`] of one implementation: changing either
//! would change a dataset's bytes or a training run's bits.

use super::simd::wide;

/// Which reference's arrangement of the update an [`Adam`] follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AdamForm {
    /// torch's `Adam` (no weight decay):
    /// `v = β₂·v + (1−β₂)·g·g`, `p −= (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)`.
    Torch,
    /// burn 0.22's `AdamW` (no AMSGrad, no cautious decay), in `f32` like burn's CPU backend:
    /// `v = v·β₂ + (g·g)·(1−β₂)`, `δ = (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`,
    /// `p = p·(1 − lr·wd) − lr·δ` (decoupled decay on the old value).
    BurnW { weight_decay: f32 },
}

/// Adam's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub form: AdamForm,
}

/// Adam's state over one flat parameter vector. One step count for all parameters: every
/// parameter gets a gradient at every step, so per-tensor counts (burn's) are the same thing.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    pub config: AdamConfig,
    /// Steps taken; 0 before the first.
    pub time: u32,
    /// First and second moments, one per parameter.
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl Adam {
    /// Zero moments for `n` parameters.
    pub fn new(config: AdamConfig, n: usize) -> Self {
        Self {
            config,
            time: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One step of `params` along `grads` (already clipped) at learning rate `lr`. Both
    /// references' first moment is `β₁·m + (1−β₁)·g`, bit for bit.
    pub fn step(&mut self, lr: f64, params: &mut [f32], grads: &[f32]) {
        assert_eq!(params.len(), self.m.len(), "parameter vector length");
        assert_eq!(grads.len(), self.m.len(), "gradient vector length");
        self.time += 1;
        let AdamConfig {
            beta1: b1,
            beta2: b2,
            epsilon: eps,
            form,
        } = self.config;
        let t = self.time as i32;
        let c1 = 1f32 - b1.powi(t);
        let c2 = 1f32 - b2.powi(t);
        let (f1, f2) = (1.0 - b1, 1.0 - b2);
        let lr32 = lr as f32;
        let moments = self.m.iter_mut().zip(self.v.iter_mut());
        let each = params.iter_mut().zip(grads).zip(moments);
        match form {
            AdamForm::Torch => {
                let step = lr32 / c1;
                let c2_sqrt = c2.sqrt();
                wide(|| {
                    for ((p, &g), (m, v)) in each {
                        *m = b1 * *m + f1 * g;
                        *v = b2 * *v + f2 * g * g;
                        *p -= step * *m / (v.sqrt() / c2_sqrt + eps);
                    }
                });
            }
            AdamForm::BurnW { weight_decay } => {
                // burn: `lr * (weight_decay as f64)` in f64; scalars reach f32 tensors `as f32`.
                let decay_rate = lr * weight_decay as f64;
                let keep = (1.0 - decay_rate) as f32;
                wide(|| {
                    for ((p, &g), (m, v)) in each {
                        *m = *m * b1 + g * f1;
                        *v = *v * b2 + (g * g) * f2;
                        let delta = (*m / c1) / ((*v / c2).sqrt() + eps);
                        let decayed = if decay_rate == 0.0 { *p } else { *p * keep };
                        *p = decayed - delta * lr32;
                    }
                });
            }
        }
    }
}

/// Which reference's rounding a global-norm clip follows. Both scale by
/// `min(1, max_norm / (‖g‖ + 1e-6))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipForm {
    /// torch's `clip_grad_norm_`: `coef = max / (‖g‖ + 1e-6)`. The squares are summed in 16
    /// `f32` lanes (so it vectorises; `f32` is accurate enough for a clipping norm), the
    /// lanes in `f64`.
    Torch,
    /// burn's global clip: the squares summed in order in `f64`,
    /// `coef = (1 / (‖g‖ + 1e-6)) · max`.
    Burn,
}

/// Scale `g` so that its L2 norm is at most `max_norm`. Returns the norm before clipping.
pub fn clip_grad_norm(g: &mut [f32], max_norm: f32, form: ClipForm) -> f32 {
    let (norm, coef) = match form {
        ClipForm::Torch => {
            let norm = norm_in_lanes(g);
            (norm, max_norm / (norm + 1e-6))
        }
        ClipForm::Burn => {
            let sum: f64 = g.iter().map(|&x| x as f64 * x as f64).sum();
            let norm = sum.sqrt() as f32;
            (norm, (1.0 / (norm + 1e-6)) * max_norm)
        }
    };
    if coef < 1.0 {
        g.iter_mut().for_each(|x| *x *= coef);
    }
    norm
}

/// `‖g‖` from sixteen `f32` partial sums of squares (added in `f64`) and an `f32` tail.
fn norm_in_lanes(g: &[f32]) -> f32 {
    wide(|| {
        let mut acc = [0f32; 16];
        let mut chunks = g.chunks_exact(16);
        for c in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += x * x;
            }
        }
        let tail: f32 = chunks.remainder().iter().map(|&x| x * x).sum();
        (acc.iter().map(|&x| x as f64).sum::<f64>() + tail as f64).sqrt() as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torch(lr: f32, eps: f32, n: usize) -> (Adam, f64) {
        let config = AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: eps,
            form: AdamForm::Torch,
        };
        (Adam::new(config, n), lr as f64)
    }

    fn burn_w(beta2: f32, weight_decay: f32, n: usize) -> Adam {
        let config = AdamConfig {
            beta1: 0.9,
            beta2,
            epsilon: 1e-8,
            form: AdamForm::BurnW { weight_decay },
        };
        Adam::new(config, n)
    }

    #[test]
    fn torch_clip_scales_only_above_the_limit() {
        // |(3, 4)| = 5 > 0.5 → scaled by 0.5 / (5 + 1e-6) ≈ 0.1 → (0.3, 0.4).
        let mut g = [3.0, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 0.5, ClipForm::Torch), 5.0);
        assert!((g[0] - 0.3).abs() < 1e-6 && (g[1] - 0.4).abs() < 1e-6);
        // |(0.03, 0.04)| = 0.05: coef = 0.5 / 0.050001 > 1, left unchanged.
        let mut small = [0.03, 0.04];
        clip_grad_norm(&mut small, 0.5, ClipForm::Torch);
        assert_eq!(small, [0.03, 0.04]);
    }

    #[test]
    fn torch_clip_norm_spans_lanes_and_tail() {
        // 17 entries: sixteen 1s fill the lanes, a 3 is the tail → ‖g‖ = √(16 + 9) = 5.
        let mut g = [1.0f32; 17];
        g[16] = 3.0;
        assert_eq!(clip_grad_norm(&mut g, 10.0, ClipForm::Torch), 5.0);
        assert_eq!(g[16], 3.0, "under the limit: untouched");
    }

    #[test]
    fn burn_clip_by_hand() {
        // g = [3, 0, -4]: ‖g‖ = 5; clip at 1: coef = 1 / (5 + 1e-6) ≈ 0.19999996.
        let mut g = vec![3.0f32, 0.0, -4.0];
        let norm = clip_grad_norm(&mut g, 1.0, ClipForm::Burn);
        assert_eq!(norm, 5.0);
        let coef = 1.0 / (5.0 + 1e-6);
        assert!((g[0] as f64 - 3.0 * coef).abs() < 1e-7, "{g:?}");
        assert_eq!(g[1], 0.0);
        assert!((g[2] as f64 + 4.0 * coef).abs() < 1e-7, "{g:?}");
        // Under the limit: untouched, bit for bit.
        let mut g = vec![0.3f32, -0.4];
        assert!((clip_grad_norm(&mut g, 1.0, ClipForm::Burn) - 0.5).abs() < 1e-7);
        assert_eq!(g, vec![0.3, -0.4]);
    }

    #[test]
    fn torch_adam_first_steps_by_hand() {
        // Step 1: m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g² → Δ = lr·g / (|g| + eps) ≈ lr·sign(g).
        let (mut a, lr) = torch(0.1, 1e-8, 2);
        let mut p = [1.0f32, -1.0];
        a.step(lr, &mut p, &[2.0, -0.5]);
        assert!(
            (p[0] - 0.9).abs() < 1e-6 && (p[1] + 0.9).abs() < 1e-6,
            "{p:?}"
        );
        // Step 2 with g = 0: m = 0.09·g1, v = 0.000999·g1²; m̂ = 0.09/0.19·g1, v̂ = 0.000999/0.001999·g1²
        // Δ = 0.1 · (0.09/0.19) / √(0.000999/0.001999) = 0.1 · 0.473684 / 0.706930 = 0.067006.
        a.step(lr, &mut p, &[0.0, 0.0]);
        assert!((p[0] - (0.9 - 0.067006)).abs() < 1e-5, "{p:?}");
        assert!((p[1] + (0.9 - 0.067006)).abs() < 1e-5, "{p:?}");
        assert_eq!(a.time, 2);
    }

    #[test]
    fn burn_adamw_two_steps_by_hand() {
        // β₁ 0.9, β₂ 0.99, wd 0.01, lr 0.1; p = [1, -2, 0.5].
        let mut opt = burn_w(0.99, 0.01, 3);
        let mut p = vec![1.0f32, -2.0, 0.5];
        // Step 1, g = [0.6, 0, -0.8]: m̂ = g, v̂ = g², δ = g / (|g| + 1e-8) ≈ sign(g) (0 for
        // g = 0). p·(1 − 0.1·0.01) − 0.1·δ = [0.999 − 0.1, −1.998, 0.4995 + 0.1].
        opt.step(0.1, &mut p, &[0.6, 0.0, -0.8]);
        assert_eq!(opt.time, 1);
        let close = |a: f32, b: f64, tol: f64| (a as f64 - b).abs() < tol;
        assert!(close(p[0], 0.899, 1e-6), "{p:?}");
        assert_eq!(p[1], -1.998);
        assert!(close(p[2], 0.5995, 1e-6), "{p:?}");
        assert!(close(opt.m[0], 0.06, 1e-7) && close(opt.v[2], 0.0064, 1e-8));
        // Step 2, g = [-0.6, 0.5, 0]:
        // p0: m = 0.9·0.06 − 0.06 = −0.006, m̂ = −0.006 / 0.19; v = 0.99·0.0036 + 0.0036 =
        //     0.007164, v̂ = 0.007164 / 0.0199 = 0.36, √ = 0.6: δ = −1/19.
        // p1: m = 0.05, v = 0.0025: δ = (0.05/0.19) / √(0.0025/0.0199).
        // p2: m = −0.072, v = 0.99·0.0064 = 0.006336: δ = (−0.072/0.19) / √(0.006336/0.0199).
        opt.step(0.1, &mut p, &[-0.6, 0.5, 0.0]);
        let decay = 1.0 - 0.1 * 0.01;
        let d1 = (0.05 / 0.19) / (0.0025f64 / 0.0199).sqrt();
        let d2 = (-0.072 / 0.19) / (0.006336f64 / 0.0199).sqrt();
        assert!(close(p[0], 0.899 * decay + 0.1 / 19.0, 1e-6), "{p:?}");
        assert!(close(p[1], -1.998 * decay - 0.1 * d1, 1e-6), "{p:?}");
        assert!(close(p[2], 0.5995 * decay - 0.1 * d2, 1e-6), "{p:?}");
        // No weight decay: p moves by −lr·δ alone.
        let mut opt = burn_w(0.99, 0.0, 1);
        let mut q = vec![2.0f32];
        opt.step(0.5, &mut q, &[-3.0]);
        assert!(close(q[0], 2.5, 1e-6), "{q:?}");
    }

    #[test]
    fn the_forms_share_the_first_moment_and_round_the_second_differently() {
        // Same gradients through both forms without decay: m is bit-identical (one formula);
        // v differs at most in the last bits ((1−β₂)·g·g vs (g·g)·(1−β₂)).
        let (mut a, lr) = torch(0.01, 1e-8, 4);
        let mut b = burn_w(0.999, 0.0, 4);
        let (mut pa, mut pb) = ([0.5f32; 4], [0.5f32; 4]);
        for g in [[0.3f32, -1.7, 2.9, 1e-3], [0.1, 0.2, -0.3, 7.0]] {
            a.step(lr, &mut pa, &g);
            b.step(lr, &mut pb, &g);
        }
        assert_eq!(a.m, b.m);
        for (x, y) in a.v.iter().zip(&b.v) {
            assert!((x - y).abs() <= 1e-6 * x.abs(), "{x} vs {y}");
        }
        for (x, y) in pa.iter().zip(&pb) {
            assert!((x - y).abs() < 1e-6, "{pa:?} vs {pb:?}");
        }
    }
}
