//! `cargo run --release -p evaluate --bin eval_bench`: rollout env-steps/s, cached vs full
//! re-run, at short and full compressed context (see `evaluate::bench`).

use ccad_core::config::Boundary;
use ccad_core::context::{CompressedQuery, ContextLayout};
use clap::Parser;
use evaluate::bench::bench;
use evaluate::rollout::Inference;

#[derive(Parser)]
#[command(about = "Time in-context rollouts: key/value cache vs a full re-run per step")]
struct Args {
    /// Environments stepped together.
    #[arg(long, default_value_t = 8)]
    envs: usize,
    /// Compress interval I (contexts up to 2I + 3 tokens).
    #[arg(long, default_value_t = 80)]
    interval: usize,
    /// Rollouts per engine; the fastest is reported per phase.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    ccad_core::cli::run_main(|| {
        let device = ccad_core::backend::device();
        println!(
            "backend {}  {} envs  compressed context, I = {} (max {} tokens)  default model  best of {}  {} rayon threads",
            ccad_core::backend::backend_name(),
            args.envs,
            args.interval,
            CompressedQuery::new(args.interval, Boundary::Fixed).max_len(),
            args.repeats,
            rayon::current_num_threads()
        );
        let rows = bench(args.envs, args.interval, args.repeats, &device, args.seed);
        println!(
            "{:<8} {:<6} {:>6} {:>10} {:>14}",
            "engine", "phase", "steps", "tokens", "env-steps/s"
        );
        for r in &rows {
            let mode = match r.inference {
                Inference::Native => "native",
                Inference::Cached => "burn-kv",
                Inference::Full => "full",
            };
            println!(
                "{mode:<8} {:<6} {:>6} {:>10} {:>14.0}",
                r.phase,
                r.steps,
                format!("{}..{}", r.tokens.0, r.tokens.1),
                r.env_steps_per_s
            );
        }
        for phase in ["short", "full"] {
            let rate = |m: Inference| {
                rows.iter()
                    .find(|r| r.phase == phase && r.inference == m)
                    .map_or(f64::NAN, |r| r.env_steps_per_s)
            };
            println!(
                "{phase}: speed-up over the full re-run: native cache {:.1}x, burn KvCache {:.1}x",
                rate(Inference::Native) / rate(Inference::Full),
                rate(Inference::Cached) / rate(Inference::Full)
            );
        }
        Ok::<(), ccad_core::Error>(())
    })
}
