//! What a rollout's returns say: per-environment and per-task curves, the mean in-context
//! learning curve, its normalised form, first/last-10 means, and a printable table.
//!
//! Normalised return = return / the task's optimal return, averaged over environments whose
//! optimum is positive (a task whose optimum is 0 cannot be normalised; Dark Room with its
//! default horizon has none).

use serde::{Deserialize, Deserializer, Serialize};

use crate::rollout::RolloutResult;

/// Episodes averaged by the `first10` / `last10` numbers.
pub const EDGE: usize = 10;

/// How the evaluation ran, recorded beside its numbers.
/// `summary.json` is written by [`Summary::to_json`] and read back (by the report) as this same
/// type; fields added later default when an older file lacks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EvalInfo {
    pub run: String,
    pub checkpoint: String,
    /// Training step of the checkpoint, when its folder name says it.
    pub checkpoint_step: Option<u64>,
    pub env: String,
    pub task_set: String,
    pub context: String,
    /// Token layout: "query" or "dense" (`model.objective`); empty in summaries written
    /// before the dense objective existed.
    #[serde(default)]
    pub objective: String,
    pub compress_interval: usize,
    pub boundary: String,
    pub greedy: bool,
    pub temperature: f64,
    pub episodes: usize,
    pub seeds: usize,
    pub backend: String,
    /// What computed the logits: "native" (the native decoder) or "burn" (`--engine`);
    /// empty in summaries written before the engine was recorded.
    #[serde(default)]
    pub engine: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSummary {
    pub task: usize,
    /// The task's parameters under the environment's name for them (e.g. `goal: [row, col]`).
    pub param_name: String,
    pub params: Vec<i32>,
    pub seed: u64,
    pub optimal_return: f32,
    pub returns: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub task: usize,
    pub param_name: String,
    pub params: Vec<i32>,
    pub optimal_return: f32,
    /// Mean over the task's seeds, per episode index.
    #[serde(deserialize_with = "curve")]
    pub mean_return: Vec<f64>,
    #[serde(deserialize_with = "number")]
    pub first10_mean: f64,
    #[serde(deserialize_with = "number")]
    pub last10_mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub info: EvalInfo,
    pub n_envs: usize,
    pub n_episodes: usize,
    /// Mean over all environments, per episode index.
    #[serde(deserialize_with = "curve")]
    pub mean_return: Vec<f64>,
    /// Mean of return / optimal over environments with a positive optimum, per episode index.
    #[serde(deserialize_with = "curve")]
    pub normalized_return: Vec<f64>,
    #[serde(deserialize_with = "number")]
    pub first10_mean: f64,
    #[serde(deserialize_with = "number")]
    pub last10_mean: f64,
    #[serde(deserialize_with = "number")]
    pub first10_normalized: f64,
    #[serde(deserialize_with = "number")]
    pub last10_normalized: f64,
    pub tasks: Vec<TaskSummary>,
    pub envs: Vec<EnvSummary>,
    /// What acting cost (absent in older files).
    #[serde(default)]
    pub cost: EvalCost,
    /// The environment's milestones (`Environment::milestones`): per episode index, the share
    /// of environments whose return reached each (absent in older files and where the
    /// environment has none).
    #[serde(default)]
    pub milestones: Vec<MilestoneCurve>,
}

/// The share of environments whose episode return reached `threshold`, per episode index, and
/// when they reached it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MilestoneCurve {
    pub name: String,
    pub threshold: f32,
    pub reached: Vec<f64>,
    pub first10: f64,
    pub last10: f64,
    /// Per episode index, the mean over the environments that reached the milestone of the
    /// step (from 1) at which their return first reached it; NaN (`null`) where none did or
    /// steps were not recorded (absent in older files).
    #[serde(default, deserialize_with = "curve")]
    pub step: Vec<f64>,
    /// The same mean over every (environment, episode) of the last 10 episodes that reached it.
    #[serde(default = "not_recorded", deserialize_with = "number")]
    pub last10_step: f64,
}

fn not_recorded() -> f64 {
    f64::NAN
}

/// The model's work per action during the rollout, counted from the contexts and the model's
/// dimensions (the same for every engine: what a key/value cache computes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct EvalCost {
    /// Context tokens (query included) the action's token attended to: mean and most.
    pub tokens_attended_mean: f64,
    pub tokens_attended_max: usize,
    /// [`model::AdModelConfig::decode_flops`] of the rollout over its actions.
    pub flops_per_action: f64,
}

impl EvalCost {
    pub fn new(stats: &crate::RolloutStats, model: &model::AdModelConfig) -> Self {
        let reads = stats.reads.max(1) as f64;
        Self {
            tokens_attended_mean: stats.keys_read as f64 / reads,
            tokens_attended_max: stats.keys_read_max,
            flops_per_action: model.decode_flops(
                stats.tokens_decoded,
                stats.keys_decoded,
                stats.reads,
            ) / reads,
        }
    }
}

/// A number, or `null` read back as the NaN it was written from (JSON has no NaN).
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// [`number`] for every entry of a curve.
fn curve<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v = Vec::<Option<f64>>::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// Mean of each column of `rows` (all the same length).
fn column_means<'a>(rows: impl Iterator<Item = &'a [f32]> + Clone, len: usize) -> Vec<f64> {
    let n = rows.clone().count().max(1) as f64;
    (0..len)
        .map(|j| rows.clone().map(|r| r[j] as f64).sum::<f64>() / n)
        .collect()
}

/// Mean of the first `k` values (all when fewer); NaN when empty.
pub fn head_mean(v: &[f64], k: usize) -> f64 {
    let h = &v[..k.min(v.len())];
    h.iter().sum::<f64>() / h.len() as f64
}

/// Mean of the last `k` values (all when fewer); NaN when empty.
pub fn tail_mean(v: &[f64], k: usize) -> f64 {
    let t = &v[v.len() - k.min(v.len())..];
    t.iter().sum::<f64>() / t.len() as f64
}

impl Summary {
    /// `params(task)`: the environment's task parameters; `param_name` their name.
    pub fn new(
        result: &RolloutResult,
        param_name: &str,
        params: impl Fn(usize) -> Vec<i32>,
        info: EvalInfo,
    ) -> Self {
        let n_episodes = result.n_episodes();
        let envs: Vec<EnvSummary> = (0..result.n_envs())
            .map(|i| EnvSummary {
                task: result.tasks[i],
                param_name: param_name.to_string(),
                params: params(result.tasks[i]),
                seed: result.seeds[i],
                optimal_return: result.optimal[i],
                returns: result.returns[i].clone(),
            })
            .collect();
        let mean_return = column_means(envs.iter().map(|e| e.returns.as_slice()), n_episodes);
        let normalised: Vec<Vec<f32>> = envs
            .iter()
            .filter(|e| e.optimal_return > 0.0)
            .map(|e| e.returns.iter().map(|r| r / e.optimal_return).collect())
            .collect();
        let normalized_return = if normalised.is_empty() {
            vec![f64::NAN; n_episodes]
        } else {
            column_means(normalised.iter().map(Vec::as_slice), n_episodes)
        };

        let mut order: Vec<usize> = Vec::new();
        for &t in &result.tasks {
            if !order.contains(&t) {
                order.push(t);
            }
        }
        let tasks = order
            .into_iter()
            .map(|task| {
                let mine = envs.iter().filter(|e| e.task == task);
                let mean_return =
                    column_means(mine.clone().map(|e| e.returns.as_slice()), n_episodes);
                let first = mine.clone().next().expect("task has an environment");
                TaskSummary {
                    task,
                    param_name: param_name.to_string(),
                    params: first.params.clone(),
                    optimal_return: first.optimal_return,
                    first10_mean: head_mean(&mean_return, EDGE),
                    last10_mean: tail_mean(&mean_return, EDGE),
                    mean_return,
                }
            })
            .collect();
        Self {
            info,
            n_envs: envs.len(),
            n_episodes,
            first10_mean: head_mean(&mean_return, EDGE),
            last10_mean: tail_mean(&mean_return, EDGE),
            first10_normalized: head_mean(&normalized_return, EDGE),
            last10_normalized: tail_mean(&normalized_return, EDGE),
            mean_return,
            normalized_return,
            tasks,
            envs,
            cost: EvalCost::default(),
            milestones: Vec::new(),
        }
    }

    /// Add the share of environments reaching each `(name, threshold)` per episode, and from
    /// `steps` (`RolloutResult::milestone_steps` for these milestones; empty if not recorded)
    /// the step at which they reached it.
    pub fn with_milestones(mut self, milestones: &[(&str, f32)], steps: &[Vec<Vec<u32>>]) -> Self {
        let n = self.envs.len().max(1) as f64;
        let recorded = steps.len() == self.envs.len()
            && steps.iter().all(|s| {
                s.len() >= self.n_episodes && s.iter().all(|e| e.len() == milestones.len())
            });
        // Steps at which the milestone was reached in episodes `episodes`, over environments.
        let steps_in = |m: usize, episodes: std::ops::Range<usize>| -> Vec<f64> {
            if !recorded {
                return Vec::new();
            }
            steps
                .iter()
                .flat_map(|s| s[episodes.clone()].iter().map(move |e| e[m]))
                .filter(|&at| at > 0)
                .map(f64::from)
                .collect()
        };
        let mean_or_nan = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        self.milestones = milestones
            .iter()
            .enumerate()
            .map(|(m, &(name, threshold))| {
                let reached: Vec<f64> = (0..self.n_episodes)
                    .map(|k| {
                        let hits = self.envs.iter().filter(|e| e.returns[k] >= threshold);
                        hits.count() as f64 / n
                    })
                    .collect();
                let step = (0..self.n_episodes)
                    .map(|k| mean_or_nan(steps_in(m, k..k + 1)))
                    .collect();
                let tail = self.n_episodes.saturating_sub(EDGE)..self.n_episodes;
                MilestoneCurve {
                    name: name.to_string(),
                    threshold,
                    first10: head_mean(&reached, EDGE),
                    last10: tail_mean(&reached, EDGE),
                    reached,
                    step,
                    last10_step: mean_or_nan(steps_in(m, tail)),
                }
            })
            .collect();
        self
    }

    /// Pretty JSON (NaN, for a curve that cannot be normalised, becomes `null`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serialises")
    }

    /// One line per task, then the mean: the first/last-10 means and the last-10 fraction of
    /// the optimum.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:>5}  {:<18} {:>7}  {:>8}  {:>8}  {:>9}\n",
            "task",
            self.tasks
                .first()
                .map_or("params", |t| t.param_name.as_str()),
            "optimal",
            "first10",
            "last10",
            "last10/opt"
        );
        for t in &self.tasks {
            let frac = if t.optimal_return > 0.0 {
                format!("{:9.3}", t.last10_mean / t.optimal_return as f64)
            } else {
                format!("{:>9}", "-")
            };
            s += &format!(
                "{:>5}  {:<18} {:>7.1}  {:>8.2}  {:>8.2}  {frac}\n",
                t.task,
                format!("{:?}", t.params),
                t.optimal_return,
                t.first10_mean,
                t.last10_mean,
            );
        }
        s += &format!(
            "{:>5}  {:<18} {:>7}  {:>8.2}  {:>8.2}  {:9.3}   ({} envs x {} episodes; normalised first10 {:.3})\n",
            "mean",
            "",
            "",
            self.first10_mean,
            self.last10_mean,
            self.last10_normalized,
            self.n_envs,
            self.n_episodes,
            self.first10_normalized,
        );
        for m in &self.milestones {
            s += &format!(
                "episodes reaching {} (return >= {}): first10 {:.3}, last10 {:.3}",
                m.name, m.threshold, m.first10, m.last10
            );
            if m.last10_step.is_finite() {
                s += &format!(", reached at step {:.1} (mean, last10)", m.last10_step);
            }
            s += "\n";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::RolloutStats;

    /// Two tasks × two seeds, 12 episodes.
    fn hand_made() -> RolloutResult {
        // Task 7 (optimum 10), seeds 0/1: returns rise 0, 1, …, 11 and 2, 3, …, 13.
        // Task 2 (optimum 0, cannot be normalised): all 4.
        let up = |o: f32| (0..12).map(|e| e as f32 + o).collect::<Vec<_>>();
        RolloutResult {
            tasks: vec![7, 7, 2, 2],
            seeds: vec![0, 1, 0, 1],
            optimal: vec![10.0, 10.0, 0.0, 0.0],
            returns: vec![up(0.0), up(2.0), vec![4.0; 12], vec![4.0; 12]],
            milestone_steps: Vec::new(),
            actions: vec![Vec::new(); 4],
            stats: RolloutStats::default(),
        }
    }

    #[test]
    fn numbers_of_a_hand_made_result() {
        let s = Summary::new(
            &hand_made(),
            "goal",
            |t| vec![t as i32, 0],
            EvalInfo::default(),
        );
        assert_eq!((s.n_envs, s.n_episodes), (4, 12));
        // Episode e: task 7 seeds give e and e + 2 (mean e + 1), task 2 gives 4 twice:
        // mean over 4 envs = (e + e + 2 + 8) / 4 = (2e + 10) / 4.
        assert_eq!(s.mean_return[0], 2.5);
        assert_eq!(s.mean_return[11], 8.0);
        // Normalised: only task 7: (e/10 + (e+2)/10) / 2 = (e + 1) / 10.
        assert!((s.normalized_return[0] - 0.1).abs() < 1e-6);
        assert!((s.normalized_return[11] - 1.2).abs() < 1e-6);
        // First 10 episodes: mean of (2e + 10)/4 over e = 0..9 = (2·4.5 + 10)/4 = 4.75;
        // last 10 (e = 2..11, mean e 6.5): (13 + 10)/4 = 5.75.
        assert!((s.first10_mean - 4.75).abs() < 1e-9);
        assert!((s.last10_mean - 5.75).abs() < 1e-9);
        // Normalised: (mean e + 1)/10 → 0.55 and 0.75.
        assert!((s.first10_normalized - 0.55).abs() < 1e-6);
        assert!((s.last10_normalized - 0.75).abs() < 1e-6);
        // Per task, in first-appearance order.
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(
            (s.tasks[0].task, s.tasks[0].params.clone()),
            (7, vec![7, 0])
        );
        assert_eq!(s.tasks[0].mean_return[3], 4.0); // (3 + 5) / 2
        assert!((s.tasks[0].first10_mean - 5.5).abs() < 1e-9); // mean e + 1 over 0..9
        assert!((s.tasks[0].last10_mean - 7.5).abs() < 1e-9); // mean e + 1 over 2..11
        assert_eq!(s.tasks[1].last10_mean, 4.0);
        assert_eq!(s.envs[1].seed, 1);
        assert_eq!(s.envs[1].returns[0], 2.0);

        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["envs"][2]["params"], serde_json::json!([2, 0]));
        assert_eq!(json["tasks"][1]["optimal_return"], 0.0);
        let table = s.table();
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table.lines().nth(2).unwrap().trim_end().ends_with('-'),
            "{table}"
        );
    }

    #[test]
    fn milestone_shares_by_hand() {
        // Returns per episode: seed 0 of task 7 gives e, seed 1 gives e + 2, task 2 gives 4.
        // Threshold 4: episode 0 → only task 2's two envs (0, 2 < 4): 2/4 = 0.5; episode 2 →
        // 2, 4, 4, 4: 3/4; episode 4 on: all four. Threshold 12: episode 10 → 12 only (1/4),
        // episode 11 → 11, 13: 1/4; earlier none.
        let s = Summary::new(&hand_made(), "goal", |_| vec![], EvalInfo::default())
            .with_milestones(&[("four", 4.0), ("twelve", 12.0)], &[]);
        let (four, twelve) = (&s.milestones[0], &s.milestones[1]);
        assert_eq!(four.reached[..5], [0.5, 0.5, 0.75, 0.75, 1.0]);
        // First 10: (0.5 + 0.5 + 0.75 + 0.75 + 6 · 1) / 10 = 0.85; last 10 (e = 2..11):
        // (0.75 + 0.75 + 8 · 1) / 10 = 0.95.
        assert!((four.first10 - 0.85).abs() < 1e-12);
        assert!((four.last10 - 0.95).abs() < 1e-12);
        assert_eq!(twelve.reached[9..], [0.0, 0.25, 0.25]);
        assert!((twelve.last10 - 0.05).abs() < 1e-12);
        assert!(
            s.table()
                .contains("episodes reaching twelve (return >= 12): first10 0.000, last10 0.050\n")
        );
        // No steps recorded: every step NaN, and the table says nothing of them.
        assert!(four.step.iter().all(|x| x.is_nan()) && four.last10_step.is_nan());
        // Older summaries without the field read back with none.
        let mut json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        json.as_object_mut().unwrap().remove("milestones");
        let back: Summary = serde_json::from_value(json).unwrap();
        assert!(back.milestones.is_empty());
    }

    #[test]
    fn milestone_steps_by_hand() {
        // Two environments, 12 episodes, one milestone. Environment 0 reaches it at step 3 in
        // every even episode, never in odd ones; environment 1 at step 5 in episodes 0 and 11.
        let mut r = hand_made();
        r.tasks.truncate(2);
        r.seeds.truncate(2);
        r.optimal.truncate(2);
        r.returns.truncate(2);
        r.actions.truncate(2);
        let env0 = (0..12)
            .map(|k| vec![if k % 2 == 0 { 3 } else { 0 }])
            .collect();
        let env1 = (0..12)
            .map(|k| vec![if k == 0 || k == 11 { 5 } else { 0 }])
            .collect();
        r.milestone_steps = vec![env0, env1];
        let s = Summary::new(&r, "goal", |_| vec![], EvalInfo::default())
            .with_milestones(&[("m", 1.0)], &r.milestone_steps);
        let step = &s.milestones[0].step;
        // Episode 0: (3 + 5) / 2; episode 1: nobody; episode 2: 3; episode 11: 5.
        assert_eq!((step[0], step[2], step[11]), (4.0, 3.0, 5.0));
        assert!(step[1].is_nan());
        // Last 10 episodes (2..11): environment 0 at 3 in five of them, environment 1 at 5
        // once: (5 · 3 + 5) / 6.
        assert!((s.milestones[0].last10_step - 20.0 / 6.0).abs() < 1e-12);
        assert!(
            s.table().contains("reached at step 3.3 (mean, last10)"),
            "{}",
            s.table()
        );
        // NaN steps survive the JSON round trip; a file without the fields reads them as NaN.
        let back: Summary = serde_json::from_str(&s.to_json()).unwrap();
        assert!(back.milestones[0].step[1].is_nan());
        assert_eq!(back.milestones[0].step[0], 4.0);
        let mut json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        let m = &mut json["milestones"][0];
        m.as_object_mut().unwrap().remove("step");
        m.as_object_mut().unwrap().remove("last10_step");
        let old: Summary = serde_json::from_value(json).unwrap();
        assert!(old.milestones[0].step.is_empty() && old.milestones[0].last10_step.is_nan());
    }

    #[test]
    fn short_runs_average_what_there_is() {
        assert_eq!(head_mean(&[1.0, 2.0, 3.0], 10), 2.0);
        assert_eq!(tail_mean(&[1.0, 2.0, 3.0], 2), 2.5);
        assert!(head_mean(&[], 10).is_nan());
    }

    #[test]
    fn no_positive_optimum_gives_a_null_normalised_curve() {
        let mut r = hand_made();
        r.optimal = vec![0.0; 4];
        let s = Summary::new(&r, "goal", |_| vec![], EvalInfo::default());
        assert!(s.normalized_return.iter().all(|v| v.is_nan()));
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert!(json["normalized_return"][0].is_null());
    }
}
