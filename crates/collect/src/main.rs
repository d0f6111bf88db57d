//! `collect`: train one PPO learner per task and write their learning histories.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use ccad_core::backend::{Engine, Stage};
use ccad_core::cli::{ConfigArgs, run_main};
use collect::CollectOptions;

#[derive(Debug, Parser)]
#[command(about = "Train one PPO learner per task and record their learning histories (HDF5)")]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output file (default: datasets/<collect.dataset>.hdf5).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// If the output file exists and was collected with this same config, keep it and exit
    /// successfully (a file from another config is still an error without --force).
    #[arg(long, conflicts_with = "force")]
    keep_existing: bool,
    /// Measure speed only: train the learners, write nothing, report env-steps/s.
    #[arg(long)]
    bench: bool,
    /// Where the learners are computed: native (plain Rust, rayon over learners), burn
    /// (learners stacked on a task axis) or auto (native: see the README's engine table).
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    engine: Engine,
}

fn main() -> ExitCode {
    run_main(|| -> anyhow::Result<()> {
        let args = Args::parse();
        let cfg = args.config.load()?;
        if args.engine.resolve(Stage::Collect) == Engine::Burn {
            ccad_core::backend::start_device()?;
        }
        if args.bench {
            let report = collect::bench(&cfg, args.engine)?;
            println!(
                "bench ({}): {}",
                args.engine.resolve(Stage::Collect).as_str(),
                report.speed_line()
            );
            println!(
                "return / optimal: first region {:.1}%, last region {:.1}% (mean over tasks)",
                100.0 * report.first_mean(),
                100.0 * report.last_mean()
            );
            return Ok(());
        }
        let dest = args.out.clone().unwrap_or_else(|| cfg.dataset_path());
        if args.keep_existing && collect::same_collection(&dest, &cfg)? {
            println!(
                "{} exists with this collection config; keeping it",
                dest.display()
            );
            return Ok(());
        }
        let opts = CollectOptions {
            out: args.out.clone(),
            force: args.force,
            engine: args.engine,
            ..Default::default()
        };
        let report = collect::collect(&cfg, &opts)?;
        println!("{report}");
        println!("wrote {}", dest.display());
        Ok(())
    })
}
