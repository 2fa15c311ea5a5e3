//! The fast path of [`super::read_ply`]: binary little-endian files whose elements hold only
//! scalar properties and whose vertex properties are all `float`, which is what every splat
//! trainer writes (INRIA, gsplat, brush, splat-transform's uncompressed output). Records are
//! read in chunks straight into the [`SplatData`] arrays: no per-vertex maps, no whole-file
//! buffer, so reading costs the output plus one chunk.

use std::io::Read;

use super::PlyError;
use super::header::{Format, Header};
use crate::scene::{SplatData, sh_coeffs};

/// Bytes of body read per chunk (rounded down to whole records, at least one).
const CHUNK_BYTES: usize = 1 << 20;

/// Where each value of a splat sits in a vertex record: byte offsets of `float` properties,
/// in the order the values go into [`SplatData`].
pub(crate) struct RecordLayout {
    /// Bytes to skip from the body start to the first vertex record.
    skip: u64,
    /// Vertex count.
    count: usize,
    /// Bytes per vertex record.
    stride: usize,
    /// SH degree (from the `f_rest_*` count).
    sh_degree: u32,
    /// `x y z`.
    means: [usize; 3],
    /// `rot_0..3` (wxyz).
    quats: [usize; 4],
    /// `scale_0..2`.
    scales: [usize; 3],
    /// `opacity`.
    opacity: usize,
    /// SH coefficients in [`SplatData::sh`] order (coefficient-major, RGB inner): `f_dc_c`,
    /// then `f_rest_{c(K−1)+k−1}` for k ≥ 1.
    sh: Vec<usize>,
    /// Property name at each byte offset used above, for error messages.
    names: Vec<(usize, String)>,
}

impl RecordLayout {
    /// The layout of `header`'s vertex records, or `None` when the fast path does not apply
    /// (ASCII or big-endian body, list properties, non-`float` vertex properties, missing
    /// properties, an `f_rest_*` count that is no SH degree): the general parser then reads
    /// the file and reports what is wrong.
    pub(crate) fn new(header: &Header) -> Option<Self> {
        if header.format != Format::BinaryLittleEndian {
            return None;
        }
        let mut skip = 0u64;
        let mut vertex = None;
        for e in &header.elements {
            let stride = e.stride()?;
            if e.name == "vertex" && vertex.is_none() {
                vertex = Some((e, skip, stride));
            }
            skip = skip.checked_add(e.count.checked_mul(stride)?)?;
        }
        let (v, skip, stride) = vertex?;
        let mut offset = 0usize;
        let mut at = std::collections::HashMap::new();
        for p in &v.properties {
            if !matches!(p.ty.as_str(), "float" | "float32") {
                return None;
            }
            if at.insert(p.name.as_str(), offset).is_some() {
                return None; // a repeated name: let the general parser decide
            }
            offset += 4;
        }
        let n_rest = at.keys().filter(|n| n.starts_with("f_rest_")).count();
        let sh_degree = match n_rest {
            0 => 0,
            9 => 1,
            24 => 2,
            45 => 3,
            _ => return None,
        };
        let k = sh_coeffs(sh_degree);
        let mut names = vec![];
        let mut get = |name: String| -> Option<usize> {
            let o = *at.get(name.as_str())?;
            names.push((o, name));
            Some(o)
        };
        let means = [get("x".into())?, get("y".into())?, get("z".into())?];
        let quats = [
            get("rot_0".into())?,
            get("rot_1".into())?,
            get("rot_2".into())?,
            get("rot_3".into())?,
        ];
        let scales = [
            get("scale_0".into())?,
            get("scale_1".into())?,
            get("scale_2".into())?,
        ];
        let opacity = get("opacity".into())?;
        let mut sh = Vec::with_capacity(3 * k);
        for c in 0..3 {
            sh.push(get(format!("f_dc_{c}"))?);
        }
        for coeff in 1..k {
            for c in 0..3 {
                sh.push(get(format!("f_rest_{}", c * (k - 1) + coeff - 1))?);
            }
        }
        Some(Self {
            skip,
            count: usize::try_from(v.count).ok()?,
            stride: usize::try_from(stride).ok()?,
            sh_degree,
            means,
            quats,
            scales,
            opacity,
            sh,
            names,
        })
    }

    /// Read the vertex records from `body` (positioned at the first body byte), checking every
    /// value as the general path does: finite, quaternion not zero.
    ///
    /// # Errors
    /// [`PlyError::Parse`] for a body shorter than the header says, [`PlyError::Value`] with
    /// the vertex and property for a bad value.
    pub(crate) fn read(&self, body: &mut impl Read, path: &str) -> Result<SplatData, PlyError> {
        let truncated = |e: std::io::Error| PlyError::Parse {
            path: path.to_string(),
            message: format!("reading the vertex records: {e} (truncated file?)"),
        };
        std::io::copy(&mut body.by_ref().take(self.skip), &mut std::io::sink())
            .map_err(truncated)
            .and_then(|got| {
                if got == self.skip {
                    Ok(())
                } else {
                    Err(truncated(std::io::ErrorKind::UnexpectedEof.into()))
                }
            })?;
        let n = self.count;
        let mut d = SplatData::with_capacity(n, self.sh_degree);
        let per_chunk = (CHUNK_BYTES / self.stride.max(1)).max(1);
        let mut buf = vec![0u8; per_chunk * self.stride];
        let mut index = 0usize;
        while index < n {
            let records = per_chunk.min(n - index);
            let chunk = &mut buf[..records * self.stride];
            body.read_exact(chunk).map_err(truncated)?;
            for rec in chunk.chunks_exact(self.stride) {
                self.push(rec, index, &mut d, path)?;
                index += 1;
            }
        }
        Ok(d)
    }

    /// Decode one record into `d`, checking values in the general path's order: position and
    /// rotation, the zero-quaternion check, then scales, opacity and SH.
    fn push(
        &self,
        rec: &[u8],
        index: usize,
        d: &mut SplatData,
        path: &str,
    ) -> Result<(), PlyError> {
        let take = |o: usize| -> Result<f32, PlyError> {
            let x = f32::from_le_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
            if x.is_finite() {
                Ok(x)
            } else {
                Err(self.value_error(path, index, o, format!("value {x} is not finite")))
            }
        };
        let means = [
            take(self.means[0])?,
            take(self.means[1])?,
            take(self.means[2])?,
        ];
        let mut quats = [0.0f32; 4];
        for (q, &o) in quats.iter_mut().zip(&self.quats) {
            *q = take(o)?;
        }
        if quats.iter().map(|x| x * x).sum::<f32>() < 1e-20 {
            return Err(self.value_error(
                path,
                index,
                self.quats[0],
                "zero quaternion (rot_0..rot_3 all zero)".into(),
            ));
        }
        let scales = [
            take(self.scales[0])?,
            take(self.scales[1])?,
            take(self.scales[2])?,
        ];
        let opacity = take(self.opacity)?;
        // On an error the whole read fails, so a partly pushed record is never seen.
        for &o in &self.sh {
            d.sh.push(take(o)?);
        }
        d.means.extend(means);
        d.quats.extend(quats);
        d.log_scales.extend(scales);
        d.opacity_logits.push(opacity);
        Ok(())
    }

    fn value_error(&self, path: &str, index: usize, offset: usize, message: String) -> PlyError {
        let property = self
            .names
            .iter()
            .find(|(o, _)| *o == offset)
            .map_or_else(String::new, |(_, name)| name.clone());
        PlyError::Value {
            path: path.to_string(),
            index,
            property,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse_general, parse_ply, write_ply};
    use super::*;
    use crate::ply::header::read_header;

    /// A binary little-endian PLY: `pre` records of an element `camera` (two floats) before
    /// the vertices, then `n` vertices with `props` (type, name), value `f(vertex, property)`.
    fn file(
        pre: usize,
        props: &[(&str, String)],
        n: usize,
        f: impl Fn(usize, usize) -> f64,
    ) -> Vec<u8> {
        let mut h = "ply\nformat binary_little_endian 1.0\ncomment test\n".to_string();
        if pre > 0 {
            h += &format!("element camera {pre}\nproperty float fx\nproperty float fy\n");
        }
        h += &format!("element vertex {n}\n");
        for (ty, name) in props {
            h += &format!("property {ty} {name}\n");
        }
        h += "end_header\n";
        let mut b = h.into_bytes();
        for i in 0..pre {
            b.extend((i as f32).to_le_bytes());
            b.extend((2.0 * i as f32).to_le_bytes());
        }
        for v in 0..n {
            for (j, (ty, _)) in props.iter().enumerate() {
                let x = f(v, j);
                match *ty {
                    "double" => b.extend(x.to_le_bytes()),
                    "uchar" => b.push(x as u8),
                    _ => b.extend((x as f32).to_le_bytes()),
                }
            }
        }
        b
    }

    /// The INRIA names at degree `deg`, without normals, rotated by `shift` (any order must
    /// read the same), plus an unknown `extra` property.
    fn names(deg: u32, shift: usize) -> Vec<String> {
        let k = sh_coeffs(deg);
        let mut v: Vec<String> = ["x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend((0..4).map(|i| format!("rot_{i}")));
        v.extend((0..3).map(|i| format!("f_dc_{i}")));
        v.extend((0..3 * (k - 1)).map(|i| format!("f_rest_{i}")));
        v.push("extra".into());
        let len = v.len();
        v.rotate_left(shift % len);
        v
    }

    fn layout_of(bytes: &[u8]) -> Option<RecordLayout> {
        RecordLayout::new(&read_header(&mut &bytes[..], bytes.len() as u64).unwrap())
    }

    /// The typed-record path and `ply-rs-bw`'s general parser (the outside reference) read the
    /// same splats from files of every SH degree, any property order, extra properties and an
    /// element before the vertices; the fast path is really the one taken.
    #[test]
    fn typed_records_equal_the_general_parser() {
        let path = Path::new("t.ply");
        for deg in 0..=3 {
            for (shift, pre) in [(0, 0), (5, 0), (11, 3)] {
                let props: Vec<(&str, String)> = names(deg, shift)
                    .into_iter()
                    .map(|n| ("float", n))
                    .collect();
                let bytes = file(pre, &props, 7, |v, j| {
                    ((v * 31 + j * 7) as f64 * 0.37).sin() + 0.1 * j as f64
                });
                let l = layout_of(&bytes).expect("fast path applies");
                assert_eq!(l.sh_degree, deg);
                let want = parse_general(&bytes, path).unwrap();
                assert_eq!(
                    parse_ply(&bytes, path).unwrap(),
                    want,
                    "deg {deg} shift {shift}"
                );
            }
        }
        // Our own writer's files (with normals) take the fast path too.
        let dir = std::env::temp_dir().join(format!("splat-records-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = file(
            0,
            &names(2, 0)
                .into_iter()
                .map(|n| ("float", n))
                .collect::<Vec<_>>(),
            4,
            |v, j| (v + j) as f64 * 0.5 + 0.25,
        );
        let d = parse_general(&bytes, path).unwrap();
        let p = dir.join("w.ply");
        write_ply(&p, &d).unwrap();
        let written = std::fs::read(&p).unwrap();
        assert!(layout_of(&written).is_some());
        assert_eq!(super::super::read_ply(&p).unwrap(), d);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Layouts outside the fast path (a `double` or `uchar` property, big-endian, ASCII) fall
    /// back to the general parser and still read.
    #[test]
    fn other_layouts_fall_back() {
        let path = Path::new("t.ply");
        let mut props: Vec<(&str, String)> =
            names(0, 0).into_iter().map(|n| ("float", n)).collect();
        props[0].0 = "double";
        let bytes = file(0, &props, 3, |v, j| (v * 3 + j) as f64 * 0.125 + 1.0);
        assert!(layout_of(&bytes).is_none());
        let d = parse_ply(&bytes, path).unwrap();
        assert_eq!(d.means[3], 3.0 * 0.125 + 1.0);
        let last = props.len() - 1;
        props[0].0 = "float";
        props[last].0 = "uchar";
        let bytes = file(0, &props, 3, |v, j| (v * 3 + j) as f64 * 0.125 + 1.0);
        assert!(layout_of(&bytes).is_none());
        assert_eq!(parse_ply(&bytes, path).unwrap().means[3], 3.0 * 0.125 + 1.0);
        let mut be = bytes.clone();
        let at = be
            .windows(20)
            .position(|w| w == b"binary_little_endian")
            .unwrap();
        be.splice(at..at + 20, b"binary_big_endian".iter().copied());
        assert!(layout_of(&be).is_none());
    }

    /// Bad values give the same error on both paths: the vertex, the property, the cause.
    #[test]
    fn bad_values_are_reported_as_the_general_parser_does() {
        let path = Path::new("bad.ply");
        let props: Vec<(&str, String)> = names(1, 3).into_iter().map(|n| ("float", n)).collect();
        let col = |name: &str| props.iter().position(|p| p.1 == name).unwrap();
        for (vertex, prop, value, want) in [
            (
                2,
                "scale_1",
                f64::NAN,
                "property `scale_1`: value NaN is not finite",
            ),
            (
                1,
                "f_rest_4",
                f64::INFINITY,
                "property `f_rest_4`: value inf is not finite",
            ),
            (3, "rot_0", 0.0, "zero quaternion"),
        ] {
            let c = col(prop);
            let bytes = file(0, &props, 5, |v, j| {
                if v == vertex && (j == c || (prop == "rot_0" && props[j].1.starts_with("rot_"))) {
                    value
                } else {
                    0.5
                }
            });
            assert!(layout_of(&bytes).is_some());
            let fast = parse_ply(&bytes, path).unwrap_err().to_string();
            let general = parse_general(&bytes, path).unwrap_err().to_string();
            assert_eq!(fast, general);
            assert!(
                fast.contains(&format!("vertex {vertex}")) && fast.contains(want),
                "{fast}"
            );
        }
    }
}
