//! Composes and validates the training kernels in `shaders/` (the fused SSIM loss and the fused Adam step) at build time
//! (a shader error fails `cargo build`).

use gpu::shader::{KernelVariant as V, build_kernels};

fn main() {
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let shader_dir = manifest.join("../../shaders");
    let variants = [
        V::new("ssim_forward", "SSIM_FORWARD", &[]),
        V::new("ssim_backward", "SSIM_BACKWARD", &[]),
        V::new("adam", "ADAM", &[]),
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
            eprintln!("{e}");
            for line in e.to_string().lines() {
                println!("cargo:warning={line}");
            }
            std::process::exit(1);
        }
    }
}
