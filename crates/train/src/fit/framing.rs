//! Where the turntable of a fitted scene looks from: the framing of the training cameras
//! (centre, up axis, distance) and the orbit that stays within the arc they cover.

use std::f32::consts::TAU;

use glam::{Mat3, Vec3};
use splat::Camera;

use super::config::TurntablePath;

/// Where a set of cameras looks: the point nearest to all optical axes in the least-squares
/// sense (the camera centroid when the axes are near parallel), the mean camera up vector, the
/// mean camera distance from that point and the mean elevation above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Framing {
    /// Look-at centre, world units.
    pub centre: Vec3,
    /// Unit up vector (mean of the cameras' −y axes).
    pub up: Vec3,
    /// Mean camera distance from `centre`.
    pub radius: f32,
    /// Mean camera elevation above the plane through `centre` normal to `up`, radians.
    pub elevation: f32,
}

impl Framing {
    /// The framing of `cams` (OpenCV cameras: +z forward, +y down); `None` for no cameras.
    pub fn of(cams: &[Camera]) -> Option<Self> {
        if cams.is_empty() {
            return None;
        }
        let mut a = Mat3::ZERO;
        let mut b = Vec3::ZERO;
        let mut up = Vec3::ZERO;
        let mut centroid = Vec3::ZERO;
        for c in cams {
            let v = c.viewmat;
            let fwd = Vec3::new(v[2][0], v[2][1], v[2][2]).normalize_or_zero();
            up -= Vec3::new(v[1][0], v[1][1], v[1][2]);
            let p = c.position();
            centroid += p;
            // Σ (I − d dᵀ) x = Σ (I − d dᵀ) p: the point closest to every axis.
            let m = Mat3::IDENTITY - Mat3::from_cols(fwd * fwd.x, fwd * fwd.y, fwd * fwd.z);
            a += m;
            b += m * p;
        }
        let n = cams.len() as f32;
        centroid /= n;
        let up = up.try_normalize().unwrap_or(Vec3::Z);
        // Near-parallel axes (forward-facing captures) make the system singular.
        let centre = if a.determinant().abs() > 1e-3 * n.powi(3) {
            a.inverse() * b
        } else {
            centroid
        };
        let radius = cams
            .iter()
            .map(|c| (c.position() - centre).length())
            .sum::<f32>()
            / n;
        let elevation = cams
            .iter()
            .map(|c| {
                (c.position() - centre)
                    .normalize_or_zero()
                    .dot(up)
                    .clamp(-1.0, 1.0)
                    .asin()
            })
            .sum::<f32>()
            / n;
        Some(Self {
            centre,
            up,
            radius: radius.max(1e-6),
            elevation,
        })
    }
}

/// `frames` turntable cameras around what `cams` look at ([`Framing`]), at their mean distance
/// and elevation, with the field of view of the first camera and its aspect ratio at `size`
/// pixels on the longest side. `path` picks a full orbit or a sweep over the covered arc
/// ([`covered_arc`]; `Auto` sweeps when the cameras leave a gap wider than 60°).
pub fn turntable_cameras(
    cams: &[Camera],
    frames: usize,
    size: u32,
    path: TurntablePath,
) -> Vec<Camera> {
    let Some(f) = Framing::of(cams) else {
        return vec![];
    };
    if frames == 0 {
        return vec![];
    }
    let c0 = &cams[0];
    let aspect = c0.height as f32 / c0.width as f32;
    let (w, h) = if aspect <= 1.0 {
        (size, ((size as f32 * aspect).round() as u32).max(1))
    } else {
        (((size as f32 / aspect).round() as u32).max(1), size)
    };
    // Keep the dataset's vertical field of view (square pixels in the orbit camera).
    let fov_y = 2.0 * (0.5 * c0.height as f32 / c0.focal().1).atan();
    let fov_x = 2.0 * ((0.5 * fov_y).tan() * w as f32 / h as f32).atan();
    let arc = covered_arc(cams, &f);
    let sweep = match path {
        TurntablePath::Orbit => None,
        TurntablePath::Arc => Some(arc),
        TurntablePath::Auto => (arc.1 < TAU - MAX_ORBIT_GAP).then_some(arc),
    };
    let Some((start, span)) = sweep else {
        return Camera::orbit(f.centre, f.up, f.radius, f.elevation, frames, fov_x, w, h);
    };
    (0..frames)
        .map(|i| {
            // Out and back with eased turns: cos keeps the ends from jerking.
            let t = i as f32 / frames as f32;
            let phi = start + span * 0.5 * (1.0 - (TAU * t).cos());
            Camera::orbit_at(f.centre, f.up, f.radius, f.elevation, phi, fov_x, w, h)
        })
        .collect()
}

/// Widest gap between camera azimuths (radians) that `TurntablePath::Auto` still calls a full
/// orbit.
pub(crate) const MAX_ORBIT_GAP: f32 = std::f32::consts::FRAC_PI_3;

/// The arc of azimuths around `f.up` (in [`splat::camera::azimuth_basis`], as [`Camera::orbit`] uses) that the camera centres
/// cover: `(start, span)` in radians, going counter-clockwise from `start`, i.e. the circle
/// minus its widest gap between neighbouring cameras. A single camera gives span 0.
pub fn covered_arc(cams: &[Camera], f: &Framing) -> (f32, f32) {
    let (a, b) = splat::camera::azimuth_basis(f.up);
    let mut az: Vec<f32> = cams
        .iter()
        .map(|c| {
            let d = c.position() - f.centre;
            d.dot(b).atan2(d.dot(a)).rem_euclid(TAU)
        })
        .collect();
    az.sort_by(f32::total_cmp);
    let Some(&first) = az.first() else {
        return (0.0, 0.0);
    };
    // The gap after each camera (the last one wraps round to the first).
    let (mut gap, mut after) = (first + TAU - az[az.len() - 1], az.len() - 1);
    for (i, pair) in az.windows(2).enumerate() {
        if pair[1] - pair[0] > gap {
            (gap, after) = (pair[1] - pair[0], i);
        }
    }
    let start = az[(after + 1) % az.len()];
    (start, TAU - gap)
}
