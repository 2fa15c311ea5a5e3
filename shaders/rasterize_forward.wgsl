// Tile rasterizer, forward: one 256-thread workgroup (16×16 pixels) per (tile, camera). Splats of the tile are
// staged 256 at a time in workgroup memory and composited front to back:
//   α = min(0.999, o·e^(−σ)), skipped if σ < 0 or α < 1/255; stop before a splat when
//   T·(1−α) ≤ 1e-4; rgb = Σ cᵢαᵢTᵢ + T·bg, alpha = 1 − T, depth = Σ zᵢαᵢTᵢ.
// Also writes, per pixel, how many list entries were walked up to the last contributing one
// (the backward pass walks exactly those).

#import splatdream::types::{RasterParams, Projected}
#import splatdream::raster::{sigma_at, ALPHA_MIN, ALPHA_MAX, T_MIN}

@group(0) @binding(0) var<storage, read_write> params: RasterParams;
@group(0) @binding(1) var<storage, read_write> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> isect_vals: array<u32>;
@group(0) @binding(3) var<storage, read_write> projected: array<Projected>;
// [C, H, W, 5]: r, g, b, alpha, depth.
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// [C, H, W]: entries walked up to and including the last contributor (0: none).
@group(0) @binding(5) var<storage, read_write> last_count: array<u32>;
// [C, H, W]: final transmittance T, kept for the backward pass (recovering it as 1 − alpha
// in float32 loses its relative precision when T is small, behind near-opaque splats).
@group(0) @binding(6) var<storage, read_write> final_t: array<f32>;

// The batch, staged as vectors: (x, y, conic a, conic b), (conic c, opacity, r, g), (b, depth).
var<workgroup> batch_geom: array<vec4<f32>, 256>;
var<workgroup> batch_shade: array<vec4<f32>, 256>;
var<workgroup> batch_rest: array<vec2<f32>, 256>;
var<workgroup> range_shared: vec2<u32>;
var<workgroup> done_atomic: atomic<u32>;
var<workgroup> done_total: u32;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let cam = wid.z;
    let tiles_per_cam = params.tiles_x * params.tiles_y;
    // The tile's list range, made workgroup-uniform (loop bounds around barriers).
    if lid == 0u {
        range_shared = ranges[cam * tiles_per_cam + wid.y * params.tiles_x + wid.x];
    }
    let range = workgroupUniformLoad(&range_shared);
    let pix = wid.xy * 16u + vec2<u32>(lid % 16u, lid / 16u);
    let inside = pix.x < params.width && pix.y < params.height;
    let centre = vec2<f32>(pix) + 0.5;

    if lid == 0u {
        atomicStore(&done_atomic, 0u);
    }
    workgroupBarrier();
    var done = !inside;
    if done {
        atomicAdd(&done_atomic, 1u);
    }
    var t = 1.0;
    var rgb = vec3<f32>(0.0);
    var depth = 0.0;
    var walked = 0u;

    let n = range.y - range.x;
    let num_batches = (n + 255u) / 256u;
    for (var b = 0u; b < num_batches; b++) {
        workgroupBarrier();
        if lid == 0u {
            done_total = atomicLoad(&done_atomic);
        }
        if workgroupUniformLoad(&done_total) >= 256u {
            break;
        }
        let start = range.x + b * 256u;
        if start + lid < range.y {
            let s = projected[isect_vals[start + lid]];
            batch_geom[lid] = vec4<f32>(s.x, s.y, s.conic_a, s.conic_b);
            batch_shade[lid] = vec4<f32>(s.conic_c, s.opacity, s.r, s.g);
            batch_rest[lid] = vec2<f32>(s.b, s.depth);
        }
        workgroupBarrier();
        let count = min(256u, range.y - start);
        for (var k = 0u; k < count; k++) {
            if done {
                break;
            }
            let geom = batch_geom[k];
            let shade = batch_shade[k];
            let sigma = sigma_at(geom, shade.x, centre);
            if sigma < 0.0 {
                continue;
            }
            let alpha = min(ALPHA_MAX, shade.y * exp(-sigma));
            if alpha < ALPHA_MIN {
                continue;
            }
            let next_t = t * (1.0 - alpha);
            if next_t <= T_MIN {
                done = true;
                atomicAdd(&done_atomic, 1u);
                break;
            }
            let w = alpha * t;
            let rest = batch_rest[k];
            rgb += w * vec3<f32>(shade.z, shade.w, rest.x);
            depth += w * rest.y;
            t = next_t;
            walked = b * 256u + k + 1u;
        }
    }
    if inside {
        let p = (cam * params.height + pix.y) * params.width + pix.x;
        rgb += t * params.background.xyz;
        out[5u * p] = rgb.x;
        out[5u * p + 1u] = rgb.y;
        out[5u * p + 2u] = rgb.z;
        out[5u * p + 3u] = 1.0 - t;
        out[5u * p + 4u] = depth;
        last_count[p] = walked;
        final_t[p] = t;
    }
}
