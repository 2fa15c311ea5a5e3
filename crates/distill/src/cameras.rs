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
        Ok(())
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
