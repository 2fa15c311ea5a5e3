//! The training loops: `fit` (splats to posed photographs), `generate` (text to splats by
//! score distillation) and `distill2d` (score distillation on one image), with their
//! checkpoints, outputs (PLY, turntables as GIF/MP4, meshes, compressed formats),
//! `metrics.jsonl` and the render background. Datasets live in `datasets`, the optimiser and densification in
//! `optim`, the control handle in `live`.

pub mod background;
pub mod checkpoint;
pub mod distill2d;
pub mod fit;
pub mod generate;
pub mod metrics;
pub mod output;
pub mod settings;
pub mod video;

#[cfg(test)]
pub(crate) fn test_device() -> &'static burn::tensor::Device {
    gpu::test_support::shared_device()
}
