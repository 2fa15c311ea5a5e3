// Fused SSIM, forward: one 256-thread workgroup per 16×16 tile of one (image, channel); grid
// (tiles_x, tiles_y, images·channels). For render a and (constant) target b, with G the
// normalised 11×11 Gaussian window (σ = 1.5) and zero padding (Wang et al. 2004; 3DGS `ssim()`):
//   μa = G∗a, μb = G∗b, σaa = G∗a² − μa², σbb = G∗b² − μb², σab = G∗ab − μa·μb,
//   S = (2μaμb + C₁)(2σab + C₂) / ((μa² + μb² + C₁)(σaa + σbb + C₂)).
// Writes the SSIM map and, for the backward, S's partial derivatives with respect to the
// three blurred maps that depend on a: m₁ = G∗a, m₂ = G∗a², m₃ = G∗ab (Σ over pixels of
// those partials, blurred once more by G, gives dS/da; see ssim_backward.wgsl).
// Every output element of the (image, channel) planes is written; nothing is read before it is
// written.

#import splatdream::types::SsimParams
#import splatdream::ssim::{WINDOW, TILE, SIDE, STAGED, ROWS, pixel_index, region_xy}

@group(0) @binding(0) var<storage, read_write> params: SsimParams;
// The normalised 1-D Gaussian window, 11 taps.
@group(0) @binding(1) var<storage, read_write> window: array<f32>;
// Render and target, [images, H, W, channels].
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> b: array<f32>;
// SSIM map, [images, H, W, channels].
@group(0) @binding(4) var<storage, read_write> ssim_map: array<f32>;
// ∂S/∂m₁, ∂S/∂m₂, ∂S/∂m₃, each [images, H, W, channels].
@group(0) @binding(5) var<storage, read_write> d_mu: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_sq: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_cross: array<f32>;

var<workgroup> staged_a: array<f32, 676>;
var<workgroup> staged_b: array<f32, 676>;
// Horizontal sums of a, b, a², b², ab: [ROWS] each.
var<workgroup> h_a: array<f32, 416>;
var<workgroup> h_b: array<f32, 416>;
var<workgroup> h_aa: array<f32, 416>;
var<workgroup> h_bb: array<f32, 416>;
var<workgroup> h_ab: array<f32, 416>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = params;
    let img = wid.z / p.channels;
    let ch = wid.z % p.channels;
    var w: array<f32, 11>;
    for (var k = 0u; k < WINDOW; k++) {
        w[k] = window[k];
    }
    // Stage the 26×26 region around the tile (zeros outside the image).
    for (var e = lid; e < STAGED; e += 256u) {
        let q = region_xy(wid, e);
        let i = pixel_index(p, img, ch, q.x, q.y);
        var va = 0.0;
        var vb = 0.0;
        if i >= 0 {
            va = a[i];
            vb = b[i];
        }
        staged_a[e] = va;
        staged_b[e] = vb;
    }
    workgroupBarrier();
    // Horizontal pass: every staged row, the tile's 16 columns.
    for (var e = lid; e < ROWS; e += 256u) {
        let base = (e / TILE) * SIDE + e % TILE;
        var s = vec4<f32>(0.0);
        var s_ab = 0.0;
        for (var k = 0u; k < WINDOW; k++) {
            let va = staged_a[base + k];
            let vb = staged_b[base + k];
            s += w[k] * vec4<f32>(va, vb, va * va, vb * vb);
            s_ab += w[k] * va * vb;
        }
        h_a[e] = s.x;
        h_b[e] = s.y;
        h_aa[e] = s.z;
        h_bb[e] = s.w;
        h_ab[e] = s_ab;
    }
    workgroupBarrier();
    // Vertical pass for this thread's pixel.
    let lx = lid % TILE;
    let ly = lid / TILE;
    let i = pixel_index(p, img, ch, i32(wid.x * TILE + lx), i32(wid.y * TILE + ly));
    if i < 0 {
        return;
    }
    var m = vec4<f32>(0.0);
    var m_ab = 0.0;
    for (var k = 0u; k < WINDOW; k++) {
        let e = (ly + k) * TILE + lx;
        m += w[k] * vec4<f32>(h_a[e], h_b[e], h_aa[e], h_bb[e]);
        m_ab += w[k] * h_ab[e];
    }
    let mu_a = m.x;
    let mu_b = m.y;
    let var_a = m.z - mu_a * mu_a;
    let var_b = m.w - mu_b * mu_b;
    let cov = m_ab - mu_a * mu_b;
    let num_l = 2.0 * mu_a * mu_b + p.c_luminance;
    let num_c = 2.0 * cov + p.c_contrast;
    let den_l = mu_a * mu_a + mu_b * mu_b + p.c_luminance;
    let den_c = var_a + var_b + p.c_contrast;
    let s = num_l * num_c / (den_l * den_c);
    ssim_map[i] = s;
    // ∂S/∂m₁ with var_a = m₂ − m₁², cov = m₃ − m₁·μb.
    d_mu[i] = 2.0 * mu_b * (num_c - num_l) / (den_l * den_c)
        - 2.0 * mu_a * s * (1.0 / den_l - 1.0 / den_c);
    d_sq[i] = -s / den_c;
    d_cross[i] = 2.0 * num_l / (den_l * den_c);
}
