//! Training: datasets of posed photographs, the GPU losses and Adam optimizer, densification
//! strategies, the `fit` loop (splats to photographs), the `generate` loop (text to splats
//! by score distillation) and `distill2d` (score distillation on one image), checkpoints, numerical guards, and mesh/point-cloud
//! initialisation.

pub mod adam;
pub mod background;
pub mod checkpoint;
pub mod control;
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
pub mod mcmc_noise;
pub mod mesh;
pub mod output;
pub mod params;
pub mod rng;
pub mod stop;
pub mod video;

/// The device the crate's unit tests share: one context per test process, fresh buffers filled
/// with garbage (kernels must not rely on zeroed memory). Panics when no adapter opens, so a
/// machine without one fails these tests instead of skipping them (CI has lavapipe).
#[cfg(test)]
pub(crate) fn test_device() -> &'static burn::tensor::Device {
    static CTX: std::sync::OnceLock<gpu::GpuContext> = std::sync::OnceLock::new();
    &CTX.get_or_init(|| {
        gpu::alloc::set_garbage_fill(true);
        gpu::GpuContext::new(&gpu::GpuOptions::default())
            .unwrap_or_else(|e| panic!("no GPU device for the train tests: {e}"))
    })
    .burn
}
