//! Composes and validates the optimiser's kernels in `shaders/` (the fused SSIM loss, the fused
//! Adam step and the MCMC position noise) at build time (a shader error fails `cargo build`),
//! one typed handle per kernel (`kernels::ADAM.main`).

use gpu::shader::{KernelVariant as V, build_script};

fn main() {
    build_script(&[
        V::new("ssim_forward", "main", &[]),
        V::new("ssim_backward", "main", &[]),
        V::new("adam", "main", &[]),
        V::new("mcmc_noise", "main", &[]),
    ]);
}
