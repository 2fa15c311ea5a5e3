//! Composes and validates every WGSL kernel in `shaders/` at build time (a shader error fails
//! `cargo build`) and generates the host mirrors of the structs in `shaders/lib/types.wgsl`.

use gpu::shader::{KernelVariant as V, build_kernels};

fn main() {
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let shader_dir = manifest.join("../../shaders");
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
    match build_kernels(&shader_dir, &variants) {
        Ok((code, files)) => {
            for f in files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
            println!(
                "cargo:rerun-if-changed={}",
                shader_dir.join("lib").display()
            );
            let out =
                std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("kernels.rs");
            std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
        }
        Err(e) => {
            // Print the full report (with source spans) and fail the build.
            eprintln!("{e}");
            for line in e.to_string().lines() {
                println!("cargo:warning={line}");
            }
            std::process::exit(1);
        }
    }
}
