//! Tests of `metrics` on hand-made summaries; the fixtures serve `outputs`' tests too.

use evaluate::summary::EvalInfo;
use evaluate::{RolloutResult, RolloutStats};

use super::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn summary_of(optimal: Vec<f32>, returns: Vec<Vec<f32>>) -> Summary {
    let n = optimal.len();
    let result = RolloutResult {
        tasks: (0..n).collect(),
        seeds: vec![0; n],
        optimal,
        returns,
        milestone_steps: Vec::new(),
        actions: vec![Vec::new(); n],
        stats: RolloutStats::default(),
    };
    Summary::new(&result, "goal", |t| vec![t as i32], EvalInfo::default())
}

/// 12 episodes, two environments: one with optimum 8 returning `j + offset` at episode index
/// `j`, one with optimum 0 (not normalisable) returning 4 throughout.
/// Environment mean at index j: (j + offset + 4) / 2.
pub fn short_summary(offset: f32) -> Summary {
    let rising = (0..12).map(|j| j as f32 + offset).collect();
    summary_of(vec![8.0, 0.0], vec![rising, vec![4.0; 12]])
}

/// 60 episodes, one environment with optimum 100 returning `j` at index j: never reaches 80%.
pub fn long_summary() -> Summary {
    summary_of(vec![100.0], vec![(0..60).map(|j| j as f32).collect()])
}

pub fn cell(arm: &str, seed: u64, summary: Summary, cost: CellCost) -> CellOutcome {
    CellOutcome {
        arm: arm.to_string(),
        train_seed: seed,
        summary,
        cost,
    }
}

fn labels(labels_trained: u64, labels_per_sec: f64) -> CellCost {
    CellCost {
        labels_trained,
        labels_per_sec,
        ..CellCost::default()
    }
}

/// Arm "a": seeds 0 (short, offset 0) and 1 (short, offset 2); arm "b": seeds 0 (short, offset
/// 10) and 1 (long), interleaved so first-seen order matters.
pub fn two_arms() -> Vec<CellOutcome> {
    vec![
        cell("a", 0, short_summary(0.0), labels(100, 10.0)),
        cell("b", 0, short_summary(10.0), labels(1000, 1.0)),
        cell("a", 1, short_summary(2.0), labels(300, 20.0)),
        cell("b", 1, long_summary(), labels(1000, 1.0)),
    ]
}

#[test]
fn metrics_of_a_short_cell() {
    let m = cell_metrics(&short_summary(0.0));
    // Environment mean at index j is (j + 4) / 2.
    assert!(close(m.return_ep1, 2.0)); // (0 + 4) / 2
    assert!(close(m.return_ep10, 6.5)); // (9 + 4) / 2
    assert!(m.return_ep50.is_nan()); // only 12 episodes
    assert!(close(m.return_last, 7.5)); // (11 + 4) / 2
    // Mean of (j + 4) / 2 over j = 0..11: (5.5 + 4) / 2 = 4.75.
    assert!(close(m.mean_all_episodes, 4.75));
    // Only the optimum-8 environment: last 10 returns 2..11, mean 6.5; 6.5 / 8 = 0.8125.
    assert!(close(m.last10_over_optimal, 0.8125));
    // j / 8: index 6 gives 0.75, index 7 gives 0.875 → episode 8.
    assert_eq!(m.first_episode_80pct, Some(8));
}

#[test]
fn metrics_of_a_long_cell() {
    let m = cell_metrics(&long_summary());
    assert_eq!(
        (m.return_ep1, m.return_ep10, m.return_ep50, m.return_last),
        (0.0, 9.0, 49.0, 59.0)
    );
    assert!(close(m.mean_all_episodes, 29.5)); // mean of 0..59
    // Last 10 returns 50..59, mean 54.5, over optimum 100.
    assert!(close(m.last10_over_optimal, 0.545));
    assert_eq!(m.first_episode_80pct, None); // at most 59 / 100
}

#[test]
fn reaching_exactly_80_percent_counts() {
    // Optimum 10: 7 / 10 = 0.7, then 8 / 10 = 0.8 exactly at episode 2.
    let m = cell_metrics(&summary_of(vec![10.0], vec![vec![7.0, 8.0, 9.0]]));
    assert_eq!(m.first_episode_80pct, Some(2));
}

#[test]
fn a_cell_without_positive_optimum_or_environments() {
    let flat = summary_of(vec![0.0], vec![vec![3.0; 5]]);
    let m = cell_metrics(&flat);
    assert_eq!(
        (m.return_ep1, m.return_last, m.mean_all_episodes),
        (3.0, 3.0, 3.0)
    );
    assert!(m.last10_over_optimal.is_nan());
    assert_eq!(m.first_episode_80pct, None);

    let empty = summary_of(vec![], vec![]);
    let m = cell_metrics(&empty);
    assert!(m.return_ep1.is_nan() && m.return_last.is_nan() && m.mean_all_episodes.is_nan());
    assert!(m.last10_over_optimal.is_nan());
    assert_eq!(m.first_episode_80pct, None);
}

#[test]
fn arms_are_summarised_over_their_seeds() {
    let arms = summarise(&two_arms());
    assert_eq!(arms.len(), 2);
    let (a, b) = (&arms[0], &arms[1]);
    assert_eq!(
        (a.arm.as_str(), a.n_seeds, b.arm.as_str(), b.n_seeds),
        ("a", 2, "b", 2)
    );
    // Arm a, offsets 0 and 2; for two values the SEM is half their difference.
    // ep1: (0 + 4) / 2 = 2 and (2 + 4) / 2 = 3 → 2.5 ± 0.5.
    assert!(close(a.return_ep1.mean, 2.5) && close(a.return_ep1.sem, 0.5));
    assert_eq!(a.return_ep1.n, 2);
    assert!(close(a.return_ep10.mean, 7.0) && close(a.return_ep10.sem, 0.5)); // 6.5, 7.5
    assert!(a.return_ep50.mean.is_nan());
    assert!(close(a.return_last.mean, 8.0) && close(a.return_last.sem, 0.5)); // 7.5, 8.5
    assert!(close(a.mean_all_episodes.mean, 5.25)); // 4.75, 5.75
    // last 10 / optimal: 6.5 / 8 = 0.8125 and 8.5 / 8 = 1.0625 → 0.9375 ± 0.125.
    assert!(close(a.last10_over_optimal.mean, 0.9375));
    assert!(close(a.last10_over_optimal.sem, 0.125));
    // 80%: offset 0 at episode 8; offset 2: (j + 2) / 8 reaches 0.875 at j = 5 → episode 6.
    assert_eq!(a.reached_80pct, 2);
    assert!(close(a.first_episode_80pct.mean, 7.0) && close(a.first_episode_80pct.sem, 1.0));
    // Costs: labels 100, 300 → 200 ± 100; labels/s 10, 20 → 15 ± 5; the rest 0 ± 0.
    assert!(close(a.cost.labels_trained.mean, 200.0) && close(a.cost.labels_trained.sem, 100.0));
    assert!(close(a.cost.labels_per_sec.mean, 15.0) && close(a.cost.labels_per_sec.sem, 5.0));
    assert_eq!(
        (a.cost.eval_wall_s.mean, a.cost.eval_wall_s.sem),
        (0.0, 0.0)
    );

    // Arm b: offset 10 reaches 80% at episode 1 ((0 + 10) / 8 ≥ 0.8), the long cell never.
    assert_eq!(b.reached_80pct, 1);
    assert_eq!(b.first_episode_80pct.mean, 1.0);
    assert!(b.first_episode_80pct.sem.is_nan());
    // mean over all episodes: (9.5 + 10) / 2 = 9.75 and 29.5 → 19.625 ± 9.875.
    assert!(close(b.mean_all_episodes.mean, 19.625));
    assert!(close(b.mean_all_episodes.sem, 9.875));
}

#[test]
fn curves_average_over_seeds() {
    let cells = two_arms();
    let curves = arm_curves(&cells);
    assert_eq!(curves.len(), 2);
    let a = &curves[0];
    assert_eq!((a.arm.as_str(), a.mean.len(), a.sem.len()), ("a", 12, 12));
    // Seeds give (j + 4) / 2 and (j + 6) / 2: mean (j + 5) / 2, SEM half the gap, 0.5.
    for j in 0..12 {
        assert!(close(a.mean[j], (j as f64 + 5.0) / 2.0), "{j}");
        assert!(close(a.sem[j], 0.5), "{j}");
    }
    // Arm b: (j + 14) / 2 and j, cut to the shorter 12 episodes: mean (3j + 14) / 4,
    // SEM |14 − j| / 4.
    let b = &curves[1];
    assert_eq!(b.mean.len(), 12);
    assert!(close(b.mean[0], 3.5) && close(b.sem[0], 3.5));
    assert!(close(b.mean[11], 11.75) && close(b.sem[11], 0.75));

    let one_seed = arm_curve(&[&cells[0]]);
    assert!(close(one_seed.0[3], 3.5)); // (3 + 4) / 2
    assert!(one_seed.1.iter().all(|s| s.is_nan()));
    assert_eq!(arm_curve(&[]), (vec![], vec![]));
}

#[test]
fn arms_are_paired_with_the_baseline_by_seed() {
    let rows = paired_rows(&two_arms(), "a");
    let names: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.arm.as_str(), r.baseline.as_str(), r.metric))
        .collect();
    assert_eq!(
        names,
        [
            ("b", "a", "mean_all_episodes"),
            ("b", "a", "last10_over_optimal"),
            ("b", "a", "return_last"),
        ]
    );
    // mean over all episodes, seed 0: 9.75 − 4.75 = 5; seed 1: 29.5 − 5.75 = 23.75.
    // Mean 14.375, SEM half the gap 9.375, t(0.975; 1) = 12.706205 → half width 119.120668.
    let p = rows[0].paired;
    assert_eq!(p.n, 2);
    assert!(close(p.mean_diff, 14.375));
    assert!((p.ci_low - (14.375 - 119.120668)).abs() < 1e-4);
    assert!((p.ci_high - (14.375 + 119.120668)).abs() < 1e-4);
    // return_last: 12.5 − 7.5 = 5 and 59 − 8.5 = 50.5 → 27.75.
    assert!(close(rows[2].paired.mean_diff, 27.75));

    let missing = paired_rows(&two_arms(), "nobody");
    assert_eq!(missing.len(), 6); // arms a and b × 3 metrics
    assert!(missing.iter().all(|r| r.paired.n == 0));
}

#[test]
fn values_follow_the_name_lists() {
    let cost = CellCost {
        labels_trained: 7,
        labels_per_sec: 1.5,
        eval_wall_s: 2.5,
        ..CellCost::default()
    };
    let values = cost.values();
    assert_eq!((COST_FIELDS[0], values[0]), ("labels_trained", 7.0));
    assert_eq!((COST_FIELDS[1], values[1]), ("labels_per_sec", 1.5));
    assert_eq!((COST_FIELDS[8], values[8]), ("eval_wall_s", 2.5));
    let m = cell_metrics(&long_summary());
    assert_eq!((RETURN_METRICS[2], m.returns()[2]), ("return_ep50", 49.0));
    assert_eq!((RETURN_METRICS[3], m.returns()[3]), ("return_last", 59.0));
    let arms = summarise(&two_arms());
    assert_eq!(arms[0].returns()[4], arms[0].mean_all_episodes);
    assert_eq!(arms[0].cost.values()[1], arms[0].cost.labels_per_sec);
}

/// Key-to-Door-like milestones (key: return ≥ 1, door: 2) of one arm, two seeds, two
/// environments, three episodes each.
pub fn milestone_cells() -> Vec<CellOutcome> {
    let marks = [("key", 1.0), ("door", 2.0)];
    // `steps[env][episode]`: the (key, door) step, 0 where not reached.
    let seed = |s: u64, returns: Vec<Vec<f32>>, steps: [[[u32; 2]; 3]; 2]| {
        let steps: Vec<Vec<Vec<u32>>> = steps
            .iter()
            .map(|env| env.iter().map(|e| e.to_vec()).collect())
            .collect();
        let summary = summary_of(vec![2.0, 2.0], returns).with_milestones(&marks, &steps);
        cell("k", s, summary, CellCost::default())
    };
    vec![
        // key per episode 1/2, 1, 1; door 0, 1/2, 1. Key steps 3, 2, 4, 1, 2 (mean 2.4),
        // door steps 5, 6, 2 (mean 13/3).
        seed(
            0,
            vec![vec![0.0, 1.0, 2.0], vec![1.0, 2.0, 2.0]],
            [[[0, 0], [3, 0], [2, 5]], [[4, 0], [1, 6], [2, 2]]],
        ),
        // key 1/2, 1/2, 1; door 1/2, 1/2, 1/2. Key steps 1, 2, 3, 7 (mean 3.25), door 3, 4, 5
        // (mean 4).
        seed(
            1,
            vec![vec![2.0, 2.0, 2.0], vec![0.0, 0.0, 1.0]],
            [[[1, 3], [2, 4], [3, 5]], [[0, 0], [0, 0], [7, 0]]],
        ),
    ]
}

#[test]
fn milestone_shares_over_seeds_by_hand() {
    let ms = arm_milestones(&milestone_cells());
    assert_eq!(ms.len(), 2);
    let (key, door) = (&ms[0], &ms[1]);
    assert_eq!((key.arm.as_str(), key.name.as_str()), ("k", "key"));
    assert_eq!((door.name.as_str(), door.threshold), ("door", 2.0));
    assert_eq!((key.n_seeds, door.n_seeds), (2, 2));
    let all_close =
        |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(*x, *y));
    assert!(all_close(&key.mean, &[0.5, 0.75, 1.0]), "{:?}", key.mean);
    assert!(all_close(&door.mean, &[0.25, 0.5, 0.75]), "{:?}", door.mean);
    // Two seeds a and b: SEM = |a − b| / 2.
    assert!(all_close(&key.sem, &[0.0, 0.25, 0.0]), "{:?}", key.sem);
    assert!(all_close(&door.sem, &[0.25, 0.0, 0.25]), "{:?}", door.sem);
    // Three episodes: first and last 10 are all of them; key per seed 5/6 and 2/3.
    assert!(close(key.first10.mean, 0.75) && close(key.last10.mean, 0.75));
    assert!(close(key.last10.sem, 1.0 / 12.0));
    // Door per seed 1/2 and 1/2.
    assert!(close(door.last10.mean, 0.5) && close(door.last10.sem, 0.0));
    // Steps: key 2.4 and 3.25 → 2.825 ± 0.425; door 13/3 and 4 → 25/6 ± 1/6.
    assert!(close(key.last10_step.mean, 2.825) && close(key.last10_step.sem, 0.425));
    assert!(close(door.last10_step.mean, 25.0 / 6.0) && close(door.last10_step.sem, 1.0 / 6.0));
}

#[test]
fn cells_without_milestones_give_none() {
    assert!(arm_milestones(&two_arms()).is_empty());
}
