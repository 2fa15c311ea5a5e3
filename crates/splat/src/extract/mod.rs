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
    let mut remap = vec![u32::MAX; mesh.positions.len()];
    let mut out = TriMesh::default();
    for &i in &kept {
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
