//! `cargo run --release -p train [-- --config PATH --set k=v --run NAME --engine E --fresh]`
//! `cargo run --release -p train -- --bench` measures speed and peak memory instead.

use std::path::PathBuf;

use ccad_core::backend::Engine;
use ccad_core::cli::{ConfigArgs, run_main};
use ccad_core::config::ContextMode;
use ccad_core::{Error, Result};
use clap::Parser;
use train::bench;

#[derive(Parser)]
#[command(
    about = "Train the AD transformer on a history file into runs/<run>/ (resumes by default)"
)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Run name (overrides train.run): outputs go to runs/<NAME>/.
    #[arg(long, value_name = "NAME")]
    run: Option<String>,
    /// What computes the training step (overrides train.engine): native (plain-Rust CPU
    /// step), burn (burn autodiff on the build's backend) or auto (native on the CPU build,
    /// burn on GPU builds; a resumed run keeps the engine that wrote its checkpoint).
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    /// Delete the run folder and start over instead of resuming.
    #[arg(long)]
    fresh: bool,
    /// Resume although the dataset file's content changed since the run started (the run
    /// records the new hash in its dataset.json).
    #[arg(long)]
    allow_dataset_change: bool,
    /// Measure samples/s and peak memory for each batch size in compressed and window mode
    /// (one process per setting, with the engine --engine or train.engine picks) instead of
    /// training.
    #[arg(long)]
    bench: bool,
    /// Benchmark: batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "64,512")]
    bench_batch: Vec<usize>,
    /// Benchmark: timed steps per setting (after one untimed warm-up step).
    #[arg(long, default_value_t = 5)]
    bench_steps: usize,
    /// Benchmark: history file to read (default: a synthetic one in a temporary folder).
    #[arg(long, value_name = "PATH")]
    bench_data: Option<PathBuf>,
    /// Benchmark: streams per task of the synthetic file.
    #[arg(long, default_value_t = 8)]
    bench_streams: usize,
    /// Internal: run one benchmark setting in this process and print its result.
    #[arg(long, hide = true)]
    bench_child: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    run_main(|| run(args))
}

fn run(mut args: Args) -> Result<()> {
    if let Some(name) = &args.run {
        args.config.overrides.push(format!("train.run={name:?}"));
    }
    if let Some(engine) = args.engine {
        args.config
            .overrides
            .push(format!("train.engine={:?}", engine.as_str()));
    }
    let cfg = args.config.load()?;
    ccad_core::backend::start_device()?;
    if args.bench_child {
        let data = args
            .bench_data
            .clone()
            .unwrap_or_else(|| cfg.dataset_path());
        let r = bench::bench_setting(&cfg, &data, 1, args.bench_steps)?;
        println!(
            "{}{}",
            bench::RESULT_PREFIX,
            serde_json::to_string(&r).expect("json")
        );
        return Ok(());
    }
    if args.bench {
        return run_bench(&args, &cfg);
    }
    let opts = train::TrainOptions {
        fresh: args.fresh,
        stop_after: None,
        progress: true,
        verbose: true,
        allow_dataset_change: args.allow_dataset_change,
    };
    let out = train::train_with_probe(&cfg, &opts)?;
    if let Some(ckpt) = &out.checkpoint {
        eprintln!(
            "train: {} steps; model in {}",
            out.steps_done,
            ckpt.display()
        );
    }
    Ok(())
}

fn run_bench(args: &Args, cfg: &ccad_core::Config) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io(std::path::Path::new("train"), e))?;
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::path::Path::new("/tmp"), e))?;
    let data = match &args.bench_data {
        Some(p) => p.clone(),
        None => {
            let p = tmp.path().join("bench.hdf5");
            eprintln!(
                "bench: writing a synthetic history file ({} streams per task)",
                args.bench_streams
            );
            bench::write_bench_data(&p, cfg, args.bench_streams)?;
            p
        }
    };
    let mut base = vec![
        "--config".to_string(),
        args.config.config.display().to_string(),
    ];
    for ov in &args.config.overrides {
        base.extend(["--set".to_string(), ov.clone()]);
    }
    base.extend([
        "--bench-child".to_string(),
        "--bench-data".to_string(),
        data.display().to_string(),
        "--bench-steps".to_string(),
        args.bench_steps.to_string(),
    ]);
    let mut settings = Vec::new();
    for &b in &args.bench_batch {
        settings.push((b, ContextMode::Compressed));
        settings.push((b, ContextMode::Window));
    }
    println!("{}", bench::TABLE_HEADER);
    let results = bench::run_all(&exe, &base, &settings, |r| {
        println!("{}", bench::format_row(r))
    })?;
    for b in &args.bench_batch {
        let find = |c: &str| {
            results
                .iter()
                .find(|r| r.batch_size == *b && r.context == c)
        };
        if let (Some(c), Some(w)) = (find("compressed"), find("window")) {
            println!(
                "batch {b}: compressed peak memory {:.0}% of window's; {:.2}x its samples/s",
                100.0 * c.peak_memory_mib / w.peak_memory_mib.max(1e-9),
                c.samples_per_sec / w.samples_per_sec.max(1e-9)
            );
        }
    }
    Ok(())
}
