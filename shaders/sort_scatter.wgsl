// Radix sort pass, step 2: stable scatter. Each element's rank among the earlier elements of
// its block with the same digit comes from a block-wide scan of packed one-hot counters
// (16 digits × 16-bit counters in 8 u32s per thread).

#import splatdream::types::SortParams
#import splatdream::common::linear_group

@group(0) @binding(0) var<storage, read_write> params: SortParams;
@group(0) @binding(1) var<storage, read_write> keys_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist_scanned: array<u32>;
@group(0) @binding(4) var<storage, read_write> keys_out: array<u32>;
@group(0) @binding(5) var<storage, read_write> vals_out: array<u32>;

var<workgroup> lo: array<array<vec4<u32>, 256>, 2>;
var<workgroup> hi: array<array<vec4<u32>, 256>, 2>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let block = linear_group(wid, nwg);
    let i = block * 256u + lid;
    let valid = i < params.count && block < params.num_blocks;
    var key = 0u;
    var digit = 16u;
    if valid {
        key = keys_in[i];
        digit = (key >> params.shift) & 15u;
    }
    // One-hot: digit d sets counter d (word d / 2, half d % 2).
    var onehot = array<u32, 8>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
    if digit < 16u {
        onehot[digit / 2u] = 1u << (16u * (digit % 2u));
    }
    lo[0][lid] = vec4<u32>(onehot[0], onehot[1], onehot[2], onehot[3]);
    hi[0][lid] = vec4<u32>(onehot[4], onehot[5], onehot[6], onehot[7]);
    workgroupBarrier();
    var src = 0u;
    for (var off = 1u; off < 256u; off = off << 1u) {
        var a = lo[src][lid];
        var b = hi[src][lid];
        if lid >= off {
            a += lo[src][lid - off];
            b += hi[src][lid - off];
        }
        lo[1u - src][lid] = a;
        hi[1u - src][lid] = b;
        workgroupBarrier();
        src = 1u - src;
    }
    if digit < 16u {
        let word = digit / 2u;
        var packed: u32;
        if word < 4u {
            packed = lo[src][lid][word];
        } else {
            packed = hi[src][lid][word - 4u];
        }
        let inclusive = (packed >> (16u * (digit % 2u))) & 0xffffu;
        let dst = hist_scanned[digit * params.num_blocks + block] + inclusive - 1u;
        keys_out[dst] = key;
        vals_out[dst] = vals_in[i];
    }
}
