// Radix sort pass, step 2: stable scatter of one block of 4096 elements (256 threads × 16
// consecutive elements each; sort_count.wgsl counted the same blocks). Each thread counts the
// digits of its 16 elements in registers (16 digits × 16-bit counters packed in 8 u32s), one
// block-wide scan of those packed counts gives every thread how many elements of each digit
// precede its own in the block, and the thread then places its elements in order. Elements
// of equal digit keep their input order: a stable pass.

#import splatdream::types::SortParams
#import splatdream::common::linear_group

const THREADS: u32 = 256u;
const KEYS_PER_THREAD: u32 = 16u;
const BLOCK: u32 = 4096u;

@group(0) @binding(0) var<storage, read_write> params: SortParams;
@group(0) @binding(1) var<storage, read_write> keys_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist_scanned: array<u32>;
@group(0) @binding(4) var<storage, read_write> keys_out: array<u32>;
@group(0) @binding(5) var<storage, read_write> vals_out: array<u32>;

var<workgroup> lo: array<array<vec4<u32>, 256>, 2>;
var<workgroup> hi: array<array<vec4<u32>, 256>, 2>;
// First output slot of each digit in this block (the scanned histogram).
var<workgroup> digit_base: array<u32, 16>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let block = linear_group(wid, nwg);
    let in_range = block < params.num_blocks;
    let first = block * BLOCK + lid * KEYS_PER_THREAD;
    // Elements first .. first + valid of this thread exist.
    var valid = 0u;
    if in_range && first < params.count {
        valid = min(KEYS_PER_THREAD, params.count - first);
    }
    var keys: array<u32, 16>;
    // Per-thread digit counts: digit d is the 16-bit half d % 2 of word d / 2 (≤ 4096 fits).
    var own = array<u32, 8>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
    for (var j = 0u; j < valid; j++) {
        let key = keys_in[first + j];
        keys[j] = key;
        let digit = (key >> params.shift) & 15u;
        own[digit / 2u] += 1u << (16u * (digit % 2u));
    }
    if lid < 16u && in_range {
        digit_base[lid] = hist_scanned[lid * params.num_blocks + block];
    }
    lo[0][lid] = vec4<u32>(own[0], own[1], own[2], own[3]);
    hi[0][lid] = vec4<u32>(own[4], own[5], own[6], own[7]);
    workgroupBarrier();
    // Hillis–Steele inclusive scan of the packed counts over the 256 threads.
    var src = 0u;
    for (var off = 1u; off < THREADS; off = off << 1u) {
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
    if valid == 0u {
        return;
    }
    // Exclusive counts (inclusive − own; no half borrows from the other, as inclusive ≥ own
    // counter by counter), turned into each digit's next output slot.
    let incl_lo = lo[src][lid];
    let incl_hi = hi[src][lid];
    var next: array<u32, 16>;
    for (var w = 0u; w < 8u; w++) {
        var incl: u32;
        if w < 4u {
            incl = incl_lo[w];
        } else {
            incl = incl_hi[w - 4u];
        }
        let excl = incl - own[w];
        next[2u * w] = digit_base[2u * w] + (excl & 0xffffu);
        next[2u * w + 1u] = digit_base[2u * w + 1u] + (excl >> 16u);
    }
    for (var j = 0u; j < valid; j++) {
        let key = keys[j];
        let digit = (key >> params.shift) & 15u;
        let dst = next[digit];
        next[digit] = dst + 1u;
        keys_out[dst] = key;
        vals_out[dst] = vals_in[first + j];
    }
}
