//! The learners on burn: every learner's flat parameters are one row of a `[G, P]` tensor, the
//! MLP layers are slices of it reshaped to `[G, in, out]`, and each minibatch step is one
//! batched forward/backward over `[G, B, features]` (`Tensor<3>` matmul). The loss is the sum of
//! the learners' losses, so each learner's gradient is its own row; clipping uses each row's
//! norm and Adam is elementwise, so the learners stay independent.
//!
//! Tensors live on the device [`ccad_core::backend::device`] picks; autodiff is switched on for
//! the parameters of a step only.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use ccad_core::seed::Rng;

use crate::net::{Layout, Mlp};
use crate::ppo::{
    ADAM_BETAS, Engine, Hyper, LossStats, Minibatch, RolloutBatch, epoch_order, minibatch_ranges,
};

pub struct BurnEngine {
    layout: Layout,
    hyper: Hyper,
    g: usize,
    device: Device,
    /// `[G, P]`, without autodiff.
    params: Tensor<2>,
    m: Tensor<2>,
    v: Tensor<2>,
    t: i32,
}

fn t2(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn t3(v: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Each row's L2 norm clipped to `max_norm` (`coef = max / (norm + 1e-6)`, at most 1): one
/// learner's large gradient never scales another's.
pub fn clip_per_learner(g: Tensor<2>, max_norm: f32) -> Tensor<2> {
    let norm = g.clone().square().sum_dim(1).sqrt(); // [G, 1]
    let coef = (norm + 1e-6).recip().mul_scalar(max_norm).clamp_max(1.0);
    g * coef
}

/// The minibatches of all learners as `[G, B, …]` tensors.
struct Stacked {
    obs: Tensor<3>,
    actions: Tensor<3, Int>,
    old_logp: Tensor<2>,
    adv: Tensor<2>,
    ret: Tensor<2>,
}

impl BurnEngine {
    pub fn new(layout: Layout, hyper: Hyper, params: &[Vec<f32>], device: &Device) -> Self {
        let g = params.len();
        let p = layout.len();
        let flat: Vec<f32> = params.iter().flatten().copied().collect();
        let params = t2(flat, [g, p], device);
        Self {
            layout,
            hyper,
            g,
            device: device.clone(),
            m: params.zeros_like(),
            v: params.zeros_like(),
            params,
            t: 0,
        }
    }

    fn mlp(&self, p: &Tensor<2>, mlp: Mlp, mut x: Tensor<3>) -> Tensor<3> {
        let g = self.g;
        for l in 0..3 {
            let (din, dout) = (mlp.dims[l], mlp.dims[l + 1]);
            let w = p.clone().slice([0..g, mlp.w(l)]).reshape([g, din, dout]);
            let b = p.clone().slice([0..g, mlp.b(l)]).reshape([g, 1, dout]);
            x = x.matmul(w) + b;
            if l < 2 {
                x = x.tanh();
            }
        }
        x
    }

    fn stack(&self, mbs: &[Minibatch]) -> Stacked {
        let (g, b, d) = (self.g, mbs[0].len(), self.layout.obs_dim);
        let cat = |f: &dyn Fn(&Minibatch) -> &[f32]| -> Vec<f32> {
            mbs.iter().flat_map(|m| f(m).iter().copied()).collect()
        };
        let acts: Vec<i64> = mbs
            .iter()
            .flat_map(|m| m.actions.iter().map(|&a| a as i64))
            .collect();
        Stacked {
            obs: t3(cat(&|m| &m.obs), [g, b, d], &self.device),
            actions: Tensor::from_data(TensorData::new(acts, [g, b, 1]), &self.device),
            old_logp: t2(cat(&|m| &m.old_logp), [g, b], &self.device),
            adv: t2(cat(&|m| &m.advantages), [g, b], &self.device),
            ret: t2(cat(&|m| &m.returns), [g, b], &self.device),
        }
    }

    /// Per-learner losses `[G, 1]` (policy, value) and diagnostics (approx_kl, clipfrac).
    fn losses(&self, p: &Tensor<2>, s: Stacked) -> (Tensor<2>, [Tensor<2>; 4]) {
        let (g, b) = (self.g, s.adv.dims()[1]);
        let h = self.hyper;
        let logits = self.mlp(p, self.layout.actor(), s.obs.clone());
        let logp_all = log_softmax(logits, 2);
        let logp = logp_all.clone().gather(2, s.actions).reshape([g, b]);
        let log_ratio = logp - s.old_logp;
        let ratio = log_ratio.clone().exp();
        let surr1 = s.adv.clone() * ratio.clone();
        let surr2 = s.adv * ratio.clone().clamp(1.0 - h.clip, 1.0 + h.clip);
        let mut policy = surr1.min_pair(surr2).mean_dim(1).neg();
        if h.ent_coef != 0.0 {
            let entropy = (logp_all.clone().exp() * logp_all)
                .sum_dim(2)
                .reshape([g, b])
                .neg();
            policy = policy - entropy.mean_dim(1).mul_scalar(h.ent_coef);
        }
        let values = self.mlp(p, self.layout.critic(), s.obs).reshape([g, b]);
        let value = (values - s.ret).square().mean_dim(1);
        let loss = policy.clone() + value.clone().mul_scalar(h.vf_coef);
        let r = ratio.detach();
        let kl = ((r.clone() - 1.0) - log_ratio.detach()).mean_dim(1);
        let clipfrac = (r - 1.0).abs().greater_elem(h.clip).float().mean_dim(1);
        (loss, [policy, value, kl, clipfrac])
    }

    /// Every learner's unclipped loss gradient on its minibatch, `[G, P]`.
    pub fn gradients(&self, mbs: &[Minibatch]) -> (Tensor<2>, Vec<LossStats>) {
        let p = self.params.clone().autodiff().require_grad();
        let (loss, parts) = self.losses(&p, self.stack(mbs));
        let grads = loss.sum().backward();
        let g = p.grad(&grads).expect("parameters take part in the loss");
        (g, self.read_stats(parts))
    }

    fn read_stats(&self, parts: [Tensor<2>; 4]) -> Vec<LossStats> {
        let all = Tensor::cat(parts.map(|t| t.inner()).to_vec(), 1);
        let v: Vec<f32> = all.into_data().try_into_vec_as::<f32>().expect("f32 stats");
        v.chunks_exact(4)
            .map(|c| LossStats {
                policy_loss: c[0] as f64,
                value_loss: c[1] as f64,
                entropy: 0.0,
                approx_kl: c[2] as f64,
                clipfrac: c[3] as f64,
            })
            .collect()
    }

    /// One batched step: gradients, per-learner clipping, Adam on the stacked moments.
    pub fn step(&mut self, mbs: &[Minibatch]) -> Vec<LossStats> {
        let (g, stats) = self.gradients(mbs);
        let g = clip_per_learner(g, self.hyper.max_grad_norm);
        self.t += 1;
        let (b1, b2) = ADAM_BETAS;
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2_sqrt = (1.0 - b2.powi(self.t)).sqrt();
        self.m = self.m.clone().mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
        self.v = self.v.clone().mul_scalar(b2) + g.square().mul_scalar(1.0 - b2);
        let denom = self
            .v
            .clone()
            .sqrt()
            .div_scalar(bc2_sqrt)
            .add_scalar(self.hyper.adam_eps);
        self.params =
            self.params.clone() - (self.m.clone() / denom).mul_scalar(self.hyper.lr / bc1);
        stats
    }

    pub fn params_vec(&self) -> Vec<Vec<f32>> {
        let v: Vec<f32> = self
            .params
            .clone()
            .into_data()
            .try_into_vec_as::<f32>()
            .expect("f32 params");
        v.chunks_exact(self.layout.len())
            .map(<[f32]>::to_vec)
            .collect()
    }
}

impl Engine for BurnEngine {
    fn name(&self) -> &'static str {
        "burn"
    }

    fn act(&mut self, obs: &[f32], n: usize, logits: &mut [f32], values: &mut [f32]) {
        let x = t3(obs.to_vec(), [self.g, n, self.layout.obs_dim], &self.device);
        let l = self.mlp(&self.params, self.layout.actor(), x.clone());
        let v = self.mlp(&self.params, self.layout.critic(), x);
        logits.copy_from_slice(&l.into_data().try_into_vec_as::<f32>().expect("f32"));
        values.copy_from_slice(&v.into_data().try_into_vec_as::<f32>().expect("f32"));
    }

    fn update(&mut self, rollouts: &[RolloutBatch], rngs: &mut [Rng]) -> Vec<LossStats> {
        let n = rollouts[0].len();
        let mut mbs = vec![Minibatch::default(); self.g];
        let mut total = vec![LossStats::default(); self.g];
        let mut count = 0usize;
        for _ in 0..self.hyper.n_epochs {
            let orders: Vec<Vec<usize>> = rngs.iter_mut().map(|r| epoch_order(r, n)).collect();
            for range in minibatch_ranges(n, self.hyper.minibatch) {
                for ((mb, r), order) in mbs.iter_mut().zip(rollouts).zip(&orders) {
                    mb.gather(r, &order[range.clone()]);
                }
                for (t, s) in total.iter_mut().zip(self.step(&mbs)) {
                    t.add(&s);
                }
                count += 1;
            }
        }
        total
            .iter()
            .map(|t| t.scaled(1.0 / count.max(1) as f64))
            .collect()
    }

    fn params(&self) -> Vec<Vec<f32>> {
        self.params_vec()
    }
}
