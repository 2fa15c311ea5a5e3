//! Buffer allocation on burn's cubecl client, and the device facts kernels consult when
//! they size bindings or pick variants (recorded by `GpuContext::new` for the device it opens).
//!
//! Kernels must never rely on zero-initialised memory. [`empty`] is the one allocation path the
//! splat kernels use for fresh buffers; with garbage filling on (tests call
//! [`set_garbage_fill`], or set `SPLATDREAM_GARBAGE_FILL=1`), every fresh buffer is filled with
//! a repeating NaN/large-integer byte pattern before any kernel sees it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cubecl::client::Client;
use cubecl::server::Handle;

static GARBAGE: AtomicBool = AtomicBool::new(false);

/// WebGPU's default (and lavapipe's) maximum storage-buffer binding size: 128 MiB.
pub const DEFAULT_MAX_BINDING: u64 = 128 << 20;
static MAX_BINDING: AtomicU64 = AtomicU64::new(DEFAULT_MAX_BINDING);

/// Record the device's `max_storage_buffer_binding_size` (done by `GpuContext::new`).
pub fn set_max_binding_size(bytes: u64) {
    MAX_BINDING.store(bytes.max(1 << 20), Ordering::Relaxed);
}

/// The largest storage-buffer binding kernels may use, in bytes.
pub fn max_binding_size() -> u64 {
    MAX_BINDING.load(Ordering::Relaxed)
}

static SUBGROUPS: AtomicBool = AtomicBool::new(false);

/// Record whether kernels may use subgroup operations (done by `GpuContext::new`).
pub fn set_subgroups(on: bool) {
    SUBGROUPS.store(on, Ordering::Relaxed);
}

/// Whether kernels may use subgroup operations on the device (off until a `GpuContext` says
/// otherwise: the portable path).
pub fn subgroups() -> bool {
    SUBGROUPS.load(Ordering::Relaxed)
}

/// Turn garbage filling of fresh buffers on or off for the whole process.
pub fn set_garbage_fill(on: bool) {
    GARBAGE.store(on, Ordering::Relaxed);
}

/// Whether fresh buffers are filled with garbage (the flag, or `SPLATDREAM_GARBAGE_FILL=1`).
pub fn garbage_fill() -> bool {
    GARBAGE.load(Ordering::Relaxed)
        || std::env::var("SPLATDREAM_GARBAGE_FILL").is_ok_and(|v| v == "1")
}

/// The garbage pattern: as f32 it alternates a quiet NaN, -inf-ish huge values and a denormal;
/// as u32 it is large, so an unwritten index or count is out of range.
const PATTERN: [u32; 4] = [0x7FC0_1234, 0xFF7F_FFFF, 0x0000_0001, 0xDEAD_BEEF];

/// Smallest buffer handed out: a binding must hold at least one element of its array type
/// (40 bytes for `array<Projected>`, the largest element the kernels use), also when the
/// array is logically empty.
pub const MIN_BYTES: usize = 64;

/// A fresh device buffer of at least `bytes` bytes (rounded up to a multiple of 16, at least
/// [`MIN_BYTES`]). Contents are undefined, and are garbage when [`garbage_fill`] is on.
pub fn empty(client: &Client, bytes: usize) -> Handle {
    let bytes = bytes.max(MIN_BYTES).next_multiple_of(16);
    if garbage_fill() {
        let words: Vec<u32> = (0..bytes / 4).map(|i| PATTERN[i % PATTERN.len()]).collect();
        client.create_from_slice(bytemuck::cast_slice(&words))
    } else {
        client.empty(bytes)
    }
}

/// A device buffer holding `data`.
pub fn upload<T: bytemuck::Pod>(client: &Client, data: &[T]) -> Handle {
    if data.is_empty() {
        return empty(client, MIN_BYTES);
    }
    client.create_from_slice(bytemuck::cast_slice(data))
}

/// Upload several small parameter structs into one buffer and return one binding per item.
/// Each item starts on a 256-byte boundary (WebGPU's maximum
/// `min_storage_buffer_offset_alignment`), so every slice is a valid storage binding.
pub fn upload_each<T: bytemuck::Pod>(client: &Client, items: &[T]) -> Vec<Handle> {
    const STRIDE: usize = 256;
    let size = std::mem::size_of::<T>();
    assert!(size <= STRIDE, "parameter structs must fit {STRIDE} bytes");
    if items.is_empty() {
        return vec![];
    }
    let mut bytes = vec![0u8; STRIDE * items.len()];
    for (i, item) in items.iter().enumerate() {
        bytes[i * STRIDE..i * STRIDE + size].copy_from_slice(bytemuck::bytes_of(item));
    }
    let all = client.create_from_slice(&bytes);
    let total = all.size_in_used();
    (0..items.len() as u64)
        .map(|i| {
            let start = i * STRIDE as u64;
            all.clone()
                .offset_start(start)
                .offset_end(total - start - size as u64)
        })
        .collect()
}

/// Read a whole buffer back as `T`s (blocks until the queue reaches it).
///
/// # Errors
/// [`crate::ReadError`] with the device error behind a failed read (allocation or launch
/// failures surface here).
pub fn read<T: bytemuck::Pod>(client: &Client, handle: Handle) -> Result<Vec<T>, crate::ReadError> {
    let bytes = client
        .read_one(handle)
        .map_err(crate::ReadError::from_debug)?;
    Ok(bytemuck::pod_collect_to_vec(&bytes[..]))
}
