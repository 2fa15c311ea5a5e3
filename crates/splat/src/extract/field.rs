//! The density and colour grid of [`super::extract_mesh`] and its surface.

use fast_surface_nets::ndshape::{RuntimeShape, Shape};
use fast_surface_nets::{SurfaceNetsBuffer, surface_nets};
use glam::{Mat3, Quat, Vec3};

use super::{ExtractError, MAX_CELLS, MeshOptions, TriMesh, dc_colour};
use crate::scene::SplatData;

/// A regular grid of `dims` points spaced `h` apart from `origin`, whose outermost layer is
/// kept empty so that every surface closes inside it.
#[derive(Clone, Debug)]
pub struct Grid {
    /// World position of grid point (0, 0, 0).
    pub origin: Vec3,
    /// Spacing, scene units.
    pub h: f32,
    /// Points along x, y, z.
    pub dims: [u32; 3],
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The `q` quantile (0–1) of `v` (sorted in place).
fn quantile(v: &mut [f32], q: f32) -> f32 {
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f32 * q).round() as usize]
}

impl Grid {
    /// The grid over the opaque splats' means (their 0.5–99.5 % range per axis, so a few
    /// floaters do not stretch it, plus a margin of 10 % or three typical splat radii, whichever
    /// is larger), `opts.resolution` cells along the longest side.
    ///
    /// # Errors
    /// [`ExtractError::Empty`], [`ExtractError::GridTooLarge`].
    pub fn around(data: &SplatData, opts: &MeshOptions) -> Result<Self, ExtractError> {
        let opaque: Vec<usize> = (0..data.len())
            .filter(|&i| sigmoid(data.opacity_logits[i]) >= opts.min_opacity)
            .collect();
        if opaque.is_empty() {
            return Err(ExtractError::Empty {
                min_opacity: opts.min_opacity,
            });
        }
        let mut lo = Vec3::ZERO;
        let mut hi = Vec3::ZERO;
        for a in 0..3 {
            let mut v: Vec<f32> = opaque.iter().map(|&i| data.means[3 * i + a]).collect();
            lo[a] = quantile(&mut v, 0.005);
            hi[a] = quantile(&mut v, 0.995);
        }
        // Room for the splats' own extent (3σ of the 95th-percentile largest axis) so that the
        // surface does not run into the empty outer layer.
        let mut sizes: Vec<f32> = opaque
            .iter()
            .map(|&i| {
                let s = &data.log_scales[3 * i..3 * i + 3];
                s[0].max(s[1]).max(s[2]).exp()
            })
            .collect();
        let extent = (hi - lo).max_element().max(1e-6);
        let margin = (0.1 * extent).max((3.0 * quantile(&mut sizes, 0.95)).min(extent));
        let (lo, hi) = (lo - margin, hi + margin);
        let h = (hi - lo).max_element() / opts.resolution as f32;
        // One empty layer on each side.
        let n = ((hi - lo) / h).ceil().as_uvec3() + glam::UVec3::splat(3);
        let cells = u64::from(n.x) * u64::from(n.y) * u64::from(n.z);
        if cells > MAX_CELLS {
            return Err(ExtractError::GridTooLarge {
                resolution: opts.resolution,
                nx: u64::from(n.x),
                ny: u64::from(n.y),
                nz: u64::from(n.z),
                cells,
                gib: cells as f64 * 20.0 / f64::from(1u32 << 30),
                max: MAX_CELLS,
            });
        }
        Ok(Self {
            origin: lo - Vec3::splat(h),
            h,
            dims: n.to_array(),
        })
    }

    fn index(&self, x: u32, y: u32, z: u32) -> usize {
        (x as usize) + self.dims[0] as usize * (y as usize + self.dims[1] as usize * z as usize)
    }

    /// Accumulate every splat at or above `min_opacity` into density and colour.
    #[must_use]
    pub fn splat(self, data: &SplatData, min_opacity: f32) -> Field {
        let cells = self.dims.iter().map(|&d| d as usize).product();
        let mut density = vec![0.0f32; cells];
        let mut colour = vec![[0.0f32; 3]; cells];
        for i in 0..data.len() {
            let alpha = sigmoid(data.opacity_logits[i]);
            if alpha < min_opacity {
                continue;
            }
            let q = &data.quats[4 * i..4 * i + 4];
            let rot = Mat3::from_quat(Quat::from_xyzw(q[1], q[2], q[3], q[0]).normalize());
            let s = Vec3::from_slice(&data.log_scales[3 * i..3 * i + 3]).exp();
            let cov = rot * Mat3::from_diagonal(s * s) * rot.transpose();
            let inv = rot * Mat3::from_diagonal((s * s).recip()) * rot.transpose();
            if !inv.is_finite() {
                continue;
            }
            let mean = Vec3::from_slice(&data.means[3 * i..3 * i + 3]);
            let reach = 3.0 * Vec3::new(cov.x_axis.x, cov.y_axis.y, cov.z_axis.z).sqrt();
            let g0 = ((mean - reach - self.origin) / self.h).floor();
            let g1 = ((mean + reach - self.origin) / self.h).ceil();
            let top = glam::Vec3::new(
                (self.dims[0] - 2) as f32,
                (self.dims[1] - 2) as f32,
                (self.dims[2] - 2) as f32,
            );
            let g0 = g0.clamp(Vec3::ONE, top).as_uvec3();
            let g1 = g1.clamp(Vec3::ONE, top).as_uvec3();
            let c = dc_colour(data, i);
            for z in g0.z..=g1.z {
                for y in g0.y..=g1.y {
                    for x in g0.x..=g1.x {
                        let p = self.origin + self.h * Vec3::new(x as f32, y as f32, z as f32);
                        let d = p - mean;
                        let m = d.dot(inv * d);
                        if m >= 9.0 {
                            continue;
                        }
                        let w = alpha * (-0.5 * m).exp();
                        let at = self.index(x, y, z);
                        density[at] += w;
                        for k in 0..3 {
                            colour[at][k] += w * c[k];
                        }
                    }
                }
            }
        }
        Field {
            grid: self,
            density,
            colour,
        }
    }
}

/// Density and density-weighted colour on a [`Grid`].
#[derive(Clone, Debug)]
pub struct Field {
    /// The grid.
    pub grid: Grid,
    /// `D` at each grid point (x fastest).
    pub density: Vec<f32>,
    /// `Σ w_i c_i` at each grid point.
    pub colour: Vec<[f32; 3]>,
}

impl Field {
    /// Trilinear colour `Σ w c / Σ w` at grid coordinates `p`.
    fn colour_at(&self, p: [f32; 3]) -> [f32; 3] {
        let g = &self.grid;
        let base = [0, 1, 2].map(|a| (p[a].floor().max(0.0) as u32).min(g.dims[a] - 2));
        let t = [0, 1, 2].map(|a| (p[a] - base[a] as f32).clamp(0.0, 1.0));
        let (mut w_sum, mut c_sum) = (0.0f32, [0.0f32; 3]);
        for corner in 0..8u32 {
            let o = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
            let wt: f32 = (0..3)
                .map(|a| if o[a] == 1 { t[a] } else { 1.0 - t[a] })
                .product();
            let at = g.index(base[0] + o[0], base[1] + o[1], base[2] + o[2]);
            w_sum += wt * self.density[at];
            for (c, v) in c_sum.iter_mut().zip(self.colour[at]) {
                *c += wt * v;
            }
        }
        if w_sum > 1e-8 {
            c_sum.map(|c| (c / w_sum).clamp(0.0, 1.0))
        } else {
            [0.5; 3]
        }
    }

    /// The `iso` surface as a triangle mesh in world coordinates.
    ///
    /// # Errors
    /// [`ExtractError::NoSurface`] when the density never reaches `iso`.
    pub fn surface(&self, iso: f32) -> Result<TriMesh, ExtractError> {
        let max = self.density.iter().copied().fold(0.0f32, f32::max);
        if max < iso {
            return Err(ExtractError::NoSurface { iso, max });
        }
        let sdf: Vec<f32> = self.density.iter().map(|d| iso - d).collect();
        let shape = RuntimeShape::<u32, 3>::new(self.grid.dims);
        debug_assert_eq!(shape.size() as usize, sdf.len());
        let mut buf = SurfaceNetsBuffer::default();
        let top = self.grid.dims.map(|d| d - 1);
        surface_nets(&sdf, &shape, [0; 3], top, &mut buf);
        let g = &self.grid;
        let mut mesh = TriMesh {
            positions: Vec::with_capacity(buf.positions.len()),
            normals: Vec::with_capacity(buf.positions.len()),
            colors: Vec::with_capacity(buf.positions.len()),
            indices: buf.indices,
        };
        for (p, n) in buf.positions.iter().zip(&buf.normals) {
            mesh.positions
                .push((g.origin + g.h * Vec3::from_array(*p)).to_array());
            mesh.normals
                .push(Vec3::from_array(*n).normalize_or(Vec3::Z).to_array());
            mesh.colors.push(self.colour_at(*p));
        }
        Ok(mesh)
    }
}
