//! Drivers over many runs, between the command line and the training loops: what `generate
//! --prompts`, `compare`, `gallery`, `lmc-train` and `evaluate` do beyond one trainer's loop.
//!
//! - [`generate`]: a prior's base settings, run-folder slugs, one run per line of a prompt
//!   file (sharded), and the batch driver (skip finished, continue interrupted, lock folders).
//! - [`compare`]: every method on every prompt with one seed; rows kept per run so a long
//!   table resumes; the grid, the Markdown/JSON table and per-method means.
//! - [`gallery`]: a static HTML page of run folders.
//! - [`lmc_train`]: pre-training LMC's blur network b̂ψ on a folder of images.
//! - [`toy`]: scoring a finished run against the toy world (`eval::evaluate`).
//! - [`lock`], [`shard`]: run-folder locks and `I/N` shards (Slurm array tasks).
//! - [`progress`]: the progress bar and the handlers of the trainers' events.
//!
//! Each command's `clap::Args` lives beside the code that interprets it, so the binary
//! (`crates/cli`) only parses and dispatches. Errors here are `anyhow` chains: these drivers
//! are the application layer, and every library error they wrap (`train::*Error`,
//! `eval::EvalError`, …) keeps its typed source.

use std::path::Path;

use anyhow::Result;
use gpu::GpuContext;
use sd::Precision;

pub mod compare;
pub mod gallery;
pub mod generate;
pub mod lmc_train;
pub mod lock;
pub mod progress;
pub mod shard;
pub mod toy;

/// Check before any work that an output file can be created: its folder exists and is a
/// folder (a path inside a regular file, or in a missing folder, fails here naming `option`).
///
/// # Errors
/// The folder is missing or is not a folder.
pub fn check_out_file(option: &str, path: &Path) -> Result<()> {
    files::check_file_target(path).map_err(|e| anyhow::anyhow!("{option} {e}"))
}

/// Check before any work that an output folder exists or can be created: the path itself, or
/// else its nearest existing ancestor, must be a folder (a path inside a regular file fails
/// here naming `option` and that file). Creates nothing.
///
/// # Errors
/// The path or an ancestor is a regular file.
pub fn check_out_dir(option: &str, path: &Path) -> Result<()> {
    files::check_dir_target(path).map_err(|e| anyhow::anyhow!("{option} {e}"))
}

/// Parse `--dtype` and check the adapter can compute in it.
///
/// # Errors
/// An unknown precision, or f16 on an adapter without `SHADER_F16`.
pub fn precision(ctx: &GpuContext, dtype: &str) -> Result<Precision> {
    Precision::for_device(dtype, ctx).map_err(|e| anyhow::anyhow!("--dtype {e}"))
}

/// When `e` is a device failure mid-run (device lost, out of memory, a failed read, a scene
/// grown past the device's limits), point at the latest checkpoint of `run` (a lost device
/// cannot be read, so the periodic checkpoint is what survives).
pub fn with_resume_hint(e: anyhow::Error, run: &Path) -> anyhow::Error {
    use train::fit::FitError;
    use train::generate::GenerateError;
    let device = e.chain().any(|c| {
        matches!(
            c.downcast_ref(),
            Some(FitError::Device(_) | FitError::Render(_))
        ) || matches!(
            c.downcast_ref(),
            Some(GenerateError::Device(_) | GenerateError::Render(_))
        )
    });
    match train::checkpoint::resolve(run) {
        Ok(ck) if device => e.context(format!(
            "the run failed on the device; the latest checkpoint {} is kept: continue with --resume {} (with settings that fit the device)",
            ck.display(),
            run.display()
        )),
        _ => e,
    }
}
