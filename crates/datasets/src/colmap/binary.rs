//! COLMAP's binary files (`cameras.bin`, `images.bin`, `points3D.bin`; layouts in the parent
//! module's documentation), read with every count and size checked against the bytes left.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::{DataError, PointCloud};
use super::{CameraModel, ColmapCamera, ColmapImage};

/// Little-endian cursor over a whole file with errors naming the file and record.
pub(crate) struct Bin<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Bin<'a> {
    fn err(&self, record: &str, message: String) -> DataError {
        DataError::Record {
            path: self.path.to_path_buf(),
            record: record.to_string(),
            message,
        }
    }

    fn take(&mut self, n: usize, record: &str) -> Result<&'a [u8], DataError> {
        match self.pos.checked_add(n).filter(|&end| end <= self.buf.len()) {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(
                record,
                format!(
                    "truncated file: needs {n} more bytes at offset {} of {}",
                    self.pos,
                    self.buf.len()
                ),
            )),
        }
    }

    fn arr<const N: usize>(&mut self, record: &str) -> Result<[u8; N], DataError> {
        Ok(self.take(N, record)?.try_into().expect("length checked"))
    }

    fn u64(&mut self, record: &str) -> Result<u64, DataError> {
        Ok(u64::from_le_bytes(self.arr(record)?))
    }

    fn i32(&mut self, record: &str) -> Result<i32, DataError> {
        Ok(i32::from_le_bytes(self.arr(record)?))
    }

    fn u32(&mut self, record: &str) -> Result<u32, DataError> {
        Ok(u32::from_le_bytes(self.arr(record)?))
    }

    fn f64(&mut self, record: &str) -> Result<f64, DataError> {
        Ok(f64::from_le_bytes(self.arr(record)?))
    }

    /// Skip `count × size` bytes.
    fn skip(&mut self, count: u64, size: usize, record: &str) -> Result<(), DataError> {
        let n = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .unwrap_or(usize::MAX);
        self.take(n, record).map(|_| ())
    }

    /// The record count header; refuses counts that cannot fit in the file (a file that is
    /// not a COLMAP binary model, e.g. text or garbage).
    fn count(&mut self, min_record: usize) -> Result<usize, DataError> {
        let n = self.u64("header")?;
        let room = (self.buf.len() - self.pos) / min_record;
        if n > room as u64 {
            return Err(self.err(
                "header",
                format!(
                    "record count {n} cannot fit in the {}-byte file (not a COLMAP binary model, \
                     or truncated)",
                    self.buf.len()
                ),
            ));
        }
        Ok(n as usize)
    }

    fn finish(&self) -> Result<(), DataError> {
        if self.pos != self.buf.len() {
            return Err(self.err(
                "end",
                format!(
                    "{} unexpected bytes after the last record",
                    self.buf.len() - self.pos
                ),
            ));
        }
        Ok(())
    }
}

pub(crate) fn checked_size(
    v: u64,
    what: &str,
    record: &str,
    path: &Path,
) -> Result<u32, DataError> {
    u32::try_from(v)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| DataError::Record {
            path: path.to_path_buf(),
            record: record.to_string(),
            message: format!("bad {what} {v}"),
        })
}

/// Parse the bytes of a `cameras.bin`; `path` only names the file in errors.
///
/// # Errors
/// [`DataError::Record`] naming the record: truncated or trailing bytes, a record count that
/// cannot fit in the file, unknown model ids, zero or out-of-range (u32) width/height,
/// non-finite parameters, duplicate camera ids.
pub fn read_cameras_bin(path: &Path, buf: &[u8]) -> Result<BTreeMap<u32, ColmapCamera>, DataError> {
    let mut r = Bin { path, buf, pos: 0 };
    let n = r.count(24 + 3 * 8)?;
    let mut cams = BTreeMap::new();
    for i in 0..n {
        let rec = format!("camera #{i}");
        let id = r.u32(&rec)?;
        let rec = format!("camera {id}");
        let model_id = r.i32(&rec)?;
        let model = CameraModel::from_id(model_id)
            .ok_or_else(|| r.err(&rec, format!("unknown camera model id {model_id}")))?;
        let width = checked_size(r.u64(&rec)?, "width", &rec, path)?;
        let height = checked_size(r.u64(&rec)?, "height", &rec, path)?;
        let params = (0..model.num_params())
            .map(|_| r.f64(&rec))
            .collect::<Result<Vec<_>, _>>()?;
        let cam = ColmapCamera {
            id,
            model,
            width,
            height,
            params,
        };
        insert_camera(&mut cams, cam, path)?;
    }
    r.finish()?;
    Ok(cams)
}

pub(crate) fn insert_camera(
    cams: &mut BTreeMap<u32, ColmapCamera>,
    cam: ColmapCamera,
    path: &Path,
) -> Result<(), DataError> {
    if cam.params.iter().any(|p| !p.is_finite()) {
        return Err(DataError::Record {
            path: path.to_path_buf(),
            record: format!("camera {}", cam.id),
            message: "non-finite parameter".into(),
        });
    }
    let id = cam.id;
    if cams.insert(id, cam).is_some() {
        return Err(DataError::Record {
            path: path.to_path_buf(),
            record: format!("camera {id}"),
            message: "duplicate camera id".into(),
        });
    }
    Ok(())
}

/// Parse the bytes of an `images.bin` (the 2D point lists are skipped); `path` only names the
/// file in errors.
///
/// # Errors
/// [`DataError::Record`] naming the record: truncated or trailing bytes, a record or point count
/// that cannot fit in the file, an unterminated name.
pub fn read_images_bin(path: &Path, buf: &[u8]) -> Result<Vec<ColmapImage>, DataError> {
    let mut r = Bin { path, buf, pos: 0 };
    let n = r.count(4 + 7 * 8 + 4 + 1 + 8)?;
    let mut images = Vec::with_capacity(n);
    for i in 0..n {
        let rec = format!("image #{i}");
        let id = r.u32(&rec)?;
        let rec = format!("image {id}");
        let mut v = [0.0; 7];
        for x in &mut v {
            *x = r.f64(&rec)?;
        }
        let camera_id = r.u32(&rec)?;
        let rest = &r.buf[r.pos..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| r.err(&rec, "truncated file: unterminated image name".into()))?;
        let name = String::from_utf8_lossy(&rest[..len]).into_owned();
        r.pos += len + 1;
        let rec = format!("image {id} ({name})");
        let num_points = r.u64(&rec)?;
        r.skip(num_points, 24, &rec)?;
        images.push(ColmapImage {
            id,
            qvec: [v[0], v[1], v[2], v[3]],
            tvec: [v[4], v[5], v[6]],
            camera_id,
            name,
        });
    }
    r.finish()?;
    Ok(images)
}

/// Parse the bytes of a `points3D.bin` (tracks are skipped); `path` only names the file in
/// errors. The cloud has one colour per position.
///
/// # Errors
/// [`DataError::Record`] naming the record: truncated or trailing bytes, a record or track
/// count that cannot fit in the file, non-finite positions.
pub fn read_points_bin(path: &Path, buf: &[u8]) -> Result<PointCloud, DataError> {
    let mut r = Bin { path, buf, pos: 0 };
    let n = r.count(8 + 24 + 3 + 8 + 8)?;
    let mut pc = PointCloud {
        positions: Vec::with_capacity(n),
        colors: Vec::with_capacity(n),
    };
    for i in 0..n {
        let rec = format!("point #{i}");
        let id = r.u64(&rec)?;
        let rec = format!("point {id}");
        let xyz = [r.f64(&rec)?, r.f64(&rec)?, r.f64(&rec)?];
        let rgb: [u8; 3] = r.arr(&rec)?;
        let _error = r.f64(&rec)?;
        let track = r.u64(&rec)?;
        r.skip(track, 8, &rec)?;
        push_point(&mut pc, xyz, rgb, path, &rec)?;
    }
    r.finish()?;
    Ok(pc)
}

pub(crate) fn push_point(
    pc: &mut PointCloud,
    xyz: [f64; 3],
    rgb: [u8; 3],
    path: &Path,
    rec: &str,
) -> Result<(), DataError> {
    // Checked in f32: a finite f64 can overflow it (found by fuzzing).
    if xyz.iter().any(|&v| !(v as f32).is_finite()) {
        return Err(DataError::Record {
            path: path.to_path_buf(),
            record: rec.to_string(),
            message: "non-finite position".into(),
        });
    }
    pc.positions
        .push([xyz[0] as f32, xyz[1] as f32, xyz[2] as f32]);
    pc.colors.push(rgb.map(|c| c as f32 / 255.0));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Text.
