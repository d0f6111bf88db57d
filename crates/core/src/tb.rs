//! TensorBoard event files (over tensorboard-rs) and Ctrl-C handling.
//!
//! tensorboard-rs names event files with one-second resolution and writes on a background
//! thread: keep one [`RunLog`] per folder, and let it drop (it flushes) on every exit path.
//! Long loops poll [`interrupted`] so Ctrl-C unwinds normally and the logs are flushed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tensorboard_rs::summary_writer::SummaryWriter;

use crate::error::{Error, Result};

/// Scalars for one run folder.
pub struct RunLog {
    writer: SummaryWriter,
    dir: PathBuf,
}

impl RunLog {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            writer: SummaryWriter::new(dir),
            dir: dir.to_path_buf(),
        })
    }

    pub fn scalar(&mut self, tag: &str, value: f64, step: usize) {
        self.writer.add_scalar(tag, value as f32, step);
    }

    pub fn flush(&mut self) {
        self.writer.flush();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        self.writer.flush();
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Install the Ctrl-C handler: the first Ctrl-C asks long loops to stop (they return
/// [`Error::Interrupted`] and unwind, flushing logs and removing temporary files); a second one
/// exits at once.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting now");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing the current step and flushing logs (again to force)");
    });
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `Err(Interrupted)` once Ctrl-C was pressed.
pub fn check_interrupt() -> Result<()> {
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Read back the scalar tags of every event file in a folder (tests and reports).
/// Returns (tag, step, value) in file order.
pub fn read_scalars(dir: &Path) -> Result<Vec<(String, i64, f32)>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("tfevents"))
        })
        .collect();
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
        parse_event_file(&bytes, &mut out).map_err(|m| Error::file(&f, "events", m))?;
    }
    Ok(out)
}

/// TFRecord framing (u64 length, u32 crc, data, u32 crc) around `Event` protos; only the
/// fields needed for scalars are decoded.
fn parse_event_file(bytes: &[u8], out: &mut Vec<(String, i64, f32)>) -> Result<(), String> {
    let mut i = 0;
    while i + 12 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap()) as usize;
        let start = i + 12;
        let end = start + len;
        if end + 4 > bytes.len() {
            return Err("truncated record".into());
        }
        parse_event(&bytes[start..end], out)?;
        i = end + 4;
    }
    Ok(())
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// One protobuf field: (field number, wire type, length-delimited or fixed payload, varint value).
type Field<'a> = (u64, u64, &'a [u8], u64);

/// The fields of a protobuf message, in order.
fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = varint(b, &mut i)?;
                out.push((field, wire, &b[0..0], v));
            }
            1 => {
                out.push((field, wire, b.get(i..i + 8).ok_or("truncated field")?, 0));
                i += 8;
            }
            2 => {
                let n = varint(b, &mut i)? as usize;
                out.push((field, wire, b.get(i..i + n).ok_or("truncated field")?, 0));
                i += n;
            }
            5 => {
                out.push((field, wire, b.get(i..i + 4).ok_or("truncated field")?, 0));
                i += 4;
            }
            _ => return Err(format!("unsupported wire type {wire}")),
        }
    }
    Ok(out)
}

fn parse_event(b: &[u8], out: &mut Vec<(String, i64, f32)>) -> Result<(), String> {
    // Event: 2 = step (int64), 5 = summary (Summary); Summary: 1 = value (repeated Value);
    // Value: 1 = tag (string), 2 = simple_value (float).
    let mut step = 0i64;
    let mut summaries = Vec::new();
    for (f, _, payload, v) in fields(b)? {
        match f {
            2 => step = v as i64,
            5 => summaries.push(payload),
            _ => {}
        }
    }
    for s in summaries {
        for (f, _, value, _) in fields(s)? {
            if f != 1 {
                continue;
            }
            let (mut tag, mut simple) = (String::new(), None);
            for (vf, wire, p, _) in fields(value)? {
                match (vf, wire) {
                    (1, 2) => tag = String::from_utf8_lossy(p).into_owned(),
                    (2, 5) => simple = Some(f32::from_le_bytes(p.try_into().unwrap())),
                    _ => {}
                }
            }
            if let Some(v) = simple {
                out.push((tag, step, v));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = RunLog::create(dir.path()).unwrap();
            log.scalar("train/loss", 1.5, 1);
            log.scalar("train/loss", 0.75, 2);
            log.scalar("test/acc_action", 0.25, 2);
        }
        let s = read_scalars(dir.path()).unwrap();
        assert_eq!(
            s,
            vec![
                ("train/loss".to_string(), 1, 1.5),
                ("train/loss".to_string(), 2, 0.75),
                ("test/acc_action".to_string(), 2, 0.25),
            ]
        );
    }
}
