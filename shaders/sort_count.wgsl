// Radix sort pass, step 1: per-block histogram of the 4-bit digit at params.shift.
// hist is digit-major, hist[digit * num_blocks + block], so an exclusive scan of the whole
// array gives every (digit, block) its first output slot: a stable LSD radix sort
// (Satish, Harris & Garland 2009; one 4-bit digit per pass).
//
// A block is 4096 elements (256 threads × 16), the same blocks sort_scatter.wgsl ranks; the
// host's SORT_BLOCK must equal BLOCK. Here each thread counts 16 elements strided by 256
// (coalesced reads), in registers, and adds its non-zero counts to the block's.

#import splatdream::types::SortParams
#import splatdream::common::linear_group

const THREADS: u32 = 256u;
const KEYS_PER_THREAD: u32 = 16u;
const BLOCK: u32 = 4096u;

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
    var own = array<u32, 16>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
    if block < params.num_blocks {
        for (var j = 0u; j < KEYS_PER_THREAD; j++) {
            let i = block * BLOCK + j * THREADS + lid;
            if i < params.count {
                own[(keys[i] >> params.shift) & 15u] += 1u;
            }
        }
    }
    workgroupBarrier();
    for (var d = 0u; d < 16u; d++) {
        if own[d] != 0u {
            atomicAdd(&counts[d], own[d]);
        }
    }
    workgroupBarrier();
    if lid < 16u && block < params.num_blocks {
        hist[lid * params.num_blocks + block] = atomicLoad(&counts[lid]);
    }
}
