//! The dense token layout at evaluation (DESIGN §5a): every engine takes the same actions, an
//! episode end reaches the next token, and each position's context is exactly the one the
//! training sequences (`ccad_core::context::CompressedDense`, `WindowDense`, read through
//! dataset) give it. The same contract is a property test of `ccad_core::context`, for every
//! layout; this test holds it end to end, through a real rollout and a loaded history.

use std::sync::Arc;

use burn::module::Module;
use ccad_core::config::{Boundary, Config, ModelConfig, Objective};
use ccad_core::env::{DarkRoom, Environment, VecEnv};
use ccad_core::history::{FORMAT_VERSION, HistoryMeta, TaskHistory};
use ccad_core::tokens::{dense_feature_dim, marker_at, token_type, transition_feature_dim};
use dataset::{CompressedDense, Corpus, Dataset, Histories, WindowDense, WindowQuery};
use evaluate::run::{EvalOptions, evaluate_run};
use evaluate::{
    Inference, Layout, Rollout, RolloutResult, RolloutSpec, Sampling, check_model, rollout,
};
use model::{AdModel, AdModelConfig, Token, batch_from_tokens};

/// Dark Room: 2 observation values, 5 actions → 3·2 + 5 + 2 = 13 dense features.
const FEAT: usize = 13;
/// Offsets in a dense token: `[s 0..2 | a 2..7 | r 7 | s' 8..10 | done 10 | s_t 11..13]`.
const S_NEXT: usize = 8;
const DONE: usize = 10;
const S_T: usize = 11;

fn tiny_dense_model(env: &dyn Environment, max_len: usize, seed: u64) -> AdModel {
    let m = ModelConfig {
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        d_ff: 32,
        dropout: 0.0,
        objective: Objective::Dense,
        ..ModelConfig::default()
    };
    let feat = dense_feature_dim(env.obs_dim(), env.n_actions());
    assert_eq!(feat, FEAT);
    let config = AdModelConfig::new(&m, feat, env.n_states(), env.n_actions(), max_len);
    let device = ccad_core::backend::device();
    ccad_core::backend::seed_device(&device, seed);
    config.init(&device).valid()
}

fn dense_spec(
    tasks: Vec<usize>,
    seeds: Vec<u64>,
    context: Layout,
    inference: Inference,
) -> RolloutSpec {
    RolloutSpec {
        tasks,
        seeds,
        episodes: 5,
        sampling: Sampling::Temperature(1.0),
        layout: context,
        inference,
    }
}

fn run(model: &AdModel, env: &dyn Environment, ctx: Layout, inf: Inference) -> RolloutResult {
    let spec = dense_spec(vec![0, 7, 12, 0, 24], vec![1, 1, 1, 2, 3], ctx, inf);
    rollout(model, env, spec, &ccad_core::backend::device(), |_| {}).unwrap()
}

fn assert_same(a: &RolloutResult, b: &RolloutResult) {
    assert_eq!(a.actions, b.actions);
    assert_eq!(a.returns, b.returns);
    assert_eq!(a.stats.regions_closed, b.stats.regions_closed);
}

fn features(t: &Token) -> &[f32] {
    match t {
        Token::Transition(f) => f,
        other => panic!("expected a dense token, got {other:?}"),
    }
}

#[test]
fn dense_engines_agree_compressed() {
    // 5×5 room, 6-step episodes, I = 4, 30 steps: tokens D0..D30; D4, D8, .., D28 open a new
    // region (7 closes), from D8 on each close drops a region (6 rebuilds).
    let env = DarkRoom::new(5, 6);
    let context = Layout::new(CompressedDense::new(4, Boundary::Fixed));
    let model = tiny_dense_model(&env, context.max_len(), 3);
    let full = run(&model, &env, context.clone(), Inference::Full);
    let cached = run(&model, &env, context.clone(), Inference::Cached);
    let native = run(&model, &env, context.clone(), Inference::Native);
    assert_same(&cached, &full);
    assert_same(&native, &full);
    assert_eq!(full.stats.steps, 30);
    assert_eq!(full.stats.regions_closed, 5 * 7);
    assert_eq!(cached.stats.rows_rebuilt, 5 * 6);
    assert_eq!(native.stats.rows_rebuilt, 5 * 6);
    assert_ne!(full.actions[0], full.actions[3], "seeds differ");
}

#[test]
fn dense_engines_agree_predicted_boundary() {
    let env = DarkRoom::new(5, 6);
    let context = Layout::new(CompressedDense::new(4, Boundary::Predicted));
    let mut found = false;
    for seed in 0..8 {
        let model = tiny_dense_model(&env, context.max_len(), seed);
        let full = run(&model, &env, context.clone(), Inference::Full);
        assert_same(
            &run(&model, &env, context.clone(), Inference::Cached),
            &full,
        );
        assert_same(
            &run(&model, &env, context.clone(), Inference::Native),
            &full,
        );
        if full.stats.regions_closed > 5 * 7 {
            found = true;
            break;
        }
    }
    assert!(found, "no random model predicted an early </c>");
}

#[test]
fn dense_engines_agree_window() {
    // n_transit 9: D0..D30 = 31 tokens; pushing D9..D30 shifts the window (22 rebuilds).
    let env = DarkRoom::new(5, 6);
    let context = Layout::new(WindowDense::new(9));
    let model = tiny_dense_model(&env, context.max_len(), 5);
    let full = run(&model, &env, context.clone(), Inference::Full);
    let cached = run(&model, &env, context.clone(), Inference::Cached);
    assert_same(&cached, &full);
    assert_same(
        &run(&model, &env, context.clone(), Inference::Native),
        &full,
    );
    assert_eq!(cached.stats.rows_rebuilt, 5 * 22);
}

#[test]
fn first_token_and_episode_end_tokens() {
    let env = DarkRoom::new(5, 6);
    let context = Layout::new(CompressedDense::new(4, Boundary::Fixed));
    let model = tiny_dense_model(&env, context.max_len(), 2);
    let spec = dense_spec(vec![3, 9], vec![0, 0], context.clone(), Inference::Native);
    let mut r = Rollout::new(&model, &env, spec, &ccad_core::backend::device());
    let mut start = [0i32; 2];
    env.observe(&env.reset(3), &mut start);
    let start = start.map(|v| v as f32);
    // Step 0: `<c> D0`, D0 all zeros but s_0 = the start cell.
    for c in r.contexts() {
        assert_eq!(c.tokens()[0], Token::Open);
        let f = features(&c.tokens()[1]);
        assert!(f[..S_T].iter().all(|&v| v == 0.0), "{f:?}");
        assert_eq!(f[S_T..], start);
    }
    // Steps 1..5: done = 0, s_t = the previous token's s' (no reset inside an episode).
    for _ in 1..6 {
        r.step();
        for c in r.contexts() {
            let f = features(c.tokens().last().unwrap());
            assert_eq!(f[DONE], 0.0);
            assert_eq!(f[S_T..], f[S_NEXT..DONE]);
        }
    }
    // Step 6: the 6-step episode ended with a_5: done = 1, s_t = the reset state.
    r.step();
    assert_eq!(r.episodes_done(), 1);
    for c in r.contexts() {
        let f = features(c.tokens().last().unwrap());
        assert_eq!(f[DONE], 1.0);
        assert_eq!(f[S_T..], start);
        // One-hot of a_5, and a reward of 0 or 1.
        assert_eq!(f[2..7].iter().sum::<f32>(), 1.0);
        assert!(f[7] == 0.0 || f[7] == 1.0);
    }
    r.step();
    for c in r.contexts() {
        assert_eq!(features(c.tokens().last().unwrap())[DONE], 0.0);
    }
}

/// Roll a dense model out on one task for `steps` steps, recording the context each action
/// was read from; then the history those actions make, as the dataset loads it.
fn history_of_a_rollout(
    context: Layout,
    interval: usize,
    steps: usize,
) -> (Vec<Vec<Token>>, Vec<u8>, Arc<Corpus>) {
    let env = DarkRoom::new(5, 6);
    let task = 13;
    let model = tiny_dense_model(&env, context.max_len(), 7);
    let spec = dense_spec(vec![task], vec![4], context.clone(), Inference::Native);
    let mut r = Rollout::new(&model, &env, spec, &ccad_core::backend::device());
    let mut seen = Vec::with_capacity(steps);
    for _ in 0..steps {
        seen.push(r.contexts()[0].tokens().to_vec());
        r.step();
    }
    let actions = r.finish().actions.remove(0);
    assert_eq!(actions.len(), steps);

    // Replay the actions: Dark Room is deterministic, so this is the rollout's history.
    let mut th = TaskHistory {
        task,
        param_name: "goal".into(),
        params: vec![2, 3],
        optimal_return: env.optimal_return(task),
        steps,
        n_stream: 1,
        obs_dim: 2,
        ..Default::default()
    };
    let mut venv = VecEnv::new(&env, vec![task]);
    let (mut obs, mut next) = ([0i32; 2], [0i32; 2]);
    let (mut reward, mut done) = ([0f32], [false]);
    venv.observe(&mut obs);
    for (t, &a) in actions.iter().enumerate() {
        th.states.extend_from_slice(&obs);
        venv.step(&[a as usize], &mut next, &mut obs, &mut reward, &mut done);
        th.next_states.extend_from_slice(&next);
        th.actions.push(a as i32);
        th.rewards.push(reward[0]);
        th.dones.push(done[0] as u8);
        th.compress_markers.push(marker_at(t, interval));
    }
    assert!(
        th.dones.iter().filter(|&&d| d == 1).count() >= 2,
        "episode ends inside"
    );
    let meta = HistoryMeta {
        format_version: FORMAT_VERSION,
        env_name: env.name().into(),
        env_params: env.params_json(),
        config: String::new(),
        compress_interval: interval,
        n_actions: 5,
        train_tasks: vec![task],
        test_tasks: vec![],
    };
    let mut h = Histories::empty(std::path::Path::new("in-memory"), meta, &env);
    h.push_task(&th, &env).unwrap();
    (seen, actions, Arc::new(Corpus::new(h).unwrap()))
}

/// Assert that `context` (what evaluation read `a_t` from) is the first `context.len()`
/// positions of training sample `sample`, and that its last position is supervised with `a_t`.
fn assert_matches_training(ds: &Dataset, sample: usize, context: &[Token], a_t: u8, t: usize) {
    let train = ds.batch(&[sample]);
    let eval = batch_from_tokens(&[context], FEAT);
    let n = context.len();
    assert!(
        n <= train.lengths[0],
        "step {t}: {n} > {}",
        train.lengths[0]
    );
    assert_eq!(eval.kinds[..n], train.kinds[..n], "step {t}: token kinds");
    assert_eq!(
        eval.features[..n * FEAT],
        train.features[..n * FEAT],
        "step {t}: features"
    );
    assert_eq!(train.target_action[n - 1], a_t as i32, "step {t}: label");
}

#[test]
fn compressed_dense_contexts_equal_the_training_sequences() {
    // I = 4, 14 steps: regions [0,4) [4,8) [8,12) closed, [12,14) cut short; episodes of 6
    // end at steps 5 and 11, inside regions 1 and 2.
    let i = 4;
    let context = Layout::new(CompressedDense::new(i, Boundary::Fixed));
    let (seen, actions, corpus) = history_of_a_rollout(context.clone(), i, 14);
    let ds = Dataset::new(corpus, Box::new(CompressedDense::new(i, Boundary::Fixed)));
    assert_eq!(ds.n_samples(), 4);
    for (t, ctx) in seen.iter().enumerate() {
        // Region k's sequence: `<c> C` (k = 0) or `<c> P </c> <c> C`; step t sits at
        // position 1 + t - 4k, or I + 3 + t - 4k.
        let k = t / i;
        let pos = if k == 0 { 1 } else { i + 3 } + t % i;
        assert_eq!(ctx.len(), pos + 1, "step {t}");
        assert_matches_training(&ds, k, ctx, actions[t], t);
        // The type label: `</c>` follows exactly the last token of a closed region.
        let want = if t % i == i - 1 {
            token_type::CLOSE
        } else {
            token_type::TRANSITION
        };
        assert_eq!(ds.batch(&[k]).target_type[pos], want as i32, "step {t}");
    }
}

#[test]
fn window_dense_contexts_equal_the_training_chunks() {
    // n_transit 5, 14 steps: chunks [0,5) [5,10) [10,14). Evaluation slides its window, so it
    // equals a chunk's prefix while t < 5 and a whole chunk where one ends (t = 4, 9).
    let n = 5;
    let context = Layout::new(WindowDense::new(n));
    let (seen, actions, corpus) = history_of_a_rollout(context.clone(), 4, 14);
    let ds = Dataset::new(corpus, Box::new(WindowDense::new(n)));
    assert_eq!(ds.n_samples(), 3);
    assert_eq!(ds.layout().name(), "window-dense");
    for (t, ctx) in seen.iter().enumerate() {
        assert_eq!(ctx.len(), (t + 1).min(n), "step {t}");
        if t < n || t % n == n - 1 {
            assert_matches_training(&ds, t / n, ctx, actions[t], t);
        }
    }
}

#[test]
fn a_query_model_is_refused_for_the_dense_layout() {
    let env = DarkRoom::new(5, 6);
    let ctx = Layout::new(WindowDense::new(4));
    let config = AdModelConfig::new(
        &ModelConfig::default(),
        transition_feature_dim(2, 5),
        25,
        5,
        4,
    );
    let err = check_model(&config, &env, &*ctx).unwrap_err();
    assert_eq!(err.0, "feat_dim");
    assert_eq!(err.1, "is 10, darkroom dense tokens have 13 features");
    let query = Layout::new(WindowQuery::new(4));
    assert!(check_model(&config, &env, &*query).is_ok());
}

const RUN_CONFIG: &str = r#"
[env]
grid = 5
horizon = 6
[ppo]
n_steps = 4
minibatch_size = 4
[collect]
dataset = "evaluate-test-no-such-dataset"
compress_interval = 4
[model]
d_model = 16
n_layers = 2
n_heads = 2
d_ff = 32
objective = "dense"
[eval]
episodes = 3
seeds = 2
"#;

#[test]
fn a_dense_run_evaluates_with_the_dense_layout() {
    let cfg = Config::from_toml_str(RUN_CONFIG, "run.toml", &[]).unwrap();
    assert_eq!(cfg.model.objective, Objective::Dense);
    let env = DarkRoom::new(5, 6);
    let device = ccad_core::backend::device();
    let model = tiny_dense_model(&env, 2 * 4 + 3, 1);

    // The training probe's call.
    let curve = evaluate::in_context_curve(&model, &cfg, &[3, 17], 4, &device).unwrap();
    assert_eq!(curve.len(), 4);
    assert!(curve.iter().all(|&r| (0.0..=6.0).contains(&r)));

    // A run folder.
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("r");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("config.toml"), cfg.to_toml_string()).unwrap();
    model
        .save(&run_dir.join("checkpoints/step-00000005"))
        .unwrap();
    let opts = EvalOptions {
        run_dir,
        ..EvalOptions::default()
    };
    let out = evaluate_run(&opts, &device).unwrap();
    assert_eq!(out.summary.info.objective, "dense");
    assert_eq!(out.result.n_episodes(), 3);
    // The same folder with its config switched to the query objective: refused.
    let query =
        Config::from_toml_str(RUN_CONFIG, "run.toml", &["model.objective=query".into()]).unwrap();
    std::fs::write(opts.run_dir.join("config.toml"), query.to_toml_string()).unwrap();
    let e = evaluate_run(&opts, &device).unwrap_err().to_string();
    assert!(
        e.contains("model.json: feat_dim: is 13, darkroom transitions have 10 features"),
        "{e}"
    );
}
