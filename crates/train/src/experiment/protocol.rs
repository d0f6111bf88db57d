//! `protocol.json`: what an experiment ran — its file, every arm's resolved config and
//! budget, the datasets with their content hashes, the seeds, and the code's commit.

use std::path::Path;

use ccad_core::Result;
use ccad_core::atomic::write_atomic;
use serde::Serialize;

use super::file::Experiment;
use ccad_core::hash::file_hash;

use super::plan::{ArmPlan, Cell};

#[derive(Serialize)]
struct Protocol<'a> {
    experiment: &'a Experiment,
    /// The experiment file as it was read.
    file_text: String,
    /// The commit of the binary that wrote this file (`crate::BUILD_COMMIT`).
    build_commit: String,
    arms: Vec<ArmRecord>,
    cells: &'a [Cell],
}

#[derive(Serialize)]
struct ArmRecord {
    name: String,
    dataset: String,
    /// 64-bit FNV-1a of the dataset file's bytes.
    dataset_hash: String,
    labels_per_sample: f64,
    steps: usize,
    /// steps × batch × labels per sample.
    labels_planned: f64,
    /// The arm's resolved config (a cell adds its `train.seed`, `train.run`, `train.steps`).
    config: String,
}

/// Write `protocol.json` in `root`.
pub fn write(exp: &Experiment, arms: &[ArmPlan], cells: &[Cell], root: &Path) -> Result<()> {
    let mut records = Vec::with_capacity(arms.len());
    for arm in arms {
        let cell = cells
            .iter()
            .find(|c| c.arm == arm.name)
            .expect("every arm has cells");
        records.push(ArmRecord {
            name: arm.name.clone(),
            dataset: arm.config.dataset_path().display().to_string(),
            dataset_hash: file_hash(&arm.config.dataset_path())?,
            labels_per_sample: cell.labels_per_sample,
            steps: cell.steps,
            labels_planned: cell.steps as f64
                * arm.config.train.batch_size as f64
                * cell.labels_per_sample,
            config: arm.config.to_toml_string(),
        });
    }
    let protocol = Protocol {
        experiment: exp,
        file_text: std::fs::read_to_string(&exp.file).unwrap_or_default(),
        build_commit: crate::BUILD_COMMIT.to_string(),
        arms: records,
        cells,
    };
    let text = serde_json::to_string_pretty(&protocol).expect("protocol serialises");
    write_atomic(&root.join("protocol.json"), text.as_bytes())
}
