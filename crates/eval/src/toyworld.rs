//! The toy world as the shipped prior folder describes it (`toyworld.json`, written by
//! `tools/train_prior.py` from `tools/toyworld/world.py`), and its ground truth
//! (`gt/<colour>-<category>/`, NeRF-synthetic folders written by `tools/toyworld/make_data.py`).
//!
//! Conventions: the world is z-up, each object centred at the origin with its front towards
//! azimuth 0° (camera on +x); ground-truth cameras are stored as NeRF-synthetic OpenGL
//! camera-to-world matrices and converted to OpenCV `splat::Camera`s here.

use std::path::{Path, PathBuf};

use glam::Mat4;
use serde::Deserialize;
use splat::Camera;

use crate::EvalError;

/// `toyworld.json`: what the prior was trained on.
#[derive(Clone, Debug, Deserialize)]
pub struct ToyWorldInfo {
    /// Category names, in the judge's output order.
    pub categories: Vec<String>,
    /// Colour words, in the judge's output order.
    pub colours: Vec<String>,
    /// Image side the prior was trained at, pixels.
    pub resolution: u32,
    /// Prompt template, `"a {colour} {category}"`.
    pub prompt: String,
}

/// A toy-world prior folder: its description, ground truth and judge.
#[derive(Clone, Debug)]
pub struct ToyWorld {
    /// The prior's diffusers folder (holds `toyworld.json`, `gt/`, `judge/`).
    pub dir: PathBuf,
    /// Its description.
    pub info: ToyWorldInfo,
}

/// One ground-truth object: its evaluation views.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    /// The object's folder.
    pub dir: PathBuf,
    /// The evaluation cameras (OpenCV), one per view.
    pub cameras: Vec<Camera>,
    /// Azimuth of each view in degrees (0 = the object's front).
    pub azimuths_deg: Vec<f32>,
    /// RGBA images, straight alpha, `[H·W·4]` in [0, 1] per view.
    pub images: Vec<Vec<f32>>,
    /// Image side in pixels.
    pub size: u32,
}

impl ToyWorld {
    /// Read `<dir>/toyworld.json`.
    ///
    /// # Errors
    /// [`EvalError::Io`] or [`EvalError::Format`] naming the file and field.
    pub fn load(dir: &Path) -> Result<Self, EvalError> {
        let path = dir.join("toyworld.json");
        let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Io {
            path: path.clone(),
            source,
        })?;
        let info: ToyWorldInfo = serde_json::from_str(&text)
            .map_err(|e| EvalError::format(&path, "toyworld.json", e.to_string()))?;
        if info.categories.is_empty() || info.colours.is_empty() {
            return Err(EvalError::format(
                &path,
                "categories/colours",
                "must not be empty",
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            info,
        })
    }

    /// Whether `dir` holds a toy-world prior (a `toyworld.json`).
    pub fn is_toyworld(dir: &Path) -> bool {
        dir.join("toyworld.json").is_file()
    }

    /// The (category, colour) indices a prompt names: `"a <colour> <category>"`, any case,
    /// "a"/"an" optional, a trailing view suffix (", front view", …) or full stop ignored.
    ///
    /// # Errors
    /// [`EvalError::Prompt`] for anything else.
    pub fn parse_prompt(&self, prompt: &str) -> Result<(usize, usize), EvalError> {
        let err = || EvalError::Prompt {
            prompt: prompt.to_string(),
            colours: self.info.colours.join(", "),
            categories: self.info.categories.join(", "),
        };
        let mut p = prompt.trim().to_lowercase();
        if let Some(i) = p.find(',') {
            p.truncate(i);
        }
        let p = p.trim_end_matches('.').trim();
        let p = p
            .strip_prefix("a ")
            .or_else(|| p.strip_prefix("an "))
            .unwrap_or(p)
            .trim();
        let (colour, rest) = p.split_once(' ').ok_or_else(err)?;
        let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        let ci = self.info.colours.iter().position(|c| c == colour);
        let ki = self.info.categories.iter().position(|c| *c == rest);
        match (ki, ci) {
            (Some(k), Some(c)) => Ok((k, c)),
            _ => Err(err()),
        }
    }

    /// The base prompt of an object.
    pub fn prompt(&self, category: usize, colour: usize) -> String {
        format!(
            "a {} {}",
            self.info.colours[colour], self.info.categories[category]
        )
    }

    /// The ground-truth folder of an object: `gt/<colour>-<category with dashes>`.
    pub fn ground_truth_dir(&self, category: usize, colour: usize) -> PathBuf {
        let cat = self.info.categories[category].replace(' ', "-");
        self.dir
            .join("gt")
            .join(format!("{}-{cat}", self.info.colours[colour]))
    }

    /// The judge's weight file.
    pub fn judge_path(&self) -> PathBuf {
        self.dir.join("judge").join("judge.safetensors")
    }

    /// Load an object's evaluation views (`transforms_val.json` and its PNGs).
    ///
    /// # Errors
    /// [`EvalError::Io`] / [`EvalError::Format`] naming the file and field.
    pub fn ground_truth(&self, category: usize, colour: usize) -> Result<GroundTruth, EvalError> {
        load_views(&self.ground_truth_dir(category, colour), "val")
    }
}

#[derive(Deserialize)]
struct Transforms {
    camera_angle_x: f32,
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
struct Frame {
    file_path: String,
    transform_matrix: [[f32; 4]; 4],
    #[serde(default)]
    azimuth_deg: Option<f32>,
}

/// Read a NeRF-synthetic split (`transforms_<split>.json` + RGBA PNGs, square images).
///
/// # Errors
/// [`EvalError::Io`] / [`EvalError::Format`] naming the file and field.
pub fn load_views(dir: &Path, split: &str) -> Result<GroundTruth, EvalError> {
    let path = dir.join(format!("transforms_{split}.json"));
    let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Io {
        path: path.clone(),
        source,
    })?;
    let t: Transforms =
        serde_json::from_str(&text).map_err(|e| EvalError::format(&path, "json", e.to_string()))?;
    if t.frames.is_empty() {
        return Err(EvalError::format(&path, "frames", "no frames"));
    }
    if !(t.camera_angle_x > 0.0 && t.camera_angle_x < std::f32::consts::PI) {
        return Err(EvalError::format(
            &path,
            "camera_angle_x",
            format!("{} is not in (0, π)", t.camera_angle_x),
        ));
    }
    let mut gt = GroundTruth {
        dir: dir.to_path_buf(),
        cameras: vec![],
        azimuths_deg: vec![],
        images: vec![],
        size: 0,
    };
    for (i, f) in t.frames.iter().enumerate() {
        let png = dir.join(format!("{}.png", f.file_path.trim_start_matches("./")));
        let img = image::open(&png)
            .map_err(|e| EvalError::format(&png, "image", e.to_string()))?
            .to_rgba32f();
        let (w, h) = img.dimensions();
        if w != h || (gt.size != 0 && w != gt.size) {
            return Err(EvalError::format(
                &png,
                "size",
                format!("{w}×{h}: ground-truth views must be square and of one size"),
            ));
        }
        gt.size = w;
        let m = Mat4::from_cols_array_2d(&f.transform_matrix).transpose();
        if !m.is_finite() || m.determinant().abs() < 1e-6 {
            return Err(EvalError::format(
                &path,
                format!("frames[{i}].transform_matrix"),
                "not a finite invertible pose",
            ));
        }
        let fx = 0.5 * w as f32 / (0.5 * t.camera_angle_x).tan();
        gt.cameras.push(Camera::from_opengl_c2w(
            m,
            fx,
            fx,
            0.5 * w as f32,
            0.5 * h as f32,
            w,
            h,
        ));
        let az = f.azimuth_deg.unwrap_or_else(|| {
            let c = m.col(3);
            c.y.atan2(c.x).to_degrees()
        });
        gt.azimuths_deg.push(az);
        gt.images.push(img.into_raw());
    }
    Ok(gt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> ToyWorld {
        ToyWorld {
            dir: PathBuf::from("/nowhere"),
            info: ToyWorldInfo {
                categories: vec!["chair".into(), "teddy bear".into()],
                colours: vec!["red".into(), "blue".into()],
                resolution: 64,
                prompt: "a {colour} {category}".into(),
            },
        }
    }

    #[test]
    fn prompts_parse_to_category_and_colour() {
        let w = world();
        assert_eq!(w.parse_prompt("a red chair").unwrap(), (0, 0));
        assert_eq!(
            w.parse_prompt("A Blue  Teddy Bear, side view").unwrap(),
            (1, 1)
        );
        assert_eq!(w.parse_prompt("blue chair.").unwrap(), (0, 1));
        for bad in [
            "a corgi",
            "a green chair",
            "a red",
            "",
            "a red chair with wheels",
        ] {
            let e = w.parse_prompt(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("\"{bad}\"")) && e.contains("teddy bear"),
                "{e}"
            );
        }
        assert_eq!(w.prompt(1, 0), "a red teddy bear");
        assert!(w.ground_truth_dir(1, 1).ends_with("gt/blue-teddy-bear"));
    }

    #[test]
    fn shipped_ground_truth_loads_with_cameras_facing_the_object() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/toyworld/gt/red-chair");
        let gt = load_views(&dir, "val").unwrap();
        assert_eq!(gt.cameras.len(), 8);
        assert_eq!(gt.size, 64);
        for (c, az) in gt.cameras.iter().zip(&gt.azimuths_deg) {
            // the origin projects to the image centre, in front of the camera
            let v = Mat4::from_cols_array_2d(&c.viewmat).transpose();
            let p = v.transform_point3(glam::Vec3::ZERO);
            assert!(p.x.abs() < 1e-4 && p.y.abs() < 1e-4 && p.z > 5.0, "{p}");
            // azimuth 0 looks from +x
            let eye = v.inverse().col(3).truncate();
            let want = az.to_radians();
            assert!(
                (eye.y.atan2(eye.x) - want).sin().abs() < 1e-4,
                "{az}: {eye}"
            );
        }
        let e = load_views(&dir, "test").unwrap_err().to_string();
        assert!(e.contains("transforms_test.json"), "{e}");
    }
}
