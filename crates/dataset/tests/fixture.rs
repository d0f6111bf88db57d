//! A small hand-made history file, its expected batches written out by hand, and the errors
//! a file that does not match the config must give.

use std::path::Path;
use std::sync::Arc;

use ccad_core::config::{Config, TaskSet};
use ccad_core::context::Visibility;
use ccad_core::history::{FORMAT_VERSION, HistoryMeta, HistoryWriter, TaskHistory};
use ccad_core::tokens::{IGNORE, NO_SLOT, TokenBatch};
use dataset::{Dataset, Histories, Sampler, fixed_batches, sequential_batches};

const CONFIG: &str = "[env]\ngrid = 3\nhorizon = 4\n[collect]\ncompress_interval = 3\n\
                      [dataset]\nn_transit = 3\n";

fn config(extra: &[&str]) -> Config {
    let ov: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    Config::from_toml_str(CONFIG, "test.toml", &ov).unwrap()
}

fn meta() -> HistoryMeta {
    HistoryMeta {
        format_version: FORMAT_VERSION,
        env_name: "darkroom".into(),
        env_params: r#"{"grid":3,"horizon":4}"#.into(),
        config: CONFIG.into(),
        compress_interval: 3,
        n_actions: 5,
        train_tasks: vec![4],
        test_tasks: vec![0],
    }
}

/// Dark Room 3×3, goal of task 4 = (1, 1) = the start. Two streams of 5 steps, I = 3:
/// markers [1, 0, 2, 1, 0] → regions [0,3) closed and [3,5) cut short.
///
/// stream 0: (1,1) -a2-> (1,2) -a0-> (2,2) -a1-> (1,2) -a3-> (1,1)r1 -a4-> (1,1)r1
/// stream 1: (1,1) -a1-> (0,1) -a4-> (0,1) -a0-> (1,1)r1 -a4-> (1,1)r1 -a3-> (1,0)
///
/// Horizon 4: both streams' first episode ends with step 3 (done = 1); the reset state is
/// (1,1), which is also where both streams stood, so the states above stay as they are.
fn task(id: usize) -> TaskHistory {
    let s0 = [[1, 1], [1, 2], [2, 2], [1, 2], [1, 1], [1, 1]];
    let a0 = [2, 0, 1, 3, 4];
    // Rewards of task 4 (goal = the start); other tasks never reach their goal here.
    let goal = if id == 4 { 1.0 } else { 0.0 };
    let r0 = [0.0, 0.0, 0.0, goal, goal];
    let s1 = [[1, 1], [0, 1], [0, 1], [1, 1], [1, 1], [1, 0]];
    let a1 = [1, 4, 0, 4, 3];
    let r1 = [0.0, 0.0, goal, goal, 0.0];
    let mut h = TaskHistory {
        task: id,
        param_name: "goal".into(),
        params: vec![(id / 3) as i32, (id % 3) as i32],
        optimal_return: 4.0,
        steps: 5,
        n_stream: 2,
        obs_dim: 2,
        ..Default::default()
    };
    // Time-major: index t * n_stream + stream.
    for t in 0..5 {
        for (s, a, r) in [(&s0, &a0, &r0), (&s1, &a1, &r1)] {
            h.states.extend_from_slice(&s[t]);
            h.next_states.extend_from_slice(&s[t + 1]);
            h.actions.push(a[t]);
            h.rewards.push(r[t]);
            h.dones.push((t == 3) as u8);
            h.compress_markers.push([1, 0, 2, 1, 0][t]);
        }
    }
    h
}

fn write(path: &Path, meta: &HistoryMeta, tasks: &[TaskHistory]) {
    let mut w = HistoryWriter::create(path, meta).unwrap();
    for t in tasks {
        w.write_task(t).unwrap();
    }
    w.finish().unwrap();
}

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.hdf5");
    write(&path, &meta(), &[task(4), task(0)]);
    (dir, path)
}

// Transition features concat(s, one_hot(a), r, s'), feat_dim = 2 + 5 + 1 + 2 = 10.
// Global ids, history-major: stream 0 is g 0..5, stream 1 is g 5..10.
const T0: [f32; 10] = [1., 1., 0., 0., 1., 0., 0., 0., 1., 2.];
const T1: [f32; 10] = [1., 2., 1., 0., 0., 0., 0., 0., 2., 2.];
const T2: [f32; 10] = [2., 2., 0., 1., 0., 0., 0., 0., 1., 2.];
const T3: [f32; 10] = [1., 2., 0., 0., 0., 1., 0., 1., 1., 1.];
const T5: [f32; 10] = [1., 1., 0., 1., 0., 0., 0., 0., 0., 1.];
const T6: [f32; 10] = [0., 1., 0., 0., 0., 0., 1., 0., 0., 1.];
const Z: [f32; 10] = [0.0; 10];
const I: i32 = IGNORE;

fn flat(rows: &[&[[f32; 10]]]) -> Vec<f32> {
    rows.iter()
        .flat_map(|r| r.iter().flatten().copied())
        .collect()
}

#[test]
fn loads_history_major_with_state_indices() {
    let (_d, path) = fixture();
    let h = Histories::load(&path, &config(&[]), TaskSet::Train).unwrap();
    assert_eq!(h.n_histories(), 2);
    assert_eq!(h.offsets, vec![0, 5, 10]);
    assert_eq!(h.task, vec![4, 4]);
    assert_eq!(h.stream, vec![0, 1]);
    assert_eq!(h.actions, vec![2, 0, 1, 3, 4, 1, 4, 0, 4, 3]);
    assert_eq!(h.markers, vec![1, 0, 2, 1, 0, 1, 0, 2, 1, 0]);
    let d = [false, false, false, true, false];
    assert_eq!(h.dones, [d, d].concat());
    // state index = row * 3 + col: (1,1)=4 (1,2)=5 (2,2)=8; (0,1)=1.
    assert_eq!(h.state_index, vec![4, 5, 8, 5, 4, 4, 1, 1, 4, 4]);
    let test = Histories::load(&path, &config(&[]), TaskSet::Test).unwrap();
    assert_eq!(test.task, vec![0, 0]);
    let all = Histories::load(&path, &config(&[]), TaskSet::All).unwrap();
    assert_eq!(all.task, vec![0, 0, 4, 4]);
}

#[test]
fn compressed_batch_by_hand() {
    let (_d, path) = fixture();
    let ds = Dataset::load(&path, &config(&[]), TaskSet::Train).unwrap();
    assert_eq!(ds.max_len(), 2 * 3 + 3);
    // Sample 4 (stream 0, t 4, region 1): <c> T0 T1 T2 </c> <c> T3 q(s4)   → 8 tokens
    // Sample 7 (stream 1, t 2, ends region 0): <c> T5 T6 q(s7)               → 4 tokens
    // Sample 5 (stream 1, t 0): <c> q(s5)                                    → 2 tokens
    let b = ds.batch(&[4, 7, 5]);
    let want = TokenBatch {
        batch: 3,
        seq_len: 8,
        feat_dim: 10,
        features: flat(&[
            &[Z, T0, T1, T2, Z, Z, T3, Z],
            &[Z, T5, T6, Z, Z, Z, Z, Z],
            &[Z, Z, Z, Z, Z, Z, Z, Z],
        ]),
        #[rustfmt::skip]
        kinds: vec![
            1, 0, 0, 0, 2, 1, 0, 3,
            1, 0, 0, 3, 0, 0, 0, 0,
            1, 3, 0, 0, 0, 0, 0, 0,
        ],
        // q(s4) = (1,1) → 4; q(s7) = (0,1) → 1; q(s5) = (1,1) → 4.
        #[rustfmt::skip]
        state_index: vec![
            0, 0, 0, 0, 0, 0, 0, 4,
            0, 0, 0, 1, 0, 0, 0, 0,
            0, 4, 0, 0, 0, 0, 0, 0,
        ],
        lengths: vec![8, 4, 2],
        // a4 = 4, a7 = 0, a5 = 1.
        #[rustfmt::skip]
        target_action: vec![
            I, I, I, I, I, I, I, 4,
            I, I, I, 0, I, I, I, I,
            I, 1, I, I, I, I, I, I,
        ],
        // t 2 of stream 1 carries END: a </c> follows → type 2; the others → 0.
        #[rustfmt::skip]
        target_type: vec![
            I, I, I, I, I, I, I, 0,
            I, I, I, 2, I, I, I, I,
            I, 0, I, I, I, I, I, I,
        ],
        visibility: vec![Visibility::Causal; 3],
        slot: vec![NO_SLOT; 24],
        region: vec![NO_SLOT; 24],
    };
    assert_eq!(b, want);
}

#[test]
fn window_batch_by_hand() {
    let (_d, path) = fixture();
    let ds = Dataset::load(&path, &config(&["dataset.context=window"]), TaskSet::Train).unwrap();
    assert_eq!(ds.max_len(), 3);
    // n_transit = 3: the last 2 transitions of the same history, then the query.
    // Sample 4: T2 T3 q(s4); sample 7: T5 T6 q(s7); sample 5: q(s5) (history start).
    let b = ds.batch(&[4, 7, 5]);
    let want = TokenBatch {
        batch: 3,
        seq_len: 3,
        feat_dim: 10,
        features: flat(&[&[T2, T3, Z], &[T5, T6, Z], &[Z, Z, Z]]),
        kinds: vec![0, 0, 3, 0, 0, 3, 3, 0, 0],
        state_index: vec![0, 0, 4, 0, 0, 1, 4, 0, 0],
        lengths: vec![3, 3, 1],
        target_action: vec![I, I, 4, I, I, 0, 1, I, I],
        target_type: vec![I, I, 0, I, I, 2, 0, I, I],
        visibility: vec![Visibility::Causal; 3],
        slot: vec![NO_SLOT; 9],
        region: vec![NO_SLOT; 9],
    };
    assert_eq!(b, want);
}

#[test]
fn batches_are_reproducible_and_resumable() {
    let (_d, path) = fixture();
    let ds = Arc::new(Dataset::load(&path, &config(&[]), TaskSet::Train).unwrap());
    let a = fixed_batches(&ds, 3, 4, 7);
    assert_eq!(a, fixed_batches(&ds, 3, 4, 7));
    assert_ne!(a, fixed_batches(&ds, 3, 4, 8));
    let mut s = Sampler::new(ds.clone(), 4, 7, false);
    s.seek(2);
    assert_eq!(s.next_batch(), a[2]);
    // 10 samples in batches of 4: the in-order pass is 4 + 4 + 2.
    let seq: Vec<usize> = sequential_batches(&ds, 4).map(|b| b.batch).collect();
    assert_eq!(seq, vec![4, 4, 2]);
}

fn err(path: &Path, cfg: &Config) -> String {
    Histories::load(path, cfg, TaskSet::Train)
        .unwrap_err()
        .to_string()
}

#[test]
fn mismatched_files_are_refused_with_one_line() {
    let (_d, path) = fixture();
    let p = path.display().to_string();
    let cases = [
        (
            config(&["env.name=darkroom-permuted"]),
            "env_name: is \"darkroom\"",
        ),
        (
            config(&["env.grid=9"]),
            "env_params: is {\"grid\":3,\"horizon\":4}",
        ),
        (config(&["env.horizon=20"]), "env_params:"),
        (
            config(&["collect.compress_interval=80"]),
            "compress_interval: is 3, the config says 80",
        ),
    ];
    for (cfg, want) in cases {
        let e = err(&path, &cfg);
        assert!(e.starts_with(&format!("{p}: ")), "{e}");
        assert!(e.contains(want), "{e} lacks {want}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn bad_contents_are_refused_naming_task_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[]);
    let path = dir.path().join("a.hdf5");

    let mut bad = task(4);
    bad.actions[3] = 7; // t 1, stream 1
    write(&path, &meta(), &[bad]);
    assert!(err(&path, &cfg).ends_with("4/actions: stream 1 step 1: action 7 not in 0..5"));

    let mut bad = task(4);
    bad.states[2 * 2] = 3; // t 1, stream 0: row 3 is outside a 3×3 room
    write(&path, &meta(), &[bad]);
    assert!(err(&path, &cfg).contains("4/states: stream 0 step 1: [3, 2] is not a state"));

    let mut bad = task(4);
    bad.compress_markers[0] = 0; // stream 0 starts without <c>
    write(&path, &meta(), &[bad]);
    let e = Dataset::load(&path, &cfg, TaskSet::Train)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("4/compress_markers: stream 0 step 0: transition outside a region (expected a start marker)"), "{e}");

    let mut bad = task(4);
    bad.dones[2 * 2 + 1] = 3; // t 2, stream 1
    write(&path, &meta(), &[bad]);
    assert!(err(&path, &cfg).ends_with("4/dones: stream 1 step 2: done flag 3 is not 0 or 1"));

    let mut m = meta();
    m.n_actions = 4;
    write(&path, &m, &[task(4)]);
    assert!(err(&path, &cfg).contains("n_actions: is 4, darkroom has 5"));

    let mut m = meta();
    m.test_tasks.clear();
    write(&path, &m, &[task(4)]);
    let e = Histories::load(&path, &cfg, TaskSet::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("test_tasks: the file holds out [], the config's split [0] (env.split_seed, env.n_tasks, the task counts or env.test_tasks differ)"),
        "{e}"
    );

    // The audits: every message one line naming the file, the task and the field.
    let one_line = |path: &Path, want: &str| {
        let e = err(path, &cfg);
        assert!(e.contains(want) && !e.contains('\n'), "{e}");
    };
    // A held-out task also trained on (a leak).
    let mut m = meta();
    m.train_tasks = vec![4, 0];
    write(&path, &m, &[task(4), task(0)]);
    one_line(
        &path,
        "test_tasks: task 0 is listed twice (or both trained on and held out)",
    );
    // Another split seed holds out another task.
    write(&path, &meta(), &[task(4), task(0)]);
    let other = config(&["env.split_seed=7"]);
    let e = Dataset::load(&path, &other, TaskSet::Train)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test_tasks: the file holds out [0], the config's split"),
        "{e}"
    );
    // A goal attribute the task does not have.
    let mut bad = task(4);
    bad.params = vec![0, 0];
    write(&path, &meta(), &[bad]);
    one_line(
        &path,
        "4/goal: is [0, 0], but task 4 of darkroom has [1, 1]",
    );
    // A reward the goal contradicts (stream 0 step 0 ends on (1, 2), not the goal).
    let mut bad = task(4);
    bad.rewards[0] = 1.0;
    write(&path, &meta(), &[bad]);
    one_line(
        &path,
        "4/rewards: stream 0 step 0: reward 1, but task 4 ([1, 1]) gives 0 at [1, 2]",
    );
    // A non-finite reward.
    let mut bad = task(4);
    bad.rewards[2] = f32::NAN;
    write(&path, &meta(), &[bad]);
    one_line(&path, "4/rewards: stream 0 step 1: reward NaN");
    // A state inside the index range but outside the room: (0, 5) has index 5 < 9.
    let mut bad = task(4);
    bad.states[2] = 0;
    bad.states[3] = 5;
    write(&path, &meta(), &[bad]);
    one_line(&path, "4/states: stream 1 step 0: [0, 5] is not a state");
    // A next state the action does not lead to.
    let mut bad = task(4);
    bad.next_states[0] = 2;
    write(&path, &meta(), &[bad]);
    one_line(
        &path,
        "4/next_states: stream 0 step 0: [2, 2], but action 2 from [1, 1] leads to [1, 2]",
    );

    let e = err(&dir.path().join("missing.hdf5"), &cfg);
    assert!(e.contains("missing.hdf5: file: does not exist"), "{e}");
}

// Dense tokens concat(s_{t-1}, one_hot(a_{t-1}), r_{t-1}, s'_{t-1}, done_{t-1}, s_t),
// feat_dim = 2 + 5 + 1 + 2 + 1 + 2 = 13; zeros but s_t at a history's first step.
// D_g is the token of global transition g (prev = transition g - 1 of the same stream).
const D0: [f32; 13] = [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1.]; // s0 = (1,1)
const D1: [f32; 13] = [1., 1., 0., 0., 1., 0., 0., 0., 1., 2., 0., 1., 2.]; // T0, s1 = (1,2)
const D2: [f32; 13] = [1., 2., 1., 0., 0., 0., 0., 0., 2., 2., 0., 2., 2.]; // T1, s2 = (2,2)
const D3: [f32; 13] = [2., 2., 0., 1., 0., 0., 0., 0., 1., 2., 0., 1., 2.]; // T2, s3 = (1,2)
// T3 ended the episode (done 1): the flag shows in the token of the next step.
const D4: [f32; 13] = [1., 2., 0., 0., 0., 1., 0., 1., 1., 1., 1., 1., 1.]; // T3, s4 = (1,1)
const D5: [f32; 13] = [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1.]; // s5 = (1,1)
const D6: [f32; 13] = [1., 1., 0., 1., 0., 0., 0., 0., 0., 1., 0., 0., 1.]; // T5, s6 = (0,1)
const D7: [f32; 13] = [0., 1., 0., 0., 0., 0., 1., 0., 0., 1., 0., 0., 1.]; // T6, s7 = (0,1)
const ZD: [f32; 13] = [0.0; 13];

fn flat13(rows: &[&[[f32; 13]]]) -> Vec<f32> {
    rows.iter()
        .flat_map(|r| r.iter().flatten().copied())
        .collect()
}

#[test]
fn compressed_dense_batch_by_hand() {
    let (_d, path) = fixture();
    let ds = Dataset::load(&path, &config(&["model.objective=dense"]), TaskSet::Train).unwrap();
    assert_eq!(ds.layout().name(), "compressed-dense");
    assert_eq!(ds.feat_dim(), 13);
    assert_eq!(ds.max_len(), 2 * 3 + 3);
    // One sample per region: stream 0 [0,3) [3,5), stream 1 [5,8) [8,10).
    assert_eq!(ds.n_samples(), 4);
    assert_eq!(
        (0..4).map(|i| ds.sample_len(i)).collect::<Vec<_>>(),
        vec![4, 8, 4, 8]
    );
    // Sample 1 (stream 0, k 1): <c> D0 D1 D2 </c> <c> D3 D4, only D3 D4 supervised.
    // Sample 2 (stream 1, k 0): <c> D5 D6 D7, all three supervised.
    let b = ds.batch(&[1, 2]);
    let want = TokenBatch {
        batch: 2,
        seq_len: 8,
        feat_dim: 13,
        features: flat13(&[
            &[ZD, D0, D1, D2, ZD, ZD, D3, D4],
            &[ZD, D5, D6, D7, ZD, ZD, ZD, ZD],
        ]),
        #[rustfmt::skip]
        kinds: vec![
            1, 0, 0, 0, 2, 1, 0, 0,
            1, 0, 0, 0, 0, 0, 0, 0,
        ],
        state_index: vec![0; 16],
        lengths: vec![8, 4],
        // a3 = 3, a4 = 4; a5 = 1, a6 = 4, a7 = 0.
        #[rustfmt::skip]
        target_action: vec![
            I, I, I, I, I, I, 3, 4,
            I, 1, 4, 0, I, I, I, I,
        ],
        // g 7 carries END (a </c> follows); region [3,5) is cut short, so g 4 is a 0.
        #[rustfmt::skip]
        target_type: vec![
            I, I, I, I, I, I, 0, 0,
            I, 0, 0, 2, I, I, I, I,
        ],
        visibility: vec![Visibility::Causal; 2],
        slot: vec![NO_SLOT; 16],
        region: vec![NO_SLOT; 16],
    };
    assert_eq!(b, want);
    // A pass supervises each of the 10 transitions once.
    let labels: usize = sequential_batches(&ds, 3).map(|b| b.n_labels()).sum();
    assert_eq!(labels, 10);
}

#[test]
fn window_dense_batch_by_hand() {
    let (_d, path) = fixture();
    let cfg = config(&["model.objective=dense", "dataset.context=window"]);
    let ds = Dataset::load(&path, &cfg, TaskSet::Train).unwrap();
    assert_eq!(ds.layout().name(), "window-dense");
    assert_eq!((ds.feat_dim(), ds.max_len()), (13, 3));
    // n_transit = 3: chunks [0,3) [3,5) of stream 0, [5,8) [8,10) of stream 1.
    assert_eq!(ds.n_samples(), 4);
    // Sample 1: D3 D4 (a chunk start still carries its previous transition);
    // sample 2: D5 D6 D7. Every token supervised, no markers.
    let b = ds.batch(&[1, 2]);
    let want = TokenBatch {
        batch: 2,
        seq_len: 3,
        feat_dim: 13,
        features: flat13(&[&[D3, D4, ZD], &[D5, D6, D7]]),
        kinds: vec![0; 6],
        state_index: vec![0; 6],
        lengths: vec![2, 3],
        target_action: vec![3, 4, I, 1, 4, 0],
        target_type: vec![0, 0, I, 0, 0, 2],
        visibility: vec![Visibility::Causal; 2],
        slot: vec![NO_SLOT; 6],
        region: vec![NO_SLOT; 6],
    };
    assert_eq!(b, want);
    let labels: usize = sequential_batches(&ds, 3).map(|b| b.n_labels()).sum();
    assert_eq!(labels, 10);
}

#[test]
fn query_objective_keeps_transition_features() {
    let (_d, path) = fixture();
    for mode in ["compressed", "window"] {
        let ds = Dataset::load(
            &path,
            &config(&[&format!("dataset.context={mode}")]),
            TaskSet::Train,
        )
        .unwrap();
        assert_eq!((ds.feat_dim(), ds.n_samples()), (10, 10), "{mode}");
    }
}

/// Key-to-Door 3×3, 6-step episodes, task 42: key (1,2) = cell 5, door (0,2) = cell 2 (rank 2
/// among the 8 cells other than the key): 8·5 + 2 = 42. One stream, two episodes from (1,1):
///
/// episode 1: -a2-> (1,2) key r1 -a1-> (0,2) door r1, then four "stay" (0 each), done at step 5;
/// episode 2: -a1-> (0,1) -a2-> (0,2) door without the key r0 -a0-> (1,2) key r1 -a1-> (0,2)
///            door r1 -a4-> (0,2) -a4-> (0,2), done at step 11.
///
/// Holding the key is not observed, so the one-step replay cannot check these rewards; the
/// stream is replayed from the reset instead.
fn key_to_door_task() -> TaskHistory {
    let states = [
        [1, 1],
        [1, 2],
        [0, 2],
        [0, 2],
        [0, 2],
        [0, 2], // episode 1
        [1, 1],
        [0, 1],
        [0, 2],
        [1, 2],
        [0, 2],
        [0, 2], // episode 2
    ];
    let next = [
        [1, 2],
        [0, 2],
        [0, 2],
        [0, 2],
        [0, 2],
        [0, 2],
        [0, 1],
        [0, 2],
        [1, 2],
        [0, 2],
        [0, 2],
        [0, 2],
    ];
    let actions = [2, 1, 4, 4, 4, 4, 1, 2, 0, 1, 4, 4];
    let rewards = [1., 1., 0., 0., 0., 0., 0., 0., 1., 1., 0., 0.];
    let mut h = TaskHistory {
        task: 42,
        param_name: "key_door".into(),
        params: vec![1, 2, 0, 2],
        optimal_return: 2.0,
        steps: 12,
        n_stream: 1,
        obs_dim: 2,
        ..Default::default()
    };
    for t in 0..12 {
        h.states.extend_from_slice(&states[t]);
        h.next_states.extend_from_slice(&next[t]);
        h.actions.push(actions[t]);
        h.rewards.push(rewards[t]);
        h.dones.push((t % 6 == 5) as u8);
        h.compress_markers.push(0);
    }
    h
}

#[test]
fn key_to_door_streams_are_replayed_from_the_reset() {
    use ccad_core::env::{Environment, KeyToDoor};
    let env = KeyToDoor::new(3, 6);
    assert_eq!(env.task_params(42), vec![1, 2, 0, 2]);
    let meta = HistoryMeta {
        env_name: "key-to-door".into(),
        env_params: env.params_json(),
        train_tasks: vec![42],
        test_tasks: vec![],
        ..meta()
    };
    let push = |th: &TaskHistory| {
        let mut h = Histories::empty(Path::new("k2d.hdf5"), meta.clone(), &env);
        h.push_task(th, &env).map(|()| h)
    };
    let h = push(&key_to_door_task()).unwrap();
    assert_eq!(h.rewards.iter().sum::<f32>(), 4.0);
    let one_line = |th: TaskHistory, want: &str| {
        let e = push(&th).unwrap_err().to_string();
        assert_eq!(e, format!("k2d.hdf5: {want}"));
    };
    // The door before the key pays nothing: a 1 there is refused.
    let mut bad = key_to_door_task();
    bad.rewards[7] = 1.0;
    one_line(
        bad,
        "42/rewards: stream 0 step 7: reward 1, but task 42 ([1, 2, 0, 2]) gives 0 at [0, 2]",
    );
    // The key pays once an episode: a second 1 for standing on it is refused.
    let mut bad = key_to_door_task();
    bad.actions[2] = 0; // (0,2) -a0-> (1,2), the key again
    bad.next_states[4..6].copy_from_slice(&[1, 2]);
    bad.rewards[2] = 1.0;
    one_line(
        bad,
        "42/rewards: stream 0 step 2: reward 1, but task 42 ([1, 2, 0, 2]) gives 0 at [1, 2]",
    );
    // A stream that does not start at the reset, or jumps.
    let mut bad = key_to_door_task();
    bad.states[18..20].copy_from_slice(&[1, 0]);
    one_line(
        bad,
        "42/states: stream 0 step 9: [1, 0], but the stream's replay from the reset stands at [1, 2]",
    );
    // An episode that ends early.
    let mut bad = key_to_door_task();
    bad.dones[3] = 1;
    one_line(
        bad,
        "42/dones: stream 0 step 3: done 1, but the replayed 6-step episode goes on here",
    );
}
