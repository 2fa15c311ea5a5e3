#define_import_path splatdream::types

// Structs shared by the kernels and the host. The Rust mirrors are generated from this file at
// build time (gpu::shader), so this is the only place their layout is written down.

// Per-render settings of the rasterizer kernels.
struct RasterParams {
    // Number of splats N in the scene (or in this chunk, for the per-splat kernels).
    num_splats: u32,
    // Number of cameras C in the batch.
    num_cameras: u32,
    // Image size in pixels.
    width: u32,
    height: u32,
    // Tile grid (16×16-pixel tiles).
    tiles_x: u32,
    tiles_y: u32,
    // Index of this chunk's first splat in the whole scene, and the scene's splat count.
    splat_offset: u32,
    total_splats: u32,
    // SH degree used (0..3) and number of coefficients per splat stored in the colour buffer.
    sh_degree: u32,
    num_coeffs: u32,
    // Near and far planes (camera-space z), and the 2-D covariance blur (gsplat eps2d = 0.3).
    near: f32,
    far: f32,
    eps2d: f32,
    // Background colour composited behind the splats (rgb; a unused).
    background: vec4<f32>,
}

// One camera of the batch. OpenCV convention: +x right, +y down, +z forward.
struct Camera {
    // World→camera transform (WGSL column-major: viewmat[col][row]).
    viewmat: mat4x4<f32>,
    // Focal lengths and principal point, in pixels.
    fx: f32,
    fy: f32,
    cx: f32,
    cy: f32,
    // Camera centre in world coordinates (−Rᵀt).
    campos_x: f32,
    campos_y: f32,
    campos_z: f32,
    _pad: f32,
}

// A splat as one camera sees it: what the rasterizer reads per intersection.
struct Projected {
    // Projected mean, pixels.
    x: f32,
    y: f32,
    // Conic = inverse of the blurred 2-D covariance (upper triangle a, b, c).
    conic_a: f32,
    conic_b: f32,
    conic_c: f32,
    // Effective opacity (sigmoid(logit), times the compensation in antialiased mode).
    opacity: f32,
    // View-dependent colour.
    r: f32,
    g: f32,
    b: f32,
    // Camera-space depth z.
    depth: f32,
}

// Settings of the generic kernels (fill, scan, radix sort).
struct SortParams {
    // Number of elements.
    count: u32,
    // Bit offset of the radix digit of this pass.
    shift: u32,
    // Number of blocks the count is split into.
    num_blocks: u32,
    // Fill value (fill kernel).
    value: u32,
}

// Settings of isect_emit.wgsl.
struct EmitParams {
    // Number of (splat, camera) pairs.
    count: u32,
    num_cameras: u32,
    tiles_x: u32,
    // Bits of the tile index in an intersection key; the camera index sits above them.
    tile_bits: u32,
    // Length of the intersection lists: slots at or past it are dropped (the render then
    // reports TooManyIntersections).
    capacity: u32,
}

// Settings of tile_ranges.wgsl.
struct RangeParams {
    // Number of intersections.
    count: u32,
    tile_bits: u32,
    tiles_per_camera: u32,
    _pad: u32,
}

// Settings of the fused SSIM kernels (ssim_forward.wgsl, ssim_backward.wgsl): a batch of
// images [images, height, width, channels], channel-last.
struct SsimParams {
    images: u32,
    height: u32,
    width: u32,
    channels: u32,
    // SSIM stabilisers C₁ = (0.01·L)² (luminance) and C₂ = (0.03·L)² (contrast) for the
    // dynamic range L.
    c_luminance: f32,
    c_contrast: f32,
    _pad_a: u32,
    _pad_b: u32,
}

// Settings of adam.wgsl: one Adam step over `count` elements.
struct AdamParams {
    count: u32,
    _pad_a: u32,
    _pad_b: u32,
    _pad_c: u32,
    // Learning rate, β₁, β₂, ε, and the bias corrections 1 − β₁ᵗ, 1 − β₂ᵗ of step t.
    lr: f32,
    beta_m: f32,
    beta_v: f32,
    eps: f32,
    correction_m: f32,
    correction_v: f32,
    _pad_d: u32,
    _pad_e: u32,
}

// Settings of mcmc_noise.wgsl: position noise for `count` splats.
struct NoiseParams {
    count: u32,
    _pad_a: u32,
    _pad_b: u32,
    _pad_c: u32,
    // Step size (the means' learning rate × noise_lr), and the gate σ(k·(1 − o − x0)) on the
    // opacity o: its steepness k and centre x0.
    scale: f32,
    steepness: f32,
    centre: f32,
    _pad_d: u32,
}
