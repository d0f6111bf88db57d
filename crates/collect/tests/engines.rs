//! The fast path against burn: same weights, same minibatches → same gradients and same step;
//! learners stacked in one batch equal learners run alone.

use rand::Rng as _;

use ccad_core::backend::{self, Engine};
use ccad_core::config::Config;
use ccad_core::env::make_env;
use collect::burn_learners::{BurnEngine, clip_per_learner};
use collect::net::Layout;
use collect::ppo::{Hyper, Minibatch, NativeLearner};
use collect::train_learners;

const LAYOUT: Layout = Layout {
    obs_dim: 2,
    hidden: 8,
    n_actions: 5,
};

fn hyper() -> Hyper {
    Hyper {
        lr: 3e-4,
        adam_eps: 1e-5,
        clip: 0.2,
        ent_coef: 0.0,
        vf_coef: 0.5,
        max_grad_norm: 0.5,
        n_epochs: 2,
        minibatch: 6,
    }
}

/// Weights of order 1 (the policy head's 0.01 gain would make its gradients tiny).
fn random_params(seed: u64) -> Vec<f32> {
    let mut r = ccad_core::seed::rng(seed, 99);
    (0..LAYOUT.len())
        .map(|_| r.random_range(-0.6..0.6))
        .collect()
}

fn random_minibatch(seed: u64, b: usize, value_scale: f32) -> Minibatch {
    let mut r = ccad_core::seed::rng(seed, 7);
    let mut mb = Minibatch {
        obs: (0..2 * b).map(|_| r.random_range(0..9) as f32).collect(),
        actions: (0..b).map(|_| r.random_range(0..5)).collect(),
        // Old log-probabilities near the current ones so some ratios fall inside the clip
        // range and some outside.
        old_logp: (0..b).map(|_| r.random_range(-2.2..-1.0)).collect(),
        advantages: (0..b).map(|_| r.random_range(-1.0..1.0)).collect(),
        returns: (0..b)
            .map(|_| value_scale * r.random_range(-1.0..3.0))
            .collect(),
    };
    collect::ppo::normalize_advantages(&mut mb.advantages);
    mb
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-3);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

#[test]
fn native_gradients_match_burn_autodiff() {
    let params: Vec<Vec<f32>> = (0..3).map(random_params).collect();
    let mbs: Vec<Minibatch> = (0..3).map(|s| random_minibatch(s, 6, 1.0)).collect();
    let burn = BurnEngine::new(LAYOUT, hyper(), &params, &backend::device());
    let (g, stats) = burn.gradients(&mbs);
    let g: Vec<f32> = g.into_data().try_into_vec_as::<f32>().unwrap();
    let mut clipfrac_sum = 0.0;
    for (k, (p, mb)) in params.iter().zip(&mbs).enumerate() {
        let mut nl = NativeLearner::new(LAYOUT, hyper(), p.clone());
        let s = nl.gradients(mb);
        let gb = &g[k * LAYOUT.len()..(k + 1) * LAYOUT.len()];
        assert_close(&nl.grads, gb, 1e-4, &format!("learner {k} grads"));
        assert!(
            nl.grads.iter().any(|x| x.abs() > 1e-3),
            "a gradient worth comparing"
        );
        assert!((s.policy_loss - stats[k].policy_loss).abs() < 1e-5);
        assert!((s.value_loss - stats[k].value_loss).abs() < 1e-4 * s.value_loss.max(1.0));
        assert!((s.approx_kl - stats[k].approx_kl).abs() < 1e-5);
        assert!((s.clipfrac - stats[k].clipfrac).abs() < 1e-6);
        clipfrac_sum += s.clipfrac;
    }
    // Both branches of the clipped objective took part.
    assert!(clipfrac_sum > 0.0 && clipfrac_sum < 3.0, "{clipfrac_sum}");
}

#[test]
fn native_step_matches_burn_step() {
    let params: Vec<Vec<f32>> = (0..2).map(|s| random_params(10 + s)).collect();
    let mut burn = BurnEngine::new(LAYOUT, hyper(), &params, &backend::device());
    let mut natives: Vec<NativeLearner> = params
        .iter()
        .map(|p| NativeLearner::new(LAYOUT, hyper(), p.clone()))
        .collect();
    for round in 0..3 {
        let mbs: Vec<Minibatch> = (0..2)
            .map(|s| random_minibatch(100 * round + s, 6, 1.0))
            .collect();
        burn.step(&mbs);
        for (n, mb) in natives.iter_mut().zip(&mbs) {
            n.step(mb);
        }
    }
    for (k, (n, b)) in natives.iter().zip(burn.params_vec()).enumerate() {
        assert_close(&n.params, &b, 1e-5, &format!("learner {k} params"));
        assert_ne!(n.params, params[k], "the steps moved the weights");
    }
}

#[test]
fn clipping_is_per_learner() {
    // Rows (30, 40) (norm 50) and (0.03, 0.04) (norm 0.05), max 0.5: the first is scaled to
    // (0.3, 0.4); the second is under the limit and untouched.
    let g = burn::tensor::Tensor::<2>::from_data(
        burn::tensor::TensorData::new(vec![30.0f32, 40.0, 0.03, 0.04], [2, 2]),
        &backend::device(),
    );
    let c: Vec<f32> = clip_per_learner(g, 0.5)
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert_close(&c, &[0.3, 0.4, 0.03, 0.04], 1e-6, "clipped");

    // In a batched step, learner 0's huge value gradient (returns ×1e6) leaves learner 1's
    // update exactly as if learner 1 had stepped alone.
    let params: Vec<Vec<f32>> = (0..2).map(|s| random_params(20 + s)).collect();
    let mbs = vec![random_minibatch(1, 6, 1e6), random_minibatch(2, 6, 1.0)];
    let mut both = BurnEngine::new(LAYOUT, hyper(), &params, &backend::device());
    both.step(&mbs);
    let mut alone = BurnEngine::new(LAYOUT, hyper(), &params[1..], &backend::device());
    alone.step(&mbs[1..]);
    assert_close(
        &both.params_vec()[1],
        &alone.params_vec()[0],
        1e-6,
        "learner 1",
    );
}

fn tiny_config() -> Config {
    let text = r#"
[env]
grid = 3
horizon = 4
[ppo]
n_streams = 3
n_steps = 4
minibatch_size = 5
n_epochs = 2
hidden = 8
total_steps = 24
[collect]
dataset = "tiny"
"#;
    Config::from_toml_str(text, "tiny.toml", &[]).unwrap()
}

#[test]
fn batched_learners_equal_separate_learners() {
    let cfg = tiny_config();
    let env = make_env(&cfg.env);
    for kind in [Engine::Native, Engine::Burn] {
        let together =
            train_learners(&cfg, env.as_ref(), &[2, 5, 7], kind, true, &mut |_| Ok(())).unwrap();
        for (g, &task) in [2usize, 5, 7].iter().enumerate() {
            let alone =
                train_learners(&cfg, env.as_ref(), &[task], kind, true, &mut |_| Ok(())).unwrap();
            assert_close(
                &together.params[g],
                &alone.params[0],
                1e-6,
                &format!("{kind:?} task {task}"),
            );
            assert_eq!(
                together.histories[g], alone.histories[0],
                "{kind:?} task {task} history"
            );
        }
    }
}
