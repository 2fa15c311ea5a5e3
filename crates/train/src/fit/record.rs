//! What a `fit` run reports: evaluations, logged steps (`metrics.json`), [`Event`]s to the
//! front end as it goes, and the final [`FitReport`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use optim::densify::DensifyReport;

/// Metrics of one evaluation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Step.
    pub step: u64,
    /// Mean PSNR over the evaluated views, dB.
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// Number of views.
    pub views: usize,
    /// Splats.
    pub splats: usize,
    /// Seconds of training so far (evaluation time excluded).
    pub train_seconds: f64,
}

/// One logged training step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step.
    pub step: u64,
    /// Total loss (NaN, written as null, on a skipped step).
    #[serde(deserialize_with = "f32_or_nan")]
    pub loss: f32,
    /// L1 term.
    #[serde(deserialize_with = "f32_or_nan")]
    pub l1: f32,
    /// SSIM.
    #[serde(deserialize_with = "f32_or_nan")]
    pub ssim: f32,
    /// Splats.
    pub splats: usize,
    /// Active SH degree.
    pub sh_degree: u32,
}

/// A number that JSON wrote as `null` because it was NaN.
pub(crate) fn f32_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

/// Everything a run measured (`metrics.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FitReport {
    /// Dataset folder.
    pub dataset: PathBuf,
    /// Training / evaluation views.
    pub views: (usize, usize),
    /// Scene scale used for learning rates and densification.
    pub scene_scale: f32,
    /// Initial splat count.
    pub initial_splats: usize,
    /// Evaluations, in order.
    pub evals: Vec<EvalRecord>,
    /// Logged steps.
    pub steps: Vec<StepRecord>,
    /// Densification events.
    pub densify: Vec<DensifyReport>,
    /// Training seconds (evaluation and output writing excluded).
    pub train_seconds: f64,
    /// Steps skipped because their loss or gradient was NaN or infinite.
    #[serde(default)]
    pub skipped_steps: u64,
    /// The step this invocation started from (the checkpoint's when resumed, else 0).
    #[serde(default)]
    pub start_step: u64,
    /// Files written.
    pub outputs: Vec<PathBuf>,
}

/// Progress notifications for a front end.
pub enum Event<'a> {
    /// A step finished (`loss` when it was read back this step).
    Step {
        /// Step (1-based).
        step: u64,
        /// Total steps.
        total: u64,
        /// Loss, on logged steps.
        loss: Option<f32>,
        /// Splats.
        splats: usize,
    },
    /// An evaluation finished.
    Eval(&'a EvalRecord),
    /// Something worth telling the user.
    Message(String),
}
