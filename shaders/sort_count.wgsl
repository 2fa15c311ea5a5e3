// Radix sort pass, step 1: per-block histogram of the 4-bit digit at params.shift.
// hist is digit-major, hist[digit * num_blocks + block], so an exclusive scan of the whole
// array gives every (digit, block) its first output slot: a stable LSD radix sort
// (Satish, Harris & Garland 2009; one 4-bit digit per pass).

#import splatdream::types::SortParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: SortParams;
@group(0) @binding(1) var<storage, read_write> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<u32>;

var<workgroup> counts: array<atomic<u32>, 16>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let block = linear_group(wid, nwg);
    if lid < 16u {
        atomicStore(&counts[lid], 0u);
    }
    workgroupBarrier();
    let i = block * 256u + lid;
    if i < params.count {
        let digit = (keys[i] >> params.shift) & 15u;
        atomicAdd(&counts[digit], 1u);
    }
    workgroupBarrier();
    if lid < 16u && block < params.num_blocks {
        hist[lid * params.num_blocks + block] = atomicLoad(&counts[lid]);
    }
}
