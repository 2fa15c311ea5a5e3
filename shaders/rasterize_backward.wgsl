// Tile rasterizer, backward: one 256-thread workgroup (16×16 pixels) per (tile, camera). Walks
// each tile's list back to front, starting at the tile's last contributing entry (batches of 256
// staged in workgroup memory), recovering the transmittance before each splat from the final T
// and the product of what lies behind it, and accumulates per-(splat, camera) gradients of the
// projected quantities:
//   v_projected[id * 10 + k], k = mean2d x, y, conic a, b, c, opacity, r, g, b, depth.
// With SUBGROUPS the per-pixel terms are summed with subgroupAdd and one lane per subgroup
// adds them to global memory; without, every pixel adds its own non-zero terms. Float adds use
// a compare-and-swap loop on u32 (portable: Metal and DX12 lack float atomics).
// v_projected must be cleared to 0.0 beforehand (fill_u32).

#import splatdream::types::{RasterParams, Projected}
#import splatdream::raster::{sigma_at, ALPHA_MIN, ALPHA_MAX}

@group(0) @binding(0) var<storage, read_write> params: RasterParams;
@group(0) @binding(1) var<storage, read_write> ranges: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> isect_vals: array<u32>;
@group(0) @binding(3) var<storage, read_write> projected: array<Projected>;
// Forward's final transmittance [C, H, W] and walked counts [C, H, W].
@group(0) @binding(4) var<storage, read_write> final_t: array<f32>;
@group(0) @binding(5) var<storage, read_write> last_count: array<u32>;
// dL/d out, [C, H, W, 5].
@group(0) @binding(6) var<storage, read_write> v_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> v_projected: array<atomic<u32>>;

// The batch, staged as vectors: (x, y, conic a, conic b), (conic c, opacity, r, g), (b, depth).
var<workgroup> batch_geom: array<vec4<f32>, 256>;
var<workgroup> batch_shade: array<vec4<f32>, 256>;
var<workgroup> batch_rest: array<vec2<f32>, 256>;
var<workgroup> range_shared: vec2<u32>;
var<workgroup> batch_ids: array<u32, 256>;
var<workgroup> walked_max: atomic<u32>;
var<workgroup> walked_max_shared: u32;

fn add_f32(index: u32, value: f32) {
    // Nothing to add (e.g. the depth term when no loss reads depth): skip the atomics.
    if value == 0.0 {
        return;
    }
    var old = atomicLoad(&v_projected[index]);
    loop {
        let new_bits = bitcast<u32>(bitcast<f32>(old) + value);
        let r = atomicCompareExchangeWeak(&v_projected[index], old, new_bits);
        if r.exchanged {
            break;
        }
        old = r.old_value;
    }
}

struct Grad {
    a: vec4<f32>, // mean2d x, y, conic a, b
    b: vec4<f32>, // conic c, opacity, r, g
    c: vec2<f32>, // b, depth
}

fn add_grad(id: u32, g: Grad) {
    let base = id * 10u;
    add_f32(base, g.a.x);
    add_f32(base + 1u, g.a.y);
    add_f32(base + 2u, g.a.z);
    add_f32(base + 3u, g.a.w);
    add_f32(base + 4u, g.b.x);
    add_f32(base + 5u, g.b.y);
    add_f32(base + 6u, g.b.z);
    add_f32(base + 7u, g.b.w);
    add_f32(base + 8u, g.c.x);
    add_f32(base + 9u, g.c.y);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32
#ifdef SUBGROUPS
        , @builtin(subgroup_invocation_id) lane: u32
#endif
) {
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
    let p = (cam * params.height + min(pix.y, params.height - 1u)) * params.width + min(pix.x, params.width - 1u);

    var t_final = 1.0;
    var walked = 0u;
    var v_rgb = vec3<f32>(0.0);
    var v_alpha_out = 0.0;
    var v_depth_out = 0.0;
    if inside {
        t_final = final_t[p];
        walked = last_count[p];
        v_rgb = vec3<f32>(v_out[5u * p], v_out[5u * p + 1u], v_out[5u * p + 2u]);
        v_alpha_out = v_out[5u * p + 3u];
        v_depth_out = v_out[5u * p + 4u];
    }
    let bg = params.background.xyz;
    // Walking back to front: `suffix_t` = Π(1 − α) of the contributors behind the current
    // splat, `behind_rgb`/`behind_depth` = what they composite to on their own (starting from
    // T = 1 right behind it). Both are built by multiplication only, and the transmittance in
    // front of splat i is T_final / (suffix_t · (1 − α_i)): one division, no chain of them.
    var suffix_t = 1.0;
    var behind_rgb = vec3<f32>(0.0);
    var behind_depth = 0.0;

    // Only the list entries up to the tile's last contributor matter (gsplat's backward also
    // starts there): the tail behind every pixel's last contributor is skipped.
    if lid == 0u {
        atomicStore(&walked_max, 0u);
    }
    workgroupBarrier();
    atomicMax(&walked_max, walked);
    workgroupBarrier();
    if lid == 0u {
        walked_max_shared = atomicLoad(&walked_max);
    }
    let n = min(range.y - range.x, workgroupUniformLoad(&walked_max_shared));
    let num_batches = (n + 255u) / 256u;
    for (var b = 0u; b < num_batches; b++) {
        // Batch b covers list positions [n - 256(b+1), n - 256b), staged back to front.
        workgroupBarrier();
        let back = n - b * 256u;
        if lid < min(256u, back) {
            let idx = range.x + back - 1u - lid;
            let id = isect_vals[idx];
            batch_ids[lid] = id;
            let s = projected[id];
            batch_geom[lid] = vec4<f32>(s.x, s.y, s.conic_a, s.conic_b);
            batch_shade[lid] = vec4<f32>(s.conic_c, s.opacity, s.r, s.g);
            batch_rest[lid] = vec2<f32>(s.b, s.depth);
        }
        workgroupBarrier();
        let count = min(256u, back);
        for (var k = 0u; k < count; k++) {
            // List position of this splat within the tile.
            let pos = back - 1u - k;
            var g = Grad(vec4<f32>(0.0), vec4<f32>(0.0), vec2<f32>(0.0));
            var contributes = false;
            if inside && pos < walked {
                let geom = batch_geom[k];
                let shade = batch_shade[k];
                let sigma = sigma_at(geom, shade.x, centre);
                let vis = exp(-sigma);
                let raw_alpha = shade.y * vis;
                let alpha = min(ALPHA_MAX, raw_alpha);
                if sigma >= 0.0 && alpha >= ALPHA_MIN {
                    contributes = true;
                    let one_minus = 1.0 - alpha;
                    let t = t_final / (suffix_t * one_minus);
                    let w = alpha * t;
                    let rest = batch_rest[k];
                    let colour = vec3<f32>(shade.z, shade.w, rest.x);
                    // dL/dα_i = T_i·[(c_i − B_i)·v_rgb + (z_i − Bz_i)·v_depth
                    //               + Π_{j>i}(1 − α_j)·(v_alpha − bg·v_rgb)].
                    let v_alpha = t * (dot(colour - behind_rgb, v_rgb)
                        + (rest.y - behind_depth) * v_depth_out
                        + suffix_t * (v_alpha_out - dot(bg, v_rgb)));
                    behind_rgb = colour * alpha + behind_rgb * one_minus;
                    behind_depth = rest.y * alpha + behind_depth * one_minus;
                    suffix_t = suffix_t * one_minus;
                    var v_sigma = 0.0;
                    var v_opacity = 0.0;
                    if raw_alpha <= ALPHA_MAX {
                        v_opacity = vis * v_alpha;
                        v_sigma = -raw_alpha * v_alpha;
                    }
                    let d = geom.xy - centre;
                    g.a = vec4<f32>(
                        v_sigma * (geom.z * d.x + geom.w * d.y),
                        v_sigma * (geom.w * d.x + shade.x * d.y),
                        0.5 * v_sigma * d.x * d.x,
                        v_sigma * d.x * d.y);
                    g.b = vec4<f32>(0.5 * v_sigma * d.y * d.y, v_opacity, w * v_rgb.x, w * v_rgb.y);
                    g.c = vec2<f32>(w * v_rgb.z, w * v_depth_out);
                }
            }
#ifdef SUBGROUPS
            // Subgroup-uniform branch: reduce only where some lane has a term (most splats of
            // a tile miss most 8- or 32-pixel runs).
            if subgroupAny(contributes) {
                let sa = subgroupAdd(g.a);
                let sb = subgroupAdd(g.b);
                let sc = subgroupAdd(g.c);
                if lane == 0u {
                    add_grad(batch_ids[k], Grad(sa, sb, sc));
                }
            }
#else
            if contributes {
                add_grad(batch_ids[k], g);
            }
#endif
        }
    }
}
