//! Rigid rotations of a scene — means, quats and SH coefficients together — and the up-axis
//! conventions of exported files.
//!
//! `generate`'s world is z-up (azimuth 0 = camera on +x). Splat viewers assume otherwise:
//! captures trained in COLMAP/OpenCV frames (as brush and the INRIA code train them) are
//! y-down, so SuperSplat and the PlayCanvas engine roll every PLY 180° about z on load to show
//! them upright, while three.js-style viewers take +y as up. [`UpAxis`] names the three
//! conventions, and [`rotate`] turns a scene into one of them exactly (the view-dependent colour
//! of every splat turns with it).

use crate::scene::{SplatData, sh_coeffs};

/// The up direction a written scene file uses. [`UpAxis::rotation_from_z_up`] maps `generate`'s
/// z-up world into it.
/// In configs: `"z"`, `"y"` or `"-y"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum UpAxis {
    /// +z up: `generate`'s own world, unchanged (Blender, NeRF-synthetic).
    #[serde(rename = "z")]
    Z,
    /// +y up (three.js, glTF): a rotation of −90° about x, `(x, y, z) → (x, z, −y)`.
    #[serde(rename = "y")]
    Y,
    /// −y up, the COLMAP/OpenCV capture convention that SuperSplat and PlayCanvas expect of a
    /// PLY (their 180° roll about z shows it upright): +90° about x, `(x, y, z) → (x, −z, y)`.
    /// The default for `generate`'s exports.
    #[default]
    #[serde(rename = "-y")]
    NegY,
}

impl UpAxis {
    /// The name [`std::str::FromStr`] reads and PLY headers record: `z`, `y` or `-y`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Z => "z",
            Self::Y => "y",
            Self::NegY => "-y",
        }
    }

    /// The rotation (row-major 3×3) from the z-up world to this convention.
    pub fn rotation_from_z_up(self) -> [[f64; 3]; 3] {
        match self {
            Self::Z => [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            Self::Y => [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
            Self::NegY => [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
        }
    }
}

impl std::fmt::Display for UpAxis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for UpAxis {
    type Err = String;

    /// `z`, `y` or `-y` (also `+z`, `+y`, `neg-y`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "z" | "+z" => Ok(Self::Z),
            "y" | "+y" => Ok(Self::Y),
            "-y" | "neg-y" | "negy" => Ok(Self::NegY),
            other => Err(format!("unknown up axis {other:?}: expected z, y or -y")),
        }
    }
}

/// Transposed 3×3.
fn transpose(r: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| r[j][i]))
}

fn mat_vec(r: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|i| r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2])
}

/// Unit quaternion (wxyz) of a rotation matrix (Shepperd's method, largest-diagonal branch).
fn quat_of_matrix(r: &[[f64; 3]; 3]) -> [f64; 4] {
    let trace = r[0][0] + r[1][1] + r[2][2];
    let q = if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        [
            0.25 * s,
            (r[2][1] - r[1][2]) / s,
            (r[0][2] - r[2][0]) / s,
            (r[1][0] - r[0][1]) / s,
        ]
    } else if r[0][0] > r[1][1] && r[0][0] > r[2][2] {
        let s = (1.0 + r[0][0] - r[1][1] - r[2][2]).sqrt() * 2.0;
        [
            (r[2][1] - r[1][2]) / s,
            0.25 * s,
            (r[0][1] + r[1][0]) / s,
            (r[0][2] + r[2][0]) / s,
        ]
    } else if r[1][1] > r[2][2] {
        let s = (1.0 + r[1][1] - r[0][0] - r[2][2]).sqrt() * 2.0;
        [
            (r[0][2] - r[2][0]) / s,
            (r[0][1] + r[1][0]) / s,
            0.25 * s,
            (r[1][2] + r[2][1]) / s,
        ]
    } else {
        let s = (1.0 + r[2][2] - r[0][0] - r[1][1]).sqrt() * 2.0;
        [
            (r[1][0] - r[0][1]) / s,
            (r[0][2] + r[2][0]) / s,
            (r[1][2] + r[2][1]) / s,
            0.25 * s,
        ]
    };
    let n = q.iter().map(|x| x * x).sum::<f64>().sqrt();
    q.map(|x| x / n)
}

/// Hamilton product `a ⊗ b` (wxyz).
fn quat_mul(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ]
}

/// The real SH basis of degrees 1–3 at a unit direction, in the renderer's order and signs
/// (`shaders/lib/projection.wgsl`, the 3DGS / gsplat convention): 15 values, band 1 first.
fn sh_basis(d: [f64; 3]) -> [f64; 15] {
    let [x, y, z] = d;
    let c1 = 0.488_602_511_902_919_9;
    let c2 = [
        1.092_548_430_592_079_2,
        -1.092_548_430_592_079_2,
        0.315_391_565_252_520_05,
        -1.092_548_430_592_079_2,
        0.546_274_215_296_039_6,
    ];
    let c3 = [
        -0.590_043_589_926_643_5,
        2.890_611_442_640_554,
        -0.457_045_799_464_465_8,
        0.373_176_332_590_115_4,
        -0.457_045_799_464_465_8,
        1.445_305_721_320_277,
        -0.590_043_589_926_643_5,
    ];
    [
        -c1 * y,
        c1 * z,
        -c1 * x,
        c2[0] * x * y,
        c2[1] * y * z,
        c2[2] * (2.0 * z * z - x * x - y * y),
        c2[3] * x * z,
        c2[4] * (x * x - y * y),
        c3[0] * y * (3.0 * x * x - y * y),
        c3[1] * x * y * z,
        c3[2] * y * (4.0 * z * z - x * x - y * y),
        c3[3] * z * (2.0 * z * z - 3.0 * x * x - 3.0 * y * y),
        c3[4] * x * (4.0 * z * z - x * x - y * y),
        c3[5] * z * (x * x - y * y),
        c3[6] * x * (x * x - 3.0 * y * y),
    ]
}

/// Solves `a · x = b` for a small dense system (Gaussian elimination, partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (pivot_a, pivot_b) = (a[col].clone(), b[col].clone());
        for (row, (ra, rb)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
            if row != col {
                let f = ra[col] / pivot_a[col];
                ra.iter_mut().zip(&pivot_a).for_each(|(x, p)| *x -= f * p);
                rb.iter_mut().zip(&pivot_b).for_each(|(x, p)| *x -= f * p);
            }
        }
    }
    (0..n)
        .map(|i| b[i].iter().map(|v| v / a[i][i]).collect())
        .collect()
}

/// Per band l = 1..=3, the matrix `T_l` ((2l+1)²) with `sh'_band = T_l · sh_band`: the
/// coefficients that, seen from direction `R d`, give the colour the old ones gave from `d`.
/// Found by least squares over 64 Fibonacci-sphere directions (exact: rotations keep bands).
fn sh_band_rotations(r: &[[f64; 3]; 3]) -> [Vec<Vec<f64>>; 3] {
    let rt = transpose(r);
    let n = 64;
    let dirs: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let z = 1.0 - 2.0 * (i as f64 + 0.5) / n as f64;
            let rho = (1.0 - z * z).sqrt();
            let phi = i as f64 * std::f64::consts::PI * (3.0 - 5f64.sqrt());
            [rho * phi.cos(), rho * phi.sin(), z]
        })
        .collect();
    std::array::from_fn(|band| {
        let l = band + 1;
        let (lo, width) = (l * l - 1, 2 * l + 1);
        let a: Vec<Vec<f64>> = dirs
            .iter()
            .map(|&d| sh_basis(d)[lo..lo + width].to_vec())
            .collect();
        let b: Vec<Vec<f64>> = dirs
            .iter()
            .map(|&d| sh_basis(mat_vec(&rt, d))[lo..lo + width].to_vec())
            .collect();
        // Normal equations: (AᵀA) Dᵀ = AᵀB, where y(Rᵀd) = D y(d); then sh' = Dᵀ sh.
        let ata: Vec<Vec<f64>> = (0..width)
            .map(|i| {
                (0..width)
                    .map(|j| a.iter().map(|row| row[i] * row[j]).sum())
                    .collect()
            })
            .collect();
        let atb: Vec<Vec<f64>> = (0..width)
            .map(|i| {
                (0..width)
                    .map(|j| a.iter().zip(&b).map(|(ra, rb)| ra[i] * rb[j]).sum())
                    .collect()
            })
            .collect();
        solve(ata, atb)
    })
}

/// Rotates a scene about the origin by `r` (row-major, orthonormal, det +1): means `m → R m`,
/// quats `q → q_R ⊗ q` (wxyz; each splat's frame turns with the scene, its norm kept), and
/// SH coefficients of degrees 1–3 so that every splat shows from direction `R d` the colour
/// it showed from `d`. log_scales, opacity logits and the DC term are unchanged. Same effect as
/// splat-transform's `--rotate` (checked against it in `crates/cli/tests/formats.rs`).
pub fn rotate(data: &mut SplatData, r: [[f64; 3]; 3]) {
    for m in data.means.chunks_exact_mut(3) {
        let v = mat_vec(&r, [f64::from(m[0]), f64::from(m[1]), f64::from(m[2])]);
        for (dst, src) in m.iter_mut().zip(v) {
            *dst = src as f32;
        }
    }
    let qr = quat_of_matrix(&r);
    for q in data.quats.chunks_exact_mut(4) {
        let turned = quat_mul(qr, [q[0], q[1], q[2], q[3]].map(f64::from));
        for (dst, src) in q.iter_mut().zip(turned) {
            *dst = src as f32;
        }
    }
    if data.sh_degree == 0 {
        return;
    }
    let k = sh_coeffs(data.sh_degree);
    let bands = sh_band_rotations(&r);
    for splat in data.sh.chunks_exact_mut(3 * k) {
        for (band, t) in bands.iter().enumerate().take(data.sh_degree as usize) {
            let l = band + 1;
            let (lo, width) = (l * l, 2 * l + 1);
            for c in 0..3 {
                let old: Vec<f64> = (0..width)
                    .map(|i| f64::from(splat[3 * (lo + i) + c]))
                    .collect();
                for (i, row) in t.iter().enumerate() {
                    let v: f64 = row.iter().zip(&old).map(|(a, b)| a * b).sum();
                    splat[3 * (lo + i) + c] = v as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colour(sh: &[f32], deg: u32, d: [f64; 3], c: usize) -> f64 {
        let basis = sh_basis(d);
        let k = sh_coeffs(deg);
        (1..k)
            .map(|i| f64::from(sh[3 * i + c]) * basis[i - 1])
            .sum()
    }

    fn scene(deg: u32) -> SplatData {
        let k = sh_coeffs(deg);
        SplatData {
            means: vec![0.3, -0.2, 0.9],
            quats: vec![0.9, 0.1, -0.3, 0.2],
            log_scales: vec![-2.0, -1.0, -3.0],
            opacity_logits: vec![0.5],
            sh: (0..3 * k).map(|i| ((i * 7 + 3) as f32).sin()).collect(),
            sh_degree: deg,
        }
    }

    /// After the rotation, the colour from direction `R d` is the old colour from `d`, for
    /// every up axis and SH degree (a wrong sign or band order fails this).
    #[test]
    fn view_dependent_colour_turns_with_the_scene() {
        for up in [UpAxis::Y, UpAxis::NegY] {
            let r = up.rotation_from_z_up();
            for deg in 1..=3 {
                let before = scene(deg);
                let mut after = before.clone();
                rotate(&mut after, r);
                for d in [[0.6, 0.0, 0.8], [-0.48, 0.6, 0.64], [0.0, -1.0, 0.0]] {
                    for c in 0..3 {
                        let want = colour(&before.sh, deg, d, c);
                        let got = colour(&after.sh, deg, mat_vec(&r, d), c);
                        assert!(
                            (want - got).abs() < 1e-5,
                            "{up} deg {deg} {d:?}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn up_axes_map_z_as_named() {
        assert_eq!(
            mat_vec(&UpAxis::Y.rotation_from_z_up(), [0.0, 0.0, 1.0]),
            [0.0, 1.0, 0.0]
        );
        assert_eq!(
            mat_vec(&UpAxis::NegY.rotation_from_z_up(), [0.0, 0.0, 1.0]),
            [0.0, -1.0, 0.0]
        );
        let mut s = scene(0);
        rotate(&mut s, UpAxis::NegY.rotation_from_z_up());
        assert_eq!(s.means, vec![0.3, -0.9, -0.2]);
        // The splat's own rotation matrix turned too: q_R ⊗ q.
        let qr = quat_of_matrix(&UpAxis::NegY.rotation_from_z_up());
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!(
            (qr[0] - h).abs() < 1e-12 && (qr[1] - h).abs() < 1e-12,
            "{qr:?}"
        );
        for up in [UpAxis::Z, UpAxis::Y, UpAxis::NegY] {
            assert_eq!(up.name().parse::<UpAxis>(), Ok(up));
        }
        assert!("x".parse::<UpAxis>().is_err());
    }
}
