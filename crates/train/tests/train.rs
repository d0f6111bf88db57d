//! End-to-end: a tiny history file, a tiny model, a few steps.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use ccad_core::backend::{Engine, Stage};
use ccad_core::config::{Config, TaskSet};
use ccad_core::env::{make_env, split_tasks};
use ccad_core::history::{HistoryMeta, HistoryWriter, TaskHistory};
use ccad_core::tokens::{TokenBatch, marker_at};
use dataset::{Dataset, fixed_batches};
use model::native::{NativeNet, reference_loss_and_grads};
use model::run_folder::DatasetRecord;
use model::run_folder::{CheckpointState, RunDir, TrainStats};
use model::{AdModel, AdModelConfig};
use train::learner::{BurnLearner, Learner};
use train::optim::{FlatAdamW, clip_global_norm_flat};
use train::schedule::lr_at;
use train::{TrainOptions, train_at};

/// The device's random generator is shared: training tests run one at a time so each run's
/// dropout masks come only from its own seeds.
static SERIAL: Mutex<()> = Mutex::new(());

fn config(overrides: &[&str]) -> Config {
    let mut ov: Vec<String> = [
        "env.grid=3",
        "env.horizon=5",
        "collect.compress_interval=4",
        "model.d_model=16",
        "model.n_layers=1",
        "model.n_heads=2",
        "model.d_ff=32",
        "model.dropout=0.1",
        "train.batch_size=16",
        "train.lr=0.01",
        "train.warmup_steps=2",
        "train.eval_batches=2",
        "train.summary_interval=5",
        "train.eval_interval=5",
        "train.ckpt_interval=5",
        "dataset.prefetch=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ov.extend(overrides.iter().map(|s| s.to_string()));
    Config::from_toml_str("", "test.toml", &ov).unwrap()
}

/// A history file whose learners act by a fixed rule of the state, `a = (row + col) % 5`,
/// so the query's action is learnable: 9 tasks (3 × 3 goals), 2 streams of 24 steps.
fn write_history(path: &Path, cfg: &Config) {
    write_history_acting(path, cfg, 0);
}

/// [`write_history`] with the rule `a = (row + col + stream + shift) % 5` (another shift is
/// another dataset of the same environment and split).
fn write_history_acting(path: &Path, cfg: &Config, shift: usize) {
    let env = make_env(&cfg.env);
    let (train_tasks, test_tasks) = split_tasks(&cfg.env, env.as_ref(), env.n_tasks()).unwrap();
    let meta = HistoryMeta::for_config(cfg, &*env, train_tasks, test_tasks);
    let mut w = HistoryWriter::create(path, &meta).unwrap();
    let (t_len, s_len, d) = (24, 2, env.obs_dim());
    for task in 0..env.n_tasks() {
        let mut h = TaskHistory {
            task,
            param_name: env.task_param_name().to_string(),
            params: env.task_params(task),
            optimal_return: env.optimal_return(task),
            steps: t_len,
            n_stream: s_len,
            obs_dim: d,
            states: vec![0; t_len * s_len * d],
            next_states: vec![0; t_len * s_len * d],
            actions: vec![0; t_len * s_len],
            rewards: vec![0.0; t_len * s_len],
            dones: vec![0; t_len * s_len],
            compress_markers: vec![0; t_len * s_len],
        };
        let mut states = vec![env.reset(task); s_len];
        for t in 0..t_len {
            for (s, st) in states.iter_mut().enumerate() {
                let i = t * s_len + s;
                let mut obs = vec![0; d];
                env.observe(st, &mut obs);
                let a = (obs.iter().sum::<i32>() as usize + s + shift) % env.n_actions();
                h.states[i * d..(i + 1) * d].copy_from_slice(&obs);
                let out = env.step(task, st, a);
                env.observe(st, &mut h.next_states[i * d..(i + 1) * d]);
                h.actions[i] = a as i32;
                h.rewards[i] = out.reward;
                h.dones[i] = out.done as u8;
                h.compress_markers[i] = marker_at(t, cfg.compress_interval());
                if out.done {
                    *st = env.reset(task);
                }
            }
        }
        w.write_task(&h).unwrap();
    }
    w.finish().unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    root: PathBuf,
}

fn fixture(cfg: &Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tiny.hdf5");
    write_history(&data, cfg);
    let root = dir.path().to_path_buf();
    Fixture {
        _dir: dir,
        data,
        root,
    }
}

fn quiet() -> TrainOptions {
    TrainOptions::default()
}

/// Every float parameter, flattened, in visiting order.
fn params(model: &AdModel) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .extend(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// The newest complete checkpoint folder of a run.
fn latest_checkpoint(run: &Path) -> Option<PathBuf> {
    RunDir::new(run)
        .latest_checkpoint()
        .unwrap()
        .map(|(_, dir)| dir)
}

fn final_params(run: &Path) -> Vec<f32> {
    let dir = latest_checkpoint(run).expect("a checkpoint");
    params(&AdModel::load(&dir, &ccad_core::backend::device()).unwrap())
}

fn scalars(run: &Path, tag: &str) -> Vec<(i64, f32)> {
    ccad_core::tb::read_scalars(run)
        .unwrap()
        .into_iter()
        .filter(|(t, _, _)| t == tag)
        .map(|(_, s, v)| (s, v))
        .collect()
}

#[test]
fn a_tiny_native_run_learns_and_logs_every_tag() {
    tiny_run_learns_and_logs_every_tag("native");
}

#[test]
fn a_tiny_burn_run_learns_and_logs_every_tag() {
    tiny_run_learns_and_logs_every_tag("burn");
}

fn tiny_run_learns_and_logs_every_tag(engine: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let engine_override = format!("train.engine={engine}");
    let cfg = config(&[
        "train.steps=60",
        "train.summary_interval=10",
        "train.eval_interval=20",
        &engine_override,
    ]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/tiny");
    let out = train_at(&cfg, &f.data, &run, &quiet(), None).unwrap();
    assert_eq!(out.steps_done, 60);

    let tags = [
        "train/loss",
        "train/loss_action",
        "train/loss_token_type",
        "train/acc_action",
        "train/acc_token_type",
        "train/lr",
        "train/samples_per_sec",
        "train/grad_norm",
        "test/loss_action",
        "test/acc_action",
        "test/loss_token_type",
        "test/acc_token_type",
    ];
    for tag in tags {
        assert!(!scalars(&run, tag).is_empty(), "no {tag}");
    }
    let loss = scalars(&run, "train/loss");
    let steps: Vec<i64> = loss.iter().map(|s| s.0).collect();
    assert_eq!(steps, vec![10, 20, 30, 40, 50, 60]);
    let (first, last) = (loss[0].1, loss[loss.len() - 1].1);
    assert!(last < 0.7 * first, "{engine}: loss did not fall: {loss:?}");
    let norms = scalars(&run, "train/grad_norm");
    assert!(
        norms.iter().all(|&(_, n)| n.is_finite() && n > 0.0),
        "{norms:?}"
    );
    assert_eq!(scalars(&run, "test/acc_action").len(), 3);
    // lr at the last summary: step index 59 of 60, warm-up 2: p = 57/58, tiny but positive.
    let lr = scalars(&run, "train/lr");
    let expect = 0.01 * 0.5 * (1.0 + (std::f64::consts::PI * 57.0 / 58.0).cos());
    assert!((lr[lr.len() - 1].1 as f64 - expect).abs() < 1e-9, "{lr:?}");

    let stats: TrainStats =
        serde_json::from_str(&std::fs::read_to_string(run.join("train_stats.json")).unwrap())
            .unwrap();
    assert_eq!((stats.steps_done, stats.batch_size), (60, 16));
    assert_eq!(stats.engine, engine);
    assert_eq!(
        (stats.context.as_str(), stats.objective.as_str()),
        ("compressed", "query")
    );
    assert_eq!(stats.max_context_tokens, 2 * 4 + 3);
    assert!(stats.samples_per_sec > 0.0 && stats.peak_memory_mib > 0.0);
    let stored = Config::load(&run.join("config.toml"), &[]).unwrap();
    assert_eq!(stored, cfg);
}

#[test]
fn resuming_a_native_run_after_a_kill_gives_the_uninterrupted_parameters() {
    resuming_after_a_kill_gives_the_uninterrupted_parameters("native");
}

#[test]
fn resuming_a_burn_run_after_a_kill_gives_the_uninterrupted_parameters() {
    resuming_after_a_kill_gives_the_uninterrupted_parameters("burn");
}

fn resuming_after_a_kill_gives_the_uninterrupted_parameters(engine: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let engine_override = format!("train.engine={engine}");
    let cfg = config(&["train.steps=13", &engine_override]);
    let f = fixture(&cfg);

    let straight = f.root.join("runs/straight");
    train_at(&cfg, &f.data, &straight, &quiet(), None).unwrap();

    // Killed after step 8: the newest checkpoint is step 5, and a checkpoint was half written.
    let killed = f.root.join("runs/killed");
    let stop = TrainOptions {
        stop_after: Some(8),
        ..quiet()
    };
    let out = train_at(&cfg, &f.data, &killed, &stop, None).unwrap();
    assert_eq!(out.steps_done, 8);
    let partial = killed.join("checkpoints/.step-00000010.tmp-99");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), b"half").unwrap();
    let steps: Vec<usize> = RunDir::new(&killed)
        .list_checkpoints()
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, vec![5]);

    let out = train_at(&cfg, &f.data, &killed, &quiet(), None).unwrap();
    assert_eq!(out.steps_done, 13);
    assert!(
        !partial.exists(),
        "the half-written checkpoint is cleaned up"
    );

    let (a, b) = (final_params(&straight), final_params(&killed));
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max <= 1e-6, "{engine}: resumed parameters differ by {max}");
    let state = CheckpointState::read(&latest_checkpoint(&killed).unwrap());
    assert_eq!(state.unwrap().engine, engine);
    // Both moved away from their initialisation the same way: the run really trained.
    let first = params(
        &AdModel::load(
            &killed.join("checkpoints/step-00000010"),
            &ccad_core::backend::device(),
        )
        .unwrap(),
    );
    assert_ne!(first, b);

    // The resumed run's curve continues where the first session's stopped.
    let loss: Vec<i64> = scalars(&killed, "train/loss").iter().map(|s| s.0).collect();
    assert!(
        loss.contains(&5) && loss.contains(&10) && loss.contains(&13),
        "{loss:?}"
    );

    // Labels count across the kill: the resumed run trained as many as the straight one,
    // one per sample with the query objective.
    let labels = |run: &Path| -> u64 {
        let text = std::fs::read_to_string(run.join("train_stats.json")).unwrap();
        serde_json::from_str::<TrainStats>(&text)
            .unwrap()
            .labels_trained
    };
    assert_eq!((labels(&straight), labels(&killed)), (13 * 16, 13 * 16));

    // Running the finished command again does nothing.
    let out = train_at(&cfg, &f.data, &killed, &quiet(), None).unwrap();
    assert_eq!(out.steps_done, 13);
    assert_eq!(final_params(&killed), b);
}

#[test]
fn a_second_trainer_of_one_run_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&["train.steps=5"]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/busy");
    // Another train (here: this process) holds the run.
    let lock = ccad_core::lock::Lock::acquire(&RunDir::new(&run).lock_path(), &run).unwrap();
    let e = train_at(&cfg, &f.data, &run, &quiet(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("busy: lock: in use by process"), "{e}");
    assert!(!run.exists(), "nothing written");
    drop(lock);
    assert_eq!(
        train_at(&cfg, &f.data, &run, &quiet(), None)
            .unwrap()
            .steps_done,
        5
    );
    assert!(!RunDir::new(&run).lock_path().exists());
}

#[test]
fn a_run_folder_of_another_config_is_refused_unless_fresh() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&["train.steps=5"]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/r");
    train_at(&cfg, &f.data, &run, &quiet(), None).unwrap();

    let other = config(&["train.steps=5", "model.d_model=32"]);
    let err = train_at(&other, &f.data, &run, &quiet(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.toml: model.d_model: this run was trained with 16"),
        "{err}"
    );
    assert!(err.contains("--fresh") && !err.contains('\n'), "{err}");
    // Nothing was changed by the refusal.
    assert_eq!(Config::load(&run.join("config.toml"), &[]).unwrap(), cfg);

    let fresh = TrainOptions {
        fresh: true,
        ..quiet()
    };
    let out = train_at(&other, &f.data, &run, &fresh, None).unwrap();
    assert_eq!(out.steps_done, 5);
    let dir = latest_checkpoint(&run).unwrap();
    assert_eq!(
        AdModel::load(&dir, &ccad_core::backend::device())
            .unwrap()
            .config()
            .d_model,
        32
    );

    // Extending train.steps is allowed and continues the run.
    let longer = config(&["train.steps=7", "model.d_model=32"]);
    let out = train_at(&longer, &f.data, &run, &quiet(), None).unwrap();
    assert_eq!(out.steps_done, 7);
}

#[test]
fn only_the_newest_checkpoints_are_kept() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&[
        "train.steps=11",
        "train.ckpt_interval=2",
        "train.keep_checkpoints=2",
    ]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/k");
    train_at(&cfg, &f.data, &run, &quiet(), None).unwrap();
    let steps: Vec<usize> = RunDir::new(&run)
        .list_checkpoints()
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, vec![10, 11]);
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert_eq!(latest, "step-00000011");
    let dir = run.join("checkpoints").join(&latest);
    let optimizer = train::learner::optimizer_file(cfg.train.engine.resolve(Stage::Train));
    for file in [
        "model.json",
        "model.safetensors",
        optimizer,
        "state.json",
        "config.toml",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let state = CheckpointState::read(&dir).unwrap();
    assert_eq!(
        (
            state.step,
            state.sampler_position,
            state.samples_seen,
            state.labels_seen
        ),
        (11, 11, 11 * 16, 11 * 16)
    );
}

/// Stands in for evaluate's rollout: returns fixed per-episode returns and counts its calls.
struct FakeProbe {
    calls: Vec<usize>,
}

impl train::IclProbe for FakeProbe {
    fn run(&mut self, model: &AdModel, step: usize) -> ccad_core::Result<train::IclResult> {
        assert_eq!(model.config().d_model, 16);
        self.calls.push(step);
        Ok(train::IclResult {
            train_returns: vec![1.0, 2.0, 6.0],
            test_returns: vec![0.0, 4.0],
        })
    }
}

#[test]
fn in_context_rollouts_are_logged_every_icl_interval() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&["train.steps=7", "train.icl_interval=3"]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/icl");
    let mut probe = FakeProbe { calls: Vec::new() };
    train_at(&cfg, &f.data, &run, &quiet(), Some(&mut probe)).unwrap();
    assert_eq!(probe.calls, vec![3, 6, 7], "every 3 steps and at the end");
    // Mean of [1, 2, 6] = 3; first 1, last 6; test mean of [0, 4] = 2.
    assert_eq!(
        scalars(&run, "icl/train_return"),
        vec![(3, 3.0), (6, 3.0), (7, 3.0)]
    );
    assert_eq!(scalars(&run, "icl/train_return_first")[0], (3, 1.0));
    assert_eq!(scalars(&run, "icl/train_return_last")[0], (3, 6.0));
    assert_eq!(scalars(&run, "icl/test_return")[0], (3, 2.0));
    let curve = scalars(&run, "icl_curve/step_00000006/train_return");
    assert_eq!(curve, vec![(0, 1.0), (1, 2.0), (2, 6.0)]);
}

#[test]
fn evaluate_rollouts_run_during_training() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&[
        "train.steps=4",
        "train.icl_interval=4",
        "train.icl_episodes=3",
    ]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/icl-eval");
    let mut probe = train::icl::EvaluateProbe::from_dataset(&cfg, &f.data).unwrap();
    train_at(&cfg, &f.data, &run, &quiet(), Some(&mut probe)).unwrap();
    // Returns of a 5-step episode lie in [0, 5].
    for set in ["train", "test"] {
        let curve = scalars(&run, &format!("icl_curve/step_00000004/{set}_return"));
        assert_eq!(curve.len(), 3, "{set}: {curve:?}");
        assert!(
            curve.iter().all(|&(_, r)| (0.0..=5.0).contains(&r)),
            "{curve:?}"
        );
    }
}

/// The tiny model and one training batch of `cfg` over `f`'s history file.
fn model_and_batch(cfg: &Config, f: &Fixture) -> (AdModelConfig, TokenBatch) {
    let ds = Arc::new(Dataset::load(&f.data, cfg, TaskSet::Train).unwrap());
    let env = make_env(&cfg.env);
    let model_cfg = AdModelConfig::new(
        &cfg.model,
        ds.feat_dim(),
        env.n_states(),
        env.n_actions(),
        ds.max_len(),
    );
    let batch = fixed_batches(&ds, 1, cfg.train.batch_size, 7).remove(0);
    (model_cfg, batch)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

fn learner_params(l: &Learner) -> Vec<f32> {
    match l {
        Learner::Burn(b) => NativeNet::from_model(b.model()).unwrap().params().to_vec(),
        Learner::Native(n) => n.net().params().to_vec(),
    }
}

/// The native engine's AdamW and clipping, fed burn's own gradients, follow burn's optimiser
/// over three steps (bias correction, moments and weight decay past the first step), with the
/// clip active; then one whole native step (its own forward and backward) against one burn
/// step from the same initial weights. Dropout 0, so dropout numbers play no part.
#[test]
fn native_steps_follow_burn_steps() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&[
        "train.steps=20",
        "model.dropout=0",
        "train.grad_clip=0.5",
        "train.weight_decay=0.1",
    ]);
    let f = fixture(&cfg);
    let (model_cfg, batch) = model_and_batch(&cfg, &f);
    let t = &cfg.train;
    let device = ccad_core::backend::autodiff_device();

    let mut burn = BurnLearner::new(&model_cfg, t, &device);
    let mut net = NativeNet::from_model(burn.model()).unwrap();
    let mut optim = FlatAdamW::new(t, net.n_params());
    let mut clipped = 0;
    for step in 0..3 {
        let (_, mut grads) = reference_loss_and_grads(burn.model(), &batch, &device);
        let norm = clip_global_norm_flat(&mut grads, t.grad_clip);
        clipped += (norm > t.grad_clip as f32) as usize;
        optim.step(lr_at(t, step), net.params_mut(), &grads);
        let (_, burn_norm) = burn.step(&batch, step);
        let burn_norm = burn_norm.unwrap().into_scalar::<f32>();
        assert!(
            (norm - burn_norm).abs() <= 1e-5 * burn_norm,
            "{norm} vs {burn_norm}"
        );
        let burn_params = NativeNet::from_model(burn.model()).unwrap();
        let max = max_abs_diff(net.params(), burn_params.params());
        assert!(
            max <= 1e-6,
            "step {step}: flat AdamW differs from burn's by {max}"
        );
    }
    assert!(clipped > 0, "the clip never engaged");
    assert_eq!(optim.time, 3);

    let engine = |e: Engine| {
        let mut t = t.clone();
        t.engine = e;
        Learner::new(&model_cfg, &t, &device)
    };
    let (mut native, mut burn) = (engine(Engine::Native), engine(Engine::Burn));
    assert_eq!(native.engine(), Engine::Native);
    assert_eq!(burn.engine(), Engine::Burn);
    let before = learner_params(&native);
    assert_eq!(before, learner_params(&burn), "same initial weights");
    let Learner::Burn(b) = &burn else {
        unreachable!()
    };
    let (_, grads) = reference_loss_and_grads(b.model(), &batch, &device);
    let (a, na) = native.step(&batch, 0);
    let (b, nb) = burn.step(&batch, 0);
    assert!((a.metrics.total - b.metrics.total).abs() < 1e-5);
    assert_eq!(a.lr, b.lr);
    let (na, nb) = (na.unwrap().value(), nb.unwrap().value());
    // On a GPU the burn side's softmax and cross-entropy use the shader's exp and log
    // (accurate to a few ulp, not correctly rounded) and its reductions run in another
    // order: on lavapipe the norms differ by 5e-5 relative, on burn's CPU backend by ~1e-7.
    let tol = if ccad_core::backend::is_gpu_build() {
        1e-4
    } else {
        1e-5
    };
    assert!((na - nb).abs() <= tol * nb, "grad norm {na} vs {nb}");
    let (pa, pb) = (learner_params(&native), learner_params(&burn));
    assert!(
        max_abs_diff(&pa, &before) > 1e-3,
        "the step moved the weights"
    );
    // The engines' gradients agree to ~1e-7. Adam's first step moves each weight by
    // lr·g/(|g| + 1e-8): where |g| (after clipping) is near ε that amplifies the rounding
    // difference, up to 2·lr in the worst case (a near-zero gradient of opposite signs).
    // Those few weights get that bound; weights without a gradient (unused positions and
    // states) only decay, identically; every other weight must agree to 1e-5.
    let (mut max, mut loose) = (0.0f32, 0);
    for ((x, y), g) in pa.iter().zip(&pb).zip(&grads) {
        let d = (x - y).abs();
        if *g == 0.0 {
            assert_eq!(x, y, "a weight without gradient");
        } else if g.abs() >= 1e-3 {
            max = max.max(d);
        } else {
            loose += 1;
            assert!(d <= 2.0 * a.lr as f32 + 1e-6, "{d} at gradient {g}");
        }
    }
    assert!(
        max <= 1e-5,
        "one native step differs from one burn step by {max}"
    );
    // The strict bound must cover most weights (about 5% of this batch's gradients are
    // below 1e-3: 151 of 2,968 with burn on lavapipe).
    assert!(
        loose * 10 < pa.len(),
        "{loose} of {} gradients near 0",
        pa.len()
    );
}

#[test]
fn a_checkpoint_continues_only_under_its_own_engine() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&["train.steps=5", "train.engine=native"]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/engines");
    train_at(&cfg, &f.data, &run, &quiet(), None).unwrap();
    let dir = latest_checkpoint(&run).unwrap();
    assert!(dir.join("optimizer-native.bin").is_file());
    assert!(!dir.join("optimizer.bpk").exists());

    // Asking for burn: refused, one line naming the file, the engine and the way on.
    let as_burn = config(&["train.steps=7", "train.engine=burn"]);
    let err = train_at(&as_burn, &f.data, &run, &quiet(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step-00000005/optimizer-native.bin: train.engine: ")
            && err.contains("written by the native engine")
            && err.contains("--engine native")
            && !err.contains('\n'),
        "{err}"
    );
    // auto continues with the engine that wrote the checkpoint.
    let auto = config(&["train.steps=7"]);
    let out = train_at(&auto, &f.data, &run, &quiet(), None).unwrap();
    assert_eq!(out.steps_done, 7);
    let dir = latest_checkpoint(&run).unwrap();
    assert_eq!(CheckpointState::read(&dir).unwrap().engine, "native");

    // The same the other way round: a burn checkpoint refuses native, auto keeps burn.
    let burn = config(&["train.steps=5", "train.engine=burn"]);
    let run = f.root.join("runs/engines-burn");
    train_at(&burn, &f.data, &run, &quiet(), None).unwrap();
    let as_native = config(&["train.steps=7", "train.engine=native"]);
    let err = train_at(&as_native, &f.data, &run, &quiet(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("optimizer.bpk: train.engine: ") && err.contains("--engine burn"),
        "{err}"
    );
    train_at(&auto, &f.data, &run, &quiet(), None).unwrap();
    let dir = latest_checkpoint(&run).unwrap();
    assert_eq!(CheckpointState::read(&dir).unwrap().engine, "burn");
    assert!(dir.join("optimizer.bpk").is_file());
}

#[test]
fn a_run_refuses_a_re_collected_dataset_unless_told() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(&["train.steps=10"]);
    let f = fixture(&cfg);
    let run = f.root.join("runs/changed");
    let stop = TrainOptions {
        stop_after: Some(7),
        ..quiet()
    };
    train_at(&cfg, &f.data, &run, &stop, None).unwrap();
    let read = || -> DatasetRecord {
        serde_json::from_str(&std::fs::read_to_string(run.join("dataset.json")).unwrap()).unwrap()
    };
    let first = read();
    assert_eq!(first.hash, ccad_core::hash::file_hash(&f.data).unwrap());

    // The same file name, re-collected with other learners (the same split: another split
    // is refused earlier, by the dataset's own audit).
    write_history_acting(&f.data, &cfg, 1);
    let new_hash = ccad_core::hash::file_hash(&f.data).unwrap();
    assert_ne!(new_hash, first.hash);
    let e = train_at(&cfg, &f.data, &run, &quiet(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dataset.json: hash: the run trained on")
            && e.contains(&first.hash)
            && e.contains(&new_hash),
        "{e}"
    );
    assert_eq!(read(), first, "a refused resume changes nothing");

    let allow = TrainOptions {
        allow_dataset_change: true,
        ..quiet()
    };
    assert_eq!(
        train_at(&cfg, &f.data, &run, &allow, None)
            .unwrap()
            .steps_done,
        10
    );
    let now = read();
    assert_eq!(
        (now.hash.clone(), now.accepted_changes),
        (new_hash.clone(), vec![new_hash])
    );
}

/// Every memory mode trains end to end on both engines (loss falls; the stats name the mode)
/// and its model rolls out in context through evaluation's decoder during training.
#[test]
fn memory_modes_train_and_roll_out() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let modes = [
        ("merge", r#"memory.update="merge""#),
        ("concat", r#"memory.update="concat""#),
        ("keep", r#"memory.keep="rewarded""#),
    ];
    for (name, mode) in modes {
        for engine in ["native", "burn"] {
            let engine_override = format!("train.engine={engine}");
            let cfg = config(&[
                r#"model.objective="dense""#,
                r#"dataset.context="memory""#,
                mode,
                "model.dropout=0.0",
                "train.batch_size=4",
                "train.steps=40",
                "train.summary_interval=10",
                "train.icl_interval=40",
                "train.icl_episodes=3",
                &engine_override,
            ]);
            let f = fixture(&cfg);
            let run = f.root.join(format!("runs/{name}-{engine}"));
            let mut probe = train::icl::EvaluateProbe::from_dataset(&cfg, &f.data).unwrap();
            train_at(&cfg, &f.data, &run, &quiet(), Some(&mut probe)).unwrap();
            let loss = scalars(&run, "train/loss");
            let (first, last) = (loss[0].1, loss[loss.len() - 1].1);
            assert!(
                last < 0.8 * first,
                "{name} {engine}: loss did not fall: {loss:?}"
            );
            let stats: TrainStats = serde_json::from_str(
                &std::fs::read_to_string(run.join("train_stats.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(stats.context, "memory", "{name} {engine}");
            for set in ["train", "test"] {
                let curve = scalars(&run, &format!("icl_curve/step_00000040/{set}_return"));
                assert_eq!(curve.len(), 3, "{name} {engine} {set}: {curve:?}");
                assert!(curve.iter().all(|&(_, r)| (0.0..=5.0).contains(&r)));
            }
        }
    }
}
