//! Viewer camera: orbit (around a pivot) and fly (first person) navigation over one state, so
//! switching between them keeps the view. Produces OpenCV [`splat::Camera`]s (world→camera
//! `viewmat`) for the rasterizer.

use glam::Vec3;
use splat::Camera;

/// How mouse and keys move the camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Navigation {
    /// Left drag orbits the pivot, right/middle drag pans, wheel zooms.
    Orbit,
    /// Left drag looks around, W/A/S/D/Q/E move, wheel changes the speed.
    Fly,
}

/// The viewer's camera state. Angles are radians; `yaw` turns around `up`, `pitch` tilts
/// towards it; the eye is `pivot − forward·distance`.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewCamera {
    /// Current navigation.
    pub navigation: Navigation,
    /// The orbit pivot (world units).
    pub pivot: Vec3,
    /// Eye-to-pivot distance (world units, > 0).
    pub distance: f32,
    /// Heading around `up`.
    pub yaw: f32,
    /// Elevation of the view direction above the plane normal to `up` (|pitch| < 89°).
    pub pitch: f32,
    /// World up (unit).
    pub up: Vec3,
    /// Vertical field of view.
    pub fov_y: f32,
    /// Fly speed, world units per second.
    pub speed: f32,
    /// The horizontal reference axis (yaw 0), perpendicular to `up`.
    axis: Vec3,
}

const MAX_PITCH: f32 = 89.0 * std::f32::consts::PI / 180.0;

impl ViewCamera {
    /// Look at `pivot` from `distance`, from the direction `from` (a vector from the pivot
    /// towards the eye; need not be unit), with world `up`.
    pub fn looking_at(pivot: Vec3, from: Vec3, distance: f32, up: Vec3) -> Self {
        let up = if up.length_squared() > 0.0 {
            up.normalize()
        } else {
            Vec3::Z
        };
        let side = if up.x.abs() < 0.9 { Vec3::X } else { Vec3::Y };
        let axis = up.cross(side).normalize();
        let mut cam = Self {
            navigation: Navigation::Orbit,
            pivot,
            distance: distance.max(1e-4),
            yaw: 0.0,
            pitch: 0.0,
            up,
            fov_y: 50f32.to_radians(),
            speed: distance.max(1e-3),
            axis,
        };
        cam.set_forward(-from);
        cam
    }

    fn basis(&self) -> (Vec3, Vec3) {
        (self.axis, self.up.cross(self.axis))
    }

    /// Unit view direction.
    pub fn forward(&self) -> Vec3 {
        let (a, b) = self.basis();
        (a * self.yaw.cos() + b * self.yaw.sin()) * self.pitch.cos() + self.up * self.pitch.sin()
    }

    fn set_forward(&mut self, dir: Vec3) {
        let dir = if dir.length_squared() > 0.0 {
            dir.normalize()
        } else {
            self.axis
        };
        let (a, b) = self.basis();
        self.pitch = dir
            .dot(self.up)
            .clamp(-1.0, 1.0)
            .asin()
            .clamp(-MAX_PITCH, MAX_PITCH);
        self.yaw = dir.dot(b).atan2(dir.dot(a));
    }

    /// Eye position.
    pub fn eye(&self) -> Vec3 {
        self.pivot - self.forward() * self.distance
    }

    /// Camera right vector.
    fn right(&self) -> Vec3 {
        self.forward().cross(self.up).normalize_or_zero()
    }

    /// Mouse drag by `(dx, dy)` pixels with the primary button: orbit around the pivot, or
    /// look around from the eye (fly). `viewport_h` scales pixels to angles.
    pub fn rotate(&mut self, dx: f32, dy: f32, viewport_h: f32) {
        let k = std::f32::consts::PI / viewport_h.max(1.0);
        let eye = self.eye();
        self.yaw -= dx * k;
        self.pitch = (self.pitch + dy * k * self.sign()).clamp(-MAX_PITCH, MAX_PITCH);
        if self.navigation == Navigation::Fly {
            // Keep the eye, move the pivot.
            self.pivot = eye + self.forward() * self.distance;
        }
    }

    fn sign(&self) -> f32 {
        match self.navigation {
            // Dragging down lifts the eye over the object.
            Navigation::Orbit => 1.0,
            Navigation::Fly => -1.0,
        }
    }

    /// Drag with the secondary button: move pivot and eye in the image plane.
    pub fn pan(&mut self, dx: f32, dy: f32, viewport_h: f32) {
        let per_px = 2.0 * self.distance * (0.5 * self.fov_y).tan() / viewport_h.max(1.0);
        let down = self.forward().cross(self.right());
        self.pivot += (-self.right() * dx - down * dy) * per_px;
    }

    /// Mouse wheel: zoom towards the pivot (orbit) or change the fly speed.
    pub fn scroll(&mut self, lines: f32) {
        let f = 0.9f32.powf(lines);
        match self.navigation {
            Navigation::Orbit => self.distance = (self.distance * f).max(1e-4),
            Navigation::Fly => self.speed = (self.speed / f).max(1e-4),
        }
    }

    /// Fly movement for `dt` seconds: `(right, up, forward)` in −1…1 each.
    pub fn fly(&mut self, dir: Vec3, dt: f32) {
        let d = self.right() * dir.x + self.up * dir.y + self.forward() * dir.z;
        self.pivot += d * self.speed * dt;
    }

    /// The rasterizer camera for a `width × height` image (square pixels).
    pub fn camera(&self, width: u32, height: u32) -> Camera {
        let aspect = width.max(1) as f32 / height.max(1) as f32;
        let fov_x = 2.0 * ((0.5 * self.fov_y).tan() * aspect).atan();
        let eye = self.eye();
        Camera::look_at(
            eye,
            eye + self.forward(),
            self.up,
            fov_x,
            width.max(1),
            height.max(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looking_at_reproduces_the_eye_and_the_pivot_projects_to_the_centre() {
        let pivot = Vec3::new(0.5, -1.0, 2.0);
        let cam = ViewCamera::looking_at(pivot, Vec3::new(1.0, 2.0, 0.5), 3.0, Vec3::Z);
        let eye = cam.eye();
        assert!((eye - pivot).length() - 3.0 < 1e-4);
        assert!(((eye - pivot).normalize() - Vec3::new(1.0, 2.0, 0.5).normalize()).length() < 1e-4);
        let c = cam.camera(64, 32);
        let p = c.view_matrix().transform_point3(pivot);
        assert!(
            p.x.abs() < 1e-4 && p.y.abs() < 1e-4 && (p.z - 3.0).abs() < 1e-4,
            "{p}"
        );
        // World up points up in the image (OpenCV y is down).
        let q = c.view_matrix().transform_point3(pivot + Vec3::Z * 0.1);
        assert!(q.y < 0.0);
    }

    #[test]
    fn orbit_keeps_the_pivot_fly_keeps_the_eye() {
        let mut cam = ViewCamera::looking_at(Vec3::ZERO, Vec3::X, 2.0, Vec3::Z);
        cam.rotate(40.0, 10.0, 100.0);
        assert!((cam.eye().length() - 2.0).abs() < 1e-4);
        assert_eq!(cam.pivot, Vec3::ZERO);
        cam.navigation = Navigation::Fly;
        let eye = cam.eye();
        cam.rotate(-25.0, 5.0, 100.0);
        assert!((cam.eye() - eye).length() < 1e-4);
        cam.fly(Vec3::new(0.0, 0.0, 1.0), 0.5);
        let moved = cam.eye() - eye;
        assert!((moved.normalize() - cam.forward()).length() < 1e-4);
        // Pitch stays clear of the pole.
        cam.rotate(0.0, 1e6, 100.0);
        assert!(cam.pitch.abs() <= MAX_PITCH + 1e-6);
    }
}
