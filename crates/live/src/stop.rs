//! How a training loop reports a stop: [`Interrupted`] (the checkpoint it saved), and
//! [`is_interrupted`] for front ends choosing an exit code. Requests go through
//! [`crate::control::Control`].

use std::path::PathBuf;

/// The run stopped on request after saving a checkpoint.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "interrupted after step {step}; checkpoint saved to {}; continue with --resume {}",
    checkpoint.display(),
    run.display()
)]
pub struct Interrupted {
    /// Completed steps.
    pub step: u64,
    /// The checkpoint file written.
    pub checkpoint: PathBuf,
    /// The run folder (what `--resume` takes).
    pub run: PathBuf,
}

/// Whether `e` is a stop of a training loop. `fit`'s and `generate`'s errors hold an
/// [`Interrupted`] as their source, so test every error of a chain:
/// `e.chain().any(is_interrupted)`.
pub fn is_interrupted(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<Interrupted>()
}
