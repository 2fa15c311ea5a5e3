//! The GPU radix sort and exclusive scan under the rasterizer: the depth sort (32-bit keys)
//! and the tile sort (only the key bits in use) of `raster::forward`, and the scans that turn
//! per-splat intersection counts into offsets. On their own for tests and `splatdream bench
//! sort` through [`sort_pairs`].
//!
//! Kernels: `shaders/sort_count.wgsl` (per-block 4-bit digit histograms),
//! `shaders/scan_blocks.wgsl` + `scan_add.wgsl` (multi-level exclusive scan),
//! `shaders/sort_scatter.wgsl` (stable scatter), `shaders/fill_u32.wgsl`.

use cubecl::client::Client;
use cubecl::server::Handle;
use gpu::alloc;
use gpu::launch::{grid_1d, launch};

use crate::kernels::{self as k, SortParams};

/// Why [`sort_pairs`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum SortError {
    /// `keys` and `values` differ in length.
    #[error("{keys} keys but {values} values")]
    LengthMismatch {
        /// Keys given.
        keys: usize,
        /// Values given.
        values: usize,
    },
    /// More pairs than a u32 counts.
    #[error("{0} pairs: too many (at most u32::MAX)")]
    TooMany(usize),
    /// The device is not a cubecl (wgpu) device.
    #[error("the radix sort needs a cubecl (wgpu) device")]
    NotCubecl,
    /// A device read failed.
    #[error(transparent)]
    Read(#[from] gpu::ReadError),
}

pub(crate) fn sort_params(count: u32, shift: u32, num_blocks: u32, value: u32) -> SortParams {
    SortParams {
        count,
        shift,
        num_blocks,
        value,
    }
}

/// Fill `count` u32s of `buf` with `value`.
pub(crate) fn fill(client: &Client, buf: &Handle, count: u32, value: u32) {
    if count == 0 {
        return;
    }
    let p = alloc::upload(client, &[sort_params(count, 0, 0, value)]);
    // SAFETY: one thread per element, bounds-checked against params.count (≤ buffer length).
    launch(
        client,
        k::FILL_U32.main,
        grid_1d(count.div_ceil(256)),
        vec![p, buf.clone()],
    );
}

/// A multi-level exclusive prefix sum of `n` u32s, planned once: the per-level parameters
/// and buffers are allocated at creation, so a plan run many times (every radix-sort pass)
/// allocates and uploads nothing.
struct ScanPlan {
    /// Per level: (blocks, params, scanned output, block totals). Level i + 1
    /// scans the block totals of level i.
    levels: Vec<(u32, Handle, Handle, Handle)>,
}

impl ScanPlan {
    fn new(client: &Client, n: u32) -> Self {
        let mut levels = vec![];
        let mut count = n;
        let mut params = vec![];
        loop {
            let blocks = count.div_ceil(256).max(1);
            params.push(sort_params(count, 0, blocks, 0));
            if blocks == 1 {
                break;
            }
            count = blocks;
        }
        let handles = alloc::upload_each(client, &params);
        for (p, h) in params.iter().zip(handles) {
            let out = alloc::empty(client, p.count as usize * 4);
            let sums = alloc::empty(client, p.num_blocks as usize * 4);
            levels.push((p.num_blocks, h, out, sums));
        }
        Self { levels }
    }

    /// Scan `input` (n u32s); returns the buffer holding the result (owned by the plan:
    /// the next run overwrites it).
    fn run(&self, client: &Client, input: &Handle) -> Handle {
        for (i, (blocks, p, out, sums)) in self.levels.iter().enumerate() {
            let input = if i == 0 { input } else { &self.levels[i - 1].3 };
            // SAFETY: reads input[i] and writes out[i] only for i < count; block_sums[block]
            // only for block < num_blocks (extra workgroups of the 2-D grid do nothing).
            launch(
                client,
                k::SCAN_BLOCKS.main,
                grid_1d(*blocks),
                vec![p.clone(), input.clone(), out.clone(), sums.clone()],
            );
        }
        for i in (0..self.levels.len().saturating_sub(1)).rev() {
            let (blocks, p, out, _) = &self.levels[i];
            // SAFETY: data[i] for i < count; block_offsets (the next level's scan) has one
            // entry per block.
            launch(
                client,
                k::SCAN_ADD.main,
                grid_1d(*blocks),
                vec![p.clone(), self.levels[i + 1].2.clone(), out.clone()],
            );
        }
        self.levels[0].2.clone()
    }
}

/// Exclusive prefix sum of `n` u32s. Returns a new buffer of `n` u32s.
pub(crate) fn exclusive_scan(client: &Client, input: &Handle, n: u32) -> Handle {
    ScanPlan::new(client, n).run(client, input)
}

/// Elements per radix-sort block: 256 threads × 16 keys. Must equal `BLOCK` in
/// `sort_count.wgsl` and `sort_scatter.wgsl` (`radix_sort_is_stable` in the end-to-end tests
/// fails for lengths past one block otherwise).
const SORT_BLOCK: u32 = 4096;

/// Stable LSD radix sort of `n` (key, value) u32 pairs on the low `bits` bits of the keys.
/// Returns the sorted (keys, values) buffers. Everything the passes need (parameters,
/// histogram, scan plan, ping-pong buffers) is created once per call.
pub(crate) fn radix_sort(
    client: &Client,
    keys: Handle,
    vals: Handle,
    n: u32,
    bits: u32,
) -> (Handle, Handle) {
    if n <= 1 || bits == 0 {
        return (keys, vals);
    }
    let blocks = n.div_ceil(SORT_BLOCK);
    let passes = bits.div_ceil(4);
    let params: Vec<SortParams> = (0..passes)
        .map(|pass| sort_params(n, 4 * pass, blocks, 0))
        .collect();
    let params = alloc::upload_each(client, &params);
    let hist = alloc::empty(client, 16 * blocks as usize * 4);
    let scan = ScanPlan::new(client, 16 * blocks);
    let (mut k_in, mut v_in) = (keys, vals);
    let (mut k_out, mut v_out) = (
        alloc::empty(client, n as usize * 4),
        alloc::empty(client, n as usize * 4),
    );
    for p in params {
        // SAFETY: keys[i] read for i < count; hist written at digit·num_blocks + block for
        // block < num_blocks (hist has 16·num_blocks entries; num_blocks = ⌈count / BLOCK⌉
        // with the kernels' BLOCK = SORT_BLOCK).
        launch(
            client,
            k::SORT_COUNT.main,
            grid_1d(blocks),
            vec![p.clone(), k_in.clone(), hist.clone()],
        );
        let scanned = scan.run(client, &hist);
        // SAFETY: element i < count is written to scanned[digit, block] + rank, a permutation
        // of 0..count (the scan of the block histograms, counted over the same SORT_BLOCK
        // blocks); threads past count write nothing.
        launch(
            client,
            k::SORT_SCATTER.main,
            grid_1d(blocks),
            vec![
                p,
                k_in.clone(),
                v_in.clone(),
                scanned,
                k_out.clone(),
                v_out.clone(),
            ],
        );
        std::mem::swap(&mut k_in, &mut k_out);
        std::mem::swap(&mut v_in, &mut v_out);
    }
    (k_in, v_in)
}

/// The byte range `[start, start + len)` of a buffer (composes with offsets it already has).
pub(crate) fn slice(h: &Handle, start: u64, len: u64) -> Handle {
    let used = h.size_in_used();
    debug_assert!(
        start + len <= used,
        "slice {start}+{len} of a {used}-byte buffer"
    );
    h.clone()
        .offset_start(start)
        .offset_end(used.saturating_sub(start + len))
}

/// One run of [`sort_pairs`].
#[derive(Clone, Debug, Default)]
pub struct SortRun {
    /// Wall time of the sort alone, from submitting the first pass to the device finishing the
    /// last (the upload before it is waited for and not counted; the wait at the end reads back
    /// one 4-byte key).
    pub elapsed: std::time::Duration,
    /// The sorted keys, when read back (`read_back`); empty otherwise.
    pub keys: Vec<u32>,
    /// The values in the keys' sorted order, when read back; empty otherwise.
    pub values: Vec<u32>,
}

/// The rasterizer's GPU radix sort on its own, for benchmarks and tests: upload `keys` and
/// `values` (u32 pairs, same length) to `device`, wait for the upload, then sort the pairs
/// stably on the low `bits` bits of the keys (LSD, 4 bits per pass: `⌈bits/4⌉` passes, the
/// same code as the rasterizer's depth sort (`bits = 32`) and tile sort) and wait for the
/// result. With `read_back`, the sorted pairs are then read back (not timed).
///
/// # Errors
/// [`SortError`]: the lengths differ, there are more than `u32::MAX` pairs, `device` is not a
/// cubecl (wgpu) device, or a device read failed.
pub fn sort_pairs(
    device: &burn::tensor::Device,
    keys: &[u32],
    values: &[u32],
    bits: u32,
    read_back: bool,
) -> Result<SortRun, SortError> {
    if keys.len() != values.len() {
        return Err(SortError::LengthMismatch {
            keys: keys.len(),
            values: values.len(),
        });
    }
    let n = u32::try_from(keys.len()).map_err(|_| SortError::TooMany(keys.len()))?;
    let client = match device.as_dispatch() {
        burn::backend::DispatchDevice::Cube(d) => d.client(),
        #[allow(unreachable_patterns)]
        _ => return Err(SortError::NotCubecl),
    };
    let k = alloc::upload(&client, keys);
    let v = alloc::upload(&client, values);
    alloc::read::<u32>(&client, slice(&v, 0, 4))?;
    let t0 = std::time::Instant::now();
    let (k, v) = radix_sort(&client, k, v, n, bits.min(32));
    alloc::read::<u32>(&client, slice(&k, 0, 4))?;
    let elapsed = t0.elapsed();
    let mut run = SortRun {
        elapsed,
        ..Default::default()
    };
    if read_back {
        let len = keys.len();
        run.keys = alloc::read::<u32>(&client, k)?;
        run.values = alloc::read::<u32>(&client, v)?;
        run.keys.truncate(len);
        run.values.truncate(len);
    }
    Ok(run)
}
