// MCMC position noise (Kheradmand et al. 2024, "3D Gaussian Splatting as Markov Chain Monte
// Carlo", eq. 9; gsplat's `inject_noise_to_position`), one thread per splat:
//   means ← means + scale · σ(k·(1 − o − x0)) · Σ ε,   Σ = R S² Rᵀ,
// R from the normalised quaternion (wxyz, norm clamped to ≥ 1e-12 as torch's F.normalize),
// S = diag(exp(log_scales)), o = sigmoid(opacity logit), ε ~ N(0, I) given per splat.
// Writes a new buffer; every element below 3·count is written.

#import splatdream::types::NoiseParams
#import splatdream::common::linear_group
#import splatdream::projection::quat_to_rotmat

@group(0) @binding(0) var<storage, read_write> params: NoiseParams;
// [N, 3], [N, 4] (w, x, y, z), [N, 3], [N], [N, 3].
@group(0) @binding(1) var<storage, read_write> means: array<f32>;
@group(0) @binding(2) var<storage, read_write> quats: array<f32>;
@group(0) @binding(3) var<storage, read_write> log_scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> opacity_logits: array<f32>;
@group(0) @binding(5) var<storage, read_write> eps: array<f32>;
// [N, 3].
@group(0) @binding(6) var<storage, read_write> means_out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wid, nwg) * 256u + lid;
    if i >= params.count {
        return;
    }
    let q_raw = vec4<f32>(quats[4u * i], quats[4u * i + 1u], quats[4u * i + 2u], quats[4u * i + 3u]);
    let q = q_raw / max(length(q_raw), 1e-12);
    let r = quat_to_rotmat(q);
    let s2 = exp(2.0 * vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]));
    let e = vec3<f32>(eps[3u * i], eps[3u * i + 1u], eps[3u * i + 2u]);
    let cov_eps = r * (s2 * (transpose(r) * e));
    let o = 1.0 / (1.0 + exp(-opacity_logits[i]));
    let gate = 1.0 / (1.0 + exp(-params.steepness * (1.0 - o - params.centre)));
    let step = params.scale * gate * cov_eps;
    means_out[3u * i] = means[3u * i] + step.x;
    means_out[3u * i + 1u] = means[3u * i + 1u] + step.y;
    means_out[3u * i + 2u] = means[3u * i + 2u] + step.z;
}
