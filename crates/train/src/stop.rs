//! Stop requests (SIGINT/SIGTERM): the front end installs a signal handler that calls
//! [`request`]; the `fit` and `generate` loops check [`requested`] before every step, save a
//! checkpoint of the last completed step and return [`Interrupted`]. The library installs no
//! handler itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Ask the running loop to checkpoint and stop (async-signal-safe: one atomic store).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Clear a request (for a front end that runs several jobs and handled the stop).
pub fn clear() {
    STOP.store(false, Ordering::SeqCst);
}

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

/// Whether `e` is a stop of a training loop ([`Interrupted`], or a `fit`/`generate` error
/// holding one).
pub fn is_interrupted(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<Interrupted>()
        || matches!(e.downcast_ref(), Some(crate::fit::FitError::Interrupted(_)))
        || matches!(
            e.downcast_ref(),
            Some(crate::generate::GenerateError::Interrupted(_))
        )
}
