//! The experiment runner: arms × training seeds, each trained and evaluated on an equal
//! budget, reported as means with confidence intervals (`cargo run --release -p train --bin
//! experiment -- configs/experiments/NAME.toml`).
//!
//! - [`file`]: the experiment file (arms, baseline, seeds, budget) and the label budget's steps.
//! - [`plan`]: each arm's config, the distinct datasets, the cells, the source learners' curve.
//! - [`stage`]: collect / train / evaluate as child processes of the runner.
//! - [`runner`]: running the plan, resumable, recording every command (`manifest.json`).
//! - [`protocol`]: writes `protocol.json`.
//! - [`report`]: the result files from the finished cells.
//! - [`stats`]: mean, standard deviation, standard error, Student-t quantiles, paired
//!   differences with 95% intervals.
//! - [`metrics`]: what one cell (arm × training seed) scored, and each arm's means over seeds.
//! - [`outputs`]: `summary.csv`, `per_seed.csv`, `paired.csv`, `report.md`, `curves.png`, each
//!   written atomically.

pub mod file;
pub mod metrics;
pub mod outputs;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod runner;
pub mod stage;
pub mod stats;
