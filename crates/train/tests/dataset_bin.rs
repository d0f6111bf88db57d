//! The `dataset` binary end to end on a tiny hand-made history file: the printed numbers, the
//! PNG, and one-line errors with a non-zero exit for a bad task, stream or file.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

#[allow(dead_code)]
#[path = "../src/bin/dataset/fixture.rs"]
mod fixture;

/// Held while a test writes its fixture and while one spawns the binary. The tests run as threads
/// of one process: a child forked while another thread has its fixture open inherits that file
/// descriptor (HDF5 does not open with close-on-exec) and with it HDF5's lock on the file, so the
/// other test's own child then fails to open its file ("unable to lock file").
static FORK_GUARD: Mutex<()> = Mutex::new(());

fn write_fixture(path: &Path) {
    let _guard = FORK_GUARD.lock().unwrap_or_else(|e| e.into_inner());
    fixture::write(path);
}

fn dataset(dir: &Path, args: &[&str]) -> Output {
    let child = {
        let _guard = FORK_GUARD.lock().unwrap_or_else(|e| e.into_inner());
        Command::new(env!("CARGO_BIN_EXE_dataset"))
            .current_dir(dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn prints_regions_and_writes_the_png_next_to_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(&dir.path().join("tiny.hdf5"));
    let o = dataset(dir.path(), &["tiny.hdf5", "--streams", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    // Default task: the first held out (4); default PNG: <stem>-task-4.png here.
    assert!(out.contains("task 4 (held out): goal [1, 1], optimal return 4 per episode"));
    assert!(out.contains("9 starts (1), 6 ends (2)"));
    // Stream 0 plays G G | G G | G: 8, 8 and 4 (per episode 4 = the optimum).
    let stream0: Vec<(String, String)> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[2].to_string(), w[3].to_string())
        })
        .collect();
    let want = [("8.0", "1.00"), ("8.0", "1.00"), ("4.0", "1.00")];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(stream0, want);
    let png = std::fs::read(dir.path().join("tiny-task-4.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!((be(&png[16..20]), be(&png[20..24])), (960, 880));

    let o = dataset(dir.path(), &["tiny.hdf5", "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("held out  [1, 1]"), "{out}");
}

#[test]
fn bad_task_stream_or_file_is_one_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(&dir.path().join("tiny.hdf5"));
    for (args, want) in [
        (
            &["tiny.hdf5", "--task", "5"][..],
            "error: tiny.hdf5: --task: 5 is not a task of this file (it holds 0, 4)\n",
        ),
        (
            &["tiny.hdf5", "--task", "0", "--stream", "7"][..],
            "error: tiny.hdf5: --stream: 7 is out of range: task 0 has streams 0-2\n",
        ),
        (
            &["gone.hdf5"][..],
            "error: gone.hdf5: file: does not exist (run collect first)\n",
        ),
    ] {
        let o = dataset(dir.path(), args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&o), want);
    }
    // No PNG for a failed run.
    let pngs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png")
        })
        .count();
    assert_eq!(pngs, 0);
}
