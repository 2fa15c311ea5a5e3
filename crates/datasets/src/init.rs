//! Initial splats: from a point cloud (SfM points), uniformly random in a box, or a PLY file.
//!
//! Point initialisation follows 3DGS (`GaussianModel.create_from_pcd`): one isotropic splat per
//! point, SH DC from the point colour, scale = the RMS distance to the 3 nearest other points,
//! identity rotation, opacity 0.1.

use std::path::PathBuf;

use glam::Vec3;
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use splat::SplatData;

/// SH band-0 constant Y₀⁰ = 1/(2√π): colour = C0·f_dc + 0.5.
pub const SH_C0: f32 = 0.282_094_8;

/// How to initialise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// The dataset's SfM points when it has them, else random.
    Auto,
    /// The dataset's SfM points (an error when it has none).
    Points,
    /// Uniformly random points in a box around the cameras' look-at centre.
    Random,
    /// Splats read from [`InitConfig::ply`].
    Ply,
}

/// Initialisation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// Source of the initial splats.
    pub kind: InitKind,
    /// Number of random points.
    pub random_points: usize,
    /// Half-side of the random box as a fraction of the mean camera distance to the look-at
    /// centre (NeRF-synthetic: cameras at 4.0, objects inside ±1.3 → 0.33).
    pub random_extent: f32,
    /// Initial opacity (3DGS: 0.1).
    pub opacity: f32,
    /// Multiplier on the nearest-neighbour scale.
    pub scale_factor: f32,
    /// PLY file for `kind = "ply"`.
    pub ply: Option<PathBuf>,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            kind: InitKind::Auto,
            random_points: 100_000,
            random_extent: 0.33,
            opacity: 0.1,
            scale_factor: 1.0,
            ply: None,
        }
    }
}

/// Splats on `positions` with colours `colors` (sRGB in [0, 1]), SH degree 0.
///
/// Scales: log of the RMS distance to the 3 nearest other points (3DGS `distCUDA2`), floored at
/// 1e-7, times `scale_factor`; an isolated single point gets scale 0.01.
pub fn from_points(
    positions: &[[f32; 3]],
    colors: &[[f32; 3]],
    opacity: f32,
    scale_factor: f32,
) -> SplatData {
    let n = positions.len();
    let mut scales = vec![0.01f32; n];
    if n > 1 {
        let tree: ImmutableKdTree<f32, 3> = ImmutableKdTree::new_from_slice(positions);
        let k = 4.min(n);
        for (i, p) in positions.iter().enumerate() {
            let nn = tree.nearest_n::<SquaredEuclidean>(p, std::num::NonZero::new(k).unwrap());
            // The query point itself is among the results at distance 0 (possibly alongside
            // duplicates); average the k−1 smallest squared distances after dropping one zero.
            let mut d: Vec<f32> = nn.iter().map(|x| x.distance).collect();
            d.sort_by(f32::total_cmp);
            let rest = &d[1..];
            let mean = rest.iter().sum::<f32>() / rest.len().max(1) as f32;
            scales[i] = mean.max(1e-7).sqrt();
        }
    }
    let opacity_logit = (opacity / (1.0 - opacity)).ln();
    let mut data = SplatData {
        sh_degree: 0,
        ..Default::default()
    };
    for i in 0..n {
        data.means.extend_from_slice(&positions[i]);
        data.quats.extend_from_slice(&[1.0, 0.0, 0.0, 0.0]);
        let s = (scales[i] * scale_factor).ln();
        data.log_scales.extend_from_slice(&[s, s, s]);
        data.opacity_logits.push(opacity_logit);
        data.sh.extend(colors[i].iter().map(|c| (c - 0.5) / SH_C0));
    }
    data
}

/// `count` points uniform in the cube `centre ± half`, with uniform random colours, seeded.
pub fn random_points(
    count: usize,
    centre: Vec3,
    half: f32,
    seed: u64,
) -> (Vec<[f32; 3]>, Vec<[f32; 3]>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pos = Vec::with_capacity(count);
    let mut col = Vec::with_capacity(count);
    for _ in 0..count {
        let p: [f32; 3] =
            std::array::from_fn(|a| centre[a] + half * (2.0 * rng.random::<f32>() - 1.0));
        pos.push(p);
        col.push(std::array::from_fn(|_| rng.random::<f32>()));
    }
    (pos, col)
}

/// `count` points uniform in the ball of `radius` around the origin, seeded; colours uniform
/// random, or all `colour` when given.
pub fn sphere_points(
    count: usize,
    radius: f32,
    colour: Option<[f32; 3]>,
    seed: u64,
) -> (Vec<[f32; 3]>, Vec<[f32; 3]>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pos = Vec::with_capacity(count);
    let mut col = Vec::with_capacity(count);
    while pos.len() < count {
        // Rejection from the cube: 52 % acceptance.
        let p: [f32; 3] = std::array::from_fn(|_| 2.0 * rng.random::<f32>() - 1.0);
        if p[0] * p[0] + p[1] * p[1] + p[2] * p[2] > 1.0 {
            continue;
        }
        pos.push(p.map(|v| v * radius));
        col.push(colour.unwrap_or_else(|| std::array::from_fn(|_| rng.random::<f32>())));
    }
    (pos, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sphere_points_fill_the_ball() {
        let (p, c) = sphere_points(4000, 0.8, None, 5);
        assert_eq!((p.len(), c.len()), (4000, 4000));
        let r: Vec<f32> = p
            .iter()
            .map(|q| (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]).sqrt())
            .collect();
        assert!(r.iter().all(|&r| r <= 0.8 + 1e-6));
        // Uniform in volume: P(r < 0.8·½) = 1/8.
        let inner = r.iter().filter(|&&r| r < 0.4).count() as f64 / 4000.0;
        assert!((inner - 0.125).abs() < 0.03, "{inner}");
        let (_, grey) = sphere_points(10, 1.0, Some([0.5; 3]), 5);
        assert!(grey.iter().all(|c| *c == [0.5; 3]));
    }

    #[test]
    fn point_scales_are_nearest_neighbour_rms() {
        // Points on a line at 0, 1, 2, 4: point 1's 3 nearest others are at distances 1, 1, 3
        // → RMS √((1+1+9)/3).
        let pos = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [2.0, 0.0, 0.0],
            [4.0, 0.0, 0.0],
        ];
        let col = [[0.5, 0.5, 0.5]; 4];
        let d = from_points(&pos, &col, 0.1, 1.0);
        assert_eq!(d.len(), 4);
        assert!((d.log_scales[3].exp() - (11.0f32 / 3.0).sqrt()).abs() < 1e-5);
        assert!(d.sh.iter().all(|&v| v.abs() < 1e-6), "grey is SH DC 0");
        assert!((1.0 / (1.0 + (-d.opacity_logits[0]).exp()) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn random_points_stay_in_the_box() {
        let (p, c) = random_points(1000, Vec3::new(1.0, 2.0, 3.0), 0.5, 7);
        assert_eq!(p.len(), 1000);
        assert!(
            p.iter()
                .all(|q| (q[0] - 1.0).abs() <= 0.5 && (q[2] - 3.0).abs() <= 0.5)
        );
        assert!(c.iter().flatten().all(|&v| (0.0..1.0).contains(&v)));
        assert_eq!(
            random_points(10, Vec3::ZERO, 1.0, 7),
            random_points(10, Vec3::ZERO, 1.0, 7)
        );
    }
}
