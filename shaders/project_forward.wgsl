// Projection forward: one thread per (splat, camera) of a chunk of splats.
// Writes the projected splat (mean2d, conic, opacity, colour, depth), its tile rectangle,
// and the depth sort key/value pair. Culled splats get an empty rectangle and the largest key.
//
// Defs: SH (colours from SH coefficients [N, num_coeffs, 3]; else RGB [N, 3] used as is),
//       ANTIALIASED (opacity × compensation, gsplat "antialiased" mode).

#import splatdream::types::{RasterParams, Camera, Projected}
#import splatdream::common::{linear_group, is_finite}
#import splatdream::projection as proj
#import splatdream::raster::ALPHA_MIN

@group(0) @binding(0) var<storage, read_write> params: RasterParams;
@group(0) @binding(1) var<storage, read_write> cameras: array<Camera>;
// Chunk slices of the scene: means [n,3], quats [n,4] (wxyz), log_scales [n,3],
// opacity_logits [n], colours [n, num_coeffs, 3] (SH) or [n, 3].
@group(0) @binding(2) var<storage, read_write> means: array<f32>;
@group(0) @binding(3) var<storage, read_write> quats: array<f32>;
@group(0) @binding(4) var<storage, read_write> log_scales: array<f32>;
@group(0) @binding(5) var<storage, read_write> opacity_logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> colors: array<f32>;
// Chunk slices of the [N, C] outputs.
@group(0) @binding(7) var<storage, read_write> projected: array<Projected>;
@group(0) @binding(8) var<storage, read_write> rects: array<vec4<u32>>;
@group(0) @binding(9) var<storage, read_write> depth_keys: array<u32>;
@group(0) @binding(10) var<storage, read_write> depth_vals: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = linear_group(wid, nwg) * 256u + lid;
    let num_cams = params.num_cameras;
    if g >= params.num_splats * num_cams {
        return;
    }
    let i = g / num_cams;
    let c = g % num_cams;
    let cam = cameras[c];
    let mean = vec3<f32>(means[3u * i], means[3u * i + 1u], means[3u * i + 2u]);
    let quat = vec4<f32>(quats[4u * i], quats[4u * i + 1u], quats[4u * i + 2u], quats[4u * i + 3u]);
    let log_scale = vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]);
    let pr = proj::project(mean, quat, log_scale, cam, params);

    var opacity = 1.0 / (1.0 + exp(-opacity_logits[i]));
#ifdef ANTIALIASED
    opacity = opacity * proj::compensation(pr);
#endif

#ifdef SH
    let campos = vec3<f32>(cam.campos_x, cam.campos_y, cam.campos_z);
    let dir = normalize(mean - campos);
    var rgb = vec3<f32>(0.0);
    let k_used = min(proj::sh_count(params.sh_degree), params.num_coeffs);
    let base = i * params.num_coeffs * 3u;
    for (var k = 0u; k < k_used; k++) {
        let b = proj::sh_basis(k, dir);
        rgb += b * vec3<f32>(colors[base + 3u * k], colors[base + 3u * k + 1u], colors[base + 3u * k + 2u]);
    }
    rgb = max(rgb + 0.5, vec3<f32>(0.0));
#else
    let rgb = vec3<f32>(colors[3u * i], colors[3u * i + 1u], colors[3u * i + 2u]);
#endif

    // Splats below the alpha threshold never contribute (gsplat's CUDA projection culls them).
    let visible = pr.visible && is_finite(opacity) && opacity >= ALPHA_MIN && is_finite(rgb.x)
        && is_finite(rgb.y) && is_finite(rgb.z);
    let global_id = (params.splat_offset + i) * num_cams + c;
    depth_vals[g] = global_id;
    if visible {
        projected[g] = Projected(pr.mean2d.x, pr.mean2d.y, pr.conic.x, pr.conic.y, pr.conic.z,
                                 opacity, rgb.x, rgb.y, rgb.z, pr.p.z);
        rects[g] = proj::tile_rect(pr.mean2d, proj::opacity_aware_radius(pr.cov2d, opacity), params);
        // Depth is > near > 0, so its float bits order like the floats.
        depth_keys[g] = bitcast<u32>(pr.p.z);
    } else {
        projected[g] = Projected(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        rects[g] = vec4<u32>(0u);
        depth_keys[g] = 0xffffffffu;
    }
}
