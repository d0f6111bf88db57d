//! The statistics an experiment reports: means, sample standard deviations, standard errors over
//! training seeds, and paired differences between arms with Student-t 95% intervals.
//!
//! Empty or one-value inputs give NaN wherever the quantity is undefined (a standard deviation
//! of one value, an interval from one difference); NaN in an input propagates.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided 95% intervals use this quantile of Student's t.
pub const CI95_QUANTILE: f64 = 0.975;

/// Arithmetic mean; NaN when empty.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample standard deviation (divisor n − 1); NaN for fewer than two values.
pub fn sample_sd(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return f64::NAN;
    }
    let m = mean(values);
    let squares = values.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    (squares / (n - 1) as f64).sqrt()
}

/// Standard error of the mean, sd / √n; NaN for fewer than two values.
pub fn sem(values: &[f64]) -> f64 {
    sample_sd(values) / (values.len() as f64).sqrt()
}

/// The `p` quantile of Student's t with `df` degrees of freedom (its inverse CDF). NaN when `p`
/// is outside [0, 1] or `df` is not positive.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// A mean with its standard error and the number of values behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSem {
    pub mean: f64,
    pub sem: f64,
    pub n: usize,
}

impl MeanSem {
    pub fn of(values: &[f64]) -> Self {
        Self {
            mean: mean(values),
            sem: sem(values),
            n: values.len(),
        }
    }
}

/// The mean of per-seed differences (arm − baseline) and its 95% Student-t interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    pub mean_diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Training seeds present in both arms.
    pub n: usize,
}

/// Differences `arm − baseline` paired by training seed (the `u64`), over the seeds present in
/// both, in the arm's order; the interval is `mean ± t(0.975, n − 1) · sem`, NaN for n < 2.
///
/// # Panics
/// When a seed appears twice on one side: the cells were gathered wrongly and no pairing is
/// right.
pub fn paired(arm: &[(u64, f64)], baseline: &[(u64, f64)]) -> Paired {
    for (side, values) in [("arm", arm), ("baseline", baseline)] {
        for (i, (seed, _)) in values.iter().enumerate() {
            assert!(
                !values[..i].iter().any(|(s, _)| s == seed),
                "training seed {seed} appears twice in the {side}'s values"
            );
        }
    }
    let diffs: Vec<f64> = arm
        .iter()
        .filter_map(|(seed, a)| baseline.iter().find(|(s, _)| s == seed).map(|(_, b)| a - b))
        .collect();
    let n = diffs.len();
    let mean_diff = mean(&diffs);
    let half_width = if n < 2 {
        f64::NAN
    } else {
        t_quantile(CI95_QUANTILE, (n - 1) as f64) * sem(&diffs)
    };
    Paired {
        mean_diff,
        ci_low: mean_diff - half_width,
        ci_high: mean_diff + half_width,
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mean_sd_and_sem_of_hand_computed_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: sum 40, mean 5; squared deviations 9+1+1+1+0+0+4+16 = 32;
        // sample variance 32 / 7, sd √(32/7) = 2.138090; sem = sd / √8 = 0.755929.
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&v), 5.0);
        assert!(close(sample_sd(&v), (32.0f64 / 7.0).sqrt(), 1e-12));
        assert!(close(sample_sd(&v), 2.138090, 1e-6));
        assert!(close(sem(&v), 0.755929, 1e-6));
        // 1, 3: mean 2, variance (1 + 1) / 1 = 2, sd √2, sem √2 / √2 = 1.
        assert!(close(sem(&[1.0, 3.0]), 1.0, 1e-12));
        let m = MeanSem::of(&[1.0, 3.0]);
        assert_eq!((m.mean, m.n), (2.0, 2));
        assert!(close(m.sem, 1.0, 1e-12));
    }

    #[test]
    fn undefined_spreads_are_nan() {
        assert!(mean(&[]).is_nan());
        assert!(sample_sd(&[3.0]).is_nan());
        assert!(sem(&[3.0]).is_nan());
        assert!(sem(&[]).is_nan());
        let one = MeanSem::of(&[3.0]);
        assert_eq!((one.mean, one.n), (3.0, 1));
        assert!(one.sem.is_nan());
        assert!(mean(&[1.0, f64::NAN]).is_nan());
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        // Standard t tables: t(0.975; 1) = 12.706205, t(0.975; 2) = 4.302653,
        // t(0.975; 4) = 2.776445, t(0.975; 9) = 2.262157, t(0.95; 10) = 1.812461.
        assert!(close(t_quantile(0.975, 1.0), 12.706205, 1e-5));
        assert!(close(t_quantile(0.975, 2.0), 4.302653, 1e-6));
        assert!(close(t_quantile(0.975, 4.0), 2.776445, 1e-6));
        assert!(close(t_quantile(0.975, 9.0), 2.262157, 1e-6));
        assert!(close(t_quantile(0.95, 10.0), 1.812461, 1e-6));
        // Symmetric about 0.
        assert!(close(t_quantile(0.025, 4.0), -2.776445, 1e-6));
        assert_eq!(t_quantile(0.5, 3.0), 0.0);
        assert!(t_quantile(0.975, 0.0).is_nan());
        assert!(t_quantile(1.5, 3.0).is_nan());
    }

    #[test]
    fn paired_differences_by_seed() {
        // Seeds 1, 2, 3 in both (7 only in the arm, 9 only in the baseline, order differs):
        // differences 3 − 1 = 2, 5 − 2 = 3, 4 − 0 = 4: mean 3, sd 1, sem 1/√3 = 0.577350;
        // half width t(0.975; 2) · sem = 4.302653 · 0.577350 = 2.484138.
        let arm = [(1, 3.0), (7, 100.0), (2, 5.0), (3, 4.0)];
        let baseline = [(3, 0.0), (2, 2.0), (9, -50.0), (1, 1.0)];
        let p = paired(&arm, &baseline);
        assert_eq!(p.n, 3);
        assert!(close(p.mean_diff, 3.0, 1e-12));
        assert!(close(p.ci_low, 3.0 - 2.484138, 1e-5));
        assert!(close(p.ci_high, 3.0 + 2.484138, 1e-5));
    }

    #[test]
    fn paired_interval_with_five_seeds() {
        // Differences 0.1, 0.2, 0.3, 0.4, 0.5 (baseline 0): mean 0.3; squared deviations
        // 0.04 + 0.01 + 0 + 0.01 + 0.04 = 0.1, variance 0.1 / 4 = 0.025, sd 0.158114,
        // sem 0.158114 / √5 = 0.070711; half width 2.776445 · 0.070711 = 0.196324.
        let arm: Vec<(u64, f64)> = (1..=5).map(|s| (s, 1.0 + 0.1 * s as f64)).collect();
        let baseline: Vec<(u64, f64)> = (1..=5).map(|s| (s, 1.0)).collect();
        let p = paired(&arm, &baseline);
        assert_eq!(p.n, 5);
        assert!(close(p.mean_diff, 0.3, 1e-12));
        assert!(close(p.ci_low, 0.3 - 0.196324, 1e-5));
        assert!(close(p.ci_high, 0.3 + 0.196324, 1e-5));
    }

    #[test]
    fn paired_with_fewer_than_two_seeds_has_no_interval() {
        let one = paired(&[(4, 2.5), (5, 1.0)], &[(4, 1.0)]);
        assert_eq!((one.n, one.mean_diff), (1, 1.5));
        assert!(one.ci_low.is_nan() && one.ci_high.is_nan());
        let none = paired(&[(4, 2.5)], &[(5, 1.0)]);
        assert_eq!(none.n, 0);
        assert!(none.mean_diff.is_nan() && none.ci_low.is_nan());
    }

    #[test]
    #[should_panic(expected = "training seed 2 appears twice in the baseline")]
    fn a_repeated_seed_is_refused() {
        paired(&[(2, 1.0)], &[(2, 0.0), (2, 0.5)]);
    }
}
