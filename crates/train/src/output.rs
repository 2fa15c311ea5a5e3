//! Writing run outputs: atomic file writes (temp file in the same folder, then rename, so a
//! crash never leaves a half-written file in place of a good one), rendered tensors to 8-bit
//! images, PNG and GIF files.

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;

/// Errors writing an output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The destination folder does not exist.
    #[error("{path}: output folder {dir} does not exist")]
    NoFolder {
        /// Destination file.
        path: PathBuf,
        /// Its folder.
        dir: PathBuf,
    },
    /// Writing or renaming failed.
    #[error("writing {path}: {message}")]
    Write {
        /// Destination file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// Reading the image back from the device failed.
    #[error("reading an image back from the GPU: {0}")]
    Device(String),
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

/// Write `path` atomically: `write` fills a temporary file next to it, which is then renamed
/// over `path`.
///
/// # Errors
/// [`OutputError::NoFolder`] when the folder is missing, [`OutputError::Write`] with the cause.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), OutputError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(OutputError::NoFolder {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = dir.join(format!(
        ".{}.{}.{ext}",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let fail = |message: String| OutputError::Write {
        path: path.to_path_buf(),
        message,
    };
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
}

/// A `[H, W, 3]` image tensor (values in [0, 1], clamped) as 8-bit RGB.
///
/// # Errors
/// [`OutputError::Device`] if the read-back fails.
pub fn to_rgb8(rgb: Tensor<3>) -> Result<image::RgbImage, OutputError> {
    let [h, w, _] = rgb.dims();
    let v = crate::params::host(&rgb).map_err(OutputError::Device)?;
    let bytes: Vec<u8> = v
        .iter()
        .map(|x| (x.clamp(0.0, 1.0) * 255.0 + 0.5) as u8)
        .collect();
    image::RgbImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| OutputError::Device("image size mismatch".into()))
}

/// Write a PNG atomically.
///
/// # Errors
/// See [`write_atomic`].
pub fn write_png(path: &Path, img: &image::RgbImage) -> Result<(), OutputError> {
    write_atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| e.to_string())
    })
}

/// Write an endlessly looping GIF of `frames` at `delay_ms` per frame, atomically.
///
/// # Errors
/// See [`write_atomic`].
pub fn write_gif(
    path: &Path,
    frames: &[image::RgbImage],
    delay_ms: u32,
) -> Result<(), OutputError> {
    write_atomic(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| e.to_string())?;
        let mut enc = image::codecs::gif::GifEncoder::new_with_speed(file, 10);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        for f in frames {
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            enc.encode_frame(image::Frame::from_parts(
                rgba,
                0,
                0,
                image::Delay::from_numer_denom_ms(delay_ms, 1),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Write text atomically.
///
/// # Errors
/// See [`write_atomic`].
pub fn write_text(path: &Path, text: &str) -> Result<(), OutputError> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, text).map_err(|e| e.to_string())
    })
}
