//! Learning histories in memory: struct of arrays, history-major.
//!
//! A *history* is one (task, stream) of a history file: `len` consecutive transitions. The file
//! stores each task time-major (`[T, n_stream, …]`); here every history's transitions are
//! contiguous, so a context is a slice and a global transition id `g` addresses every array.

use std::path::{Path, PathBuf};

use ccad_core::config::{Config, TaskSet};
use ccad_core::env::{EnvState, Environment, make_env};
use ccad_core::history::{HistoryMeta, HistoryReader, TaskHistory, attrs, names};
use ccad_core::tokens::{PrevTransition, dense_feature_dim, transition_feature_dim};
use ccad_core::{Error, Result};

/// All loaded histories. Transition `g` (a global id, `0..n_transitions()`) of history `h` lies
/// in `offsets[h]..offsets[h + 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histories {
    /// The file they came from (for error messages).
    pub path: PathBuf,
    pub meta: HistoryMeta,
    pub obs_dim: usize,
    pub n_actions: usize,
    /// Task id of each history.
    pub task: Vec<u32>,
    /// Stream (within its task) of each history.
    pub stream: Vec<u32>,
    /// `[n_histories + 1]`: prefix sums of history lengths.
    pub offsets: Vec<usize>,
    /// `[n_transitions, obs_dim]`
    pub states: Vec<i32>,
    /// `[n_transitions, obs_dim]`
    pub next_states: Vec<i32>,
    /// `[n_transitions]`; checked `< n_actions` at load.
    pub actions: Vec<u8>,
    pub rewards: Vec<f32>,
    /// `[n_transitions]`: the episode ended with transition `g` (only dense tokens read it).
    pub dones: Vec<bool>,
    /// `[n_transitions]`: compress markers as stored.
    pub markers: Vec<u8>,
    /// `[n_transitions]`: the environment's discrete index of `states[g]` (the query embedding).
    pub state_index: Vec<u32>,
}

impl Histories {
    pub fn n_histories(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn n_transitions(&self) -> usize {
        self.actions.len()
    }

    /// Transitions `[start, end)` (global ids) of history `h`.
    pub fn range(&self, h: usize) -> std::ops::Range<usize> {
        self.offsets[h]..self.offsets[h + 1]
    }

    /// Length of a transition's feature vector.
    pub fn feat_dim(&self) -> usize {
        transition_feature_dim(self.obs_dim, self.n_actions)
    }

    /// Write transition `g`'s features `concat(s, one_hot(a), r, s')` into `out`.
    #[inline]
    pub fn features(&self, g: usize, out: &mut [f32]) {
        let d = self.obs_dim;
        ccad_core::tokens::transition_features(
            &self.states[g * d..(g + 1) * d],
            self.actions[g] as usize,
            self.rewards[g],
            &self.next_states[g * d..(g + 1) * d],
            self.n_actions,
            out,
        );
    }

    /// Length of a dense-layout token's feature vector.
    pub fn dense_feat_dim(&self) -> usize {
        dense_feature_dim(self.obs_dim, self.n_actions)
    }

    /// Write the dense-layout token of transition `g` into `out`: transition `g - 1` with its
    /// done flag, then `s_g` (DESIGN §5a). `history_start` is the first transition of `g`'s
    /// history; the token there has no previous transition (zeros).
    #[inline]
    pub fn dense_features(&self, g: usize, history_start: usize, out: &mut [f32]) {
        let d = self.obs_dim;
        debug_assert!(history_start <= g);
        let prev = (g > history_start).then(|| {
            let p = g - 1;
            PrevTransition {
                s: &self.states[p * d..(p + 1) * d],
                a: self.actions[p] as usize,
                r: self.rewards[p],
                s_next: &self.next_states[p * d..(p + 1) * d],
                done: self.dones[p],
            }
        });
        ccad_core::tokens::dense_features(
            prev,
            &self.states[g * d..(g + 1) * d],
            self.n_actions,
            out,
        );
    }

    /// Load the tasks `which` selects from a history file, checking it against `cfg`.
    pub fn load(path: &Path, cfg: &Config, which: TaskSet) -> Result<Self> {
        let reader = HistoryReader::open(path)?;
        let env = make_env(&cfg.env);
        check_meta(path, &reader.meta, cfg, env.as_ref())?;
        let meta = reader.meta.clone();
        let tasks = match which {
            TaskSet::Train => meta.train_tasks.clone(),
            TaskSet::Test => meta.test_tasks.clone(),
            TaskSet::All => {
                let mut all = [meta.train_tasks.clone(), meta.test_tasks.clone()].concat();
                all.sort_unstable();
                all
            }
        };
        if tasks.is_empty() {
            let field = match which {
                TaskSet::Test => attrs::TEST_TASKS,
                _ => attrs::TRAIN_TASKS,
            };
            return Err(Error::file(path, field, "lists no tasks"));
        }
        let mut out = Histories::empty(path, meta, env.as_ref());
        for task in tasks {
            let th = reader.read_task(task, env.task_param_name())?;
            out.push_task(&th, env.as_ref())?;
        }
        Ok(out)
    }

    /// No histories yet, for `env`'s observation and action sizes; `push_task` adds them.
    pub fn empty(path: &Path, meta: HistoryMeta, env: &dyn Environment) -> Self {
        Self::new(path, meta, env.obs_dim(), env.n_actions())
    }

    /// No histories yet; fill the arrays directly (tests, synthetic corpora) or with
    /// `push_task`.
    pub fn new(path: &Path, meta: HistoryMeta, obs_dim: usize, n_actions: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            meta,
            obs_dim,
            n_actions,
            task: Vec::new(),
            stream: Vec::new(),
            offsets: vec![0],
            states: Vec::new(),
            next_states: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            dones: Vec::new(),
            markers: Vec::new(),
            state_index: Vec::new(),
        }
    }

    /// Append one task's streams (time-major in `th`) as histories, validating values.
    pub fn push_task(&mut self, th: &TaskHistory, env: &dyn Environment) -> Result<()> {
        let p = &self.path;
        let field = |name: &str| format!("{}/{}", th.task, name);
        if th.obs_dim != self.obs_dim {
            return Err(Error::file(
                p,
                field(names::STATES),
                format!(
                    "observation size {} but {} has {}",
                    th.obs_dim,
                    env.name(),
                    self.obs_dim
                ),
            ));
        }
        if th.steps == 0 || th.n_stream == 0 {
            return Err(Error::file(p, field(names::STATES), "holds no transitions"));
        }
        let params = env.task_params(th.task);
        if th.params != params {
            return Err(Error::file(
                p,
                field(env.task_param_name()),
                format!(
                    "is {:?}, but task {} of {} has {params:?}",
                    th.params,
                    th.task,
                    env.name()
                ),
            ));
        }
        let (t_len, s_len, d) = (th.steps, th.n_stream, th.obs_dim);
        let n_states = env.n_states();
        let n_new = t_len * s_len;
        self.states.reserve(n_new * d);
        self.next_states.reserve(n_new * d);
        self.actions.reserve(n_new);
        self.rewards.reserve(n_new);
        self.dones.reserve(n_new);
        self.markers.reserve(n_new);
        self.state_index.reserve(n_new);
        let mut replayed = Vec::with_capacity(d);
        // Where the observation does not determine the state (a held key), each stream is
        // replayed whole from the environment's reset instead of step by step.
        let reset = env.reset(th.task);
        replayed.resize(d, 0);
        env.observe(&reset, &mut replayed);
        let by_episode = env.state_of(&replayed).is_none();
        for s in 0..s_len {
            let mut episode = by_episode.then_some(reset);
            for t in 0..t_len {
                let i = t * s_len + s;
                let obs = &th.states[i * d..(i + 1) * d];
                let next = &th.next_states[i * d..(i + 1) * d];
                let idx = state_index_checked(env, obs, n_states).ok_or_else(|| {
                    Error::file(
                        p,
                        field(names::STATES),
                        format!(
                            "stream {s} step {t}: {obs:?} is not a state of {}",
                            env.name()
                        ),
                    )
                })?;
                if state_index_checked(env, next, n_states).is_none() {
                    return Err(Error::file(
                        p,
                        field(names::NEXT_STATES),
                        format!(
                            "stream {s} step {t}: {next:?} is not a state of {}",
                            env.name()
                        ),
                    ));
                }
                let a = th.actions[i];
                if a < 0 || a as usize >= self.n_actions {
                    return Err(Error::file(
                        p,
                        field(names::ACTIONS),
                        format!(
                            "stream {s} step {t}: action {a} not in 0..{}",
                            self.n_actions
                        ),
                    ));
                }
                let done = match th.dones[i] {
                    0 => false,
                    1 => true,
                    v => {
                        return Err(Error::file(
                            p,
                            field(names::DONES),
                            format!("stream {s} step {t}: done flag {v} is not 0 or 1"),
                        ));
                    }
                };
                let step = (obs, next, a as usize, done);
                check_step(env, th, (s, t, i), step, &mut episode, &mut replayed)
                    .map_err(|(name, msg)| Error::file(p, field(name), msg))?;
                self.states.extend_from_slice(obs);
                self.next_states.extend_from_slice(next);
                self.actions.push(a as u8);
                self.rewards.push(th.rewards[i]);
                self.dones.push(done);
                self.markers.push(th.compress_markers[i]);
                self.state_index.push(idx as u32);
            }
            self.task.push(th.task as u32);
            self.stream.push(s as u32);
            self.offsets.push(self.actions.len());
        }
        Ok(())
    }
}

/// A recorded step against the environment: a finite reward, and the next state and reward
/// that replaying the action gives. Where the observation determines the state, the step is
/// replayed from it alone; otherwise (`episode` is `Some`: the state of the stream's replay,
/// which starts at the environment's reset) the step must start where the replay stands, its
/// done flag must match, and the replay moves on (resetting after the last step of an episode).
/// Err: (dataset name, message).
fn check_step(
    env: &dyn Environment,
    th: &TaskHistory,
    (s, t, i): (usize, usize, usize),
    (obs, next, a, done): (&[i32], &[i32], usize, bool),
    episode: &mut Option<EnvState>,
    want: &mut Vec<i32>,
) -> std::result::Result<(), (&'static str, String)> {
    let r = th.rewards[i];
    if !r.is_finite() {
        return Err((names::REWARDS, format!("stream {s} step {t}: reward {r}")));
    }
    want.resize(obs.len(), 0);
    let mut state = match episode {
        Some(replay) => {
            env.observe(replay, want);
            if want.as_slice() != obs {
                return Err((
                    names::STATES,
                    format!(
                        "stream {s} step {t}: {obs:?}, but the stream's replay from the reset \
                         stands at {want:?}"
                    ),
                ));
            }
            *replay
        }
        None => match env.state_of(obs) {
            Some(state) => state,
            None => return Ok(()),
        },
    };
    let out = env.step(th.task, &mut state, a);
    env.observe(&state, want);
    if want.as_slice() != next {
        return Err((
            names::NEXT_STATES,
            format!("stream {s} step {t}: {next:?}, but action {a} from {obs:?} leads to {want:?}"),
        ));
    }
    if out.reward != r {
        return Err((
            names::REWARDS,
            format!(
                "stream {s} step {t}: reward {r}, but task {} ({:?}) gives {} at {next:?}",
                th.task,
                env.task_params(th.task),
                out.reward
            ),
        ));
    }
    if let Some(replay) = episode {
        if done != out.done {
            return Err((
                names::DONES,
                format!(
                    "stream {s} step {t}: done {}, but the replayed {}-step episode {} here",
                    done as u8,
                    env.horizon(),
                    if out.done { "ends" } else { "goes on" }
                ),
            ));
        }
        *replay = if out.done { env.reset(th.task) } else { state };
    }
    Ok(())
}

fn state_index_checked(env: &dyn Environment, obs: &[i32], n_states: usize) -> Option<usize> {
    if !env.contains(obs) {
        return None;
    }
    let idx = env.state_index(obs);
    (idx < n_states).then_some(idx)
}

/// Refuse a file that was collected for another environment or interval than `cfg` names.
fn check_meta(path: &Path, meta: &HistoryMeta, cfg: &Config, env: &dyn Environment) -> Result<()> {
    if meta.env_name != env.name() {
        return Err(Error::file(
            path,
            attrs::ENV_NAME,
            format!("is {:?}, the config says {:?}", meta.env_name, env.name()),
        ));
    }
    let want = env.params_json();
    let parsed = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    let have = parsed(&meta.env_params)
        .ok_or_else(|| Error::file(path, attrs::ENV_PARAMS, "is not JSON"))?;
    if Some(&have) != parsed(&want).as_ref() {
        return Err(Error::file(
            path,
            attrs::ENV_PARAMS,
            format!("is {}, the config says {want}", meta.env_params),
        ));
    }
    if meta.compress_interval != cfg.compress_interval() {
        return Err(Error::file(
            path,
            attrs::COMPRESS_INTERVAL,
            format!(
                "is {}, the config says {} (collect.compress_interval)",
                meta.compress_interval,
                cfg.compress_interval()
            ),
        ));
    }
    check_n_actions(path, meta, env)?;
    if env.n_actions() > u8::MAX as usize + 1 {
        return Err(Error::file(path, attrs::N_ACTIONS, "more than 256 actions"));
    }
    check_split(path, meta, cfg, env)
}

/// The environment a history file was collected on, from its `env_name` and `env_params`
/// attributes alone (for tools that read a file without its config). Refuses an unknown
/// name, parameters other than the family's (`grid`, `horizon`), an `n_actions` the family
/// does not have, and task lists with a task out of range or listed twice.
pub fn env_from_meta(path: &Path, meta: &HistoryMeta) -> Result<Box<dyn Environment>> {
    use ccad_core::config::{EnvConfig, EnvName};
    use serde_json::Value;
    let name: EnvName =
        serde_json::from_value(Value::String(meta.env_name.clone())).map_err(|_| {
            Error::file(
                path,
                attrs::ENV_NAME,
                format!(
                    "{:?} is not an environment (darkroom, darkroom-permuted, darkroom-hard, \
                     key-to-door)",
                    meta.env_name
                ),
            )
        })?;
    let bad_params = |why: &str| {
        Error::file(
            path,
            attrs::ENV_PARAMS,
            format!("{} {why}", meta.env_params),
        )
    };
    let params: Value =
        serde_json::from_str(&meta.env_params).map_err(|_| bad_params("is not JSON"))?;
    let size = |key: &str| -> Result<usize> {
        params
            .get(key)
            .and_then(Value::as_u64)
            .filter(|&v| v > 0)
            .map(|v| v as usize)
            .ok_or_else(|| bad_params(&format!("has no positive integer {key:?}")))
    };
    let cfg = EnvConfig {
        name,
        grid: size("grid")?,
        horizon: size("horizon")?,
        ..EnvConfig::default()
    };
    // Sizes within the config's limits before anything is built from them.
    cfg.validate()
        .map_err(|(field, message)| bad_params(&format!("gives {field} that {message}")))?;
    let env = make_env(&cfg);
    if serde_json::from_str::<Value>(&env.params_json()).ok() != Some(params) {
        return Err(bad_params(&format!(
            "is not what {} takes ({})",
            env.name(),
            env.params_json()
        )));
    }
    check_n_actions(path, meta, env.as_ref())?;
    check_task_lists(path, meta, env.as_ref())?;
    Ok(env)
}

/// The file's `n_actions` is the environment's.
fn check_n_actions(path: &Path, meta: &HistoryMeta, env: &dyn Environment) -> Result<()> {
    if meta.n_actions != env.n_actions() {
        return Err(Error::file(
            path,
            attrs::N_ACTIONS,
            format!(
                "is {}, {} has {}",
                meta.n_actions,
                env.name(),
                env.n_actions()
            ),
        ));
    }
    Ok(())
}

/// Tasks in range, listed once, train and held-out disjoint.
fn check_task_lists(path: &Path, meta: &HistoryMeta, env: &dyn Environment) -> Result<()> {
    let lists = [
        (attrs::TRAIN_TASKS, &meta.train_tasks),
        (attrs::TEST_TASKS, &meta.test_tasks),
    ];
    let mut seen = vec![false; env.n_tasks()];
    for (field, tasks) in lists {
        for &t in tasks {
            if t >= env.n_tasks() {
                return Err(Error::file(
                    path,
                    field,
                    format!(
                        "task {t} does not exist ({} has {})",
                        env.name(),
                        env.n_tasks()
                    ),
                ));
            }
            if std::mem::replace(&mut seen[t], true) {
                return Err(Error::file(
                    path,
                    field,
                    format!("task {t} is listed twice (or both trained on and held out)"),
                ));
            }
        }
    }
    Ok(())
}

/// The file's split: [`check_task_lists`], and the split the config chooses
/// (`env::split_tasks`: split seed, task counts, listed held-out tasks).
fn check_split(path: &Path, meta: &HistoryMeta, cfg: &Config, env: &dyn Environment) -> Result<()> {
    check_task_lists(path, meta, env)?;
    // The config's split: the same held-out tasks, and training only on its train tasks.
    let (train, test) = ccad_core::env::split_tasks(&cfg.env, env, env.n_tasks())
        .map_err(|(field, msg)| Error::file(path, field, msg))?;
    let why = "(env.split_seed, env.n_tasks, the task counts or env.test_tasks differ)";
    if test != meta.test_tasks {
        return Err(Error::file(
            path,
            attrs::TEST_TASKS,
            format!(
                "the file holds out {:?}, the config's split {test:?} {why}",
                meta.test_tasks
            ),
        ));
    }
    if let Some(t) = meta.train_tasks.iter().find(|t| !train.contains(t)) {
        return Err(Error::file(
            path,
            attrs::TRAIN_TASKS,
            format!("the file trains on task {t}, which the config's split does not {why}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccad_core::history::FORMAT_VERSION;

    fn meta(name: &str, params: &str) -> HistoryMeta {
        HistoryMeta {
            format_version: FORMAT_VERSION,
            env_name: name.into(),
            env_params: params.into(),
            config: String::new(),
            compress_interval: 8,
            n_actions: 5,
            train_tasks: vec![0, 2],
            test_tasks: vec![1],
        }
    }

    #[test]
    fn env_from_meta_builds_every_family_from_name_and_params() {
        let p = Path::new("f.hdf5");
        for (name, n_tasks) in [
            ("darkroom", 9),
            ("darkroom-permuted", 120),
            ("darkroom-hard", 9),
            ("key-to-door", 72),
        ] {
            // Horizon 6: Key-to-Door's farthest pair on a 3-sided grid needs 2 + 4 steps.
            let env = env_from_meta(p, &meta(name, r#"{"horizon":6,"grid":3}"#)).unwrap();
            assert_eq!(
                (env.name(), env.n_tasks(), env.horizon()),
                (name, n_tasks, 6)
            );
        }
    }

    #[test]
    fn env_from_meta_names_the_bad_attribute() {
        let p = Path::new("f.hdf5");
        let err = |m: HistoryMeta| env_from_meta(p, &m).err().unwrap().to_string();
        assert!(err(meta("cave", r#"{"grid":3,"horizon":4}"#)).starts_with("f.hdf5: env_name:"));
        for params in [
            "grid=3",
            r#"{"grid":3}"#,
            r#"{"grid":3,"horizon":4,"walls":1}"#,
        ] {
            assert!(err(meta("darkroom", params)).starts_with("f.hdf5: env_params:"));
        }
        // Sizes past the config's limits are refused before an environment is built.
        assert_eq!(
            err(meta("key-to-door", r#"{"grid":4294967296,"horizon":50}"#)),
            "f.hdf5: env_params: {\"grid\":4294967296,\"horizon\":50} gives env.grid that must \
             be in [2, 1000], got 4294967296"
        );
        let mut m = meta("darkroom", r#"{"grid":3,"horizon":4}"#);
        m.n_actions = 4;
        assert!(err(m).starts_with("f.hdf5: n_actions: is 4"));
        let mut m = meta("darkroom", r#"{"grid":3,"horizon":4}"#);
        m.test_tasks = vec![9];
        assert!(err(m).starts_with("f.hdf5: test_tasks: task 9 does not exist"));
    }
}
