//! What one cell (arm × training seed) scored, and each arm's means over its training seeds.
//!
//! A cell's return metrics come from evaluate's [`Summary`]: each is first averaged over the
//! cell's environments (held-out tasks × evaluation seeds), so an arm's spread is over training
//! seeds only. Episodes count from 1.

use evaluate::Summary;
use evaluate::summary::{EDGE, EnvSummary, MilestoneCurve, tail_mean};
use serde::{Deserialize, Serialize};

use super::stats::{MeanSem, Paired, mean, paired, sem};

/// The fraction of the optimal return that `first_episode_80pct` asks for.
pub const TARGET_FRACTION: f64 = 0.8;

/// What one cell (arm × training seed) produced, as the runner gathers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellOutcome {
    pub arm: String,
    pub train_seed: u64,
    pub summary: Summary,
    pub cost: CellCost,
}

/// Costs the runner measures (it fills these; this module only carries and reports them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CellCost {
    pub labels_trained: u64,
    pub labels_per_sec: f64,
    pub samples_per_sec: f64,
    pub peak_memory_mib: f64,
    pub tokens_attended_max: f64,
    pub tokens_attended_mean: f64,
    pub flops_per_action: f64,
    pub train_wall_s: f64,
    pub eval_wall_s: f64,
}

/// [`CellCost`]'s fields in declaration order: the names of [`CellCost::values`] and
/// [`CostSummary::values`] (and of the CSV columns).
pub const COST_FIELDS: [&str; 9] = [
    "labels_trained",
    "labels_per_sec",
    "samples_per_sec",
    "peak_memory_mib",
    "tokens_attended_max",
    "tokens_attended_mean",
    "flops_per_action",
    "train_wall_s",
    "eval_wall_s",
];

impl CellCost {
    /// Every field, in [`COST_FIELDS`] order.
    pub fn values(&self) -> [f64; 9] {
        [
            self.labels_trained as f64,
            self.labels_per_sec,
            self.samples_per_sec,
            self.peak_memory_mib,
            self.tokens_attended_max,
            self.tokens_attended_mean,
            self.flops_per_action,
            self.train_wall_s,
            self.eval_wall_s,
        ]
    }
}

/// Return metrics of one cell, each first averaged over its environments (tasks × evaluation
/// seeds). NaN where the cell has no such number (fewer episodes, no positive optimum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellMetrics {
    pub return_ep1: f64,
    pub return_ep10: f64,
    pub return_ep50: f64,
    pub return_last: f64,
    /// Mean over environments and all in-context episodes (the reference implementation's
    /// metric).
    pub mean_all_episodes: f64,
    /// Mean over environments with a positive optimum of (mean of the last 10 returns /
    /// optimal return).
    pub last10_over_optimal: f64,
    /// First episode whose environment-mean of return / optimal reaches [`TARGET_FRACTION`].
    pub first_episode_80pct: Option<usize>,
}

/// The real-valued return metrics (all but `first_episode_80pct`), in the order of
/// [`CellMetrics::returns`] and [`ArmSummary::returns`].
pub const RETURN_METRICS: [&str; 6] = [
    "return_ep1",
    "return_ep10",
    "return_ep50",
    "return_last",
    "mean_all_episodes",
    "last10_over_optimal",
];

impl CellMetrics {
    /// The real-valued metrics, in [`RETURN_METRICS`] order.
    pub fn returns(&self) -> [f64; 6] {
        [
            self.return_ep1,
            self.return_ep10,
            self.return_ep50,
            self.return_last,
            self.mean_all_episodes,
            self.last10_over_optimal,
        ]
    }
}

/// Mean over `envs` of `value(env, return)`, per episode index; as long as the shortest
/// environment (a Summary's are all equally long), empty without environments.
fn per_episode_mean(envs: &[&EnvSummary], value: impl Fn(&EnvSummary, f32) -> f64) -> Vec<f64> {
    let episodes = envs.iter().map(|e| e.returns.len()).min().unwrap_or(0);
    (0..episodes)
        .map(|j| {
            mean(
                &envs
                    .iter()
                    .map(|e| value(e, e.returns[j]))
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// The cell's return per episode index, averaged over its environments.
pub fn return_curve(summary: &Summary) -> Vec<f64> {
    let envs: Vec<&EnvSummary> = summary.envs.iter().collect();
    per_episode_mean(&envs, |_, r| r as f64)
}

/// Return at 1-based `episode`; NaN past the end.
fn at_episode(curve: &[f64], episode: usize) -> f64 {
    curve.get(episode - 1).copied().unwrap_or(f64::NAN)
}

/// The return metrics of one cell, from its evaluation summary.
pub fn cell_metrics(summary: &Summary) -> CellMetrics {
    let curve = return_curve(summary);
    let normalisable: Vec<&EnvSummary> = summary
        .envs
        .iter()
        .filter(|e| e.optimal_return > 0.0)
        .collect();
    let normalised = per_episode_mean(&normalisable, |e, r| r as f64 / e.optimal_return as f64);
    let last10_fractions: Vec<f64> = normalisable
        .iter()
        .map(|e| {
            let returns: Vec<f64> = e.returns.iter().map(|&r| r as f64).collect();
            tail_mean(&returns, EDGE) / e.optimal_return as f64
        })
        .collect();
    CellMetrics {
        return_ep1: at_episode(&curve, 1),
        return_ep10: at_episode(&curve, 10),
        return_ep50: at_episode(&curve, 50),
        return_last: curve.last().copied().unwrap_or(f64::NAN),
        // Equal to the mean over every (environment, episode) since all are equally long.
        mean_all_episodes: mean(&curve),
        last10_over_optimal: mean(&last10_fractions),
        first_episode_80pct: normalised
            .iter()
            .position(|&f| f >= TARGET_FRACTION)
            .map(|i| i + 1),
    }
}

/// Each cost field's mean and standard error over an arm's seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostSummary {
    pub labels_trained: MeanSem,
    pub labels_per_sec: MeanSem,
    pub samples_per_sec: MeanSem,
    pub peak_memory_mib: MeanSem,
    pub tokens_attended_max: MeanSem,
    pub tokens_attended_mean: MeanSem,
    pub flops_per_action: MeanSem,
    pub train_wall_s: MeanSem,
    pub eval_wall_s: MeanSem,
}

impl CostSummary {
    fn of(costs: &[&CellCost]) -> Self {
        let each = |field: fn(&CellCost) -> f64| {
            MeanSem::of(&costs.iter().map(|c| field(c)).collect::<Vec<_>>())
        };
        Self {
            labels_trained: each(|c| c.labels_trained as f64),
            labels_per_sec: each(|c| c.labels_per_sec),
            samples_per_sec: each(|c| c.samples_per_sec),
            peak_memory_mib: each(|c| c.peak_memory_mib),
            tokens_attended_max: each(|c| c.tokens_attended_max),
            tokens_attended_mean: each(|c| c.tokens_attended_mean),
            flops_per_action: each(|c| c.flops_per_action),
            train_wall_s: each(|c| c.train_wall_s),
            eval_wall_s: each(|c| c.eval_wall_s),
        }
    }

    /// Every field, in [`COST_FIELDS`] order.
    pub fn values(&self) -> [MeanSem; 9] {
        [
            self.labels_trained,
            self.labels_per_sec,
            self.samples_per_sec,
            self.peak_memory_mib,
            self.tokens_attended_max,
            self.tokens_attended_mean,
            self.flops_per_action,
            self.train_wall_s,
            self.eval_wall_s,
        ]
    }
}

/// One arm's metrics: mean and standard error over its training seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmSummary {
    pub arm: String,
    pub n_seeds: usize,
    pub return_ep1: MeanSem,
    pub return_ep10: MeanSem,
    pub return_ep50: MeanSem,
    pub return_last: MeanSem,
    pub mean_all_episodes: MeanSem,
    pub last10_over_optimal: MeanSem,
    /// Over the seeds that reached [`TARGET_FRACTION`] only; `reached_80pct` says how many.
    pub first_episode_80pct: MeanSem,
    pub reached_80pct: usize,
    pub cost: CostSummary,
}

impl ArmSummary {
    /// The return metrics, in [`RETURN_METRICS`] order.
    pub fn returns(&self) -> [MeanSem; 6] {
        [
            self.return_ep1,
            self.return_ep10,
            self.return_ep50,
            self.return_last,
            self.mean_all_episodes,
            self.last10_over_optimal,
        ]
    }
}

/// Arm names in the order their first cell appears.
pub fn arms_in_order(cells: &[CellOutcome]) -> Vec<&str> {
    let mut arms: Vec<&str> = Vec::new();
    for c in cells {
        if !arms.contains(&c.arm.as_str()) {
            arms.push(&c.arm);
        }
    }
    arms
}

fn cells_of<'a>(cells: &'a [CellOutcome], arm: &str) -> Vec<&'a CellOutcome> {
    cells.iter().filter(|c| c.arm == arm).collect()
}

/// One [`ArmSummary`] per arm, arms in first-seen order.
pub fn summarise(cells: &[CellOutcome]) -> Vec<ArmSummary> {
    arms_in_order(cells)
        .into_iter()
        .map(|arm| {
            let mine = cells_of(cells, arm);
            let metrics: Vec<CellMetrics> = mine.iter().map(|c| cell_metrics(&c.summary)).collect();
            let over_seeds = |field: fn(&CellMetrics) -> f64| {
                MeanSem::of(&metrics.iter().map(field).collect::<Vec<_>>())
            };
            let reached: Vec<f64> = metrics
                .iter()
                .filter_map(|m| m.first_episode_80pct.map(|e| e as f64))
                .collect();
            let costs: Vec<&CellCost> = mine.iter().map(|c| &c.cost).collect();
            ArmSummary {
                arm: arm.to_string(),
                n_seeds: mine.len(),
                return_ep1: over_seeds(|m| m.return_ep1),
                return_ep10: over_seeds(|m| m.return_ep10),
                return_ep50: over_seeds(|m| m.return_ep50),
                return_last: over_seeds(|m| m.return_last),
                mean_all_episodes: over_seeds(|m| m.mean_all_episodes),
                last10_over_optimal: over_seeds(|m| m.last10_over_optimal),
                first_episode_80pct: MeanSem::of(&reached),
                reached_80pct: reached.len(),
                cost: CostSummary::of(&costs),
            }
        })
        .collect()
}

/// Per episode, the mean over the given cells (one arm's seeds) of each cell's environment-mean
/// return, and its standard error over those cells (NaN for one cell). As long as the shortest
/// cell's curve.
pub fn arm_curve(cells: &[&CellOutcome]) -> (Vec<f64>, Vec<f64>) {
    let curves: Vec<Vec<f64>> = cells.iter().map(|c| return_curve(&c.summary)).collect();
    mean_sem_per_episode(&curves.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// Per episode, the mean of `curves` (one per seed) and its standard error; as long as the
/// shortest curve.
fn mean_sem_per_episode(curves: &[&[f64]]) -> (Vec<f64>, Vec<f64>) {
    let episodes = curves.iter().map(|c| c.len()).min().unwrap_or(0);
    (0..episodes)
        .map(|j| {
            let at: Vec<f64> = curves.iter().map(|c| c[j]).collect();
            (mean(&at), sem(&at))
        })
        .unzip()
}

/// An arm's [`arm_curve`], named.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmCurve {
    pub arm: String,
    pub mean: Vec<f64>,
    pub sem: Vec<f64>,
}

/// [`arm_curve`] of every arm, arms in first-seen order.
pub fn arm_curves(cells: &[CellOutcome]) -> Vec<ArmCurve> {
    arms_in_order(cells)
        .into_iter()
        .map(|arm| {
            let (mean, sem) = arm_curve(&cells_of(cells, arm));
            ArmCurve {
                arm: arm.to_string(),
                mean,
                sem,
            }
        })
        .collect()
}

/// One milestone of one arm (an environment's `Environment::milestones`, e.g. Key-to-Door's key
/// and door): per episode, the mean over the arm's training seeds of the share of environments
/// whose return reached it, with its standard error; and each seed's first-10 / last-10 share,
/// summarised the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmMilestone {
    pub arm: String,
    pub name: String,
    pub threshold: f32,
    /// Seeds whose summary has this milestone.
    pub n_seeds: usize,
    pub mean: Vec<f64>,
    pub sem: Vec<f64>,
    pub first10: MeanSem,
    pub last10: MeanSem,
    /// Each seed's mean step (from 1) at which the episodes of its last 10 that reached the
    /// milestone reached it; NaN for cells evaluated before steps were recorded.
    pub last10_step: MeanSem,
}

/// [`ArmMilestone`] of every arm (first-seen order) and every milestone of its first cell (in
/// that cell's order), over the arm's cells that have the milestone. Empty where the
/// environment has none.
pub fn arm_milestones(cells: &[CellOutcome]) -> Vec<ArmMilestone> {
    let mut out = Vec::new();
    for arm in arms_in_order(cells) {
        let mine = cells_of(cells, arm);
        for first in &mine[0].summary.milestones {
            let curves: Vec<&MilestoneCurve> = mine
                .iter()
                .filter_map(|c| c.summary.milestones.iter().find(|m| m.name == first.name))
                .collect();
            let reached: Vec<&[f64]> = curves.iter().map(|m| m.reached.as_slice()).collect();
            let (mean_curve, sem_curve) = mean_sem_per_episode(&reached);
            let over_seeds = |field: fn(&MilestoneCurve) -> f64| {
                MeanSem::of(&curves.iter().map(|m| field(m)).collect::<Vec<_>>())
            };
            out.push(ArmMilestone {
                arm: arm.to_string(),
                name: first.name.clone(),
                threshold: first.threshold,
                n_seeds: curves.len(),
                mean: mean_curve,
                sem: sem_curve,
                first10: over_seeds(|m| m.first10),
                last10: over_seeds(|m| m.last10),
                last10_step: over_seeds(|m| m.last10_step),
            });
        }
    }
    out
}

/// Reads one metric of a cell.
pub type MetricOf = fn(&CellMetrics) -> f64;

/// The metrics compared between arms, seed by seed.
pub const PAIRED_METRICS: [(&str, MetricOf); 3] = [
    ("mean_all_episodes", |m| m.mean_all_episodes),
    ("last10_over_optimal", |m| m.last10_over_optimal),
    ("return_last", |m| m.return_last),
];

/// One arm against the baseline on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedRow {
    pub arm: String,
    pub baseline: String,
    pub metric: &'static str,
    pub paired: Paired,
}

/// Every non-baseline arm (first-seen order) against `baseline` on each of [`PAIRED_METRICS`],
/// paired by training seed. A baseline without cells gives rows with n = 0.
pub fn paired_rows(cells: &[CellOutcome], baseline: &str) -> Vec<PairedRow> {
    let by_seed = |arm: &str| -> Vec<(u64, CellMetrics)> {
        cells_of(cells, arm)
            .into_iter()
            .map(|c| (c.train_seed, cell_metrics(&c.summary)))
            .collect()
    };
    let base = by_seed(baseline);
    let mut rows = Vec::new();
    for arm in arms_in_order(cells).into_iter().filter(|&a| a != baseline) {
        let mine = by_seed(arm);
        for (metric, value) in PAIRED_METRICS {
            let pick = |v: &[(u64, CellMetrics)]| -> Vec<(u64, f64)> {
                v.iter().map(|(s, m)| (*s, value(m))).collect()
            };
            rows.push(PairedRow {
                arm: arm.to_string(),
                baseline: baseline.to_string(),
                metric,
                paired: paired(&pick(&mine), &pick(&base)),
            });
        }
    }
    rows
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
pub(crate) mod tests;
