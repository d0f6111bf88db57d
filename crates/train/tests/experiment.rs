//! The `experiment` binary end to end on a tiny setting: two arms × two training seeds on an
//! equal label budget; every output; resuming (finished cells kept, a killed cell finished);
//! a failing cell reported while the others go on.

use std::path::{Path, PathBuf};
use std::process::Command;

use model::run_folder::TrainStats;
use train::experiment::runner::Manifest;

const CONFIG: &str = r#"
[env]
grid = 3
horizon = 4
n_tasks = 6
train_ratio = 0.67
[ppo]
n_streams = 3
n_steps = 4
minibatch_size = 6
n_epochs = 2
hidden = 8
total_steps = 32
[collect]
dataset = "tiny"
compress_interval = 4
[dataset]
n_transit = 6
prefetch = 1
[model]
d_model = 16
n_layers = 1
n_heads = 2
d_ff = 32
dropout = 0.0
objective = "dense"
[train]
batch_size = 4
warmup_steps = 2
summary_interval = 5
eval_interval = 10
ckpt_interval = 10
[eval]
episodes = 3
"#;

const EXPERIMENT: &str = r#"
baseline = "compressed"
train_seeds = [0, 1]
eval_seeds = 2
[budget]
labels = 400
[[arms]]
name = "compressed"
config = "tiny.toml"
[[arms]]
name = "window"
config = "tiny.toml"
set = ['dataset.context="window"']
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), CONFIG).unwrap();
    std::fs::write(dir.path().join("x.toml"), EXPERIMENT).unwrap();
    dir
}

fn run(dir: &Path) -> (bool, String) {
    run_with(dir, &[])
}

fn run_with(dir: &Path, flags: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_experiment"))
        .arg("x.toml")
        .args(flags)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root(dir: &Path) -> PathBuf {
    dir.join("runs/experiment-x")
}

fn manifest(dir: &Path) -> Manifest {
    serde_json::from_str(&std::fs::read_to_string(root(dir).join("manifest.json")).unwrap())
        .unwrap()
}

fn stage_count(m: &Manifest, stage: &str) -> usize {
    m.commands
        .iter()
        .filter(|c| c.argv.get(2).is_some_and(|s| s == stage))
        .count()
}

fn stats(dir: &Path, arm: &str, seed: u64) -> TrainStats {
    let path = root(dir).join(format!("cells/{arm}/seed-{seed}/train_stats.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn an_experiment_runs_resumes_and_reports() {
    let dir = setup();
    let d = dir.path();
    let (ok, err) = run(d);
    assert!(ok, "{err}");
    let r = root(d);
    for f in [
        "report.md",
        "summary.csv",
        "per_seed.csv",
        "paired.csv",
        "curves.png",
        "protocol.json",
        "manifest.json",
    ] {
        assert!(r.join(f).is_file(), "{f} missing; stderr: {err}");
    }
    // One dataset for both arms (the context is not part of collection), 4 cells.
    let m = manifest(d);
    assert_eq!(stage_count(&m, "collect"), 1);
    assert_eq!(
        (stage_count(&m, "train"), stage_count(&m, "evaluate")),
        (4, 4)
    );
    assert!(m.commands.iter().all(|c| c.status == Some(0)));
    // Every command names the code that ran it, and the report says which code produced it.
    assert!(m.commands.iter().all(|c| c.commit == train::BUILD_COMMIT));
    let datasets: Vec<_> = std::fs::read_dir(d.join("datasets")).unwrap().collect();
    assert_eq!(datasets.len(), 1);

    // Equal labels: each arm's steps come from its own labels per sequence, and what each
    // trained is the budget within half a batch of that arm's sequences.
    let protocol: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.join("protocol.json")).unwrap()).unwrap();
    for arm in protocol["arms"].as_array().unwrap() {
        let name = arm["name"].as_str().unwrap();
        let lps = arm["labels_per_sample"].as_f64().unwrap();
        let half_batch = 4.0 * lps / 2.0;
        for seed in [0, 1] {
            let s = stats(d, name, seed);
            assert_eq!(s.steps_done as u64, arm["steps"].as_u64().unwrap());
            let trained = s.labels_trained as f64;
            // A pass's labels are exact; a partial pass may differ from the mean by part of a
            // batch, so allow one whole batch of this arm's sequences.
            assert!(
                (trained - 400.0).abs() <= 2.0 * half_batch,
                "{name} seed {seed}: {trained} labels for a budget of 400"
            );
        }
    }
    let steps: Vec<u64> = protocol["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["steps"].as_u64().unwrap())
        .collect();
    assert_ne!(
        steps[0], steps[1],
        "window sequences carry more labels: fewer steps"
    );

    let per_seed = std::fs::read_to_string(r.join("per_seed.csv")).unwrap();
    assert_eq!(per_seed.lines().count(), 1 + 4);
    let summary = std::fs::read_to_string(r.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 1 + 2);
    let paired = std::fs::read_to_string(r.join("paired.csv")).unwrap();
    assert!(
        paired
            .lines()
            .skip(1)
            .all(|l| l.starts_with("window,compressed,"))
    );
    let report = std::fs::read_to_string(r.join("report.md")).unwrap();
    assert!(report.contains("Cells finished: 4 of 4."), "{report}");
    assert!(
        report.contains(&format!("ran on code at `{}`", train::BUILD_COMMIT)),
        "{report}"
    );

    // Again: everything is done, nothing runs.
    let (ok, err) = run(d);
    assert!(ok, "{err}");
    assert_eq!(manifest(d).commands.len(), m.commands.len());
    assert_eq!(err.matches("done earlier").count(), 4, "{err}");

    // A cell killed after training (its record and evaluation gone): only it runs again;
    // its training has nothing left to do, its evaluation runs.
    let cell = r.join("cells/window/seed-1");
    std::fs::remove_file(cell.join("cell.json")).unwrap();
    std::fs::remove_dir_all(cell.join("eval")).unwrap();
    let (ok, err) = run(d);
    assert!(ok, "{err}");
    let m2 = manifest(d);
    assert_eq!(m2.commands.len(), m.commands.len() + 2);
    assert!(cell.join("eval/summary.json").is_file());
    assert_eq!(stats(d, "window", 1).steps_done as u64, steps[1]);

    // Evaluating the finished cells again: four evaluations join the manifest, no training;
    // each record keeps its training's wall time; the same checkpoints and evaluation seeds
    // give the same per-seed results.
    let done = |arm: &str, seed: u64| -> serde_json::Value {
        let path = r.join(format!("cells/{arm}/seed-{seed}/cell.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let before = done("compressed", 0);
    let per_seed_before = std::fs::read_to_string(r.join("per_seed.csv")).unwrap();
    let (ok, err) = run_with(d, &["--reevaluate"]);
    assert!(ok, "{err}");
    assert_eq!(err.matches("evaluated again").count(), 4, "{err}");
    let m3 = manifest(d);
    assert_eq!(m3.commands.len(), m2.commands.len() + 4);
    assert_eq!(
        stage_count(&m3, "evaluate"),
        stage_count(&m2, "evaluate") + 4
    );
    assert_eq!(stage_count(&m3, "train"), stage_count(&m2, "train"));
    let after = done("compressed", 0);
    assert_eq!(after["train_wall_s"], before["train_wall_s"]);
    assert_eq!(after["config"], before["config"]);
    assert_ne!(after["eval_wall_s"], before["eval_wall_s"]);
    let strip_walls = |csv: &str| -> Vec<String> {
        // Drop the wall-time and speed columns (the evaluation's wall time changed).
        csv.lines()
            .map(|l| l.split(',').take(9).collect::<Vec<_>>().join(","))
            .collect()
    };
    let per_seed_after = std::fs::read_to_string(r.join("per_seed.csv")).unwrap();
    assert_eq!(strip_walls(&per_seed_after), strip_walls(&per_seed_before));
}

#[test]
fn a_failing_cell_is_reported_and_the_others_go_on() {
    let dir = setup();
    let d = dir.path();
    // A stale run folder of another config where one cell will train: train refuses it.
    let stale = root(d).join("cells/window/seed-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("config.toml"), "[train]\nsteps = 1\n").unwrap();
    let (ok, err) = run(d);
    assert!(!ok, "the experiment should fail");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: ")
            && last.contains("1 of 4 failed")
            && last.contains("window seed 0"),
        "{err}"
    );
    let m = manifest(d);
    assert_eq!(stage_count(&m, "train"), 4);
    assert_eq!(stage_count(&m, "evaluate"), 3);
    assert_eq!(m.commands.iter().filter(|c| c.status != Some(0)).count(), 1);
    let report = std::fs::read_to_string(root(d).join("report.md")).unwrap();
    assert!(report.contains("Cells finished: 3 of 4."), "{report}");
    assert!(report.contains("FAILED: `window` seed 0"), "{report}");
    let per_seed = std::fs::read_to_string(root(d).join("per_seed.csv")).unwrap();
    assert_eq!(per_seed.lines().count(), 1 + 3);
}
