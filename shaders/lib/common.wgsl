#define_import_path splatdream::common

// Linear workgroup index on a 2-D dispatch grid (gpu::launch::grid_1d tiles past 65,535).
fn linear_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// True when x is a finite float. Tests the bits: WGSL lets implementations assume no NaN/Inf
// in arithmetic, so `x == x` is not a reliable test.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn is_finite3(v: vec3<f32>) -> bool {
    return is_finite(v.x) && is_finite(v.y) && is_finite(v.z);
}

// Finite or zero.
fn finite_or_zero(x: f32) -> f32 {
    return select(0.0, x, is_finite(x));
}

// Note on bindings: every storage buffer is declared read_write, even when a kernel only reads
// it. cubecl sub-allocates tensors from shared wgpu buffers (pages), and wgpu tracks usage per
// buffer, so a read-only and a read-write binding of two tensors on one page would conflict.
