// Projection backward: one thread per splat of a chunk, looping over the cameras (so gradients
// of a splat seen by several cameras are summed without atomics). Recomputes the projection
// with the same functions as the forward, then applies the chain rule from the projected
// gradients v_projected [N, C, 10] to the scene parameters:
//   conic → 2-D covariance (−P·V·P), antialiasing compensation, EWA J·Σc·Jᵀ (with the gsplat
//   FOV clamp), world→camera, Σ = R S Sᵀ Rᵀ, rotation → normalised → raw quaternion (wxyz),
//   scales → log_scales, opacity → logit, SH (including the view-direction term) or RGB.
// Writes every gradient element of the chunk (zeros for culled splats) and v_means2d [C, N, 2].
//
// Defs: SH, ANTIALIASED (as in project_forward.wgsl).

#import splatdream::types::{RasterParams, Camera}
#import splatdream::common::{linear_group, finite_or_zero}
#import splatdream::projection as proj

@group(0) @binding(0) var<storage, read_write> params: RasterParams;
@group(0) @binding(1) var<storage, read_write> cameras: array<Camera>;
@group(0) @binding(2) var<storage, read_write> means: array<f32>;
@group(0) @binding(3) var<storage, read_write> quats: array<f32>;
@group(0) @binding(4) var<storage, read_write> log_scales: array<f32>;
@group(0) @binding(5) var<storage, read_write> opacity_logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> colors: array<f32>;
// Chunk slice of [N, C, 10] (see rasterize_backward.wgsl).
@group(0) @binding(7) var<storage, read_write> v_projected: array<f32>;
// Chunk slices of the gradients, same shapes as the inputs.
@group(0) @binding(8) var<storage, read_write> v_means: array<f32>;
@group(0) @binding(9) var<storage, read_write> v_quats: array<f32>;
@group(0) @binding(10) var<storage, read_write> v_log_scales: array<f32>;
@group(0) @binding(11) var<storage, read_write> v_opacity_logits: array<f32>;
@group(0) @binding(12) var<storage, read_write> v_colors: array<f32>;
// Whole [C, N_total, 2] screen-space mean gradient (densification signal).
@group(0) @binding(13) var<storage, read_write> v_means2d: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wid, nwg) * 256u + lid;
    if i >= params.num_splats {
        return;
    }
    let num_cams = params.num_cameras;
    let n_total = params.total_splats;
    let gi = params.splat_offset + i;
    let mean = vec3<f32>(means[3u * i], means[3u * i + 1u], means[3u * i + 2u]);
    let quat = vec4<f32>(quats[4u * i], quats[4u * i + 1u], quats[4u * i + 2u], quats[4u * i + 3u]);
    let log_scale = vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]);
    let logit = opacity_logits[i];
    let sig = 1.0 / (1.0 + exp(-logit));

    var g_mean = vec3<f32>(0.0);
    var g_quat = vec4<f32>(0.0);
    var g_log_scale = vec3<f32>(0.0);
    var g_logit = 0.0;
#ifdef SH
    let k_used = min(proj::sh_count(params.sh_degree), params.num_coeffs);
    let cbase = i * params.num_coeffs * 3u;
    for (var k = 0u; k < params.num_coeffs * 3u; k++) {
        v_colors[cbase + k] = 0.0;
    }
#else
    var g_rgb = vec3<f32>(0.0);
    // RGB colours do not enter the gradients; reference the binding so the pipeline's
    // automatic layout keeps it (kernels are launched with every binding bound).
    if arrayLength(&colors) == 0u {
        return;
    }
#endif

    for (var c = 0u; c < num_cams; c++) {
        let vb = (i * num_cams + c) * 10u;
        let v_xy = vec2<f32>(v_projected[vb], v_projected[vb + 1u]);
        let v_conic = vec3<f32>(v_projected[vb + 2u], v_projected[vb + 3u], v_projected[vb + 4u]);
        let v_opacity = v_projected[vb + 5u];
        let v_rgb = vec3<f32>(v_projected[vb + 6u], v_projected[vb + 7u], v_projected[vb + 8u]);
        let v_depth = v_projected[vb + 9u];
        let cam = cameras[c];
        let pr = proj::project(mean, quat, log_scale, cam, params);
        let m2 = 2u * (c * n_total + gi);
        if !pr.visible {
            v_means2d[m2] = 0.0;
            v_means2d[m2 + 1u] = 0.0;
            continue;
        }
        v_means2d[m2] = v_xy.x;
        v_means2d[m2 + 1u] = v_xy.y;

        // Colour.
#ifdef SH
        let campos = vec3<f32>(cam.campos_x, cam.campos_y, cam.campos_z);
        let delta = mean - campos;
        let dir = normalize(delta);
        var raw = vec3<f32>(0.5);
        for (var k = 0u; k < k_used; k++) {
            let b = proj::sh_basis(k, dir);
            raw += b * vec3<f32>(colors[cbase + 3u * k], colors[cbase + 3u * k + 1u], colors[cbase + 3u * k + 2u]);
        }
        let v_raw = select(vec3<f32>(0.0), v_rgb, raw > vec3<f32>(0.0));
        var v_dir = vec3<f32>(0.0);
        for (var k = 0u; k < k_used; k++) {
            let b = proj::sh_basis(k, dir);
            let sh = vec3<f32>(colors[cbase + 3u * k], colors[cbase + 3u * k + 1u], colors[cbase + 3u * k + 2u]);
            v_colors[cbase + 3u * k] += b * v_raw.x;
            v_colors[cbase + 3u * k + 1u] += b * v_raw.y;
            v_colors[cbase + 3u * k + 2u] += b * v_raw.z;
            v_dir += proj::sh_basis_grad(k, dir) * dot(sh, v_raw);
        }
        g_mean += (v_dir - dir * dot(dir, v_dir)) / length(delta);
#else
        g_rgb += v_rgb;
#endif

        // Opacity (and the antialiasing compensation).
        var v_cov = mat2x2<f32>(vec2<f32>(0.0), vec2<f32>(0.0));
#ifdef ANTIALIASED
        let comp = proj::compensation(pr);
        g_logit += v_opacity * comp * sig * (1.0 - sig);
        let v_comp = v_opacity * sig;
        let ratio = pr.det_orig / pr.det;
        if ratio > 0.0 && comp > 0.0 {
            let v_ratio = v_comp * 0.5 / comp;
            let a = pr.cov2d.x;
            let bb = pr.cov2d.y;
            let cc = pr.cov2d.z;
            let e = params.eps2d;
            let det2 = pr.det * pr.det;
            let da = ((cc - e) * pr.det - pr.det_orig * cc) / det2;
            let dc = ((a - e) * pr.det - pr.det_orig * a) / det2;
            let db = (-2.0 * bb * pr.det + 2.0 * bb * pr.det_orig) / det2;
            v_cov += mat2x2<f32>(vec2<f32>(v_ratio * da, 0.5 * v_ratio * db),
                                 vec2<f32>(0.5 * v_ratio * db, v_ratio * dc));
        }
#else
        g_logit += v_opacity * sig * (1.0 - sig);
#endif

        // Conic = inverse(cov2d): V_cov = −P·V_P·P.
        let pmat = mat2x2<f32>(vec2<f32>(pr.conic.x, pr.conic.y), vec2<f32>(pr.conic.y, pr.conic.z));
        let vp = mat2x2<f32>(vec2<f32>(v_conic.x, 0.5 * v_conic.y), vec2<f32>(0.5 * v_conic.y, v_conic.z));
        v_cov -= pmat * vp * pmat;

        // cov2d = J Σc Jᵀ.
        let v_cov_c = transpose(pr.j) * v_cov * pr.j;
        let v_j = 2.0 * v_cov * pr.j * pr.cov_c;

        // Mean through J and the projected mean.
        let tz = pr.p.z;
        let rz = 1.0 / tz;
        let rz2 = rz * rz;
        let rz3 = rz2 * rz;
        var v_p = vec3<f32>(cam.fx * rz * v_xy.x, cam.fy * rz * v_xy.y,
                            -cam.fx * pr.p.x * rz2 * v_xy.x - cam.fy * pr.p.y * rz2 * v_xy.y);
        v_p.z += v_depth;
        v_p.z += -cam.fx * rz2 * v_j[0][0] - cam.fy * rz2 * v_j[1][1];
        if pr.in_x {
            v_p.x += -cam.fx * rz2 * v_j[2][0];
            v_p.z += 2.0 * cam.fx * pr.p.x * rz3 * v_j[2][0];
        } else {
            v_p.z += cam.fx * pr.lim_x * rz2 * v_j[2][0];
        }
        if pr.in_y {
            v_p.y += -cam.fy * rz2 * v_j[2][1];
            v_p.z += 2.0 * cam.fy * pr.p.y * rz3 * v_j[2][1];
        } else {
            v_p.z += cam.fy * pr.lim_y * rz2 * v_j[2][1];
        }
        g_mean += transpose(pr.w) * v_p;

        // Σc = W Σ Wᵀ; Σ = M Mᵀ, M = R diag(s).
        let v_sigma = transpose(pr.w) * v_cov_c * pr.w;
        let m = mat3x3<f32>(pr.rot[0] * pr.scale.x, pr.rot[1] * pr.scale.y, pr.rot[2] * pr.scale.z);
        let v_m = 2.0 * v_sigma * m;
        let v_rot = mat3x3<f32>(v_m[0] * pr.scale.x, v_m[1] * pr.scale.y, v_m[2] * pr.scale.z);
        g_log_scale += vec3<f32>(dot(v_m[0], pr.rot[0]), dot(v_m[1], pr.rot[1]), dot(v_m[2], pr.rot[2])) * pr.scale;
        let qn = proj::normalize_quat(quat);
        g_quat += proj::normalize_quat_vjp(quat, proj::rotmat_vjp(qn, v_rot));
    }

    v_means[3u * i] = finite_or_zero(g_mean.x);
    v_means[3u * i + 1u] = finite_or_zero(g_mean.y);
    v_means[3u * i + 2u] = finite_or_zero(g_mean.z);
    v_quats[4u * i] = finite_or_zero(g_quat.x);
    v_quats[4u * i + 1u] = finite_or_zero(g_quat.y);
    v_quats[4u * i + 2u] = finite_or_zero(g_quat.z);
    v_quats[4u * i + 3u] = finite_or_zero(g_quat.w);
    v_log_scales[3u * i] = finite_or_zero(g_log_scale.x);
    v_log_scales[3u * i + 1u] = finite_or_zero(g_log_scale.y);
    v_log_scales[3u * i + 2u] = finite_or_zero(g_log_scale.z);
    v_opacity_logits[i] = finite_or_zero(g_logit);
#ifndef SH
    v_colors[3u * i] = g_rgb.x;
    v_colors[3u * i + 1u] = g_rgb.y;
    v_colors[3u * i + 2u] = g_rgb.z;
#endif
}
