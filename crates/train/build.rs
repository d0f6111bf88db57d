//! Records the commit the binaries are built from (`train::BUILD_COMMIT`), so an experiment's
//! records name the code that produced them rather than whatever the working tree holds when
//! they are read. `+dirty` marks tracked files that differ from the commit; "unknown" outside a
//! git checkout.
//!
//! It lives in train (the crate whose experiment records use it), not in ccad-core: a re-run
//! of this script recompiles its crate and everything above it. It re-runs when HEAD moves or
//! a workspace source changes (any such change recompiles train anyway), never because git
//! touched its index: `git status` rewrites the index, and watching it rebuilt the whole
//! workspace after every status (this script's own included).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    // No optional locks: a status must not rewrite the index behind anyone's back.
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{head}+dirty") } else { head }
        }
        None => "unknown".to_string(),
    };
    println!("cargo:rustc-env=CCAD_BUILD_COMMIT={commit}");
    // HEAD (a checkout), the branch refs (a commit writes a loose ref file into refs/heads)
    // and packed-refs; `--git-path` resolves them in a linked worktree too. Only paths that
    // exist: cargo treats a missing watched file as changed and would re-run this script, and
    // rebuild everything above it, on every build.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", name])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    // The workspace's sources and manifests (a directory is watched recursively).
    for path in ["..", "../../Cargo.toml", "../../Cargo.lock"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
