//! `cargo run --release -p evaluate --bin report -- runs/A runs/B [--name NAME] [--out DIR]`:
//! compare evaluated training runs (e.g. standard AD's window context against the compressed
//! one) in `runs/report-<name>/report.md` and `curves.png`.
//!
//! - [`inputs`]: a run folder's `train_stats.json`, `config.toml`, `eval/summary.json` and
//!   `eval/eval_result.npy`, read and cross-checked.
//! - [`curves`]: mean normalised return per episode, its standard error, episodes to 80%.
//! - [`markdown`]: the tables.
//! - [`plot`]: the PNG.

mod curves;
mod inputs;
mod markdown;
mod plot;

use std::path::{Path, PathBuf};

use ccad_core::{Error, Result};
use clap::Parser;

use crate::curves::Curve;
use crate::inputs::load_run;

pub const REPORT_FILE: &str = "report.md";
pub const CURVES_FILE: &str = "curves.png";

#[derive(Parser)]
#[command(about = "Compare evaluated runs: in-context learning curves, speed and memory")]
struct Args {
    /// Run folders (each trained and evaluated); the first is the baseline of the relative table.
    #[arg(required = true, value_name = "RUN_DIR")]
    runs: Vec<PathBuf>,
    /// Report name: output in `<first run's parent>/report-<name>/` (default: the run names
    /// joined by "-vs-").
    #[arg(long)]
    name: Option<String>,
    /// Output folder (overrides the one --name picks).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// What [`write_report`] wrote.
#[derive(Debug)]
pub struct Written {
    pub dir: PathBuf,
    pub markdown: String,
    /// The font the plot's text used; `None`: the plot has no text.
    pub font: Option<&'static Path>,
}

/// Read `runs`, write `report.md` and `curves.png` (atomically) into `out`, or
/// `<first run's parent>/report-<name>`.
pub fn write_report(runs: &[PathBuf], name: Option<&str>, out: Option<&Path>) -> Result<Written> {
    let first = runs
        .first()
        .ok_or_else(|| Error::file(Path::new("."), "runs", "no run folder given"))?;
    let mut loaded = Vec::with_capacity(runs.len());
    for dir in runs {
        let run = load_run(dir)?;
        if let Some(other) = loaded
            .iter()
            .find(|(r, _): &&(inputs::RunRecord, Curve)| r.name == run.name)
        {
            return Err(Error::file(
                dir,
                "run",
                format!(
                    "has the same name as {}: runs are told apart by folder name",
                    other.0.dir.display()
                ),
            ));
        }
        let e = &run.eval;
        let curve = Curve::normalised(&e.returns, &e.optimal, e.n_episodes)
            .expect("load_run checked that an optimum is positive");
        loaded.push((run, curve));
    }

    let name = match name {
        Some(n) if n.is_empty() || n.contains(['/', '\\']) => {
            return Err(Error::file(
                Path::new("--name"),
                "name",
                format!("{n:?} is not a folder name"),
            ));
        }
        Some(n) => n.to_string(),
        None => loaded
            .iter()
            .map(|(r, _)| r.name.as_str())
            .collect::<Vec<_>>()
            .join("-vs-"),
    };
    let dir = match out {
        Some(o) => o.to_path_buf(),
        None => first
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("report-{name}")),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;

    let font = evaluate::plot_style::system_font();
    let labelled: Vec<(&str, &Curve)> = loaded.iter().map(|(r, c)| (r.name.as_str(), c)).collect();
    let png_path = dir.join(CURVES_FILE);
    let png = plot::learning_curves_png(&labelled, font.is_some())
        .map_err(|m| Error::file(&png_path, "plot", m))?;
    ccad_core::atomic::write_atomic(&png_path, &png)?;
    let markdown = markdown::render(&name, &loaded, CURVES_FILE);
    ccad_core::atomic::write_atomic(&dir.join(REPORT_FILE), markdown.as_bytes())?;
    Ok(Written {
        dir,
        markdown,
        font,
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    ccad_core::cli::run_main(|| {
        let w = write_report(&args.runs, args.name.as_deref(), args.out.as_deref())?;
        if w.font.is_none() {
            eprintln!(
                "warning: no TrueType font found (Debian: apt-get install fonts-dejavu-core); \
                 {CURVES_FILE} has no text"
            );
        }
        println!("{}", w.markdown);
        println!(
            "wrote {} and {}",
            w.dir.join(REPORT_FILE).display(),
            w.dir.join(CURVES_FILE).display()
        );
        Ok::<(), Error>(())
    })
}

#[cfg(test)]
mod tests;
