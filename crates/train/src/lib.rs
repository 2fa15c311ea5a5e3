//! Training: datasets of posed photographs, the GPU losses and Adam optimizer, densification
//! strategies, the `fit` loop (splats to photographs), the `generate` loop (text to splats
//! by score distillation) and `distill2d` (score distillation on one image), checkpoints, numerical guards, and mesh/point-cloud
//! initialisation.

pub mod adam;
pub mod checkpoint;
pub mod data;
pub mod densify;
pub mod distill2d;
pub mod fit;
pub mod fused_ssim;
pub mod generate;
pub mod guard;
pub mod init;
pub mod kernels;
pub mod live;
pub mod loss;
pub mod mesh;
pub mod output;
pub mod params;
pub mod stop;
