//! Triangle meshes from splats: the splats' opacity-weighted Gaussian density sampled on a
//! regular grid, its `iso` level surface extracted with naive surface nets (the
//! `fast-surface-nets` crate; one vertex per surface cell, so the mesh is closed and
//! manifold-like where the grid is padded), vertex colours from the density-weighted SH DC
//! colour of the splats there, optional decimation with meshoptimizer (the `meshopt` crate), and
//! GLB / OBJ writers ([`write`]).
//!
//! Density at a point x: `D(x) = Σ_i σ(o_i) · exp(−½ (x − μ_i)ᵀ Σ_i⁻¹ (x − μ_i))`, with
//! `Σ_i = R_i S_i² R_iᵀ` (3DGS's covariance from quats wxyz and log_scales), each splat cut at
//! 3σ. Colour: `C(x) = Σ_i w_i(x) c_i / Σ_i w_i(x)` with `c_i = clamp(0.5 + C0 · sh_dc_i, 0, 1)`,
//! the splats' own degree-0 colour (sRGB as rendered).

mod field;
pub mod write;

use crate::scene::{SplatData, sh_coeffs};

pub use field::Grid;

/// Largest grid we build on the host: 2²⁸ cells (≈ 5 GiB of density, colour and distance).
pub const MAX_CELLS: u64 = 1 << 28;

/// Settings of [`extract_mesh`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeshOptions {
    /// Grid cells along the longest side of the scene's box.
    pub resolution: u32,
    /// Density level of the surface (a single opaque splat reaches 1 at its centre).
    pub iso: f32,
    /// Splats less opaque than this are left out (floaters, faded splats).
    pub min_opacity: f32,
    /// Keep this fraction of the triangles (meshoptimizer's simplifier); `None` keeps all.
    pub decimate: Option<f32>,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            resolution: 128,
            iso: 0.5,
            min_opacity: 0.05,
            decimate: None,
        }
    }
}

/// A triangle mesh with per-vertex normals and colours.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TriMesh {
    /// Vertex positions, scene units.
    pub positions: Vec<[f32; 3]>,
    /// Unit outward normals.
    pub normals: Vec<[f32; 3]>,
    /// sRGB colours in [0, 1].
    pub colors: Vec<[f32; 3]>,
    /// Triangles, counter-clockwise seen from outside.
    pub indices: Vec<u32>,
}

impl TriMesh {
    /// Triangle count.
    #[must_use]
    pub fn triangles(&self) -> usize {
        self.indices.len() / 3
    }

    /// Signed volume (positive when the triangles wind counter-clockwise seen from outside).
    #[must_use]
    pub fn signed_volume(&self) -> f64 {
        self.indices
            .chunks_exact(3)
            .map(|t| {
                let [a, b, c] = [t[0], t[1], t[2]].map(|i| {
                    let p = self.positions[i as usize];
                    glam::DVec3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]))
                });
                a.dot(b.cross(c)) / 6.0
            })
            .sum()
    }

    /// Rotate a z-up scene into y-up (glTF's convention): (x, y, z) → (x, z, −y).
    pub fn z_up_to_y_up(&mut self) {
        for v in self.positions.iter_mut().chain(self.normals.iter_mut()) {
            *v = [v[0], v[2], -v[1]];
        }
    }
}

/// Errors of [`extract_mesh`].
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The scene has no splat at or above the opacity floor.
    #[error("no splat has opacity ≥ {min_opacity}: nothing to mesh")]
    Empty {
        /// The floor.
        min_opacity: f32,
    },
    /// The grid would not fit in memory.
    #[error(
        "resolution {resolution}: a {nx}×{ny}×{nz} grid ({cells} cells, {gib:.1} GiB) exceeds \
         the {max} cells we allow"
    )]
    GridTooLarge {
        /// Requested resolution.
        resolution: u32,
        /// Grid points along x.
        nx: u64,
        /// Along y.
        ny: u64,
        /// Along z.
        nz: u64,
        /// Their product.
        cells: u64,
        /// Bytes it would take, GiB.
        gib: f64,
        /// [`MAX_CELLS`].
        max: u64,
    },
    /// A setting is out of range.
    #[error("{field}: {message}")]
    Setting {
        /// Option name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The density never crosses `iso` inside the grid.
    #[error("the density never reaches iso = {iso} (its maximum is {max}): no surface")]
    NoSurface {
        /// The level.
        iso: f32,
        /// Largest density on the grid.
        max: f32,
    },
}

/// Extract a coloured triangle mesh from `data` (see the module notes).
///
/// # Errors
/// [`ExtractError`]: a resolution outside 8–4096, a decimation ratio outside (0, 1], no splat
/// above the opacity floor, a grid over [`MAX_CELLS`], no surface at `iso`.
pub fn extract_mesh(data: &SplatData, opts: &MeshOptions) -> Result<TriMesh, ExtractError> {
    if !(8..=4096).contains(&opts.resolution) {
        return Err(ExtractError::Setting {
            field: "resolution",
            message: format!("{} is outside 8–4096", opts.resolution),
        });
    }
    if let Some(r) = opts.decimate
        && !(r > 0.0 && r <= 1.0)
    {
        return Err(ExtractError::Setting {
            field: "decimate",
            message: format!("{r} is not a fraction in (0, 1]"),
        });
    }
    if !(opts.iso > 0.0 && opts.iso.is_finite()) {
        return Err(ExtractError::Setting {
            field: "iso",
            message: format!("{} is not a positive density", opts.iso),
        });
    }
    let grid = Grid::around(data, opts)?;
    let field = grid.splat(data, opts.min_opacity);
    let mut mesh = field.surface(opts.iso)?;
    compact(&mut mesh);
    if mesh.signed_volume() < 0.0 {
        for t in mesh.indices.chunks_exact_mut(3) {
            t.swap(1, 2);
        }
    }
    if let Some(ratio) = opts.decimate.filter(|&r| r < 1.0) {
        decimate(&mut mesh, ratio);
    }
    Ok(mesh)
}

/// Keep about `ratio` of the triangles (meshoptimizer's edge-collapse simplifier, no error
/// bound), then drop the vertices no triangle uses.
fn decimate(mesh: &mut TriMesh, ratio: f32) {
    let bytes: &[u8] = bytemuck::cast_slice(&mesh.positions);
    let Ok(adapter) = meshopt::VertexDataAdapter::new(bytes, 12, 0) else {
        return;
    };
    let target = ((mesh.indices.len() as f32 * ratio) as usize / 3 * 3).max(3);
    let kept = meshopt::simplify(
        &mesh.indices,
        &adapter,
        target,
        f32::MAX,
        meshopt::SimplifyOptions::empty(),
        None,
    );
    mesh.indices = kept;
    compact(mesh);
}

/// Drop the vertices no triangle uses (surface nets places one in every cell the surface
/// crosses, including cells whose quads fall outside the grid), renumbering the rest.
fn compact(mesh: &mut TriMesh) {
    let mut remap = vec![u32::MAX; mesh.positions.len()];
    let mut out = TriMesh::default();
    for &i in &mesh.indices {
        let r = &mut remap[i as usize];
        if *r == u32::MAX {
            *r = out.positions.len() as u32;
            out.positions.push(mesh.positions[i as usize]);
            out.normals.push(mesh.normals[i as usize]);
            out.colors.push(mesh.colors[i as usize]);
        }
        out.indices.push(*r);
    }
    *mesh = out;
}

/// The zeroth-order SH basis constant, 1/(2√π).
pub(crate) const SH_C0: f32 = 0.282_094_8;

/// Splat `i`'s degree-0 colour, clamped to [0, 1].
pub(crate) fn dc_colour(data: &SplatData, i: usize) -> [f32; 3] {
    let k = sh_coeffs(data.sh_degree);
    let s = &data.sh[i * k * 3..i * k * 3 + 3];
    [0, 1, 2].map(|c| (0.5 + SH_C0 * s[c]).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ball of radius ≈ 1 filled with small opaque splats of one colour.
    fn ball(colour_dc: [f32; 3]) -> SplatData {
        let mut d = SplatData::default();
        let step = 0.1f32;
        let n = (1.0 / step) as i32;
        for x in -n..=n {
            for y in -n..=n {
                for z in -n..=n {
                    let p = Vec3Like([x as f32 * step, y as f32 * step, z as f32 * step]);
                    if p.len() > 1.0 {
                        continue;
                    }
                    d.means.extend(p.0);
                    d.quats.extend([1.0, 0.0, 0.0, 0.0]);
                    d.log_scales.extend([step.ln(); 3]);
                    d.opacity_logits.push(4.0);
                    d.sh.extend(colour_dc);
                }
            }
        }
        d
    }

    struct Vec3Like([f32; 3]);
    impl Vec3Like {
        fn len(&self) -> f32 {
            self.0.iter().map(|c| c * c).sum::<f32>().sqrt()
        }
    }

    #[test]
    fn a_ball_of_splats_meshes_to_a_ball() {
        // Red: 0.5 + C0·dc = 0.9 → dc = 0.4 / C0.
        let dc = [0.4 / SH_C0, -0.3 / SH_C0, -0.3 / SH_C0];
        let mesh = extract_mesh(&ball(dc), &MeshOptions::default()).unwrap();
        let radii: Vec<f32> = mesh
            .positions
            .iter()
            .map(|p| (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt())
            .collect();
        let mean = radii.iter().sum::<f32>() / radii.len() as f32;
        let spread = radii
            .iter()
            .map(|r| (r - mean).abs())
            .fold(0.0f32, f32::max);
        // The surface lies a little outside the outermost centres (radius 1).
        assert!((1.0..1.25).contains(&mean), "mean radius {mean}");
        assert!(spread < 0.1, "radius spread {spread}");
        let mut edges = std::collections::HashMap::new();
        for t in mesh.indices.chunks_exact(3) {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                *edges.entry((a.min(b), a.max(b))).or_insert(0) += 1;
            }
        }
        let open = edges.values().filter(|&&c| c != 2).count();
        let used: std::collections::HashSet<u32> = mesh.indices.iter().copied().collect();
        // Closed: every edge has two triangles, every vertex is used.
        assert_eq!(open, 0, "{open} edges with other than two triangles");
        assert_eq!(used.len(), mesh.positions.len());
        let v = mesh.signed_volume();
        let sphere = 4.0 / 3.0 * std::f64::consts::PI * f64::from(mean).powi(3);
        assert!((v / sphere - 1.0).abs() < 0.05, "volume {v} vs {sphere}");
        // Normals point outwards; colours are the splats' own.
        for (p, n) in mesh.positions.iter().zip(&mesh.normals) {
            let dot = p[0] * n[0] + p[1] * n[1] + p[2] * n[2];
            assert!(dot > 0.0, "inward normal {n:?} at {p:?}");
        }
        for c in &mesh.colors {
            assert!(
                (c[0] - 0.9).abs() < 0.01 && (c[1] - 0.2).abs() < 0.01,
                "{c:?}"
            );
        }
    }

    #[test]
    fn decimation_keeps_the_shape_with_fewer_triangles() {
        let data = ball([0.0; 3]);
        let full = extract_mesh(&data, &MeshOptions::default()).unwrap();
        let opts = MeshOptions {
            decimate: Some(0.25),
            ..MeshOptions::default()
        };
        let small = extract_mesh(&data, &opts).unwrap();
        let ratio = small.triangles() as f64 / full.triangles() as f64;
        assert!((0.2..0.3).contains(&ratio), "kept {ratio}");
        assert!((small.signed_volume() / full.signed_volume() - 1.0).abs() < 0.03);
        assert!(
            small
                .indices
                .iter()
                .all(|&i| (i as usize) < small.positions.len())
        );
    }

    #[test]
    fn settings_and_sizes_are_checked() {
        let data = ball([0.0; 3]);
        let too_big = MeshOptions {
            resolution: 4096,
            ..MeshOptions::default()
        };
        assert!(matches!(
            extract_mesh(&data, &too_big),
            Err(ExtractError::GridTooLarge { .. })
        ));
        let high = MeshOptions {
            iso: 1e9,
            resolution: 16,
            ..MeshOptions::default()
        };
        assert!(matches!(
            extract_mesh(&data, &high),
            Err(ExtractError::NoSurface { .. })
        ));
        let faded = MeshOptions {
            min_opacity: 0.999,
            ..MeshOptions::default()
        };
        assert!(matches!(
            extract_mesh(&data, &faded),
            Err(ExtractError::Empty { .. })
        ));
    }

    #[test]
    fn glb_is_a_well_formed_container() {
        let mesh = extract_mesh(
            &ball([0.0; 3]),
            &MeshOptions {
                resolution: 16,
                ..MeshOptions::default()
            },
        )
        .unwrap();
        let b = write::glb_bytes(&mesh);
        let u = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        assert_eq!(&b[..4], b"glTF");
        assert_eq!(u(4), 2);
        assert_eq!(u(8), b.len());
        let json_len = u(12);
        assert_eq!(&b[16..20], b"JSON");
        assert_eq!(json_len % 4, 0);
        let bin_at = 20 + json_len;
        assert_eq!(&b[bin_at + 4..bin_at + 8], b"BIN\0");
        assert_eq!(bin_at + 8 + u(bin_at), b.len());
        let json: serde_json::Value = serde_json::from_slice(&b[20..bin_at]).unwrap();
        assert_eq!(json["accessors"][0]["count"], mesh.positions.len());
        assert_eq!(json["accessors"][3]["count"], mesh.indices.len());
    }
}
