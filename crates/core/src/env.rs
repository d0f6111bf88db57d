//! Environments behind one trait: Dark Room (as in the AD paper), its permuted-action variant,
//! Dark Room Hard (17 × 17, the goal pays once an episode) and Dark Key-to-Door (an invisible
//! key, then an invisible door).
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
    /// What the episode has done so far that the position does not show ([`EnvState::HOLDS_KEY`],
    /// [`EnvState::DOOR_OPENED`], [`EnvState::GOAL_REACHED`]); 0 at every reset.
    pub flags: u8,
}

impl EnvState {
    /// Key-to-Door: the key was picked up this episode.
    pub const HOLDS_KEY: u8 = 1;
    /// Key-to-Door: the door was opened (reached while holding the key) this episode.
    pub const DOOR_OPENED: u8 = 2;
    /// Dark Room Hard: the goal was reached this episode.
    pub const GOAL_REACHED: u8 = 4;

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What one step returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    pub reward: f32,
    /// The episode ended (a terminal, not a truncation).
    pub done: bool,
}

/// A `grid × grid` room with `horizon`-step episodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub grid: usize,
    pub horizon: usize,
}

/// A family of tasks. The observation-side methods have defaults for what every environment
/// here is: a square [`Room`] with 5 moves, observed as the agent's (row, col); an environment
/// of another kind overrides them.
pub trait Environment: Send + Sync {
    /// Name as stored in datasets and configs.
    fn name(&self) -> &'static str;
    fn n_tasks(&self) -> usize;
    /// The room the tasks play in.
    fn room(&self) -> Room;
    fn n_actions(&self) -> usize {
        MOVES.len()
    }
    /// Length of an observation vector.
    fn obs_dim(&self) -> usize {
        2
    }
    /// Number of discrete states (size of the query-state embedding).
    fn n_states(&self) -> usize {
        self.room().grid * self.room().grid
    }
    fn horizon(&self) -> usize {
        self.room().horizon
    }
    /// The first state of an episode: the room's centre unless the environment says otherwise.
    fn reset(&self, _task: usize) -> EnvState {
        let (row, col) = centre(self.room().grid);
        EnvState {
            row,
            col,
            ..EnvState::default()
        }
    }
    fn step(&self, task: usize, state: &mut EnvState, action: usize) -> StepOutcome;
    fn observe(&self, state: &EnvState, obs: &mut [i32]) {
        obs[0] = state.row;
        obs[1] = state.col;
    }
    /// Discrete index of an observation, in `0..n_states()`.
    fn state_index(&self, obs: &[i32]) -> usize {
        obs[0] as usize * self.room().grid + obs[1] as usize
    }
    /// Best achievable episode return of a task.
    fn optimal_return(&self, task: usize) -> f32;
    /// What makes a task (a goal cell, an action permutation), stored on its HDF5 group.
    fn task_params(&self, task: usize) -> Vec<i32>;
    /// Name of the `task_params` attribute ("goal", "permutation").
    fn task_param_name(&self) -> &'static str;
    /// Parameters that define the environment family (stored in the dataset, checked on load).
    fn params_json(&self) -> String {
        let room = self.room();
        format!(r#"{{"grid":{},"horizon":{}}}"#, room.grid, room.horizon)
    }
    /// Whether `obs` is an observation this environment can produce.
    fn contains(&self, obs: &[i32]) -> bool {
        in_grid(self.room().grid, obs)
    }
    /// Named return thresholds an episode can reach, in increasing order (Key-to-Door: "key"
    /// at 1, "door" at 2), reported as the share of episodes that reach each; empty where
    /// the return says nothing more than itself.
    fn milestones(&self) -> &'static [(&'static str, f32)] {
        &[]
    }
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
        ..EnvState::default()
    })
}

/// Build the environment a config names.
pub fn make_env(cfg: &EnvConfig) -> Box<dyn Environment> {
    match cfg.name {
        EnvName::Darkroom => Box::new(DarkRoom::new(cfg.grid, cfg.horizon)),
        EnvName::DarkroomPermuted => Box::new(DarkRoomPermuted::new(cfg.grid, cfg.horizon)),
        EnvName::DarkroomHard => Box::new(DarkRoomHard::new(cfg.grid, cfg.horizon)),
        EnvName::KeyToDoor => Box::new(KeyToDoor::new(cfg.grid, cfg.horizon)),
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

/// Move (clipped at the walls) and count the step; returns the new cell.
fn grid_move(grid: i32, state: &mut EnvState, base_action: usize) -> (i32, i32) {
    let (dr, dc) = MOVES[base_action];
    state.row = (state.row + dr).clamp(0, grid - 1);
    state.col = (state.col + dc).clamp(0, grid - 1);
    state.t += 1;
    (state.row, state.col)
}

/// A step's outcome: `reward`, and the episode ends after `horizon` steps.
fn outcome(state: &EnvState, horizon: usize, reward: bool) -> StepOutcome {
    StepOutcome {
        reward: if reward { 1.0 } else { 0.0 },
        done: state.t as usize >= horizon,
    }
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
    let at = grid_move(grid, state, base_action);
    outcome(state, horizon, at == goal)
}

/// The centre cell of a `grid`-sided room, where Dark Room, Dark Room Hard and Key-to-Door start.
fn centre(grid: usize) -> (i32, i32) {
    let c = (grid / 2) as i32;
    (c, c)
}

/// Cell `i` of a `grid`-sided room, row-major.
fn cell(grid: usize, i: usize) -> (i32, i32) {
    ((i / grid) as i32, (i % grid) as i32)
}

/// Fewest steps after which an agent at `from` can be rewarded at `to`: the Manhattan
/// distance, but at least 1, since rewards come after a step (a target under the agent pays
/// after one "stay").
fn steps_to(from: (i32, i32), to: (i32, i32)) -> usize {
    manhattan(from, to).max(1) as usize
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
        cell(self.grid, task)
    }
}

impl Environment for DarkRoom {
    fn name(&self) -> &'static str {
        EnvName::Darkroom.as_str()
    }
    fn n_tasks(&self) -> usize {
        EnvName::Darkroom.task_count(self.grid)
    }
    fn room(&self) -> Room {
        Room {
            grid: self.grid,
            horizon: self.horizon,
        }
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
    fn optimal_return(&self, task: usize) -> f32 {
        optimal(self.horizon, centre(self.grid), self.goal(task))
    }
    fn task_params(&self, task: usize) -> Vec<i32> {
        let (r, c) = self.goal(task);
        vec![r, c]
    }
    fn task_param_name(&self) -> &'static str {
        "goal"
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
    fn room(&self) -> Room {
        Room {
            grid: self.grid,
            horizon: self.horizon,
        }
    }
    fn reset(&self, _task: usize) -> EnvState {
        EnvState::default()
    }
    fn step(&self, task: usize, state: &mut EnvState, action: usize) -> StepOutcome {
        let base = self.permutations[task][action] as usize;
        grid_step(self.grid as i32, self.horizon, self.goal(), state, base)
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
    fn state_of(&self, obs: &[i32]) -> Option<EnvState> {
        grid_state(self.grid, obs)
    }
}

/// Dark Room Hard (AD paper): Dark Room's room, start and actions, but the goal pays only the
/// first time a step ends on it in an episode (sparse: at most 1 per episode). Task `i` has goal
/// `(i / grid, i % grid)`. The episode does not end at the goal: it runs `horizon` steps.
#[derive(Debug, Clone)]
pub struct DarkRoomHard {
    grid: usize,
    horizon: usize,
}

impl DarkRoomHard {
    pub fn new(grid: usize, horizon: usize) -> Self {
        Self { grid, horizon }
    }

    pub fn goal(&self, task: usize) -> (i32, i32) {
        cell(self.grid, task)
    }
}

impl Environment for DarkRoomHard {
    fn name(&self) -> &'static str {
        EnvName::DarkroomHard.as_str()
    }
    fn n_tasks(&self) -> usize {
        EnvName::DarkroomHard.task_count(self.grid)
    }
    fn room(&self) -> Room {
        Room {
            grid: self.grid,
            horizon: self.horizon,
        }
    }
    fn step(&self, task: usize, state: &mut EnvState, action: usize) -> StepOutcome {
        let at = grid_move(self.grid as i32, state, action);
        let first = at == self.goal(task) && !state.has(EnvState::GOAL_REACHED);
        if first {
            state.flags |= EnvState::GOAL_REACHED;
        }
        outcome(state, self.horizon, first)
    }
    /// 1 when the goal can be reached within the horizon, else 0.
    fn optimal_return(&self, task: usize) -> f32 {
        let reachable = steps_to(centre(self.grid), self.goal(task)) <= self.horizon;
        if reachable { 1.0 } else { 0.0 }
    }
    fn task_params(&self, task: usize) -> Vec<i32> {
        let (r, c) = self.goal(task);
        vec![r, c]
    }
    fn task_param_name(&self) -> &'static str {
        "goal"
    }
    fn milestones(&self) -> &'static [(&'static str, f32)] {
        &[("goal", 1.0)]
    }
    // `state_of` stays `None`: whether the goal was already reached is not in the observation.
}

/// Dark Key-to-Door (AD paper): start in the centre; each task hides a key cell and a door cell
/// (key ≠ door). After each step the agent gets 1 if it is on the key and does not hold it yet
/// (it then holds it), and 1 the first time it is on the door while holding the key; at most 2
/// an episode. Reaching the door before the key gives nothing and does not count later. The
/// observation is the position only: holding the key is not observed. Episodes run `horizon`
/// steps (no early end at the door).
///
/// Task `i` is the `i`-th `[key_row, key_col, door_row, door_col]` in lexicographic order:
/// key cell `i / (g² − 1)` (row-major), door the `(i mod (g² − 1))`-th of the other cells.
#[derive(Debug, Clone)]
pub struct KeyToDoor {
    grid: usize,
    horizon: usize,
}

impl KeyToDoor {
    pub fn new(grid: usize, horizon: usize) -> Self {
        Self { grid, horizon }
    }

    /// `(key, door)` cells of a task.
    pub fn key_door(&self, task: usize) -> ((i32, i32), (i32, i32)) {
        let others = self.grid * self.grid - 1;
        let key = task / others;
        let mut door = task % others;
        if door >= key {
            door += 1;
        }
        (cell(self.grid, key), cell(self.grid, door))
    }

    /// Fewest steps after which both rewards are in: start → key → door.
    pub fn steps_to_door(&self, task: usize) -> usize {
        let (key, door) = self.key_door(task);
        steps_to(centre(self.grid), key) + manhattan(key, door) as usize
    }
}

impl Environment for KeyToDoor {
    fn name(&self) -> &'static str {
        EnvName::KeyToDoor.as_str()
    }
    fn n_tasks(&self) -> usize {
        EnvName::KeyToDoor.task_count(self.grid)
    }
    fn room(&self) -> Room {
        Room {
            grid: self.grid,
            horizon: self.horizon,
        }
    }
    fn step(&self, task: usize, state: &mut EnvState, action: usize) -> StepOutcome {
        let at = grid_move(self.grid as i32, state, action);
        let (key, door) = self.key_door(task);
        let paid = if at == key && !state.has(EnvState::HOLDS_KEY) {
            state.flags |= EnvState::HOLDS_KEY;
            true
        } else if at == door && state.has(EnvState::HOLDS_KEY) && !state.has(EnvState::DOOR_OPENED)
        {
            state.flags |= EnvState::DOOR_OPENED;
            true
        } else {
            false
        };
        outcome(state, self.horizon, paid)
    }
    /// 2 when start → key → door fits in the horizon, 1 when only the key does, else 0.
    fn optimal_return(&self, task: usize) -> f32 {
        let (key, _) = self.key_door(task);
        if self.steps_to_door(task) <= self.horizon {
            2.0
        } else if steps_to(centre(self.grid), key) <= self.horizon {
            1.0
        } else {
            0.0
        }
    }
    fn task_params(&self, task: usize) -> Vec<i32> {
        let ((kr, kc), (dr, dc)) = self.key_door(task);
        vec![kr, kc, dr, dc]
    }
    fn task_param_name(&self) -> &'static str {
        "key_door"
    }
    /// The door pays only after the key, so a return of 1 means the key was found and 2 that
    /// the door was opened.
    fn milestones(&self) -> &'static [(&'static str, f32)] {
        &[("key", 1.0), ("door", 2.0)]
    }
    // `state_of` stays `None`: holding the key is not in the observation.
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

    /// Actions that walk from `from` to `to`: rows first, then columns (base actions: 0 row+1,
    /// 1 row-1, 2 col+1, 3 col-1); one "stay" when they are the same cell.
    fn walk(from: (i32, i32), to: (i32, i32)) -> Vec<usize> {
        if from == to {
            return vec![4];
        }
        let rows = (to.0 - from.0).unsigned_abs() as usize;
        let cols = (to.1 - from.1).unsigned_abs() as usize;
        let mut acts = vec![if to.0 > from.0 { 0 } else { 1 }; rows];
        acts.extend(vec![if to.1 > from.1 { 2 } else { 3 }; cols]);
        acts
    }

    fn rewards(steps: &[((i32, i32), f32, bool)]) -> Vec<f32> {
        steps.iter().map(|s| s.1).collect()
    }

    #[test]
    fn key_to_door_task_order() {
        let env = KeyToDoor::new(9, 50);
        // 81 keys × 80 doors.
        assert_eq!(env.n_tasks(), 6480);
        assert_eq!(env.task_params(0), vec![0, 0, 0, 1]);
        assert_eq!(env.task_params(79), vec![0, 0, 8, 8]);
        assert_eq!(env.task_params(80), vec![0, 1, 0, 0]);
        // Key (4,6) is cell 42, door (2,6) cell 24 < 42 keeps its rank: 42·80 + 24 = 3384.
        assert_eq!(env.task_params(3384), vec![4, 6, 2, 6]);
        // Door (4,7) is cell 43 > 42: rank 42, task 42·80 + 42 = 3402.
        assert_eq!(env.task_params(3402), vec![4, 6, 4, 7]);
        assert_eq!(env.task_params(6479), vec![8, 8, 8, 7]);
        // Lexicographic, distinct, key ≠ door.
        let params: Vec<_> = (0..6480).map(|t| env.task_params(t)).collect();
        assert!(params.windows(2).all(|w| w[0] < w[1]));
        assert!(params.iter().all(|p| p[..2] != p[2..]));
        assert_eq!(env.task_param_name(), "key_door");
        assert_eq!(env.name(), "key-to-door");
        assert_eq!(env.params_json(), r#"{"grid":9,"horizon":50}"#);
    }

    #[test]
    fn key_then_door_pays_two() {
        let env = KeyToDoor::new(9, 50);
        // Key (4,6), door (2,6). From (4,4): two col+1 reach the key (step 2), two row-1 the
        // door (step 4); staying on the door and returning to the key pay nothing more.
        let steps = run(&env, 3384, &[2, 2, 1, 1, 4, 4, 0, 0, 4]);
        assert_eq!(steps[1].0, (4, 6));
        assert_eq!(steps[3].0, (2, 6));
        assert_eq!(steps[7].0, (4, 6));
        assert_eq!(
            rewards(&steps),
            vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(env.optimal_return(3384), 2.0);
        assert_eq!(env.steps_to_door(3384), 4);
        // Since the door pays only after the key, a return of 1 means "key" and 2 "door".
        assert_eq!(env.milestones(), &[("key", 1.0), ("door", 2.0)]);
        assert_eq!(DarkRoomHard::new(17, 20).milestones(), &[("goal", 1.0)]);
        assert!(DarkRoom::new(9, 20).milestones().is_empty());
    }

    #[test]
    fn door_before_key_gives_nothing() {
        let env = KeyToDoor::new(9, 50);
        // Key (4,6), door (4,5) lies on the way: the door first pays nothing, the key then 1,
        // and only a later visit of the door with the key pays the second 1.
        let task = 3384 - 24 + 41; // door cell 41 < 42: rank 41
        assert_eq!(env.task_params(task), vec![4, 6, 4, 5]);
        let steps = run(&env, task, &[2, 2, 4, 3, 4, 2, 3]);
        let pos: Vec<_> = steps.iter().map(|s| s.0).collect();
        assert_eq!(
            pos,
            vec![(4, 5), (4, 6), (4, 6), (4, 5), (4, 5), (4, 6), (4, 5)]
        );
        assert_eq!(rewards(&steps), vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        // Waiting on the door, then fetching the key and leaving again: the door visit before
        // the key was not remembered, so only the key pays.
        let steps = run(&env, task, &[2, 4, 4, 2, 0]);
        assert_eq!(rewards(&steps), vec![0.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn key_on_the_start_pays_once_after_a_step() {
        let env = KeyToDoor::new(9, 50);
        // Key (4,4) = cell 40, door (0,0) = cell 0 (rank 0): task 40·80 = 3200.
        assert_eq!(env.task_params(3200), vec![4, 4, 0, 0]);
        // Staying on the key: the first step pays, the next ones do not.
        assert_eq!(rewards(&run(&env, 3200, &[4, 4, 4])), vec![1.0, 0.0, 0.0]);
        // Stepping off first: coming back pays.
        assert_eq!(rewards(&run(&env, 3200, &[2, 3, 4])), vec![0.0, 1.0, 0.0]);
        // 1 step for the key, 4 + 4 to the door: 9 ≤ 50.
        assert_eq!(env.steps_to_door(3200), 9);
        assert_eq!(env.optimal_return(3200), 2.0);
    }

    #[test]
    fn key_to_door_optimal_returns() {
        let env = KeyToDoor::new(9, 50);
        // The farthest: key (0,0) 8 steps from (4,4), door (8,8) 16 from it: 24 ≤ 50.
        assert_eq!(env.task_params(79), vec![0, 0, 8, 8]);
        assert_eq!(env.steps_to_door(79), 24);
        assert!((0..6480).all(|t| env.optimal_return(t) == 2.0));
        let short = KeyToDoor::new(9, 20);
        assert_eq!(
            short.optimal_return(79),
            1.0,
            "24 > 20: only the key (8 ≤ 20)"
        );
        assert_eq!(
            short.optimal_return(0),
            2.0,
            "key (0,0), door (0,1): 8 + 1 = 9"
        );
        let shorter = KeyToDoor::new(9, 5);
        assert_eq!(shorter.optimal_return(0), 0.0, "the key is 8 steps away");
        // Key under the start, door next to it, 1 step: only the key (1 ≤ 1 < 1 + 1).
        let one = KeyToDoor::new(9, 1);
        let task = 3200 + 40; // key (4,4), door cell 41 = (4,5): rank 40
        assert_eq!(one.task_params(task), vec![4, 4, 4, 5]);
        assert_eq!(one.optimal_return(task), 1.0);
        // Two steps: stay on the key, step onto the door.
        assert_eq!(KeyToDoor::new(9, 2).optimal_return(task), 2.0);
        assert_eq!(rewards(&run(&one, task, &[4])), vec![1.0]);
    }

    #[test]
    fn scripted_key_to_door_path_earns_the_optimum() {
        // Start → key → door, then stay: 2 in every task, the door paid exactly at step
        // steps_to_door (the last step of the walk), and the episode ends at step 50.
        let env = KeyToDoor::new(9, 50);
        for task in 0..env.n_tasks() {
            let (key, door) = env.key_door(task);
            let mut acts = walk((4, 4), key);
            acts.extend(walk(key, door));
            let reach = acts.len();
            assert_eq!(reach, env.steps_to_door(task));
            acts.resize(50, 4);
            let steps = run(&env, task, &acts);
            let ret: f32 = steps.iter().map(|s| s.1).sum();
            assert_eq!(ret, env.optimal_return(task), "task {task}");
            assert_eq!(
                steps[reach - 1].1,
                1.0,
                "task {task}: the door pays on arrival"
            );
            assert!(steps[49].2 && steps[..49].iter().all(|s| !s.2));
        }
    }

    #[test]
    fn horizon_needed_is_the_farthest_task() {
        // By hand: 9 × 9, 8 + 16 = 24; 17 × 17 Dark Room Hard, 8 + 8 = 16; 2 × 2 Key-to-Door,
        // centre (1,1): key (0,0) 2 steps, door (1,1) 2 more = 4.
        assert_eq!(EnvName::KeyToDoor.horizon_needed(9), Some(24));
        assert_eq!(EnvName::DarkroomHard.horizon_needed(17), Some(16));
        assert_eq!(EnvName::KeyToDoor.horizon_needed(2), Some(4));
        assert_eq!(EnvName::Darkroom.horizon_needed(9), None);
        // And by enumeration on small grids, even and odd.
        for g in 2..=7 {
            let k2d = KeyToDoor::new(g, 1);
            let far = (0..k2d.n_tasks()).map(|t| k2d.steps_to_door(t)).max();
            assert_eq!(far, EnvName::KeyToDoor.horizon_needed(g), "grid {g}");
            let hard = DarkRoomHard::new(g, 1);
            let far = (0..hard.n_tasks())
                .map(|t| steps_to(centre(g), hard.goal(t)))
                .max();
            assert_eq!(far, EnvName::DarkroomHard.horizon_needed(g), "grid {g}");
            // With exactly that horizon every task earns its whole optimum.
            let need = far.unwrap();
            let k2d = KeyToDoor::new(g, EnvName::KeyToDoor.horizon_needed(g).unwrap());
            assert!((0..k2d.n_tasks()).all(|t| k2d.optimal_return(t) == 2.0));
            let hard = DarkRoomHard::new(g, need);
            assert!((0..hard.n_tasks()).all(|t| hard.optimal_return(t) == 1.0));
        }
    }

    #[test]
    fn darkroom_hard_pays_the_goal_once() {
        let env = DarkRoomHard::new(17, 20);
        assert_eq!((env.n_tasks(), env.name()), (289, "darkroom-hard"));
        // Goal (8,10): task 8·17 + 10 = 146. Two col+1 from (8,8) pay once; staying, leaving
        // and coming back pay nothing more.
        assert_eq!(env.task_params(146), vec![8, 10]);
        let steps = run(&env, 146, &[2, 2, 4, 3, 2, 4]);
        assert_eq!(steps[1].0, (8, 10));
        assert_eq!(steps[4].0, (8, 10));
        assert_eq!(rewards(&steps), vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // Goal under the start (8,8) = task 144: the first "stay" pays, later ones do not.
        assert_eq!(rewards(&run(&env, 144, &[4, 4, 4])), vec![1.0, 0.0, 0.0]);
        // Stepping off first: coming back pays.
        assert_eq!(rewards(&run(&env, 144, &[0, 1, 4])), vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn darkroom_hard_walls_and_horizon() {
        let env = DarkRoomHard::new(17, 20);
        // Goal (0,0) = task 0, 16 steps away: eight row-1 and eight col-1 reach it at step 16;
        // a ninth row-1 is clipped at the wall and stays there without paying again.
        let mut acts = vec![1; 8];
        acts.extend([3; 8]);
        acts.extend([1, 3, 4, 4]);
        let steps = run(&env, 0, &acts);
        assert_eq!(steps[7].0, (0, 8));
        assert_eq!(steps[15].0, (0, 0));
        assert_eq!(steps[16].0, (0, 0));
        let r = rewards(&steps);
        assert_eq!(r[15], 1.0);
        assert_eq!(r.iter().sum::<f32>(), 1.0);
        assert_eq!(r.iter().sum::<f32>(), env.optimal_return(0));
        let dones: Vec<_> = steps.iter().map(|s| s.2).collect();
        assert!(dones[..19].iter().all(|d| !d) && dones[19]);
        // Bottom-right: goal (16,16) = task 288, eight row+1 and eight col+1.
        let mut acts = walk((8, 8), (16, 16));
        acts.extend([0, 2]);
        let steps = run(&env, 288, &acts);
        assert_eq!(steps[17].0, (16, 16));
        assert_eq!(rewards(&steps).iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn darkroom_hard_optimal_returns() {
        let env = DarkRoomHard::new(17, 20);
        // Every goal is at most 16 steps from (8,8): all 1; a walk there earns it.
        for task in 0..289 {
            assert_eq!(env.optimal_return(task), 1.0);
            let mut acts = walk((8, 8), env.goal(task));
            acts.resize(20, 4);
            let ret: f32 = rewards(&run(&env, task, &acts)).iter().sum();
            assert_eq!(ret, 1.0, "task {task}");
        }
        // 15 steps: (0,0) is 16 away → 0; (0,1) is 15 away → 1.
        let short = DarkRoomHard::new(17, 15);
        assert_eq!(short.optimal_return(0), 0.0);
        assert_eq!(short.optimal_return(1), 1.0);
    }

    #[test]
    fn new_envs_do_not_claim_their_state_from_the_observation() {
        // Holding the key / having reached the goal is not observed: no one-step replay.
        assert_eq!(KeyToDoor::new(9, 50).state_of(&[4, 4]), None);
        assert_eq!(DarkRoomHard::new(17, 20).state_of(&[8, 8]), None);
        assert!(KeyToDoor::new(9, 50).contains(&[8, 8]));
        assert!(!KeyToDoor::new(9, 50).contains(&[9, 0]));
        assert_eq!(KeyToDoor::new(9, 50).state_index(&[2, 3]), 21);
    }

    #[test]
    fn key_to_door_and_hard_splits_are_seeded_samples() {
        let env = KeyToDoor::new(9, 50);
        let cfg = EnvConfig {
            name: EnvName::KeyToDoor,
            horizon: 50,
            n_train_tasks: 1000,
            n_test_tasks: 50,
            ..EnvConfig::default()
        };
        let (train, test) = split_tasks(&cfg, &env, env.n_tasks()).unwrap();
        assert_eq!((train.len(), test.len()), (1000, 50));
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 1050, "disjoint, no repeats");
        assert!(all.iter().all(|&t| t < 6480));
        // Spread over the whole family, not its first key's tasks.
        assert!(test.iter().any(|&t| t >= 3240));
        assert_eq!(
            split_tasks(&cfg, &env, 6480).unwrap(),
            (train.clone(), test)
        );
        let other = EnvConfig {
            split_seed: 1,
            ..cfg.clone()
        };
        assert_ne!(split_tasks(&other, &env, 6480).unwrap().0, train);
        // An explicit held-out pair by its parameters.
        let listed = EnvConfig {
            test_tasks: vec![vec![4, 6, 2, 6]],
            ..cfg
        };
        let (train, test) = split_tasks(&listed, &env, 6480).unwrap();
        assert_eq!((train.len(), test), (6479, vec![3384]));
        // Dark Room Hard: 0.9 of 289 = 260.1 → 260 train, 29 held out.
        let hard = DarkRoomHard::new(17, 20);
        let cfg = EnvConfig {
            name: EnvName::DarkroomHard,
            grid: 17,
            ..EnvConfig::default()
        };
        let (train, test) = split_tasks(&cfg, &hard, hard.n_tasks()).unwrap();
        assert_eq!((train.len(), test.len()), (260, 29));
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..289).collect::<Vec<_>>());
    }

    #[test]
    fn vec_env_auto_reset_clears_the_flags() {
        // 3 × 3, centre (1,1), 2-step episodes. Key (1,2) = cell 5, door (0,2) = cell 2 < 5:
        // task 8·5 + 2 = 42. Right onto the key, up onto the door: 1 and 1, then the reset.
        let env = KeyToDoor::new(3, 2);
        assert_eq!(env.task_params(42), vec![1, 2, 0, 2]);
        let hard = DarkRoomHard::new(3, 2);
        let mut v = VecEnv::new(&env, vec![42]);
        let (mut nobs, mut obs, mut r, mut d) = ([0; 2], [0; 2], [0.0], [false]);
        for episode in 0..2 {
            v.step(&[2], &mut nobs, &mut obs, &mut r, &mut d);
            assert_eq!((nobs, r, d), ([1, 2], [1.0], [false]), "episode {episode}");
            v.step(&[1], &mut nobs, &mut obs, &mut r, &mut d);
            assert_eq!((nobs, r, d), ([0, 2], [1.0], [true]), "episode {episode}");
            assert_eq!(obs, [1, 1]);
            assert_eq!(
                v.states[0].flags, 0,
                "the reset forgets the key and the door"
            );
        }
        // Dark Room Hard, goal (1,1) under the start = task 4: stay pays 1 each episode.
        let mut v = VecEnv::new(&hard, vec![4]);
        for episode in 0..2 {
            v.step(&[4], &mut nobs, &mut obs, &mut r, &mut d);
            assert_eq!(r, [1.0], "episode {episode}");
            v.step(&[4], &mut nobs, &mut obs, &mut r, &mut d);
            assert_eq!((r, d), ([0.0], [true]), "episode {episode}");
            assert_eq!(v.states[0].flags, 0);
        }
    }

    #[test]
    fn make_env_builds_every_family() {
        for (name, grid, horizon, tasks) in [
            (EnvName::Darkroom, 9, 20, 81),
            (EnvName::DarkroomPermuted, 9, 20, 120),
            (EnvName::DarkroomHard, 17, 20, 289),
            (EnvName::KeyToDoor, 9, 50, 6480),
        ] {
            let cfg = EnvConfig {
                name,
                grid,
                horizon,
                ..EnvConfig::default()
            };
            let env = make_env(&cfg);
            assert_eq!(env.name(), name.as_str());
            assert_eq!(env.n_tasks(), tasks);
            assert_eq!(env.n_tasks(), name.task_count(grid));
            assert_eq!((env.obs_dim(), env.n_actions()), (2, 5));
            assert_eq!(env.n_states(), grid * grid);
        }
    }
}
