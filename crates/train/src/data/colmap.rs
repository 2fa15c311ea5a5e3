//! COLMAP sparse models (`cameras`, `images`, `points3D`), binary and text.
//!
//! File formats as documented in COLMAP's "Output Format" page and written by its
//! `Reconstruction::Write{Binary,Text}` (all binary values little-endian):
//!
//! - `cameras.bin`: `u64` count, then per camera `i32 camera_id, i32 model_id, u64 width,
//!   u64 height, f64 params[n(model)]`. `cameras.txt`: `CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]`.
//! - `images.bin`: `u64` count, then per image `i32 image_id, f64 qw, qx, qy, qz, f64 tx, ty, tz,
//!   i32 camera_id, name (NUL-terminated), u64 num_points2D, (f64 x, f64 y, i64 point3D_id)
//!   × num_points2D`. `images.txt`: two lines per image, `IMAGE_ID QW QX QY QZ TX TY TZ
//!   CAMERA_ID NAME` and the (possibly empty) `X Y POINT3D_ID …` list.
//! - `points3D.bin`: `u64` count, then per point `u64 point3D_id, f64 x, y, z, u8 r, g, b,
//!   f64 error, u64 track_length, (i32 image_id, i32 point2D_idx) × track_length`.
//!   `points3D.txt`: `POINT3D_ID X Y Z R G B ERROR TRACK[]`.
//!
//! Text files may contain `#` comment lines. The pose `(q, t)` maps world to camera,
//! `x_cam = R(q)·x_world + t`, in the OpenCV axis convention, so it is used as is. Camera
//! models and their parameter orders are COLMAP's `src/colmap/sensor/models.h`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glam::{DMat3, DVec3, Mat4};

use super::undistort::{Distortion, Pinhole};
use super::{
    DataError, Dataset, DatasetKind, Intrinsics, LoadOptions, PointCloud, Pose, ViewJob, assemble,
    hold_out,
};

/// COLMAP camera models, with COLMAP's numeric ids (`model_id` in `cameras.bin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraModel {
    /// `f, cx, cy`.
    SimplePinhole,
    /// `fx, fy, cx, cy`.
    Pinhole,
    /// `f, cx, cy, k`.
    SimpleRadial,
    /// `f, cx, cy, k1, k2`.
    Radial,
    /// `fx, fy, cx, cy, k1, k2, p1, p2`.
    OpenCv,
    /// `fx, fy, cx, cy, k1, k2, k3, k4` (unsupported for loading).
    OpenCvFisheye,
    /// `fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6` (unsupported for loading).
    FullOpenCv,
    /// `fx, fy, cx, cy, omega` (unsupported for loading).
    Fov,
    /// `f, cx, cy, k` (unsupported for loading).
    SimpleRadialFisheye,
    /// `f, cx, cy, k1, k2` (unsupported for loading).
    RadialFisheye,
    /// `fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, sx1, sy1` (unsupported for loading).
    ThinPrismFisheye,
    /// 16 parameters (unsupported for loading).
    RadTanThinPrismFisheye,
}

const MODELS: [(CameraModel, &str, usize); 12] = [
    (CameraModel::SimplePinhole, "SIMPLE_PINHOLE", 3),
    (CameraModel::Pinhole, "PINHOLE", 4),
    (CameraModel::SimpleRadial, "SIMPLE_RADIAL", 4),
    (CameraModel::Radial, "RADIAL", 5),
    (CameraModel::OpenCv, "OPENCV", 8),
    (CameraModel::OpenCvFisheye, "OPENCV_FISHEYE", 8),
    (CameraModel::FullOpenCv, "FULL_OPENCV", 12),
    (CameraModel::Fov, "FOV", 5),
    (CameraModel::SimpleRadialFisheye, "SIMPLE_RADIAL_FISHEYE", 4),
    (CameraModel::RadialFisheye, "RADIAL_FISHEYE", 5),
    (CameraModel::ThinPrismFisheye, "THIN_PRISM_FISHEYE", 12),
    (
        CameraModel::RadTanThinPrismFisheye,
        "RAD_TAN_THIN_PRISM_FISHEYE",
        16,
    ),
];

impl CameraModel {
    /// The model with COLMAP's numeric id.
    pub fn from_id(id: i32) -> Option<Self> {
        usize::try_from(id)
            .ok()
            .and_then(|i| MODELS.get(i))
            .map(|m| m.0)
    }

    /// The model with COLMAP's name (`"PINHOLE"`).
    pub fn from_name(name: &str) -> Option<Self> {
        MODELS.iter().find(|m| m.1 == name).map(|m| m.0)
    }

    fn entry(self) -> &'static (CameraModel, &'static str, usize) {
        MODELS
            .iter()
            .find(|m| m.0 == self)
            .expect("every model is listed")
    }

    /// COLMAP's name of the model.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// Number of parameters.
    pub fn num_params(self) -> usize {
        self.entry().2
    }
}

/// A camera (intrinsics) record.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapCamera {
    /// `CAMERA_ID`.
    pub id: u32,
    /// Camera model.
    pub model: CameraModel,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Model parameters in COLMAP's order (see [`CameraModel`]).
    pub params: Vec<f64>,
}

impl ColmapCamera {
    /// Pinhole intrinsics and OpenCV distortion for the supported models (SIMPLE_PINHOLE,
    /// PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV); COLMAP places pixel centres at +0.5 like
    /// [`splat::Camera`], so `cx, cy` carry over unchanged.
    ///
    /// # Errors
    /// A message naming the model when it is not supported.
    pub fn pinhole(&self) -> Result<(Pinhole, Distortion), String> {
        let p = &self.params;
        let simple = |f: f64| Pinhole {
            fx: f,
            fy: f,
            cx: p[1],
            cy: p[2],
        };
        let full = || Pinhole {
            fx: p[0],
            fy: p[1],
            cx: p[2],
            cy: p[3],
        };
        let none = Distortion::default();
        Ok(match self.model {
            CameraModel::SimplePinhole => (simple(p[0]), none),
            CameraModel::Pinhole => (full(), none),
            CameraModel::SimpleRadial => (simple(p[0]), Distortion { k1: p[3], ..none }),
            CameraModel::Radial => (
                simple(p[0]),
                Distortion {
                    k1: p[3],
                    k2: p[4],
                    ..none
                },
            ),
            CameraModel::OpenCv => (
                full(),
                Distortion {
                    k1: p[4],
                    k2: p[5],
                    p1: p[6],
                    p2: p[7],
                    k3: 0.0,
                },
            ),
            m => {
                return Err(format!(
                    "unsupported camera model {} (supported: SIMPLE_PINHOLE, PINHOLE, \
                     SIMPLE_RADIAL, RADIAL, OPENCV)",
                    m.name()
                ));
            }
        })
    }
}

/// An image (pose) record; the 2D point list is skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapImage {
    /// `IMAGE_ID`.
    pub id: u32,
    /// World→camera rotation as a quaternion `(w, x, y, z)`.
    pub qvec: [f64; 4],
    /// World→camera translation.
    pub tvec: [f64; 3],
    /// The camera record it was taken with.
    pub camera_id: u32,
    /// File name relative to the image directory.
    pub name: String,
}

impl ColmapImage {
    /// The world→camera matrix `[R(q) | t]`, or `None` for a zero quaternion or values that
    /// are not finite (in f32). The quaternion is normalized first.
    pub fn world_to_camera(&self) -> Option<Mat4> {
        let [w, x, y, z] = self.qvec;
        let n = (w * w + x * x + y * y + z * z).sqrt();
        if !(n > 1e-12 && n.is_finite()) || self.tvec.iter().any(|t| !t.is_finite()) {
            return None;
        }
        let (w, x, y, z) = (w / n, x / n, y / n, z / n);
        let r = DMat3::from_cols(
            DVec3::new(
                1.0 - 2.0 * (y * y + z * z),
                2.0 * (x * y + w * z),
                2.0 * (x * z - w * y),
            ),
            DVec3::new(
                2.0 * (x * y - w * z),
                1.0 - 2.0 * (x * x + z * z),
                2.0 * (y * z + w * x),
            ),
            DVec3::new(
                2.0 * (x * z + w * y),
                2.0 * (y * z - w * x),
                1.0 - 2.0 * (x * x + y * y),
            ),
        );
        let r = r.as_mat3();
        let t = DVec3::from_array(self.tvec).as_vec3();
        if !t.is_finite() {
            return None; // finite in f64 but beyond f32 (found by fuzzing)
        }
        Some(Mat4::from_cols(
            r.x_axis.extend(0.0),
            r.y_axis.extend(0.0),
            r.z_axis.extend(0.0),
            t.extend(1.0),
        ))
    }
}

/// A whole sparse model.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapModel {
    /// Cameras by id.
    pub cameras: BTreeMap<u32, ColmapCamera>,
    /// Images in file order.
    pub images: Vec<ColmapImage>,
    /// Points (positions and 0..1 colours) in file order; `None` when there is no
    /// `points3D` file.
    pub points: Option<PointCloud>,
    /// The files read, for messages: cameras, images, points3D.
    pub files: [PathBuf; 3],
}

/// The sparse model directory of a COLMAP dataset root: `sparse/0/` or `sparse/`, whichever
/// holds `cameras.bin` or `cameras.txt` first.
pub fn find_sparse_dir(root: &Path) -> Option<PathBuf> {
    [root.join("sparse").join("0"), root.join("sparse")]
        .into_iter()
        .find(|d| d.join("cameras.bin").is_file() || d.join("cameras.txt").is_file())
}

/// Path of `<dir>/<stem>.bin` if it exists, else `<dir>/<stem>.txt`.
fn pick(dir: &Path, stem: &str) -> PathBuf {
    let bin = dir.join(format!("{stem}.bin"));
    if bin.is_file() {
        bin
    } else {
        dir.join(format!("{stem}.txt"))
    }
}

/// Read a sparse model directory: each of `cameras`, `images`, `points3D` from its `.bin` if
/// present, else its `.txt`. A missing `points3D` file gives `points: None` (with a warning).
///
/// # Errors
/// [`DataError`] naming the file and record: unreadable files, truncated or malformed records,
/// unknown camera model ids/names, wrong parameter counts.
pub fn read_model(sparse: &Path) -> Result<ColmapModel, DataError> {
    let cam_path = pick(sparse, "cameras");
    let img_path = pick(sparse, "images");
    let pts_path = pick(sparse, "points3D");
    let is_bin = |p: &Path| p.extension().is_some_and(|e| e == "bin");
    let cameras = if is_bin(&cam_path) {
        read_cameras_bin(&cam_path, &read(&cam_path)?)?
    } else {
        read_cameras_txt(&cam_path, &read_text(&cam_path)?)?
    };
    let images = if is_bin(&img_path) {
        read_images_bin(&img_path, &read(&img_path)?)?
    } else {
        read_images_txt(&img_path, &read_text(&img_path)?)?
    };
    let points = if !pts_path.is_file() {
        tracing::warn!("{}: no points3D.bin/.txt; no point cloud", sparse.display());
        None
    } else if is_bin(&pts_path) {
        Some(read_points_bin(&pts_path, &read(&pts_path)?)?)
    } else {
        Some(read_points_txt(&pts_path, &read_text(&pts_path)?)?)
    };
    Ok(ColmapModel {
        cameras,
        images,
        points,
        files: [cam_path, img_path, pts_path],
    })
}

/// Load a COLMAP dataset: the model in `sparse`, photos in `<root>/images/<name>`, views sorted
/// by image name, every [`LoadOptions::eval_every`]-th held out, undistorted per camera model.
///
/// # Errors
/// [`DataError`]: see [`read_model`]; also images referring to unknown cameras, unsupported
/// camera models (naming the camera id and model), degenerate poses, undecodable images.
pub fn load(root: &Path, sparse: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let model = read_model(sparse)?;
    let [cam_path, img_path, _] = &model.files;
    let mut images = model.images.clone();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let mut jobs = Vec::with_capacity(images.len());
    for im in &images {
        let record = format!("image {} ({})", im.id, im.name);
        let rec_err = |path: &Path, record: String, message: String| DataError::Record {
            path: path.to_path_buf(),
            record,
            message,
        };
        let cam = model.cameras.get(&im.camera_id).ok_or_else(|| {
            rec_err(
                img_path,
                record.clone(),
                format!("camera {} is not in {}", im.camera_id, cam_path.display()),
            )
        })?;
        let (k, distortion) = cam
            .pinhole()
            .map_err(|m| rec_err(cam_path, format!("camera {}", cam.id), m))?;
        let w2c = im.world_to_camera().ok_or_else(|| {
            rec_err(
                img_path,
                record.clone(),
                "degenerate pose (zero quaternion or non-finite values)".into(),
            )
        })?;
        jobs.push(ViewJob {
            name: im.name.clone(),
            image_path: root.join("images").join(&im.name),
            pose: Pose::OpenCvW2c(w2c),
            intrinsics: Intrinsics {
                fx: Some(k.fx),
                fy: Some(k.fy),
                cx: Some(k.cx),
                cy: Some(k.cy),
                angle_x: None,
                angle_y: None,
                size: Some((cam.width, cam.height)),
            },
            distortion,
            source: img_path.clone(),
            record,
        });
    }
    let (train, eval) = hold_out(jobs, opts.eval_every);
    assemble(
        DatasetKind::Colmap,
        root.to_path_buf(),
        train,
        eval,
        opts,
        model.points,
    )
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|e| DataError::Record {
        path: path.to_path_buf(),
        record: "text".into(),
        message: format!(
            "not UTF-8 text (byte offset {}); is it a binary model named .txt?",
            e.utf8_error().valid_up_to()
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Binary.

/// Little-endian cursor over a whole file with errors naming the file and record.
struct Bin<'a> {
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

fn checked_size(v: u64, what: &str, record: &str, path: &Path) -> Result<u32, DataError> {
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

fn insert_camera(
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

fn push_point(
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

/// Non-comment lines with their 1-based line numbers (blank lines kept: an image's empty
/// 2D-point line is meaningful).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.starts_with('#'))
}

/// Parse one whitespace-separated token.
fn tok<T: std::str::FromStr>(
    it: &mut std::str::SplitWhitespace<'_>,
    what: &str,
    path: &Path,
    line: usize,
) -> Result<T, DataError> {
    let s = it.next().ok_or_else(|| DataError::Record {
        path: path.to_path_buf(),
        record: format!("line {line}"),
        message: format!("missing {what}"),
    })?;
    s.parse().map_err(|_| DataError::Record {
        path: path.to_path_buf(),
        record: format!("line {line}"),
        message: format!("bad {what} `{s}`"),
    })
}

/// Parse the text of a `cameras.txt`; `path` only names the file in errors.
///
/// # Errors
/// [`DataError::Record`] naming the line: missing or unparsable fields, unknown model names,
/// wrong parameter counts, zero or out-of-range (u32) width/height, non-finite parameters,
/// duplicate camera ids.
pub fn read_cameras_txt(path: &Path, text: &str) -> Result<BTreeMap<u32, ColmapCamera>, DataError> {
    let mut cams = BTreeMap::new();
    for (ln, line) in lines(text).filter(|(_, l)| !l.is_empty()) {
        let mut it = line.split_whitespace();
        let id: u32 = tok(&mut it, "CAMERA_ID", path, ln)?;
        let model_name: String = tok(&mut it, "MODEL", path, ln)?;
        let rec = format!("line {ln}: camera {id}");
        let model = CameraModel::from_name(&model_name).ok_or_else(|| DataError::Record {
            path: path.to_path_buf(),
            record: rec.clone(),
            message: format!("unknown camera model {model_name}"),
        })?;
        let width = checked_size(tok(&mut it, "WIDTH", path, ln)?, "width", &rec, path)?;
        let height = checked_size(tok(&mut it, "HEIGHT", path, ln)?, "height", &rec, path)?;
        let params = it
            .map(|s| {
                s.parse::<f64>().map_err(|_| DataError::Record {
                    path: path.to_path_buf(),
                    record: rec.clone(),
                    message: format!("bad parameter `{s}`"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if params.len() != model.num_params() {
            return Err(DataError::Record {
                path: path.to_path_buf(),
                record: rec,
                message: format!(
                    "{} takes {} parameters, got {}",
                    model.name(),
                    model.num_params(),
                    params.len()
                ),
            });
        }
        insert_camera(
            &mut cams,
            ColmapCamera {
                id,
                model,
                width,
                height,
                params,
            },
            path,
        )?;
    }
    Ok(cams)
}

/// Parse the text of an `images.txt` (two lines per image; the 2D point lines are skipped);
/// `path` only names the file in errors.
///
/// # Errors
/// [`DataError::Record`] naming the line: missing or unparsable fields, a missing `NAME`.
pub fn read_images_txt(path: &Path, text: &str) -> Result<Vec<ColmapImage>, DataError> {
    let mut images = Vec::new();
    let mut it = lines(text);
    while let Some((ln, line)) = it.next() {
        if line.is_empty() {
            continue; // stray blank line where a header is expected
        }
        let mut toks = line.split_whitespace();
        let id: u32 = tok(&mut toks, "IMAGE_ID", path, ln)?;
        let mut v = [0.0f64; 7];
        for (x, what) in v.iter_mut().zip(["QW", "QX", "QY", "QZ", "TX", "TY", "TZ"]) {
            *x = tok(&mut toks, what, path, ln)?;
        }
        let camera_id: u32 = tok(&mut toks, "CAMERA_ID", path, ln)?;
        // NAME is the rest of the line (it may contain spaces).
        let name = rest_after_tokens(line, 9);
        if name.is_empty() {
            return Err(DataError::Record {
                path: path.to_path_buf(),
                record: format!("line {ln}: image {id}"),
                message: "missing NAME".into(),
            });
        }
        // The next line is this image's 2D point list (possibly empty or absent at EOF).
        let _points = it.next();
        images.push(ColmapImage {
            id,
            qvec: [v[0], v[1], v[2], v[3]],
            tvec: [v[4], v[5], v[6]],
            camera_id,
            name: name.to_string(),
        });
    }
    Ok(images)
}

/// The remainder of `line` after `n` whitespace-separated tokens, trimmed.
fn rest_after_tokens(line: &str, n: usize) -> &str {
    let mut s = line.trim_start();
    for _ in 0..n {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        s = s[end..].trim_start();
    }
    s.trim_end()
}

/// Parse the text of a `points3D.txt` (tracks are ignored); `path` only names the file in
/// errors. The cloud has one colour per position.
///
/// # Errors
/// [`DataError::Record`] naming the line: missing or unparsable fields, non-finite positions.
pub fn read_points_txt(path: &Path, text: &str) -> Result<PointCloud, DataError> {
    let mut pc = PointCloud::default();
    for (ln, line) in lines(text).filter(|(_, l)| !l.is_empty()) {
        let mut it = line.split_whitespace();
        let id: u64 = tok(&mut it, "POINT3D_ID", path, ln)?;
        let xyz = [
            tok(&mut it, "X", path, ln)?,
            tok(&mut it, "Y", path, ln)?,
            tok(&mut it, "Z", path, ln)?,
        ];
        let rgb = [
            tok(&mut it, "R", path, ln)?,
            tok(&mut it, "G", path, ln)?,
            tok(&mut it, "B", path, ln)?,
        ];
        push_point(&mut pc, xyz, rgb, path, &format!("line {ln}: point {id}"))?;
    }
    Ok(pc)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::TempDir;
    use super::super::{View, load as load_any};
    use super::*;
    use glam::Vec3;
    use image::RgbaImage;

    struct Cam {
        id: u32,
        model: &'static str,
        model_id: i32,
        w: u64,
        h: u64,
        params: Vec<f64>,
    }
    struct Img {
        id: u32,
        q: [f64; 4],
        t: [f64; 3],
        cam: u32,
        name: &'static str,
        pts: Vec<(f64, f64, i64)>,
    }
    struct Pt {
        id: u64,
        xyz: [f64; 3],
        rgb: [u8; 3],
        err: f64,
        track: Vec<(i32, i32)>,
    }

    fn model() -> (Vec<Cam>, Vec<Img>, Vec<Pt>) {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let cams = vec![
            Cam {
                id: 1,
                model: "PINHOLE",
                model_id: 1,
                w: 8,
                h: 6,
                params: vec![10.0, 11.0, 4.0, 3.0],
            },
            Cam {
                id: 7,
                model: "SIMPLE_RADIAL",
                model_id: 2,
                w: 10,
                h: 8,
                params: vec![12.0, 5.5, 4.25, 0.05],
            },
        ];
        let imgs = vec![
            Img {
                id: 1,
                q: [s, 0.0, 0.0, s], // 90° about z
                t: [0.0, 0.0, 5.0],
                cam: 1,
                name: "b.png",
                pts: vec![(1.0, 2.0, 1), (3.5, 4.5, -1)],
            },
            Img {
                id: 2,
                q: [1.0, 0.0, 0.0, 0.0],
                t: [1.0, 2.0, 3.0],
                cam: 7,
                name: "a.png",
                pts: vec![],
            },
            Img {
                id: 3,
                q: [0.0, 2.0, 0.0, 0.0], // 180° about x, not normalized
                t: [0.5, -0.5, 2.0],
                cam: 1,
                name: "c.png",
                pts: vec![(0.5, 0.5, 4)],
            },
        ];
        let pts = vec![
            Pt {
                id: 1,
                xyz: [0.0, 0.0, 0.0],
                rgb: [255, 0, 0],
                err: 0.5,
                track: vec![(1, 0)],
            },
            Pt {
                id: 2,
                xyz: [1.0, -2.0, 3.5],
                rgb: [0, 255, 51],
                err: 0.1,
                track: vec![],
            },
            Pt {
                id: 5,
                xyz: [0.25, 0.5, -1.0],
                rgb: [10, 20, 30],
                err: 1.0,
                track: vec![(1, 1), (2, 0), (3, 0)],
            },
            Pt {
                id: 9,
                xyz: [-3.0, 4.0, 2.0],
                rgb: [128, 128, 128],
                err: 0.0,
                track: vec![(3, 0)],
            },
        ];
        (cams, imgs, pts)
    }

    fn write_images(root: &Path, cams: &[Cam], imgs: &[Img]) {
        std::fs::create_dir_all(root.join("images")).unwrap();
        for im in imgs {
            let c = cams.iter().find(|c| c.id == im.cam).unwrap();
            let seed = im.id as u8;
            RgbaImage::from_fn(c.w as u32, c.h as u32, |x, y| {
                image::Rgba([x as u8 * 20, y as u8 * 20, seed * 50, 255])
            })
            .save(root.join("images").join(im.name))
            .unwrap();
        }
    }

    fn write_bin(dir: &Path, cams: &[Cam], imgs: &[Img], pts: &[Pt]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut b = Vec::new();
        b.extend((cams.len() as u64).to_le_bytes());
        for c in cams {
            b.extend(c.id.to_le_bytes());
            b.extend(c.model_id.to_le_bytes());
            b.extend(c.w.to_le_bytes());
            b.extend(c.h.to_le_bytes());
            for p in &c.params {
                b.extend(p.to_le_bytes());
            }
        }
        std::fs::write(dir.join("cameras.bin"), &b).unwrap();
        let mut b = Vec::new();
        b.extend((imgs.len() as u64).to_le_bytes());
        for im in imgs {
            b.extend(im.id.to_le_bytes());
            for v in im.q.iter().chain(&im.t) {
                b.extend(v.to_le_bytes());
            }
            b.extend(im.cam.to_le_bytes());
            b.extend(im.name.as_bytes());
            b.push(0);
            b.extend((im.pts.len() as u64).to_le_bytes());
            for &(x, y, id) in &im.pts {
                b.extend(x.to_le_bytes());
                b.extend(y.to_le_bytes());
                b.extend(id.to_le_bytes());
            }
        }
        std::fs::write(dir.join("images.bin"), &b).unwrap();
        let mut b = Vec::new();
        b.extend((pts.len() as u64).to_le_bytes());
        for p in pts {
            b.extend(p.id.to_le_bytes());
            for v in p.xyz {
                b.extend(v.to_le_bytes());
            }
            b.extend(p.rgb);
            b.extend(p.err.to_le_bytes());
            b.extend((p.track.len() as u64).to_le_bytes());
            for &(i, j) in &p.track {
                b.extend(i.to_le_bytes());
                b.extend(j.to_le_bytes());
            }
        }
        std::fs::write(dir.join("points3D.bin"), &b).unwrap();
    }

    fn write_txt(dir: &Path, cams: &[Cam], imgs: &[Img], pts: &[Pt]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut s = String::from("# Camera list with one line of data per camera:\n");
        for c in cams {
            let params: Vec<String> = c.params.iter().map(|p| p.to_string()).collect();
            s += &format!(
                "{} {} {} {} {}\n",
                c.id,
                c.model,
                c.w,
                c.h,
                params.join(" ")
            );
        }
        std::fs::write(dir.join("cameras.txt"), s).unwrap();
        let mut s = String::from("# Image list with two lines of data per image:\n#\n");
        for im in imgs {
            s += &format!(
                "{} {} {} {} {} {} {} {} {} {}\n",
                im.id,
                im.q[0],
                im.q[1],
                im.q[2],
                im.q[3],
                im.t[0],
                im.t[1],
                im.t[2],
                im.cam,
                im.name
            );
            let p: Vec<String> = im
                .pts
                .iter()
                .map(|(x, y, i)| format!("{x} {y} {i}"))
                .collect();
            s += &p.join(" ");
            s += "\n";
        }
        std::fs::write(dir.join("images.txt"), s).unwrap();
        let mut s = String::from("# 3D point list\n");
        for p in pts {
            let tr: Vec<String> = p.track.iter().map(|(i, j)| format!("{i} {j}")).collect();
            s += &format!(
                "{} {} {} {} {} {} {} {} {}\n",
                p.id,
                p.xyz[0],
                p.xyz[1],
                p.xyz[2],
                p.rgb[0],
                p.rgb[1],
                p.rgb[2],
                p.err,
                tr.join(" ")
            );
        }
        std::fs::write(dir.join("points3D.txt"), s).unwrap();
    }

    fn no_holdout() -> LoadOptions {
        LoadOptions {
            eval_every: 0,
            ..Default::default()
        }
    }

    #[test]
    fn binary_and_text_models_agree_with_hand_values() {
        let (cams, imgs, pts) = model();
        let tmp = TempDir::new("colmap");
        let (rb, rt) = (tmp.0.join("bin"), tmp.0.join("txt"));
        write_images(&rb, &cams, &imgs);
        write_images(&rt, &cams, &imgs);
        write_bin(&rb.join("sparse/0"), &cams, &imgs, &pts);
        write_txt(&rt.join("sparse"), &cams, &imgs, &pts);

        let mb = read_model(&rb.join("sparse/0")).unwrap();
        let mt = read_model(&rt.join("sparse")).unwrap();
        assert_eq!(mb.cameras, mt.cameras);
        assert_eq!(mb.images, mt.images);
        assert_eq!(mb.points, mt.points);
        assert_eq!(mb.cameras[&7].model, CameraModel::SimpleRadial);

        let db = load_any(&rb, &no_holdout()).unwrap();
        let dt = load_any(&rt, &no_holdout()).unwrap();
        assert_eq!(
            (db.kind, dt.kind),
            (DatasetKind::Colmap, DatasetKind::Colmap)
        );
        let cams_of = |v: &[View]| {
            v.iter()
                .map(|v| (v.name.clone(), v.camera))
                .collect::<Vec<_>>()
        };
        assert_eq!(cams_of(&db.train), cams_of(&dt.train));
        assert_eq!(db.points, dt.points);
        for (a, b) in db.train.iter().zip(&dt.train) {
            assert_eq!(a.image, b.image);
        }

        // Sorted by name: a (id 2), b (id 1), c (id 3).
        let v = &db.train;
        assert_eq!(
            v.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["a.png", "b.png", "c.png"]
        );
        let id4 = |t: [f32; 3], r: [[f32; 3]; 3]| {
            [
                [r[0][0], r[0][1], r[0][2], t[0]],
                [r[1][0], r[1][1], r[1][2], t[1]],
                [r[2][0], r[2][1], r[2][2], t[2]],
                [0.0, 0.0, 0.0, 1.0],
            ]
        };
        let close = |a: [[f32; 4]; 4], b: [[f32; 4]; 4]| {
            a.iter()
                .flatten()
                .zip(b.iter().flatten())
                .all(|(x, y)| (x - y).abs() < 1e-6)
        };
        let expect_a = id4(
            [1.0, 2.0, 3.0],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        );
        let expect_b = id4(
            [0.0, 0.0, 5.0],
            [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        );
        let expect_c = id4(
            [0.5, -0.5, 2.0],
            [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]],
        );
        assert!(
            close(v[0].camera.viewmat, expect_a),
            "{:?}",
            v[0].camera.viewmat
        );
        assert!(
            close(v[1].camera.viewmat, expect_b),
            "{:?}",
            v[1].camera.viewmat
        );
        assert!(
            close(v[2].camera.viewmat, expect_c),
            "{:?}",
            v[2].camera.viewmat
        );
        // Camera centre −Rᵀt of b: Rᵀ·(0,0,5) = (0,0,5) → (0,0,−5).
        assert!((v[1].camera.position() - Vec3::new(0.0, 0.0, -5.0)).length() < 1e-6);
        assert_eq!(
            v[0].camera.k,
            [[12.0, 0.0, 5.5], [0.0, 12.0, 4.25], [0.0, 0.0, 1.0]]
        );
        assert_eq!(
            v[1].camera.k,
            [[10.0, 0.0, 4.0], [0.0, 11.0, 3.0], [0.0, 0.0, 1.0]]
        );
        assert_eq!((v[0].camera.width, v[0].camera.height), (10, 8));
        assert_eq!((v[1].camera.width, v[1].camera.height), (8, 6));
        // PINHOLE images are not resampled; SIMPLE_RADIAL ones are undistorted.
        let raw_b = super::super::decode_rgba(&rb.join("images/b.png")).unwrap();
        assert_eq!(v[1].image, raw_b);
        let raw_a = super::super::decode_rgba(&rb.join("images/a.png")).unwrap();
        assert_ne!(v[0].image, raw_a);

        let p = db.points.as_ref().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p.positions[1], [1.0, -2.0, 3.5]);
        assert_eq!(p.colors[1], [0.0, 1.0, 0.2]);
        assert_eq!(p.positions[3], [-3.0, 4.0, 2.0]);

        // Hold-out: index 0 (a.png) to eval; downscale 2 halves K and sizes.
        let ds = load_any(
            &rb,
            &LoadOptions {
                downscale: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ds.eval.len(), 1);
        assert_eq!(ds.eval[0].name, "a.png");
        assert_eq!(ds.train.len(), 2);
        assert_eq!(ds.eval[0].image.dimensions(), (5, 4));
        assert_eq!(
            ds.eval[0].camera.k,
            [[6.0, 0.0, 2.75], [0.0, 6.0, 2.125], [0.0, 0.0, 1.0]]
        );
    }

    #[test]
    fn bad_binaries_are_errors_naming_the_file() {
        let (cams, imgs, pts) = model();
        let tmp = TempDir::new("colmap-bad");
        write_images(&tmp.0, &cams, &imgs);
        let sparse = tmp.0.join("sparse/0");
        write_bin(&sparse, &cams, &imgs, &pts);

        // Truncated images.bin.
        let good = std::fs::read(sparse.join("images.bin")).unwrap();
        std::fs::write(sparse.join("images.bin"), &good[..good.len() - 10]).unwrap();
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(e.contains("images.bin") && e.contains("truncated"), "{e}");
        std::fs::write(sparse.join("images.bin"), &good).unwrap();

        // Garbage (wrong "magic": an implausible header) in cameras.bin.
        std::fs::write(sparse.join("cameras.bin"), b"# not a binary model at all\n").unwrap();
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(e.contains("cameras.bin") && e.contains("header"), "{e}");
        std::fs::write(sparse.join("cameras.bin"), b"abc").unwrap();
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(e.contains("cameras.bin") && e.contains("truncated"), "{e}");

        // Unknown model id.
        let mut bad = cams;
        bad[1].model_id = 99;
        write_bin(&sparse, &bad, &imgs, &pts);
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(
            e.contains("cameras.bin: camera 7: unknown camera model id 99"),
            "{e}"
        );

        // Trailing bytes in points3D.bin.
        let (cams, imgs, pts) = model();
        write_bin(&sparse, &cams, &imgs, &pts);
        let mut p = std::fs::read(sparse.join("points3D.bin")).unwrap();
        p.extend([1, 2, 3]);
        std::fs::write(sparse.join("points3D.bin"), &p).unwrap();
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(
            e.contains("points3D.bin") && e.contains("unexpected bytes"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_models_and_bad_text_are_named() {
        let (mut cams, imgs, pts) = model();
        cams[1].model = "OPENCV_FISHEYE";
        cams[1].params = vec![12.0, 12.0, 5.0, 4.0, 0.1, 0.0, 0.0, 0.0];
        let tmp = TempDir::new("colmap-model");
        write_images(&tmp.0, &cams, &imgs);
        write_txt(&tmp.0.join("sparse/0"), &cams, &imgs, &pts);
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(
            e.contains("cameras.txt: camera 7: unsupported camera model OPENCV_FISHEYE"),
            "{e}"
        );

        // Wrong parameter count and a bad number, with line numbers.
        let p = tmp.0.join("sparse/0/cameras.txt");
        std::fs::write(&p, "# c\n1 PINHOLE 8 6 10 11 4\n").unwrap();
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(
            e.contains("cameras.txt: line 2: camera 1: PINHOLE takes 4"),
            "{e}"
        );
        std::fs::write(&p, "1 PINHOLE 8 six 10 11 4 3\n").unwrap();
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(e.contains("cameras.txt: line 1: bad HEIGHT `six`"), "{e}");

        // An image naming a camera that does not exist.
        std::fs::write(&p, "1 PINHOLE 8 6 10 11 4 3\n").unwrap();
        let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
        assert!(
            e.contains("images.txt: image 2 (a.png): camera 7 is not in"),
            "{e}"
        );
    }

    /// Fuzzing found values finite in f64 that overflow f32: a point position (binary and text)
    /// and an image translation. Each must be refused, not turned into an infinity.
    #[test]
    fn values_beyond_f32_are_refused() {
        let path = Path::new("points3D.bin");
        let mut buf = 1u64.to_le_bytes().to_vec();
        buf.extend(5u64.to_le_bytes()); // point id
        for v in [0.0f64, 1e300, 0.0] {
            buf.extend(v.to_le_bytes());
        }
        buf.extend([1, 2, 3]); // rgb
        buf.extend(0.5f64.to_le_bytes()); // error
        buf.extend(0u64.to_le_bytes()); // empty track
        let e = read_points_bin(path, &buf).unwrap_err().to_string();
        assert_eq!(e, "points3D.bin: point 5: non-finite position");
        let e = read_points_txt(Path::new("points3D.txt"), "5 0 -4e38 0 1 2 3 0.5\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "points3D.txt: line 1: point 5: non-finite position");

        let text = "1 1 0 0 0 0 9.9e86 3 1 a.png\n\n";
        let images = read_images_txt(Path::new("images.txt"), text).unwrap();
        assert_eq!(images[0].world_to_camera(), None);
        let mut ok = images[0].clone();
        ok.tvec = [0.0, 1e38, 3.0];
        assert!(ok.world_to_camera().is_some());
    }

    #[test]
    fn rest_after_tokens_keeps_spaces_in_names() {
        assert_eq!(rest_after_tokens("1 2 3  my image.jpg ", 3), "my image.jpg");
        assert_eq!(rest_after_tokens("1 2", 3), "");
    }
}
