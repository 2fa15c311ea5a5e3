//! Atomic file writes: a file written through [`write_atomic`] appears complete or not at all,
//! and a failed write (a full disk, a file-size limit, a crash) leaves whatever was at the path
//! before untouched. Every output of splatdream (PLYs, checkpoints, metrics snapshots, images,
//! videos, benchmark reports) goes through here.
//!
//! The temporary file comes from the `tempfile` crate (a unique name in the destination folder,
//! removed when dropped); it is flushed and `fsync`ed before the rename, and the folder is
//! `fsync`ed after it, so the new name survives a power loss too (POSIX rename semantics).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A failed atomic write; names the destination file and the stage that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {stage}: {source}", path.display())]
pub struct WriteError {
    /// The file that was to be written (never the temporary name).
    pub path: PathBuf,
    /// What failed: `the folder does not exist`, `creating a temporary file`, `writing`,
    /// `syncing`, `renaming into place`.
    pub stage: &'static str,
    /// The cause.
    pub source: std::io::Error,
}

/// Bytes of the buffer between `write`'s calls and the temporary file.
const BUFFER_BYTES: usize = 1 << 20;

/// Write `path` atomically: `write` fills a buffered writer on a fresh temporary file in the
/// same folder (named `.<file name>.<random>.tmp`), which is flushed, `fsync`ed and renamed
/// over `path`. On any error the temporary file is removed and `path` keeps its old content.
/// The new file gets the permissions `File::create` would give it (0666 less the umask).
///
/// `write` may seek (image encoders do); its own errors are reported as the `writing` stage
/// (wrap non-I/O errors with `std::io::Error::other`).
///
/// # Errors
/// [`WriteError`] naming `path`: the folder is missing or unwritable, `write` failed (for
/// example `No space left on device` or `File too large`), or the sync or rename failed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let fail = |stage, source| WriteError {
        path: path.to_path_buf(),
        stage,
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(fail(
            "the folder does not exist",
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| fail("creating a temporary file", e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut w = BufWriter::with_capacity(BUFFER_BYTES, file);
    // `tmp_path` removes the temporary file when dropped, on every early return below.
    write(&mut w).map_err(|e| fail("writing", e))?;
    let file = w
        .into_inner()
        .map_err(|e| fail("writing", e.into_error()))?;
    file.sync_all().map_err(|e| fail("syncing", e))?;
    drop(file);
    tmp_path
        .persist(path)
        .map_err(|e| fail("renaming into place", e.error))?;
    // The rename is durable once the folder is synced; where a folder cannot be opened as a
    // file (not POSIX), the rename still happened.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// [`write_atomic`] of a byte slice.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// An output path that cannot be written, found before any work starts.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The file's folder is missing or is not a folder.
    #[error("{}: cannot write there: {} {what}", path.display(), dir.display())]
    NoFolder {
        /// The output file.
        path: PathBuf,
        /// Its folder.
        dir: PathBuf,
        /// `does not exist` or `is not a folder`.
        what: &'static str,
    },
    /// The output file's path is a folder.
    #[error("{}: is a folder, expected a file", path.display())]
    IsFolder {
        /// The output path.
        path: PathBuf,
    },
    /// An output folder cannot be created because an ancestor is a regular file.
    #[error("{}: cannot create the folder: {} is not a folder", path.display(), blocker.display())]
    Blocked {
        /// The output folder.
        path: PathBuf,
        /// The ancestor that is a file.
        blocker: PathBuf,
    },
}

/// Check before any work that `path` can be written as a file: its folder exists (the current
/// folder for a bare name) and `path` is not a folder. Creates nothing.
///
/// # Errors
/// [`TargetError::NoFolder`] or [`TargetError::IsFolder`].
pub fn check_file_target(path: &Path) -> Result<(), TargetError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(TargetError::NoFolder {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            what,
        });
    }
    if path.is_dir() {
        return Err(TargetError::IsFolder {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Check before any work that the folder `path` exists or can be created: the path itself, or
/// else its nearest existing ancestor, must be a folder. Creates nothing.
///
/// # Errors
/// [`TargetError::Blocked`] naming the ancestor that is a regular file.
pub fn check_dir_target(path: &Path) -> Result<(), TargetError> {
    for p in path.ancestors() {
        if p.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(TargetError::Blocked {
                    path: path.to_path_buf(),
                    blocker: p.to_path_buf(),
                });
            }
            Err(_) => continue,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_and_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_bytes(&p, b"first").unwrap();
        write_bytes(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert!(leftovers(dir.path()).is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let want = {
                let q = dir.path().join("plain");
                File::create(&q).unwrap();
                std::fs::metadata(&q).unwrap().permissions().mode() & 0o777
            };
            let got = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, want, "mode {got:o} vs File::create's {want:o}");
        }
    }

    /// A write that fails part-way leaves the old file and no temporary file, and the error
    /// names the destination and the cause.
    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ckpt.bin");
        write_bytes(&p, b"good").unwrap();
        let e = write_atomic(&p, |w| {
            w.write_all(&[7u8; 3 << 20])?;
            Err(std::io::Error::other("No space left on device (simulated)"))
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&p.display().to_string()) && msg.contains("writing: No space left"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/x.ply");
        let e = write_bytes(&p, b"x").unwrap_err();
        assert_eq!(e.stage, "the folder does not exist");
        assert!(e.to_string().contains("no/such/x.ply"), "{e}");
    }

    /// Two writers of one path never share a temporary file: each rename is of a whole file.
    #[test]
    fn concurrent_writers_use_distinct_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_bytes(p, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.iter().all(|&b| b == got[0]));
        assert!(leftovers(dir.path()).is_empty());
    }
}
