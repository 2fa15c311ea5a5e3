//! Composes and validates the viewer's display kernel (`shaders/viewer_blit.wgsl`) at build
//! time like every other kernel (a shader error fails `cargo build`); `kernels::VIEWER_BLIT`
//! is its typed handle.

use gpu::shader::{KernelVariant as V, build_script};

fn main() {
    build_script(&[V::new("viewer_blit", "main", &[])]);
}
