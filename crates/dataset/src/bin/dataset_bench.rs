//! Batches and labels per second of the dataset pipeline, both objectives (query, dense) ×
//! both context modes, with and without length bucketing, at the same batch size (sequences),
//! on a history file or a synthetic one of a chosen size.
//!
//! `cargo run --release -p dataset --bin dataset_bench -- --tasks 81 --streams 100 --steps 1040`

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use ccad_core::cli::{ConfigArgs, run_main};
use ccad_core::config::{ContextMode, Objective, TaskSet};
use clap::Parser;
use dataset::sampler::pass_order;
use dataset::synthetic::{SyntheticSpec, write_synthetic};
use dataset::{Corpus, Dataset, Histories, Prefetcher, Sampler, layout_for, padding_fraction};

#[derive(Parser, Debug)]
#[command(about = "Benchmark batch assembly (batches/s, labels/s) for both objectives and modes")]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Read this history file instead of generating a synthetic one.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Synthetic file: tasks (paper scale 81).
    #[arg(long, default_value_t = 81)]
    tasks: usize,
    /// Synthetic file: streams per task (paper scale 100).
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Synthetic file: steps per stream (paper scale 1040).
    #[arg(long, default_value_t = 1040)]
    steps: usize,
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Batches timed per measurement.
    #[arg(long, default_value_t = 200)]
    batches: usize,
}

fn main() -> ExitCode {
    run_main(|| -> Result<(), Box<dyn std::error::Error>> {
        let args = Args::parse();
        let mut cfg = args.config.load()?;
        let tmp;
        let path = match &args.dataset {
            Some(p) => p.clone(),
            None => {
                tmp = tempfile::tempdir()?;
                let p = tmp.path().join("synthetic.hdf5");
                let spec = SyntheticSpec {
                    tasks: args.tasks,
                    streams: args.streams,
                    steps: args.steps,
                    seed: 0,
                };
                let t0 = Instant::now();
                write_synthetic(&p, &cfg, &spec)?;
                println!(
                    "synthetic file {spec:?}: written in {:.1} s",
                    t0.elapsed().as_secs_f64()
                );
                p
            }
        };
        let t0 = Instant::now();
        let corpus = Arc::new(Corpus::new(Histories::load(&path, &cfg, TaskSet::Train)?)?);
        println!(
            "loaded {} histories, {} transitions, {} regions (train tasks) in {:.1} s",
            corpus.histories.n_histories(),
            corpus.histories.n_transitions(),
            corpus.regions.regions().len(),
            t0.elapsed().as_secs_f64()
        );
        println!(
            "rayon threads: {}, batch {}",
            rayon::current_num_threads(),
            args.batch
        );
        let runs = [Objective::Query, Objective::Dense]
            .into_iter()
            .flat_map(|o| [ContextMode::Compressed, ContextMode::Window].map(|m| (o, m)));
        for (objective, mode) in runs {
            cfg.model.objective = objective;
            cfg.dataset.context = mode;
            let ds = Arc::new(Dataset::new(corpus.clone(), layout_for(&cfg)));
            for bucket in [false, true] {
                // A new pass order is made once per pass (every n_samples / batch batches).
                let t = Instant::now();
                std::hint::black_box(pass_order(&ds, args.batch, 0, 0, bucket));
                let order_s = t.elapsed().as_secs_f64();
                let mut s = Sampler::new(ds.clone(), args.batch, 0, bucket);
                let _ = s.next_batch(); // its first pass order, untimed
                let t = Instant::now();
                let (mut pad, mut len, mut labels) = (0.0, 0usize, 0usize);
                for _ in 0..args.batches {
                    let b = s.next_batch();
                    pad += padding_fraction(&b);
                    len += b.seq_len;
                    labels += b.n_labels();
                    std::hint::black_box(&b);
                }
                let direct = args.batches as f64 / t.elapsed().as_secs_f64();
                let mut p = Prefetcher::spawn(
                    Sampler::new(ds.clone(), args.batch, 1, bucket),
                    cfg.dataset.prefetch,
                );
                let _ = p.next_batch();
                let t = Instant::now();
                for _ in 0..args.batches {
                    std::hint::black_box(p.next_batch());
                }
                let pre = args.batches as f64 / t.elapsed().as_secs_f64();
                let per_batch = labels as f64 / args.batches as f64;
                println!(
                    "{:<16} bucket={:<5} max_len {:>3}  mean seq_len {:>6.1}  padding {:>5.1}%  {:>8.1} labels/batch  {:>7.1} batches/s ({:>9.0} labels/s), through prefetcher {:>7.1} batches/s; pass order {:.2} s per {} batches",
                    ds.layout().name(),
                    bucket,
                    ds.max_len(),
                    len as f64 / args.batches as f64,
                    100.0 * pad / args.batches as f64,
                    per_batch,
                    direct,
                    direct * per_batch,
                    pre,
                    order_s,
                    ds.n_samples().div_ceil(args.batch)
                );
            }
        }
        Ok(())
    })
}
