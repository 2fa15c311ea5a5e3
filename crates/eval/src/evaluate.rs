//! Score splats against a toy-world object: render them at the object's ground-truth cameras
//! after the best azimuth rotation and scale (searched on silhouette IoU), then report IoU,
//! masked PSNR, mean colour error and the judge's R-precision over the views.
//!
//! Alignment: turning the splats by θ about the world z axis and scaling them by `s` about the
//! origin renders exactly as the camera `[R·R_z(θ) | t/s]` sees the unchanged splats (a pinhole
//! image is unchanged when the whole scene and camera distance scale together), so the search
//! only changes cameras.

use glam::{Mat3, Mat4};
use serde::Serialize;
use splat::{Camera, RenderOptions, Splats};

use crate::EvalError;
use crate::judge::{INPUT_SIZE, Judge};
use crate::metrics::{self, View};
use crate::toyworld::{GroundTruth, ToyWorld};

/// The alignment search.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Azimuth rotations tried, evenly spaced over 360° (1 = none).
    pub rotations: usize,
    /// Scales tried.
    pub scales: Vec<f32>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            rotations: 8,
            scales: vec![0.8, 0.9, 1.0, 1.1, 1.25],
        }
    }
}

/// Every number of one evaluation (serialised as the JSON report).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// The prompt evaluated against.
    pub prompt: String,
    /// The object's category and colour.
    pub category: String,
    /// Its colour word.
    pub colour: String,
    /// Silhouette IoU over all views after alignment (alpha > 0.5).
    pub iou: f64,
    /// PSNR (dB) of RGB over white inside the ground-truth silhouettes.
    pub masked_psnr_db: f64,
    /// Distance between mean colours inside the silhouettes (RGB in [0, 1], at most √3).
    pub colour_error: f64,
    /// Fraction of views the judge gives the prompt's category.
    pub r_precision_category: f64,
    /// Fraction of views the judge gives the prompt's colour.
    pub r_precision_colour: f64,
    /// Fraction of views with both right.
    pub r_precision: f64,
    /// The judge's label of each view, "colour category".
    pub judge_labels: Vec<String>,
    /// Azimuth rotation of the best alignment, degrees.
    pub rotation_deg: f32,
    /// Scale of the best alignment.
    pub scale: f32,
    /// Number of views.
    pub views: usize,
}

impl EvalReport {
    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "evaluation vs \"{}\": IoU {:.3}, masked PSNR {:.2} dB, colour error {:.3}, judge R-precision {:.2} (category {:.2}, colour {:.2}) over {} views (rotation {:.0}°, scale {:.2})",
            self.prompt,
            self.iou,
            self.masked_psnr_db,
            self.colour_error,
            self.r_precision,
            self.r_precision_category,
            self.r_precision_colour,
            self.views,
            self.rotation_deg,
            self.scale
        )
    }
}

/// `camera` looking at the scene turned by `theta` radians about z and scaled by `scale`.
pub fn aligned_camera(camera: &Camera, theta: f32, scale: f32) -> Camera {
    let v = Mat4::from_cols_array_2d(&camera.viewmat).transpose();
    let r = Mat3::from_mat4(v) * Mat3::from_rotation_z(theta);
    let t = v.col(3).truncate() / scale;
    let m = Mat4::from_cols(
        r.col(0).extend(0.0),
        r.col(1).extend(0.0),
        r.col(2).extend(0.0),
        t.extend(1.0),
    );
    Camera {
        viewmat: m.transpose().to_cols_array_2d(),
        ..*camera
    }
}

fn render_views(splats: &Splats, cameras: &[Camera]) -> Result<Vec<View>, EvalError> {
    let opts = RenderOptions {
        background: [1.0; 3],
        ..RenderOptions::default()
    };
    let out = splat::render(splats, cameras, &opts)?;
    let rgb = splat::scene::host(&out.rgb).map_err(EvalError::Readback)?;
    let alpha = splat::scene::host(&out.alpha).map_err(EvalError::Readback)?;
    let px = alpha.len() / cameras.len();
    Ok((0..cameras.len())
        .map(|c| View {
            rgb: rgb[3 * px * c..3 * px * (c + 1)]
                .iter()
                .map(|x| x.clamp(0.0, 1.0))
                .collect(),
            alpha: alpha[px * c..px * (c + 1)].to_vec(),
        })
        .collect())
}

/// Evaluate `splats` (a z-up scene on a plain device) against the toy-world object `prompt`
/// names.
///
/// # Errors
/// [`EvalError::Prompt`] when the prompt names no toy-world object; ground-truth or judge
/// errors naming the file; [`EvalError::Render`] / [`EvalError::Readback`] from the device.
pub fn evaluate(
    splats: &Splats,
    world: &ToyWorld,
    judge: &Judge,
    prompt: &str,
    opts: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let (cat, col) = world.parse_prompt(prompt)?;
    let gt: GroundTruth = world.ground_truth(cat, col)?;
    if gt.size as usize != INPUT_SIZE {
        return Err(EvalError::format(
            &gt.dir,
            "size",
            format!("{}² views; the judge takes {INPUT_SIZE}²", gt.size),
        ));
    }
    let gt_views: Vec<View> = gt.images.iter().map(|im| View::from_rgba(im)).collect();
    let mut best: Option<(f64, f32, f32, Vec<View>)> = None;
    for k in 0..opts.rotations.max(1) {
        let theta = std::f32::consts::TAU * k as f32 / opts.rotations.max(1) as f32;
        for &s in &opts.scales {
            let cams: Vec<Camera> = gt
                .cameras
                .iter()
                .map(|c| aligned_camera(c, theta, s))
                .collect();
            let views = render_views(splats, &cams)?;
            let iou = metrics::silhouette_iou(&views, &gt_views);
            if best.as_ref().is_none_or(|b| iou > b.0) {
                best = Some((iou, theta, s, views));
            }
        }
    }
    let (iou, theta, scale, views) = best.expect("at least one rotation and scale");
    let verdict = judge.classify(&views.iter().map(|v| v.rgb.clone()).collect::<Vec<_>>())?;
    let both: Vec<usize> = verdict
        .category
        .iter()
        .zip(&verdict.colour)
        .map(|(a, b)| usize::from(*a == cat && *b == col))
        .collect();
    Ok(EvalReport {
        prompt: world.prompt(cat, col),
        category: world.info.categories[cat].clone(),
        colour: world.info.colours[col].clone(),
        iou,
        masked_psnr_db: metrics::masked_psnr(&views, &gt_views),
        colour_error: metrics::colour_error(&views, &gt_views),
        r_precision_category: metrics::r_precision(&verdict.category, cat),
        r_precision_colour: metrics::r_precision(&verdict.colour, col),
        r_precision: metrics::r_precision(&both, 1),
        judge_labels: verdict
            .category
            .iter()
            .zip(&verdict.colour)
            .map(|(a, b)| format!("{} {}", judge.colours[*b], judge.categories[*a]))
            .collect(),
        rotation_deg: theta.to_degrees(),
        scale,
        views: views.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Vec3;

    fn project(c: &Camera, p: Vec3) -> (f32, f32) {
        let v = Mat4::from_cols_array_2d(&c.viewmat).transpose();
        let q = v.transform_point3(p);
        (
            c.k[0][0] * q.x / q.z + c.k[0][2],
            c.k[1][1] * q.y / q.z + c.k[1][2],
        )
    }

    /// The aligned camera sees the unchanged scene exactly where the original camera sees the
    /// scene turned by θ about z and scaled by s.
    #[test]
    fn aligned_camera_equals_turning_and_scaling_the_scene() {
        let cam = Camera::look_at(Vec3::new(4.0, 2.0, 1.5), Vec3::ZERO, Vec3::Z, 0.5, 64, 64);
        for (theta, s) in [(0.0f32, 1.0f32), (0.7, 1.0), (2.5, 0.8), (-1.2, 1.25)] {
            let a = aligned_camera(&cam, theta, s);
            for p in [
                Vec3::new(0.3, -0.2, 0.1),
                Vec3::new(-0.5, 0.4, 0.6),
                Vec3::ZERO,
            ] {
                let moved = s * (glam::Quat::from_rotation_z(theta) * p);
                let (x0, y0) = project(&cam, moved);
                let (x1, y1) = project(&a, p);
                assert!(
                    (x0 - x1).abs() < 1e-3 && (y0 - y1).abs() < 1e-3,
                    "θ {theta} s {s}: {x0},{y0} vs {x1},{y1}"
                );
            }
        }
    }
}
