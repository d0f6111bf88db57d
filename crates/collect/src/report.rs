//! The end-of-run summary: speed, and each learner's first- and last-region mean return as a
//! fraction of its task's optimal return.

use std::fmt;

use ccad_core::env::Environment;

use crate::ppo::{Learned, finite_mean};

#[derive(Debug, Clone)]
pub struct TaskRow {
    pub task: usize,
    pub params: Vec<i32>,
    pub optimal: f64,
    /// Mean return of the first region, as a fraction of optimal.
    pub first: f64,
    pub last: f64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<TaskRow>,
    pub param_name: String,
    pub seconds: f64,
    /// Environment steps of all learners together.
    pub env_steps: usize,
}

impl Report {
    pub fn new(env: &dyn Environment, learned: &Learned, env_steps: usize) -> Self {
        let last = learned.returns.len().saturating_sub(1);
        let frac = |k: usize, g: usize, opt: f64| {
            let r = learned.returns.get(k).map_or(f64::NAN, |v| v[g]);
            if opt > 0.0 { r / opt } else { f64::NAN }
        };
        let rows = learned
            .tasks
            .iter()
            .enumerate()
            .map(|(g, &task)| {
                let optimal = env.optimal_return(task) as f64;
                TaskRow {
                    task,
                    params: env.task_params(task),
                    optimal,
                    first: frac(0, g, optimal),
                    last: frac(last, g, optimal),
                }
            })
            .collect();
        Self {
            rows,
            param_name: env.task_param_name().to_string(),
            seconds: learned.seconds,
            env_steps,
        }
    }

    pub fn first_mean(&self) -> f64 {
        finite_mean(&self.rows.iter().map(|r| r.first).collect::<Vec<_>>())
    }

    pub fn last_mean(&self) -> f64 {
        finite_mean(&self.rows.iter().map(|r| r.last).collect::<Vec<_>>())
    }

    pub fn steps_per_second(&self) -> f64 {
        self.env_steps as f64 / self.seconds.max(1e-9)
    }

    pub fn seconds_per_task(&self) -> f64 {
        self.seconds / self.rows.len().max(1) as f64
    }

    /// One line of speed figures.
    pub fn speed_line(&self) -> String {
        format!(
            "{} learners, {} env steps in {:.1} s: {:.0} env-steps/s, {:.2} s per task",
            self.rows.len(),
            self.env_steps,
            self.seconds,
            self.steps_per_second(),
            self.seconds_per_task()
        )
    }
}

impl fmt::Display for Report {
    /// The per-task table (four tasks a line), then the means over tasks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "return / optimal, first region → last region, per task ({}):",
            self.param_name
        )?;
        for chunk in self.rows.chunks(4) {
            let cells: Vec<String> = chunk
                .iter()
                .map(|r| {
                    let p: Vec<String> = r.params.iter().map(i32::to_string).collect();
                    format!(
                        "{:>3} {:<7} {:>3.0}% → {:>3.0}%",
                        r.task,
                        format!("({})", p.join(",")),
                        100.0 * r.first,
                        100.0 * r.last
                    )
                })
                .collect();
            writeln!(f, "  {}", cells.join("   "))?;
        }
        writeln!(
            f,
            "mean over {} tasks: first region {:.1}% of optimal, last region {:.1}% of optimal",
            self.rows.len(),
            100.0 * self.first_mean(),
            100.0 * self.last_mean()
        )?;
        write!(f, "{}", self.speed_line())
    }
}
