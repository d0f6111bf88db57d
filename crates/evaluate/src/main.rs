//! `cargo run --release -p evaluate [-- --run runs/<run>]`: roll a trained run's newest
//! checkpoint out on its held-out tasks and write `runs/<run>/eval/`.

use std::path::PathBuf;

use ccad_core::backend::Engine;
use ccad_core::cli::ConfigArgs;
use ccad_core::config::{Boundary, TaskSet};
use clap::{Parser, ValueEnum};
use evaluate::run::{EvalOptions, evaluate_run, load_run_config};

#[derive(Parser)]
#[command(about = "In-context evaluation of a trained run with the rolling two-region context")]
struct Args {
    /// Run folder, or a run name as train's `--run` takes it (runs/NAME); default:
    /// runs/<train.run> of --config.
    #[arg(long, value_name = "DIR|NAME")]
    run: Option<PathBuf>,
    /// Output folder (default: <run>/eval).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Tasks to roll out on (default: eval.tasks of the run's config).
    #[arg(long, value_enum)]
    tasks: Option<Tasks>,
    /// Argmax actions instead of sampling.
    #[arg(long)]
    greedy: bool,
    /// Who closes regions: every compress_interval steps, or the token-type head.
    #[arg(long, value_enum)]
    boundary: Option<BoundaryArg>,
    /// Episodes per environment (default: eval.episodes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    episodes: Option<u64>,
    /// Seeds per task (default: eval.seeds).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: Option<u64>,
    /// What computes the logits: native (the model's plain-Rust layers with their own
    /// key/value cache), burn (burn's key/value cache on the build's device) or auto (native on
    /// CPU builds, burn on GPU builds).
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    engine: Engine,
    /// Evaluate although the dataset file's content changed since the run trained on it.
    #[arg(long)]
    allow_dataset_change: bool,
    /// `--config` names the run when `--run` is not given; `--set` overrides the run's config.
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Tasks {
    Train,
    Test,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum BoundaryArg {
    Fixed,
    Predicted,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    ccad_core::cli::run_main(|| run(args))
}

fn run(args: Args) -> ccad_core::Result<()> {
    let run_dir = match args.run {
        Some(dir) => resolve_run(dir),
        None => args.config.load()?.run_dir(),
    };
    // Fail on a bad run folder before the device starts.
    load_run_config(&run_dir, &args.config.overrides)?;
    ccad_core::backend::start_device()?;
    let opts = EvalOptions {
        run_dir,
        out_dir: args.out,
        overrides: args.config.overrides,
        tasks: args.tasks.map(|t| match t {
            Tasks::Train => TaskSet::Train,
            Tasks::Test => TaskSet::Test,
            Tasks::All => TaskSet::All,
        }),
        greedy: args.greedy.then_some(true),
        boundary: args.boundary.map(|b| match b {
            BoundaryArg::Fixed => Boundary::Fixed,
            BoundaryArg::Predicted => Boundary::Predicted,
        }),
        episodes: args.episodes.map(|n| n as usize),
        seeds: args.seeds.map(|n| n as usize),
        engine: args.engine,
        progress: true,
        allow_dataset_change: args.allow_dataset_change,
    };
    let out = evaluate_run(&opts, &ccad_core::backend::device())?;
    print!("{}", out.summary.table());
    let s = out.result.stats;
    println!(
        "{} steps, {} regions closed, {} cache rows rebuilt; wrote {}",
        s.steps,
        s.regions_closed,
        s.rows_rebuilt,
        out.out_dir.display()
    );
    Ok(())
}

/// `--run NAME` means `runs/NAME` when NAME is a bare name that is not itself a folder here,
/// so train's and evaluate's `--run` take the same argument.
fn resolve_run(arg: PathBuf) -> PathBuf {
    let bare = arg.components().count() == 1;
    let under_runs = PathBuf::from("runs").join(&arg);
    if bare && !arg.is_dir() && under_runs.is_dir() {
        under_runs
    } else {
        arg
    }
}
