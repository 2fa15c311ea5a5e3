//! The rasterizer's host side on burn's cubecl backend: projection, depth sort, tile
//! intersections, tile sort, per-tile ranges, forward compositing; and the backward pass.
//!
//! Pipeline (forward), for `N` splats and `C` cameras, per-(splat, camera) arrays laid out
//! `[N, C]` (flat id = i·C + c):
//! 1. `project_forward` (in chunks of splats whose slices fit one storage binding): projected
//!    splat, tile rectangle, depth key.
//! 2. radix sort of the `N·C` (depth, id) pairs (32-bit keys; [`crate::sort`]).
//! 3. `isect_count` + exclusive scan: each splat's first intersection slot, and the total
//!    (one 4-byte read-back sizes the intersection buffers).
//! 4. `isect_emit`: (camera|tile key, id) for every tile of every visible splat, in depth order.
//! 5. stable radix sort by the tile key (only its used bits).
//! 6. `tile_ranges`, then `rasterize_forward`.
//!
//! Backward: `rasterize_backward` (per tile, back to front) accumulates gradients of the
//! projected quantities; `project_backward` maps them to the scene parameters.

use burn::backend::wgpu::{CubeBackend, CubeTensor, into_contiguous};
use burn::tensor::{DType, Shape};
use cubecl::CubeCount;
use cubecl::client::Client;
use cubecl::server::Handle;
use gpu::alloc;
use gpu::launch::{grid_1d, launch};

use crate::camera::Camera;
use crate::kernels::{self as k, EmitParams, RangeParams, RasterParams};
use crate::sort::{exclusive_scan, fill, radix_sort, slice, sort_params};

/// Tile edge in pixels (fixed by the kernels).
pub const TILE_SIZE: u32 = 16;
/// Floats per (splat, camera) in the projected-gradient buffer.
const GRAD_STRIDE: usize = 10;
/// Bytes per (splat, camera) of the `Projected` struct.
const PROJECTED_BYTES: u64 = std::mem::size_of::<k::Projected>() as u64;

/// How colours are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMode {
    /// `colors [N, 3]` used as is.
    Rgb,
    /// `sh [N, num_coeffs, 3]`, evaluated up to `sh_degree`.
    Sh {
        /// Coefficients stored per splat (≥ (sh_degree+1)²).
        num_coeffs: u32,
    },
}

/// Settings of one rasterization call (a batch of cameras of one image size).
#[derive(Clone, Debug, PartialEq)]
pub struct RasterConfig {
    /// The cameras; all must have `width × height` images.
    pub cameras: Vec<Camera>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Colour input.
    pub color_mode: ColorMode,
    /// SH degree evaluated (ignored for RGB).
    pub sh_degree: u32,
    /// gsplat "antialiased" mode (opacity × compensation).
    pub antialiased: bool,
    /// Background composited behind the splats, RGB in [0, 1].
    pub background: [f32; 3],
    /// Near/far clipping on camera-space z.
    pub near: f32,
    /// Far plane.
    pub far: f32,
    /// 2-D covariance blur added to the diagonal (gsplat `eps2d`).
    pub eps2d: f32,
    /// Use subgroup operations in the backward pass.
    pub subgroups: bool,
    /// Cap on the tile intersections built (`None` = one storage binding's worth).
    pub max_intersections: Option<u64>,
}

/// Tile intersections of the last [`forward`] on this thread: how many the scene needed and how
/// many one storage binding holds. Read (and cleared) by [`take_last_intersections`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intersections {
    /// Intersections the scene has: Σ over visible (splat, camera) pairs of the tiles their
    /// opacity-aware box covers (gsplat's CUDA rule; the fixtures' `meta.n_isects_opacity_aware`).
    pub needed: u64,
    /// The most one storage binding holds (`max_storage_buffer_binding_size / 4`); above it the
    /// forward composites only the first `capacity` entries and the image is incomplete.
    pub capacity: u64,
}

thread_local! {
    static LAST_INTERSECTIONS: std::cell::Cell<Option<Intersections>> =
        const { std::cell::Cell::new(None) };
}

/// The intersection count of the last [`forward`] run on this thread, once (a second call
/// returns `None`). burn's backend-extension op returns only the image, so `render` reads the
/// count here, right after its own call, on the same thread.
pub fn take_last_intersections() -> Option<Intersections> {
    LAST_INTERSECTIONS.with(|c| c.take())
}

/// Everything the backward pass needs, kept from the forward.
#[derive(Clone, Debug)]
pub struct ForwardState {
    cfg: RasterConfig,
    inputs: [CubeTensor; 5],
    cameras: Handle,
    projected: Handle,
    isect_vals: Handle,
    ranges: Handle,
    final_t: Handle,
    last_count: Handle,
    num_isects: u32,
}

impl ForwardState {
    /// Number of tile intersections of the forward pass.
    pub fn num_isects(&self) -> u32 {
        self.num_isects
    }
}

fn tile_bits(tiles: u32) -> u32 {
    32 - tiles.saturating_sub(1).leading_zeros()
}

impl RasterConfig {
    fn tiles(&self) -> (u32, u32) {
        (
            self.width.div_ceil(TILE_SIZE),
            self.height.div_ceil(TILE_SIZE),
        )
    }

    fn params(&self, chunk_len: u32, offset: u32, total: u32) -> RasterParams {
        let (tx, ty) = self.tiles();
        let (sh_degree, num_coeffs) = match self.color_mode {
            ColorMode::Rgb => (0, 1),
            ColorMode::Sh { num_coeffs } => (self.sh_degree, num_coeffs),
        };
        RasterParams {
            num_splats: chunk_len,
            num_cameras: self.cameras.len() as u32,
            width: self.width,
            height: self.height,
            tiles_x: tx,
            tiles_y: ty,
            splat_offset: offset,
            total_splats: total,
            sh_degree,
            num_coeffs,
            near: self.near,
            far: self.far,
            eps2d: self.eps2d,
            background: [
                self.background[0],
                self.background[1],
                self.background[2],
                0.0,
            ],
            ..Default::default()
        }
    }

    /// Bytes per splat of the largest per-splat binding (colours, or the [N, C] arrays).
    fn bytes_per_splat(&self) -> u64 {
        let c = self.cameras.len() as u64;
        let colors = match self.color_mode {
            ColorMode::Rgb => 12,
            ColorMode::Sh { num_coeffs } => 12 * num_coeffs as u64,
        };
        colors
            .max(PROJECTED_BYTES * c)
            .max(GRAD_STRIDE as u64 * 4 * c)
            .max(16 * c)
    }

    /// Splats per chunk of the per-splat kernels: slices fit one binding and start on a
    /// 256-splat boundary (so byte offsets meet every storage offset alignment).
    fn chunk_len(&self, n: usize) -> usize {
        let per = self.bytes_per_splat().max(1);
        let fit = (alloc::max_binding_size() / per) as usize;
        (fit / 256 * 256).max(256).min(n.max(1))
    }

    /// The largest number of splats one call can take on this device (the whole-array
    /// bindings of the sort and rasterizer hold `N·C` entries of up to 40 bytes).
    pub fn max_splats(&self) -> usize {
        let c = self.cameras.len().max(1) as u64;
        (alloc::max_binding_size() / (PROJECTED_BYTES * c)) as usize
    }
}

/// Stage timer for `SPLATDREAM_PROFILE=1`: waits for the queue after each stage and prints
/// the stage's wall time to stderr (off by default: the waits serialise the pipeline).
struct Profiler {
    on: bool,
    last: std::time::Instant,
}

impl Profiler {
    fn new() -> Self {
        Self {
            on: std::env::var("SPLATDREAM_PROFILE").is_ok_and(|v| v == "1"),
            last: std::time::Instant::now(),
        }
    }

    fn stage(&mut self, client: &Client, name: &str, probe: &Handle) {
        if !self.on {
            return;
        }
        let _ = alloc::read::<u32>(client, slice(probe, 0, 4));
        let now = std::time::Instant::now();
        eprintln!(
            "[profile] {name:<22} {:9.3} ms",
            (now - self.last).as_secs_f64() * 1e3
        );
        self.last = now;
    }
}

/// Forward pass on the cubecl backend. Inputs (f32, any layout): `means [N,3]`,
/// `quats [N,4]`, `log_scales [N,3]`, `opacity_logits [N]`, `colors [N,3]` or `[N,K,3]`.
/// Returns `out [C, H, W, 5]` (r, g, b, alpha, depth) and the state for [`backward`].
pub fn forward(inputs: [CubeTensor; 5], cfg: &RasterConfig) -> (CubeTensor, ForwardState) {
    let inputs = inputs.map(into_contiguous);
    let client = inputs[0].client.clone();
    let mut prof = Profiler::new();
    prof.stage(&client, "inputs ready", &inputs[0].handle);
    let device = inputs[0].device.clone();
    let n = inputs[0].meta.shape()[0];
    let c = cfg.cameras.len();
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let (tiles_x, tiles_y) = cfg.tiles();
    let tiles_per_cam = tiles_x * tiles_y;
    let nc = (n * c) as u32;

    let cams: Vec<k::Camera> = cfg.cameras.iter().map(|cam| cam.to_gpu()).collect();
    let cameras = alloc::upload(&client, &cams);
    let projected = alloc::empty(&client, n * c * PROJECTED_BYTES as usize);
    let rects = alloc::empty(&client, n * c * 16);
    let depth_keys = alloc::empty(&client, n * c * 4);
    let depth_vals = alloc::empty(&client, n * c * 4);

    // 1. Projection, in chunks.
    let (kernel_fwd, color_stride) = match (cfg.color_mode, cfg.antialiased) {
        (ColorMode::Rgb, false) => (k::PROJECT_FORWARD.rgb, 12u64),
        (ColorMode::Rgb, true) => (k::PROJECT_FORWARD.rgb_aa, 12),
        (ColorMode::Sh { num_coeffs }, false) => (k::PROJECT_FORWARD.sh, 12 * num_coeffs as u64),
        (ColorMode::Sh { num_coeffs }, true) => (k::PROJECT_FORWARD.sh_aa, 12 * num_coeffs as u64),
    };
    let chunk = cfg.chunk_len(n);
    let mut start = 0usize;
    while start < n {
        let len = chunk.min(n - start);
        let (s, l) = (start as u64, len as u64);
        let cc = c as u64;
        let p = alloc::upload(&client, &[cfg.params(len as u32, start as u32, n as u32)]);
        let bufs = vec![
            p,
            cameras.clone(),
            slice(&inputs[0].handle, 12 * s, 12 * l),
            slice(&inputs[1].handle, 16 * s, 16 * l),
            slice(&inputs[2].handle, 12 * s, 12 * l),
            slice(&inputs[3].handle, 4 * s, 4 * l),
            slice(&inputs[4].handle, color_stride * s, color_stride * l),
            slice(
                &projected,
                PROJECTED_BYTES * s * cc,
                PROJECTED_BYTES * l * cc,
            ),
            slice(&rects, 16 * s * cc, 16 * l * cc),
            slice(&depth_keys, 4 * s * cc, 4 * l * cc),
            slice(&depth_vals, 4 * s * cc, 4 * l * cc),
        ];
        // SAFETY: one thread per (splat, camera) of the chunk, bounds-checked against
        // num_splats·num_cameras; every binding is a slice holding exactly that many entries.
        launch(
            &client,
            kernel_fwd,
            grid_1d(((len * c) as u32).div_ceil(256)),
            bufs,
        );
        start += len;
    }

    prof.stage(&client, "project", &depth_vals);
    // 2. Depth sort.
    let (_, sorted_ids) = radix_sort(&client, depth_keys, depth_vals, nc, 32);
    prof.stage(&client, "depth sort", &sorted_ids);

    // 3. Intersection counts in depth order (+ a trailing zero) and their scan.
    let counts = alloc::empty(&client, (n * c + 1) * 4);
    let p = alloc::upload(&client, &[sort_params(nc, 0, 0, 0)]);
    // SAFETY: threads s ≤ count write counts[s] (count + 1 entries); sorted_ids[s] < N·C
    // indexes rects.
    launch(
        &client,
        k::ISECT_COUNT.main,
        grid_1d((nc + 1).div_ceil(256)),
        vec![p, sorted_ids.clone(), rects.clone(), counts.clone()],
    );
    let offsets = exclusive_scan(&client, &counts, nc + 1);
    prof.stage(&client, "count + scan", &offsets);
    let total_bytes =
        alloc::read::<u32>(&client, slice(&offsets, 4 * nc as u64, 4)).unwrap_or_default();
    let needed = total_bytes.first().copied().unwrap_or(0);
    if prof.on {
        eprintln!("[profile] {needed} tile intersections");
    }
    let capacity = (alloc::max_binding_size() / 4)
        .min(cfg.max_intersections.unwrap_or(u64::MAX))
        .min(u32::MAX as u64) as u32;
    // Above the capacity the lists are cut to it (the emit kernel drops slots past it);
    // `render` turns that into `RenderError::TooManyIntersections`.
    let num_isects = needed.min(capacity);
    LAST_INTERSECTIONS.with(|c| {
        c.set(Some(Intersections {
            needed: needed as u64,
            capacity: capacity as u64,
        }))
    });

    // 4–5. Emit intersections and sort them by (camera, tile).
    let tb = tile_bits(tiles_per_cam);
    let key_bits = tb + tile_bits(c as u32);
    let isect_keys = alloc::empty(&client, num_isects as usize * 4);
    let isect_vals = alloc::empty(&client, num_isects as usize * 4);
    if num_isects > 0 {
        let p = alloc::upload(
            &client,
            &[EmitParams {
                count: nc,
                num_cameras: c as u32,
                tiles_x,
                tile_bits: tb,
                capacity: num_isects,
            }],
        );
        // SAFETY: splat s writes slots offsets[s] .. offsets[s] + area(rect), disjoint ranges
        // (exclusive scan of the same areas); the kernel skips every slot ≥ capacity =
        // num_isects, the lists' length, so a truncated call stays in bounds too.
        launch(
            &client,
            k::ISECT_EMIT.main,
            grid_1d(nc.div_ceil(256)),
            vec![
                p,
                sorted_ids,
                rects,
                offsets,
                isect_keys.clone(),
                isect_vals.clone(),
            ],
        );
    }
    prof.stage(&client, "emit", &isect_keys);
    let (isect_keys, isect_vals) =
        radix_sort(&client, isect_keys, isect_vals, num_isects, key_bits);
    prof.stage(&client, "tile sort", &isect_keys);

    // 6. Tile ranges.
    let ranges = alloc::empty(&client, (c * tiles_per_cam as usize) * 8);
    fill(&client, &ranges, 2 * c as u32 * tiles_per_cam, 0);
    if num_isects > 0 {
        let p = alloc::upload(
            &client,
            &[RangeParams {
                count: num_isects,
                tile_bits: tb,
                tiles_per_camera: tiles_per_cam,
                _pad: 0,
            }],
        );
        // SAFETY: thread i < count reads keys[i ± 1] within 0..count; keys decode to
        // camera < C and tile < tiles_per_camera, inside ranges.
        launch(
            &client,
            k::TILE_RANGES.main,
            grid_1d(num_isects.div_ceil(256)),
            vec![p, isect_keys.clone(), ranges.clone()],
        );
    }

    // 7. Rasterize.
    let out_handle = alloc::empty(&client, c * h * w * 5 * 4);
    let last_count = alloc::empty(&client, c * h * w * 4);
    let final_t = alloc::empty(&client, c * h * w * 4);
    let p = alloc::upload(&client, &[cfg.params(n as u32, 0, n as u32)]);
    // SAFETY: one workgroup per (tile, camera); pixels outside the image write nothing; list
    // entries come from ranges within 0..num_isects and ids < N·C.
    launch(
        &client,
        k::RASTERIZE_FORWARD.main,
        CubeCount::Static(tiles_x, tiles_y, c as u32),
        vec![
            p,
            ranges.clone(),
            isect_vals.clone(),
            projected.clone(),
            out_handle.clone(),
            last_count.clone(),
            final_t.clone(),
        ],
    );
    prof.stage(&client, "ranges + rasterize", &last_count);
    let out = CubeTensor::new_contiguous(
        client.clone(),
        device,
        Shape::new([c, h, w, 5]),
        out_handle,
        DType::F32,
    );
    let state = ForwardState {
        cfg: cfg.clone(),
        inputs,
        cameras,
        projected,
        isect_vals,
        ranges,
        final_t,
        last_count,
        num_isects,
    };
    (out, state)
}

/// Backward pass: from `v_out [C, H, W, 5]` (dL/d r, g, b, alpha, depth) to the gradients of
/// `[means, quats, log_scales, opacity_logits, colors, means2d [C, N, 2]]`.
pub fn backward(state: ForwardState, v_out: CubeTensor) -> [CubeTensor; 6] {
    let v_out = into_contiguous(v_out);
    let cfg = &state.cfg;
    let client = state.inputs[0].client.clone();
    let device = state.inputs[0].device.clone();
    let n = state.inputs[0].meta.shape()[0];
    let c = cfg.cameras.len();
    let (tiles_x, tiles_y) = cfg.tiles();
    let mut prof = Profiler::new();
    prof.stage(&client, "backward inputs ready", &v_out.handle);

    let v_projected = alloc::empty(&client, n * c * GRAD_STRIDE * 4);
    fill(&client, &v_projected, (n * c * GRAD_STRIDE) as u32, 0); // 0u32 == 0.0f32
    if state.num_isects > 0 {
        let p = alloc::upload(&client, &[cfg.params(n as u32, 0, n as u32)]);
        let kernel = if cfg.subgroups {
            k::RASTERIZE_BACKWARD.subgroups
        } else {
            k::RASTERIZE_BACKWARD.main
        };
        // SAFETY: as the forward; gradients are added at id·10 + k for ids < N·C.
        launch(
            &client,
            kernel,
            CubeCount::Static(tiles_x, tiles_y, c as u32),
            vec![
                p,
                state.ranges.clone(),
                state.isect_vals.clone(),
                state.projected.clone(),
                state.final_t.clone(),
                state.last_count.clone(),
                v_out.handle.clone(),
                v_projected.clone(),
            ],
        );
    }
    prof.stage(&client, "rasterize backward", &v_projected);

    let (kernel, color_stride) = match (cfg.color_mode, cfg.antialiased) {
        (ColorMode::Rgb, false) => (k::PROJECT_BACKWARD.rgb, 12u64),
        (ColorMode::Rgb, true) => (k::PROJECT_BACKWARD.rgb_aa, 12),
        (ColorMode::Sh { num_coeffs }, false) => (k::PROJECT_BACKWARD.sh, 12 * num_coeffs as u64),
        (ColorMode::Sh { num_coeffs }, true) => (k::PROJECT_BACKWARD.sh_aa, 12 * num_coeffs as u64),
    };
    let shapes: Vec<Shape> = state
        .inputs
        .iter()
        .map(|t| t.meta.shape().clone())
        .collect();
    let grads: Vec<Handle> = shapes
        .iter()
        .map(|s| alloc::empty(&client, s.num_elements() * 4))
        .collect();
    let v_means2d = alloc::empty(&client, c * n * 2 * 4);
    let chunk = cfg.chunk_len(n);
    let mut start = 0usize;
    while start < n {
        let len = chunk.min(n - start);
        let (s, l, cc) = (start as u64, len as u64, c as u64);
        let p = alloc::upload(&client, &[cfg.params(len as u32, start as u32, n as u32)]);
        let strides = [12u64, 16, 12, 4, color_stride];
        let mut bufs = vec![p, state.cameras.clone()];
        for (t, st) in state.inputs.iter().zip(strides) {
            bufs.push(slice(&t.handle, st * s, st * l));
        }
        bufs.push(slice(
            &v_projected,
            4 * GRAD_STRIDE as u64 * s * cc,
            4 * GRAD_STRIDE as u64 * l * cc,
        ));
        for (g, st) in grads.iter().zip(strides) {
            bufs.push(slice(g, st * s, st * l));
        }
        bufs.push(v_means2d.clone());
        // SAFETY: one thread per splat of the chunk, bounds-checked against num_splats; every
        // per-splat binding is a slice of exactly the chunk; v_means2d is indexed
        // (c·total + offset + i)·2 < C·N·2.
        launch(&client, kernel, grid_1d((len as u32).div_ceil(256)), bufs);
        start += len;
    }
    prof.stage(&client, "project backward", &v_means2d);
    let mut out: Vec<CubeTensor> = grads
        .into_iter()
        .zip(shapes)
        .map(|(h, s)| CubeTensor::new_contiguous(client.clone(), device.clone(), s, h, DType::F32))
        .collect();
    out.push(CubeTensor::new_contiguous(
        client.clone(),
        device.clone(),
        Shape::new([c, n, 2]),
        v_means2d,
        DType::F32,
    ));
    out.try_into().expect("six gradients")
}

/// The raster kernels as a backend capability (implemented for [`CubeBackend`]); used by the
/// autodiff wrapper in [`crate::render`].
pub trait RasterKernels: burn::backend::Backend {
    /// State kept from forward to backward.
    type State: Clone + Send + std::fmt::Debug + 'static;
    /// See [`forward`].
    fn raster_forward(
        inputs: [Self::FloatTensorPrimitive; 5],
        cfg: &RasterConfig,
    ) -> (Self::FloatTensorPrimitive, Self::State);
    /// See [`backward`].
    fn raster_backward(
        state: Self::State,
        v_out: Self::FloatTensorPrimitive,
    ) -> [Self::FloatTensorPrimitive; 6];
}

impl RasterKernels for CubeBackend {
    type State = ForwardState;
    fn raster_forward(inputs: [CubeTensor; 5], cfg: &RasterConfig) -> (CubeTensor, ForwardState) {
        forward(inputs, cfg)
    }
    fn raster_backward(state: ForwardState, v_out: CubeTensor) -> [CubeTensor; 6] {
        backward(state, v_out)
    }
}
