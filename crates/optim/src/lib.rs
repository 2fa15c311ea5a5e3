//! Splat optimisation, apart from rendering: the parameters ([`params::Gaussians`] with their
//! Adam moments), the fused Adam step ([`adam`]), the photometric losses (L1 and the fused SSIM,
//! [`loss`], [`fused_ssim`]), the bad-step guard ([`guard`]) and the densification strategies
//! ([`densify`]: the default clone/split/prune and MCMC relocation with its position noise,
//! [`mcmc_noise`]). The renderer knows nothing of any of it; a strategy acts on its own state
//! through the hooks the loops call around the backward pass (gsplat's `strategy/` model).
//!
//! Kernels come from `shaders/` (composed by `build.rs`, typed in [`kernels`]).

pub mod adam;
pub mod densify;
pub mod fused_ssim;
pub mod guard;
pub mod kernels;
pub mod loss;
pub mod mcmc_noise;
pub mod params;
pub mod rng;

#[cfg(test)]
pub(crate) fn test_device() -> &'static burn::tensor::Device {
    gpu::test_support::shared_device()
}
