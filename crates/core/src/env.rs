//! Environments behind one trait. Dark Room (as in the AD paper) and its permuted-action variant.
//!
//! An [`Environment`] describes a family of tasks and pure per-step dynamics over a small
//! copyable [`EnvState`]; [`VecEnv`] steps many (task, stream) copies in one batch over flat,
//! preallocated buffers, with no allocation per step.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::config::{EnvConfig, EnvName};

/// Per-copy dynamic state. Small and `Copy` so a batch is one flat `Vec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnvState {
    pub row: i32,
    pub col: i32,
    /// Steps taken in the current episode.
    pub t: u32,
}

/// What one step returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    pub reward: f32,
    /// The episode ended (a terminal, not a truncation).
    pub done: bool,
}

pub trait Environment: Send + Sync {
    /// Name as stored in datasets and configs.
    fn name(&self) -> &'static str;
    fn n_tasks(&self) -> usize;
    fn n_actions(&self) -> usize;
    /// Length of an observation vector.
    fn obs_dim(&self) -> usize;
    /// Number of discrete states (size of the query-state embedding).
    fn n_states(&self) -> usize;
    fn horizon(&self) -> usize;
    fn reset(&self, task: usize) -> EnvState;
    fn step(&self, task: usize, state: &mut EnvState, action: usize) -> StepOutcome;
    fn observe(&self, state: &EnvState, obs: &mut [i32]);
    /// Discrete index of an observation, in `0..n_states()`.
    fn state_index(&self, obs: &[i32]) -> usize;
    /// Best achievable episode return of a task.
    fn optimal_return(&self, task: usize) -> f32;
    /// What makes a task (a goal cell, an action permutation), stored on its HDF5 group.
    fn task_params(&self, task: usize) -> Vec<i32>;
    /// Name of the `task_params` attribute ("goal", "permutation").
    fn task_param_name(&self) -> &'static str;
    /// Parameters that define the environment family (stored in the dataset, checked on load).
    fn params_json(&self) -> String;
    /// Whether `obs` is an observation this environment can produce.
    fn contains(&self, obs: &[i32]) -> bool;
    /// The state behind `obs` when the observation determines it (a position), so that a
    /// recorded step can be replayed and checked; `None` where it does not.
    fn state_of(&self, _obs: &[i32]) -> Option<EnvState> {
        None
    }
}

/// Whether `obs` is a cell of a `grid`-sided room.
fn in_grid(grid: usize, obs: &[i32]) -> bool {
    obs.len() == 2 && obs.iter().all(|&v| v >= 0 && (v as usize) < grid)
}

/// The state at cell `obs` of a `grid`-sided room (position is the whole state).
fn grid_state(grid: usize, obs: &[i32]) -> Option<EnvState> {
    in_grid(grid, obs).then(|| EnvState {
        row: obs[0],
        col: obs[1],
        t: 0,
    })
}

/// Build the environment a config names.
pub fn make_env(cfg: &EnvConfig) -> Box<dyn Environment> {
    match cfg.name {
        EnvName::Darkroom => Box::new(DarkRoom::new(cfg.grid, cfg.horizon)),
        EnvName::DarkroomPermuted => Box::new(DarkRoomPermuted::new(cfg.grid, cfg.horizon)),
    }
}

/// `(train, held out)` task indices.
pub type TaskSplit = (Vec<usize>, Vec<usize>);

/// Train and held-out tasks of a config: the one place that chooses them. Tasks in use are
/// the first `n_tasks` (0 = all) of `n_available`; then, in this precedence:
/// 1. `env.test_tasks` — an explicit list of held-out tasks, by their parameters (a goal
///    `[row, col]`, a permutation); held out in the list's order, every other task trains;
/// 2. `env.n_train_tasks` / `env.n_test_tasks` — a seeded sample of that many of each;
/// 3. `env.train_ratio` — the first `round(train_ratio · n)` of a seeded shuffle train, the
///    rest are held out (73 of 81 at 0.9).
///
/// Every way shuffles with `env.split_seed`, so train tasks come in the shuffle's order.
/// Err: (field, message) for a listed task that is not in use, or counts over the tasks in use.
pub fn split_tasks(
    cfg: &EnvConfig,
    env: &dyn Environment,
    n_available: usize,
) -> Result<TaskSplit, (&'static str, String)> {
    let n = if cfg.n_tasks == 0 {
        n_available
    } else {
        cfg.n_tasks.min(n_available)
    };
    let mut tasks: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.split_seed);
    tasks.shuffle(&mut rng);
    if !cfg.test_tasks.is_empty() {
        let test = cfg
            .test_tasks
            .iter()
            .map(|params| {
                (0..n)
                    .find(|&t| env.task_params(t) == *params)
                    .ok_or_else(|| {
                        (
                            "env.test_tasks",
                            format!(
                                "{params:?} is not a {} of the {n} tasks in use",
                                env.task_param_name()
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        tasks.retain(|t| !test.contains(t));
        if tasks.is_empty() {
            return Err(("env.test_tasks", "holds out every task in use".into()));
        }
        return Ok((tasks, test));
    }
    if cfg.n_train_tasks > 0 {
        let (a, b) = (cfg.n_train_tasks, cfg.n_test_tasks);
        if a + b > n {
            return Err((
                "env.n_train_tasks",
                format!("{a} train + {b} held-out tasks, only {n} in use"),
            ));
        }
        let test = tasks[a..a + b].to_vec();
        tasks.truncate(a);
        return Ok((tasks, test));
    }
    let n_train = ((n as f64) * cfg.train_ratio).round() as usize;
    let test = tasks.split_off(n_train.min(n));
    Ok((tasks, test))
}

/// [`split_tasks`] for library callers, whose configs the binaries already checked at load
/// (`cli::check_split`): a failure is a config error.
pub fn checked_split(
    cfg: &EnvConfig,
    env: &dyn Environment,
    n_available: usize,
) -> crate::Result<(Vec<usize>, Vec<usize>)> {
    split_tasks(cfg, env, n_available)
        .map_err(|(field, message)| crate::error::ConfigError::new("config", field, message).into())
}

/// Moves of the 5 base actions: 0 row+1, 1 row-1, 2 col+1, 3 col-1, 4 stay.
const MOVES: [(i32, i32); 5] = [(1, 0), (-1, 0), (0, 1), (0, -1), (0, 0)];

fn manhattan(a: (i32, i32), b: (i32, i32)) -> i32 {
    (a.0 - b.0).abs() + (a.1 - b.1).abs()
}

/// Shared dynamics: move (clipped at the walls), reward 1 for every step that ends on the goal,
/// the episode ends after `horizon` steps.
fn grid_step(
    grid: i32,
    horizon: usize,
    goal: (i32, i32),
    state: &mut EnvState,
    base_action: usize,
) -> StepOutcome {
    let (dr, dc) = MOVES[base_action];
    state.row = (state.row + dr).clamp(0, grid - 1);
    state.col = (state.col + dc).clamp(0, grid - 1);
    state.t += 1;
    let reward = if (state.row, state.col) == goal {
        1.0
    } else {
        0.0
    };
    StepOutcome {
        reward,
        done: state.t as usize >= horizon,
    }
}

fn optimal(horizon: usize, start: (i32, i32), goal: (i32, i32)) -> f32 {
    (horizon as i32 + 1 - manhattan(start, goal)).clamp(0, horizon as i32) as f32
}

/// Dark Room: start in the centre, one task per goal cell (task `i` has goal `(i / grid, i % grid)`).
#[derive(Debug, Clone)]
pub struct DarkRoom {
    grid: usize,
    horizon: usize,
}

impl DarkRoom {
    pub fn new(grid: usize, horizon: usize) -> Self {
        Self { grid, horizon }
    }

    pub fn goal(&self, task: usize) -> (i32, i32) {
        ((task / self.grid) as i32, (task % self.grid) as i32)
    }

    fn start(&self) -> (i32, i32) {
        let c = (self.grid / 2) as i32;
        (c, c)
    }
}

impl Environment for DarkRoom {
    fn name(&self) -> &'static str {
        EnvName::Darkroom.as_str()
    }
    fn n_tasks(&self) -> usize {
        EnvName::Darkroom.task_count(self.grid)
    }
    fn n_actions(&self) -> usize {
        5
    }
    fn obs_dim(&self) -> usize {
        2
    }
    fn n_states(&self) -> usize {
        self.grid * self.grid
    }
    fn horizon(&self) -> usize {
        self.horizon
    }
    fn reset(&self, _task: usize) -> EnvState {
        let (row, col) = self.start();
        EnvState { row, col, t: 0 }
    }
    fn step(&self, task: usize, state: &mut EnvState, action: usize) -> StepOutcome {
        grid_step(
            self.grid as i32,
            self.horizon,
            self.goal(task),
            state,
            action,
        )
    }
    fn observe(&self, state: &EnvState, obs: &mut [i32]) {
        obs[0] = state.row;
        obs[1] = state.col;
    }
    fn state_index(&self, obs: &[i32]) -> usize {
        obs[0] as usize * self.grid + obs[1] as usize
    }
    fn optimal_return(&self, task: usize) -> f32 {
        optimal(self.horizon, self.start(), self.goal(task))
    }
    fn task_params(&self, task: usize) -> Vec<i32> {
        let (r, c) = self.goal(task);
        vec![r, c]
    }
    fn task_param_name(&self) -> &'static str {
        "goal"
    }
    fn params_json(&self) -> String {
        format!(r#"{{"grid":{},"horizon":{}}}"#, self.grid, self.horizon)
    }
    fn contains(&self, obs: &[i32]) -> bool {
        in_grid(self.grid, obs)
    }
    fn state_of(&self, obs: &[i32]) -> Option<EnvState> {
        grid_state(self.grid, obs)
    }
}

/// Dark Room with permuted actions: start at (0, 0), goal at the far corner; task `i` applies
/// the `i`-th permutation (lexicographic order) of the 5 actions.
#[derive(Debug, Clone)]
pub struct DarkRoomPermuted {
    grid: usize,
    horizon: usize,
    permutations: Vec<[u8; 5]>,
}

impl DarkRoomPermuted {
    pub fn new(grid: usize, horizon: usize) -> Self {
        let mut permutations = Vec::with_capacity(EnvName::DarkroomPermuted.task_count(grid));
        let mut p = [0u8, 1, 2, 3, 4];
        permute(&mut p, 0, &mut permutations);
        permutations.sort();
        Self {
            grid,
            horizon,
            permutations,
        }
    }

    pub fn permutation(&self, task: usize) -> [u8; 5] {
        self.permutations[task]
    }

    fn goal(&self) -> (i32, i32) {
        let g = self.grid as i32 - 1;
        (g, g)
    }
}

fn permute(p: &mut [u8; 5], k: usize, out: &mut Vec<[u8; 5]>) {
    if k == p.len() {
        out.push(*p);
        return;
    }
    for i in k..p.len() {
        p.swap(k, i);
        permute(p, k + 1, out);
        p.swap(k, i);
    }
}

impl Environment for DarkRoomPermuted {
    fn name(&self) -> &'static str {
        EnvName::DarkroomPermuted.as_str()
    }
    fn n_tasks(&self) -> usize {
        EnvName::DarkroomPermuted.task_count(self.grid)
    }
    fn n_actions(&self) -> usize {
        5
    }
    fn obs_dim(&self) -> usize {
        2
    }
    fn n_states(&self) -> usize {
        self.grid * self.grid
    }
    fn horizon(&self) -> usize {
        self.horizon
    }
    fn reset(&self, _task: usize) -> EnvState {
        EnvState::default()
    }
    fn step(&self, task: usize, state: &mut EnvState, action: usize) -> StepOutcome {
        let base = self.permutations[task][action] as usize;
        grid_step(self.grid as i32, self.horizon, self.goal(), state, base)
    }
    fn observe(&self, state: &EnvState, obs: &mut [i32]) {
        obs[0] = state.row;
        obs[1] = state.col;
    }
    fn state_index(&self, obs: &[i32]) -> usize {
        obs[0] as usize * self.grid + obs[1] as usize
    }
    fn optimal_return(&self, _task: usize) -> f32 {
        optimal(self.horizon, (0, 0), self.goal())
    }
    fn task_params(&self, task: usize) -> Vec<i32> {
        self.permutations[task].iter().map(|&a| a as i32).collect()
    }
    fn task_param_name(&self) -> &'static str {
        "permutation"
    }
    fn params_json(&self) -> String {
        format!(r#"{{"grid":{},"horizon":{}}}"#, self.grid, self.horizon)
    }
    fn contains(&self, obs: &[i32]) -> bool {
        in_grid(self.grid, obs)
    }
    fn state_of(&self, obs: &[i32]) -> Option<EnvState> {
        grid_state(self.grid, obs)
    }
}

/// Many copies of an environment stepped together. Copy `i` runs task `tasks[i]`; finished
/// episodes reset automatically (the returned `next_obs` is the terminal observation, `obs`
/// then holds the first observation of the next episode, as in stable-baselines3's VecEnv).
pub struct VecEnv<'a> {
    env: &'a dyn Environment,
    tasks: Vec<usize>,
    states: Vec<EnvState>,
    obs_dim: usize,
}

impl<'a> VecEnv<'a> {
    pub fn new(env: &'a dyn Environment, tasks: Vec<usize>) -> Self {
        let states = tasks.iter().map(|&t| env.reset(t)).collect();
        Self {
            env,
            tasks,
            states,
            obs_dim: env.obs_dim(),
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn tasks(&self) -> &[usize] {
        &self.tasks
    }

    pub fn env(&self) -> &dyn Environment {
        self.env
    }

    /// Current observations, `[len, obs_dim]` flattened.
    pub fn observe(&self, obs: &mut [i32]) {
        for (s, o) in self.states.iter().zip(obs.chunks_exact_mut(self.obs_dim)) {
            self.env.observe(s, o);
        }
    }

    /// Step every copy. `next_obs` gets the observation after the step (terminal included),
    /// `obs` the observation the next action is taken from.
    pub fn step(
        &mut self,
        actions: &[usize],
        next_obs: &mut [i32],
        obs: &mut [i32],
        rewards: &mut [f32],
        dones: &mut [bool],
    ) {
        let d = self.obs_dim;
        for i in 0..self.tasks.len() {
            let task = self.tasks[i];
            let st = &mut self.states[i];
            let out = self.env.step(task, st, actions[i]);
            self.env.observe(st, &mut next_obs[i * d..(i + 1) * d]);
            if out.done {
                *st = self.env.reset(task);
            }
            self.env.observe(st, &mut obs[i * d..(i + 1) * d]);
            rewards[i] = out.reward;
            dones[i] = out.done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(env: &dyn Environment, task: usize, actions: &[usize]) -> Vec<((i32, i32), f32, bool)> {
        let mut s = env.reset(task);
        actions
            .iter()
            .map(|&a| {
                let o = env.step(task, &mut s, a);
                ((s.row, s.col), o.reward, o.done)
            })
            .collect()
    }

    #[test]
    fn darkroom_moves_and_walls() {
        let env = DarkRoom::new(9, 20);
        // Goal (8, 4): task 8*9+4 = 76. From (4,4): four row+1 moves reach row 8, a fifth is
        // clipped at the wall and stays on the goal.
        let steps = run(&env, 76, &[0, 0, 0, 0, 0, 2, 3]);
        let pos: Vec<_> = steps.iter().map(|s| s.0).collect();
        assert_eq!(
            pos,
            vec![(5, 4), (6, 4), (7, 4), (8, 4), (8, 4), (8, 5), (8, 4)]
        );
        let rewards: Vec<_> = steps.iter().map(|s| s.1).collect();
        assert_eq!(rewards, vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        // Top-left wall: from (4,4), five row-1 moves end at row 0; col-1 likewise.
        let steps = run(&env, 0, &[1, 1, 1, 1, 1, 3, 3, 3, 3, 3]);
        assert_eq!(steps[4].0, (0, 4));
        assert_eq!(steps[9].0, (0, 0));
        assert_eq!(steps[8].1, 1.0, "reaching (0,0) on the 9th step pays");
        assert_eq!(
            steps[9].1, 1.0,
            "col-1 at the wall stays on the goal and pays again"
        );
    }

    #[test]
    fn reward_every_step_at_goal_and_horizon_ends() {
        let env = DarkRoom::new(9, 20);
        let centre = 4 * 9 + 4;
        let steps = run(&env, centre, &[4; 20]);
        assert!(steps.iter().all(|s| s.1 == 1.0));
        let dones: Vec<_> = steps.iter().map(|s| s.2).collect();
        assert!(dones[..19].iter().all(|d| !d));
        assert!(dones[19]);
        let ret: f32 = steps.iter().map(|s| s.1).sum();
        assert_eq!(ret, env.optimal_return(centre));
    }

    #[test]
    fn optimal_return_formula() {
        let env = DarkRoom::new(9, 20);
        // clamp(21 - manhattan((4,4), goal), 0, 20)
        assert_eq!(env.optimal_return(4 * 9 + 4), 20.0); // distance 0 → clamp(21) = 20
        assert_eq!(env.optimal_return(4 * 9 + 5), 20.0); // distance 1
        assert_eq!(env.optimal_return(0), 13.0); // (0,0): distance 8
        assert_eq!(env.optimal_return(80), 13.0);
        let small = DarkRoom::new(9, 5);
        assert_eq!(small.optimal_return(0), 0.0); // 6 - 8 clamped to 0
        // Walking straight to (0,0) and staying earns exactly the optimum.
        let mut acts = vec![1, 1, 1, 1, 3, 3, 3, 3];
        acts.resize(20, 4);
        let ret: f32 = run(&env, 0, &acts).iter().map(|s| s.1).sum();
        assert_eq!(ret, 13.0);
    }

    #[test]
    fn permuted_actions() {
        let env = DarkRoomPermuted::new(9, 20);
        assert_eq!(env.n_tasks(), 120);
        assert_eq!(env.permutation(0), [0, 1, 2, 3, 4]);
        assert_eq!(env.permutation(119), [4, 3, 2, 1, 0]);
        let distinct: std::collections::HashSet<_> = (0..120).map(|t| env.permutation(t)).collect();
        assert_eq!(distinct.len(), 120);
        // Task 119 reverses: action 4 → base 0 (row+1), action 2 → base 2 (col+1),
        // action 0 → base 4 (stay).
        let steps = run(&env, 119, &[4, 2, 0]);
        assert_eq!(steps[0].0, (1, 0));
        assert_eq!(steps[1].0, (1, 1));
        assert_eq!(steps[2].0, (1, 1));
        assert_eq!(env.optimal_return(5), 5.0); // 21 - 16
        // Reaching the corner in 16 steps with the reversed actions, then staying, earns 5.
        let mut acts = vec![4; 8];
        acts.extend([2; 8]);
        acts.extend([0; 4]);
        let out = run(&env, 119, &acts);
        assert_eq!(out[15].0, (8, 8));
        assert_eq!(out.iter().map(|s| s.1).sum::<f32>(), 5.0);
        assert!(out[19].2);
    }

    fn split(cfg: &EnvConfig, n: usize) -> (Vec<usize>, Vec<usize>) {
        split_tasks(cfg, &DarkRoom::new(9, 20), n).unwrap()
    }

    #[test]
    fn split_sizes_and_determinism() {
        let cfg = EnvConfig::default();
        let (train, test) = split(&cfg, 81);
        assert_eq!((train.len(), test.len()), (73, 8));
        let mut all: Vec<_> = train.iter().chain(&test).copied().collect();
        all.sort();
        assert_eq!(all, (0..81).collect::<Vec<_>>());
        assert_eq!(split(&cfg, 81), (train.clone(), test.clone()));
        let other = EnvConfig {
            split_seed: 1,
            ..cfg.clone()
        };
        assert_ne!(split(&other, 81).1, test);
        let few = EnvConfig { n_tasks: 10, ..cfg };
        let (tr, te) = split(&few, 81);
        assert_eq!((tr.len(), te.len()), (9, 1));
        assert!(tr.iter().chain(&te).all(|&t| t < 10));
    }

    #[test]
    fn explicit_list_beats_counts_beats_ratio() {
        // The reference's held-out goals; on a 9-wide grid goal (r, c) is task 9r + c.
        let goals = [
            [4, 2],
            [5, 6],
            [6, 8],
            [7, 2],
            [3, 6],
            [0, 5],
            [5, 8],
            [5, 4],
        ];
        let listed = EnvConfig {
            test_tasks: goals.iter().map(|g| g.to_vec()).collect(),
            n_train_tasks: 10,
            n_test_tasks: 5,
            ..EnvConfig::default()
        };
        let (train, test) = split(&listed, 81);
        assert_eq!(test, vec![38, 51, 62, 65, 33, 5, 53, 49]);
        assert_eq!(train.len(), 73);
        assert!(train.iter().all(|t| !test.contains(t)));
        // The reference's optimal mean: Σ (21 − manhattan((4,4), goal)) / 8 = 138 / 8.
        let env = DarkRoom::new(9, 20);
        let optimal: f32 = test.iter().map(|&t| env.optimal_return(t)).sum::<f32>() / 8.0;
        assert_eq!(optimal, 17.25);

        let counted = EnvConfig {
            test_tasks: vec![],
            ..listed.clone()
        };
        let (train, test) = split(&counted, 81);
        assert_eq!((train.len(), test.len()), (10, 5));
        // The same seeded shuffle as the ratio split: its first 10 train, the next 5 held out.
        let (shuffled, rest) = split(&EnvConfig::default(), 81);
        let order: Vec<usize> = shuffled.iter().chain(&rest).copied().collect();
        assert_eq!(train, order[..10]);
        assert_eq!(test, order[10..15]);
    }

    #[test]
    fn bad_splits_name_their_field() {
        let env = DarkRoom::new(9, 20);
        let missing = EnvConfig {
            test_tasks: vec![vec![9, 9]],
            ..EnvConfig::default()
        };
        assert_eq!(
            split_tasks(&missing, &env, 81).unwrap_err(),
            (
                "env.test_tasks",
                "[9, 9] is not a goal of the 81 tasks in use".to_string()
            )
        );
        let all = EnvConfig {
            n_tasks: 2,
            test_tasks: vec![vec![0, 0], vec![0, 1]],
            ..EnvConfig::default()
        };
        assert_eq!(split_tasks(&all, &env, 81).unwrap_err().0, "env.test_tasks");
        let over = EnvConfig {
            n_train_tasks: 80,
            n_test_tasks: 2,
            ..EnvConfig::default()
        };
        assert_eq!(
            split_tasks(&over, &env, 81).unwrap_err(),
            (
                "env.n_train_tasks",
                "80 train + 2 held-out tasks, only 81 in use".to_string()
            )
        );
    }

    #[test]
    fn vec_env_auto_resets_and_reports_terminal_obs() {
        let env = DarkRoom::new(3, 2);
        let mut v = VecEnv::new(&env, vec![0, 8]);
        let (mut nobs, mut obs) = ([0; 4], [0; 4]);
        let (mut r, mut d) = ([0.0; 2], [false; 2]);
        v.observe(&mut obs);
        assert_eq!(obs, [1, 1, 1, 1]);
        v.step(&[1, 0], &mut nobs, &mut obs, &mut r, &mut d);
        assert_eq!(nobs, [0, 1, 2, 1]);
        assert_eq!(d, [false, false]);
        v.step(&[3, 2], &mut nobs, &mut obs, &mut r, &mut d);
        assert_eq!(nobs, [0, 0, 2, 2]);
        assert_eq!(r, [1.0, 1.0]);
        assert_eq!(d, [true, true]);
        assert_eq!(obs, [1, 1, 1, 1], "reset to the centre after the horizon");
    }
}
