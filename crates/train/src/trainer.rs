//! The training loop (DESIGN §6, §8): batches from the dataset's prefetching sampler, one
//! AdamW step per batch, scalars to TensorBoard, held-out metrics, checkpoints, resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ccad_core::backend::{Engine, Stage};
use ccad_core::config::{Config, TaskSet, TrainConfig};
use ccad_core::env::make_env;
use ccad_core::history::HistoryReader;
use ccad_core::progress::Progress;
use ccad_core::tokens::TokenBatch;
use ccad_core::{Error, Result, backend};
use dataset::{Dataset, Prefetcher, Sampler, fixed_batches};
use model::run_folder::{CheckpointState, DatasetRecord, RunDir, TrainStats};
use model::{AdModel, AdModelConfig, DataDims};

use crate::learner::{GradNorm, Learner, StepOutput};
use crate::record::{Interval, Seen, Session, initial_stats, log_held_out, log_icl, open_run_log};
use crate::run::{RunDirTraining, write_checkpoint};

/// How one invocation trains.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Delete the run folder first instead of resuming.
    pub fresh: bool,
    /// Stop dead once this many steps are done, writing nothing more (no checkpoint, no
    /// stats): what a `kill -9` at that moment leaves. For tests.
    pub stop_after: Option<usize>,
    /// Show the progress bar (it also hides itself when stderr is not a terminal).
    pub progress: bool,
    /// Print what happens (resume point, notices) on stderr.
    pub verbose: bool,
    /// Resume on a dataset file whose content changed since the run started (recorded in
    /// the run's `dataset.json`); refused otherwise.
    pub allow_dataset_change: bool,
}

/// A short in-context rollout run every `train.icl_interval` steps: the model (inference
/// copy, on `ccad_core::backend::device()`) acts on a few train and test tasks with no weight
/// updates. Implemented over `evaluate`'s rollout library by the binary.
pub trait IclProbe {
    fn run(&mut self, model: &AdModel, step: usize) -> Result<IclResult>;
}

/// Mean return per episode index (episode 0 first) on train tasks and on test tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IclResult {
    pub train_returns: Vec<f64>,
    pub test_returns: Vec<f64>,
}

/// What a finished (or stopped) invocation leaves.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    /// Steps done in total (over all sessions).
    pub steps_done: usize,
    /// The newest complete checkpoint.
    pub checkpoint: Option<PathBuf>,
    pub stats: Option<TrainStats>,
}

/// Train with the config's own paths: `cfg.dataset_path()` into `cfg.run_dir()`.
pub fn train(
    cfg: &Config,
    opts: &TrainOptions,
    icl: Option<&mut dyn IclProbe>,
) -> Result<TrainOutcome> {
    train_at(cfg, &cfg.dataset_path(), &cfg.run_dir(), opts, icl)
}

/// What the `train` binary does with a config: [`train`] with the in-context probe that
/// `train.icl_interval` asks for (built from the dataset's tasks).
pub fn train_with_probe(cfg: &Config, opts: &TrainOptions) -> Result<TrainOutcome> {
    let mut probe = if cfg.train.icl_interval > 0 {
        Some(crate::icl::EvaluateProbe::from_dataset(
            cfg,
            &cfg.dataset_path(),
        )?)
    } else {
        None
    };
    train(cfg, opts, probe.as_mut().map(|p| p as &mut dyn IclProbe))
}

/// Train on the history file `dataset_path` into `run_dir`, resuming from its newest
/// checkpoint unless `opts.fresh`.
pub fn train_at(
    cfg: &Config,
    dataset_path: &Path,
    run_dir: &Path,
    opts: &TrainOptions,
    mut icl: Option<&mut dyn IclProbe>,
) -> Result<TrainOutcome> {
    let t = &cfg.train;
    let say = |msg: &str| {
        if opts.verbose {
            eprintln!("train: {msg}");
        }
    };
    let run = RunDir::new(run_dir);
    let _lock = ccad_core::lock::Lock::acquire(&run.lock_path(), run_dir)?;
    if !opts.fresh {
        for notice in run.check_config(cfg)? {
            say(&notice);
        }
    }
    // Data first: a bad or changed dataset is refused before the run folder changes.
    let data = TrainData::load(cfg, dataset_path, &say)?;
    let record = dataset_record(&run, dataset_path, opts)?;
    let (mut learner, resumed) = open_run(&run, cfg, &data.model_cfg, opts.fresh, &say)?;
    record.write(&run)?;
    let engine = learner.engine().as_str();
    let (start, mut seen) = match &resumed {
        Some((s, _)) => (s.step, Seen::from(s)),
        None => (0, Seen::default()),
    };
    let mut checkpoint = resumed.map(|(_, d)| d);
    let mut last_ckpt_step = start;
    say(&data.describe(&learner, start, t.steps));
    let outcome = |steps_done, checkpoint, stats| TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        steps_done,
        checkpoint,
        stats,
    };
    if start >= t.steps {
        say("nothing to do: the run already has train.steps steps");
        return Ok(outcome(start, checkpoint, None));
    }

    let mut batches = data.batches_from(cfg, start);
    let mut log = open_run_log(run_dir)?;
    let pb = progress(opts.progress, t.steps, start);

    let mut stats = initial_stats(cfg, engine, data.train.max_len(), start, &learner);
    let mut session = Session::default();
    let mut interval = Interval::default();
    let mut last_lr = 0.0;
    let config_toml = cfg.to_toml_string();
    let save = |learner: &Learner, step: usize, seen: Seen, lr: f64| {
        let state = checkpoint_state(t, engine, step, seen, lr);
        write_checkpoint(&run, &state, &config_toml, t.keep_checkpoints, |d| {
            learner.save(d)
        })
    };

    for step in start..t.steps {
        if opts.stop_after.is_some_and(|n| step >= n) {
            // Simulated kill: leave everything as it is.
            return Ok(outcome(step, checkpoint, None));
        }
        if ccad_core::tb::interrupted() {
            if step > last_ckpt_step {
                let dir = save(&learner, step, seen, last_lr)?;
                say(&format!("interrupted: checkpoint {}", dir.display()));
            }
            log.flush();
            pb.abandon();
            return Err(Error::Interrupted);
        }

        let batch = batches.next_batch();
        let (out, norm, secs) = checked_step(&mut learner, &batch, step, dataset_path)?;
        let m = out.metrics;
        last_lr = out.lr;
        let done = step + 1;
        session.add(&batch, secs);
        seen.add(&batch, secs);
        interval.add(&m, secs, norm);
        pb.set_position(done as u64);
        pb.set_message(format!(
            "loss {:.3} {:.0} samples/s",
            m.total,
            batch.batch as f64 / secs.max(1e-9)
        ));

        if done % t.summary_interval == 0 || done == t.steps {
            std::mem::take(&mut interval).log(&mut log, out.lr, t.batch_size, done);
            session.fill(&mut stats, done, t.batch_size);
            stats.labels_trained = seen.labels;
            stats.write(&run.stats_path())?;
            log.flush();
        }
        if !data.held_out.is_empty() && (done % t.eval_interval == 0 || done == t.steps) {
            log_held_out(&mut log, &learner.held_out_metrics(&data.held_out), done);
        }
        let icl_due = t.icl_interval > 0 && (done % t.icl_interval == 0 || done == t.steps);
        if let Some(probe) = icl.as_deref_mut().filter(|_| icl_due) {
            let r = probe.run(&learner.inference_model(), done)?;
            log_icl(&mut log, "train", &r.train_returns, done);
            log_icl(&mut log, "test", &r.test_returns, done);
        }
        if done % t.ckpt_interval == 0 || done == t.steps {
            checkpoint = Some(save(&learner, done, seen, out.lr)?);
            last_ckpt_step = done;
        }
    }
    pb.finish();
    drop(log);
    Ok(outcome(t.steps, checkpoint, Some(stats)))
}

/// The training tasks' samples, the held-out batches (none when the dataset lists no test
/// tasks) and the model the config builds for this data.
struct TrainData {
    train: Arc<Dataset>,
    held_out: Vec<TokenBatch>,
    model_cfg: AdModelConfig,
}

impl TrainData {
    /// What this session trains, for the log.
    fn describe(&self, learner: &Learner, start: usize, steps: usize) -> String {
        format!(
            "{} train samples, {} held-out batches, {} parameters, backend {}, engine {}, steps {start}..{steps}",
            self.train.n_samples(),
            self.held_out.len(),
            learner.num_params(),
            backend::backend_name(),
            learner.engine().as_str(),
        )
    }

    fn load(cfg: &Config, dataset_path: &Path, say: &dyn Fn(&str)) -> Result<Self> {
        let t = &cfg.train;
        let train = Arc::new(Dataset::load(dataset_path, cfg, TaskSet::Train)?);
        let has_test = !HistoryReader::open(dataset_path)?
            .meta
            .test_tasks
            .is_empty();
        let held_out = if has_test {
            let test = Arc::new(Dataset::load(dataset_path, cfg, TaskSet::Test)?);
            fixed_batches(&test, t.eval_batches, t.batch_size, t.seed)
        } else {
            say("the dataset lists no test tasks: no test/* metrics");
            Vec::new()
        };
        let env = make_env(&cfg.env);
        let dims = DataDims::new(
            env.as_ref(),
            train.feat_dim(),
            train.max_len(),
            train.slots(),
        );
        let model_cfg = AdModelConfig::for_data(&cfg.model, dims);
        Ok(Self {
            train,
            held_out,
            model_cfg,
        })
    }

    /// Training batches on a background thread, from where step `start` left the sampler.
    fn batches_from(&self, cfg: &Config, start: usize) -> Prefetcher {
        let t = &cfg.train;
        let mut sampler = Sampler::new(
            self.train.clone(),
            t.batch_size,
            t.seed,
            cfg.dataset.bucket_by_length,
        );
        sampler.seek(start as u64);
        Prefetcher::spawn(sampler, cfg.dataset.prefetch)
    }
}

/// The step counter: a bar on a terminal, plain lines otherwise, nothing when `show` is off.
fn progress(show: bool, steps: usize, start: usize) -> Progress {
    let pb = if show {
        ccad_core::progress::bar(steps as u64, "train", "steps")
    } else {
        Progress::hidden()
    };
    pb.set_position(start as u64);
    pb
}

/// What a checkpoint written after `step` steps records besides the weights.
fn checkpoint_state(
    t: &TrainConfig,
    engine: &str,
    step: usize,
    seen: Seen,
    lr: f64,
) -> CheckpointState {
    CheckpointState {
        step,
        sampler_position: step as u64,
        seed: t.seed,
        samples_seen: seen.samples,
        labels_seen: seen.labels,
        lr,
        train_seconds: seen.seconds,
        backend: backend::backend_name().to_string(),
        engine: engine.to_string(),
    }
}

/// One training step, timed; a non-finite loss stops the run with an error naming the data.
fn checked_step(
    learner: &mut Learner,
    batch: &TokenBatch,
    step: usize,
    dataset_path: &Path,
) -> Result<(StepOutput, Option<GradNorm>, f64)> {
    let started = Instant::now();
    let (out, norm) = learner.step(batch, step);
    let secs = started.elapsed().as_secs_f64();
    let loss = out.metrics.total;
    if !loss.is_finite() {
        return Err(Error::file(
            dataset_path,
            "loss",
            format!(
                "became {loss} at step {step} (lr {:.3e}); the last checkpoint is intact",
                out.lr
            ),
        ));
    }
    Ok((out, norm, secs))
}

/// Prepare the run folder (cleared when `fresh`; partial checkpoints removed; config written)
/// and build the learner: resumed from the newest checkpoint with its state, or new.
/// The dataset record this session trains under: a resumed run's own, checked against the
/// file as it is now (before anything in the run folder changes), or the file's for a new run.
fn dataset_record(run: &RunDir, dataset_path: &Path, opts: &TrainOptions) -> Result<DatasetRecord> {
    let now = DatasetRecord::of_file(dataset_path)?;
    let resuming = !opts.fresh && run.latest_checkpoint()?.is_some();
    match DatasetRecord::read(run)? {
        Some(mut recorded) if resuming => {
            if recorded.check(&now, run, opts.allow_dataset_change)? && opts.verbose {
                eprintln!(
                    "train: --allow-dataset-change: going on with {} (hash {})",
                    now.path, now.hash
                );
            }
            Ok(recorded)
        }
        _ => Ok(now),
    }
}

fn open_run(
    run: &RunDir,
    cfg: &Config,
    model_cfg: &AdModelConfig,
    fresh: bool,
    say: &dyn Fn(&str),
) -> Result<(Learner, Option<(CheckpointState, PathBuf)>)> {
    let t = &cfg.train;
    if fresh {
        run.clear()?;
    }
    let dir = run.root();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    run.remove_partial_checkpoints()?;
    run.write_config(cfg)?;
    let device = backend::autodiff_device();
    let (mut learner, resumed) = match run.list_checkpoints()?.pop() {
        Some((_, dir)) => {
            let state = CheckpointState::read(&dir)?;
            let learner = Learner::resume(&dir, model_cfg, t, &device)?;
            say(&format!("resuming from {}", dir.display()));
            (learner, Some((state, dir)))
        }
        None => {
            run.remove_stale_logs()?;
            (Learner::new(model_cfg, t, &device), None)
        }
    };
    learner.set_train_config(t);
    if resumed.is_some()
        && t.engine == Engine::Auto
        && learner.engine() != t.engine.resolve(Stage::Train)
    {
        say(&format!(
            "train.engine = auto: continuing with the {} engine, which wrote the checkpoint",
            learner.engine().as_str()
        ));
    }
    Ok((learner, resumed))
}
