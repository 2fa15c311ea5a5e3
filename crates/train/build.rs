//! Composes and validates the training kernels in `shaders/` (the fused SSIM loss and the fused
//! Adam step) at build time (a shader error fails `cargo build`).

use gpu::shader::{KernelVariant as V, build_script};

fn main() {
    build_script(&[
        V::new("ssim_forward", "SSIM_FORWARD", &[]),
        V::new("ssim_backward", "SSIM_BACKWARD", &[]),
        V::new("adam", "ADAM", &[]),
    ]);
}
