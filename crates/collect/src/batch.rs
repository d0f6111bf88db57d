//! What a learner's update reads: its rollout flattened over (step, stream), the per-epoch
//! minibatch order, and minibatches gathered from it with normalised advantages.

use rand::seq::SliceRandom;

use ccad_core::seed::Rng;

/// One learner's rollout, flat over `i = t·n_streams + s` (`n` samples).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutBatch {
    pub obs_dim: usize,
    /// `[n, obs_dim]`, observations as float (row, col).
    pub obs: Vec<f32>,
    pub actions: Vec<i32>,
    /// Log-probability of the action under the policy that acted.
    pub old_logp: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

impl RolloutBatch {
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// A fresh permutation of all `n` samples (one per epoch, from the learner's own generator).
pub fn epoch_order(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order
}

/// Minibatch ranges of an epoch's order: `[0, b) [b, 2b) …`; the last one is shorter when `b`
/// does not divide `n` (stable-baselines3 keeps it).
pub fn minibatch_ranges(n: usize, b: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(b).map(move |s| s..(s + b).min(n))
}

/// Advantage normalisation within a minibatch: `(a − mean) / (std + 1e-8)` with the sample
/// standard deviation (ddof 1, as torch's `std`). A single sample is left as is
/// (stable-baselines3 skips normalisation then).
pub fn normalize_advantages(a: &mut [f32]) {
    let n = a.len();
    if n < 2 {
        return;
    }
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let denom = var.sqrt() + 1e-8;
    a.iter_mut()
        .for_each(|x| *x = ((*x as f64 - mean) / denom) as f32);
}

/// One learner's minibatch, advantages normalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minibatch {
    pub obs: Vec<f32>,
    pub actions: Vec<i32>,
    pub old_logp: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

impl Minibatch {
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Fill from the samples `idx` of `r` (buffers are reused).
    pub fn gather(&mut self, r: &RolloutBatch, idx: &[usize]) {
        let d = r.obs_dim;
        self.obs.clear();
        self.actions.clear();
        self.old_logp.clear();
        self.advantages.clear();
        self.returns.clear();
        for &i in idx {
            self.obs.extend_from_slice(&r.obs[i * d..(i + 1) * d]);
            self.actions.push(r.actions[i]);
            self.old_logp.push(r.old_logp[i]);
            self.advantages.push(r.advantages[i]);
            self.returns.push(r.returns[i]);
        }
        normalize_advantages(&mut self.advantages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_uses_sample_std() {
        // [1, 2, 3, 6]: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, ddof 1 → var 14/3,
        // std 2.160247 → [−0.925820, −0.462910, 0, 1.388730].
        let mut a = [1.0, 2.0, 3.0, 6.0];
        normalize_advantages(&mut a);
        let want = [-0.92582, -0.46291, 0.0, 1.38873];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-5, "{a:?}");
        }
        // Constant advantages: std 0, the 1e-8 keeps them finite (all zero).
        let mut c = [2.0, 2.0];
        normalize_advantages(&mut c);
        assert_eq!(c, [0.0, 0.0]);
        let mut one = [5.0];
        normalize_advantages(&mut one);
        assert_eq!(one, [5.0]);
    }

    #[test]
    fn ranges_keep_a_short_last_minibatch() {
        let r: Vec<_> = minibatch_ranges(10, 4).collect();
        assert_eq!(r, vec![0..4, 4..8, 8..10]);
        assert_eq!(minibatch_ranges(8000, 40).count(), 200);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(&mut ccad_core::seed::rng(1, 2), 50);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(&mut ccad_core::seed::rng(1, 2), 50));
        assert_ne!(a, epoch_order(&mut ccad_core::seed::rng(1, 3), 50));
    }

    #[test]
    fn gather_picks_samples_and_normalises() {
        let r = RolloutBatch {
            obs_dim: 2,
            obs: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            actions: vec![7, 8, 9],
            old_logp: vec![-0.1, -0.2, -0.3],
            advantages: vec![1.0, 5.0, 3.0],
            returns: vec![10.0, 20.0, 30.0],
        };
        let mut mb = Minibatch::default();
        mb.gather(&r, &[2, 0]);
        assert_eq!(mb.obs, vec![4.0, 5.0, 0.0, 1.0]);
        assert_eq!(mb.actions, vec![9, 7]);
        assert_eq!(mb.returns, vec![30.0, 10.0]);
        // [3, 1]: mean 2, std (ddof 1) √2 → [0.707107, −0.707107].
        assert!((mb.advantages[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5);
        assert!((mb.advantages[1] + std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5);
    }
}
