#define_import_path splatdream::raster

// Per-pixel Gaussian evaluation shared by the forward and backward rasterizers
// (gsplat `rasterize_to_pixels` rules, Kerbl et al. 2023 eq. 2–3).

#import splatdream::types::Projected

// Smallest alpha that contributes (gsplat: 1/255).
const ALPHA_MIN: f32 = 0.00392156862745098;
// Alpha clamp.
const ALPHA_MAX: f32 = 0.999;
// Stop before a splat when the transmittance would fall to this or below.
const T_MIN: f32 = 0.0001;

// σ = ½(a·dx² + c·dy²) + b·dx·dy with d = mean − pixel centre.
fn sigma_at(s: Projected, px: vec2<f32>) -> f32 {
    let d = vec2<f32>(s.x, s.y) - px;
    return 0.5 * (s.conic_a * d.x * d.x + s.conic_c * d.y * d.y) + s.conic_b * d.x * d.y;
}

