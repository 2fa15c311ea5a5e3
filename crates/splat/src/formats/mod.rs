//! Splat scene files in every format we read and write, chosen by content (and, for
//! writing, by file name):
//!
//! | format | read | write | detected by |
//! |---|---|---|---|
//! | INRIA 3DGS PLY ([`crate::ply`]) | yes | yes | `ply` magic, no `chunk` element |
//! | PlayCanvas compressed PLY ([`compressed_ply`]) | yes | yes (`*.compressed.ply`) | `ply` magic and a `chunk` element |
//! | Niantic SPZ 2–3 (gzip) and 4 (`NGSP`, zstd) ([`spz`]) | yes | yes (`*.spz`: 4) | gzip or `NGSP` magic |
//! | antimatter15 `.splat` ([`antimatter`]) | yes | no | the `.splat` extension |
//!
//! Every reader checks sizes against the header before allocating, names the file and the
//! field at fault, and returns finite values; every writer writes atomically.

pub mod antimatter;
pub mod compressed_ply;
pub mod spz;

use std::path::Path;

use crate::ply::PlyError;
use crate::scene::SplatData;

pub use spz::SpzVersion;

/// `q / |q|` (a zero quaternion stays finite: its norm is floored at the smallest positive
/// float).
pub(crate) fn unit_quat(q: &[f32]) -> [f32; 4] {
    let norm = q
        .iter()
        .map(|c| c * c)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    [q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm]
}

/// Errors reading or writing a scene file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// An INRIA PLY error.
    #[error(transparent)]
    Ply(#[from] PlyError),
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The content is not valid for its format.
    #[error("{path}: {format}: {field}: {message}")]
    Invalid {
        /// File.
        path: String,
        /// Format name (`SPZ`, `compressed PLY`, `.splat`).
        format: &'static str,
        /// Header field, element, property or splat at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The output's name names no format we write.
    #[error(
        "{path}: cannot tell the scene format from the name (use .ply, .compressed.ply or .spz)"
    )]
    UnknownOutput {
        /// File.
        path: String,
    },
    /// The atomic write failed (missing folder, full disk, rename).
    #[error(transparent)]
    Write(#[from] files::WriteError),
}

/// A scene file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SceneFormat {
    /// INRIA 3DGS PLY, float32.
    Ply,
    /// PlayCanvas compressed PLY.
    CompressedPly,
    /// Niantic SPZ of a version.
    Spz(SpzVersion),
    /// antimatter15 `.splat` (read only).
    Splat,
}

impl SceneFormat {
    /// The format [`write_scene`] uses for `path`: `*.compressed.ply`, `*.ply`, `*.spz`
    /// (version 4); `None` for any other name (`.splat` is read only).
    #[must_use]
    pub fn for_output(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".compressed.ply") {
            Some(Self::CompressedPly)
        } else if name.ends_with(".ply") {
            Some(Self::Ply)
        } else if name.ends_with(".spz") {
            Some(Self::Spz(SpzVersion::V4))
        } else {
            None
        }
    }

    /// The file-name suffix of the format (`.ply`, `.compressed.ply`, `.spz`, `.splat`).
    #[must_use]
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Ply => ".ply",
            Self::CompressedPly => ".compressed.ply",
            Self::Spz(_) => ".spz",
            Self::Splat => ".splat",
        }
    }
}

/// Read a scene in any format of the module table, told by its first bytes (a `.splat` file,
/// which has no magic, by its extension).
///
/// # Errors
/// [`SceneError`] naming the file and the field: unreadable, unknown content, or the format's
/// own errors.
pub fn read_scene(path: &Path) -> Result<SplatData, SceneError> {
    let p = path.display().to_string();
    let io = |source| SceneError::Io {
        path: p.clone(),
        source,
    };
    let mut head = [0u8; 4];
    let got = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut got = 0;
        while got < 4 {
            let k = f.read(&mut head[got..]).map_err(io)?;
            if k == 0 {
                break;
            }
            got += k;
        }
        got
    };
    let head = &head[..got];
    let is_splat = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("splat"));
    if head.starts_with(b"ply") {
        return read_any_ply(path);
    }
    if head.starts_with(&[0x1f, 0x8b])
        || (got == 4 && u32::from_le_bytes([head[0], head[1], head[2], head[3]]) == spz::MAGIC)
    {
        let bytes = std::fs::read(path).map_err(io)?;
        return spz::decode(&bytes, &p);
    }
    if is_splat {
        let bytes = std::fs::read(path).map_err(io)?;
        return antimatter::decode(&bytes, &p);
    }
    // Neither magic: the INRIA reader names what the first line is.
    Ok(crate::ply::read_ply(path)?)
}

/// A PLY of either kind: a compressed PLY when its header has a `chunk` element.
fn read_any_ply(path: &Path) -> Result<SplatData, SceneError> {
    let p = path.display().to_string();
    let io = |source| SceneError::Io {
        path: p.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut reader = std::io::BufReader::new(file);
    let compressed = crate::ply::header::read_header(&mut reader, len)
        .is_ok_and(|h| compressed_ply::is_compressed(&h.elements));
    if compressed {
        let bytes = std::fs::read(path).map_err(io)?;
        return compressed_ply::decode(&bytes, &p);
    }
    Ok(crate::ply::read_ply(path)?)
}

/// Write `data` in the format `path`'s name tells ([`SceneFormat::for_output`]), atomically.
///
/// # Errors
/// [`SceneError::UnknownOutput`] for another name; the format's errors; the write's.
pub fn write_scene(path: &Path, data: &SplatData) -> Result<(), SceneError> {
    let format = SceneFormat::for_output(path).ok_or_else(|| SceneError::UnknownOutput {
        path: path.display().to_string(),
    })?;
    write_scene_as(path, data, format)
}

/// Write a z-up scene (`generate`'s world) as `format` to `path`, turned into the `up`
/// convention: a PLY through [`crate::ply::write_ply_up`] (which records the axis), any other
/// format rotated ([`crate::transform::rotate`]) and written by [`write_scene_as`].
///
/// # Errors
/// As [`write_scene_as`].
pub fn write_scene_up(
    path: &Path,
    data: &SplatData,
    format: SceneFormat,
    up: crate::transform::UpAxis,
) -> Result<(), SceneError> {
    if format == SceneFormat::Ply {
        return Ok(crate::ply::write_ply_up(path, data, up)?);
    }
    let mut turned = data.clone();
    crate::transform::rotate(&mut turned, up.rotation_from_z_up());
    write_scene_as(path, &turned, format)
}

/// Write `data` as `format` to `path`, atomically.
///
/// # Errors
/// [`SceneError::UnknownOutput`] for [`SceneFormat::Splat`] (read only); the format's errors;
/// the write's.
pub fn write_scene_as(
    path: &Path,
    data: &SplatData,
    format: SceneFormat,
) -> Result<(), SceneError> {
    let p = path.display().to_string();
    let bytes = match format {
        SceneFormat::Ply => return Ok(crate::ply::write_ply(path, data)?),
        SceneFormat::CompressedPly => compressed_ply::encode(data),
        SceneFormat::Spz(v) => spz::encode(data, v, &p)?,
        SceneFormat::Splat => return Err(SceneError::UnknownOutput { path: p }),
    };
    files::write_bytes(path, &bytes)?;
    Ok(())
}
