// Exclusive prefix sum, level 1: each workgroup scans 256 u32s and writes its block total.
// The host scans the block totals recursively and adds them back (scan_add.wgsl).

#import splatdream::types::SortParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: SortParams;
@group(0) @binding(1) var<storage, read_write> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read_write> block_sums: array<u32>;

var<workgroup> buf: array<array<u32, 256>, 2>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let block = linear_group(wid, nwg);
    let i = block * 256u + lid;
    var v = 0u;
    if i < params.count {
        v = input[i];
    }
    buf[0][lid] = v;
    workgroupBarrier();
    // Hillis–Steele inclusive scan, double-buffered.
    var src = 0u;
    for (var off = 1u; off < 256u; off = off << 1u) {
        var x = buf[src][lid];
        if lid >= off {
            x += buf[src][lid - off];
        }
        buf[1u - src][lid] = x;
        workgroupBarrier();
        src = 1u - src;
    }
    let inclusive = buf[src][lid];
    if i < params.count {
        output[i] = inclusive - v;
    }
    if lid == 255u && block < params.num_blocks {
        block_sums[block] = inclusive;
    }
}
