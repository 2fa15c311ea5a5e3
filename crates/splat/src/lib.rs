//! Gaussian splat scenes, cameras and the differentiable WGSL rasterizer.
//!
//! - [`scene`]: [`SplatData`] (host) and [`Splats`] (burn tensors).
//! - [`camera`]: OpenCV pinhole cameras with world→camera `viewmat`; JSON form; orbits.
//! - [`render()`]: the rasterizer as a differentiable burn function (forward and backward WGSL
//!   kernels in `shaders/`, backward registered with burn autodiff), following gsplat.
//! - [`raster`]: the kernel pipeline (projection, depth sort, tiles, compositing); [`sort`]: its
//!   GPU radix sort and exclusive scan, also on their own ([`sort::sort_pairs`]).
//! - [`ply`]: INRIA 3DGS PLY read/write; [`formats`]: every scene format (compressed PLY, SPZ,
//!   `.splat`) behind one `read_scene` / `write_scene`; [`transform`]: rotations of a whole scene
//!   (means, quats, SH) and the up-axis conventions of exported files.
//!
//! Knows nothing of diffusion.

pub mod camera;
pub mod extract;
pub mod formats;
pub mod framing;
pub mod kernels;
pub mod ply;
pub mod raster;
pub mod render;
pub mod scene;
pub mod sort;
pub mod transform;

pub use camera::Camera;
pub use render::{RasterizeMode, RenderError, RenderOptions, RenderOutput, render};
pub use scene::{SplatData, Splats};
