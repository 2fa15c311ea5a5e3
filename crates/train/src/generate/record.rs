//! What a `generate` run reports: one [`StepRecord`] per logged step (`metrics.jsonl`),
//! [`Event`]s to the front end as it goes, and the final [`GenerateReport`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0-based step index.
    pub step: u64,
    /// The pseudo-loss `½‖g‖²` (summed), the value of the injected loss.
    pub loss: f64,
    /// ‖g‖ over the batch.
    pub grad_norm: f64,
    /// mean |g|.
    pub grad_abs_mean: f64,
    /// Mean timestep of the batch.
    pub t_mean: f64,
    /// Splat count after the step.
    pub splats: usize,
    /// Mean wall time per step since the previous logged step, milliseconds.
    pub step_ms: f64,
    /// Means learning rate.
    pub lr_means: f64,
    /// The guidance's own statistics.
    pub guidance: serde_json::Map<String, serde_json::Value>,
}

/// Progress notifications for a front end.
pub enum Event<'a> {
    /// A step finished.
    Step {
        /// Completed steps.
        step: u64,
        /// Total steps.
        total: u64,
        /// The record, on logged steps.
        record: Option<&'a StepRecord>,
        /// Splats.
        splats: usize,
    },
    /// Something worth telling the user.
    Message(String),
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GenerateReport {
    /// The first step index this invocation ran (the checkpoint's step when resumed).
    pub start_step: u64,
    /// Completed steps at the end.
    pub steps: u64,
    /// Final splat count.
    pub splats: usize,
    /// Seconds in the optimisation loop.
    pub train_seconds: f64,
    /// Files written.
    pub outputs: Vec<PathBuf>,
    /// Largest device memory reserved by burn's allocator after any step, bytes (its pools
    /// keep freed pages, so this tracks the high-water mark; 0 when not reported).
    pub peak_reserved_bytes: u64,
}
