//! Generalised advantage estimation over one rollout, as stable-baselines3 computes it.
//!
//! Buffers are time-major `[n_steps, n_streams]`. `dones[t][s]` says the step taken at `t`
//! ended an episode: a terminal, so nothing is bootstrapped across it. After the last step the
//! value of the current observation (`last_values`) bootstraps every stream whose last step did
//! not end an episode.

/// Advantages and returns (`advantage + value`) of one rollout.
///
/// `δ_t = r_t + γ·V(s_{t+1})·(1 − done_t) − V(s_t)`,
/// `A_t = δ_t + γ·λ·(1 − done_t)·A_{t+1}`, with `V(s_T) = last_values`, `A_T = 0`.
#[allow(clippy::too_many_arguments)] // the buffers of one rollout, named
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_values: &[f32],
    gamma: f32,
    lambda: f32,
    advantages: &mut [f32],
    returns: &mut [f32],
) {
    let n = last_values.len();
    let steps = rewards.len() / n;
    assert_eq!(rewards.len(), steps * n);
    assert_eq!(values.len(), steps * n);
    assert_eq!(dones.len(), steps * n);
    for (s, &last) in last_values.iter().enumerate() {
        let mut next_adv = 0.0f32;
        let mut next_value = last;
        for t in (0..steps).rev() {
            let i = t * n + s;
            let live = if dones[i] { 0.0 } else { 1.0 };
            let delta = rewards[i] + gamma * next_value * live - values[i];
            next_adv = delta + gamma * lambda * live * next_adv;
            advantages[i] = next_adv;
            returns[i] = next_adv + values[i];
            next_value = values[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            0.5,
            0.5,
            &mut a,
            &mut r,
        );
        close(&a, &[0.5, -2.0, 3.0]);
        close(&r, &[1.5, 0.0, 4.0]);
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
            1.0,
            1.0,
            &mut a,
            &mut r,
        );
        close(&a, &[11.0, 1.0, 11.0, 0.0]);
        close(&r, &[11.0, 2.0, 11.0, 1.0]);
    }
}
