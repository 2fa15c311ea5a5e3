// Viewer display kernel: turns a rasterizer image (f32, [H, W, 4] row-major, contiguous) into
// the viewer's rgba8unorm storage texture, holding display (sRGB-encoded) values as egui 0.37
// expects of its textures (it treats texture samples as gamma-encoded). Every texel of the texture is written, so the texture's previous contents never
// matter.
//
// Modes: 0 = RGB (channels 0..2 are display-referred sRGB values in [0, 1]; alpha ignored),
//        1 = expected depth (channel 0 = Σ zᵢαᵢTᵢ, channel 1 = alpha), shown with a colour
//            ramp between `near` and `far`, background where alpha < 1e-3,
//        2 = alpha (channel 0), grey.

struct Params {
    width: u32,
    height: u32,
    mode: u32,
    _pad: u32,
    near: f32,
    far: f32,
    _pad1: f32,
    _pad2: f32,
    background: vec4<f32>,
}

@group(0) @binding(0) var<storage, read> image: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var output: texture_storage_2d<rgba8unorm, write>;

// A perceptual blue → green → yellow → red ramp (piecewise linear, t in [0, 1]).
fn ramp(t: f32) -> vec3<f32> {
    let x = clamp(t, 0.0, 1.0);
    let c0 = vec3<f32>(0.18, 0.05, 0.45);
    let c1 = vec3<f32>(0.10, 0.45, 0.85);
    let c2 = vec3<f32>(0.20, 0.80, 0.45);
    let c3 = vec3<f32>(0.98, 0.85, 0.15);
    let c4 = vec3<f32>(0.85, 0.15, 0.10);
    if (x < 0.25) { return mix(c0, c1, x * 4.0); }
    if (x < 0.5) { return mix(c1, c2, (x - 0.25) * 4.0); }
    if (x < 0.75) { return mix(c2, c3, (x - 0.5) * 4.0); }
    return mix(c3, c4, (x - 0.75) * 4.0);
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= params.width || gid.y >= params.height) {
        return;
    }
    let i = (gid.y * params.width + gid.x) * 4u;
    var srgb: vec3<f32>;
    if (params.mode == 1u) {
        let alpha = image[i + 1u];
        if (alpha < 1e-3) {
            srgb = params.background.rgb;
        } else {
            let z = image[i] / alpha;
            let t = (z - params.near) / max(params.far - params.near, 1e-6);
            srgb = mix(params.background.rgb, ramp(t), clamp(alpha, 0.0, 1.0));
        }
    } else if (params.mode == 2u) {
        srgb = vec3<f32>(image[i]);
    } else {
        srgb = vec3<f32>(image[i], image[i + 1u], image[i + 2u]);
    }
    textureStore(output, vec2<i32>(i32(gid.x), i32(gid.y)), vec4<f32>(clamp(srgb, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0));
}
