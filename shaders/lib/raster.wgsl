#define_import_path splatdream::raster

// Per-pixel Gaussian evaluation shared by the forward and backward rasterizers
// (gsplat `rasterize_to_pixels` rules, Kerbl et al. 2023 eq. 2–3).

// Smallest alpha that contributes (gsplat: 1/255).
const ALPHA_MIN: f32 = 0.00392156862745098;
// Alpha clamp.
const ALPHA_MAX: f32 = 0.999;
// Stop before a splat when the transmittance would fall to this or below.
const T_MIN: f32 = 0.0001;

// σ = ½(a·dx² + c·dy²) + b·dx·dy with d = mean − pixel centre, for a splat staged as
// geom = (mean x, mean y, conic a, conic b) and conic c (the rasterizers stage `Projected` as
// vectors: on lavapipe, loading a 10-field struct from workgroup memory per splat and pixel
// costs a third of the forward).
fn sigma_at(geom: vec4<f32>, conic_c: f32, px: vec2<f32>) -> f32 {
    let d = geom.xy - px;
    return 0.5 * (geom.z * d.x * d.x + conic_c * d.y * d.y) + geom.w * d.x * d.y;
}
