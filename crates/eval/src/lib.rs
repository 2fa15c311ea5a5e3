//! Evaluation of generated splats against the toy world (the procedural 3D world the shipped
//! `toyworld` prior was trained on, `tools/toyworld/`).
//!
//! - [`toyworld`]: the prior folder's `toyworld.json` (categories, colours, camera ranges, view
//!   rule), prompt parsing, and the ground-truth views shipped beside the prior.
//! - [`judge`]: the independent classifier (category and colour of a 64×64 render), trained by
//!   `tools/toyworld/train_judge.py` on instances the prior never saw, run on burn.
//! - [`metrics`]: silhouette IoU, masked PSNR, mean colour error and R-precision on host images.
//! - [`evaluate`](mod@evaluate): renders splats at the ground-truth cameras after the best azimuth rotation
//!   and scale, and reports every metric.
//!
//! Knows nothing of training or diffusion beyond the weight reader it borrows from `sd`.

pub mod evaluate;
pub mod judge;
pub mod metrics;
pub mod toyworld;

pub use evaluate::{EvalReport, evaluate};
pub use judge::Judge;
pub use toyworld::ToyWorld;

use std::path::PathBuf;

/// Errors of the evaluation. Every variant names the file or the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is malformed; `field` names what is wrong in it.
    #[error("{path}: {field}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The field or tensor.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The prompt names no toy-world object.
    #[error(
        "prompt \"{prompt}\" names no toy-world object: expected \"a <colour> <category>\" with a colour among {colours} and a category among {categories}"
    )]
    Prompt {
        /// The prompt.
        prompt: String,
        /// The colours, comma-separated.
        colours: String,
        /// The categories, comma-separated.
        categories: String,
    },
    /// The judge's weights are missing, corrupt or of another shape.
    #[error("judge {path}: {source}")]
    Judge {
        /// The weight file.
        path: PathBuf,
        /// The cause.
        source: sd::weights::WeightError,
    },
    /// Rendering the splats failed.
    #[error("rendering the splats: {0}")]
    Render(#[from] splat::RenderError),
    /// Reading a result back from the device failed.
    #[error(transparent)]
    Readback(#[from] gpu::ReadError),
}

impl EvalError {
    pub(crate) fn format(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Format {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}
