//! NeRF-synthetic and instant-ngp `transforms*.json` datasets.
//!
//! Format (the NeRF "blender" loader, extended by instant-ngp's `nerf_loader`):
//!
//! ```json
//! { "camera_angle_x": 0.69,                       // horizontal FoV in radians
//!   "fl_x": 1375.5, "fl_y": 1374.5, "cx": 554.6, "cy": 965.3, "w": 1080, "h": 1920,
//!   "k1": 0.058, "k2": -0.081, "p1": -0.00098, "p2": 0.00016,   // OpenCV distortion
//!   "frames": [ { "file_path": "./train/r_0", "transform_matrix": [[...4...], ×4] }, ... ] }
//! ```
//!
//! `transform_matrix` is a Blender/OpenGL camera-to-world matrix (+x right, +y up, −z
//! forward), converted by [`splat::Camera::from_opengl_c2w`]. Every intrinsic key may also
//! appear in a frame, overriding the top level. Missing intrinsics: `fl_x` ← `camera_angle_x`
//! (`fx = ½·W / tan(½·angle)`), `fl_y` ← `camera_angle_y`, else `fl_x`; `cx, cy` ← image centre;
//! `w, h` ← the image size. `file_path` is relative to the JSON's directory; without an
//! extension, `.png` is appended (NeRF-synthetic writes `./train/r_0`). instant-ngp's
//! normalization keys (`scale`, `offset`, `aabb_scale`) are ignored: poses are used as written.

use std::path::{Path, PathBuf};

use glam::Mat4;
use serde_json::Value;

use super::undistort::Distortion;
use super::{
    DataError, Dataset, DatasetKind, Intrinsics, LoadOptions, Pose, ViewJob, assemble, hold_out,
};

/// Load a NeRF-synthetic scene directory: train from `transforms_train.json`, eval from
/// `transforms_val.json`, else `transforms_test.json` — an eval split is used only if its JSON
/// exists and all its images exist, otherwise it is skipped with a `tracing::warn` (the lego
/// test images, for one, are not distributed). Frames keep their JSON order;
/// [`LoadOptions::eval_every`] is ignored.
///
/// # Errors
/// [`DataError`] for a missing/malformed `transforms_train.json`, malformed split files,
/// undecodable train images or invalid cameras.
pub fn load_nerf_synthetic(dir: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let train = parse(&dir.join("transforms_train.json"))?;
    let mut eval = Vec::new();
    for split in ["transforms_val.json", "transforms_test.json"] {
        let p = dir.join(split);
        if !p.is_file() {
            continue;
        }
        let jobs = parse(&p)?;
        if let Some(missing) = jobs.iter().find(|j| !j.image_path.is_file()) {
            tracing::warn!(
                "{}: skipping this split: image {} is missing",
                p.display(),
                missing.image_path.display()
            );
            continue;
        }
        eval = jobs;
        break;
    }
    assemble(
        DatasetKind::NerfSynthetic,
        dir.to_path_buf(),
        train,
        eval,
        opts,
        None,
    )
}

/// Load an instant-ngp `transforms.json` (or any single transforms file): frames sorted by
/// file path, every [`LoadOptions::eval_every`]-th held out, images undistorted when the
/// camera has non-zero `k1, k2, k3, p1, p2`.
///
/// # Errors
/// [`DataError`] for a missing/malformed JSON (naming frame and field), undecodable or
/// missing images, fisheye cameras (`is_fisheye`, `k4`) or invalid cameras.
pub fn load_instant_ngp(json: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let mut jobs = parse(json)?;
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    let (train, eval) = hold_out(jobs, opts.eval_every);
    assemble(
        DatasetKind::InstantNgp,
        json.parent().unwrap_or(Path::new(".")).to_path_buf(),
        train,
        eval,
        opts,
        None,
    )
}

/// Parse a transforms file into view jobs (no image is read).
fn parse(path: &Path) -> Result<Vec<ViewJob>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_transforms(&bytes, path)
}

/// Parse the bytes of a `transforms*.json` into one [`ViewJob`] per frame, in file order; no
/// image is read. `path` names the file in errors, and image paths are resolved against its
/// folder (a `file_path` without an extension is completed with the extension of an existing
/// file, else `.png`). Every job has a finite pose matrix, finite intrinsics (focal lengths,
/// angles and the declared size positive) and a focal length or field of view.
///
/// # Errors
/// [`DataError::Json`] for invalid JSON (including invalid UTF-8), [`DataError::Record`] /
/// [`DataError::Field`] naming the frame and field for anything missing or unusable.
pub fn parse_transforms(bytes: &[u8], path: &Path) -> Result<Vec<ViewJob>, DataError> {
    let root: Value = serde_json::from_slice(bytes).map_err(|source| DataError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let field_err = |record: &str, field: &str, message: String| DataError::Field {
        path: path.to_path_buf(),
        record: record.to_string(),
        field: field.to_string(),
        message,
    };
    let Some(top) = root.as_object() else {
        return Err(DataError::Record {
            path: path.to_path_buf(),
            record: "top level".into(),
            message: "expected a JSON object".into(),
        });
    };
    let frames = match top.get("frames") {
        Some(Value::Array(f)) if f.is_empty() => {
            return Err(field_err("", "frames", "is empty: no views".into()));
        }
        Some(Value::Array(f)) => f,
        Some(_) => return Err(field_err("", "frames", "expected an array".into())),
        None => return Err(field_err("", "frames", "missing".into())),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut jobs = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let record = format!("frame {i}: ");
        let Some(fr) = frame.as_object() else {
            return Err(DataError::Record {
                path: path.to_path_buf(),
                record: format!("frame {i}"),
                message: "expected a JSON object".into(),
            });
        };
        // Per-frame value, else top-level; a value present at either level must be a number.
        let num = |key: &str| -> Result<Option<f64>, DataError> {
            for (obj, rec) in [(fr, record.as_str()), (top, "")] {
                match obj.get(key) {
                    None | Some(Value::Null) => {}
                    Some(v) => {
                        return match v.as_f64() {
                            Some(x) if x.is_finite() => Ok(Some(x)),
                            _ => Err(field_err(rec, key, format!("expected a number, got {v}"))),
                        };
                    }
                }
            }
            Ok(None)
        };
        let positive = |key: &str| -> Result<Option<f64>, DataError> {
            match num(key)? {
                Some(x) if x <= 0.0 => {
                    Err(field_err(&record, key, format!("must be > 0, got {x}")))
                }
                x => Ok(x),
            }
        };
        let flag = |key: &str| {
            fr.get(key)
                .or_else(|| top.get(key))
                .and_then(Value::as_bool)
        };

        let file_path = match fr.get("file_path") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(v) => {
                return Err(field_err(
                    &record,
                    "file_path",
                    format!("expected a path, got {v}"),
                ));
            }
            None => return Err(field_err(&record, "file_path", "missing".into())),
        };
        let (name, image_path) = resolve_image(dir, file_path);

        let c2w = parse_matrix(fr.get("transform_matrix"))
            .map_err(|m| field_err(&record, "transform_matrix", m))?;

        let size = match (positive("w")?, positive("h")?) {
            (Some(w), Some(h)) => Some((w.round() as u32, h.round() as u32)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(field_err(&record, "h", "missing (`w` is given)".into()));
            }
            (None, Some(_)) => {
                return Err(field_err(&record, "w", "missing (`h` is given)".into()));
            }
        };
        let intrinsics = Intrinsics {
            fx: positive("fl_x")?,
            fy: positive("fl_y")?,
            cx: num("cx")?,
            cy: num("cy")?,
            angle_x: positive("camera_angle_x")?,
            angle_y: positive("camera_angle_y")?,
            size,
        };
        if intrinsics.fx.is_none() && intrinsics.angle_x.is_none() {
            return Err(field_err(
                &record,
                "camera_angle_x",
                "missing: neither `fl_x` nor `camera_angle_x` is given (in the frame or at the \
                 top level)"
                    .into(),
            ));
        }
        if flag("is_fisheye") == Some(true) {
            return Err(field_err(
                &record,
                "is_fisheye",
                "fisheye cameras are not supported".into(),
            ));
        }
        if num("k4")?.is_some_and(|k| k != 0.0) {
            return Err(field_err(
                &record,
                "k4",
                "only k1, k2, k3, p1, p2 distortion is supported".into(),
            ));
        }
        let distortion = Distortion {
            k1: num("k1")?.unwrap_or(0.0),
            k2: num("k2")?.unwrap_or(0.0),
            k3: num("k3")?.unwrap_or(0.0),
            p1: num("p1")?.unwrap_or(0.0),
            p2: num("p2")?.unwrap_or(0.0),
        };
        jobs.push(ViewJob {
            name,
            image_path,
            pose: Pose::OpenGlC2w(c2w),
            intrinsics,
            distortion,
            source: path.to_path_buf(),
            record: format!("frame {i}"),
        });
    }
    Ok(jobs)
}

/// The view name (`file_path` without a leading `./`, extension added) and the image path:
/// relative to `dir` unless absolute; without an extension, `.png` is appended (or `.jpg` /
/// `.jpeg` when only such a file exists).
fn resolve_image(dir: &Path, file_path: &str) -> (String, PathBuf) {
    let mut rel = file_path.trim_start_matches("./").to_string();
    if Path::new(&rel).extension().is_none() {
        let ext = ["png", "jpg", "jpeg", "JPG", "PNG"]
            .into_iter()
            .find(|e| dir.join(format!("{rel}.{e}")).is_file())
            .unwrap_or("png");
        rel = format!("{rel}.{ext}");
    }
    let path = dir.join(&rel);
    (rel, path)
}

/// A 4×4 (or 3×4, completed with `[0, 0, 0, 1]`) row-major matrix of finite numbers.
fn parse_matrix(v: Option<&Value>) -> Result<Mat4, String> {
    let Some(v) = v else {
        return Err("missing".into());
    };
    let rows = v
        .as_array()
        .ok_or_else(|| format!("expected 4x4, got {}", short(v)))?;
    if rows.len() != 4 && rows.len() != 3 {
        return Err(format!("expected 4x4, got {} rows", rows.len()));
    }
    let mut m = [[0.0f32; 4]; 4];
    m[3] = [0.0, 0.0, 0.0, 1.0];
    for (r, row) in rows.iter().enumerate() {
        let cols = row
            .as_array()
            .filter(|c| c.len() == 4)
            .ok_or_else(|| format!("expected 4x4: row {r} is {}", short(row)))?;
        for (c, x) in cols.iter().enumerate() {
            m[r][c] = x
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("expected 4x4 numbers: element [{r}][{c}] is {x}"))?
                as f32;
        }
    }
    // Row-major in the file, glam is column-major.
    Ok(Mat4::from_cols_array_2d(&m).transpose())
}

/// A JSON value shortened for messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{TempDir, shared_data};
    use super::super::{load, undistort};
    use super::*;
    use glam::Vec3;
    use image::RgbaImage;

    /// Two-frame NeRF-synthetic scene with 8×8 RGBA PNGs; returns the c2w matrices.
    fn write_synthetic(dir: &Path) -> Vec<[[f64; 4]; 4]> {
        std::fs::create_dir_all(dir.join("train")).unwrap();
        std::fs::create_dir_all(dir.join("val")).unwrap();
        // Frame 0: at (0, 0, 4) looking down −z (identity rotation).
        // Frame 1: rotated 90° about +y, at (4, 0, 0), looking down −x towards the origin.
        let mats = vec![
            [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 4.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            [
                [0.0, 0.0, 1.0, 4.0],
                [0.0, 1.0, 0.0, 0.0],
                [-1.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
        ];
        for split in ["train", "val"] {
            let frames: Vec<Value> = mats
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    RgbaImage::from_fn(8, 8, |x, y| {
                        image::Rgba([(x * 30) as u8, (y * 30) as u8, i as u8 * 100, 128])
                    })
                    .save(dir.join(format!("{split}/r_{i}.png")))
                    .unwrap();
                    serde_json::json!({ "file_path": format!("./{split}/r_{i}"), "rotation": 0.0,
                                        "transform_matrix": m })
                })
                .collect();
            let json = serde_json::json!({ "camera_angle_x": 0.5, "frames": frames });
            std::fs::write(
                dir.join(format!("transforms_{split}.json")),
                serde_json::to_string_pretty(&json).unwrap(),
            )
            .unwrap();
        }
        mats
    }

    #[test]
    fn nerf_synthetic_tiny() {
        let tmp = TempDir::new("synthetic");
        let mats = write_synthetic(&tmp.0);
        let ds = load(&tmp.0, &LoadOptions::default()).unwrap();
        assert_eq!(ds.kind, DatasetKind::NerfSynthetic);
        assert_eq!((ds.train.len(), ds.eval.len()), (2, 2));
        assert!(ds.points.is_none());
        let expected_f = 0.5 * 8.0 / (0.25f64).tan();
        for (v, m) in ds.train.iter().zip(&mats) {
            let c = &v.camera;
            assert_eq!((c.width, c.height), (8, 8));
            assert!((c.k[0][0] as f64 - expected_f).abs() < 1e-3, "{:?}", c.k);
            assert!((c.k[1][1] as f64 - expected_f).abs() < 1e-3);
            assert_eq!((c.k[0][2], c.k[1][2]), (4.0, 4.0));
            // The camera centre is the translation column of the c2w matrix.
            let t = Vec3::new(m[0][3] as f32, m[1][3] as f32, m[2][3] as f32);
            assert!(
                (c.position() - t).length() < 1e-5,
                "{} vs {t}",
                c.position()
            );
            // A point one unit along the camera's OpenGL −z axis has positive OpenCV depth 1.
            let fwd = -Vec3::new(m[0][2] as f32, m[1][2] as f32, m[2][2] as f32);
            let p = c.view_matrix().transform_point3(t + fwd);
            assert!((p - Vec3::Z).length() < 1e-5, "{p}");
            // OpenGL camera +y (up) is OpenCV −y (image up).
            let up = Vec3::new(m[0][1] as f32, m[1][1] as f32, m[2][1] as f32);
            assert!(c.view_matrix().transform_point3(t + fwd + up).y < 0.0);
        }
        assert_eq!(ds.train[0].name, "train/r_0.png");
        assert_eq!(ds.eval[1].name, "val/r_1.png");
        // RGBA kept as is.
        assert_eq!(ds.train[1].image.get_pixel(2, 3).0, [60, 90, 100, 128]);
        // Pointing at the JSON file works too; downscale 2 halves K.
        let ds2 = load(
            &tmp.0.join("transforms_train.json"),
            &LoadOptions {
                downscale: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ds2.train[0].image.dimensions(), (4, 4));
        assert!((ds2.train[0].camera.k[0][0] as f64 - expected_f / 2.0).abs() < 1e-3);
        assert_eq!(ds2.train[0].camera.k[0][2], 2.0);
    }

    #[test]
    fn missing_eval_images_skip_the_split() {
        let tmp = TempDir::new("synthetic-noval");
        write_synthetic(&tmp.0);
        std::fs::remove_file(tmp.0.join("val/r_1.png")).unwrap();
        let ds = load(&tmp.0, &LoadOptions::default()).unwrap();
        assert_eq!((ds.train.len(), ds.eval.len()), (2, 0));
        // A missing train image is an error naming it.
        std::fs::remove_file(tmp.0.join("train/r_1.png")).unwrap();
        let e = load(&tmp.0, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("r_1.png"), "{e}");
    }

    #[test]
    fn malformed_fields_name_file_frame_and_field() {
        let tmp = TempDir::new("synthetic-bad");
        write_synthetic(&tmp.0);
        let p = tmp.0.join("transforms_train.json");
        let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        json["frames"][1]["transform_matrix"] = serde_json::json!([[1, 0, 0], [0, 1, 0]]);
        std::fs::write(&p, json.to_string()).unwrap();
        let e = load(&tmp.0, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("transforms_train.json: frame 1: field `transform_matrix`: expected 4x4"),
            "{e}"
        );

        json["frames"][1]["transform_matrix"] = json["frames"][0]["transform_matrix"].clone();
        json["camera_angle_x"] = serde_json::json!("wide");
        std::fs::write(&p, json.to_string()).unwrap();
        let e = load(&tmp.0, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("transforms_train.json: field `camera_angle_x`"),
            "{e}"
        );

        std::fs::write(&p, "{ \"frames\": [ ").unwrap();
        let e = load(&tmp.0, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("transforms_train.json: invalid JSON"), "{e}");

        // A singular pose is an invalid camera, not a panic.
        json["camera_angle_x"] = serde_json::json!(0.5);
        json["frames"][0]["transform_matrix"] =
            serde_json::json!([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
        std::fs::write(&p, json.to_string()).unwrap();
        let e = load(&tmp.0, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("transforms_train.json: frame 0"), "{e}");
    }

    #[test]
    fn instant_ngp_with_distortion_and_overrides() {
        let tmp = TempDir::new("ngp");
        std::fs::create_dir_all(tmp.0.join("images")).unwrap();
        let mut frames = Vec::new();
        for i in 0..5 {
            // JPEG (RGB) input → alpha 255.
            let img = image::RgbImage::from_fn(40, 30, |x, y| {
                image::Rgb([(x * 6) as u8, (y * 8) as u8, (i * 40) as u8])
            });
            img.save(tmp.0.join(format!("images/{i:04}.jpg"))).unwrap();
            let mut f = serde_json::json!({
                "file_path": format!("images/{i:04}.jpg"),
                "transform_matrix": [[1,0,0,i],[0,1,0,0],[0,0,1,3],[0,0,0,1]],
            });
            if i == 3 {
                f["fl_x"] = serde_json::json!(50.0); // per-frame override
            }
            frames.push(f);
        }
        frames.reverse(); // loading sorts by path
        let json = serde_json::json!({
            "fl_x": 40.0, "fl_y": 41.0, "cx": 19.0, "cy": 15.5, "w": 40, "h": 30,
            "k1": 0.1, "k2": 0.0, "p1": 0.0, "p2": 0.0, "aabb_scale": 4, "frames": frames,
        });
        std::fs::write(tmp.0.join("transforms.json"), json.to_string()).unwrap();
        let ds = load(
            &tmp.0,
            &LoadOptions {
                eval_every: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ds.kind, DatasetKind::InstantNgp);
        let names = |v: &[super::super::View]| v.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&ds.eval),
            ["images/0000.jpg", "images/0002.jpg", "images/0004.jpg"]
        );
        assert_eq!(names(&ds.train), ["images/0001.jpg", "images/0003.jpg"]);
        let (a, b) = (&ds.train[0].camera, &ds.train[1].camera);
        assert_eq!(a.k, [[40.0, 0.0, 19.0], [0.0, 41.0, 15.5], [0.0, 0.0, 1.0]]);
        assert_eq!(b.k[0][0], 50.0);
        assert!((a.position() - Vec3::new(1.0, 0.0, 3.0)).length() < 1e-6);
        assert!(ds.train[0].image.pixels().any(|p| p[3] == 255));
        // Undistorted: differs from the raw decoded image, except near the principal point.
        let raw = super::super::decode_rgba(&tmp.0.join("images/0001.jpg")).unwrap();
        let und = &ds.train[0].image;
        assert_ne!(&raw, und);
        let k = undistort::Pinhole {
            fx: 40.0,
            fy: 41.0,
            cx: 19.0,
            cy: 15.5,
        };
        let d = Distortion {
            k1: 0.1,
            ..Default::default()
        };
        assert_eq!(&undistort::undistort_image(&raw, &k, &d), und);
        let (c0, c1) = (raw.get_pixel(18, 15).0, und.get_pixel(18, 15).0);
        assert!((c0[0] as i32 - c1[0] as i32).abs() <= 2, "{c0:?} {c1:?}");

        // A fisheye camera is refused by name.
        let mut json = json;
        json["is_fisheye"] = serde_json::json!(true);
        std::fs::write(tmp.0.join("transforms.json"), json.to_string()).unwrap();
        let e = load(&tmp.0, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("transforms.json: frame 0: field `is_fisheye`"),
            "{e}"
        );
    }

    #[test]
    #[ignore = "reads ../shared/data/multiview/lego, which may not be committed"]
    fn lego_real_data() {
        let dir = shared_data("multiview/lego");
        let opts = LoadOptions {
            downscale: 2,
            eval_every: 8,
            max_views: Some(4),
        };
        let ds = load(&dir, &opts).unwrap();
        assert_eq!(ds.kind, DatasetKind::NerfSynthetic);
        assert_eq!((ds.train.len(), ds.eval.len()), (4, 4));
        for v in ds.train.iter().chain(&ds.eval) {
            assert_eq!(v.image.dimensions(), (200, 200));
            assert_eq!((v.camera.width, v.camera.height), (200, 200));
            let (fx, fy) = v.camera.focal();
            assert!((fx - 555.5555 / 2.0).abs() < 0.01, "fx {fx}");
            assert_eq!(fx, fy);
            assert_eq!(v.camera.principal(), (100.0, 100.0));
            // Cameras sit on a sphere of radius ≈ 4.03 looking at the origin.
            let r = v.camera.position().length();
            assert!((r - 4.031).abs() < 0.01, "radius {r}");
            let o = v.camera.view_matrix().transform_point3(Vec3::ZERO);
            assert!(o.z > 3.9 && o.x.abs() < 0.5 && o.y.abs() < 0.5, "{o}");
            // Transparent background, opaque object.
            assert!(v.image.pixels().any(|p| p[3] == 0));
            assert!(v.image.pixels().any(|p| p[3] == 255));
        }
        assert_eq!(ds.train[0].name, "train/r_0.png");
        assert!(ds.eval[0].name.starts_with("val/"));
    }

    #[test]
    #[ignore = "reads ../shared/data/multiview/fox, which may not be committed"]
    fn fox_real_data() {
        let dir = shared_data("multiview/fox");
        let opts = LoadOptions {
            downscale: 8,
            eval_every: 8,
            max_views: Some(3),
        };
        let ds = load(&dir, &opts).unwrap();
        assert_eq!(ds.kind, DatasetKind::InstantNgp);
        // 67 frames: 9 held out (0, 8, …, 64), 58 train; 3 of each kept.
        assert_eq!((ds.train.len(), ds.eval.len()), (3, 3));
        assert_eq!(ds.eval[0].name, "images/0001.jpg");
        for v in ds.train.iter().chain(&ds.eval) {
            assert_eq!(v.image.dimensions(), (135, 240));
            let k = v.camera.k;
            assert!((k[0][0] - 1375.52 / 8.0).abs() < 1e-3, "{k:?}");
            assert!((k[1][1] - 1374.49 / 8.0).abs() < 1e-3, "{k:?}");
            assert!((k[0][2] - 554.558 / 8.0).abs() < 1e-3, "{k:?}");
            assert!((k[1][2] - 965.268 / 8.0).abs() < 1e-3, "{k:?}");
        }
        // The undistorted image differs from the plainly downscaled raw photo, mostly away
        // from the principal point.
        let v = &ds.eval[0];
        let raw = super::super::decode_rgba(&dir.join(&v.name)).unwrap();
        let raw = undistort::resize_area(&raw, 135, 240);
        let diff = |x0: u32, y0: u32, n: u32| -> f64 {
            let mut s = 0.0;
            for y in y0..y0 + n {
                for x in x0..x0 + n {
                    let (a, b) = (raw.get_pixel(x, y), v.image.get_pixel(x, y));
                    s += (0..3)
                        .map(|c| (a[c] as f64 - b[c] as f64).abs())
                        .sum::<f64>();
                }
            }
            s / (3 * n * n) as f64
        };
        let total = diff(0, 0, 135) + diff(0, 105, 135);
        let centre = diff(59, 110, 20);
        let corner = diff(0, 0, 20) + diff(115, 220, 20);
        assert!(
            total > 0.0 && corner > centre,
            "centre {centre} corner {corner}"
        );
        assert!(
            total < 40.0,
            "undistortion changed the image too much: {total}"
        );
        // Opaque except a thin border: with k1 > 0 the outermost full-size pixels sample up to
        // ≈4 px beyond the photo's left/right edges, ≈1.3 px at the corners.
        for (x, y, p) in v.image.enumerate_pixels() {
            if (2..133).contains(&x) && (2..238).contains(&y) {
                assert_eq!(p[3], 255, "({x}, {y})");
            }
        }
        assert!(v.image.get_pixel(0, 120)[3] < 255);
        // Camera centres: the fox capture is an arc a few units wide around (3.8, −1.8, 0).
        let c = ds.camera_centroid();
        assert!(c.length() < 10.0 && ds.scene_extent() > 0.1, "{c}");
    }
}
