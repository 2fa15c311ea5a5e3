//! The training kernels (fused SSIM, fused Adam, MCMC position noise), composed at build time from `shaders/` by `build.rs`, and
//! the host mirrors of the WGSL structs in `shaders/lib/types.wgsl`.

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
