//! How an action is chosen from the action logits: argmax, or a draw from the tempered softmax.

use ccad_core::config::EvalConfig;
use ccad_core::seed::Rng;
use rand::Rng as _;

/// How an action is chosen from the action logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Argmax (ties: the lowest action).
    Greedy,
    /// Sample from `softmax(logits / temperature)`.
    Temperature(f64),
}

impl Sampling {
    pub fn from_config(eval: &EvalConfig) -> Self {
        if eval.greedy {
            Sampling::Greedy
        } else {
            Sampling::Temperature(eval.temperature)
        }
    }
}

/// Index of the largest value (the first of equals).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// An action from logits: argmax, or a draw from `softmax(logits / temperature)` by inverting
/// the cumulative distribution at one uniform number.
pub fn choose(logits: &[f32], sampling: Sampling, rng: &mut Rng) -> usize {
    match sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::Temperature(temp) => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let inv = 1.0 / temp;
            let weights: Vec<f64> = logits
                .iter()
                .map(|&x| ((x - max) as f64 * inv).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut u = rng.random::<f64>() * total;
            for (i, w) in weights.iter().enumerate() {
                if u < *w {
                    return i;
                }
                u -= w;
            }
            // Rounding left `u` past the last weight: the last action with any weight.
            weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccad_core::seed::rng;

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, -1.0]), 1);
        assert_eq!(argmax(&[3.0]), 0);
    }

    #[test]
    fn sampling_follows_the_tempered_softmax() {
        // logits ln(1), ln(3) → probabilities 1/4, 3/4 at temperature 1; at temperature 2 the
        // logits halve: weights 1, sqrt(3) → 1/(1 + 1.732) = 0.366 for action 0.
        let logits = [0.0f32, 3f32.ln()];
        let mut r = rng(7, 0);
        let n = 20_000;
        let zeros = (0..n)
            .filter(|_| choose(&logits, Sampling::Temperature(1.0), &mut r) == 0)
            .count();
        assert!((zeros as f64 / n as f64 - 0.25).abs() < 0.015, "{zeros}");
        let zeros = (0..n)
            .filter(|_| choose(&logits, Sampling::Temperature(2.0), &mut r) == 0)
            .count();
        assert!((zeros as f64 / n as f64 - 0.366).abs() < 0.015, "{zeros}");
        assert_eq!(choose(&logits, Sampling::Greedy, &mut r), 1);
        // A huge logit gap: the other action's weight underflows to exactly 0.
        assert!((0..100).all(|_| choose(&[0.0, 1e4], Sampling::Temperature(1.0), &mut r) == 1));
    }
}
