//! Where the turntable of a fitted scene looks from: the framing of the training cameras
//! (centre, up axis, distance) and the orbit that stays within the arc they cover. Used by
//! `fit`'s turntable and the viewer's home view.

use std::f32::consts::TAU;

use glam::{Mat3, Vec3};
use serde::{Deserialize, Serialize};

use crate::Camera;

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
pub const MAX_ORBIT_GAP: f32 = std::f32::consts::FRAC_PI_3;

/// The arc of azimuths around `f.up` (in [`crate::camera::azimuth_basis`], as [`Camera::orbit`] uses) that the camera centres
/// cover: `(start, span)` in radians, going counter-clockwise from `start`, i.e. the circle
/// minus its widest gap between neighbouring cameras. A single camera gives span 0.
pub fn covered_arc(cams: &[Camera], f: &Framing) -> (f32, f32) {
    let (a, b) = crate::camera::azimuth_basis(f.up);
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

/// Where the turntable camera goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurntablePath {
    /// `orbit` when the training cameras go (nearly) all the way round the scene, else `arc`.
    #[default]
    Auto,
    /// A full circle around the scene.
    Orbit,
    /// Back and forth over the arc of azimuths the training cameras cover (captures of one
    /// side of an object, e.g. a head on a wall): the turntable stays where there is data.
    Arc,
}

#[cfg(test)]
mod tests {
    use glam::Vec3;

    use super::*;

    /// 36 cameras every 10° of azimuth around the origin, z up (Camera::orbit's basis).
    fn ring() -> Vec<Camera> {
        Camera::orbit(Vec3::ZERO, Vec3::Z, 4.0, 0.3, 36, 1.0, 64, 48)
    }

    fn azimuth_deg(c: &Camera, f: &Framing) -> f32 {
        let (a, b) = crate::camera::azimuth_basis(f.up);
        let d = c.position() - f.centre;
        d.dot(b).atan2(d.dot(a)).to_degrees().rem_euclid(360.0)
    }

    #[test]
    fn covered_arc_wraps_round_zero() {
        let ring = ring();
        // 350°, 0°, 10°, …, 40°, given out of order.
        let cams: Vec<Camera> = [2, 35, 0, 4, 1, 3].iter().map(|&i| ring[i]).collect();
        let f = Framing::of(&cams).unwrap();
        let (start, span) = covered_arc(&cams, &f);
        // The framing centre of a partial ring is not exactly the ring's centre: compare
        // with the azimuths measured from it.
        let first = azimuth_deg(&ring[35], &f);
        let last = azimuth_deg(&ring[4], &f);
        assert!(
            (start.to_degrees() - first).abs() < 1e-3,
            "{start} vs {first}"
        );
        let want = (last - first).rem_euclid(360.0);
        assert!((span.to_degrees() - want).abs() < 1e-3, "{span} vs {want}");
        assert!(want > 30.0 && want < 70.0, "{want}");
    }

    #[test]
    fn auto_turntable_sweeps_a_partial_capture_and_orbits_a_full_one() {
        let ring = ring();
        let quarter: Vec<Camera> = ring[3..13].to_vec(); // 30°..120°
        let f = Framing::of(&quarter).unwrap();
        let (start, span) = covered_arc(&quarter, &f);
        let frames = turntable_cameras(&quarter, 40, 64, TurntablePath::Auto);
        assert_eq!(frames.len(), 40);
        let lo = start.to_degrees();
        for (i, c) in frames.iter().enumerate() {
            let off = (azimuth_deg(c, &f) - lo).rem_euclid(360.0);
            let off = if off > 359.9 { 0.0 } else { off };
            assert!(
                off <= span.to_degrees() + 1e-2,
                "frame {i} at +{off}° outside the arc"
            );
            // Same distance from the look-at centre as the training cameras on average.
            assert!(((c.position() - f.centre).length() - f.radius).abs() < 1e-3);
            assert_eq!((c.width, c.height), (64, 48));
        }
        // Out to the far end half way through, and back.
        let half = (azimuth_deg(&frames[20], &f) - lo).rem_euclid(360.0);
        assert!((half - span.to_degrees()).abs() < 1e-2, "{half}");
        // The orbit path ignores the gap.
        let orbit = turntable_cameras(&quarter, 40, 64, TurntablePath::Orbit);
        let widest = (0..40)
            .map(|i| azimuth_deg(&orbit[i], &f))
            .fold(0.0f32, |m, a| m.max((a - lo).rem_euclid(360.0)));
        assert!(widest > 300.0, "{widest}");

        // Cameras all the way round: Auto orbits (evenly spaced frames, 9° apart).
        let f = Framing::of(&ring).unwrap();
        let full = turntable_cameras(&ring, 40, 64, TurntablePath::Auto);
        let mut az: Vec<f32> = full.iter().map(|c| azimuth_deg(c, &f)).collect();
        az.sort_by(f32::total_cmp);
        for w in az.windows(2) {
            assert!((w[1] - w[0] - 9.0).abs() < 1e-2, "{w:?}");
        }
    }
}
