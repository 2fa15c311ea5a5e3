//! INRIA 3D Gaussian Splatting PLY files (binary little-endian), read with the `ply-rs-bw` crate
//! and written by a streaming writer of our own (byte-identical to that crate's writer).
//!
//! Vertex properties: `x, y, z, [nx, ny, nz], f_dc_0..2, f_rest_0..(3(K−1)−1), opacity,
//! scale_0..2, rot_0..3`. `f_rest` is channel-major (all red coefficients 1..K−1, then green,
//! then blue), `opacity` is the logit, `scale_*` are log scales, `rot_*` is the quaternion wxyz.
//! Reading accepts any scalar property type and any property order; writing uses float32.
//!
//! Up axis: [`write_ply_up`] writes a z-up scene (`generate`'s world) turned into another
//! convention ([`UpAxis`]) and records it in the header as `comment splatdream up <axis> from
//! z`; [`read_ply`] / [`parse_ply`] turn such a file back to z-up, so our own tools (evaluate,
//! render, `--init`) see the world they wrote while viewers see the file's convention.

use std::io::Write;
use std::path::Path;

use ply_rs_bw::parser::{Parser, Reader};
use ply_rs_bw::ply::{DefaultElement, Encoding, Property, PropertyType, ScalarType};

use crate::scene::{SplatData, sh_coeffs};
use crate::transform::{UpAxis, rotate};

/// The header comment (before the axis name) that records the up-axis rotation of a file.
pub const UP_COMMENT: &str = "splatdream up";

pub(crate) mod header;
mod records;

/// Errors reading or writing a splat PLY; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PlyError {
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a parsable PLY (bad header, truncated body, wrong vertex count).
    #[error("{path}: not a valid PLY file: {message}")]
    Parse {
        /// File.
        path: String,
        /// Parser message.
        message: String,
    },
    /// A required property or element is missing or has the wrong type.
    #[error("{path}: {message}")]
    Layout {
        /// File.
        path: String,
        /// What is missing.
        message: String,
    },
    /// The atomic write failed (missing folder, full disk, rename); names the file and stage.
    #[error(transparent)]
    Write(#[from] files::WriteError),
    /// A value is unusable (NaN/Inf, zero quaternion).
    #[error("{path}: vertex {index}, property `{property}`: {message}")]
    Value {
        /// File.
        path: String,
        /// Vertex index.
        index: usize,
        /// Property name.
        property: String,
        /// What is wrong.
        message: String,
    },
}

fn scalar(p: &Property) -> Option<f32> {
    Some(match *p {
        Property::Char(v) => v as f32,
        Property::UChar(v) => v as f32,
        Property::Short(v) => v as f32,
        Property::UShort(v) => v as f32,
        Property::Int(v) => v as f32,
        Property::UInt(v) => v as f32,
        Property::Float(v) => v,
        Property::Double(v) => v as f32,
        _ => return None,
    })
}

/// Read an INRIA splat PLY. Degree is inferred from the number of `f_rest_*` properties
/// (0, 9, 24 or 45).
///
/// Binary little-endian files whose vertex properties are all `float` (what splat trainers
/// write) stream through typed records: the cost is the returned [`SplatData`] plus a 1 MiB
/// chunk. Any other layout (ASCII, big-endian, other scalar types, list properties) goes
/// through the general `ply-rs-bw` parser, which holds the whole file.
///
/// # Errors
/// [`PlyError`] naming the file: unreadable, malformed, missing properties, or non-finite
/// values / zero quaternions (with the vertex and property).
pub fn read_ply(path: &Path) -> Result<SplatData, PlyError> {
    let p = path.display().to_string();
    let io = |source| PlyError::Io {
        path: p.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let header = header::read_header(&mut reader, len).map_err(|message| PlyError::Parse {
        path: p.clone(),
        message,
    })?;
    if let Some(layout) = records::RecordLayout::new(&header) {
        let data = layout.read(&mut reader, &p)?;
        return Ok(back_to_z_up(data, header.up));
    }
    drop(reader);
    let bytes = std::fs::read(path).map_err(io)?;
    parse_ply(&bytes, path)
}

/// The up axis a PLY's header declares (`comment splatdream up <axis> from z`, written by
/// [`write_ply_up`]); `None` when it declares none. Reads the header only.
///
/// # Errors
/// [`PlyError`] naming the file: unreadable, or a malformed header.
pub fn declared_up(path: &Path) -> Result<Option<UpAxis>, PlyError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| PlyError::Io {
        path: p.clone(),
        source,
    })?;
    let len = file.metadata().map_or(u64::MAX, |m| m.len());
    let mut reader = std::io::BufReader::new(file);
    let header = header::read_header(&mut reader, len)
        .map_err(|message| PlyError::Parse { path: p, message })?;
    Ok(header.up)
}

/// Undoes the rotation a `comment splatdream up <axis> from z` line records.
fn back_to_z_up(mut data: SplatData, up: Option<UpAxis>) -> SplatData {
    if let Some(up) = up.filter(|&u| u != UpAxis::Z) {
        let r = up.rotation_from_z_up();
        let back = std::array::from_fn(|i| std::array::from_fn(|j| r[j][i]));
        rotate(&mut data, back);
    }
    data
}

/// Parse the bytes of an INRIA splat PLY (see [`read_ply`], whose two paths this takes too);
/// `path` only names the file in errors. The header is checked against the byte count first,
/// so a count no file could hold is refused before anything is allocated. On success every
/// array of the [`SplatData`] has the length its splat count and SH degree imply and every
/// value is finite.
///
/// # Errors
/// As [`read_ply`], except [`PlyError::Io`].
pub fn parse_ply(bytes: &[u8], path: &Path) -> Result<SplatData, PlyError> {
    let p = path.display().to_string();
    let mut body = bytes;
    let header =
        header::read_header(&mut body, bytes.len() as u64).map_err(|message| PlyError::Parse {
            path: p.clone(),
            message,
        })?;
    if let Some(layout) = records::RecordLayout::new(&header) {
        let data = layout.read(&mut body, &p)?;
        return Ok(back_to_z_up(data, header.up));
    }
    Ok(back_to_z_up(parse_general(bytes, path)?, header.up))
}

/// [`parse_ply`] through `ply-rs-bw`'s parser: any encoding, scalar type and property order.
fn parse_general(bytes: &[u8], path: &Path) -> Result<SplatData, PlyError> {
    let p = path.display().to_string();
    check_counts(bytes, &p)?;
    let mut reader = bytes;
    let ply = Parser::<DefaultElement>::new()
        .read_ply(&mut reader)
        .map_err(|e| PlyError::Parse {
            path: p.clone(),
            // ply-rs puts the offending line and cause on indented lines of their own.
            message: e.to_string().replace("\n\t", "; "),
        })?;
    let layout = |message: String| PlyError::Layout {
        path: p.clone(),
        message,
    };
    let vdef = ply
        .header
        .elements
        .get("vertex")
        .ok_or_else(|| layout("no `vertex` element".into()))?;
    let names: Vec<&str> = vdef.properties.keys().map(|s| s.as_str()).collect();
    let n_rest = names.iter().filter(|n| n.starts_with("f_rest_")).count();
    let sh_degree = match n_rest {
        0 => 0,
        9 => 1,
        24 => 2,
        45 => 3,
        n => {
            return Err(layout(format!(
                "{n} `f_rest_*` properties; expected 0, 9, 24 or 45 (SH degree 0–3)"
            )));
        }
    };
    let k = sh_coeffs(sh_degree);
    let mut required: Vec<String> = [
        "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    required.extend((0..n_rest).map(|i| format!("f_rest_{i}")));
    for r in &required {
        match vdef.properties.get(r) {
            None => return Err(layout(format!("vertex property `{r}` is missing"))),
            Some(def) if !matches!(def.data_type, PropertyType::Scalar(_)) => {
                return Err(layout(format!(
                    "vertex property `{r}` is a list, expected a scalar"
                )));
            }
            _ => {}
        }
    }
    let empty = vec![];
    let verts = ply.payload.get("vertex").unwrap_or(&empty);
    let n = verts.len();
    if n != vdef.count {
        return Err(PlyError::Parse {
            path: p.clone(),
            message: format!("header declares {} vertices, body has {n}", vdef.count),
        });
    }
    let mut d = SplatData::with_capacity(n, sh_degree);
    for (index, v) in verts.iter().enumerate() {
        let get = |name: &str| -> Result<f32, PlyError> {
            let x = v
                .get(name)
                .and_then(scalar)
                .ok_or_else(|| PlyError::Layout {
                    path: p.clone(),
                    message: format!("vertex {index}: property `{name}` missing or not a scalar"),
                })?;
            if !x.is_finite() {
                return Err(PlyError::Value {
                    path: p.clone(),
                    index,
                    property: name.into(),
                    message: format!("value {x} is not finite"),
                });
            }
            Ok(x)
        };
        for a in ["x", "y", "z"] {
            d.means.push(get(a)?);
        }
        let q = [get("rot_0")?, get("rot_1")?, get("rot_2")?, get("rot_3")?];
        if q.iter().map(|x| x * x).sum::<f32>() < 1e-20 {
            return Err(PlyError::Value {
                path: p.clone(),
                index,
                property: "rot_0".into(),
                message: "zero quaternion (rot_0..rot_3 all zero)".into(),
            });
        }
        d.quats.extend(q);
        for a in ["scale_0", "scale_1", "scale_2"] {
            d.log_scales.push(get(a)?);
        }
        d.opacity_logits.push(get("opacity")?);
        for c in 0..3 {
            d.sh.push(get(&format!("f_dc_{c}"))?);
        }
        for coeff in 1..k {
            for c in 0..3 {
                d.sh.push(get(&format!("f_rest_{}", c * (k - 1) + coeff - 1))?);
            }
        }
    }
    Ok(d)
}

/// Refuse a header whose element counts cannot fit in the body: a binary record takes at least
/// the bytes of its scalars (list lengths included), an ASCII record a line of `2 × properties`
/// bytes — and every record at least one byte, so that an element without properties cannot
/// make the parser build billions of empty records out of a short file (out of memory).
/// Headers that do not parse are left to the parser's own error.
fn check_counts(bytes: &[u8], p: &str) -> Result<(), PlyError> {
    let mut reader = Reader::new(bytes);
    let Ok(header) = Parser::<DefaultElement>::new().read_header(&mut reader) else {
        return Ok(());
    };
    let body = reader.get_ref().len() as u128;
    let size = |s: &ScalarType| match s {
        ScalarType::Char | ScalarType::UChar => 1,
        ScalarType::Short | ScalarType::UShort => 2,
        ScalarType::Int | ScalarType::UInt | ScalarType::Float => 4,
        ScalarType::Double => 8,
    };
    let mut need = 0u128;
    for e in header.elements.values() {
        let min = match header.encoding {
            Encoding::Ascii => 2 * e.properties.len(),
            _ => e
                .properties
                .values()
                .map(|d| match &d.data_type {
                    PropertyType::Scalar(s) | PropertyType::List(s, _) => size(s),
                })
                .sum(),
        }
        .max(1);
        need += e.count as u128 * min as u128;
        // +1: the last ASCII line may lack its newline.
        if need > body + 1 {
            return Err(PlyError::Parse {
                path: p.to_string(),
                message: format!(
                    "header declares {} `{}` elements of at least {min} bytes each; the body \
                     has {body} bytes",
                    e.count, e.name
                ),
            });
        }
    }
    Ok(())
}

/// The INRIA layout's property names at SH degree `deg`, in file order: `x y z nx ny nz
/// f_dc_0..2 f_rest_0..3(K−1)−1 opacity scale_0..2 rot_0..3` (K = (deg + 1)²).
fn inria_property_names(deg: u32) -> Vec<String> {
    let k = sh_coeffs(deg);
    let mut names: Vec<String> = [
        "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend((0..3 * (k - 1)).map(|i| format!("f_rest_{i}")));
    names.extend(
        [
            "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    names
}

/// Splat `i`'s record in the INRIA layout (`inria_property_names` order), into `rec`
/// (`len = 17 + 3K`): normals are 0, `f_rest` channel-major.
fn inria_record(data: &SplatData, i: usize, rec: &mut [f32]) {
    let k = sh_coeffs(data.sh_degree);
    rec[..3].copy_from_slice(&data.means[3 * i..3 * i + 3]);
    rec[3..6].fill(0.0);
    let sh = &data.sh[i * k * 3..(i + 1) * k * 3];
    rec[6..9].copy_from_slice(&sh[..3]);
    for c in 0..3 {
        for coeff in 1..k {
            rec[9 + c * (k - 1) + coeff - 1] = sh[3 * coeff + c];
        }
    }
    let o = 9 + 3 * (k - 1);
    rec[o] = data.opacity_logits[i];
    rec[o + 1..o + 4].copy_from_slice(&data.log_scales[3 * i..3 * i + 3]);
    rec[o + 4..o + 8].copy_from_slice(&data.quats[4 * i..4 * i + 4]);
}

/// Write an INRIA splat PLY (binary little-endian, float32), atomically: the file appears
/// complete or not at all ([`files::write_atomic`]). Streams one record per splat through a
/// buffered writer (no per-splat maps, no whole-file buffer); the bytes are those
/// `ply-rs-bw`'s writer produces for the same data (tested).
///
/// # Errors
/// [`PlyError::Write`] naming the file.
pub fn write_ply(path: &Path, data: &SplatData) -> Result<(), PlyError> {
    write_ply_records(path, data, None)
}

/// [`write_ply`] of a z-up scene turned into the `up` convention ([`crate::transform::rotate`]
/// with [`UpAxis::rotation_from_z_up`]: means, quats and SH coefficients), the header
/// recording it (`comment splatdream up -y from z`) so that [`read_ply`] returns the z-up
/// scene. [`UpAxis::Z`] writes the scene unchanged, with the comment.
///
/// # Errors
/// [`PlyError::Write`] naming the file.
pub fn write_ply_up(path: &Path, data: &SplatData, up: UpAxis) -> Result<(), PlyError> {
    if up == UpAxis::Z {
        return write_ply_records(path, data, Some(up));
    }
    let mut turned = data.clone();
    rotate(&mut turned, up.rotation_from_z_up());
    write_ply_records(path, &turned, Some(up))
}

fn write_ply_records(path: &Path, data: &SplatData, up: Option<UpAxis>) -> Result<(), PlyError> {
    let names = inria_property_names(data.sh_degree);
    let up_line = up.map_or(String::new(), |u| {
        format!("comment {UP_COMMENT} {u} from z\n")
    });
    let mut header = format!(
        "ply\nformat binary_little_endian 1.0\ncomment written by splatdream\n{up_line}element vertex {}\n",
        data.len()
    );
    for name in &names {
        header.push_str(&format!("property float {name}\n"));
    }
    header.push_str("end_header\n");
    files::write_atomic(path, |w| {
        w.write_all(header.as_bytes())?;
        let mut rec = vec![0.0f32; names.len()];
        for i in 0..data.len() {
            inria_record(data, i, &mut rec);
            for x in &mut rec {
                *x = f32::from_bits(x.to_bits().to_le());
            }
            w.write_all(bytemuck::cast_slice(&rec))?;
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ply_rs_bw::ply::{Addable, ElementDef, Ply, PropertyDef};
    use ply_rs_bw::writer::Writer;
    use std::io::BufReader;

    fn sample(deg: u32) -> SplatData {
        let n = 5;
        let k = sh_coeffs(deg);
        SplatData {
            means: (0..3 * n).map(|i| i as f32 * 0.1).collect(),
            quats: (0..4 * n).map(|i| 1.0 + i as f32).collect(),
            log_scales: (0..3 * n).map(|i| -(i as f32) * 0.01).collect(),
            opacity_logits: (0..n).map(|i| i as f32 - 2.0).collect(),
            sh: (0..3 * k * n).map(|i| (i as f32).sin()).collect(),
            sh_degree: deg,
        }
    }

    /// A file written with an up axis reads back as the z-up scene it came from; the bytes on
    /// disk hold the turned scene (z up → −y up: a mean at height 0.5 has y = −0.5).
    #[test]
    fn up_axis_round_trip() {
        let dir = std::env::temp_dir().join(format!("splat-ply-up-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for deg in [0, 3] {
            let mut d = sample(deg);
            for q in d.quats.chunks_exact_mut(4) {
                let n = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                q.iter_mut().for_each(|x| *x /= n);
            }
            for up in [UpAxis::Z, UpAxis::Y, UpAxis::NegY] {
                let path = dir.join(format!("s{deg}{up}.ply"));
                write_ply_up(&path, &d, up).unwrap();
                let back = read_ply(&path).unwrap();
                let close =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
                assert!(close(&back.means, &d.means), "{up} deg {deg}");
                assert!(close(&back.quats, &d.quats), "{up} deg {deg}");
                assert!(close(&back.sh, &d.sh), "{up} deg {deg}");
                let text = std::fs::read(&path).unwrap();
                let header = String::from_utf8_lossy(&text[..200]);
                assert!(
                    header.contains(&format!("comment splatdream up {up} from z")),
                    "{header}"
                );
            }
        }
        let d = sample(0);
        let path = dir.join("negy.ply");
        write_ply_up(&path, &d, UpAxis::NegY).unwrap();
        let raw = parse_general(&std::fs::read(&path).unwrap(), &path).unwrap();
        assert!(
            (raw.means[4] + d.means[5]).abs() < 1e-6,
            "{:?} vs {:?}",
            raw.means,
            d.means
        );
        let bad = dir.join("bad-up.ply");
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(12)
            .position(|w| w == b"up -y from z")
            .unwrap();
        bytes[at + 4] = b'q';
        std::fs::write(&bad, &bytes).unwrap();
        let err = read_ply(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad-up.ply") && err.contains("up axis"),
            "{err}"
        );
    }

    #[test]
    fn round_trip_all_degrees() {
        let dir = std::env::temp_dir().join(format!("splat-ply-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for deg in 0..=3 {
            let d = sample(deg);
            let path = dir.join(format!("s{deg}.ply"));
            write_ply(&path, &d).unwrap();
            assert_eq!(read_ply(&path).unwrap(), d, "degree {deg}");
        }
    }

    /// The streaming writer's bytes equal what `ply-rs-bw`'s writer makes of the same splats
    /// (an outside implementation of the format), at every SH degree.
    #[test]
    fn streamed_bytes_equal_ply_rs_writer() {
        for deg in 0..=3 {
            let d = sample(deg);
            let names = inria_property_names(deg);
            let mut ply = Ply::<DefaultElement>::new();
            ply.header.encoding = Encoding::BinaryLittleEndian;
            ply.header.comments.push("written by splatdream".into());
            let mut el = ElementDef::new("vertex".into());
            for name in &names {
                el.properties.add(PropertyDef::new(
                    name.clone(),
                    PropertyType::Scalar(ScalarType::Float),
                ));
            }
            ply.header.elements.add(el);
            let mut rec = vec![0.0f32; names.len()];
            let verts = (0..d.len())
                .map(|i| {
                    inria_record(&d, i, &mut rec);
                    let mut v = DefaultElement::new();
                    for (name, x) in names.iter().zip(&rec) {
                        v.insert(name.clone(), Property::Float(*x));
                    }
                    v
                })
                .collect();
            ply.payload.insert("vertex".into(), verts);
            let mut want = Vec::new();
            Writer::new().write_ply(&mut want, &mut ply).unwrap();
            let path = std::env::temp_dir()
                .join(format!("splat-ply-bytes-{}-{deg}.ply", std::process::id()));
            write_ply(&path, &d).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), want, "degree {deg}");
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn f_rest_is_channel_major() {
        // Coefficient 1 of the green channel is f_rest_{K-1}.
        let mut d = sample(1);
        d.sh.iter_mut().for_each(|x| *x = 0.0);
        d.sh[3 + 1] = 7.0; // splat 0, coeff 1, green
        let path = std::env::temp_dir().join(format!("splat-ply-cm-{}.ply", std::process::id()));
        write_ply(&path, &d).unwrap();
        let ply = Parser::<DefaultElement>::new()
            .read_ply(&mut BufReader::new(std::fs::File::open(&path).unwrap()))
            .unwrap();
        let v = &ply.payload["vertex"][0];
        assert_eq!(v["f_rest_3"], Property::Float(7.0));
        assert_eq!(v["f_rest_0"], Property::Float(0.0));
    }

    #[test]
    fn errors_name_file_and_property() {
        let path = std::env::temp_dir().join(format!("splat-ply-bad-{}.ply", std::process::id()));
        let mut d = sample(0);
        d.quats[4..8].copy_from_slice(&[0.0; 4]);
        write_ply(&path, &d).unwrap();
        let e = read_ply(&path).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string())
                && e.contains("vertex 1")
                && e.contains("quaternion"),
            "{e}"
        );
        std::fs::write(&path, b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nend_header\n\x00\x00").unwrap();
        let e = read_ply(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn header_counts_are_checked_against_the_body() {
        let path = std::env::temp_dir().join(format!("splat-ply-count-{}.ply", std::process::id()));
        let head = |n: &str| {
            format!(
                "ply\nformat binary_little_endian 1.0\nelement vertex {n}\nproperty float x\nend_header\n"
            )
        };
        for (count, body, want) in [
            (
                "1000000000000",
                8,
                "declares 1000000000000 elements of 4 bytes",
            ),
            ("3", 8, "data for 2"),
            ("1", 8, "4 more bytes follow"),
            ("many", 0, "`many` is not a number"),
        ] {
            let mut bytes = head(count).into_bytes();
            bytes.extend(std::iter::repeat_n(0u8, body));
            std::fs::write(&path, &bytes).unwrap();
            let e = read_ply(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        std::fs::write(&path, b"ply\nformat ascii 1.0\nelement vertex 1\n").unwrap();
        let e = read_ply(&path).unwrap_err().to_string();
        assert!(e.contains("end_header"), "{e}");
    }

    /// An element without properties and a huge count made the parser build billions of empty
    /// records (out of memory, run through the `ply` fuzz target); such headers are refused up
    /// front.
    #[test]
    fn counts_that_cannot_fit_are_refused() {
        let path = Path::new("bad.ply");
        for body in [
            "ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\n\
             element junk 4000000000\nend_header\n",
            "ply\nformat ascii 1.0\nelement junk 4000000000\nend_header\n",
            "ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty double x\n\
             end_header\n12345678",
        ] {
            let e = parse_ply(body.as_bytes(), path).unwrap_err().to_string();
            // Refused by the size check (`header::read_header`) or the count check (`check_counts`).
            assert!(
                e.starts_with("bad.ply: ") && e.contains("header declares"),
                "{e}"
            );
        }
        // Exactly enough bytes, and an ASCII body whose last line lacks its newline, still
        // reach the layout checks.
        for body in [
            "ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty double x\n\
             end_header\n12345678",
            "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n\
             end_header\n1 2",
        ] {
            let e = parse_ply(body.as_bytes(), path).unwrap_err().to_string();
            assert!(e.contains("is missing"), "{e}");
        }
    }
}
