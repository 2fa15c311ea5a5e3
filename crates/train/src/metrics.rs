//! `metrics.jsonl`: one JSON object per logged step, appended and flushed as the run goes, so
//! a run stopped at any point leaves every line it logged. Used by `generate` and
//! `distill2d`; `fit` keeps `metrics.json` (one document with its evaluations, rewritten
//! atomically at each checkpoint), because a fit's report is its held-out evaluations rather
//! than a stream of steps.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::output::{OutputError, write_text};

/// A metrics line could not be written, or the file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Opening, appending to or flushing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// `metrics.jsonl`.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record did not serialise to JSON.
    #[error("{}: {source}", path.display())]
    Json {
        /// `metrics.jsonl`.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Rewriting the kept lines failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// An open `metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Open `path` for appending, keeping only the lines whose `step` is below `start` (a run
    /// resumed at `start` logs its steps again; a fresh run, `start = 0`, starts empty). The
    /// kept lines are rewritten atomically first.
    ///
    /// # Errors
    /// [`MetricsError`] naming the file.
    pub fn open(path: &Path, start: u64) -> Result<Self, MetricsError> {
        let kept: String = if start > 0 {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s < start)
                })
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            String::new()
        };
        write_text(path, &kept)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|source| MetricsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Append `record` as one JSON line and flush.
    ///
    /// # Errors
    /// [`MetricsError`] naming the file.
    pub fn append(&mut self, record: &impl Serialize) -> Result<(), MetricsError> {
        let line = serde_json::to_string(record).map_err(|source| MetricsError::Json {
            path: self.path.clone(),
            source,
        })?;
        let io = |source| MetricsError::Io {
            path: self.path.clone(),
            source,
        };
        writeln!(self.file, "{line}").map_err(io)?;
        self.file.flush().map_err(io)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
