//! One wgpu device for everything: created here with the adapter's own maximum limits, then
//! registered with burn's wgpu runtime so burn tensors, the splat kernels and the viewer share
//! buffers with no copies.

use std::fmt;
use std::str::FromStr;

use burn::backend::wgpu::WgpuSetup;

/// Which graphics API to run on (`--backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The first adapter wgpu offers, honouring `WGPU_BACKEND` when set.
    #[default]
    Auto,
    /// Vulkan (Linux, Windows, Android; lavapipe on machines without a GPU).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
    /// OpenGL / GLES.
    Gl,
}

impl FromStr for BackendChoice {
    type Err = GpuError;
    fn from_str(s: &str) -> Result<Self, GpuError> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "vulkan" | "vk" => Ok(Self::Vulkan),
            "metal" | "mtl" => Ok(Self::Metal),
            "dx12" | "d3d12" => Ok(Self::Dx12),
            "gl" | "gles" | "opengl" => Ok(Self::Gl),
            other => Err(GpuError::UnknownBackend(other.to_string())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Vulkan => "vulkan",
            Self::Metal => "metal",
            Self::Dx12 => "dx12",
            Self::Gl => "gl",
        })
    }
}

impl BackendChoice {
    fn backends(self) -> wgpu::Backends {
        match self {
            Self::Auto => wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY),
            Self::Vulkan => wgpu::Backends::VULKAN,
            Self::Metal => wgpu::Backends::METAL,
            Self::Dx12 => wgpu::Backends::DX12,
            Self::Gl => wgpu::Backends::GL,
        }
    }
}

/// Options for [`GpuContext::new`].
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Graphics API.
    pub backend: BackendChoice,
    /// Prefer a low-power adapter (integrated GPU) over a high-performance one.
    pub low_power: bool,
}

/// Errors creating the device.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// `--backend` named something unknown.
    #[error("unknown backend `{0}`: expected one of auto, vulkan, metal, dx12, gl")]
    UnknownBackend(String),
    /// No adapter for the requested backend.
    #[error(
        "no GPU adapter found for backend `{backend}` ({detail}); on Linux without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1"
    )]
    NoAdapter {
        /// The backend asked for.
        backend: BackendChoice,
        /// wgpu's message.
        detail: String,
    },
    /// The adapter lacks something splatdream needs.
    #[error("adapter `{adapter}` cannot run splatdream: {missing}")]
    MissingCapability {
        /// Adapter name.
        adapter: String,
        /// What is missing and the value found.
        missing: String,
    },
    /// `request_device` failed.
    #[error("could not open device on `{adapter}`: {detail}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        detail: String,
    },
    /// burn could not register the device.
    #[error("could not register the wgpu device with burn: {0}")]
    Burn(String),
}

/// The minimum limits the splat kernels need (checked against the adapter before use).
pub const REQUIRED_WORKGROUP_INVOCATIONS: u32 = 256;
/// Workgroup memory the rasterizer kernels use at most, in bytes.
pub const REQUIRED_WORKGROUP_STORAGE: u32 = 16 * 1024;

/// The shared device: wgpu handles plus the burn [`burn::tensor::Device`] registered on them.
#[derive(Clone)]
pub struct GpuContext {
    /// wgpu instance.
    pub instance: wgpu::Instance,
    /// The chosen adapter.
    pub adapter: wgpu::Adapter,
    /// The one device.
    pub device: wgpu::Device,
    /// The one queue.
    pub queue: wgpu::Queue,
    /// burn's handle on the same device (plain, no autodiff; call `.autodiff()` for training).
    pub burn: burn::tensor::Device,
    /// Whether the kernels may use subgroup operations on this device.
    pub subgroups: bool,
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.adapter.get_info();
        f.debug_struct("GpuContext")
            .field("adapter", &info.name)
            .field("backend", &info.backend)
            .field("subgroups", &self.subgroups)
            .finish()
    }
}

/// On a CPU adapter (lavapipe, WARP, SwiftShader), make burn/cubecl's autotuning minimal unless
/// the user chose a level (`CUBECL_AUTOTUNE_LEVEL` or a `cubecl.toml`): autotuning benchmarks
/// every candidate kernel per new shape, which takes minutes on a software rasterizer. A no-op
/// when cubecl's configuration was already read or set.
fn cpu_autotune_default() {
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig, autotune::AutotuneLevel};
    if std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_some()
        || ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"]
            .iter()
            .any(|f| std::path::Path::new(f).exists())
    {
        return;
    }
    let mut cfg = CubeClRuntimeConfig::default();
    cfg.autotune.level = AutotuneLevel::Minimal;
    if CubeClRuntimeConfig::try_set(cfg) {
        tracing::info!("CPU adapter: cubecl autotuning set to minimal");
    }
}

/// A warning for drivers known to compute wrong results, from the adapter's name (e.g.
/// "llvmpipe (LLVM 15.0.6, 256 bits)") and `driver_info` (e.g. "Mesa 22.3.6 (LLVM 15.0.6)"),
/// or `None`.
///
/// Mesa's lavapipe (llvmpipe) before 25 is flagged: on 22.3.6 (Debian 12's default) burn's reductions
/// return wrong sums once the reduced axis is long (a column sum over 65,536 rows of ones gives
/// 65,532; a row of 262,145 ones sums to 65,532), so losses and metrics of large images are
/// wrong there while gradients are not. 25.0.7 (Debian 12 backports) computes them exactly and
/// runs the splat kernels ≈ 3× faster (docs/perf.md, session 10). Versions in between are
/// untested.
pub fn known_driver_defect(adapter_name: &str, driver_info: &str) -> Option<String> {
    if !adapter_name.starts_with("llvmpipe") {
        return None;
    }
    let version = driver_info
        .split_whitespace()
        .skip_while(|w| *w != "Mesa")
        .nth(1)?;
    let major: u32 = version.split('.').next()?.parse().ok()?;
    (major < 25).then(|| {
        format!(
            "Mesa {version} is older than 25: lavapipe 22.3 sums long tensor axes wrongly (losses and \
             PSNR/SSIM of large images come out wrong) and runs ≈ 3× slower; install Mesa ≥ 25 \
             (Debian 12: apt-get install -t bookworm-backports mesa-vulkan-drivers)"
        )
    })
}

impl GpuContext {
    /// Whether the device can run f16 arithmetic in shaders (wgpu `SHADER_F16`).
    pub fn shader_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Create the instance, pick an adapter, open a device with the adapter's own maximum limits
    /// and all its features, and register it with burn.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] when no adapter matches, [`GpuError::MissingCapability`] when
    /// the adapter cannot run compute shaders or has too little workgroup memory,
    /// [`GpuError::RequestDevice`] / [`GpuError::Burn`] when opening fails.
    pub fn new(opts: &GpuOptions) -> Result<Self, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = opts.backend.backends();
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: if opts.low_power {
                wgpu::PowerPreference::LowPower
            } else {
                wgpu::PowerPreference::HighPerformance
            },
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| GpuError::NoAdapter {
            backend: opts.backend,
            detail: e.to_string(),
        })?;
        let info = adapter.get_info();
        if info.device_type == wgpu::DeviceType::Cpu {
            cpu_autotune_default();
        }
        if let Some(warning) = known_driver_defect(&info.name, &info.driver_info) {
            tracing::warn!(adapter = %info.name, driver = %info.driver_info, "{warning}");
        }
        let limits = adapter.limits();
        let downlevel = adapter.get_downlevel_capabilities();
        let missing = |missing: String| GpuError::MissingCapability {
            adapter: info.name.clone(),
            missing,
        };
        if !downlevel
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        {
            return Err(missing("compute shaders are not supported".into()));
        }
        if limits.max_compute_invocations_per_workgroup < REQUIRED_WORKGROUP_INVOCATIONS {
            return Err(missing(format!(
                "max_compute_invocations_per_workgroup is {}, need {REQUIRED_WORKGROUP_INVOCATIONS}",
                limits.max_compute_invocations_per_workgroup
            )));
        }
        if limits.max_compute_workgroup_storage_size < REQUIRED_WORKGROUP_STORAGE {
            return Err(missing(format!(
                "max_compute_workgroup_storage_size is {}, need {REQUIRED_WORKGROUP_STORAGE}",
                limits.max_compute_workgroup_storage_size
            )));
        }
        if limits.max_storage_buffers_per_shader_stage < 10 {
            return Err(missing(format!(
                "max_storage_buffers_per_shader_stage is {}, need 10",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        let features = adapter
            .features()
            .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("splatdream"),
            required_features: features,
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            trace: wgpu::Trace::Off,
            // SAFETY: experimental features are only those the adapter reports; cubecl expects
            // the device to expose everything the adapter can do (toolchain.md, pitfall 7).
            experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            detail: e.to_string(),
        })?;
        let setup = WgpuSetup {
            instance: instance.clone(),
            adapter: adapter.clone(),
            device: device.clone(),
            queue: queue.clone(),
            backend: info.backend,
        };
        let burn = burn::tensor::Device::wgpu_options()
            .setup(setup)
            .init()
            .map_err(|e| GpuError::Burn(format!("{e:?}")))?;
        crate::alloc::set_max_binding_size(limits.max_storage_buffer_binding_size as u64);
        let subgroups = features.contains(wgpu::Features::SUBGROUP)
            && std::env::var("SPLATDREAM_NO_SUBGROUPS").is_err();
        crate::alloc::set_subgroups(subgroups);
        tracing::debug!(adapter = %info.name, backend = ?info.backend, subgroups, "gpu ready");
        Ok(Self {
            instance,
            adapter,
            device,
            queue,
            burn,
            subgroups,
        })
    }

    /// A human-readable report: adapter, backend, driver, and the limits that matter.
    pub fn report(&self) -> String {
        let i = self.adapter.get_info();
        let l = self.device.limits();
        let f = self.device.features();
        format!(
            "adapter:  {} ({:?}, vendor 0x{:04x}, device 0x{:04x})\n\
             backend:  {:?}\n\
             driver:   {} {}\n\
             limits:\n\
             \x20 max_buffer_size                      {}\n\
             \x20 max_storage_buffer_binding_size      {}\n\
             \x20 max_storage_buffers_per_shader_stage {}\n\
             \x20 max_compute_workgroup_storage_size   {}\n\
             \x20 max_compute_invocations_per_workgroup {}\n\
             \x20 max_compute_workgroups_per_dimension {}\n\
             features: subgroups={} shader_f16={} float32_atomics={} timestamp_query={}",
            i.name,
            i.device_type,
            i.vendor,
            i.device,
            i.backend,
            i.driver,
            i.driver_info,
            l.max_buffer_size,
            l.max_storage_buffer_binding_size,
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_workgroup_storage_size,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroups_per_dimension,
            f.contains(wgpu::Features::SUBGROUP),
            f.contains(wgpu::Features::SHADER_F16),
            f.contains(wgpu::Features::SHADER_FLOAT32_ATOMIC),
            f.contains(wgpu::Features::TIMESTAMP_QUERY),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::known_driver_defect;

    #[test]
    fn old_mesa_is_flagged_and_current_drivers_are_not() {
        let lvp = "llvmpipe (LLVM 15.0.6, 256 bits)";
        assert!(known_driver_defect(lvp, "Mesa 22.3.6 (LLVM 15.0.6)").is_some());
        assert!(known_driver_defect(lvp, "Mesa 24.2.8-1~bpo12+1 (LLVM 15.0.6)").is_some());
        assert!(known_driver_defect(lvp, "Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)").is_none());
        assert!(known_driver_defect(lvp, "Mesa 25.2.0-devel (git-abc)").is_none());
        assert!(known_driver_defect(lvp, "").is_none());
        assert!(known_driver_defect(lvp, "Mesa").is_none());
        // Only lavapipe was measured; GPU drivers of the same Mesa are not flagged.
        let radv = "AMD Radeon RX 7900 XTX (RADV NAVI31)";
        assert!(known_driver_defect(radv, "Mesa 22.3.6 (LLVM 15.0.6)").is_none());
        assert!(known_driver_defect("NVIDIA H100", "570.124.04").is_none());
    }
}
