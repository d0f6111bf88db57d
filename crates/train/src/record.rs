//! What a training run records besides its checkpoints: the summary interval's `train/*`
//! scalars, the held-out and in-context scalars, `train_stats.json`'s session totals, and the
//! counters every checkpoint keeps across sessions.

use std::path::Path;

use ccad_core::config::{Config, variant_name};
use ccad_core::tb::RunLog;
use ccad_core::tokens::TokenBatch;
use ccad_core::{Error, Result, backend};
use model::LossMetrics;
use model::run_folder::TrainStats;

use crate::learner::{GradNorm, Learner};
use crate::stats::peak_memory_mib;

/// Running sums of one summary interval.
#[derive(Default)]
pub(crate) struct Interval {
    steps: usize,
    seconds: f64,
    sums: [f64; 5],
    norm: Option<GradNorm>,
}

impl Interval {
    pub(crate) fn add(&mut self, m: &LossMetrics, seconds: f64, norm: Option<GradNorm>) {
        self.steps += 1;
        self.seconds += seconds;
        let v = [
            m.total,
            m.action,
            m.token_type,
            m.acc_action,
            m.acc_token_type,
        ];
        for (s, x) in self.sums.iter_mut().zip(v) {
            *s += x as f64;
        }
        if let Some(n) = norm {
            self.norm = Some(match self.norm.take() {
                Some(acc) => acc + n,
                None => n,
            });
        }
    }

    /// `train/*` scalars: the interval's means, the learning rate, samples/s.
    pub(crate) fn log(self, log: &mut RunLog, lr: f64, batch_size: usize, step: usize) {
        let n = self.steps.max(1) as f64;
        let tags = [
            "train/loss",
            "train/loss_action",
            "train/loss_token_type",
            "train/acc_action",
            "train/acc_token_type",
        ];
        for (tag, sum) in tags.iter().zip(self.sums) {
            log.scalar(tag, sum / n, step);
        }
        if let Some(norm) = self.norm {
            log.scalar("train/grad_norm", norm.value() / n, step);
        }
        log.scalar("train/lr", lr, step);
        let rate = self.steps as f64 * batch_size as f64 / self.seconds.max(1e-9);
        log.scalar("train/samples_per_sec", rate, step);
    }
}

/// `train_stats.json` before this session's first step.
pub(crate) fn initial_stats(
    cfg: &Config,
    engine: &str,
    max_len: usize,
    start: usize,
    learner: &Learner,
) -> TrainStats {
    TrainStats {
        backend: backend::backend_name().to_string(),
        engine: engine.to_string(),
        context: variant_name(&cfg.dataset.context),
        objective: variant_name(&cfg.model.objective),
        max_context_tokens: max_len,
        batch_size: cfg.train.batch_size,
        steps_done: start,
        steps_total: cfg.train.steps,
        samples_per_sec: 0.0,
        labels_per_sec: 0.0,
        labels_trained: 0,
        seconds_per_step: 0.0,
        mean_tokens: 0.0,
        mean_padded_len: 0.0,
        peak_memory_mib: 0.0,
        n_params: learner.num_params(),
    }
}

/// Totals over every session of a run, kept in its checkpoints.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    pub samples: u64,
    /// Supervised action labels.
    pub labels: u64,
    /// Seconds in training steps.
    pub seconds: f64,
}

impl From<&model::run_folder::CheckpointState> for Seen {
    /// What a checkpoint recorded.
    fn from(s: &model::run_folder::CheckpointState) -> Self {
        Self {
            samples: s.samples_seen,
            labels: s.labels_seen,
            seconds: s.train_seconds,
        }
    }
}

impl Seen {
    pub(crate) fn add(&mut self, batch: &TokenBatch, seconds: f64) {
        self.samples += batch.batch as u64;
        self.labels += batch.n_labels() as u64;
        self.seconds += seconds;
    }
}

/// This invocation's totals, for `train_stats.json`.
#[derive(Default)]
pub(crate) struct Session {
    steps: usize,
    seconds: f64,
    tokens: u64,
    padded: u64,
    labels: u64,
}

impl Session {
    pub(crate) fn add(&mut self, batch: &TokenBatch, seconds: f64) {
        self.steps += 1;
        self.seconds += seconds;
        self.tokens += batch.lengths.iter().sum::<usize>() as u64;
        self.padded += (batch.batch * batch.seq_len) as u64;
        self.labels += batch.n_labels() as u64;
    }

    pub(crate) fn fill(&self, stats: &mut TrainStats, done: usize, batch_size: usize) {
        let samples = (self.steps * batch_size) as f64;
        stats.steps_done = done;
        stats.samples_per_sec = samples / self.seconds.max(1e-9);
        stats.labels_per_sec = self.labels as f64 / self.seconds.max(1e-9);
        stats.seconds_per_step = self.seconds / self.steps as f64;
        stats.mean_tokens = self.tokens as f64 / samples;
        stats.mean_padded_len = self.padded as f64 / samples;
        stats.peak_memory_mib = peak_memory_mib().unwrap_or(0.0);
    }
}

/// `test/*` scalars: the held-out batches' loss and accuracies.
pub(crate) fn log_held_out(log: &mut RunLog, h: &LossMetrics, step: usize) {
    log.scalar("test/loss", h.total as f64, step);
    log.scalar("test/loss_action", h.action as f64, step);
    log.scalar("test/acc_action", h.acc_action as f64, step);
    log.scalar("test/loss_token_type", h.token_type as f64, step);
    log.scalar("test/acc_token_type", h.acc_token_type as f64, step);
}

/// `icl/<set>_return` (mean over episodes), `icl/<set>_return_first` / `_last` against the
/// training step, and the whole curve as `icl_curve/step_<step>/<set>_return` against the
/// episode index.
pub(crate) fn log_icl(log: &mut RunLog, set: &str, returns: &[f64], step: usize) {
    if returns.is_empty() {
        return;
    }
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    log.scalar(&format!("icl/{set}_return"), mean, step);
    log.scalar(&format!("icl/{set}_return_first"), returns[0], step);
    log.scalar(
        &format!("icl/{set}_return_last"),
        returns[returns.len() - 1],
        step,
    );
    for (e, &r) in returns.iter().enumerate() {
        log.scalar(&format!("icl_curve/step_{step:08}/{set}_return"), r, e);
    }
}

/// tensorboard-rs names files by the second and pid: a second writer in the same second
/// (a resume right after a stop, in one process) would overwrite the first one's file.
pub(crate) fn open_run_log(dir: &Path) -> Result<RunLog> {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let prefix = format!("events.out.tfevents.{now:010}.");
        let taken = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        if !taken {
            return RunLog::create(dir);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
