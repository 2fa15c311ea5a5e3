//! Writing run outputs: atomic file writes (temp file in the same folder, then rename, so a
//! crash never leaves a half-written file in place of a good one), rendered tensors to 8-bit
//! images, PNG and GIF files.

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;

/// Errors writing an output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The atomic write failed (missing folder, full disk, file-size limit, rename); names
    /// the file, the stage and the cause.
    #[error(transparent)]
    File(#[from] files::WriteError),
    /// Preparing the content failed (serialising a checkpoint).
    #[error("writing {path}: {message}")]
    Write {
        /// Destination file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// Reading the image back from the device failed.
    #[error(transparent)]
    Device(#[from] gpu::ReadError),
    /// Rendering a frame failed.
    #[error("rendering: {0}")]
    Render(String),
}

/// Render each camera on its own to an 8-bit image (turntables, view grids), on whatever
/// device `splats` lives on.
///
/// # Errors
/// [`OutputError::Render`] or [`OutputError::Device`].
pub fn render_frames(
    splats: &splat::Splats,
    cams: &[splat::Camera],
    opts: &splat::RenderOptions,
) -> Result<Vec<image::RgbImage>, OutputError> {
    let mut frames = Vec::with_capacity(cams.len());
    for cam in cams {
        let out = splat::render(splats, std::slice::from_ref(cam), opts)
            .map_err(|e| OutputError::Render(e.to_string()))?;
        let [_, h, w, _] = out.rgb.dims();
        frames.push(to_rgb8(out.rgb.reshape([h, w, 3]))?);
    }
    Ok(frames)
}

/// Tile equally sized images into a grid of `columns` columns (row-major), black where a row
/// is short. `None` for no images.
pub fn grid(images: &[image::RgbImage], columns: usize) -> Option<image::RgbImage> {
    let first = images.first()?;
    let (w, h) = first.dimensions();
    let cols = columns.clamp(1, images.len());
    let rows = images.len().div_ceil(cols);
    let mut out = image::RgbImage::new(w * cols as u32, h * rows as u32);
    for (i, img) in images.iter().enumerate() {
        let (x, y) = ((i % cols) as u32 * w, (i / cols) as u32 * h);
        image::imageops::replace(&mut out, img, x as i64, y as i64);
    }
    Some(out)
}

/// A `[H, W, 3]` image tensor (values in [0, 1], clamped) as 8-bit RGB.
///
/// # Errors
/// [`OutputError::Device`] if the read-back fails; [`OutputError::Render`] if the image does
/// not have 3 channels.
pub fn to_rgb8(rgb: Tensor<3>) -> Result<image::RgbImage, OutputError> {
    let [h, w, c] = rgb.dims();
    let v = optim::params::host(&rgb)?;
    let bytes: Vec<u8> = v
        .iter()
        .map(|x| (x.clamp(0.0, 1.0) * 255.0 + 0.5) as u8)
        .collect();
    image::RgbImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| OutputError::Render(format!("a {h}×{w}×{c} image is not RGB")))
}

/// The file name of the PLY snapshot at step `step` (`output.ply_every`):
/// `point_cloud_<step>.ply`.
pub fn snapshot_name(step: u64) -> String {
    format!("point_cloud_{step}.ply")
}

/// Write a PNG atomically ([`files::write_atomic`]).
///
/// # Errors
/// [`OutputError::File`] naming the file.
pub fn write_png(path: &Path, img: &image::RgbImage) -> Result<(), OutputError> {
    files::write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}

/// Write an endlessly looping GIF of `frames` at `delay_ms` per frame, atomically.
///
/// # Errors
/// [`OutputError::File`] naming the file.
pub fn write_gif(
    path: &Path,
    frames: &[image::RgbImage],
    delay_ms: u32,
) -> Result<(), OutputError> {
    files::write_atomic(path, |w| {
        let mut enc = image::codecs::gif::GifEncoder::new_with_speed(w, 10);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .map_err(std::io::Error::other)?;
        for f in frames {
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            enc.encode_frame(image::Frame::from_parts(
                rgba,
                0,
                0,
                image::Delay::from_numer_denom_ms(delay_ms, 1),
            ))
            .map_err(std::io::Error::other)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// A compressed scene format written beside `point_cloud.ply` (`output.formats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExtraFormat {
    /// `point_cloud.spz`: Niantic SPZ version 4.
    #[serde(rename = "spz")]
    Spz,
    /// `point_cloud.compressed.ply`: PlayCanvas compressed PLY.
    #[serde(rename = "compressed.ply")]
    CompressedPly,
}

impl ExtraFormat {
    /// The scene format it names.
    #[must_use]
    pub fn scene_format(self) -> splat::formats::SceneFormat {
        match self {
            Self::Spz => splat::formats::SceneFormat::Spz(splat::formats::SpzVersion::V4),
            Self::CompressedPly => splat::formats::SceneFormat::CompressedPly,
        }
    }
}

/// Write `data` as `dir/point_cloud<suffix>` in each of `formats`, atomically; returns the
/// paths written.
///
/// # Errors
/// [`splat::formats::SceneError`] naming the file.
pub fn write_extra_formats(
    dir: &Path,
    data: &splat::SplatData,
    formats: &[ExtraFormat],
) -> Result<Vec<PathBuf>, splat::formats::SceneError> {
    let mut out = Vec::with_capacity(formats.len());
    for f in formats {
        let format = f.scene_format();
        let path = dir.join(format!("point_cloud{}", format.suffix()));
        splat::formats::write_scene_as(&path, data, format)?;
        out.push(path);
    }
    Ok(out)
}

/// The final scene files of a run in `dir`: `point_cloud.ply`, then `point_cloud.spz` /
/// `point_cloud.compressed.ply` for `formats`, then `mesh.glb` when `mesh`. `up`: `None` for a
/// scene in its dataset's own frame (`fit`), written as it is; `Some(axis)` for a z-up scene
/// (`generate`'s world): the splat files are turned into that up convention
/// ([`splat::ply::write_ply_up`], which records it so our readers turn it back) and the mesh
/// into glTF's y-up. Returns the paths written.
///
/// # Errors
/// The first write that fails, naming its file.
pub fn write_scene_outputs<E>(
    dir: &Path,
    data: &splat::SplatData,
    formats: &[ExtraFormat],
    mesh: bool,
    up: Option<splat::transform::UpAxis>,
) -> Result<Vec<PathBuf>, E>
where
    E: From<splat::ply::PlyError>
        + From<splat::formats::SceneError>
        + From<splat::extract::write::MeshWriteError>,
{
    let ply = dir.join("point_cloud.ply");
    let mut out = vec![ply.clone()];
    match up {
        None => {
            splat::ply::write_ply(&ply, data)?;
            out.extend(write_extra_formats(dir, data, formats)?);
        }
        Some(axis) => {
            splat::ply::write_ply_up(&ply, data, axis)?;
            for f in formats {
                let format = f.scene_format();
                let path = dir.join(format!("point_cloud{}", format.suffix()));
                splat::formats::write_scene_up(&path, data, format, axis)?;
                out.push(path);
            }
        }
    }
    if mesh {
        out.extend(write_mesh_output(dir, data, up.is_some())?);
    }
    Ok(out)
}

/// Write `dir/mesh.glb`, the scene's mesh with [`splat::extract::MeshOptions`]'s defaults
/// (`output.mesh = true`); a z-up scene (`generate`'s world) is turned to glTF's y-up. When
/// the scene has no surface to extract (no opaque splat, no density above the iso level) a
/// warning is printed and `None` returned: the run's other outputs stand.
///
/// # Errors
/// The write failed (names the file).
pub fn write_mesh_output(
    dir: &Path,
    data: &splat::SplatData,
    z_up: bool,
) -> Result<Option<PathBuf>, splat::extract::write::MeshWriteError> {
    let opts = splat::extract::MeshOptions::default();
    let mut mesh = match splat::extract::extract_mesh(data, &opts) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("no mesh.glb: {e}");
            eprintln!("warning: no mesh.glb: {e}");
            return Ok(None);
        }
    };
    if z_up {
        mesh.z_up_to_y_up();
    }
    let path = dir.join("mesh.glb");
    splat::extract::write::write_mesh(&path, &mesh)?;
    Ok(Some(path))
}

/// Write text atomically.
///
/// # Errors
/// [`OutputError::File`] naming the file.
pub fn write_text(path: &Path, text: &str) -> Result<(), OutputError> {
    files::write_bytes(path, text.as_bytes())?;
    Ok(())
}
