//! `cargo run --release -p train --bin experiment -- configs/experiments/NAME.toml`: train
//! and evaluate every arm × training seed of an experiment on an equal budget and write
//! `runs/experiment-NAME/` (report.md, summary.csv, per_seed.csv, paired.csv, curves.png,
//! protocol.json, manifest.json). Run it again to resume: finished cells are kept, a killed
//! one resumes from its checkpoint; `--reevaluate` evaluates the finished ones again.

use std::path::PathBuf;

use ccad_core::cli::run_main;
use ccad_core::{Error, Result};
use clap::Parser;
use train::experiment::file::Experiment;
use train::experiment::runner::{self, Runner};
use train::experiment::stage::{Stage, run_stage};

#[derive(Parser)]
#[command(
    about = "Equal-budget, multi-seed comparison of arms (configs) with confidence intervals"
)]
struct Args {
    /// The experiment file (TOML).
    #[arg(required_unless_present = "stage")]
    file: Option<PathBuf>,
    /// Evaluate the finished cells again from their final checkpoints (training is kept), e.g.
    /// after `evaluate` gained a metric; unfinished cells run as usual.
    #[arg(long)]
    reevaluate: bool,
    /// Internal: run one stage on `--config` in this process (the runner's children).
    #[arg(long, value_enum, hide = true, requires = "config")]
    stage: Option<Stage>,
    /// Internal: the stage's config.
    #[arg(long, hide = true)]
    config: Option<PathBuf>,
    /// Internal: collect's TensorBoard folder.
    #[arg(long, hide = true)]
    log_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    run_main(|| run(args))
}

fn run(args: Args) -> Result<()> {
    if let (Some(stage), Some(config)) = (args.stage, &args.config) {
        return run_stage(stage, config, args.log_dir.clone());
    }
    let file = args.file.expect("clap requires the file");
    let exp = Experiment::load(&file)?;
    let exe = std::env::current_exe().map_err(|e| Error::io(&file, e))?;
    let mut r = Runner::new(&exp, exe)?;
    r.reevaluate = args.reevaluate;
    let out = runner::run(&exp, &mut r)?;
    train::experiment::report::write_all(&exp, &out, &r.root)?;
    eprintln!(
        "experiment: {} of {} cells finished; report in {}",
        out.cells.len(),
        out.plan.len(),
        r.root.join("report.md").display()
    );
    if out.failed.is_empty() {
        Ok(())
    } else {
        Err(Error::file(
            &r.root,
            "cells",
            format!(
                "{} of {} failed (run again to retry them): {}",
                out.failed.len(),
                out.plan.len(),
                out.failed
                    .iter()
                    .map(|(a, s, _)| format!("{a} seed {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}
