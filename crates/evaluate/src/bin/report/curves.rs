//! The in-context learning curve of one run: return / optimal per episode index, its mean over
//! environments (tasks × seeds) and the standard error of that mean.

/// The level "episodes to 80% of optimal" asks for.
pub const TARGET: f64 = 0.8;

#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Mean normalised return per episode index (episode 1 first).
    pub mean: Vec<f64>,
    /// Standard error of that mean (sample standard deviation / √n; 0 for one environment).
    pub se: Vec<f64>,
    /// Environments averaged: those with a positive optimum.
    pub n_envs: usize,
}

impl Curve {
    /// `returns`: row-major `[optimal.len(), n_episodes]`. Environments whose optimum is not
    /// positive cannot be normalised and are left out, as in `evaluate::summary`. `None` when
    /// none is left.
    pub fn normalised(returns: &[f32], optimal: &[f32], n_episodes: usize) -> Option<Self> {
        assert_eq!(
            returns.len(),
            optimal.len() * n_episodes,
            "returns vs shape"
        );
        let rows: Vec<Vec<f64>> = returns
            .chunks_exact(n_episodes.max(1))
            .zip(optimal)
            .filter(|(_, o)| **o > 0.0)
            .map(|(r, &o)| r.iter().map(|&x| x as f64 / o as f64).collect())
            .collect();
        let n = rows.len();
        if n == 0 {
            return None;
        }
        let (mut mean, mut se) = (
            Vec::with_capacity(n_episodes),
            Vec::with_capacity(n_episodes),
        );
        for j in 0..n_episodes {
            let m = rows.iter().map(|r| r[j]).sum::<f64>() / n as f64;
            let s = if n > 1 {
                let var = rows.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / (n - 1) as f64;
                (var / n as f64).sqrt()
            } else {
                0.0
            };
            mean.push(m);
            se.push(s);
        }
        Some(Self {
            mean,
            se,
            n_envs: n,
        })
    }

    /// Mean at 1-based `episode`; `None` past the end.
    pub fn at(&self, episode: usize) -> Option<f64> {
        episode
            .checked_sub(1)
            .and_then(|i| self.mean.get(i).copied())
    }

    /// The last episode's mean.
    pub fn last(&self) -> f64 {
        *self.mean.last().expect("a curve has an episode")
    }

    /// First 1-based episode whose mean reaches `level`; `None` if none does.
    pub fn episodes_to(&self, level: f64) -> Option<usize> {
        self.mean.iter().position(|&m| m >= level).map(|i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_standard_error_and_crossing_of_a_hand_made_run() {
        // 3 environments × 4 episodes; the third has optimum 0 and is left out.
        // env 0 (optimum 10): 0, 5, 10, 10  → 0.0, 0.5, 1.0, 1.0
        // env 1 (optimum 20): 4, 8, 12, 20  → 0.2, 0.4, 0.6, 1.0
        let returns = [
            0.0, 5.0, 10.0, 10.0, 4.0, 8.0, 12.0, 20.0, 9.0, 9.0, 9.0, 9.0,
        ];
        let c = Curve::normalised(&returns, &[10.0, 20.0, 0.0], 4).unwrap();
        assert_eq!(c.n_envs, 2);
        // Means: 0.1, 0.45, 0.8, 1.0.
        for (got, want) in c.mean.iter().zip([0.1, 0.45, 0.8, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{:?}", c.mean);
        }
        // Two values a, b: sample sd = |a − b|/√2, se = sd/√2 = |a − b|/2:
        // 0.1, 0.05, 0.2, 0.
        for (got, want) in c.se.iter().zip([0.1, 0.05, 0.2, 0.0]) {
            assert!((got - want).abs() < 1e-12, "{:?}", c.se);
        }
        // 0.6/1.0 → mean exactly 0.8 at episode 3 counts as reached.
        assert_eq!(c.episodes_to(TARGET), Some(3));
        assert_eq!(c.episodes_to(1.01), None);
        assert_eq!(c.at(1), Some(c.mean[0]));
        assert_eq!(c.at(0), None);
        assert_eq!(c.at(5), None);
        assert_eq!(c.last(), 1.0);
    }

    #[test]
    fn four_environments_standard_error() {
        // Values 0, 0.5, 1, 0: mean 0.375; squared deviations 0.140625 + 0.015625 + 0.390625
        // + 0.140625 = 0.6875; sample variance 0.6875/3; se = √(0.6875/3/4) = 0.2393567…
        let c = Curve::normalised(&[0.0, 5.0, 20.0, 0.0], &[10.0, 10.0, 20.0, 20.0], 1).unwrap();
        assert!((c.mean[0] - 0.375).abs() < 1e-12);
        assert!((c.se[0] - (0.6875f64 / 12.0).sqrt()).abs() < 1e-12);
        assert!((c.se[0] - 0.239_356_7).abs() < 1e-6);
    }

    #[test]
    fn one_environment_has_no_spread_and_none_positive_gives_none() {
        let c = Curve::normalised(&[1.0, 2.0], &[4.0], 2).unwrap();
        assert_eq!(
            (c.mean.clone(), c.se.clone()),
            (vec![0.25, 0.5], vec![0.0, 0.0])
        );
        assert!(Curve::normalised(&[1.0, 2.0], &[0.0], 2).is_none());
    }
}
