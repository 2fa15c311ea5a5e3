// Exclusive prefix sum, level 2: add each block's scanned offset to its elements.

#import splatdream::types::SortParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: SortParams;
@group(0) @binding(1) var<storage, read_write> block_offsets: array<u32>;
@group(0) @binding(2) var<storage, read_write> data: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let block = linear_group(wid, nwg);
    let i = block * 256u + lid;
    if i < params.count {
        data[i] += block_offsets[block];
    }
}
