//! Composes and validates the rasterizer's WGSL kernels in `shaders/` at build time (a shader
//! error fails `cargo build`), generates one typed handle per kernel (its variants as fields:
//! `kernels::PROJECT_FORWARD.sh_aa`) and the host mirrors of the structs in
//! `shaders/lib/types.wgsl`.

use gpu::shader::{KernelVariant as V, build_script};

fn main() {
    let variants = [
        V::new("project_forward", "rgb", &[]),
        V::new("project_forward", "sh", &["SH"]),
        V::new("project_forward", "rgb_aa", &["ANTIALIASED"]),
        V::new("project_forward", "sh_aa", &["SH", "ANTIALIASED"]),
        V::new("project_backward", "rgb", &[]),
        V::new("project_backward", "sh", &["SH"]),
        V::new("project_backward", "rgb_aa", &["ANTIALIASED"]),
        V::new("project_backward", "sh_aa", &["SH", "ANTIALIASED"]),
        V::new("fill_u32", "main", &[]),
        V::new("scan_blocks", "main", &[]),
        V::new("scan_add", "main", &[]),
        V::new("sort_count", "main", &[]),
        V::new("sort_scatter", "main", &[]),
        V::new("isect_count", "main", &[]),
        V::new("isect_emit", "main", &[]),
        V::new("tile_ranges", "main", &[]),
        V::new("rasterize_forward", "main", &[]),
        V::new("rasterize_backward", "main", &[]),
        V::new("rasterize_backward", "subgroups", &["SUBGROUPS"]),
    ];
    build_script(&variants);
}
