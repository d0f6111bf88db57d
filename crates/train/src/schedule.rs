//! Learning-rate schedule: linear warm-up, then cosine decay to 0 at the last step.

use ccad_core::config::TrainConfig;

/// Learning rate of optimiser step `step` (0-based) out of `steps`.
///
/// Warm-up: `lr · (step + 1) / warmup` for `step < warmup` (the first step already moves the
/// weights). Then `lr · ½(1 + cos(π · p))` with `p = (step − warmup) / (steps − warmup)`, so
/// the peak is reached at `step = warmup` and the rate would reach 0 at `step = steps`.
pub fn learning_rate(lr: f64, warmup: usize, steps: usize, step: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = steps.saturating_sub(warmup).max(1) as f64;
    let p = ((step - warmup) as f64 / span).min(1.0);
    lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}

/// [`learning_rate`] with the `[train]` section's values.
pub fn lr_at(t: &TrainConfig, step: usize) -> f64 {
    learning_rate(t.lr, t.warmup_steps, t.steps, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_then_cosine_by_hand() {
        // lr 1, warm-up 4, 12 steps: warm-up 0.25, 0.5, 0.75; then p = (s - 4) / 8:
        // s=4: p 0 → 1; s=6: p 1/4 → ½(1 + cos π/4) = ½ + √2/4 ≈ 0.853553;
        // s=8: p ½ → 0.5; s=10: p 3/4 → ½ − √2/4 ≈ 0.146447; s=12: p 1 → 0.
        let lr = |s| learning_rate(1.0, 4, 12, s);
        assert!(close(lr(0), 0.25));
        assert!(close(lr(1), 0.5));
        assert!(close(lr(3), 1.0));
        assert!(close(lr(4), 1.0));
        assert!(close(lr(6), 0.5 + 2f64.sqrt() / 4.0));
        assert!(close(lr(8), 0.5));
        assert!(close(lr(10), 0.5 - 2f64.sqrt() / 4.0));
        assert!(close(lr(12), 0.0));
        assert!(close(lr(20), 0.0), "past the end it stays at 0");
    }

    #[test]
    fn no_warmup_and_warmup_longer_than_the_run() {
        // warm-up 0: step 0 is the peak. 3e-4 · ½(1 + cos(π/2)) = 1.5e-4 at the midpoint.
        assert!(close(learning_rate(3e-4, 0, 10, 0), 3e-4));
        assert!(close(learning_rate(3e-4, 0, 10, 5), 1.5e-4));
        // warm-up 10 of 5 steps: still ramping when the run ends.
        assert!(close(learning_rate(1.0, 10, 5, 4), 0.5));
    }
}
