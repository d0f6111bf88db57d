//! `cargo run --release -p train --bin dataset -- datasets/quick.hdf5 --task 3`: look at a
//! learning-history file. Prints the environment (from the file's own attributes), the task
//! split, the compress interval, the task's shape and optimum, its compress-marker counts and
//! regions, every region's return for the first `--streams` streams (the sum of rewards, and
//! per episode as a fraction of the optimum) and the mean ± std over all streams; draws
//! `<file stem>-task-N.png` (one stream's rewards with region boundaries, and every region's
//! mean episode return over all streams). `--list` prints every task instead.
//!
//! The task is read through the dataset crate: replayed against the environment and cut into
//! regions by the same strict marker parser training uses, so a file this accepts loads.

mod plot;
mod summary;

#[cfg(test)]
mod fixture;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ccad_core::cli::run_main;
use ccad_core::{Error, Result};
use clap::Parser;
use evaluate::plot_style::system_font;

use summary::{File, TaskSummary, fraction, ranges};

#[derive(Parser, Debug)]
#[command(
    about = "Print a learning-history file's regions, markers and per-region returns for a \
             task, and plot them"
)]
struct Args {
    /// The history file (HDF5, as collect writes it).
    file: PathBuf,
    /// Task id (default: the first task of the file's held-out list).
    #[arg(long)]
    task: Option<usize>,
    /// How many streams to print region by region (the all-streams mean covers every stream).
    #[arg(long, default_value_t = 3)]
    streams: usize,
    /// The stream whose rewards the PNG draws.
    #[arg(long, default_value_t = 0)]
    stream: usize,
    /// Where to write the PNG (default: `<file stem>-task-N.png` in the current folder).
    #[arg(long, value_name = "PATH")]
    png: Option<PathBuf>,
    /// Print every task (parameters, split, first and last region's mean return as a
    /// fraction of the optimum) instead of one task; draws nothing.
    #[arg(long, conflicts_with_all = ["task", "stream", "png"])]
    list: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    run_main(|| run(&args))
}

fn run(args: &Args) -> Result<()> {
    let file = File::open(&args.file)?;
    emit(&header(&file));
    if args.list {
        emit(&list(&file)?);
        return Ok(());
    }
    let task = match args.task {
        Some(t) => t,
        None => file
            .default_task()
            .ok_or_else(|| Error::file(&file.path, "train_tasks", "the file lists no tasks"))?,
    };
    let (corpus, s) = file.load_task(task)?;
    if args.stream >= s.n_stream {
        return Err(Error::file(
            &file.path,
            "--stream",
            format!(
                "{} is out of range: task {task} has streams 0-{}",
                args.stream,
                s.n_stream - 1
            ),
        ));
    }
    emit(&report(&file, &s, args.streams));

    let dest = args
        .png
        .clone()
        .unwrap_or_else(|| default_png(&file.path, task));
    let h = &corpus.histories;
    let rewards = &h.rewards[h.range(args.stream)];
    let labels = plot::Labels {
        env: file.env.name(),
        horizon: file.env.horizon(),
    };
    let png = plot::task_png(&s, args.stream, rewards, &labels, system_font().is_some())
        .map_err(|e| Error::file(&dest, "plot", e))?;
    let replaced = dest.exists();
    ccad_core::atomic::write_atomic(&dest, &png)?;
    let note = if replaced {
        "; replaced the old file"
    } else {
        ""
    };
    emit(&format!(
        "png: {} (stream {}{note})\n",
        dest.display(),
        args.stream
    ));
    Ok(())
}

/// Print to stdout; a closed pipe (`| head`) is not an error, and the PNG is still written.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `<file stem>-task-N.png` in the current folder.
fn default_png(file: &Path, task: usize) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    PathBuf::from(format!("{stem}-task-{task}.png"))
}

/// The file: environment, split, compress interval.
fn header(file: &File) -> String {
    let m = &file.reader.meta;
    let env = file.env.as_ref();
    let h = env.horizon();
    let i = m.compress_interval;
    let per_region = if i.is_multiple_of(h) {
        format!("{} episodes of {h} steps", i / h)
    } else {
        format!("{:.2} episodes of {h} steps", i as f64 / h as f64)
    };
    let mut o = String::new();
    let _ = writeln!(o, "{}", file.path.display());
    let _ = writeln!(
        o,
        "  env       {} {}: {} tasks, {} actions; a task is its {}",
        m.env_name,
        m.env_params,
        env.n_tasks(),
        m.n_actions,
        env.task_param_name()
    );
    let _ = writeln!(
        o,
        "  tasks     {} in the file: {} trained on, {} held out ({})",
        m.train_tasks.len() + m.test_tasks.len(),
        m.train_tasks.len(),
        m.test_tasks.len(),
        ranges(&sorted(&m.test_tasks))
    );
    let _ = writeln!(o, "  interval  compress_interval {i} steps = {per_region}");
    o
}

fn sorted(v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn fmt_frac(v: Option<f64>, width: usize) -> String {
    match v {
        Some(f) => format!("{f:>width$.2}"),
        None => format!("{:>width$}", "-"),
    }
}

/// One task: shape, optimum, markers, regions, and the returns per region.
fn report(file: &File, s: &TaskSummary, k: usize) -> String {
    let mut o = String::new();
    let split = if file.held_out(s.task) {
        "held out"
    } else {
        "trained on"
    };
    let h = file.env.horizon();
    let _ = writeln!(
        o,
        "task {} ({split}): {} {:?}, optimal return {} per episode",
        s.task, s.param_name, s.params, s.optimal
    );
    let episodes = s.steps as f64 / h as f64;
    let _ = writeln!(
        o,
        "  streams   {} of T = {} steps ({} episodes each)",
        s.n_stream,
        s.steps,
        if s.steps.is_multiple_of(h) {
            (s.steps / h).to_string()
        } else {
            format!("{episodes:.2}")
        }
    );
    let counts = s.region_counts();
    let (closed, cut) = (
        counts.iter().map(|c| c.0).collect::<Vec<_>>(),
        counts.iter().filter(|c| c.1 > 0).count(),
    );
    let (lo, hi) = (
        closed.iter().min().copied().unwrap_or(0),
        closed.iter().max().copied().unwrap_or(0),
    );
    let complete = if lo == hi {
        format!("{lo} complete regions a stream")
    } else {
        format!("{lo}-{hi} complete regions a stream")
    };
    let last = match cut {
        0 => "no cut-short last region".to_string(),
        c if c == s.n_stream => "then a last one cut short".to_string(),
        c => format!("a last one cut short in {c} of {} streams", s.n_stream),
    };
    let _ = writeln!(
        o,
        "  markers   {} starts (1), {} ends (2): {complete}, {last}",
        s.markers.starts, s.markers.ends
    );

    let shown = k.min(s.n_stream);
    let _ = writeln!(
        o,
        "return per region: per stream the sum of rewards and the episode return / optimum \
         ({}); over all {} streams the episode return's mean ± std, and / optimum",
        s.optimal, s.n_stream
    );
    let steps_w = format!("{}..{}", s.steps, s.steps).len().max(5) + 1;
    let mut head = format!("  {:>6}  {:<steps_w$}", "region", "steps");
    for st in 0..shown {
        let _ = write!(head, "  {:>14}", format!("stream {st}"));
    }
    let _ = write!(head, "  | {:^16}  {:^12}", "all: mean ± std", "/ optimum");
    let _ = writeln!(o, "{}", head.trim_end());
    for r in &s.regions {
        let span = format!(
            "{}..{}{}",
            r.start.round(),
            r.end.round(),
            if r.cut_short { "*" } else { "" }
        );
        let mut line = format!("  {:>6}  {:<steps_w$}", r.k, span);
        for st in 0..shown {
            match s.streams[st].get(r.k) {
                Some(rr) => {
                    let f = fraction(rr.episode_return(), s.optimal);
                    let _ = write!(line, "  {:>8.1} {}", rr.sum, fmt_frac(f, 5));
                }
                None => {
                    let _ = write!(line, "  {:>14}", "-");
                }
            }
        }
        let e = r.episode_return;
        let _ = write!(
            line,
            "  | {:>7.2} ± {:<6.2}  {} ± {}",
            e.mean,
            e.std,
            fmt_frac(fraction(e.mean, s.optimal), 5),
            fmt_frac(fraction(e.std, s.optimal), 4).trim_start()
        );
        let _ = writeln!(o, "{line}");
    }
    if s.regions.iter().any(|r| r.cut_short) {
        let _ = writeln!(o, "  * cut short: no end marker (the end of collection)");
    }
    o
}

/// Every task: split, parameters, regions, first and last region's mean episode return as a
/// fraction of the optimum.
fn list(file: &File) -> Result<String> {
    let tasks = file.tasks();
    let mut rows = Vec::with_capacity(tasks.len());
    for &t in &tasks {
        let (_, s) = file.load_task(t)?;
        rows.push(s);
    }
    let param_name = file.env.task_param_name();
    let pw = rows
        .iter()
        .map(|s| format!("{:?}", s.params).len())
        .chain([param_name.len()])
        .max()
        .unwrap_or(0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "  {:>5}  {:<8}  {:<pw$}  {:>7}  {:>7}  {:>5}  {:>6}",
        "task", "split", param_name, "optimum", "regions", "first", "last"
    );
    for s in &rows {
        let first = s.regions.first();
        let last = s.regions.last();
        let frac = |r: Option<&summary::RegionSpread>| {
            fmt_frac(
                r.and_then(|r| fraction(r.episode_return.mean, s.optimal)),
                5,
            )
        };
        let _ = writeln!(
            o,
            "  {:>5}  {:<8}  {:<pw$}  {:>7}  {:>7}  {}  {}{}",
            s.task,
            if file.held_out(s.task) {
                "held out"
            } else {
                "train"
            },
            format!("{:?}", s.params),
            s.optimal,
            s.regions.len(),
            frac(first),
            frac(last),
            if last.is_some_and(|r| r.cut_short) {
                "*"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        o,
        "  first/last: the region's mean episode return over all streams / the optimum \
         (* cut short)"
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: &Path, extra: &[&str]) -> Args {
        let mut argv = vec!["dataset".to_string(), file.display().to_string()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        Args::try_parse_from(argv).unwrap()
    }

    /// (width, height) of a PNG; panics if it is not one.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        let reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let info = reader.info();
        (info.width, info.height)
    }

    #[test]
    fn writes_a_png_of_the_plot_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.hdf5");
        fixture::write(&path);
        let dest = dir.path().join("out.png");
        run(&args(
            &path,
            &["--stream", "2", "--png", dest.to_str().unwrap()],
        ))
        .unwrap();
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(png_size(&bytes), (plot::WIDTH, plot::HEIGHT));
        // Without text too (no font on the machine).
        let file = File::open(&path).unwrap();
        let (corpus, s) = file.load_task(4).unwrap();
        let h = &corpus.histories;
        let labels = plot::Labels {
            env: "darkroom",
            horizon: fixture::HORIZON,
        };
        let bytes = plot::task_png(&s, 1, &h.rewards[h.range(1)], &labels, false).unwrap();
        assert_eq!(png_size(&bytes), (plot::WIDTH, plot::HEIGHT));
    }

    /// Every family, on random-walk files from the dataset crate: the file loads from its own
    /// attributes, the regions partition each stream (their sums add up to the stream's
    /// rewards), and the PNG and the list come out.
    #[test]
    fn every_environment_reads_lists_and_plots() {
        use dataset::synthetic::{SyntheticSpec, write_synthetic};
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "darkroom",
            "darkroom-permuted",
            "darkroom-hard",
            "key-to-door",
        ] {
            let text = format!(
                "[env]\nname = \"{name}\"\ngrid = 3\nhorizon = 6\n[collect]\ncompress_interval = 12\n"
            );
            let cfg = ccad_core::Config::from_toml_str(&text, "t.toml", &[]).unwrap();
            let path = dir.path().join(format!("{name}.hdf5"));
            let spec = SyntheticSpec {
                tasks: 6,
                streams: 2,
                steps: 30,
                seed: 1,
            };
            write_synthetic(&path, &cfg, &spec).unwrap();
            let file = File::open(&path).unwrap();
            assert_eq!(file.env.name(), name);
            let task = file.default_task().unwrap();
            let (corpus, s) = file.load_task(task).unwrap();
            // 30 steps, interval 12: [0, 12) [12, 24) [24, 30) in each of 2 streams.
            assert_eq!(s.markers, summary::Markers { starts: 6, ends: 4 });
            assert_eq!(s.region_counts(), vec![(2, 1); 2]);
            let h = &corpus.histories;
            for (st, regions) in s.streams.iter().enumerate() {
                let total: f64 = h.rewards[h.range(st)].iter().map(|&r| r as f64).sum();
                let by_region: f64 = regions.iter().map(|r| r.sum).sum();
                assert_eq!(by_region, total, "{name} stream {st}");
            }
            let dest = dir.path().join(format!("{name}.png"));
            run(&args(&path, &["--png", dest.to_str().unwrap()])).unwrap();
            assert_eq!(
                png_size(&std::fs::read(&dest).unwrap()),
                (plot::WIDTH, plot::HEIGHT)
            );
            assert_eq!(list(&file).unwrap().lines().count(), 1 + 6 + 1, "{name}");
        }
    }

    #[test]
    fn default_png_is_named_after_the_file_and_task() {
        assert_eq!(
            default_png(Path::new("datasets/quick.hdf5"), 3),
            PathBuf::from("quick-task-3.png")
        );
    }

    #[test]
    fn report_prints_the_hand_computed_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.hdf5");
        fixture::write(&path);
        let file = File::open(&path).unwrap();
        let head = header(&file);
        assert!(head.contains("darkroom {\"grid\":3,\"horizon\":4}: 9 tasks, 5 actions"));
        assert!(head.contains("2 in the file: 1 trained on, 1 held out (4)"));
        assert!(head.contains("compress_interval 8 steps = 2 episodes of 4 steps"));
        let (_, s) = file.load_task(4).unwrap();
        let out = report(&file, &s, 2);
        assert!(out.contains("task 4 (held out): goal [1, 1], optimal return 4 per episode"));
        assert!(out.contains("3 of T = 20 steps (5 episodes each)"));
        assert!(out.contains(
            "9 starts (1), 6 ends (2): 2 complete regions a stream, then a last one cut short"
        ));
        let rows: Vec<Vec<&str>> = out
            .lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .map(|l| l.split_whitespace().collect())
            .collect();
        // region, steps, stream 0 (sum, /opt), stream 1 (sum, /opt), |, mean ± std, /opt ± std
        // Region 0: episode returns {4, 0, 1}: mean 5/3, std √26/3 = 1.6997; / 4.
        assert_eq!(
            rows[0],
            [
                "0", "0..8", "8.0", "1.00", "0.0", "0.00", "|", "1.67", "±", "1.70", "0.42", "±",
                "0.42"
            ]
        );
        // Region 2 (cut short, one episode): {4, 4, 0}: mean 8/3, std √32/3 = 1.8856.
        assert_eq!(
            rows[2],
            [
                "2", "16..20*", "4.0", "1.00", "4.0", "1.00", "|", "2.67", "±", "1.89", "0.67",
                "±", "0.47"
            ]
        );
        let listed = list(&file).unwrap();
        let rows: Vec<Vec<&str>> = listed
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        // Task 0: goal (0, 0), 2 steps from the start: 3 of 4 steps on it at best.
        assert_eq!(
            rows[0],
            ["0", "train", "[0,", "0]", "3", "3", "0.00", "0.00*"]
        );
        // Task 4: first region 5/3 / 4, last 8/3 / 4.
        assert_eq!(
            rows[1],
            ["4", "held", "out", "[1,", "1]", "4", "3", "0.42", "0.67*"]
        );
    }

    #[test]
    fn out_of_range_stream_and_task_are_one_line_errors_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.hdf5");
        fixture::write(&path);
        let png = dir.path().join("x.png");
        let png = png.to_str().unwrap();
        let err = |extra: &[&str]| run(&args(&path, extra)).err().unwrap().to_string();
        let p = path.display();
        assert_eq!(
            err(&["--stream", "3", "--png", png]),
            format!("{p}: --stream: 3 is out of range: task 4 has streams 0-2")
        );
        assert_eq!(
            err(&["--task", "9", "--png", png]),
            format!("{p}: --task: 9 is not a task of this file (it holds 0, 4)")
        );
        assert!(!Path::new(png).exists());
        let missing = dir.path().join("none.hdf5");
        let e = run(&args(&missing, &[])).err().unwrap().to_string();
        assert!(e.starts_with(&format!("{}: file: does not exist", missing.display())));
        std::fs::write(&missing, b"not hdf5").unwrap();
        let e = run(&args(&missing, &[])).err().unwrap().to_string();
        assert!(
            e.starts_with(&format!("{}: file:", missing.display())),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
