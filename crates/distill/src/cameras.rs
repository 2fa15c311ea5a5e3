//! Random cameras around the object for distillation (LucidDreamer / threestudio ranges,
//! docs/methods.md §5.4). World is z-up, the object at the origin; azimuth 0° puts the camera
//! on +x (the object's front). Cameras are OpenCV (`splat::Camera`, world→camera `viewmat`).

use glam::Vec3;
use rand::Rng;
use serde::{Deserialize, Serialize};
use splat::Camera;

/// Ranges of the camera sampler (`[cameras]` in the generate config).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// Distance to the origin, `[min, max]`.
    pub radius: [f32; 2],
    /// Elevation above the xy-plane in degrees, `[min, max]`.
    pub elevation_deg: [f32; 2],
    /// Azimuth in degrees, `[min, max]`.
    pub azimuth_deg: [f32; 2],
    /// Vertical field of view in degrees, `[min, max]`.
    pub fov_deg: [f32; 2],
    /// Standard deviation of the random offset of the camera centre (world units).
    pub jitter_center: f32,
    /// Standard deviation of the random offset of the look-at target (world units).
    pub jitter_target: f32,
    /// Progressive relaxation of the ranges over the run (`[cameras.relax]`; off by default).
    pub relax: CameraRelax,
}

/// `[cameras.relax]`: LucidDreamer's progressive relaxation of the view range (`train.py`,
/// "progressively relaxing view range", with `opt.use_progressive = False`, its default):
/// at every iteration `i ≥ start` with `i % every == 0` (1-based iterations) the radius range
/// shrinks by `radius_factor` towards `radius_limit` and the FoV range's ends are multiplied by
/// `fov_factors` within `fov_limit_deg`, so the views come closer and wider as the object
/// forms. LucidDreamer also scales the polar and azimuth ranges by `phi_scale_up_factor`
/// (1.5), but every shipped LucidDreamer config sets their limits equal to the ranges, so that
/// is a no-op and is left out here. Values: `arguments/__init__.py` (`progressive_view_iter`,
/// `scale_up_cameras_iter` 500, `scale_up_factor` 0.95, `fovy_scale_up_factor` [0.75, 1.1])
/// and `configs/*.yaml` (`max_radius_range` [3.5, 5.0], `max_fovy_range` [0.16, 0.60] rad).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraRelax {
    /// Relax every this many steps (`scale_up_cameras_iter`); 0 = never (the default).
    pub every: u64,
    /// The first step that may relax (`progressive_view_iter`).
    pub start: u64,
    /// Factor on both ends of the radius range per relaxation (`scale_up_factor`).
    pub radius_factor: f32,
    /// Bounds the radius range's ends do not pass, `[min, max]` (`max_radius_range`): the
    /// lower end stops at `radius_limit[0]`, the upper at `radius_limit[1]`.
    pub radius_limit: [f32; 2],
    /// Factors on the FoV range's lower and upper end per relaxation (`fovy_scale_up_factor`).
    pub fov_factors: [f32; 2],
    /// The FoV range's ends stay within `[min, max]` degrees (`max_fovy_range`).
    pub fov_limit_deg: [f32; 2],
}

impl Default for CameraRelax {
    fn default() -> Self {
        Self {
            every: 0,
            start: 500,
            radius_factor: 0.95,
            radius_limit: [3.5, 5.0],
            fov_factors: [0.75, 1.1],
            fov_limit_deg: [9.17, 34.4],
        }
    }
}

impl CameraRelax {
    /// How many relaxations have happened by the end of 0-based step `step` (iteration
    /// `step + 1`): the multiples of `every` in `[start, step + 1]`.
    pub fn count(&self, step: u64) -> u64 {
        let i = step + 1;
        if self.every == 0 || i < self.start.max(1) {
            return 0;
        }
        (i / self.every + 1).saturating_sub(self.start.max(1).div_ceil(self.every))
    }
}

impl Default for CameraConfig {
    /// LucidDreamer's defaults: radius 5.2–5.5, polar 45°–105° (elevation −15°…45°), full
    /// azimuth, FoV-y 0.32–0.60 rad (18.3°–34.4°), jitter 0.05.
    fn default() -> Self {
        Self {
            radius: [5.2, 5.5],
            elevation_deg: [-15.0, 45.0],
            azimuth_deg: [-180.0, 180.0],
            fov_deg: [18.3, 34.4],
            jitter_center: 0.05,
            jitter_target: 0.05,
            relax: CameraRelax::default(),
        }
    }
}

/// One sampled camera with the angles that chose its view prompt.
#[derive(Clone, Debug)]
pub struct SampledCamera {
    /// The camera.
    pub camera: Camera,
    /// Azimuth in degrees.
    pub azimuth_deg: f32,
    /// Elevation in degrees.
    pub elevation_deg: f32,
}

impl CameraConfig {
    /// Check every range is ordered and positive where it must be.
    ///
    /// # Errors
    /// [`crate::DistillError::Setting`] naming the field (`cameras.radius`, …).
    pub fn validate(&self) -> Result<(), crate::DistillError> {
        let bad = |name: &str, detail: String| crate::DistillError::Setting {
            name: format!("cameras.{name}"),
            detail,
        };
        let ordered = |name: &str, r: [f32; 2]| {
            if r[0].is_finite() && r[1].is_finite() && r[0] <= r[1] {
                Ok(())
            } else {
                Err(bad(
                    name,
                    format!("[{}, {}] is not an ordered finite range", r[0], r[1]),
                ))
            }
        };
        ordered("radius", self.radius)?;
        ordered("elevation_deg", self.elevation_deg)?;
        ordered("azimuth_deg", self.azimuth_deg)?;
        ordered("fov_deg", self.fov_deg)?;
        if self.radius[0] <= 0.0 {
            return Err(bad("radius", "must be positive".into()));
        }
        if self.fov_deg[0] <= 0.0 || self.fov_deg[1] >= 180.0 {
            return Err(bad("fov_deg", "must lie in (0, 180)".into()));
        }
        if self.elevation_deg[0] < -89.0 || self.elevation_deg[1] > 89.0 {
            return Err(bad("elevation_deg", "must lie in [-89, 89]".into()));
        }
        let r = &self.relax;
        if r.every > 0 {
            ordered("relax.radius_limit", r.radius_limit)?;
            ordered("relax.fov_limit_deg", r.fov_limit_deg)?;
            if !(r.radius_factor > 0.0 && r.radius_factor <= 1.0) {
                return Err(bad("relax.radius_factor", "must lie in (0, 1]".into()));
            }
            let [lower, upper] = r.fov_factors;
            if !(lower > 0.0 && lower <= 1.0 && upper >= 1.0 && upper.is_finite()) {
                return Err(bad(
                    "relax.fov_factors",
                    "must be [lower in (0, 1], upper ≥ 1]".into(),
                ));
            }
            if r.radius_limit[0] <= 0.0 || r.fov_limit_deg[0] <= 0.0 || r.fov_limit_deg[1] >= 180.0
            {
                return Err(bad(
                    "relax",
                    "radius_limit must be positive and fov_limit_deg lie in (0, 180)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The ranges in force at 0-based step `step` after [`CameraRelax::count`] relaxations:
    /// radius ends `max(limit, r·f^k)`, FoV lower end `max(limit, fov·f₀^k)`, upper end
    /// `min(limit, fov·f₁^k)` (LucidDreamer's clamped update applied k times; ranges kept
    /// ordered). Unchanged when relaxation is off or has not started.
    pub fn at_step(&self, step: u64) -> CameraConfig {
        let k = self.relax.count(step);
        let mut out = self.clone();
        if k == 0 {
            return out;
        }
        let r = &self.relax;
        let k = k.min(i32::MAX as u64) as i32;
        let shrink = r.radius_factor.powi(k);
        let lo = r.radius_limit[0].max(self.radius[0] * shrink);
        let hi = r.radius_limit[1].max(self.radius[1] * shrink);
        out.radius = [lo.min(hi), hi];
        let flo = r.fov_limit_deg[0].max(self.fov_deg[0] * r.fov_factors[0].powi(k));
        let fhi = r.fov_limit_deg[1].min(self.fov_deg[1] * r.fov_factors[1].powi(k));
        out.fov_deg = [flo.min(fhi), fhi.max(flo)];
        out
    }

    /// A camera at the given angles, radius and FoV looking at `target`, `size`² pixels.
    pub fn at(
        azimuth_deg: f32,
        elevation_deg: f32,
        radius: f32,
        fov_deg: f32,
        target: Vec3,
        size: u32,
    ) -> Camera {
        let (az, el) = (azimuth_deg.to_radians(), elevation_deg.to_radians());
        let eye = target + radius * Vec3::new(el.cos() * az.cos(), el.cos() * az.sin(), el.sin());
        Camera::look_at(eye, target, Vec3::Z, fov_deg.to_radians(), size, size)
    }

    /// The midpoint of a `[lo, hi]` range.
    fn mid(r: [f32; 2]) -> f32 {
        0.5 * (r[0] + r[1])
    }

    /// `frames` turntable cameras of `size`² pixels: an orbit around the origin about +z,
    /// starting at the front (azimuth 0, camera on +x), at the sampler's mean radius,
    /// elevation and FoV.
    pub fn turntable(&self, frames: usize, size: u32) -> Vec<Camera> {
        Camera::orbit(
            Vec3::ZERO,
            Vec3::Z,
            Self::mid(self.radius),
            Self::mid(self.elevation_deg).to_radians(),
            frames,
            Self::mid(self.fov_deg).to_radians(),
            size,
            size,
        )
    }

    /// `views` cameras of `size`² pixels at evenly spaced azimuths starting at the front, at
    /// the sampler's mean radius, elevation and FoV (the views strip, evaluation pictures).
    pub fn grid(&self, views: usize, size: u32) -> Vec<Camera> {
        (0..views)
            .map(|i| {
                Self::at(
                    360.0 * i as f32 / views.max(1) as f32,
                    Self::mid(self.elevation_deg),
                    Self::mid(self.radius),
                    Self::mid(self.fov_deg),
                    Vec3::ZERO,
                    size,
                )
            })
            .collect()
    }

    /// Draw `batch` cameras of `size`² pixels.
    pub fn sample(&self, batch: usize, size: u32, rng: &mut impl Rng) -> Vec<SampledCamera> {
        let mut u = |r: [f32; 2]| {
            if r[0] == r[1] {
                r[0]
            } else {
                rng.random_range(r[0]..=r[1])
            }
        };
        (0..batch)
            .map(|_| {
                let az = u(self.azimuth_deg);
                let el = u(self.elevation_deg);
                let radius = u(self.radius);
                let fov = u(self.fov_deg);
                let jt = self.jitter_target;
                let target = Vec3::new(u([-jt, jt]), u([-jt, jt]), u([-jt, jt]));
                let jc = self.jitter_center;
                let mut cam = Self::at(az, el, radius + u([-jc, jc]), fov, target, size);
                // Guard against a degenerate look-at (never at these ranges, but cheap).
                if cam.viewmat.iter().flatten().any(|v| !v.is_finite()) {
                    cam = Self::at(az, el, radius, fov, Vec3::ZERO, size);
                }
                SampledCamera {
                    camera: cam,
                    azimuth_deg: az,
                    elevation_deg: el,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// LucidDreamer's relaxation with its shipped values over a 5,000-iteration run: updates
    /// at iterations 500, 1000, …; the radius range [5.2, 5.5] reaches [4.94, 5.225] after the
    /// first, the upper end stops at 5.0 after the second and the lower end at 3.5 after the
    /// eighth (5.2·0.95⁸ = 3.46); FoV 0.32–0.60 rad (18.3°–34.4°): the lower end ×0.75 per
    /// update down to 0.16 rad (9.17°), the upper end already at its limit.
    #[test]
    fn relaxation_follows_lucid_dreamer() {
        let cfg = CameraConfig {
            relax: CameraRelax {
                every: 500,
                ..Default::default()
            },
            ..Default::default()
        };
        cfg.validate().unwrap();
        let close =
            |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4;
        // Iterations 1..=499 (steps 0..=498): unchanged.
        assert_eq!(cfg.at_step(0).radius, cfg.radius);
        assert_eq!(cfg.at_step(498).radius, cfg.radius);
        assert_eq!(cfg.relax.count(499), 1);
        let one = cfg.at_step(499);
        assert!(
            close(one.radius, [5.2 * 0.95, 5.5 * 0.95]),
            "{:?}",
            one.radius
        );
        assert!(close(one.fov_deg, [18.3 * 0.75, 34.4]), "{:?}", one.fov_deg);
        assert!(close(cfg.at_step(999).radius, [5.2 * 0.9025, 5.0]));
        assert_eq!(cfg.relax.count(3999), 8);
        assert!(close(cfg.at_step(3999).radius, [3.5, 5.0]));
        assert!(close(cfg.at_step(4999).fov_deg, [9.17, 34.4]));
        assert_eq!(cfg.relax.count(4999), 10);
        // A later start counts from there; off is off.
        let late = CameraRelax {
            every: 500,
            start: 1200,
            ..Default::default()
        };
        assert_eq!(
            (late.count(1198), late.count(1499), late.count(1999)),
            (0, 1, 2)
        );
        // Between a start that is not a multiple and the next multiple: none yet.
        assert_eq!((late.count(1199), late.count(1498)), (0, 0));
        let off = CameraConfig::default();
        assert_eq!(off.at_step(4999).radius, off.radius);
        assert_eq!(off.at_step(4999).fov_deg, off.fov_deg);
        // Bad values name the field.
        let mut bad = cfg.clone();
        bad.relax.radius_factor = 1.5;
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("cameras.relax.radius_factor"), "{e}");
    }

    #[test]
    fn sampled_cameras_look_at_the_origin_from_their_angles() {
        let cfg = CameraConfig {
            jitter_center: 0.0,
            jitter_target: 0.0,
            ..Default::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for s in cfg.sample(16, 64, &mut rng) {
            let v = s.camera.viewmat;
            // The origin projects to the image centre: camera-space x = y = 0, z = radius.
            let (x, y, z) = (v[0][3], v[1][3], v[2][3]);
            assert!(
                x.abs() < 1e-4 && y.abs() < 1e-4,
                "origin off-centre: {x} {y}"
            );
            assert!((5.2..=5.5 + 1e-4).contains(&z), "depth {z}");
            // Image "down" (camera +y row of R) points along world −z (z-up world).
            assert!(v[1][2] < 0.0, "camera is upside down: {:?}", v[1]);
        }
        // Azimuth 0 puts the camera on +x.
        let c = CameraConfig::at(0.0, 0.0, 5.0, 30.0, Vec3::ZERO, 64);
        // eye = −Rᵀt; the columns of Rᵀ are the rows of R.
        let v = c.viewmat;
        let rt = glam::Mat3::from_cols_array_2d(&[
            [v[0][0], v[0][1], v[0][2]],
            [v[1][0], v[1][1], v[1][2]],
            [v[2][0], v[2][1], v[2][2]],
        ]);
        let eye = -(rt * Vec3::new(v[0][3], v[1][3], v[2][3]));
        assert!(
            (eye - Vec3::new(5.0, 0.0, 0.0)).length() < 1e-4,
            "eye {eye}"
        );
    }
}
