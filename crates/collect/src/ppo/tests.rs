//! PPO's pure steps against hand-computed values: GAE, the minibatch order and
//! normalisation, the clipped losses and their gradients.

use super::*;

// 1. Rollout

#[test]
fn sampling_walks_the_cumulative_distribution() {
    // Logits (0, ln 3) → π = (0.25, 0.75). u = 0.2 < 0.25 → action 0; u = 0.5 and 0.9999
    // fall past the first 0.25 → action 1. The log-probability returned is the action's.
    let logits = [0.0, 3f32.ln()];
    let mut logp = [0.0f32; 2];
    let (a, lp) = sample(&logits, 0.2, &mut logp);
    assert_eq!(a, 0);
    assert!((lp - 0.25f32.ln()).abs() < 1e-6);
    for u in [0.5, 0.9999] {
        let (a, lp) = sample(&logits, u, &mut logp);
        assert_eq!(a, 1);
        assert!((lp - 0.75f32.ln()).abs() < 1e-6);
    }
}

// 2. GAE

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn episode_end_inside_rollout_and_bootstrap_at_its_end() {
    // One stream, 3 steps, γ = 0.5, λ = 0.5 (γλ = 0.25).
    // r = [1, 0, 2], V = [1, 2, 1], done = [F, T, F], V(s_3) = 4.
    // t=2: δ = 2 + 0.5·4 − 1 = 3;              A = 3
    // t=1: δ = 0 + 0 (terminal) − 2 = −2;      A = −2 (no carry across the end)
    // t=0: δ = 1 + 0.5·2 − 1 = 1;              A = 1 + 0.25·(−2) = 0.5
    // returns = A + V = [1.5, 0, 4]
    let (mut a, mut r) = (vec![0.0; 3], vec![0.0; 3]);
    gae(
        &[1.0, 0.0, 2.0],
        &[1.0, 2.0, 1.0],
        &[false, true, false],
        &[4.0],
        (0.5, 0.5),
        (&mut a, &mut r),
    );
    close(&a, &[0.5, -2.0, 3.0]);
    close(&r, &[1.5, 0.0, 4.0]);
    // The rollout buffer's step 2 is the same function over its own columns.
    let mut rb = RolloutBatch {
        rewards: vec![1.0, 0.0, 2.0],
        values: vec![1.0, 2.0, 1.0],
        dones: vec![false, true, false],
        ..RolloutBatch::zeros(3, 1)
    };
    rb.advantages_and_returns(&[4.0], 0.5, 0.5);
    assert_eq!((rb.advantages, rb.returns), (a, r));
}

#[test]
fn streams_are_independent_and_time_major() {
    // Two streams, 2 steps, γ = 1, λ = 1: A_t = Σ future rewards + bootstrap − V(s_t).
    // Layout [t][s]: stream 0 r = [0, 1], V = [0, 0], no ends, V(s_2) = 10 → A = [11, 11].
    // stream 1 r = [1, 1], V = [1, 1], ends at t=1 (last step), V(s_2) = 10 ignored
    //   t=1: δ = 1 − 1 = 0; t=0: δ = 1 + 1 − 1 = 1, A = 1 + 0 = 1 → A = [1, 0].
    let (mut a, mut r) = (vec![0.0; 4], vec![0.0; 4]);
    gae(
        &[0.0, 1.0, 1.0, 1.0],
        &[0.0, 1.0, 0.0, 1.0],
        &[false, false, false, true],
        &[10.0, 10.0],
        (1.0, 1.0),
        (&mut a, &mut r),
    );
    close(&a, &[11.0, 1.0, 11.0, 0.0]);
    close(&r, &[11.0, 2.0, 11.0, 1.0]);
}

// 3. Epochs × minibatches

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
        ..Default::default()
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

// 4. Clipped losses

fn batch<'a>(
    logits: &'a [f32],
    n_actions: usize,
    actions: &'a [i32],
    old_logp: &'a [f32],
    advantages: &'a [f32],
) -> PolicyBatch<'a> {
    PolicyBatch {
        logits,
        n_actions,
        actions,
        old_logp,
        advantages,
    }
}

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
        batch(
            &logits,
            2,
            &[0, 1],
            &[0.25f32.ln(), (0.5f32 / 0.9).ln()],
            &[1.0, -1.0],
        ),
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
        batch(&[0.0, 0.0], 2, &[0], &[0.5f32.ln()], &[0.0]),
        0.2,
        0.1,
        &mut d,
    );
    assert!((s.policy_loss + 0.1 * 2f64.ln()).abs() < 1e-6);
    assert!(d.iter().all(|x| x.abs() < 1e-7));
    // logits (ln 3, 0): p = (0.75, 0.25), H = 0.562335; ∂H/∂l0 = −0.75(ln 0.75 + H)
    // = −0.75·(−0.287682 + 0.562335) = −0.205990; loss −= 0.1·H → dlogit0 = +0.0205990.
    let s = policy_loss(
        batch(&[3f32.ln(), 0.0], 2, &[0], &[0.75f32.ln()], &[0.0]),
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
