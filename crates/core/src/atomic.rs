//! Atomic file output: write to a temporary file in the destination's folder, fsync, rename.
//! A crash at any moment leaves either the old file or the new one, never a partial file
//! under the final name.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temporary path beside `dest` that is removed on drop unless [`TempPath::commit`] ran.
#[derive(Debug)]
pub struct TempPath {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl TempPath {
    /// `dir/.name.tmp-<pid>-<n>` beside `dest`; the folder is created if missing.
    pub fn beside(dest: &Path) -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = parent_dir(dest);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let name = dest
            .file_name()
            .ok_or_else(|| Error::file(dest, "path", "has no file name"))?
            .to_string_lossy();
        remove_stale_temps(&dir, &name);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// fsync the temporary file, rename it over the destination, fsync the folder.
    pub fn commit(mut self) -> Result<()> {
        File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        let dir = parent_dir(&self.dest);
        // Persist the rename itself; some filesystems refuse to open a folder, which is harmless.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Remove `dir/.name.tmp-<pid>-<n>` files left by processes that no longer run (killed before
/// their rename). A live process's temporary file is left alone; where liveness cannot be
/// checked (no `/proc`), nothing is removed. Failures are ignored: this is tidying only.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if crate::lock::process_alive(pid) == Some(false) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Write a file atomically with a writer callback. If `fill` fails, nothing changes on disk.
pub fn write_atomic_with(
    dest: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = TempPath::beside(dest)?;
    let file = File::create(tmp.path()).map_err(|e| Error::io(tmp.path(), e))?;
    let mut w = std::io::BufWriter::new(file);
    fill(&mut w)
        .and_then(|_| w.flush())
        .map_err(|e| Error::io(dest, e))?;
    drop(w);
    tmp.commit()
}

/// Write bytes to a file atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(dest, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn temporaries_of_dead_processes_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // No process has this id (Linux caps ids at 2^22).
        let dead = dir.path().join(".a.hdf5.tmp-999999999-0");
        let live = dir
            .path()
            .join(format!(".a.hdf5.tmp-{}-77", std::process::id()));
        let other = dir.path().join(".b.hdf5.tmp-999999999-0");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        write_atomic(&dir.path().join("a.hdf5"), b"whole").unwrap();
        assert!(!dead.exists(), "a killed writer's temporary file is left");
        assert!(live.exists() && other.exists());
        assert_eq!(std::fs::read(dir.path().join("a.hdf5")).unwrap(), b"whole");
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"half of the new")?;
            Err(std::io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
        assert!(err.to_string().contains("a.txt"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_first_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new.bin");
        let _ = write_atomic_with(&p, |_| Err(std::io::Error::other("no")));
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
