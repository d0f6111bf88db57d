//! The experiment's result files from the finished cells: `report.md`, `summary.csv`,
//! `per_seed.csv`, `paired.csv`, `curves.png`, and `milestones.csv` / `milestones.png` where
//! the environment has milestones.

use std::fmt::Write as _;
use std::path::Path;

use ccad_core::Result;

use super::file::{Budget, Experiment};
use super::metrics::{ArmCurve, arm_curves, arm_milestones, paired_rows, summarise};
use super::outputs;
use super::plan;
use super::runner::RunOutcome;

/// Write every result file of `out` into `root`.
pub fn write_all(exp: &Experiment, out: &RunOutcome, root: &Path) -> Result<()> {
    let arms = summarise(&out.cells);
    let paired = paired_rows(&out.cells, &exp.baseline);
    let milestones = arm_milestones(&out.cells);
    outputs::write_summary_csv(&arms, &root.join("summary.csv"))?;
    outputs::write_per_seed_csv(&out.cells, &root.join("per_seed.csv"))?;
    outputs::write_paired_csv(&paired, &root.join("paired.csv"))?;
    let title = format!("Experiment {}", exp.name);
    outputs::write_report_md(
        &title,
        &preamble(exp, out),
        &arms,
        &milestones,
        &paired,
        &root.join("report.md"),
    )?;
    if !milestones.is_empty() {
        outputs::write_milestones_csv(&milestones, &root.join("milestones.csv"))?;
        let curves: Vec<ArmCurve> = milestones
            .iter()
            .map(|m| ArmCurve {
                arm: format!("{}: {}", m.arm, m.name),
                mean: m.mean.clone(),
                sem: m.sem.clone(),
            })
            .collect();
        outputs::write_milestones_png(&curves, &root.join("milestones.png"))?;
    }

    // The source learners on the baseline's held-out tasks, and their mean optimum.
    let baseline = out.arms.iter().find(|a| a.name == exp.baseline);
    let source = match baseline {
        Some(a) => Some(plan::source_curve(&a.config.dataset_path(), &a.config)?),
        None => None,
    };
    let optimal = out.cells.iter().find(|c| c.arm == exp.baseline).map(|c| {
        let envs = &c.summary.envs;
        envs.iter().map(|e| e.optimal_return as f64).sum::<f64>() / envs.len().max(1) as f64
    });
    outputs::write_curves_png(
        &arm_curves(&out.cells),
        source.as_deref(),
        optimal,
        &root.join("curves.png"),
    )
}

/// What ran: file, commit, budget and each arm's steps, seeds, failures, the command.
fn preamble(exp: &Experiment, out: &RunOutcome) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "Experiment file `{}`; the finished cells ran on code at {}. Reproduce: `cargo run \
         --release -p train --bin experiment -- {}` (finished cells are kept; `protocol.json` has \
         every resolved config, `manifest.json` every command with its binary's commit).\n",
        exp.file.display(),
        out.commits
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", "),
        exp.file.display()
    );
    let budget = match exp.budget {
        Budget::Labels(n) => format!("{n} supervised action labels per run"),
        Budget::Steps(n) => format!("{n} training steps per run"),
    };
    let _ = writeln!(
        w,
        "Budget: {budget}. Baseline: `{}`. Training seeds: {:?}; {} evaluation seeds per \
         held-out task.\n",
        exp.baseline, exp.train_seeds, exp.eval_seeds
    );
    let _ = writeln!(
        w,
        "| arm | dataset | labels / sequence | batch | steps | labels planned |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|");
    for arm in &out.arms {
        if let Some(c) = out.plan.iter().find(|c| c.arm == arm.name) {
            let batch = arm.config.train.batch_size;
            let _ = writeln!(
                w,
                "| {} | `{}` | {:.2} | {batch} | {} | {:.0} |",
                arm.name,
                arm.dataset,
                c.labels_per_sample,
                c.steps,
                c.steps as f64 * batch as f64 * c.labels_per_sample
            );
        }
    }
    let done = out.cells.len();
    let total = out.plan.len();
    let _ = writeln!(w, "\nCells finished: {done} of {total}.");
    for (arm, seed, msg) in &out.failed {
        let _ = writeln!(w, "- FAILED: `{arm}` seed {seed}: {msg}");
    }
    s
}
