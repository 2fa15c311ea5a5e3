// Tiles touched by each splat, in depth-sorted order, plus a trailing 0 (counts has count + 1
// elements) (input of the exclusive scan that gives
// every splat its first intersection slot).

#import splatdream::types::SortParams
#import splatdream::common::linear_group
#import splatdream::projection as proj

@group(0) @binding(0) var<storage, read_write> params: SortParams;
@group(0) @binding(1) var<storage, read_write> sorted_ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> rects: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> counts: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let s = linear_group(wid, nwg) * 256u + lid;
    if s < params.count {
        counts[s] = proj::rect_area(rects[sorted_ids[s]]);
    } else if s == params.count {
        // One extra zero so the exclusive scan's last element is the total.
        counts[s] = 0u;
    }
}
