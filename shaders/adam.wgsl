// One Adam step (Kingma & Ba 2015, Algorithm 1; torch.optim.Adam without weight decay), fused
// with the step guard: one thread per element,
//   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  θ ← θ − (lr / (1−β₁ᵗ))·m / (√(v / (1−β₂ᵗ)) + ε),
// unless bad[0] > 0 (a skipped step: θ, m and v are copied unchanged). Writes new buffers;
// every output element below `count` is written.

#import splatdream::types::AdamParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: AdamParams;
// [1]: > 0 when the step is skipped.
@group(0) @binding(1) var<storage, read_write> bad: array<f32>;
@group(0) @binding(2) var<storage, read_write> value: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> moment_m: array<f32>;
@group(0) @binding(5) var<storage, read_write> moment_v: array<f32>;
@group(0) @binding(6) var<storage, read_write> value_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> moment_m_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> moment_v_out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wid, nwg) * 256u + lid;
    if i >= params.count {
        return;
    }
    let theta = value[i];
    let m = moment_m[i];
    let v = moment_v[i];
    if bad[0] > 0.0 {
        value_out[i] = theta;
        moment_m_out[i] = m;
        moment_v_out[i] = v;
        return;
    }
    let g = grad[i];
    let m_new = params.beta_m * m + (1.0 - params.beta_m) * g;
    let v_new = params.beta_v * v + (1.0 - params.beta_v) * g * g;
    let denom = sqrt(v_new / params.correction_v) + params.eps;
    value_out[i] = theta - (params.lr / params.correction_m) * (m_new / denom);
    moment_m_out[i] = m_new;
    moment_v_out[i] = v_new;
}
