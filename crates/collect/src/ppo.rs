//! PPO's losses as stable-baselines3 computes them, with their gradients written out:
//! the clipped surrogate on the policy's logits and the value MSE on the critic's output.
//!
//! For a minibatch of `B` samples with normalised advantages `A`:
//! `ratio = exp(logπ(a|s) − logπ_old(a|s))`,
//! `policy_loss = −mean(min(A·ratio, A·clip(ratio, 1−ε, 1+ε)))`,
//! `value_loss = mean((R − V(s))²)` (no value clipping),
//! `loss = policy_loss − ent_coef·mean(entropy) + vf_coef·value_loss`.

use ccad_core::config::PpoConfig;

/// The settings an update needs, as f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub lr: f32,
    pub adam_eps: f32,
    pub clip: f32,
    pub ent_coef: f32,
    pub vf_coef: f32,
    pub max_grad_norm: f32,
    pub n_epochs: usize,
    pub minibatch: usize,
}

impl From<&PpoConfig> for Hyper {
    fn from(c: &PpoConfig) -> Self {
        Self {
            lr: c.lr as f32,
            adam_eps: c.adam_eps as f32,
            clip: c.clip_range as f32,
            ent_coef: c.ent_coef as f32,
            vf_coef: c.vf_coef as f32,
            max_grad_norm: c.max_grad_norm as f32,
            n_epochs: c.n_epochs,
            minibatch: c.minibatch_size,
        }
    }
}

/// Diagnostics of one minibatch (CleanRL's `losses/*`), or their mean over an update.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossStats {
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    /// `mean((ratio − 1) − log ratio)`, the low-variance KL estimate.
    pub approx_kl: f64,
    /// Share of samples whose ratio left `[1−ε, 1+ε]`.
    pub clipfrac: f64,
}

impl LossStats {
    pub fn add(&mut self, o: &LossStats) {
        self.policy_loss += o.policy_loss;
        self.value_loss += o.value_loss;
        self.entropy += o.entropy;
        self.approx_kl += o.approx_kl;
        self.clipfrac += o.clipfrac;
    }

    pub fn scaled(&self, k: f64) -> LossStats {
        LossStats {
            policy_loss: self.policy_loss * k,
            value_loss: self.value_loss * k,
            entropy: self.entropy * k,
            approx_kl: self.approx_kl * k,
            clipfrac: self.clipfrac * k,
        }
    }

    /// Mean of several.
    pub fn mean(all: &[LossStats]) -> LossStats {
        let mut s = LossStats::default();
        all.iter().for_each(|x| s.add(x));
        s.scaled(1.0 / all.len().max(1) as f64)
    }
}

/// Log-softmax of one row of logits, into `out`.
pub fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    out.iter_mut().zip(logits).for_each(|(o, &l)| *o = l - lse);
}

/// Clipped-surrogate policy loss (plus the entropy bonus) of `B` samples, and its gradient with
/// respect to the logits (`[B, n_actions]`), written into `dlogits`. Returns the stats with
/// `value_loss` zero.
///
/// Gradient: `∂loss/∂ratio_i = −A_i/B` where the unclipped term is the smaller one (inside the
/// clip range both are equal and the clipped one passes the gradient too), else 0;
/// `∂ratio/∂logits = ratio·(onehot(a) − softmax)`. Entropy `H = −Σ p log p`,
/// `∂H/∂logit_j = −p_j (log p_j + H)`.
#[allow(clippy::too_many_arguments)] // one minibatch's columns, named
pub fn policy_loss(
    logits: &[f32],
    n_actions: usize,
    actions: &[i32],
    old_logp: &[f32],
    advantages: &[f32],
    clip: f32,
    ent_coef: f32,
    dlogits: &mut [f32],
) -> LossStats {
    let b = actions.len();
    let inv_b = 1.0 / b as f32;
    let mut logp = vec![0.0f32; n_actions];
    let mut s = LossStats::default();
    for i in 0..b {
        let row = &logits[i * n_actions..(i + 1) * n_actions];
        let d = &mut dlogits[i * n_actions..(i + 1) * n_actions];
        log_softmax(row, &mut logp);
        let a = actions[i] as usize;
        let log_ratio = logp[a] - old_logp[i];
        let ratio = log_ratio.exp();
        let adv = advantages[i];
        let unclipped = adv * ratio;
        let clipped = adv * ratio.clamp(1.0 - clip, 1.0 + clip);
        s.policy_loss -= unclipped.min(clipped) as f64;
        s.approx_kl += ((ratio - 1.0) - log_ratio) as f64;
        if (ratio - 1.0).abs() > clip {
            s.clipfrac += 1.0;
        }
        let g_ratio = if unclipped <= clipped {
            -adv * inv_b
        } else {
            0.0
        };
        let entropy: f32 = -logp.iter().map(|&lp| lp.exp() * lp).sum::<f32>();
        s.entropy += entropy as f64;
        for j in 0..n_actions {
            let p = logp[j].exp();
            let onehot = if j == a { 1.0 } else { 0.0 };
            d[j] = g_ratio * ratio * (onehot - p);
            if ent_coef != 0.0 {
                // loss −= ent_coef · H / B
                d[j] += ent_coef * inv_b * p * (logp[j] + entropy);
            }
        }
    }
    s.policy_loss /= b as f64;
    s.entropy /= b as f64;
    s.approx_kl /= b as f64;
    s.clipfrac /= b as f64;
    s.policy_loss -= ent_coef as f64 * s.entropy;
    s
}

/// `vf_coef · mean((R − V)²)`'s gradient with respect to the values into `dvalues`; returns
/// the unscaled MSE.
pub fn value_loss(values: &[f32], returns: &[f32], vf_coef: f32, dvalues: &mut [f32]) -> f64 {
    let b = values.len() as f32;
    let mut mse = 0.0f64;
    for ((d, &v), &r) in dvalues.iter_mut().zip(values).zip(returns) {
        mse += ((v - r) as f64).powi(2);
        *d = vf_coef * 2.0 * (v - r) / b;
    }
    mse / b as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_surrogate_by_hand() {
        // Two actions, logits 0 → π = (0.5, 0.5), logπ(a) = ln 0.5. ε = 0.2.
        // Sample 0: old π = 0.25 → ratio 2, A = +1: min(2, 1.2) = 1.2 (clipped, no grad).
        // Sample 1: old π = 0.5/0.9 → ratio 0.9, A = −1: min(−0.9, −0.9) = −0.9 (in range).
        // policy_loss = −(1.2 − 0.9)/2 = −0.15. clipfrac: |2−1| > 0.2 yes, |0.9−1| no → 0.5.
        // approx_kl = mean((r − 1) − ln r) = ((1 − ln 2) + (−0.1 − ln 0.9))/2
        //           = (0.306853 + 0.005361)/2 = 0.156107.
        // Grad of sample 1 (action 1): ∂/∂ratio = −A/B = 0.5; ∂ratio/∂logit = 0.9·(onehot − 0.5)
        //   → dlogits = 0.5·0.9·(−0.5, +0.5) = (−0.225, 0.225). Sample 0: zero.
        let logits = [0.0, 0.0, 0.0, 0.0];
        let mut d = [9.0; 4];
        let s = policy_loss(
            &logits,
            2,
            &[0, 1],
            &[0.25f32.ln(), (0.5f32 / 0.9).ln()],
            &[1.0, -1.0],
            0.2,
            0.0,
            &mut d,
        );
        assert!((s.policy_loss + 0.15).abs() < 1e-6, "{s:?}");
        assert!((s.clipfrac - 0.5).abs() < 1e-12);
        assert!((s.approx_kl - 0.156107).abs() < 1e-5, "{s:?}");
        assert!((s.entropy - 2f64.ln()).abs() < 1e-6);
        let want = [0.0, 0.0, -0.225, 0.225];
        for (x, y) in d.iter().zip(want) {
            assert!((x - y).abs() < 1e-6, "{d:?}");
        }
    }

    #[test]
    fn entropy_bonus_enters_loss_and_gradient() {
        // One sample, logits (0, 0), ratio 1, A = 0: only the entropy term remains.
        // H = ln 2; loss = −ent_coef·H = −0.1·0.693147. At the uniform distribution
        // ∂H/∂logit_j = −p_j(log p_j + H) = −0.5·(−ln 2 + ln 2) = 0, so dlogits = 0.
        let mut d = [1.0; 2];
        let s = policy_loss(
            &[0.0, 0.0],
            2,
            &[0],
            &[0.5f32.ln()],
            &[0.0],
            0.2,
            0.1,
            &mut d,
        );
        assert!((s.policy_loss + 0.1 * 2f64.ln()).abs() < 1e-6);
        assert!(d.iter().all(|x| x.abs() < 1e-7));
        // logits (ln 3, 0): p = (0.75, 0.25), H = 0.562335; ∂H/∂l0 = −0.75(ln 0.75 + H)
        // = −0.75·(−0.287682 + 0.562335) = −0.205990; loss −= 0.1·H → dlogit0 = +0.0205990.
        let s = policy_loss(
            &[3f32.ln(), 0.0],
            2,
            &[0],
            &[0.75f32.ln()],
            &[0.0],
            0.2,
            0.1,
            &mut d,
        );
        assert!((s.entropy - 0.562335).abs() < 1e-5);
        assert!(
            (d[0] - 0.020599).abs() < 1e-5 && (d[1] + 0.020599).abs() < 1e-5,
            "{d:?}"
        );
    }

    #[test]
    fn value_mse_by_hand() {
        // V = (1, 3), R = (2, 0): errors (−1, 3) → MSE (1 + 9)/2 = 5.
        // ∂(0.5·MSE)/∂V = 0.5·2·(V − R)/2 = (−0.5, 1.5).
        let mut d = [0.0; 2];
        assert_eq!(value_loss(&[1.0, 3.0], &[2.0, 0.0], 0.5, &mut d), 5.0);
        assert_eq!(d, [-0.5, 1.5]);
    }
}
