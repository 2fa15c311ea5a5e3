//! splatdream's GPU layer: one wgpu device shared by burn tensors, the splat kernels and the
//! viewer; build-time WGSL composition; launch and allocation helpers.
//!
//! Knows nothing of splats or diffusion. See `docs/architecture.md` for the crate seams.
//!
//! - [`shader`]: compose/validate WGSL from `shaders/` at build time and generate host structs
//!   (always available; build scripts use it with `default-features = false`).
//! - [`device`]: instance/adapter/device creation with the adapter's limits, registered with
//!   burn's wgpu runtime so every burn op and every splat kernel runs on one queue.
//! - [`launch`]: WGSL kernels as cubecl source kernels on burn's client, with 2-D workgroup
//!   tiling past the 65,535-per-dimension limit.
//! - [`alloc`]: buffer allocation that, in tests, fills fresh buffers with garbage.

pub mod shader;

#[cfg(feature = "runtime")]
pub mod alloc;
#[cfg(feature = "runtime")]
pub mod device;
#[cfg(feature = "runtime")]
pub mod launch;

#[cfg(feature = "runtime")]
pub use device::{BackendChoice, GpuContext, GpuError, GpuOptions};

/// A read of device memory back to the host failed (an allocation or launch failure earlier in
/// the queue surfaces here too). Carries the device's own message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("reading back from the device failed: {0}")]
pub struct ReadError(pub String);

impl ReadError {
    /// Wrap a device error (burn's and cubecl's read errors implement `Debug` only).
    pub fn from_debug(e: impl std::fmt::Debug) -> Self {
        Self(format!("{e:?}"))
    }
}

/// Download a tensor to the host as f32 values in row-major order (waits for the device; any
/// float dtype is converted). The one read-back helper of the workspace (re-exported as
/// `splat::scene::host`).
///
/// # Errors
/// [`ReadError`] with the device's message if the read fails.
#[cfg(feature = "runtime")]
pub fn host<const D: usize>(t: &burn::tensor::Tensor<D>) -> Result<Vec<f32>, ReadError> {
    t.clone()
        .try_into_data()
        .map_err(ReadError::from_debug)?
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(ReadError::from_debug)
}

/// The one GPU test fixture every crate's tests share.
#[cfg(feature = "runtime")]
pub mod test_support {
    use std::sync::OnceLock;

    use crate::{GpuContext, GpuOptions};

    /// One context per test process (lavapipe in CI), opened on first use with garbage filling
    /// of fresh buffers switched on ([`crate::alloc::set_garbage_fill`]: kernels must not rely
    /// on zeroed memory). Panics when no adapter opens, so a machine without one fails the
    /// tests instead of skipping them.
    pub fn shared_context() -> &'static GpuContext {
        static CTX: OnceLock<GpuContext> = OnceLock::new();
        CTX.get_or_init(|| {
            crate::alloc::set_garbage_fill(true);
            GpuContext::new(&GpuOptions::default())
                .unwrap_or_else(|e| panic!("no GPU device for the tests: {e}"))
        })
    }

    /// The burn device of [`shared_context`].
    pub fn shared_device() -> &'static burn::tensor::Device {
        &shared_context().burn
    }
}
