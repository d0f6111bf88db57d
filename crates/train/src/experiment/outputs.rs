//! The experiment's files: `summary.csv`, `per_seed.csv`, `paired.csv`, `report.md`,
//! `curves.png`, and where the environment has milestones `milestones.csv` and
//! `milestones.png`.
//!
//! Every file goes through `ccad_core::atomic`: a failed write leaves the previous file (or
//! none) and no temporary file, and its error names the file (or the folder that could not be
//! made; a missing folder is created). CSV numbers are written in full (`NaN` where undefined,
//! an empty cell for an episode never reached); the report rounds them.

use std::fmt::Write as _;
use std::path::Path;

use ccad_core::Result;
use ccad_core::atomic::{write_atomic, write_atomic_with};

use super::metrics::{
    ArmMilestone, ArmSummary, COST_FIELDS, CellOutcome, PairedRow, RETURN_METRICS, TARGET_FRACTION,
    cell_metrics,
};
use super::stats::MeanSem;

mod plot;

pub use plot::{HEIGHT, WIDTH, write_curves_png, write_milestones_png};

/// Shown in the report wherever a number is undefined.
const NOT_AVAILABLE: &str = "n/a";

/// Write a header and rows as CSV, atomically.
fn write_csv(dest: &Path, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    write_atomic_with(dest, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(header)?;
        for row in rows {
            csv.write_record(row)?;
        }
        csv.flush()
    })
}

/// A CSV number: shortest round-trip form, `NaN` / `inf` as Rust spells them.
fn csv_number(x: f64) -> String {
    x.to_string()
}

/// One row per arm: `arm, n_seeds`, then `NAME_mean, NAME_sem` per metric; after
/// `first_episode_80pct_mean/_sem` comes `first_episode_80pct_reached` (seeds that reached it).
pub fn write_summary_csv(arms: &[ArmSummary], dest: &Path) -> Result<()> {
    let pair = |name: &str| [format!("{name}_mean"), format!("{name}_sem")];
    let mut header = vec!["arm".to_string(), "n_seeds".to_string()];
    header.extend(RETURN_METRICS.iter().flat_map(|n| pair(n)));
    header.extend(pair("first_episode_80pct"));
    header.push("first_episode_80pct_reached".to_string());
    header.extend(COST_FIELDS.iter().flat_map(|n| pair(n)));

    let cells = |m: MeanSem| [csv_number(m.mean), csv_number(m.sem)];
    let rows: Vec<Vec<String>> = arms
        .iter()
        .map(|a| {
            let mut row = vec![a.arm.clone(), a.n_seeds.to_string()];
            row.extend(a.returns().into_iter().flat_map(cells));
            row.extend(cells(a.first_episode_80pct));
            row.push(a.reached_80pct.to_string());
            row.extend(a.cost.values().into_iter().flat_map(cells));
            row
        })
        .collect();
    write_csv(dest, &header, &rows)
}

/// One row per cell: `arm, train_seed`, every `CellMetrics` field, every `CellCost` field.
pub fn write_per_seed_csv(cells: &[CellOutcome], dest: &Path) -> Result<()> {
    let mut header = vec!["arm".to_string(), "train_seed".to_string()];
    header.extend(RETURN_METRICS.iter().map(|n| n.to_string()));
    header.push("first_episode_80pct".to_string());
    header.extend(COST_FIELDS.iter().map(|n| n.to_string()));

    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            let m = cell_metrics(&c.summary);
            let mut row = vec![c.arm.clone(), c.train_seed.to_string()];
            row.extend(m.returns().map(csv_number));
            row.push(
                m.first_episode_80pct
                    .map_or(String::new(), |e| e.to_string()),
            );
            row.extend(c.cost.values().map(csv_number));
            row
        })
        .collect();
    write_csv(dest, &header, &rows)
}

/// One row per (arm, metric): `arm, baseline, metric, n, mean_diff, ci95_low, ci95_high`.
pub fn write_paired_csv(rows: &[PairedRow], dest: &Path) -> Result<()> {
    let header = [
        "arm",
        "baseline",
        "metric",
        "n",
        "mean_diff",
        "ci95_low",
        "ci95_high",
    ]
    .map(String::from);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.arm.clone(),
                r.baseline.clone(),
                r.metric.to_string(),
                r.paired.n.to_string(),
                csv_number(r.paired.mean_diff),
                csv_number(r.paired.ci_low),
                csv_number(r.paired.ci_high),
            ]
        })
        .collect();
    write_csv(dest, &header, &rows)
}

/// One row per (arm, milestone, episode): `arm, milestone, threshold, episode, n_seeds, mean,
/// sem` (the share of environments reaching the milestone; episodes from 1).
pub fn write_milestones_csv(milestones: &[ArmMilestone], dest: &Path) -> Result<()> {
    let header = [
        "arm",
        "milestone",
        "threshold",
        "episode",
        "n_seeds",
        "mean",
        "sem",
    ]
    .map(String::from);
    let rows: Vec<Vec<String>> = milestones
        .iter()
        .flat_map(|m| {
            (1..)
                .zip(m.mean.iter().zip(&m.sem))
                .map(|(e, (&mean, &sem))| {
                    vec![
                        m.arm.clone(),
                        m.name.clone(),
                        m.threshold.to_string(),
                        usize::to_string(&e),
                        m.n_seeds.to_string(),
                        csv_number(mean),
                        csv_number(sem),
                    ]
                })
        })
        .collect();
    write_csv(dest, &header, &rows)
}

/// `x` with `decimals` decimals; "n/a" when undefined.
fn rounded(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        NOT_AVAILABLE.to_string()
    }
}

/// The report's default rounding, three decimals.
fn fmt3(x: f64) -> String {
    rounded(x, 3)
}

/// "mean ± sem", each to three decimals.
fn mean_sem(m: MeanSem) -> String {
    format!("{} ± {}", fmt3(m.mean), fmt3(m.sem))
}

/// A table cell's text with the column separator escaped.
fn cell_text(s: &str) -> String {
    s.replace('|', "\\|")
}

/// What the tables cannot show; fixed, so every report carries it.
const LIMITS: &str = "These numbers come from few training seeds, evaluated on the held-out tasks \
of one task split; the standard errors and intervals measure the spread over training seeds only \
(each seed's value is first averaged over its tasks × evaluation seeds), not over other splits, \
environments or hyper-parameters. With so few seeds the intervals are wide and the SEMs \
themselves uncertain. A paired interval that contains 0 does not rank the two arms: it says the \
data cannot tell them apart, not that they are equal.";

/// The arms table: one row per arm.
fn arms_table(w: &mut String, arms: &[ArmSummary]) {
    // Writing to a String cannot fail.
    let _ = writeln!(
        w,
        "| arm | seeds | mean over all episodes | last-10 / optimal | return at ep 1 / 10 / 50 / last | first ep ≥ {:.0}% | labels | labels/s | wall time (train + eval) |",
        TARGET_FRACTION * 100.0
    );
    let _ = writeln!(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for a in arms {
        let first = if a.reached_80pct == 0 {
            format!("never (0/{})", a.n_seeds)
        } else {
            format!(
                "{} ({}/{})",
                mean_sem(a.first_episode_80pct),
                a.reached_80pct,
                a.n_seeds
            )
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} / {} / {} / {} | {} | {} | {} | {} + {} s |",
            cell_text(&a.arm),
            a.n_seeds,
            mean_sem(a.mean_all_episodes),
            mean_sem(a.last10_over_optimal),
            fmt3(a.return_ep1.mean),
            fmt3(a.return_ep10.mean),
            fmt3(a.return_ep50.mean),
            fmt3(a.return_last.mean),
            first,
            rounded(a.cost.labels_trained.mean, 0),
            rounded(a.cost.labels_per_sec.mean, 1),
            rounded(a.cost.train_wall_s.mean, 1),
            rounded(a.cost.eval_wall_s.mean, 1),
        );
    }
}

/// The milestones table: per arm and milestone, the share of episodes reaching it.
fn milestones_table(w: &mut String, milestones: &[ArmMilestone]) {
    let _ = writeln!(
        w,
        "| arm | milestone | seeds | first 10 episodes | last 10 episodes | at ep 1 / 10 / 50 / last | step reached (last 10) |"
    );
    let _ = writeln!(w, "|---|---|--:|--:|--:|--:|--:|");
    let at = |m: &ArmMilestone, episode: usize| {
        fmt3(m.mean.get(episode - 1).copied().unwrap_or(f64::NAN))
    };
    for m in milestones {
        let _ = writeln!(
            w,
            "| {} | {} (return ≥ {}) | {} | {} | {} | {} / {} / {} / {} | {} ± {} |",
            cell_text(&m.arm),
            cell_text(&m.name),
            m.threshold,
            m.n_seeds,
            mean_sem(m.first10),
            mean_sem(m.last10),
            at(m, 1),
            at(m, 10),
            at(m, 50),
            fmt3(m.mean.last().copied().unwrap_or(f64::NAN)),
            rounded(m.last10_step.mean, 1),
            rounded(m.last10_step.sem, 1),
        );
    }
}

/// The paired table: each arm minus its baseline, per metric.
fn paired_table(w: &mut String, rows: &[PairedRow]) {
    if rows.is_empty() {
        let _ = writeln!(w, "No other arm to compare with the baseline.");
        return;
    }
    let _ = writeln!(
        w,
        "| arm | baseline | metric | seeds | mean difference | 95% CI |"
    );
    let _ = writeln!(w, "|---|---|---|--:|--:|--:|");
    for r in rows {
        let p = &r.paired;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | [{}, {}] |",
            cell_text(&r.arm),
            cell_text(&r.baseline),
            r.metric,
            p.n,
            fmt3(p.mean_diff),
            fmt3(p.ci_low),
            fmt3(p.ci_high),
        );
    }
}

/// The report's text: `title`, the caller's `preamble` (budget, seeds, commands), the arms
/// table, the milestones table (when there are milestones), the paired table and what none
/// can show.
pub fn render_report(
    title: &str,
    preamble: &str,
    arms: &[ArmSummary],
    milestones: &[ArmMilestone],
    paired: &[PairedRow],
) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# {title}\n");
    if !preamble.trim().is_empty() {
        let _ = writeln!(w, "{}\n", preamble.trim_end());
    }
    let _ = writeln!(w, "## Arms\n");
    arms_table(w, arms);
    let _ = writeln!(
        w,
        "\nMean ± standard error over training seeds; each seed's value is first averaged over \
         its environments (held-out tasks × evaluation seeds). Returns at single episodes are \
         means only. \"first ep ≥ {:.0}%\" is the first episode whose mean return / optimal \
         reaches {TARGET_FRACTION}, averaged over the seeds that reached it (how many, in \
         brackets). Labels, labels/s and wall time (seconds) are means over seeds. \
         {NOT_AVAILABLE}: undefined (too few episodes or seeds, no positive optimum).\n",
        TARGET_FRACTION * 100.0
    );
    if !milestones.is_empty() {
        let _ = writeln!(w, "## Milestones\n");
        milestones_table(w, milestones);
        let _ = writeln!(
            w,
            "\nThe share of episodes whose return reached the milestone (over held-out tasks × \
             evaluation seeds), mean ± standard error over training seeds; single episodes are \
             means only. Step reached: the step of the episode (from 1) at which the return \
             first reached the milestone, averaged over those of the last 10 episodes that reached it, \
             then over seeds ({NOT_AVAILABLE} where not recorded). Per episode in \
             `milestones.csv` and `milestones.png`.\n"
        );
    }
    let _ = writeln!(
        w,
        "## Paired differences (arm − baseline, by training seed)\n"
    );
    paired_table(w, paired);
    let _ = writeln!(
        w,
        "\nOver the training seeds both arms ran; 95% Student-t interval with n − 1 degrees of \
         freedom ({NOT_AVAILABLE} for fewer than two seeds).\n"
    );
    let _ = writeln!(w, "## What these tables cannot show\n");
    let _ = writeln!(w, "{LIMITS}");
    s
}

/// `report.md`: [`render_report`], written atomically.
pub fn write_report_md(
    title: &str,
    preamble: &str,
    arms: &[ArmSummary],
    milestones: &[ArmMilestone],
    paired: &[PairedRow],
    dest: &Path,
) -> Result<()> {
    write_atomic(
        dest,
        render_report(title, preamble, arms, milestones, paired).as_bytes(),
    )
}

#[cfg(test)]
#[path = "outputs_tests.rs"]
mod tests;
