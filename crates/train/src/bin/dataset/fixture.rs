//! A tiny Dark Room history file whose returns are obvious (tests only; the integration test
//! `tests/dataset_bin.rs` includes this file too).
//!
//! 3 × 3 room, horizon 4, compress interval 8 (two episodes a region), 3 streams of T = 20
//! steps: regions [0, 8), [8, 16) and [16, 20) (cut short). Tasks 0 (goal (0, 0), trained on)
//! and 4 (goal (1, 1) = the start, held out). Each stream plays five episodes, each one of
//! - `G` = actions [4, 4, 4, 4]: stay on the start: rewards 1 1 1 1 on task 4 (return 4);
//! - `H` = [4, 4, 1, 4]: stay twice, step up to (0, 1), stay: 1 1 0 0 (return 2);
//! - `B` = [1, 4, 4, 4]: step up and stay: 0 0 0 0 (return 0).
//!
//! Streams: 0 = `G G | G G | G`, 1 = `B B | H H | G`, 2 = `B H | G B | B`. Task 0 pays nothing
//! (no episode reaches (0, 0)).

use std::path::Path;

use ccad_core::env::{DarkRoom, Environment};
use ccad_core::history::{FORMAT_VERSION, HistoryMeta, HistoryWriter, TaskHistory};
use ccad_core::tokens::marker_at;

pub const GRID: usize = 3;
pub const HORIZON: usize = 4;
pub const INTERVAL: usize = 8;
pub const STEPS: usize = 20;

const G: [usize; 4] = [4, 4, 4, 4];
const H: [usize; 4] = [4, 4, 1, 4];
const B: [usize; 4] = [1, 4, 4, 4];
pub const STREAMS: [[[usize; 4]; 5]; 3] = [[G, G, G, G, G], [B, B, H, H, G], [B, H, G, B, B]];

/// Write the file at `path`.
pub fn write(path: &Path) {
    let env = DarkRoom::new(GRID, HORIZON);
    let meta = HistoryMeta {
        format_version: FORMAT_VERSION,
        env_name: "darkroom".into(),
        env_params: env.params_json(),
        config: String::new(),
        compress_interval: INTERVAL,
        n_actions: 5,
        train_tasks: vec![0],
        test_tasks: vec![4],
    };
    let mut w = HistoryWriter::create(path, &meta).unwrap();
    for task in [0, 4] {
        w.write_task(&task_history(&env, task)).unwrap();
    }
    w.finish().unwrap();
}

/// Play the streams' actions on `task`, time-major as the file stores them.
fn task_history(env: &DarkRoom, task: usize) -> TaskHistory {
    let n = STREAMS.len();
    let mut h = TaskHistory {
        task,
        param_name: env.task_param_name().into(),
        params: env.task_params(task),
        optimal_return: env.optimal_return(task),
        steps: STEPS,
        n_stream: n,
        obs_dim: 2,
        states: vec![0; STEPS * n * 2],
        next_states: vec![0; STEPS * n * 2],
        actions: vec![0; STEPS * n],
        rewards: vec![0.0; STEPS * n],
        dones: vec![0; STEPS * n],
        compress_markers: vec![0; STEPS * n],
    };
    for (s, episodes) in STREAMS.iter().enumerate() {
        let mut state = env.reset(task);
        for (t, &a) in episodes.iter().flatten().enumerate() {
            let i = t * n + s;
            env.observe(&state, &mut h.states[2 * i..2 * i + 2]);
            let out = env.step(task, &mut state, a);
            env.observe(&state, &mut h.next_states[2 * i..2 * i + 2]);
            h.actions[i] = a as i32;
            h.rewards[i] = out.reward;
            h.dones[i] = out.done as u8;
            h.compress_markers[i] = marker_at(t, INTERVAL);
            if out.done {
                state = env.reset(task);
            }
        }
    }
    h
}
