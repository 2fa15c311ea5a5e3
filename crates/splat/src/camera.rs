//! Pinhole cameras in the OpenCV convention (+x right, +y down, +z forward) with a world→camera
//! `viewmat`, the convention of gsplat. OpenGL/Blender camera-to-world poses are converted in
//! exactly one place, [`Camera::from_opengl_c2w`].

use std::path::Path;

use glam::{Mat3, Mat4, Vec3};
use serde::{Deserialize, Serialize};

/// A pinhole camera.
///
/// JSON form (`splatdream render --camera cam.json`):
/// ```json
/// { "viewmat": [[1,0,0,0],[0,1,0,0],[0,0,1,4],[0,0,0,1]],
///   "K": [[300,0,200],[0,300,150],[0,0,1]], "width": 400, "height": 300 }
/// ```
/// `viewmat` is row-major world→camera (x_cam = R·x_world + t, t in the last column); `K` is
/// row-major intrinsics in pixels with pixel centres at (j + 0.5, i + 0.5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// World→camera transform, row-major.
    pub viewmat: [[f32; 4]; 4],
    /// Intrinsics, row-major `[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`.
    #[serde(rename = "K")]
    pub k: [[f32; 3]; 3],
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

/// Errors reading or validating a camera.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The JSON is malformed or misses a field.
    #[error("{path}: {source}")]
    Json {
        /// File.
        path: String,
        /// serde's message (names the field and line).
        source: serde_json::Error,
    },
    /// A field has an unusable value.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// File (or `<camera>`).
        path: String,
        /// Field name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Two unit vectors spanning the plane perpendicular to the unit vector `up`: the directions
/// of azimuth 0 and 90° (counter-clockwise seen from `+up`) of [`Camera::orbit`].
pub fn azimuth_basis(up: Vec3) -> (Vec3, Vec3) {
    let side = if up.x.abs() < 0.9 { Vec3::X } else { Vec3::Y };
    let a = up.cross(side).normalize();
    (a, up.cross(a))
}

impl Camera {
    /// Focal lengths (fx, fy) in pixels.
    pub fn focal(&self) -> (f32, f32) {
        (self.k[0][0], self.k[1][1])
    }

    /// Principal point (cx, cy) in pixels.
    pub fn principal(&self) -> (f32, f32) {
        (self.k[0][2], self.k[1][2])
    }

    /// The world→camera matrix as glam (column-major internally).
    pub fn view_matrix(&self) -> Mat4 {
        Mat4::from_cols_array_2d(&self.viewmat).transpose()
    }

    /// Camera centre in world coordinates, −Rᵀt.
    pub fn position(&self) -> Vec3 {
        self.view_matrix().inverse().col(3).truncate()
    }

    /// A camera with square pixels and a centred principal point, from a world→camera matrix
    /// and a horizontal field of view in radians.
    pub fn from_view(view: Mat4, fov_x: f32, width: u32, height: u32) -> Self {
        let fx = 0.5 * width as f32 / (0.5 * fov_x).tan();
        Self {
            viewmat: view.transpose().to_cols_array_2d(),
            k: [
                [fx, 0.0, 0.5 * width as f32],
                [0.0, fx, 0.5 * height as f32],
                [0.0, 0.0, 1.0],
            ],
            width,
            height,
        }
    }

    /// OpenGL/Blender camera-to-world (+x right, +y up, −z forward) → OpenCV world→camera.
    /// The only place this conversion happens.
    pub fn from_opengl_c2w(
        c2w: Mat4,
        fx: f32,
        fy: f32,
        cx: f32,
        cy: f32,
        width: u32,
        height: u32,
    ) -> Self {
        let flip = Mat4::from_diagonal(glam::Vec4::new(1.0, -1.0, -1.0, 1.0));
        let view = (c2w * flip).inverse();
        Self {
            viewmat: view.transpose().to_cols_array_2d(),
            k: [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]],
            width,
            height,
        }
    }

    /// A camera at `eye` looking at `target`, with world `up`, OpenCV axes.
    pub fn look_at(eye: Vec3, target: Vec3, up: Vec3, fov_x: f32, width: u32, height: u32) -> Self {
        let forward = (target - eye).normalize();
        let right = forward.cross(up).normalize();
        let down = forward.cross(right);
        let r = Mat3::from_cols(right, down, forward).transpose();
        let t = -(r * eye);
        let view = Mat4::from_cols(
            r.col(0).extend(0.0),
            r.col(1).extend(0.0),
            r.col(2).extend(0.0),
            t.extend(1.0),
        );
        Self::from_view(view, fov_x, width, height)
    }

    /// `frames` cameras on a circle of `radius` around `target` at `elevation` radians above
    /// the plane perpendicular to `up` (a turntable), at azimuths `2π·f/frames` in
    /// [`azimuth_basis`]`(up)`.
    #[allow(clippy::too_many_arguments)] // the orbit's geometry and the image, all needed
    pub fn orbit(
        target: Vec3,
        up: Vec3,
        radius: f32,
        elevation: f32,
        frames: usize,
        fov_x: f32,
        width: u32,
        height: u32,
    ) -> Vec<Self> {
        (0..frames)
            .map(|f| {
                let phi = std::f32::consts::TAU * f as f32 / frames.max(1) as f32;
                Self::orbit_at(target, up, radius, elevation, phi, fov_x, width, height)
            })
            .collect()
    }

    /// One camera of an orbit: at `radius` from `target`, `elevation` radians above the plane
    /// perpendicular to `up` and `azimuth` radians round `up` from the first vector of
    /// [`azimuth_basis`]`(up)`, looking at `target`.
    #[allow(clippy::too_many_arguments)] // the orbit's geometry and the image, all needed
    pub fn orbit_at(
        target: Vec3,
        up: Vec3,
        radius: f32,
        elevation: f32,
        azimuth: f32,
        fov_x: f32,
        width: u32,
        height: u32,
    ) -> Self {
        let up = up.normalize();
        let (a, b) = azimuth_basis(up);
        let dir = (a * azimuth.cos() + b * azimuth.sin()) * elevation.cos() + up * elevation.sin();
        Self::look_at(target + dir * radius, target, up, fov_x, width, height)
    }

    /// Check the camera is usable.
    ///
    /// # Errors
    /// [`CameraError::Invalid`] naming `path` and the field.
    pub fn validate(&self, path: &str) -> Result<(), CameraError> {
        let bad = |field, message: String| CameraError::Invalid {
            path: path.to_string(),
            field,
            message,
        };
        if self.width == 0 || self.height == 0 {
            return Err(bad(
                "width",
                format!("image size {}×{} is empty", self.width, self.height),
            ));
        }
        if self.width > 16384 || self.height > 16384 {
            return Err(bad(
                "width",
                format!("image size {}×{} exceeds 16384", self.width, self.height),
            ));
        }
        if self.viewmat.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad("viewmat", "contains NaN or Inf".into()));
        }
        if self.view_matrix().determinant().abs() < 1e-8 {
            return Err(bad("viewmat", "is not invertible".into()));
        }
        let (fx, fy) = self.focal();
        if !(fx > 0.0 && fy > 0.0 && fx.is_finite() && fy.is_finite()) {
            return Err(bad(
                "K",
                format!("focal lengths must be positive and finite, got fx={fx}, fy={fy}"),
            ));
        }
        let (cx, cy) = self.principal();
        if !(cx.is_finite() && cy.is_finite()) {
            return Err(bad("K", "principal point is not finite".into()));
        }
        Ok(())
    }

    /// Read and validate a camera JSON file.
    ///
    /// # Errors
    /// [`CameraError`] naming the file (and the field, for invalid values).
    pub fn load(path: &Path) -> Result<Self, CameraError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CameraError::Io {
            path: p.clone(),
            source,
        })?;
        let cam: Camera = serde_json::from_str(&text).map_err(|source| CameraError::Json {
            path: p.clone(),
            source,
        })?;
        cam.validate(&p)?;
        Ok(cam)
    }

    /// Read and validate a camera path: a JSON array of cameras in [`Camera::load`]'s form,
    /// one per video frame, in order.
    ///
    /// # Errors
    /// [`CameraError`] naming the file; an invalid camera's field is named with its index
    /// (`cams.json[3]`); an empty array is [`CameraError::Invalid`] with field `[]`.
    pub fn load_path(path: &Path) -> Result<Vec<Self>, CameraError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CameraError::Io {
            path: p.clone(),
            source,
        })?;
        let cams: Vec<Camera> =
            serde_json::from_str(&text).map_err(|source| CameraError::Json {
                path: p.clone(),
                source,
            })?;
        if cams.is_empty() {
            return Err(CameraError::Invalid {
                path: p,
                field: "[]",
                message: "the camera path has no cameras".into(),
            });
        }
        for (i, cam) in cams.iter().enumerate() {
            cam.validate(&format!("{p}[{i}]"))?;
        }
        Ok(cams)
    }

    /// The kernel-side mirror.
    pub(crate) fn to_gpu(self) -> crate::kernels::Camera {
        let (fx, fy) = self.focal();
        let (cx, cy) = self.principal();
        let pos = self.position();
        crate::kernels::Camera {
            viewmat: self.view_matrix().to_cols_array_2d(),
            fx,
            fy,
            cx,
            cy,
            campos_x: pos.x,
            campos_y: pos.y,
            campos_z: pos.z,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opengl_conversion_looks_down_minus_z() {
        // An OpenGL camera at (0,0,5) looking down −z sees the origin straight ahead at z = 5.
        let c2w = Mat4::from_translation(Vec3::new(0.0, 0.0, 5.0));
        let cam = Camera::from_opengl_c2w(c2w, 100.0, 100.0, 50.0, 50.0, 100, 100);
        let p = cam.view_matrix().transform_point3(Vec3::ZERO);
        assert!((p - Vec3::new(0.0, 0.0, 5.0)).length() < 1e-5, "{p}");
        // OpenGL +y (up) maps to OpenCV −y (image up).
        let q = cam.view_matrix().transform_point3(Vec3::new(0.0, 1.0, 0.0));
        assert!(q.y < 0.0, "{q}");
        assert!((cam.position() - Vec3::new(0.0, 0.0, 5.0)).length() < 1e-5);
    }

    #[test]
    fn look_at_puts_target_on_axis() {
        let cam = Camera::look_at(Vec3::new(3.0, 1.0, 2.0), Vec3::ZERO, Vec3::Z, 1.0, 64, 48);
        let p = cam.view_matrix().transform_point3(Vec3::ZERO);
        assert!(p.x.abs() < 1e-5 && p.y.abs() < 1e-5 && p.z > 0.0, "{p}");
        // World up projects upwards in the image (−y).
        let u = cam.view_matrix().transform_point3(Vec3::Z * 0.5);
        assert!(u.y < p.y);
    }

    #[test]
    fn validation_names_the_field() {
        let mut cam = Camera::look_at(Vec3::ONE, Vec3::ZERO, Vec3::Z, 1.0, 8, 8);
        cam.k[0][0] = -1.0;
        let e = cam.validate("cam.json").unwrap_err().to_string();
        assert!(e.contains("cam.json") && e.contains("`K`"), "{e}");
        cam.k[0][0] = 10.0;
        cam.width = 0;
        assert!(cam.validate("x").unwrap_err().to_string().contains("width"));
    }
}
