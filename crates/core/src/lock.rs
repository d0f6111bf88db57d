//! [`Lock`]: one process at a time on a run folder or an output file. Two `train` processes on
//! one run, or two `collect` processes writing one dataset, would otherwise both "succeed" into
//! the same place.
//!
//! The lock is a file created exclusively (`create_new`) holding the owner's process id. A lock
//! whose owner no longer runs (killed) is stale and is taken over; where liveness cannot be
//! checked (no `/proc`), a lock is never taken over and the message says which file to remove.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Held while alive; the file is removed on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

/// Whether process `pid` runs, where the system can tell (`/proc`); `None` where it cannot.
pub fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self")
        .exists()
        .then(|| proc.join(pid.to_string()).exists())
}

impl Lock {
    /// Take the lock file `path` for this process. `what` names the locked thing in the error
    /// (e.g. the run folder).
    pub fn acquire(path: &Path, what: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        // Two tries: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).map_err(|e| Error::io(path, e))?;
                    return Ok(Self {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match owner.map(|pid| (pid, process_alive(pid))) {
                        // A killed owner's lock (or a half-written one from a kill between
                        // create and write, read as no pid) is stale.
                        Some((_, Some(false))) | None => {
                            let _ = std::fs::remove_file(path);
                        }
                        Some((pid, Some(true))) => {
                            return Err(Error::file(
                                what,
                                "lock",
                                format!("in use by process {pid}; wait for it or stop it"),
                            ));
                        }
                        Some((pid, None)) => {
                            return Err(Error::file(
                                what,
                                "lock",
                                format!(
                                    "held by process {pid}; if it no longer runs, remove {}",
                                    path.display()
                                ),
                            ));
                        }
                    }
                }
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Err(Error::file(what, "lock", "could not be taken"))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/.lock");
        let held = Lock::acquire(&path, dir.path()).unwrap();
        let e = Lock::acquire(&path, dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("lock: in use by process {}", std::process::id())),
            "{e}"
        );
        drop(held);
        assert!(!path.exists());
        let _again = Lock::acquire(&path, dir.path()).unwrap();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_killed_owners_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        // No process has this id (Linux caps ids at 2^22).
        std::fs::write(&path, "999999999").unwrap();
        let _held = Lock::acquire(&path, dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::process::id().to_string()
        );
        // An empty lock file (killed between create and write) is stale too.
        drop(_held);
        std::fs::write(&path, "").unwrap();
        assert!(Lock::acquire(&path, dir.path()).is_ok());
    }
}
