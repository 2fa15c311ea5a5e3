//! Composes and validates the rasterizer's WGSL kernels in `shaders/` at build time (a shader
//! error fails `cargo build`) and generates the host mirrors of the structs in
//! `shaders/lib/types.wgsl`.

use gpu::shader::{KernelVariant as V, build_script};

fn main() {
    let variants = [
        V::new("project_forward", "PROJECT_FORWARD_RGB", &[]),
        V::new("project_forward", "PROJECT_FORWARD_SH", &["SH"]),
        V::new(
            "project_forward",
            "PROJECT_FORWARD_RGB_AA",
            &["ANTIALIASED"],
        ),
        V::new(
            "project_forward",
            "PROJECT_FORWARD_SH_AA",
            &["SH", "ANTIALIASED"],
        ),
        V::new("project_backward", "PROJECT_BACKWARD_RGB", &[]),
        V::new("project_backward", "PROJECT_BACKWARD_SH", &["SH"]),
        V::new(
            "project_backward",
            "PROJECT_BACKWARD_RGB_AA",
            &["ANTIALIASED"],
        ),
        V::new(
            "project_backward",
            "PROJECT_BACKWARD_SH_AA",
            &["SH", "ANTIALIASED"],
        ),
        V::new("fill_u32", "FILL_U32", &[]),
        V::new("scan_blocks", "SCAN_BLOCKS", &[]),
        V::new("scan_add", "SCAN_ADD", &[]),
        V::new("sort_count", "SORT_COUNT", &[]),
        V::new("sort_scatter", "SORT_SCATTER", &[]),
        V::new("isect_count", "ISECT_COUNT", &[]),
        V::new("isect_emit", "ISECT_EMIT", &[]),
        V::new("tile_ranges", "TILE_RANGES", &[]),
        V::new("rasterize_forward", "RASTERIZE_FORWARD", &[]),
        V::new("rasterize_backward", "RASTERIZE_BACKWARD", &[]),
        V::new(
            "rasterize_backward",
            "RASTERIZE_BACKWARD_SUBGROUPS",
            &["SUBGROUPS"],
        ),
    ];
    build_script(&variants);
}
