// Emit one (tile key, splat id) pair per tile a splat touches, walking the same rectangle
// isect_count counted. Splats are visited in depth order, so a stable sort by tile key keeps
// every tile's list front to back. key = camera << tile_bits | tile.

#import splatdream::types::EmitParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: EmitParams;
@group(0) @binding(1) var<storage, read_write> sorted_ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> rects: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> isect_keys: array<u32>;
@group(0) @binding(5) var<storage, read_write> isect_vals: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let s = linear_group(wid, nwg) * 256u + lid;
    if s >= params.count {
        return;
    }
    let id = sorted_ids[s];
    let r = rects[id];
    let cam = id % params.num_cameras;
    var slot = offsets[s];
    for (var ty = r.y; ty < r.w; ty++) {
        for (var tx = r.x; tx < r.z; tx++) {
            if slot >= params.capacity {
                return;
            }
            isect_keys[slot] = (cam << params.tile_bits) | (ty * params.tiles_x + tx);
            isect_vals[slot] = id;
            slot++;
        }
    }
}
