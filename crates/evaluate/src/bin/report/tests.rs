//! The report on two hand-made run folders, its refusals, and the two shipped quick configs.

use std::path::{Path, PathBuf};

use ccad_core::config::{Config, ContextMode, Objective};
use serde_json::json;

use super::*;
use crate::plot::tests::decode;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name)
}

/// A run folder as train + evaluate leave it: `returns` row-major `[optimal.len(), episodes]`.
fn make_run(
    dir: &Path,
    context: &str,
    max_tokens: usize,
    samples_per_sec: f64,
    peak_mib: f64,
    optimal: &[f32],
    returns: &[f32],
) {
    let episodes = returns.len() / optimal.len();
    std::fs::create_dir_all(dir.join("eval")).unwrap();
    let mut cfg = Config::load(&shipped("quick.toml"), &[]).unwrap();
    cfg.dataset.context = if context == "window" {
        ContextMode::Window
    } else {
        ContextMode::Compressed
    };
    cfg.model.objective = Objective::Query;
    cfg.train.run = dir.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(dir.join("config.toml"), cfg.to_toml_string()).unwrap();
    let stats = json!({
        "backend": "flex", "context": context, "objective": "query",
        "max_context_tokens": max_tokens, "batch_size": 64, "steps_done": 2000,
        "steps_total": 2000, "samples_per_sec": samples_per_sec, "seconds_per_step": 0.5,
        // The query objective: one label per sample.
        "labels_per_sec": samples_per_sec, "labels_trained": 2000 * 64,
        "mean_tokens": 150.0, "mean_padded_len": 160.0, "peak_memory_mib": peak_mib,
        "n_params": 217416
    });
    std::fs::write(dir.join("train_stats.json"), stats.to_string()).unwrap();
    // Two seeds per task, tasks numbered by pairs, as evaluate lays them out; written by
    // evaluate's own summary writer.
    let n = optimal.len();
    let result = evaluate::RolloutResult {
        tasks: (0..n).map(|i| i / 2).collect(),
        seeds: (0..n).map(|i| (i % 2) as u64).collect(),
        optimal: optimal.to_vec(),
        returns: returns.chunks(episodes).map(<[f32]>::to_vec).collect(),
        milestone_steps: Vec::new(),
        actions: vec![Vec::new(); n],
        stats: Default::default(),
    };
    let info = evaluate::summary::EvalInfo {
        run: "x".into(),
        checkpoint: "step-00002000".into(),
        checkpoint_step: Some(2000),
        env: "darkroom".into(),
        task_set: "test".into(),
        context: context.into(),
        objective: "query".into(),
        compress_interval: 80,
        boundary: "fixed".into(),
        temperature: 1.0,
        episodes,
        seeds: 2,
        backend: "flex".into(),
        engine: "native".into(),
        ..Default::default()
    };
    let summary = evaluate::Summary::new(&result, "goal", |t| vec![t as i32, 0], info);
    std::fs::write(dir.join("eval/summary.json"), summary.to_json()).unwrap();
    evaluate::npy::write_npy(
        &dir.join("eval/eval_result.npy"),
        returns,
        optimal.len(),
        episodes,
    )
    .unwrap();
}

/// `<tmp>/runs/quick` (compressed, 4 envs × 60 episodes) and `<tmp>/runs/quick-window`
/// (window, 2 envs × 12 episodes).
fn two_runs(tmp: &Path) -> [PathBuf; 2] {
    let a = tmp.join("runs/quick");
    let b = tmp.join("runs/quick-window");
    // Run A, episode e = 0, 1, …, 59 (episode number e + 1):
    //   env 0 (optimum 10): min(e, 10)    → min(e, 10)/10
    //   env 1 (optimum 10): 5             → 0.5
    //   env 2 (optimum 20): 20            → 1.0
    //   env 3 (optimum 20): min(2e, 20)   → min(e, 10)/10
    // mean = (2·min(e, 10)/10 + 1.5)/4:
    //   episode 1 (e = 0): 1.5/4 = 0.375;   episode 9 (e = 8): 3.1/4 = 0.775 < 0.8;
    //   episode 10 (e = 9): 3.3/4 = 0.825 ≥ 0.8 → 80% first reached at episode 10;
    //   episode 50 and the last (60): 3.5/4 = 0.875.
    let ea = 60;
    let mut ra = Vec::new();
    for env in 0..4 {
        ra.extend((0..ea).map(|e| match env {
            0 => e.min(10) as f32,
            1 => 5.0,
            2 => 20.0,
            _ => (2 * e).min(20) as f32,
        }));
    }
    make_run(
        &a,
        "compressed",
        163,
        120.5,
        300.0,
        &[10.0, 10.0, 20.0, 20.0],
        &ra,
    );
    // Run B, 12 episodes, both optimum 10:
    //   env 0: min(e, 10) → min(e, 10)/10;   env 1: 4 → 0.4
    // mean = (min(e, 10)/10 + 0.4)/2: episode 1: 0.2; episode 10 (e = 9): 1.3/2 = 0.65;
    // no episode 50; last (e = 11): 1.4/2 = 0.7; the maximum is 0.7 → 80% never.
    let eb = 12;
    let mut rb: Vec<f32> = (0..eb).map(|e| e.min(10) as f32).collect();
    rb.extend(std::iter::repeat_n(4.0, eb));
    make_run(&b, "window", 240, 100.0, 500.0, &[10.0, 10.0], &rb);
    [a, b]
}

#[test]
fn report_of_two_hand_made_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = two_runs(tmp.path());
    let w = write_report(&runs, None, None).unwrap();
    assert_eq!(w.dir, tmp.path().join("runs/report-quick-vs-quick-window"));
    let md = std::fs::read_to_string(w.dir.join(REPORT_FILE)).unwrap();
    assert_eq!(md, w.markdown);
    assert!(md.starts_with("# Report: quick-vs-quick-window\n"), "{md}");
    assert!(md.contains("](curves.png)"), "{md}");
    // Numbers derived in `two_runs`; samples/s and memory from the hand-made train_stats.
    assert!(
        md.contains(
            "| quick | compressed | query | 163 | 128000 | 120.5 | 120.5 | 300 | test | 4 | 60 | 0.375 | 0.825 | 0.875 | 0.875 | 10 |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| quick-window | window | query | 240 | 128000 | 100.0 | 100.0 | 500 | test | 2 | 12 | 0.200 | 0.650 | – | 0.700 | never |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| quick | quick | flex | 64 | 2000/2000 | 0.500 | 217416 | 2000 |"),
        "{md}"
    );
    // Relative to quick: tokens 240/163 − 1 = +47.2%; labels equal (+0.0%); labels/s and
    // samples/s 100/120.5 − 1 = −17.0%;
    // memory 500/300 − 1 = +66.7%; last 0.700 − 0.875 = −0.175; 80%: never vs 10.
    assert!(md.contains("## Relative to quick"), "{md}");
    assert!(
        md.contains(
            "| quick-window | +47.2% | +0.0% | -17.0% | -17.0% | +66.7% | -0.175 | never vs 10 |"
        ),
        "{md}"
    );

    let png = std::fs::read(w.dir.join(CURVES_FILE)).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (width, height, rgb) = decode(&png);
    assert_eq!((width, height), (plot::WIDTH, plot::HEIGHT));
    // Text is drawn in black; the curves, band and target line are coloured or grey.
    let dark = rgb
        .chunks_exact(3)
        .filter(|p| p.iter().all(|&v| v < 40))
        .count();
    assert_eq!(dark > 200, w.font.is_some(), "{dark} dark pixels");
    // Only the two outputs, no temporary files left.
    assert_eq!(std::fs::read_dir(&w.dir).unwrap().count(), 2);

    // --name and --out pick the folder.
    let out = tmp.path().join("elsewhere");
    let w = write_report(&runs, Some("ab"), Some(&out)).unwrap();
    assert_eq!(w.dir, out);
    assert!(w.markdown.starts_with("# Report: ab\n"));
    let w = write_report(&runs[1..], Some("solo"), None).unwrap();
    assert_eq!(w.dir, tmp.path().join("runs/report-solo"));
    assert!(!w.markdown.contains("Relative to"), "{}", w.markdown);
}

/// The one-line error for a run folder after `spoil` changed it.
fn error_after(spoil: impl FnOnce(&Path)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let runs = two_runs(tmp.path());
    spoil(&runs[1]);
    let e = write_report(&runs, None, None).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
    assert!(
        !tmp.path()
            .join("runs/report-quick-vs-quick-window")
            .exists(),
        "nothing written on error"
    );
    e
}

#[test]
fn bad_runs_give_one_line_naming_file_and_field() {
    let e = error_after(|d| std::fs::remove_dir_all(d).unwrap());
    assert!(
        e.ends_with("quick-window: run: run folder does not exist"),
        "{e}"
    );

    let e = error_after(|d| std::fs::remove_file(d.join("eval/summary.json")).unwrap());
    assert!(
        e.ends_with("eval/summary.json: summary: missing (run evaluate first)"),
        "{e}"
    );

    let e = error_after(|d| std::fs::remove_file(d.join("train_stats.json")).unwrap());
    assert!(e.contains("train_stats.json: train_stats: missing"), "{e}");

    let e = error_after(|d| {
        let p = d.join("train_stats.json");
        let text = std::fs::read_to_string(&p).unwrap();
        let bad = text.replace("\"samples_per_sec\":100.0", "\"samples_per_sec\":\"fast\"");
        assert_ne!(bad, text);
        std::fs::write(&p, bad).unwrap();
    });
    assert!(
        e.contains("train_stats.json: samples_per_sec: invalid type"),
        "{e}"
    );

    let e = error_after(|d| {
        let p = d.join("train_stats.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("peak_memory_mib");
        std::fs::write(&p, v.to_string()).unwrap();
    });
    assert!(
        e.contains("train_stats.json: json: missing field `peak_memory_mib`"),
        "{e}"
    );

    let e = error_after(|d| std::fs::write(d.join("train_stats.json"), "{ not json").unwrap());
    assert!(e.contains("train_stats.json: json: "), "{e}");

    let e = error_after(|d| {
        let p = d.join("eval/summary.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["envs"][1]["optimal_return"] = serde_json::Value::Null;
        std::fs::write(&p, v.to_string()).unwrap();
    });
    assert!(
        e.contains("summary.json: envs[1].optimal_return: invalid type: null"),
        "{e}"
    );

    // The npy and the summary disagree on the shape.
    let e = error_after(|d| {
        evaluate::npy::write_npy(&d.join("eval/eval_result.npy"), &[0.0; 22], 2, 11).unwrap()
    });
    assert!(
        e.ends_with("eval_result.npy: shape: is [2, 11], summary.json says [2, 12]"),
        "{e}"
    );

    let e = error_after(|d| {
        let p = d.join("eval/summary.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["envs"].as_array_mut().unwrap().pop();
        std::fs::write(&p, v.to_string()).unwrap();
    });
    assert!(
        e.ends_with("summary.json: envs: has 1 entries, n_envs says 2"),
        "{e}"
    );

    let e = error_after(|d| {
        let p = d.join("train_stats.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"window\"", "\"compressed\"")).unwrap();
    });
    assert!(
        e.ends_with("train_stats.json: context: is \"compressed\", config.toml says \"window\""),
        "{e}"
    );

    let e = error_after(|d| std::fs::write(d.join("config.toml"), "[model]\nwidth = 3\n").unwrap());
    assert!(
        e.contains("config.toml: model") && e.contains("width"),
        "{e}"
    );

    let e = error_after(|d| {
        evaluate::npy::write_npy(&d.join("eval/eval_result.npy"), &[f32::NAN; 24], 2, 12).unwrap()
    });
    assert!(
        e.ends_with("eval_result.npy: values: non-finite return at [0, 0]"),
        "{e}"
    );
}

#[test]
fn refuses_two_runs_of_one_name_and_a_path_as_name() {
    let tmp = tempfile::tempdir().unwrap();
    let [a, _] = two_runs(tmp.path());
    let e = write_report(&[a.clone(), a.clone()], None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("quick: run: has the same name as"), "{e}");
    let e = write_report(&[a], Some("x/y"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--name: name: \"x/y\" is not a folder name"),
        "{e}"
    );
}

#[test]
fn quick_configs_differ_only_in_context_run_name_and_steps() {
    let compressed = Config::load(&shipped("quick.toml"), &[]).unwrap();
    let mut window = Config::load(&shipped("quick-window.toml"), &[]).unwrap();
    assert_eq!(compressed.dataset.context, ContextMode::Compressed);
    assert_eq!(window.dataset.context, ContextMode::Window);
    assert_eq!(
        (compressed.train.run.as_str(), window.train.run.as_str()),
        ("quick", "quick-window")
    );
    // Same dataset file: the comparison is over one set of learning histories.
    assert_eq!(window.dataset_path(), compressed.dataset_path());
    // Equal supervised labels: 6,000 × 16 × 80 = 7,680,000 ≈ 2,308 × 16 × 208 (a window
    // sequence carries 1,040 / 5 = 208 labels on average).
    assert_eq!((compressed.train.steps, window.train.steps), (6000, 2308));
    window.dataset.context = compressed.dataset.context;
    window.train.run = compressed.train.run.clone();
    window.train.steps = compressed.train.steps;
    assert_eq!(window, compressed);
}
