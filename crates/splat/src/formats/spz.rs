//! Niantic's SPZ: the gzip-wrapped single-stream files of versions 2–3 and the version-4 files
//! (a 32-byte `NGSP` header, a table of contents, six zstd streams). The layout and the
//! quantisation follow the format description and reference loader of `nianticlabs/spz`
//! (`README.md`, `src/cc/load-spz.cc`); values are read and written as stored, without an
//! axis conversion, as PlayCanvas splat-transform does (its SPZ holds PLY-frame coordinates).
//!
//! Per splat, in six attribute blocks (this order in both layouts):
//! - positions: three 24-bit little-endian two's-complement fixed-point numbers with
//!   `fractionalBits` fraction bits (we write 12 where the scene fits in ±2048, fewer otherwise);
//! - alphas: `round(sigmoid(opacity logit) · 255)`;
//! - colours: the SH DC coefficient as `round(dc · 0.15 · 255 + 127.5)`;
//! - scales: the log scale as `round((log_scale + 10) · 16)`;
//! - rotations: version 2 stores x, y, z of the unit quaternion with w ≥ 0 as
//!   `round(q · 127.5 + 127.5)`; versions 3–4 the "smallest three": 2 bits naming the largest
//!   |component| (of x, y, z, w), and the other three as a sign bit and a 9-bit magnitude in
//!   units of 1/(511·√2), in one little-endian u32;
//! - SH: the non-DC coefficients, coefficient-major with the channel inner (as
//!   [`SplatData::sh`]), each `round(v · 128) + 128` snapped to 8-bucket (degree 1) or
//!   16-bucket (degrees 2–3) centres on write (splat-transform's default 5/4 bits), read as
//!   `(b − 128) / 128`.
//!
//! All values clamp to 0–255 on write, so colours, scales and SH outside the ranges above are
//! clipped: SPZ is a lossy format.

use std::io::{Read, Write};

use crate::scene::{SplatData, sh_coeffs};

use super::SceneError;

/// `NGSP` read as a little-endian u32: the first word of every SPZ header.
pub const MAGIC: u32 = 0x5053_474e;

/// Fraction bits of the positions we write when the scene fits (±2048 units at 1/4096).
const FRACTIONAL_BITS: u8 = 12;

/// Scale of the colour (SH DC) encoding.
const COLOR_SCALE: f32 = 0.15;

/// zstd level of the version-4 streams (the reference writer's).
const ZSTD_LEVEL: i32 = 12;

/// Deflate never expands more than ≈ 1032×; a gzip body claiming more is refused unread.
const MAX_GZIP_RATIO: u64 = 1100;

/// The SPZ versions [`encode`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpzVersion {
    /// Gzip-wrapped, quaternion x, y, z in 8 bits each.
    V2,
    /// Gzip-wrapped, smallest-three quaternion.
    V3,
    /// `NGSP` header, table of contents, six zstd streams (what splat-transform writes).
    V4,
}

impl SpzVersion {
    /// The version number in the header.
    #[must_use]
    pub fn number(self) -> u32 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
            Self::V4 => 4,
        }
    }
}

/// Bytes per splat of each attribute block: positions, alphas, colours, scales, rotations, SH.
fn block_sizes(n: usize, version: u32, sh_degree: u32) -> [usize; 6] {
    let rot = if version >= 3 { 4 } else { 3 };
    let rest = (sh_coeffs(sh_degree) - 1) * 3;
    [9 * n, n, 3 * n, 3 * n, rot * n, rest * n]
}

fn invalid(path: &str, field: &str, message: String) -> SceneError {
    SceneError::Invalid {
        path: path.to_string(),
        format: "SPZ",
        field: field.to_string(),
        message,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The fields both header layouts share.
struct Head {
    version: u32,
    points: usize,
    sh_degree: u32,
    fractional_bits: u8,
}

fn check_head(h: &Head, path: &str) -> Result<(), SceneError> {
    if h.sh_degree > 3 {
        return Err(invalid(
            path,
            "shDegree",
            format!("SH degree {} is not supported (0–3)", h.sh_degree),
        ));
    }
    if h.fractional_bits > 23 {
        return Err(invalid(
            path,
            "fractionalBits",
            format!(
                "{} fraction bits do not fit a 24-bit position",
                h.fractional_bits
            ),
        ));
    }
    Ok(())
}

/// Decode SPZ bytes (any of versions 2–4; the layout is told by the magic: gzip or `NGSP`).
/// `path` names the file in errors.
///
/// # Errors
/// [`SceneError::Invalid`] naming the header field or block at fault: not an SPZ file, an
/// unsupported version (1, or above 4), SH degree 4, a truncated or corrupt stream, sizes that
/// disagree with the header.
pub fn decode(bytes: &[u8], path: &str) -> Result<SplatData, SceneError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        decode_gzip(bytes, path)
    } else if bytes.len() >= 4 && u32_at(bytes, 0) == MAGIC {
        decode_ngsp(bytes, path)
    } else {
        Err(invalid(
            path,
            "magic",
            "neither a gzip stream (SPZ 1–3) nor an `NGSP` header (SPZ 4)".into(),
        ))
    }
}

fn decode_gzip(bytes: &[u8], path: &str) -> Result<SplatData, SceneError> {
    let mut gz = flate2::read::GzDecoder::new(bytes);
    let mut head = [0u8; 16];
    gz.read_exact(&mut head)
        .map_err(|e| invalid(path, "header", format!("the gzip stream ends early: {e}")))?;
    if u32_at(&head, 0) != MAGIC {
        return Err(invalid(
            path,
            "magic",
            "the gzip body does not start with `NGSP`".into(),
        ));
    }
    let h = Head {
        version: u32_at(&head, 4),
        points: u32_at(&head, 8) as usize,
        sh_degree: u32::from(head[12]),
        fractional_bits: head[13],
    };
    if !(2..=3).contains(&h.version) {
        return Err(invalid(
            path,
            "version",
            format!(
                "gzip-wrapped SPZ version {} is not supported (2 or 3; 1 is float16 and \
                 was never released)",
                h.version
            ),
        ));
    }
    check_head(&h, path)?;
    let sizes = block_sizes(h.points, h.version, h.sh_degree);
    let total: usize = sizes.iter().sum();
    if total as u64 > bytes.len() as u64 * MAX_GZIP_RATIO {
        return Err(invalid(
            path,
            "numPoints",
            format!(
                "{} points need {total} bytes, more than a {}-byte gzip stream can hold",
                h.points,
                bytes.len()
            ),
        ));
    }
    let mut body = vec![0u8; total];
    gz.read_exact(&mut body).map_err(|e| {
        invalid(
            path,
            "numPoints",
            format!("the gzip body holds fewer than {} points: {e}", h.points),
        )
    })?;
    let mut blocks = Vec::with_capacity(6);
    let mut at = 0;
    for s in sizes {
        blocks.push(body[at..at + s].to_vec());
        at += s;
    }
    unpack(&h, &blocks, path)
}

fn decode_ngsp(bytes: &[u8], path: &str) -> Result<SplatData, SceneError> {
    if bytes.len() < 32 {
        return Err(invalid(
            path,
            "header",
            format!("{} bytes, the header needs 32", bytes.len()),
        ));
    }
    let h = Head {
        version: u32_at(bytes, 4),
        points: u32_at(bytes, 8) as usize,
        sh_degree: u32::from(bytes[12]),
        fractional_bits: bytes[13],
    };
    if h.version != 4 {
        return Err(invalid(
            path,
            "version",
            format!(
                "an `NGSP` header of version {} is not supported (4)",
                h.version
            ),
        ));
    }
    check_head(&h, path)?;
    let streams = usize::from(bytes[15]);
    if streams != 6 {
        return Err(invalid(
            path,
            "numStreams",
            format!("{streams} streams, expected 6"),
        ));
    }
    let toc = u32_at(bytes, 16) as usize;
    let toc_end = toc + streams * 16;
    if toc < 32 || toc_end > bytes.len() {
        return Err(invalid(
            path,
            "tocByteOffset",
            format!(
                "{toc} does not leave room for the table of contents in {} bytes",
                bytes.len()
            ),
        ));
    }
    let sizes = block_sizes(h.points, h.version, h.sh_degree);
    let names = ["positions", "alphas", "colors", "scales", "rotations", "sh"];
    let mut at = toc_end;
    let mut blocks = Vec::with_capacity(6);
    for (i, &expect) in sizes.iter().enumerate() {
        let compressed = u64_at(bytes, toc + 16 * i);
        let raw = u64_at(bytes, toc + 16 * i + 8);
        let field = format!("stream {i} ({})", names[i]);
        if raw != expect as u64 {
            return Err(invalid(
                path,
                &field,
                format!(
                    "{raw} bytes uncompressed, {} points need {expect}",
                    h.points
                ),
            ));
        }
        let end = usize::try_from(compressed)
            .ok()
            .and_then(|c| at.checked_add(c))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                invalid(
                    path,
                    &field,
                    format!("{compressed} compressed bytes run past the file end"),
                )
            })?;
        let data = if expect == 0 {
            vec![]
        } else {
            zstd::bulk::decompress(&bytes[at..end], expect)
                .map_err(|e| invalid(path, &field, format!("zstd: {e}")))?
        };
        if data.len() != expect {
            return Err(invalid(
                path,
                &field,
                format!("decompressed to {} bytes, expected {expect}", data.len()),
            ));
        }
        blocks.push(data);
        at = end;
    }
    unpack(&h, &blocks, path)
}

/// `ln(p / (1 − p))` of an 8-bit alpha, with 0 and 255 taken half a step inside so that
/// every logit is finite.
fn alpha_logit(a: u8) -> f32 {
    let p = (f32::from(a) / 255.0).clamp(0.5 / 255.0, 254.5 / 255.0);
    (p / (1.0 - p)).ln()
}

fn unpack(h: &Head, b: &[Vec<u8>], path: &str) -> Result<SplatData, SceneError> {
    let n = h.points;
    let k = sh_coeffs(h.sh_degree);
    let mut d = SplatData::with_capacity(n, h.sh_degree);
    let unit = 1.0 / (1u32 << h.fractional_bits) as f32;
    for p in b[0].chunks_exact(3) {
        let v = i32::from_le_bytes([p[0], p[1], p[2], if p[2] & 0x80 != 0 { 0xff } else { 0 }]);
        d.means.push(v as f32 * unit);
    }
    d.opacity_logits
        .extend(b[1].iter().map(|&a| alpha_logit(a)));
    d.log_scales
        .extend(b[3].iter().map(|&s| f32::from(s) / 16.0 - 10.0));
    let dc: Vec<f32> = b[2]
        .iter()
        .map(|&c| (f32::from(c) / 255.0 - 0.5) / COLOR_SCALE)
        .collect();
    if h.version >= 3 {
        for r in b[4].chunks_exact(4) {
            let xyzw = smallest_three_unpack(u32::from_le_bytes([r[0], r[1], r[2], r[3]]));
            d.quats.extend([xyzw[3], xyzw[0], xyzw[1], xyzw[2]]);
        }
    } else {
        for r in b[4].chunks_exact(3) {
            let [x, y, z] = [r[0], r[1], r[2]].map(|c| f32::from(c) / 127.5 - 1.0);
            let w = (1.0 - (x * x + y * y + z * z)).max(0.0).sqrt();
            d.quats.extend([w, x, y, z]);
        }
    }
    let rest = (k - 1) * 3;
    for i in 0..n {
        d.sh.extend_from_slice(&dc[3 * i..3 * i + 3]);
        d.sh.extend(
            b[5][i * rest..(i + 1) * rest]
                .iter()
                .map(|&v| (f32::from(v) - 128.0) / 128.0),
        );
    }
    if let Some(i) = d
        .quats
        .chunks_exact(4)
        .position(|q| q.iter().all(|&c| c == 0.0))
    {
        return Err(invalid(
            path,
            "rotations",
            format!("splat {i} has a zero quaternion"),
        ));
    }
    Ok(d)
}

/// Decode the smallest-three rotation word into x, y, z, w.
fn smallest_three_unpack(mut word: u32) -> [f32; 4] {
    let largest = (word >> 30) as usize;
    let mut q = [0.0f32; 4];
    let mut sum = 0.0;
    for i in (0..4).rev() {
        if i == largest {
            continue;
        }
        let mag = (word & 0x1ff) as f32 / 511.0 * std::f32::consts::FRAC_1_SQRT_2;
        q[i] = if (word >> 9) & 1 == 1 { -mag } else { mag };
        sum += q[i] * q[i];
        word >>= 10;
    }
    q[largest] = (1.0 - sum).max(0.0).sqrt();
    q
}

/// Encode a unit quaternion (x, y, z, w) as the smallest-three word.
fn smallest_three_pack(q: [f32; 4]) -> u32 {
    let largest = (0..4)
        .max_by(|&a, &b| q[a].abs().total_cmp(&q[b].abs()))
        .unwrap_or(3);
    let negate = q[largest] < 0.0;
    let mut word = largest as u32;
    for (i, &c) in q.iter().enumerate() {
        if i == largest {
            continue;
        }
        let sign = u32::from((c < 0.0) != negate);
        let mag = (c.abs() / std::f32::consts::FRAC_1_SQRT_2 * 511.0 + 0.5).min(511.0) as u32;
        word = (word << 10) | (sign << 9) | mag;
    }
    word
}

fn to_u8(x: f32) -> u8 {
    x.round().clamp(0.0, 255.0) as u8
}

/// An SH coefficient as a byte, snapped to the centre of a bucket of `bucket` values.
fn sh_byte(x: f32, bucket: i32) -> u8 {
    let q = (x * 128.0).round() as i32 + 128;
    let q = (q + bucket / 2) / bucket * bucket;
    q.clamp(0, 255) as u8
}

/// The fraction bits for the scene: 12, or fewer when a mean lies outside ±2048.
fn fraction_bits(data: &SplatData) -> u8 {
    let max = data.means.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut bits = FRACTIONAL_BITS;
    while bits > 0 && max * (1u32 << bits) as f32 >= 8_388_607.0 {
        bits -= 1;
    }
    bits
}

/// Encode `data` as SPZ `version`.
///
/// # Errors
/// [`SceneError::Invalid`] when a mean is beyond the 24-bit range even with no fraction bits
/// (|x| ≥ 2²³), the scene has more than 2³² − 1 splats, or compression fails.
pub fn encode(data: &SplatData, version: SpzVersion, path: &str) -> Result<Vec<u8>, SceneError> {
    let n = data.len();
    let points = u32::try_from(n).map_err(|_| {
        invalid(
            path,
            "numPoints",
            format!("{n} splats exceed SPZ's 2³² − 1"),
        )
    })?;
    let bits = fraction_bits(data);
    let unit = (1u32 << bits) as f32;
    let v = version.number();
    let sizes = block_sizes(n, v, data.sh_degree);
    let mut blocks: Vec<Vec<u8>> = sizes.iter().map(|&s| Vec::with_capacity(s)).collect();
    for (i, m) in data.means.iter().enumerate() {
        let f = (m * unit).round();
        if f.is_nan() || f.abs() >= 8_388_608.0 {
            return Err(invalid(
                path,
                "positions",
                format!(
                    "splat {}: coordinate {m} is beyond SPZ's 24-bit range",
                    i / 3
                ),
            ));
        }
        blocks[0].extend_from_slice(&(f as i32).to_le_bytes()[..3]);
    }
    blocks[1].extend(
        data.opacity_logits
            .iter()
            .map(|&a| to_u8(255.0 / (1.0 + (-a).exp()))),
    );
    let k = sh_coeffs(data.sh_degree);
    for i in 0..n {
        for c in 0..3 {
            blocks[2].push(to_u8(data.sh[i * k * 3 + c] * COLOR_SCALE * 255.0 + 127.5));
        }
    }
    blocks[3].extend(data.log_scales.iter().map(|&s| to_u8((s + 10.0) * 16.0)));
    for q in data.quats.chunks_exact(4) {
        let [w, x, y, z] = super::unit_quat(q);
        if version == SpzVersion::V2 {
            let s = if w < 0.0 { -127.5 } else { 127.5 };
            blocks[4].extend([x, y, z].map(|c| to_u8(c * s + 127.5)));
        } else {
            blocks[4].extend_from_slice(&smallest_three_pack([x, y, z, w]).to_le_bytes());
        }
    }
    for i in 0..n {
        for j in 1..k {
            let bucket = if j < 4 { 8 } else { 16 };
            for c in 0..3 {
                blocks[5].push(sh_byte(data.sh[i * k * 3 + 3 * j + c], bucket));
            }
        }
    }
    let fail = |what: &str, e: std::io::Error| invalid(path, what, e.to_string());
    match version {
        SpzVersion::V2 | SpzVersion::V3 => {
            let mut head = Vec::with_capacity(16);
            head.extend_from_slice(&MAGIC.to_le_bytes());
            head.extend_from_slice(&v.to_le_bytes());
            head.extend_from_slice(&points.to_le_bytes());
            head.extend_from_slice(&[data.sh_degree as u8, bits, 0, 0]);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&head).map_err(|e| fail("gzip", e))?;
            for b in &blocks {
                gz.write_all(b).map_err(|e| fail("gzip", e))?;
            }
            gz.finish().map_err(|e| fail("gzip", e))
        }
        SpzVersion::V4 => {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&points.to_le_bytes());
            out.extend_from_slice(&[data.sh_degree as u8, bits, 0, 6]);
            out.extend_from_slice(&32u32.to_le_bytes());
            out.extend_from_slice(&[0u8; 12]);
            let mut streams = Vec::with_capacity(6);
            for b in &blocks {
                streams.push(zstd::bulk::compress(b, ZSTD_LEVEL).map_err(|e| fail("zstd", e))?);
            }
            for (s, b) in streams.iter().zip(&blocks) {
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            }
            for s in &streams {
                out.extend_from_slice(s);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_three_round_trips_within_its_step() {
        for q in [
            [0.1f32, -0.7, 0.2, 0.67],
            [-0.9, 0.1, 0.3, -0.29],
            [0.0, 0.0, 0.0, 1.0],
        ] {
            let n = q.iter().map(|c| c * c).sum::<f32>().sqrt();
            let q = q.map(|c| c / n);
            let back = smallest_three_unpack(smallest_three_pack(q));
            // q and −q are one rotation: compare up to sign.
            let dot: f32 = q.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!(dot.abs() > 1.0 - 1e-5, "{q:?} → {back:?}");
        }
    }

    #[test]
    fn sh_buckets_keep_zero_and_round_to_centres() {
        assert_eq!(sh_byte(0.0, 8), 128);
        assert_eq!(sh_byte(0.0, 16), 128);
        assert_eq!(sh_byte(0.47, 16), 192);
        assert_eq!(sh_byte(1.0, 16), 255);
        assert_eq!(sh_byte(-2.0, 8), 0);
    }

    #[test]
    fn far_scenes_trade_fraction_bits_for_range() {
        let mut d = SplatData {
            means: vec![0.5, -3000.0, 1.0],
            quats: vec![1.0, 0.0, 0.0, 0.0],
            log_scales: vec![-2.0; 3],
            opacity_logits: vec![0.0],
            sh: vec![0.1, 0.2, 0.3],
            sh_degree: 0,
        };
        assert_eq!(fraction_bits(&d), 11);
        let back = decode(&encode(&d, SpzVersion::V4, "t.spz").unwrap(), "t.spz").unwrap();
        assert!((back.means[1] + 3000.0).abs() < 1e-3, "{:?}", back.means);
        d.means[1] = 1e9;
        let e = encode(&d, SpzVersion::V4, "t.spz").unwrap_err().to_string();
        assert!(e.contains("t.spz") && e.contains("positions"), "{e}");
    }
}
