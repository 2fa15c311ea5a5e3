//! PlayCanvas's compressed PLY (SuperSplat, splat-transform): splats in chunks of 256, each
//! chunk with float bounds, each splat four packed u32 words, optional 8-bit SH. The layout
//! and quantisation follow splat-transform's `writeCompressedPly` / compressed reader:
//!
//! - `element chunk ⌈N/256⌉`: `min_x min_y min_z max_x max_y max_z`, `min_scale_x … max_scale_z`
//!   (log scales, clamped to ±20), and optionally `min_r min_g min_b max_r max_g max_b` (colour
//!   = 0.5 + C0·DC; without them the packed colour is the colour itself);
//! - `element vertex N`: `packed_position` and `packed_scale` (11-10-11 bits, unorm within the
//!   chunk's bounds, x in the high bits), `packed_rotation` (2 bits naming the largest |component|
//!   of rot_0…rot_3 = w x y z, made positive, then the other three as 10-bit unorm of
//!   `c·√2/2 + ½`), `packed_color` (8-8-8-8: r g b within the chunk's colour bounds, then
//!   sigmoid(opacity));
//! - `element sh N` (degree ≥ 1): `f_rest_*` as uchar `trunc((v/8 + ½)·256)`, in INRIA's
//!   channel-major order; read back as `(b + ½)/256` (0 and 255 as 0 and 1), then `(· − ½)·8`.
//!
//! We write splats in Morton order of their means (as splat-transform does), so a chunk covers
//! a small box and its 11/10-bit positions are fine; the file's order is not the input order.

use crate::ply::header::{ElementLine, Format, read_header};
use crate::scene::{SplatData, sh_coeffs};

use super::SceneError;

/// Splats per chunk.
pub const CHUNK: usize = 256;

/// The zeroth-order SH basis constant, 1/(2√π).
const SH_C0: f32 = 0.282_094_8;

const CHUNK_PROPS: [&str; 18] = [
    "min_x",
    "min_y",
    "min_z",
    "max_x",
    "max_y",
    "max_z",
    "min_scale_x",
    "min_scale_y",
    "min_scale_z",
    "max_scale_x",
    "max_scale_y",
    "max_scale_z",
    "min_r",
    "min_g",
    "min_b",
    "max_r",
    "max_g",
    "max_b",
];

const VERTEX_PROPS: [&str; 4] = [
    "packed_position",
    "packed_rotation",
    "packed_scale",
    "packed_color",
];

fn invalid(path: &str, field: impl Into<String>, message: String) -> SceneError {
    SceneError::Invalid {
        path: path.to_string(),
        format: "compressed PLY",
        field: field.into(),
        message,
    }
}

/// Whether a PLY header describes a compressed PLY (a `chunk` element and a `vertex` element
/// with `packed_position`).
pub(crate) fn is_compressed(elements: &[ElementLine]) -> bool {
    elements.iter().any(|e| e.name == "chunk")
        && elements
            .iter()
            .any(|e| e.name == "vertex" && e.properties.iter().any(|p| p.name == "packed_position"))
}

/// Byte offsets of `names` in `e`'s records, each required to be of a type in `types`.
fn offsets(
    e: &ElementLine,
    names: &[&str],
    types: &[&str],
    path: &str,
) -> Result<Vec<usize>, SceneError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut at = 0u64;
        let mut found = None;
        for p in &e.properties {
            if p.name == *name {
                if !types.contains(&p.ty.as_str()) {
                    return Err(invalid(
                        path,
                        format!("{}.{name}", e.name),
                        format!("type `{}`, expected {}", p.ty, types.join(" or ")),
                    ));
                }
                found = Some(at as usize);
            }
            at += p.size.unwrap_or(0);
        }
        out.push(found.ok_or_else(|| {
            invalid(
                path,
                format!("{}.{name}", e.name),
                "the property is missing".into(),
            )
        })?);
    }
    Ok(out)
}

fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn unorm(v: u32, bits: u32) -> f32 {
    let t = (1u32 << bits) - 1;
    (v & t) as f32 / t as f32
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a * (1.0 - t) + b * t
}

/// Decode a compressed PLY; `path` names the file in errors.
///
/// # Errors
/// [`SceneError::Invalid`] naming the element or property: a header that is not binary
/// little-endian, a missing or mistyped property, a chunk count that does not cover the
/// splats, a truncated body, an SH count other than 9, 24 or 45.
pub fn decode(bytes: &[u8], path: &str) -> Result<SplatData, SceneError> {
    let mut body = bytes;
    let header =
        read_header(&mut body, bytes.len() as u64).map_err(|m| invalid(path, "header", m))?;
    if header.format != Format::BinaryLittleEndian {
        return Err(invalid(
            path,
            "format",
            "only binary_little_endian is defined".into(),
        ));
    }
    let find = |name: &str| header.elements.iter().position(|e| e.name == name);
    let (Some(ci), Some(vi)) = (find("chunk"), find("vertex")) else {
        return Err(invalid(
            path,
            "chunk",
            "no `chunk` or no `vertex` element".into(),
        ));
    };
    let si = find("sh");
    let mut starts = Vec::with_capacity(header.elements.len());
    let mut at = 0usize;
    for e in &header.elements {
        let stride = e.stride().ok_or_else(|| {
            invalid(
                path,
                e.name.clone(),
                "list properties are not allowed".into(),
            )
        })?;
        starts.push(at);
        at += (e.count * stride) as usize;
    }
    if body.len() < at {
        return Err(invalid(
            path,
            "body",
            format!("{} bytes, the header needs {at}", body.len()),
        ));
    }
    let (ce, ve) = (&header.elements[ci], &header.elements[vi]);
    let n = ve.count as usize;
    if (ce.count as usize) < n.div_ceil(CHUNK) {
        return Err(invalid(
            path,
            "chunk",
            format!(
                "{} chunks cannot cover {n} splats ({} needed)",
                ce.count,
                n.div_ceil(CHUNK)
            ),
        ));
    }
    let has_colour = ce.properties.iter().any(|p| p.name == "min_r");
    let cprops = if has_colour {
        &CHUNK_PROPS[..]
    } else {
        &CHUNK_PROPS[..12]
    };
    let co = offsets(ce, cprops, &["float", "float32"], path)?;
    let vo = offsets(ve, &VERTEX_PROPS, &["uint", "uint32"], path)?;
    let (cs, vs) = (
        ce.stride().unwrap_or(0) as usize,
        ve.stride().unwrap_or(0) as usize,
    );
    let (sh_degree, so, ss, sstart) = match si {
        None => (0, vec![], 0, 0),
        Some(si) => {
            let se = &header.elements[si];
            let rest = se
                .properties
                .iter()
                .filter(|p| p.name.starts_with("f_rest_"))
                .count();
            let degree = match rest {
                0 => 0,
                9 => 1,
                24 => 2,
                45 => 3,
                r => {
                    return Err(invalid(
                        path,
                        "sh",
                        format!("{r} `f_rest_*` properties; expected 9, 24 or 45"),
                    ));
                }
            };
            if (se.count as usize) < n {
                return Err(invalid(
                    path,
                    "sh",
                    format!("{} rows for {n} splats", se.count),
                ));
            }
            let names: Vec<String> = (0..rest).map(|i| format!("f_rest_{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let so = offsets(se, &refs, &["uchar", "uint8"], path)?;
            (degree, so, se.stride().unwrap_or(0) as usize, starts[si])
        }
    };
    let k = sh_coeffs(sh_degree);
    let mut d = SplatData::with_capacity(n, sh_degree);
    let chunk_body = &body[starts[ci]..];
    let vert_body = &body[starts[vi]..];
    let rot_norm = std::f32::consts::SQRT_2;
    for i in 0..n {
        let c = &chunk_body[(i / CHUNK) * cs..];
        let b: Vec<f32> = co.iter().map(|&o| f32_at(c, o)).collect();
        let v = &vert_body[i * vs..];
        let [pp, pr, ps, pc] = [0, 1, 2, 3].map(|j| u32_at(v, vo[j]));
        d.means.extend([
            lerp(b[0], b[3], unorm(pp >> 21, 11)),
            lerp(b[1], b[4], unorm(pp >> 11, 10)),
            lerp(b[2], b[5], unorm(pp, 11)),
        ]);
        let abc = [pr >> 20, pr >> 10, pr].map(|x| (unorm(x, 10) - 0.5) * rot_norm);
        let m = (1.0 - abc.iter().map(|x| x * x).sum::<f32>())
            .max(0.0)
            .sqrt();
        let q = match pr >> 30 {
            0 => [m, abc[0], abc[1], abc[2]],
            1 => [abc[0], m, abc[1], abc[2]],
            2 => [abc[0], abc[1], m, abc[2]],
            _ => [abc[0], abc[1], abc[2], m],
        };
        d.quats.extend(q);
        d.log_scales.extend([
            lerp(b[6], b[9], unorm(ps >> 21, 11)),
            lerp(b[7], b[10], unorm(ps >> 11, 10)),
            lerp(b[8], b[11], unorm(ps, 11)),
        ]);
        let alpha = unorm(pc, 8).clamp(0.5 / 255.0, 254.5 / 255.0);
        d.opacity_logits.push((alpha / (1.0 - alpha)).ln());
        let rgb = [pc >> 24, pc >> 16, pc >> 8].map(|x| unorm(x, 8));
        for ch in 0..3 {
            let colour = if has_colour {
                lerp(b[12 + ch], b[15 + ch], rgb[ch])
            } else {
                rgb[ch]
            };
            d.sh.push((colour - 0.5) / SH_C0);
        }
        if sh_degree > 0 {
            let row = &body[sstart + i * ss..];
            let rest: Vec<f32> = so
                .iter()
                .map(|&o| {
                    let byte = row[o];
                    let t = match byte {
                        0 => 0.0,
                        255 => 1.0,
                        x => (f32::from(x) + 0.5) / 256.0,
                    };
                    (t - 0.5) * 8.0
                })
                .collect();
            // INRIA order (channel-major) → ours (coefficient-major, channel inner).
            for j in 0..k - 1 {
                for ch in 0..3 {
                    d.sh.push(rest[ch * (k - 1) + j]);
                }
            }
        }
    }
    if let Some(bad) = d
        .means
        .iter()
        .chain(&d.log_scales)
        .position(|v| !v.is_finite())
    {
        return Err(invalid(
            path,
            "chunk",
            format!("value {bad} decodes to a non-finite number (NaN/Inf bounds)"),
        ));
    }
    Ok(d)
}

/// Interleave the low 10 bits of `v` with two zero bits between each.
fn spread(mut v: u32) -> u32 {
    v &= 0x3ff;
    v = (v | (v << 16)) & 0x030000ff;
    v = (v | (v << 8)) & 0x0300f00f;
    v = (v | (v << 4)) & 0x030c30c3;
    (v | (v << 2)) & 0x09249249
}

/// Splat indices in Morton order of their means (10 bits per axis over the scene's box).
fn morton_order(data: &SplatData) -> Vec<usize> {
    let (lo, hi) = data.bounds();
    let size = (hi - lo).max(glam::Vec3::splat(1e-12));
    let mut keyed: Vec<(u32, usize)> = data
        .means
        .chunks_exact(3)
        .enumerate()
        .map(|(i, m)| {
            let t = (glam::Vec3::new(m[0], m[1], m[2]) - lo) / size;
            let q = (t.clamp(glam::Vec3::ZERO, glam::Vec3::ONE) * 1023.0).as_uvec3();
            (spread(q.x) << 2 | spread(q.y) << 1 | spread(q.z), i)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

fn pack_unorm(v: f32, bits: u32) -> u32 {
    let t = ((1u32 << bits) - 1) as f32;
    (v * t + 0.5).floor().clamp(0.0, t) as u32
}

fn normalise(x: f32, lo: f32, hi: f32) -> f32 {
    if x <= lo {
        0.0
    } else if x >= hi {
        1.0
    } else if hi - lo < 1e-5 {
        0.0
    } else {
        (x - lo) / (hi - lo)
    }
}

/// Encode `data` as a compressed PLY (splats in Morton order, see the module notes).
#[must_use]
pub fn encode(data: &SplatData) -> Vec<u8> {
    let n = data.len();
    let k = sh_coeffs(data.sh_degree);
    let chunks = n.div_ceil(CHUNK);
    let rest = 3 * (k - 1);
    let mut out = format!(
        "ply\nformat binary_little_endian 1.0\ncomment written by splatdream\nelement chunk {chunks}\n"
    );
    for p in CHUNK_PROPS {
        out.push_str(&format!("property float {p}\n"));
    }
    out.push_str(&format!("element vertex {n}\n"));
    for p in VERTEX_PROPS {
        out.push_str(&format!("property uint {p}\n"));
    }
    if rest > 0 {
        out.push_str(&format!("element sh {n}\n"));
        for i in 0..rest {
            out.push_str(&format!("property uchar f_rest_{i}\n"));
        }
    }
    out.push_str("end_header\n");
    let mut bytes = out.into_bytes();
    let order = morton_order(data);
    let mut bounds = Vec::with_capacity(chunks * 18 * 4);
    let mut words = Vec::with_capacity(n * 16);
    let mut sh = Vec::with_capacity(n * rest);
    for idx in order.chunks(CHUNK) {
        let minmax = |f: &dyn Fn(usize) -> f32| {
            idx.iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &i| {
                    (lo.min(f(i)), hi.max(f(i)))
                })
        };
        let colour = |i: usize, c: usize| data.sh[i * k * 3 + c] * SH_C0 + 0.5;
        let pos: Vec<(f32, f32)> = (0..3).map(|a| minmax(&|i| data.means[3 * i + a])).collect();
        let scl: Vec<(f32, f32)> = (0..3)
            .map(|a| {
                let (lo, hi) = minmax(&|i| data.log_scales[3 * i + a]);
                (lo.clamp(-20.0, 20.0), hi.clamp(-20.0, 20.0))
            })
            .collect();
        let col: Vec<(f32, f32)> = (0..3).map(|c| minmax(&|i| colour(i, c))).collect();
        let ordered = [
            pos[0].0, pos[1].0, pos[2].0, pos[0].1, pos[1].1, pos[2].1, scl[0].0, scl[1].0,
            scl[2].0, scl[0].1, scl[1].1, scl[2].1, col[0].0, col[1].0, col[2].0, col[0].1,
            col[1].1, col[2].1,
        ];
        for v in ordered {
            bounds.extend_from_slice(&v.to_le_bytes());
        }
        for &i in idx {
            let p = |a: usize, bits| {
                pack_unorm(normalise(data.means[3 * i + a], pos[a].0, pos[a].1), bits)
            };
            let s = |a: usize, bits| {
                pack_unorm(
                    normalise(data.log_scales[3 * i + a], scl[a].0, scl[a].1),
                    bits,
                )
            };
            let position = p(0, 11) << 21 | p(1, 10) << 11 | p(2, 11);
            let scale = s(0, 11) << 21 | s(1, 10) << 11 | s(2, 11);
            let q = &data.quats[4 * i..4 * i + 4];
            let mut a = super::unit_quat(q);
            let largest = (0..4)
                .max_by(|&x, &y| a[x].abs().total_cmp(&a[y].abs()))
                .unwrap_or(0);
            if a[largest] < 0.0 {
                a = a.map(|c| -c);
            }
            let mut rotation = largest as u32;
            for (j, &c) in a.iter().enumerate() {
                if j != largest {
                    rotation =
                        rotation << 10 | pack_unorm(c * std::f32::consts::FRAC_1_SQRT_2 + 0.5, 10);
                }
            }
            let alpha = 1.0 / (1.0 + (-data.opacity_logits[i]).exp());
            let c = |ch: usize| pack_unorm(normalise(colour(i, ch), col[ch].0, col[ch].1), 8);
            let color = c(0) << 24 | c(1) << 16 | c(2) << 8 | pack_unorm(alpha, 8);
            for w in [position, rotation, scale, color] {
                words.extend_from_slice(&w.to_le_bytes());
            }
            for ch in 0..3 {
                for j in 1..k {
                    let v = data.sh[i * k * 3 + 3 * j + ch] / 8.0 + 0.5;
                    sh.push((v * 256.0).clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    bytes.extend_from_slice(&bounds);
    bytes.extend_from_slice(&words);
    bytes.extend_from_slice(&sh);
    bytes
}
