//! Adam (as torch's, β = 0.9 / 0.999) and gradient-norm clipping (as torch's
//! `clip_grad_norm_`), over one learner's flat parameter vector.

/// Scale `g` so that its L2 norm is at most `max_norm` (`coef = max_norm / (norm + 1e-6)`,
/// applied when below 1). Returns the norm before clipping.
pub fn clip_grad_norm(g: &mut [f32], max_norm: f32) -> f32 {
    // Sixteen partial sums: vectorises; f32 is accurate enough for a clipping norm.
    let norm = ccad_core::kernels::simd::wide(|| {
        let mut acc = [0f32; 16];
        let mut chunks = g.chunks_exact(16);
        for c in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += x * x;
            }
        }
        let tail: f32 = chunks.remainder().iter().map(|&x| x * x).sum();
        (acc.iter().map(|&x| x as f64).sum::<f64>() + tail as f64).sqrt() as f32
    });
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        g.iter_mut().for_each(|x| *x *= coef);
    }
    norm
}

#[derive(Debug, Clone)]
pub struct Adam {
    lr: f32,
    eps: f32,
    beta1: f32,
    beta2: f32,
    t: i32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    pub const BETA1: f32 = 0.9;
    pub const BETA2: f32 = 0.999;

    pub fn new(n_params: usize, lr: f32, eps: f32) -> Self {
        Self {
            lr,
            eps,
            beta1: Self::BETA1,
            beta2: Self::BETA2,
            t: 0,
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
        }
    }

    /// `p ← p − lr/(1−β1ᵗ) · m / (√v / √(1−β2ᵗ) + eps)` (torch's arrangement of the same formula).
    pub fn step(&mut self, p: &mut [f32], g: &[f32]) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2_sqrt = (1.0 - self.beta2.powi(self.t)).sqrt();
        let step = self.lr / bc1;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let (ms, vs) = (&mut self.m, &mut self.v);
        ccad_core::kernels::simd::wide(|| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(ms.iter_mut()).zip(vs.iter_mut()) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= step * *m / (v.sqrt() / bc2_sqrt + eps);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_scales_only_above_the_limit() {
        // |(3, 4)| = 5 > 0.5 → scaled by 0.5 / (5 + 1e-6) ≈ 0.1 → (0.3, 0.4).
        let mut g = [3.0, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 0.5), 5.0);
        assert!((g[0] - 0.3).abs() < 1e-6 && (g[1] - 0.4).abs() < 1e-6);
        // |(0.03, 0.04)| = 0.05: coef = 0.5 / 0.050001 > 1, left unchanged.
        let mut small = [0.03, 0.04];
        clip_grad_norm(&mut small, 0.5);
        assert_eq!(small, [0.03, 0.04]);
    }

    #[test]
    fn adam_first_steps_by_hand() {
        // Step 1: m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g² → Δ = lr·g / (|g| + eps) ≈ lr·sign(g).
        let mut a = Adam::new(2, 0.1, 1e-8);
        let mut p = [1.0f32, -1.0];
        a.step(&mut p, &[2.0, -0.5]);
        assert!(
            (p[0] - 0.9).abs() < 1e-6 && (p[1] + 0.9).abs() < 1e-6,
            "{p:?}"
        );
        // Step 2 with g = 0: m = 0.09·g1, v = 0.000999·g1²; m̂ = 0.09/0.19·g1, v̂ = 0.000999/0.001999·g1²
        // Δ = 0.1 · (0.09/0.19) / √(0.000999/0.001999) = 0.1 · 0.473684 / 0.706930 = 0.067006.
        a.step(&mut p, &[0.0, 0.0]);
        assert!((p[0] - (0.9 - 0.067006)).abs() < 1e-5, "{p:?}");
        assert!((p[1] + (0.9 - 0.067006)).abs() < 1e-5, "{p:?}");
    }
}
