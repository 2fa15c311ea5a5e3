// Fused SSIM, backward: the gradient of L = Σ v·S (v = dL/dS, per pixel) with respect to the
// render a. S at pixel p depends on a through m₁ = G∗a, m₂ = G∗a², m₃ = G∗ab, so, G being
// symmetric,
//   dL/da = G∗(v·∂S/∂m₁) + 2a·G∗(v·∂S/∂m₂) + b·G∗(v·∂S/∂m₃),
// with the same separable window, tiles and zero padding as ssim_forward.wgsl. The target b is
// a constant (no gradient). Every output element is written.

#import splatdream::types::SsimParams
#import splatdream::ssim::{WINDOW, TILE, SIDE, STAGED, ROWS, pixel_index, region_xy}

@group(0) @binding(0) var<storage, read_write> params: SsimParams;
@group(0) @binding(1) var<storage, read_write> window: array<f32>;
// Render and target, [images, H, W, channels].
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> b: array<f32>;
// dL/dS, [images, H, W, channels].
@group(0) @binding(4) var<storage, read_write> v_map: array<f32>;
// The forward's ∂S/∂m₁, ∂S/∂m₂, ∂S/∂m₃.
@group(0) @binding(5) var<storage, read_write> d_mu: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_sq: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_cross: array<f32>;
// dL/da, [images, H, W, channels].
@group(0) @binding(8) var<storage, read_write> v_a: array<f32>;

var<workgroup> staged_mu: array<f32, 676>;
var<workgroup> staged_sq: array<f32, 676>;
var<workgroup> staged_cross: array<f32, 676>;
var<workgroup> h_mu: array<f32, 416>;
var<workgroup> h_sq: array<f32, 416>;
var<workgroup> h_cross: array<f32, 416>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = params;
    let img = wid.z / p.channels;
    let ch = wid.z % p.channels;
    var w: array<f32, 11>;
    for (var k = 0u; k < WINDOW; k++) {
        w[k] = window[k];
    }
    for (var e = lid; e < STAGED; e += 256u) {
        let q = region_xy(wid, e);
        let i = pixel_index(p, img, ch, q.x, q.y);
        var g = vec3<f32>(0.0);
        if i >= 0 {
            g = v_map[i] * vec3<f32>(d_mu[i], d_sq[i], d_cross[i]);
        }
        staged_mu[e] = g.x;
        staged_sq[e] = g.y;
        staged_cross[e] = g.z;
    }
    workgroupBarrier();
    for (var e = lid; e < ROWS; e += 256u) {
        let base = (e / TILE) * SIDE + e % TILE;
        var s = vec3<f32>(0.0);
        for (var k = 0u; k < WINDOW; k++) {
            s += w[k] * vec3<f32>(staged_mu[base + k], staged_sq[base + k], staged_cross[base + k]);
        }
        h_mu[e] = s.x;
        h_sq[e] = s.y;
        h_cross[e] = s.z;
    }
    workgroupBarrier();
    let lx = lid % TILE;
    let ly = lid / TILE;
    let i = pixel_index(p, img, ch, i32(wid.x * TILE + lx), i32(wid.y * TILE + ly));
    if i < 0 {
        return;
    }
    var g = vec3<f32>(0.0);
    for (var k = 0u; k < WINDOW; k++) {
        let e = (ly + k) * TILE + lx;
        g += w[k] * vec3<f32>(h_mu[e], h_sq[e], h_cross[e]);
    }
    v_a[i] = g.x + 2.0 * a[i] * g.y + b[i] * g.z;
}
