// Per-tile [start, end) ranges in the sorted intersection list. ranges must be cleared to 0
// beforehand (fill_u32): tiles without intersections keep the empty range.

#import splatdream::types::RangeParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: RangeParams;
@group(0) @binding(1) var<storage, read_write> isect_keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> ranges: array<vec2<u32>>;

fn range_index(key: u32) -> u32 {
    let cam = key >> params.tile_bits;
    let tile = key & ((1u << params.tile_bits) - 1u);
    return cam * params.tiles_per_camera + tile;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_group(wid, nwg) * 256u + lid;
    let n = params.count;
    if i >= n {
        return;
    }
    let key = isect_keys[i];
    if i == 0u || isect_keys[i - 1u] != key {
        ranges[range_index(key)].x = i;
    }
    if i + 1u == n || isect_keys[i + 1u] != key {
        ranges[range_index(key)].y = i + 1u;
    }
}
