//! `render`: the differentiable rasterizer as an ordinary burn function.
//!
//! [`SplatBackend::splat_render`] is a burn backend extension op implemented on the cubecl
//! (wgpu) backend by the WGSL kernels of [`crate::raster`], with a hand-written backward
//! registered on burn's autodiff backend. Losses computed with burn ops on the returned images
//! backpropagate into the splat tensors.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Tensor};

use crate::camera::Camera;
use crate::raster::{ColorMode, RasterConfig, RasterKernels};
use crate::scene::Splats;

/// The rasterizer as a burn backend extension. Inputs: `means [N,3]`, `quats [N,4]` (wxyz),
/// `log_scales [N,3]`, `opacity_logits [N]`, `colors [N,3]` (RGB mode) or `[N,K,3]` (SH
/// mode), and `means2d_probe [C,N,2]` (zeros; its gradient is the screen-space mean gradient).
/// Output: `[C, H, W, 5]` = r, g, b, alpha, expected-depth numerator Σ zᵢαᵢTᵢ.
#[backend_extension(Cube, Autodiff)]
pub trait SplatBackend: burn::backend::Backend {
    /// See the trait documentation.
    fn splat_render(
        means: FloatTensor<Self>,
        quats: FloatTensor<Self>,
        log_scales: FloatTensor<Self>,
        opacity_logits: FloatTensor<Self>,
        colors: FloatTensor<Self>,
        means2d_probe: FloatTensor<Self>,
        cfg: RasterConfig,
    ) -> FloatTensor<Self>;
}

impl SplatBackend for CubeBackend {
    fn splat_render(
        means: CubeTensor,
        quats: CubeTensor,
        log_scales: CubeTensor,
        opacity_logits: CubeTensor,
        colors: CubeTensor,
        _means2d_probe: CubeTensor,
        cfg: RasterConfig,
    ) -> CubeTensor {
        crate::raster::forward([means, quats, log_scales, opacity_logits, colors], &cfg).0
    }
}

#[derive(Debug)]
struct RenderBackward;

impl<B: SplatBackend + RasterKernels> Backward<B, 6> for RenderBackward {
    type State = <B as RasterKernels>::State;

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let v_out = grads.consume::<B>(&ops.node);
        let g = B::raster_backward(ops.state, v_out);
        for (parent, grad) in ops.parents.into_iter().zip(g) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: SplatBackend + RasterKernels, C: CheckpointStrategy> SplatBackend for Autodiff<B, C> {
    fn splat_render(
        means: FloatTensor<Self>,
        quats: FloatTensor<Self>,
        log_scales: FloatTensor<Self>,
        opacity_logits: FloatTensor<Self>,
        colors: FloatTensor<Self>,
        means2d_probe: FloatTensor<Self>,
        cfg: RasterConfig,
    ) -> FloatTensor<Self> {
        let nodes = [
            means.node(),
            quats.node(),
            log_scales.node(),
            opacity_logits.node(),
            colors.node(),
            means2d_probe.node(),
        ];
        let inputs = [
            means.into_primitive(),
            quats.into_primitive(),
            log_scales.into_primitive(),
            opacity_logits.into_primitive(),
            colors.into_primitive(),
        ];
        match RenderBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, state) = B::raster_forward(inputs, &cfg);
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => {
                let (out, _) = B::raster_forward(inputs, &cfg);
                prep.finish(out)
            }
        }
    }
}

/// Rasterization mode (gsplat's `rasterize_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RasterizeMode {
    /// 3DGS: opacity as is.
    #[default]
    Classic,
    /// Mip-Splatting-style: opacity × sqrt(det Σ2d / det(Σ2d + eps2d·I)).
    Antialiased,
}

/// Options of [`render`].
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Background colour, RGB in [0, 1].
    pub background: [f32; 3],
    /// SH degree to evaluate (≤ the scene's); `None` = the scene's degree.
    pub sh_degree: Option<u32>,
    /// Classic or antialiased.
    pub mode: RasterizeMode,
    /// Near plane (camera-space z); gsplat's default is 0.01.
    pub near: f32,
    /// Far plane.
    pub far: f32,
    /// 2-D blur added to the projected covariance; gsplat's default is 0.3.
    pub eps2d: f32,
    /// Use the scene's `sh` as plain RGB `[N,3]` colours instead of SH (for tests and for
    /// callers that shade themselves).
    pub rgb_colors: bool,
    /// Track the screen-space mean gradient ([`RenderOutput::means2d`] gets a gradient).
    pub means2d_grad: bool,
    /// Use subgroup operations in the backward pass when the device has them ([`gpu::alloc::subgroups`];
    /// `SPLATDREAM_NO_SUBGROUPS=1` turns them off for the process). Default: on. Off, every
    /// contributing pixel adds its own terms with atomics (the portable path).
    pub subgroups: bool,
    /// Most tile intersections (splat × tile pairs) one call may build: a memory budget of
    /// 8 bytes per intersection for the key and value lists (twice that while sorting).
    /// `None` = as many as one storage binding holds (`max_storage_buffer_binding_size / 4`).
    /// A call that needs more returns [`RenderError::TooManyIntersections`] instead of an
    /// incomplete image.
    pub max_intersections: Option<u64>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            background: [0.0; 3],
            sh_degree: None,
            mode: RasterizeMode::Classic,
            near: 0.01,
            far: 1e10,
            eps2d: 0.3,
            rgb_colors: false,
            means2d_grad: false,
            subgroups: true,
            max_intersections: None,
        }
    }
}

/// Rendered images of a batch of `C` cameras.
#[derive(Clone, Debug)]
pub struct RenderOutput {
    /// `[C, H, W, 3]` colour with the background composited, in [0, 1] for SH colours.
    pub rgb: Tensor<4>,
    /// `[C, H, W]` accumulated opacity 1 − T.
    pub alpha: Tensor<3>,
    /// `[C, H, W]` Σ zᵢαᵢTᵢ (divide by alpha for the expected depth).
    pub depth: Tensor<3>,
    /// `[C, N, 2]` zeros whose gradient, after `backward`, is dL/d(projected means) in pixels
    /// (the densification signal); only tracked with `RenderOptions::means2d_grad`.
    pub means2d: Tensor<3>,
    /// Tile intersections of this call, summed over its cameras: (splat, 16×16 tile) pairs
    /// under gsplat's opacity-aware box (CUDA `fully_fused_projection`). Known on the host
    /// without a read-back of its own: the forward reads it to size its buffers.
    pub num_isects: u64,
}

/// Errors of [`render`].
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No cameras were given.
    #[error("render needs at least one camera")]
    NoCameras,
    /// The scene has no splats.
    #[error("the scene has no splats")]
    NoSplats,
    /// Cameras of one call must share an image size.
    #[error(
        "camera {index} is {got:?}, but camera 0 is {want:?}: one render call takes one image size"
    )]
    SizeMismatch {
        /// Camera index.
        index: usize,
        /// Its (width, height).
        got: (u32, u32),
        /// Camera 0's.
        want: (u32, u32),
    },
    /// A camera is unusable.
    #[error(transparent)]
    Camera(#[from] crate::camera::CameraError),
    /// A tensor has the wrong shape or dtype.
    #[error("splat tensor `{name}`: {message}")]
    Tensor {
        /// Which tensor.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The scene does not fit the device's storage-binding limit.
    #[error(
        "{splats} splats × {cameras} cameras exceed this device's storage-binding limit ({limit} splats per call); render fewer cameras per call or fewer splats"
    )]
    TooLarge {
        /// Splats.
        splats: usize,
        /// Cameras.
        cameras: usize,
        /// Maximum splats for this camera count.
        limit: usize,
    },
    /// The scene covers more (splat, tile) pairs than one storage binding holds: the forward
    /// could composite only part of them, so the image would be incomplete.
    #[error(
        "{needed} tile intersections, above the limit of {capacity} (one storage binding on this device, or `RenderOptions::max_intersections`); render a smaller image, fewer cameras per call or fewer (or smaller) splats"
    )]
    TooManyIntersections {
        /// Intersections the call needed.
        needed: u64,
        /// The most this call could hold: one binding, or `RenderOptions::max_intersections`
        /// when that is lower.
        capacity: u64,
    },
    /// The rasterizer's forward left no tile-intersection count for this call
    /// ([`crate::raster::take_last_intersections`]): the backend ran the op on another thread or
    /// deferred it, so `render` cannot tell whether the image is complete.
    #[error(
        "the rasterizer's forward left no tile-intersection count on this thread, so the image's completeness is unknown (a backend that defers or moves ops to another thread is not supported)"
    )]
    NoIntersectionCount,
    /// The images of one call do not fit one device buffer.
    #[error(
        "{cameras} image(s) of {width}×{height} need {bytes} bytes of render output, above this device's storage-binding limit of {limit} bytes; render a smaller image or fewer cameras per call"
    )]
    ImageTooLarge {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Cameras.
        cameras: usize,
        /// Bytes the output needs.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
}

/// Channels of the rasterizer's output image: RGB, alpha, depth (f32 each).
const OUTPUT_CHANNELS: u64 = 5;

/// Render `splats` from each camera (one batch, one image size): the differentiable
/// rasterizer. Follows gsplat's `rasterization()` conventions (OpenCV cameras, world→camera
/// `viewmat`, pixel centres at +0.5, EWA projection with `eps2d` blur, 16×16 tiles, 1/255 alpha
/// threshold, 0.999 alpha clamp, early stop at T ≤ 1e-4).
///
/// On an autodiff device, gradients flow to every splat tensor marked `require_grad()`.
///
/// # Errors
/// [`RenderError`] for an empty scene, empty or inconsistent cameras, wrong tensor shapes or dtypes, or a
/// scene larger than the device's binding limit allows (checked before any GPU work, except
/// [`RenderError::TooManyIntersections`], known once the forward has counted them).
pub fn render(
    splats: &Splats,
    cameras: &[Camera],
    opts: &RenderOptions,
) -> Result<RenderOutput, RenderError> {
    let first = cameras.first().ok_or(RenderError::NoCameras)?;
    let (width, height) = (first.width, first.height);
    for (index, cam) in cameras.iter().enumerate() {
        cam.validate(&format!("<camera {index}>"))?;
        if (cam.width, cam.height) != (width, height) {
            return Err(RenderError::SizeMismatch {
                index,
                got: (cam.width, cam.height),
                want: (width, height),
            });
        }
    }
    let n = splats.len();
    if n == 0 {
        return Err(RenderError::NoSplats);
    }
    let check = |name: &'static str,
                 dims: &[usize],
                 dtype: DType,
                 want: &[usize]|
     -> Result<(), RenderError> {
        if dtype != DType::F32 {
            return Err(RenderError::Tensor {
                name,
                message: format!("dtype {dtype:?}, expected F32"),
            });
        }
        if dims != want {
            return Err(RenderError::Tensor {
                name,
                message: format!("shape {dims:?}, expected {want:?}"),
            });
        }
        Ok(())
    };
    check("means", &splats.means.dims(), splats.means.dtype(), &[n, 3])?;
    check("quats", &splats.quats.dims(), splats.quats.dtype(), &[n, 4])?;
    check(
        "log_scales",
        &splats.log_scales.dims(),
        splats.log_scales.dtype(),
        &[n, 3],
    )?;
    check(
        "opacity_logits",
        &splats.opacity_logits.dims(),
        splats.opacity_logits.dtype(),
        &[n],
    )?;
    let sh_dims = splats.sh.dims();
    let color_mode = if opts.rgb_colors {
        check("sh", &sh_dims, splats.sh.dtype(), &[n, 1, 3])?;
        ColorMode::Rgb
    } else {
        if sh_dims.len() != 3
            || sh_dims[0] != n
            || sh_dims[2] != 3
            || !matches!(sh_dims[1], 1 | 4 | 9 | 16)
        {
            return Err(RenderError::Tensor {
                name: "sh",
                message: format!("shape {sh_dims:?}, expected [{n}, K, 3] with K in 1, 4, 9, 16"),
            });
        }
        if splats.sh.dtype() != DType::F32 {
            return Err(RenderError::Tensor {
                name: "sh",
                message: format!("dtype {:?}, expected F32", splats.sh.dtype()),
            });
        }
        ColorMode::Sh {
            num_coeffs: sh_dims[1] as u32,
        }
    };
    let max_degree = ((sh_dims[1] as f32).sqrt() as u32).saturating_sub(1);
    let sh_degree = opts.sh_degree.unwrap_or(splats.sh_degree).min(max_degree);
    let device = splats.means.device();
    let subgroups = opts.subgroups && gpu::alloc::subgroups();
    let cfg = RasterConfig {
        cameras: cameras.to_vec(),
        width,
        height,
        color_mode,
        sh_degree,
        antialiased: opts.mode == RasterizeMode::Antialiased,
        background: opts.background,
        near: opts.near,
        far: opts.far,
        eps2d: opts.eps2d,
        subgroups,
        max_intersections: opts.max_intersections,
    };
    let bytes = cameras.len() as u64 * width as u64 * height as u64 * OUTPUT_CHANNELS * 4;
    let binding = gpu::alloc::max_binding_size();
    if bytes > binding {
        return Err(RenderError::ImageTooLarge {
            width,
            height,
            cameras: cameras.len(),
            bytes,
            limit: binding,
        });
    }
    let limit = cfg.max_splats();
    if n > limit {
        return Err(RenderError::TooLarge {
            splats: n,
            cameras: cameras.len(),
            limit,
        });
    }
    let c = cameras.len();
    let mut probe = Tensor::<3>::zeros([c, n, 2], &device);
    if opts.means2d_grad {
        probe = probe.require_grad();
    }
    let colors = if opts.rgb_colors {
        splats.sh.clone().reshape([n, 3]).into_dispatch()
    } else {
        splats.sh.clone().into_dispatch()
    };
    let out: Tensor<4> = Tensor::from_dispatch(<Dispatch as SplatBackend>::splat_render(
        splats.means.clone().into_dispatch(),
        splats.quats.clone().into_dispatch(),
        splats.log_scales.clone().into_dispatch(),
        splats.opacity_logits.clone().into_dispatch(),
        colors,
        probe.clone().into_dispatch(),
        cfg,
    ));
    let isects =
        crate::raster::take_last_intersections().ok_or(RenderError::NoIntersectionCount)?;
    if isects.needed > isects.capacity {
        return Err(RenderError::TooManyIntersections {
            needed: isects.needed,
            capacity: isects.capacity,
        });
    }
    let (h, w) = (height as usize, width as usize);
    Ok(RenderOutput {
        rgb: out.clone().slice([0..c, 0..h, 0..w, 0..3]),
        alpha: out
            .clone()
            .slice([0..c, 0..h, 0..w, 3..4])
            .reshape([c, h, w]),
        depth: out.slice([0..c, 0..h, 0..w, 4..5]).reshape([c, h, w]),
        means2d: probe,
        num_isects: isects.needed,
    })
}
