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

mod binary;
mod text;

pub use binary::{read_cameras_bin, read_images_bin, read_points_bin};
pub use text::{read_cameras_txt, read_images_txt, read_points_txt};

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

/// A COLMAP camera model that [`ColmapCamera::pinhole`] cannot turn into a pinhole camera
/// with OpenCV distortion.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unsupported camera model {model} (supported: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, \
     RADIAL, OPENCV)"
)]
pub struct UnsupportedModel {
    /// The model's COLMAP name.
    pub model: String,
}

impl ColmapCamera {
    /// Pinhole intrinsics and OpenCV distortion for the supported models (SIMPLE_PINHOLE,
    /// PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV); COLMAP places pixel centres at +0.5 like
    /// [`splat::Camera`], so `cx, cy` carry over unchanged.
    ///
    /// # Errors
    /// [`UnsupportedModel`] naming the model when it is not supported.
    pub fn pinhole(&self) -> Result<(Pinhole, Distortion), UnsupportedModel> {
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
                return Err(UnsupportedModel {
                    model: m.name().to_string(),
                });
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
            .map_err(|e| rec_err(cam_path, format!("camera {}", cam.id), e.to_string()))?;
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

#[cfg(test)]
mod tests;
