//! Composes and validates the training kernels in `shaders/` (the fused SSIM loss, the fused
//! Adam step and the MCMC position noise) at build time (a shader error fails `cargo build`).

use gpu::shader::{KernelVariant as V, build_script};

fn main() {
    build_script(&[
        V::new("ssim_forward", "SSIM_FORWARD", &[]),
        V::new("ssim_backward", "SSIM_BACKWARD", &[]),
        V::new("adam", "ADAM", &[]),
        V::new("mcmc_noise", "MCMC_NOISE", &[]),
    ]);
}
