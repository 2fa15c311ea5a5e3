//! Posed-image datasets (NeRF-synthetic, instant-ngp, COLMAP), loaded on the host, and the
//! point sources that start a scene: meshes and point clouds ([`mesh`]) and the initial splats
//! built from them ([`init`]).
//!
//! [`load`] detects the layout of a directory and returns a [`Dataset`]: train and eval
//! [`View`]s, each an OpenCV-convention [`splat::Camera`] with its straight-alpha sRGB image
//! (already undistorted and downscaled), plus the sparse COLMAP point cloud where there is one.
//!
//! - [`transforms`]: NeRF-synthetic (`transforms_{train,val,test}.json`) and instant-ngp
//!   (`transforms.json`), Blender/OpenGL camera-to-world poses.
//! - [`colmap`]: COLMAP sparse models, binary and text.
//! - [`undistort`]: the OpenCV radial-tangential distortion model and image resampling.
//!
//! All of it is GPU-free. Errors ([`DataError`]) name the file and the record or field at fault.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use glam::{Mat4, Vec3};
use image::RgbaImage;
use splat::Camera;

pub mod colmap;
pub mod init;
pub mod mesh;
pub mod transforms;
pub mod undistort;

use undistort::{Distortion, Pinhole};

/// One posed photograph.
#[derive(Clone, Debug)]
pub struct View {
    /// Image name: the path relative to the dataset root (`train/r_0.png`, `images/0001.jpg`)
    /// or, for COLMAP, the image name as recorded in the model (relative to `images/`).
    pub name: String,
    /// OpenCV pinhole camera (world→camera `viewmat`) matching `image` exactly: its
    /// `width × height` is the image size and `k` is scaled for the downscale.
    pub camera: Camera,
    /// Straight (non-premultiplied) sRGB RGBA8, undistorted and downscaled. Alpha is 255 for
    /// photographs (RGB sources), except for pixels that undistortion had to take from outside
    /// the source frame (alpha 0, see [`undistort::undistort_image`]); NeRF-synthetic images
    /// keep their alpha (object mask over a transparent background).
    pub image: RgbaImage,
}

/// A sparse point cloud (COLMAP `points3D`), for initializing Gaussians.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointCloud {
    /// World positions, in the same frame as the cameras.
    pub positions: Vec<[f32; 3]>,
    /// sRGB colours in 0..1, one per position.
    pub colors: Vec<[f32; 3]>,
}

impl PointCloud {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

/// Which layout a dataset was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// Blender synthetic scenes: `transforms_{train,val,test}.json` with `camera_angle_x`.
    NerfSynthetic,
    /// instant-ngp `transforms.json` (intrinsics and distortion, OpenGL camera-to-world).
    InstantNgp,
    /// COLMAP sparse reconstruction (`sparse/0/`) with photos in `images/`.
    Colmap,
}

/// A loaded dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The layout it was read from.
    pub kind: DatasetKind,
    /// The dataset directory (image paths are relative to it).
    pub root: PathBuf,
    /// Training views.
    pub train: Vec<View>,
    /// Held-out views (the dataset's own split, or every `eval_every`-th frame).
    pub eval: Vec<View>,
    /// COLMAP sparse points, where the dataset has them.
    pub points: Option<PointCloud>,
}

impl Dataset {
    /// Mean of the train camera centres (zero when there are none).
    pub fn camera_centroid(&self) -> Vec3 {
        if self.train.is_empty() {
            return Vec3::ZERO;
        }
        let sum: Vec3 = self.train.iter().map(|v| v.camera.position()).sum();
        sum / self.train.len() as f32
    }

    /// Scene size in the 3DGS convention (`getNerfppNorm`): 1.1 × the largest distance of a
    /// train camera centre from [`Dataset::camera_centroid`]. Used to scale learning rates and
    /// densification thresholds. Zero when there are no train views; a single view gives 0 too,
    /// so callers should guard with a minimum.
    pub fn scene_extent(&self) -> f32 {
        let c = self.camera_centroid();
        let max = self
            .train
            .iter()
            .map(|v| (v.camera.position() - c).length())
            .fold(0.0f32, f32::max);
        1.1 * max
    }
}

/// Options for [`load`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Shrink images by this factor (1 = full resolution); sizes are rounded
    /// (`round(w / downscale)`) and the intrinsics scaled by the exact size ratio.
    pub downscale: u32,
    /// For datasets without their own split (instant-ngp, COLMAP): frames `i` with
    /// `i % eval_every == 0` in file-name order go to `eval` (gsplat's convention, which uses
    /// 8). 0 = no hold-out, everything trains. Ignored for NeRF-synthetic.
    pub eval_every: usize,
    /// Keep at most this many views in each of train and eval, evenly spaced over the split
    /// (applied after the split). `None` = all.
    pub max_views: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            downscale: 1,
            eval_every: 8,
            max_views: None,
        }
    }
}

/// Errors loading a dataset. Every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read (missing, permissions…).
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A JSON file does not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// File.
        path: PathBuf,
        /// serde's message (with line and column).
        source: serde_json::Error,
    },
    /// A field is missing or has an unusable value, e.g.
    /// `…/transforms_train.json: frame 3: field `transform_matrix`: expected 4x4`.
    #[error("{path}: {record}field `{field}`: {message}")]
    Field {
        /// File.
        path: PathBuf,
        /// Record prefix such as `"frame 3: "`, empty for top-level fields.
        record: String,
        /// Field name.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A record of a COLMAP model (or of another file) is malformed or inconsistent, e.g.
    /// `…/cameras.bin: camera 2: unsupported camera model OPENCV_FISHEYE`.
    #[error("{path}: {record}: {message}")]
    Record {
        /// File.
        path: PathBuf,
        /// Which record (`"camera 2"`, `"image 5 (IMG_0005.JPG)"`, `"line 7"`, `"header"`).
        record: String,
        /// What is wrong.
        message: String,
    },
    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {source}")]
    Image {
        /// Image file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// The resulting camera is unusable (non-invertible pose, bad focal length…); the message
    /// names the file and record.
    #[error(transparent)]
    Camera(#[from] splat::camera::CameraError),
    /// The path is not a dataset of a known layout, or loading it leaves nothing to train on.
    #[error("{path}: {message}")]
    Layout {
        /// File or directory.
        path: PathBuf,
        /// What was expected.
        message: String,
    },
}

/// Load a dataset, detecting its layout:
///
/// - a directory with `transforms_train.json` → [`DatasetKind::NerfSynthetic`]: train from
///   `transforms_train.json`; eval from `transforms_val.json`, else `transforms_test.json`,
///   each used only if it exists and all its images exist (otherwise a `tracing::warn` and the
///   next one; no eval views if neither is usable);
/// - a directory with `transforms.json` → [`DatasetKind::InstantNgp`], hold-out by
///   [`LoadOptions::eval_every`] over frames sorted by file path;
/// - a directory with `sparse/0/cameras.{bin,txt}` (or `sparse/cameras.{bin,txt}`) →
///   [`DatasetKind::Colmap`] with photos in `<dir>/images/`, sorted by name, same hold-out;
/// - a `.json` file: `transforms_*.json` → NeRF-synthetic of its directory, any other name →
///   instant-ngp from that file.
///
/// Images are decoded in parallel (`std::thread::scope`), undistorted at full resolution when
/// the camera has distortion, then downscaled.
///
/// # Errors
/// [`DataError`] naming the file and record: unknown layout, unreadable or malformed files,
/// undecodable or missing images, unsupported camera models, invalid cameras, or an empty
/// train set.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    if opts.downscale == 0 {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: "downscale must be at least 1".into(),
        });
    }
    let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dataset = if meta.is_file() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        if !name.ends_with(".json") {
            return Err(DataError::Layout {
                path: path.to_path_buf(),
                message: "expected a dataset directory or a transforms .json file".into(),
            });
        }
        if name.starts_with("transforms_") {
            transforms::load_nerf_synthetic(&dir, opts)?
        } else {
            transforms::load_instant_ngp(path, opts)?
        }
    } else if path.join("transforms_train.json").is_file() {
        transforms::load_nerf_synthetic(path, opts)?
    } else if path.join("transforms.json").is_file() {
        transforms::load_instant_ngp(&path.join("transforms.json"), opts)?
    } else if let Some(sparse) = colmap::find_sparse_dir(path) {
        colmap::load(path, &sparse, opts)?
    } else {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: "no dataset found: expected transforms_train.json (NeRF-synthetic), \
                      transforms.json (instant-ngp) or sparse/0/cameras.{bin,txt} (COLMAP)"
                .into(),
        });
    };
    if dataset.train.is_empty() {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: format!(
                "no training views (eval_every = {}, {} eval views)",
                opts.eval_every,
                dataset.eval.len()
            ),
        });
    }
    tracing::info!(
        "loaded {:?} dataset {}: {} train, {} eval views{}",
        dataset.kind,
        dataset.root.display(),
        dataset.train.len(),
        dataset.eval.len(),
        dataset
            .points
            .as_ref()
            .map(|p| format!(", {} points", p.len()))
            .unwrap_or_default()
    );
    Ok(dataset)
}

// ---------------------------------------------------------------------------------------------
// Shared loading machinery.

/// A camera pose as the dataset gives it.
#[derive(Clone, Copy, Debug)]
pub enum Pose {
    /// OpenGL/Blender camera-to-world (converted by [`Camera::from_opengl_c2w`]).
    OpenGlC2w(Mat4),
    /// OpenCV world→camera (COLMAP).
    OpenCvW2c(Mat4),
}

/// Intrinsics as the dataset gives them; missing values are completed from the image size.
#[derive(Clone, Copy, Debug, Default)]
pub struct Intrinsics {
    /// Focal lengths in pixels of the declared size; `fx` falls back to `angle_x`, `fy` to
    /// `angle_y`, then to `fx`.
    pub fx: Option<f64>,
    /// Vertical focal length in pixels (see `fx`).
    pub fy: Option<f64>,
    /// Principal point; defaults to the centre of the declared size.
    pub cx: Option<f64>,
    /// Principal point, vertical (see `cx`).
    pub cy: Option<f64>,
    /// Horizontal field of view in radians.
    pub angle_x: Option<f64>,
    /// Vertical field of view in radians.
    pub angle_y: Option<f64>,
    /// The image size the intrinsics refer to; `None` = the actual image size. When the actual
    /// image differs, the intrinsics are scaled to it (with a warning).
    pub size: Option<(u32, u32)>,
}

impl Intrinsics {
    /// Pinhole intrinsics for an actual image of `w × h`, or `None` without a focal length.
    pub fn resolve(&self, w: u32, h: u32) -> Option<Pinhole> {
        let (dw, dh) = self.size.unwrap_or((w, h));
        let (dw, dh) = (dw as f64, dh as f64);
        let fx = self
            .fx
            .or_else(|| self.angle_x.map(|a| 0.5 * dw / (0.5 * a).tan()))?;
        let fy = self
            .fy
            .or_else(|| self.angle_y.map(|a| 0.5 * dh / (0.5 * a).tan()))
            .unwrap_or(fx);
        let (sx, sy) = (w as f64 / dw, h as f64 / dh);
        Some(Pinhole {
            fx: fx * sx,
            fy: fy * sy,
            cx: self.cx.unwrap_or(0.5 * dw) * sx,
            cy: self.cy.unwrap_or(0.5 * dh) * sy,
        })
    }
}

/// Everything needed to produce one [`View`] (what the metadata parsers return; loading the
/// image happens later).
#[derive(Clone, Debug)]
pub struct ViewJob {
    /// The view name (see [`View::name`]).
    pub name: String,
    /// The image file.
    pub image_path: PathBuf,
    /// The camera pose.
    pub pose: Pose,
    /// The intrinsics, completed from the image size when the image is read.
    pub intrinsics: Intrinsics,
    /// Lens distortion, removed from the image when it is read.
    pub distortion: Distortion,
    /// The metadata file, for error messages.
    pub source: PathBuf,
    /// The record in it, for error messages (`"frame 3"`, `"image 7"`).
    pub record: String,
}

impl ViewJob {
    fn run(&self, downscale: u32) -> Result<View, DataError> {
        if let Pose::OpenGlC2w(m) = self.pose {
            let det = m.determinant();
            if !(det.is_finite() && det.abs() > 1e-12) {
                return Err(DataError::Field {
                    path: self.source.clone(),
                    record: format!("{}: ", self.record),
                    field: "transform_matrix".into(),
                    message: format!("is not invertible (determinant {det})"),
                });
            }
        }
        let img = decode_rgba(&self.image_path)?;
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(DataError::Record {
                path: self.image_path.clone(),
                record: "image".into(),
                message: format!("the image is empty ({w}×{h} pixels)"),
            });
        }
        if let Some((dw, dh)) = self.intrinsics.size
            && (dw, dh) != (w, h)
        {
            // A uniformly resized photo keeps its camera up to scale; another aspect ratio
            // means the image does not belong to this camera.
            let (ra, rb) = (w as f64 * dh as f64, h as f64 * dw as f64);
            if (ra - rb).abs() > 0.01 * ra.max(rb) {
                return Err(DataError::Field {
                    path: self.source.clone(),
                    record: format!("{}: ", self.record),
                    field: match self.pose {
                        Pose::OpenCvW2c(_) => "WIDTH".into(), // COLMAP's camera size
                        Pose::OpenGlC2w(_) => "w".into(),
                    },
                    message: format!(
                        "the camera is {dw}×{dh} but image {} is {w}×{h}, \
                         another aspect ratio",
                        self.image_path.display()
                    ),
                });
            }
            tracing::warn!(
                "{}: {}: image {} is {w}×{h} but the camera says {dw}×{dh}; scaling the \
                 intrinsics",
                self.source.display(),
                self.record,
                self.image_path.display()
            );
        }
        let k = self
            .intrinsics
            .resolve(w, h)
            .ok_or_else(|| DataError::Field {
                path: self.source.clone(),
                record: format!("{}: ", self.record),
                field: "fl_x".into(),
                message: "no focal length (and no `camera_angle_x`)".into(),
            })?;
        let img = if self.distortion.is_zero() {
            img
        } else {
            undistort::undistort_image(&img, &k, &self.distortion)
        };
        let (nw, nh) = undistort::downscaled_size(w, h, downscale);
        let (img, k) = if (nw, nh) == (w, h) {
            (img, k)
        } else {
            let (sx, sy) = (nw as f64 / w as f64, nh as f64 / h as f64);
            (
                undistort::resize_area(&img, nw, nh),
                Pinhole {
                    fx: k.fx * sx,
                    fy: k.fy * sy,
                    cx: k.cx * sx,
                    cy: k.cy * sy,
                },
            )
        };
        let (fx, fy, cx, cy) = (k.fx as f32, k.fy as f32, k.cx as f32, k.cy as f32);
        let camera = match self.pose {
            Pose::OpenGlC2w(c2w) => Camera::from_opengl_c2w(c2w, fx, fy, cx, cy, nw, nh),
            Pose::OpenCvW2c(w2c) => Camera {
                viewmat: w2c.transpose().to_cols_array_2d(),
                k: [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]],
                width: nw,
                height: nh,
            },
        };
        camera.validate(&format!("{}: {}", self.source.display(), self.record))?;
        Ok(View {
            name: self.name.clone(),
            camera,
            image: img,
        })
    }
}

/// Decode an image file (format guessed from its content) to straight RGBA8; RGB → alpha 255.
/// The one image decoder of the workspace: dataset views, `distill2d`'s initial image and
/// LMC-SDS pre-training images all come through here.
///
/// # Errors
/// [`DataError::Io`] for an unreadable file, [`DataError::Image`] for one that does not
/// decode.
pub fn decode_rgba(path: &Path) -> Result<RgbaImage, DataError> {
    let reader = image::ImageReader::open(path)
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let img = reader.decode().map_err(|source| DataError::Image {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(img.into_rgba8())
}

/// The image at `path` as a `side × side` RGB square for the diffusion model: alpha composited
/// over white, the shorter side resized to `side` (Lanczos3) and the centre cropped; values in
/// [−1, 1], laid out CHW (`[3, side, side]` flattened, the NCHW of a batch of one).
///
/// # Errors
/// [`decode_rgba`]'s errors, or [`DataError::Layout`] for an image with no pixels.
pub fn square_rgb_chw(path: &Path, side: u32) -> Result<Vec<f32>, DataError> {
    let img = decode_rgba(path)?;
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || side == 0 {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: format!("empty image ({w}×{h})"),
        });
    }
    let img = image::DynamicImage::ImageRgba8(img)
        .resize_to_fill(side, side, image::imageops::FilterType::Lanczos3)
        .to_rgba8();
    let n = (side * side) as usize;
    let mut v = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        let a = p[3] as f32 / 255.0;
        for c in 0..3 {
            let x = p[c] as f32 / 255.0 * a + (1.0 - a);
            v[c * n + i] = x * 2.0 - 1.0;
        }
    }
    Ok(v)
}

/// Run the jobs on up to `available_parallelism` (at most 8) scoped worker threads, preserving
/// order. Stops early and returns the first error (in job order among those that ran).
pub(crate) fn run_jobs(jobs: &[ViewJob], downscale: u32) -> Result<Vec<View>, DataError> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<View, DataError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = job.run(downscale);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut views = Vec::with_capacity(jobs.len());
    let mut first_err = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok(v) => views.push(v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(views),
    }
}

/// Read the images of `train` and `eval` (each capped at `opts.max_views`) and assemble the
/// dataset.
pub(crate) fn assemble(
    kind: DatasetKind,
    root: PathBuf,
    train: Vec<ViewJob>,
    eval: Vec<ViewJob>,
    opts: &LoadOptions,
    points: Option<PointCloud>,
) -> Result<Dataset, DataError> {
    let train = limit(train, opts.max_views);
    let eval = limit(eval, opts.max_views);
    let n_train = train.len();
    let mut views = run_jobs(&[train, eval].concat(), opts.downscale)?;
    let eval = views.split_off(n_train);
    Ok(Dataset {
        kind,
        root,
        train: views,
        eval,
        points,
    })
}

/// Split `items` (already in file-name order) into (train, eval): index `i` goes to eval when
/// `eval_every > 0 && i % eval_every == 0` (gsplat's convention).
pub(crate) fn hold_out<T>(items: Vec<T>, eval_every: usize) -> (Vec<T>, Vec<T>) {
    let mut train = Vec::new();
    let mut eval = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        if eval_every > 0 && i % eval_every == 0 {
            eval.push(it);
        } else {
            train.push(it);
        }
    }
    (train, eval)
}

/// Keep at most `max` items, evenly spaced (indices `⌊i·len/max⌋`), in order.
pub fn limit<T>(items: Vec<T>, max: Option<usize>) -> Vec<T> {
    let len = items.len();
    match max {
        Some(m) if m < len => {
            let keep: Vec<usize> = (0..m).map(|i| i * len / m).collect();
            let mut k = keep.iter().peekable();
            items
                .into_iter()
                .enumerate()
                .filter_map(|(i, it)| {
                    if k.peek() == Some(&&i) {
                        k.next();
                        Some(it)
                    } else {
                        None
                    }
                })
                .collect()
        }
        _ => items,
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Temp directories and real-data location for the data tests.

    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "splatdream-data-{tag}-{}-{nanos}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `<workspace>/../shared/data/<sub>`, or `$SPLATDREAM_SHARED_DATA/<sub>`. The captures there
    /// (lego, fox) may not be committed, so the tests that read them are `#[ignore]`d and run
    /// with `cargo test -p splatdream-train -- --ignored`; a missing folder is then a failure.
    pub fn shared_data(sub: &str) -> PathBuf {
        let base = std::env::var_os("SPLATDREAM_SHARED_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
            });
        let p = base.join(sub);
        assert!(
            p.is_dir(),
            "shared data {} not found (set $SPLATDREAM_SHARED_DATA)",
            p.display()
        );
        p
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{self, TempDir};
    use super::*;

    #[test]
    fn hold_out_and_limit() {
        let (train, eval) = hold_out((0..10).collect(), 4);
        assert_eq!(eval, vec![0, 4, 8]);
        assert_eq!(train, vec![1, 2, 3, 5, 6, 7, 9]);
        let (train, eval) = hold_out((0..3).collect::<Vec<_>>(), 0);
        assert_eq!((train.len(), eval.len()), (3, 0));
        assert_eq!(limit((0..10).collect(), Some(4)), vec![0, 2, 5, 7]);
        assert_eq!(limit((0..3).collect(), Some(5)), vec![0, 1, 2]);
        assert_eq!(limit((0..3).collect(), None), vec![0, 1, 2]);
    }

    #[test]
    fn missing_path_and_unknown_layout_are_errors() {
        let tmp = TempDir::new("layout");
        let missing = tmp.0.join("no-such-dataset");
        let e = load(&missing, &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("no-such-dataset"), "{e}");
        let e = load(&tmp.0, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::Layout { .. }), "{e}");
        assert!(e.to_string().contains("no dataset found"), "{e}");
    }

    #[test]
    fn scene_extent_follows_3dgs() {
        let mk = |x: f32| View {
            name: String::new(),
            camera: Camera::look_at(Vec3::new(x, 0.0, 0.0), Vec3::Z * 10.0, Vec3::Y, 1.0, 4, 4),
            image: RgbaImage::new(4, 4),
        };
        let ds = Dataset {
            kind: DatasetKind::Colmap,
            root: PathBuf::new(),
            train: vec![mk(-1.0), mk(1.0), mk(3.0)],
            eval: vec![],
            points: None,
        };
        assert!((ds.camera_centroid() - Vec3::new(1.0, 0.0, 0.0)).length() < 1e-5);
        assert!((ds.scene_extent() - 2.2).abs() < 1e-5);
    }

    /// Full-size loading times (`cargo test -p splatdream-train --lib -- --ignored
    /// --nocapture load_timing`): lego at full resolution, fox at downscale 4.
    #[test]
    #[ignore = "slow; timing only"]
    fn load_timing() {
        for (sub, downscale) in [("multiview/lego", 1), ("multiview/fox", 4)] {
            let dir = test_util::shared_data(sub);
            let opts = LoadOptions {
                downscale,
                ..Default::default()
            };
            let t = std::time::Instant::now();
            let ds = load(&dir, &opts).unwrap();
            eprintln!(
                "{sub} /{downscale}: {} train + {} eval views of {}×{} in {:.2?}; centroid {}, \
                 extent {:.3}",
                ds.train.len(),
                ds.eval.len(),
                ds.train[0].camera.width,
                ds.train[0].camera.height,
                t.elapsed(),
                ds.camera_centroid(),
                ds.scene_extent()
            );
        }
    }
}
