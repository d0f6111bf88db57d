//! Speed and peak memory of training steps, one setting (batch size × context mode) per
//! process so each peak (`VmHWM`) belongs to one setting. `train --bench` runs the parent
//! ([`run_all`]), which re-executes the binary once per setting ([`bench_setting`] inside).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use ccad_core::config::{Config, ContextMode, TaskSet, variant_name};
use ccad_core::env::make_env;
use ccad_core::{Error, Result, backend};
use dataset::synthetic::{SyntheticSpec, write_synthetic};
use dataset::{Dataset, Prefetcher, Sampler};
use model::{AdModelConfig, DataDims};
use serde::{Deserialize, Serialize};

use crate::learner::Learner;
use crate::stats::{current_memory_mib, peak_memory_mib, process_cpu_seconds};

/// Marks the child's result line on stdout.
pub const RESULT_PREFIX: &str = "BENCH_RESULT ";

/// One setting's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub backend: String,
    /// `"native"` or `"burn"` (`train.engine`, resolved).
    #[serde(default)]
    pub engine: String,
    pub context: String,
    pub batch_size: usize,
    /// Timed steps (after the untimed warm-up steps).
    pub steps: usize,
    pub seconds_per_step: f64,
    pub samples_per_sec: f64,
    /// Process CPU time (all threads) per timed step: wall time inflated by other jobs on a
    /// shared machine does not show here.
    pub cpu_seconds_per_step: f64,
    /// Mean real tokens per sample and mean padded sequence length of the timed batches.
    pub mean_tokens: f64,
    pub mean_padded_len: f64,
    pub max_context_tokens: usize,
    /// Peak resident memory of the process (data, model, steps), MiB.
    pub peak_memory_mib: f64,
    /// Resident memory after the data was loaded, before the first step, MiB.
    pub base_memory_mib: f64,
}

/// Time `steps` training steps (after `warmup` untimed ones) of `cfg`'s model on the train
/// tasks of `dataset_path`, with the same [`Learner::step`] and prefetching as training.
pub fn bench_setting(
    cfg: &Config,
    dataset_path: &Path,
    warmup: usize,
    steps: usize,
) -> Result<BenchResult> {
    let t = &cfg.train;
    let ds = Arc::new(Dataset::load(dataset_path, cfg, TaskSet::Train)?);
    let env = make_env(&cfg.env);
    let data = DataDims::new(env.as_ref(), ds.feat_dim(), ds.max_len(), ds.slots());
    let model_cfg = AdModelConfig::for_data(&cfg.model, data);
    let device = backend::autodiff_device();
    let mut learner = Learner::new(&model_cfg, t, &device);
    let sampler = Sampler::new(
        ds.clone(),
        t.batch_size,
        t.seed,
        cfg.dataset.bucket_by_length,
    );
    let mut batches = Prefetcher::spawn(sampler, cfg.dataset.prefetch);
    let base = current_memory_mib().unwrap_or(0.0);
    let (mut seconds, mut tokens, mut padded) = (0.0, 0usize, 0usize);
    let mut cpu_start = 0.0;
    for step in 0..warmup + steps {
        if step == warmup {
            cpu_start = process_cpu_seconds().unwrap_or(0.0);
        }
        ccad_core::tb::check_interrupt()?;
        let started = Instant::now();
        let batch = batches.next_batch();
        let (out, _) = learner.step(&batch, step);
        if !out.metrics.total.is_finite() {
            return Err(Error::file(
                dataset_path,
                "loss",
                "is not finite in the benchmark",
            ));
        }
        if step >= warmup {
            seconds += started.elapsed().as_secs_f64();
            tokens += batch.lengths.iter().sum::<usize>();
            padded += batch.batch * batch.seq_len;
        }
    }
    let cpu = process_cpu_seconds().unwrap_or(0.0) - cpu_start;
    let n = steps.max(1) as f64;
    let samples = n * t.batch_size as f64;
    Ok(BenchResult {
        backend: backend::backend_name().to_string(),
        engine: learner.engine().as_str().to_string(),
        context: variant_name(&cfg.dataset.context),
        batch_size: t.batch_size,
        steps,
        seconds_per_step: seconds / n,
        samples_per_sec: samples / seconds.max(1e-9),
        cpu_seconds_per_step: cpu / n,
        mean_tokens: tokens as f64 / samples,
        mean_padded_len: padded as f64 / samples,
        max_context_tokens: ds.max_len(),
        peak_memory_mib: peak_memory_mib().unwrap_or(0.0),
        base_memory_mib: base,
    })
}

/// A synthetic history file for the benchmark: every task of the config's environment,
/// `streams` streams of 13 regions each (the paper's history length with I = 80).
pub fn write_bench_data(path: &Path, cfg: &Config, streams: usize) -> Result<()> {
    let spec = SyntheticSpec {
        tasks: usize::MAX,
        streams,
        steps: 13 * cfg.compress_interval(),
        seed: 0,
    };
    write_synthetic(path, cfg, &spec)
}

/// Run every (batch size, context) setting in its own child process of `exe` (this binary)
/// with `base_args` (config arguments) plus the setting's overrides; collect their results.
/// `on_result` sees each result as it arrives.
pub fn run_all(
    exe: &Path,
    base_args: &[String],
    settings: &[(usize, ContextMode)],
    mut on_result: impl FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    let mut out = Vec::new();
    for &(batch, context) in settings {
        ccad_core::tb::check_interrupt()?;
        let output = Command::new(exe)
            .args(base_args)
            .arg("--set")
            .arg(format!("train.batch_size={batch}"))
            .arg("--set")
            .arg(format!("dataset.context=\"{}\"", variant_name(&context)))
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::io(exe, e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(RESULT_PREFIX))
            .ok_or_else(|| {
                Error::file(
                    exe,
                    "bench",
                    format!(
                        "batch {batch} {} gave no result (exit {:?})",
                        variant_name(&context),
                        output.status.code()
                    ),
                )
            })?;
        let r: BenchResult = serde_json::from_str(line)
            .map_err(|e| Error::file(exe, "bench", format!("unreadable result: {e}")))?;
        on_result(&r);
        out.push(r);
    }
    Ok(out)
}

/// One table row.
pub fn format_row(r: &BenchResult) -> String {
    format!(
        "{:<8} {:<7} {:<10} {:>5} {:>9.1} {:>9.1} {:>8.3} {:>10.1} {:>10.3} {:>9.0} {:>9.0}",
        r.backend,
        r.engine,
        r.context,
        r.batch_size,
        r.mean_tokens,
        r.mean_padded_len,
        r.seconds_per_step,
        r.samples_per_sec,
        r.cpu_seconds_per_step,
        r.peak_memory_mib,
        r.base_memory_mib
    )
}

pub const TABLE_HEADER: &str = "backend  engine  context    batch    tokens    padded   s/step  samples/s  cpu s/step  peak MiB  base MiB";
