//! What a run reports: the update's loss diagnostics, each rollout's report, and the outcome of
//! training a group of learners.

use ccad_core::history::TaskHistory;

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

/// What one finished rollout reports (all learners).
#[derive(Debug, Clone)]
pub struct RolloutReport {
    /// Rollout (region) index.
    pub index: usize,
    pub n_rollouts: usize,
    /// Environment steps per learner so far.
    pub env_steps: usize,
    /// Each learner's mean return of the episodes that ended in this rollout.
    pub returns: Vec<f64>,
    /// Each learner's mean update diagnostics.
    pub stats: Vec<LossStats>,
}

/// Mean of the finite values (NaN marks a region in which no episode ended).
pub fn finite_mean(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        f64::NAN
    } else {
        f.iter().sum::<f64>() / f.len() as f64
    }
}

/// The outcome of training a group of learners.
pub struct Learned {
    pub tasks: Vec<usize>,
    /// `[rollout][learner]` mean episode return.
    pub returns: Vec<Vec<f64>>,
    /// Recorded histories (empty when not recording).
    pub histories: Vec<TaskHistory>,
    /// Final flat parameters of every learner.
    pub params: Vec<Vec<f32>>,
    pub seconds: f64,
}
