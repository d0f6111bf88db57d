//! Pieces of the experiment runner (arms × training seeds, trained and evaluated, reported as
//! means with confidence intervals).
//!
//! - [`stats`]: mean, standard deviation, standard error, Student-t quantiles, paired differences
//!   with 95% intervals.
//! - [`metrics`]: what one cell (arm × training seed) scored, and each arm's means over seeds.
//! - [`outputs`]: `summary.csv`, `per_seed.csv`, `paired.csv`, `report.md`, `curves.png`, each
//!   written atomically.

pub mod metrics;
pub mod outputs;
pub mod stats;
