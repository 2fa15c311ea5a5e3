// Fill a u32 buffer with params.value (used to clear accumulators and tile ranges: no kernel
// relies on zero-initialised memory).

#import splatdream::types::SortParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: SortParams;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wid, nwg) * 256u + lid;
    if i < params.count {
        data[i] = params.value;
    }
}
