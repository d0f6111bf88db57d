//! Tests of `outputs`: the files read back, the report's text, the plot's pixels, and failed
//! writes.

use std::path::{Path, PathBuf};

use super::*;
use crate::experiment::metrics::tests::{milestone_cells, two_arms};
use crate::experiment::metrics::{arm_curves, arm_milestones, paired_rows, summarise};

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The value in `row` under column `name`.
fn column<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("{name}"));
    &row[i]
}

/// Names of everything in `dir` (to see that no temporary file was left).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn summary_csv_has_a_mean_and_sem_per_metric() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.csv");
    write_summary_csv(&summarise(&two_arms()), &path).unwrap();
    let (header, rows) = read_csv(&path);
    // arm, n_seeds; 6 return metrics × 2; first episode × 2 + reached; 9 costs × 2.
    assert_eq!(header.len(), 2 + 12 + 3 + 18);
    assert_eq!(
        &header[..4],
        ["arm", "n_seeds", "return_ep1_mean", "return_ep1_sem"]
    );
    assert_eq!(header.last().unwrap(), "eval_wall_s_sem");
    assert_eq!(rows.len(), 2);
    let (a, b) = (&rows[0], &rows[1]);
    assert_eq!((a[0].as_str(), a[1].as_str()), ("a", "2"));
    // Hand-computed in the metrics tests: ep1 2.5 ± 0.5, last-10 / optimal 0.9375 ± 0.125,
    // first episode at 80% 7 ± 1 by both seeds, labels 200 ± 100.
    assert_eq!(column(&header, a, "return_ep1_mean"), "2.5");
    assert_eq!(column(&header, a, "return_ep1_sem"), "0.5");
    assert_eq!(column(&header, a, "return_ep50_mean"), "NaN");
    assert_eq!(column(&header, a, "last10_over_optimal_mean"), "0.9375");
    assert_eq!(column(&header, a, "last10_over_optimal_sem"), "0.125");
    assert_eq!(column(&header, a, "first_episode_80pct_mean"), "7");
    assert_eq!(column(&header, a, "first_episode_80pct_reached"), "2");
    assert_eq!(column(&header, a, "labels_trained_mean"), "200");
    assert_eq!(column(&header, a, "labels_trained_sem"), "100");
    assert_eq!(column(&header, b, "first_episode_80pct_reached"), "1");
    assert_eq!(column(&header, b, "first_episode_80pct_sem"), "NaN");
    assert_eq!(entries(dir.path()), ["summary.csv"]);
}

#[test]
fn per_seed_csv_has_a_row_per_cell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("per_seed.csv");
    write_per_seed_csv(&two_arms(), &path).unwrap();
    let (header, rows) = read_csv(&path);
    assert_eq!(header.len(), 2 + 7 + 9);
    let seeds: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(seeds, [("a", "0"), ("b", "0"), ("a", "1"), ("b", "1")]);
    // Cell a/0: mean over all episodes 4.75, 80% at episode 8, 100 labels at 10/s.
    assert_eq!(column(&header, &rows[0], "mean_all_episodes"), "4.75");
    assert_eq!(column(&header, &rows[0], "first_episode_80pct"), "8");
    assert_eq!(column(&header, &rows[0], "labels_trained"), "100");
    assert_eq!(column(&header, &rows[0], "labels_per_sec"), "10");
    // Cell b/1 (the long one): episode 50 returns 49, 80% never reached (empty).
    assert_eq!(column(&header, &rows[3], "return_ep50"), "49");
    assert_eq!(column(&header, &rows[3], "first_episode_80pct"), "");
}

#[test]
fn paired_csv_has_a_row_per_arm_and_metric() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paired.csv");
    write_paired_csv(&paired_rows(&two_arms(), "a"), &path).unwrap();
    let (header, rows) = read_csv(&path);
    assert_eq!(
        header,
        [
            "arm",
            "baseline",
            "metric",
            "n",
            "mean_diff",
            "ci95_low",
            "ci95_high"
        ]
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(
        &rows[0][..5],
        ["b", "a", "mean_all_episodes", "2", "14.375"]
    );
    // 14.375 ∓ t(0.975; 1) · 9.375 = 14.375 ∓ 119.120669.
    let low: f64 = rows[0][5].parse().unwrap();
    let high: f64 = rows[0][6].parse().unwrap();
    assert!((low + 104.745669).abs() < 1e-4 && (high - 133.495669).abs() < 1e-4);
    assert_eq!(rows[2][2], "return_last");
}

#[test]
fn report_tables_round_and_mark_undefined_numbers() {
    let cells = two_arms();
    let text = render_report(
        "Experiment: test",
        "Budget: 2 seeds.\n",
        &summarise(&cells),
        &[],
        &paired_rows(&cells, "a"),
    );
    assert!(!text.contains("## Milestones"), "no milestones, no section");
    assert!(
        text.starts_with("# Experiment: test\n\nBudget: 2 seeds.\n"),
        "{text}"
    );
    // Arm a: mean over all episodes 5.25 ± 0.5, last-10 / optimal 0.9375 ± 0.125, returns at
    // ep 1 / 10 / 50 / last 2.5 / 7 / n/a / 8, 80% at 7 ± 1 by 2 of 2, 200 labels at 15/s.
    let row_a = "| a | 2 | 5.250 ± 0.500 | 0.938 ± 0.125 | 2.500 / 7.000 / n/a / 8.000 \
                 | 7.000 ± 1.000 (2/2) | 200 | 15.0 | 0.0 + 0.0 s |";
    assert!(text.contains(row_a), "{text}");
    // Arm b: one seed reached 80% (at episode 1), so its SEM is undefined.
    assert!(text.contains("| 1.000 ± n/a (1/2) |"), "{text}");
    // Paired: 14.375 with [14.375 − 119.121, 14.375 + 119.121].
    assert!(
        text.contains("| b | a | mean_all_episodes | 2 | 14.375 | [-104.746, 133.496] |"),
        "{text}"
    );
    assert!(text.contains("## What these tables cannot show"));
    assert!(text.contains("contains 0 does not rank"));
}

#[test]
fn report_without_comparisons_or_reached_targets() {
    let mut cells = two_arms();
    cells.retain(|c| c.arm == "b" && c.train_seed == 1);
    let text = render_report("t", "", &summarise(&cells), &[], &paired_rows(&cells, "b"));
    assert!(text.contains("| never (0/1) |"), "{text}");
    assert!(text.contains("No other arm to compare"), "{text}");
    assert!(
        !text.contains("\n\n\n"),
        "an empty preamble leaves no gap: {text}"
    );
    assert_eq!(fmt3(f64::NAN), "n/a");
    assert_eq!(fmt3(-0.12345), "-0.123");
    assert_eq!(rounded(f64::INFINITY, 1), "n/a");
    assert_eq!(cell_text("x|y"), "x\\|y");
}

#[test]
fn milestones_in_the_csv_and_the_report() {
    let cells = milestone_cells();
    let milestones = arm_milestones(&cells);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("milestones.csv");
    write_milestones_csv(&milestones, &path).unwrap();
    let (header, rows) = read_csv(&path);
    assert_eq!(
        header,
        [
            "arm",
            "milestone",
            "threshold",
            "episode",
            "n_seeds",
            "mean",
            "sem"
        ]
    );
    // Two milestones × three episodes; values from the metrics test's hand computation.
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[1], ["k", "key", "1", "2", "2", "0.75", "0.25"]);
    assert_eq!(rows[5], ["k", "door", "2", "3", "2", "0.75", "0.25"]);

    let text = render_report("t", "", &summarise(&cells), &milestones, &[]);
    // Key: first and last 10 (all three episodes) 0.75 ± 1/12; at ep 1 0.5, ep 10 and 50 past
    // the end, last 1; reached at step 2.825 ± 0.425.
    let key = "| k | key (return ≥ 1) | 2 | 0.750 ± 0.083 | 0.750 ± 0.083 | 0.500 / n/a / n/a / 1.000 | 2.8 ± 0.4 |";
    assert!(text.contains(key), "{text}");
    assert!(
        text.contains("| k | door (return ≥ 2) | 2 | 0.500 ± 0.000 |"),
        "{text}"
    );
    let (section, paired) = (
        text.find("## Milestones").unwrap(),
        text.find("## Paired").unwrap(),
    );
    assert!(section < paired);
}

/// A writer of one file, given its destination.
type Writer<'a> = &'a dyn Fn(&Path) -> Result<()>;

/// Every writer, on the same outcomes, each to `dest(its usual file name)`.
fn write_each(dest: impl Fn(&str) -> PathBuf) -> Vec<(&'static str, Result<()>)> {
    let cells = two_arms();
    let arms = summarise(&cells);
    let paired = paired_rows(&cells, "a");
    let curves = arm_curves(&cells);
    let milestones = arm_milestones(&milestone_cells());
    let each: [(&str, Writer); 7] = [
        ("summary.csv", &|d| write_summary_csv(&arms, d)),
        ("per_seed.csv", &|d| write_per_seed_csv(&cells, d)),
        ("paired.csv", &|d| write_paired_csv(&paired, d)),
        ("report.md", &|d| {
            write_report_md("t", "", &arms, &milestones, &paired, d)
        }),
        ("curves.png", &|d| write_curves_png(&curves, None, None, d)),
        ("milestones.csv", &|d| write_milestones_csv(&milestones, d)),
        ("milestones.png", &|d| write_milestones_png(&curves, d)),
    ];
    each.into_iter()
        .map(|(file, write)| (file, write(&dest(file))))
        .collect()
}

#[test]
fn a_failed_write_names_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    // A folder where the file should go: the temporary file is written, the rename fails.
    let dest = dir.path().join("taken");
    std::fs::create_dir(&dest).unwrap();
    for (writer, result) in write_each(|_| dest.clone()) {
        let err = result.expect_err(writer).to_string();
        assert!(err.contains(&dest.display().to_string()), "{writer}: {err}");
        assert_eq!(entries(dir.path()), ["taken"], "{writer}");
        assert!(entries(&dest).is_empty(), "{writer}");
    }
}

#[test]
fn a_folder_that_cannot_be_made_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // The destination's folder is under a plain file, so it cannot be created.
    let blocker = dir.path().join("plain-file");
    std::fs::write(&blocker, b"x").unwrap();
    for (writer, result) in write_each(|file| blocker.join("out").join(file)) {
        let err = result.expect_err(writer).to_string();
        assert!(
            err.contains(&blocker.display().to_string()),
            "{writer}: {err}"
        );
        assert_eq!(entries(dir.path()), ["plain-file"], "{writer}");
    }
}

#[test]
fn a_missing_folder_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new").join("results");
    for (writer, result) in write_each(|file| out.join(file)) {
        result.unwrap();
        assert!(out.join(writer).is_file(), "{writer}");
    }
    // The seven files and no temporaries.
    assert_eq!(
        entries(&out),
        [
            "curves.png",
            "milestones.csv",
            "milestones.png",
            "paired.csv",
            "per_seed.csv",
            "report.md",
            "summary.csv"
        ]
    );
}
