//! Reference corpora list their committed cases in a `MANIFEST` file; a test reading a corpus
//! checks the folder against it, so a deleted or stray case fails instead of shrinking or
//! padding the corpus. Used by every reference test and the bad-input corpus.

use std::path::Path;

/// The names listed in `dir/MANIFEST`, one a line (`#` starts a comment line).
pub fn manifest(dir: &Path) -> Vec<String> {
    let path = dir.join("MANIFEST");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    names.sort();
    names
}

/// Asserts that the committed `found` names of `dir` are exactly those of `dir/MANIFEST`, naming
/// any that are missing or unlisted (so a deleted or stray case fails instead of shrinking or
/// padding the corpus).
pub fn assert_manifest(dir: &Path, found: &[String]) {
    let want = manifest(dir);
    let mut got = found.to_vec();
    got.sort();
    let missing: Vec<_> = want.iter().filter(|n| !got.contains(n)).collect();
    let unlisted: Vec<_> = got.iter().filter(|n| !want.contains(n)).collect();
    assert!(
        missing.is_empty() && unlisted.is_empty(),
        "{}: {} cases, MANIFEST lists {}; missing {missing:?}, not in MANIFEST {unlisted:?}",
        dir.display(),
        got.len(),
        want.len()
    );
}
