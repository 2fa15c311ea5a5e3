//! Helpers shared by the CLI end-to-end tests: the binary run from the repository root, its
//! output, and temporary folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the tests run the binary there, so relative paths are the README's).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `splatdream` binary of this build, in the repository root.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splatdream"));
    c.current_dir(root());
    c
}

/// stdout followed by stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run `c`, assert it succeeded (printing its command line and output if not), return its
/// output.
pub fn run(c: &mut Command) -> String {
    let out = c.output().expect("spawn splatdream");
    let t = text(&out);
    assert!(out.status.success(), "{c:?} failed:\n{t}");
    t
}

/// A fresh folder unique to this process, `prefix` and `tag`, removed on drop unless the test
/// failed (then it is kept for inspection).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

/// A new empty [`TempDir`] named `splatdream-<prefix>-<pid>-<tag>` in the system temp folder.
pub fn tmp(prefix: &str, tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("splatdream-{prefix}-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}
