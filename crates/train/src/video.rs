//! H.264 MP4 videos of rendered frames (turntables, camera paths): frames are converted to
//! YUV 4:2:0 (BT.601, limited range, signalled in the stream's VUI), encoded with OpenH264
//! (the `openh264` crate, built from Cisco's source; no ffmpeg at run time) and muxed into an
//! MP4 (ISO BMFF) file with the `mp4` crate, written atomically.
//!
//! Every frame is kept (no rate-control frame skipping), quality-driven rate control with the
//! quantiser capped at [`MAX_QP`], an IDR frame every [`IDR_SECONDS`] so players can seek.

use std::path::{Path, PathBuf};

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, QpRange,
    RateControlMode, VuiConfig,
};
use openh264::formats::YUVSlices;

use serde::{Deserialize, Serialize};

use crate::output::{OutputError, write_gif};

/// The largest quantiser the encoder may use (0 = finest, 51 = coarsest). At 18 a 512×384
/// donut turntable decodes at ≈ 36 dB PSNR against its PNGs, near the 37 dB that 4:2:0 chroma
/// allows even losslessly (`crates/cli/tests/video.rs` requires ≥ 35 dB).
pub const MAX_QP: u8 = 18;

/// Seconds between IDR (key) frames.
pub const IDR_SECONDS: u32 = 2;

/// Frame rate of turntables: 20 frames per second (a GIF frame shows for 50 ms), so a
/// 60-frame turntable is one 3-second turn in either container.
pub const TURNTABLE_FPS: u32 = 20;

/// Container of the turntable that `fit` and `generate` write (`output.turntable`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurntableFormat {
    /// `turntable.gif`: 256-colour palette per frame, plays everywhere inline.
    #[default]
    Gif,
    /// `turntable.mp4`: H.264 ([`write_mp4`]), full colour, a fraction of the GIF's size.
    Mp4,
}

impl TurntableFormat {
    /// The file name in the run folder: `turntable.gif` or `turntable.mp4`.
    #[must_use]
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Gif => "turntable.gif",
            Self::Mp4 => "turntable.mp4",
        }
    }
}

/// Write `frames` as the run folder's turntable in `format` at [`TURNTABLE_FPS`]; returns its
/// path (`dir/`[`TurntableFormat::file_name`]).
///
/// # Errors
/// As [`write_gif`] or [`write_mp4`].
pub fn write_turntable(
    dir: &Path,
    frames: &[image::RgbImage],
    format: TurntableFormat,
) -> Result<PathBuf, OutputError> {
    let path = dir.join(format.file_name());
    match format {
        TurntableFormat::Gif => write_gif(&path, frames, 1000 / TURNTABLE_FPS)?,
        TurntableFormat::Mp4 => write_mp4(&path, frames, TURNTABLE_FPS)?,
    }
    Ok(path)
}

/// One encoded access unit: its NAL units (without start codes) and whether it is an IDR.
struct Sample {
    nals: Vec<Vec<u8>>,
    idr: bool,
}

/// NAL units of an Annex-B buffer (start codes `00 00 01` / `00 00 00 01` removed).
fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = vec![];
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = vec![];
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // A 4-byte start code's leading zero belongs to no NAL unit.
        while end > s && k + 1 < starts.len() && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

/// `frame` as tightly packed RGB8 of even width and height (H.264 4:2:0 needs both even): an
/// odd last column or row is repeated.
fn even_rgb(frame: &image::RgbImage) -> (Vec<u8>, usize, usize) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (we, he) = (w + w % 2, h + h % 2);
    if (we, he) == (w, h) {
        return (frame.as_raw().clone(), w, h);
    }
    let mut out = Vec::with_capacity(we * he * 3);
    for y in 0..he {
        let row = &frame.as_raw()[y.min(h - 1) * w * 3..(y.min(h - 1) + 1) * w * 3];
        out.extend_from_slice(row);
        if we > w {
            out.extend_from_slice(&row[(w - 1) * 3..]);
        }
    }
    (out, we, he)
}

/// Planar 4:2:0 YUV of an even-sized RGB8 image: BT.601 limited range (Y 16–235, Cb/Cr
/// 16–240), rounded to nearest, chroma from the mean of each 2×2 block. (OpenH264's own
/// converter truncates instead of rounding, which costs ≈ 1 dB PSNR on renders.)
fn yuv420(rgb: &[u8], w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let luma = |p: &[u8]| {
        let [r, g, b] = [p[0], p[1], p[2]].map(f32::from);
        16.0 + 219.0 / 255.0 * (0.299 * r + 0.587 * g + 0.114 * b)
    };
    let y: Vec<u8> = rgb.chunks_exact(3).map(|p| luma(p).round() as u8).collect();
    let (cw, ch) = (w / 2, h / 2);
    let (mut u, mut v) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
    for j in 0..ch {
        for i in 0..cw {
            let mut m = [0.0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let at = ((2 * j + dy) * w + 2 * i + dx) * 3;
                for c in 0..3 {
                    m[c] += f32::from(rgb[at + c]) / 4.0;
                }
            }
            let [r, g, b] = m;
            let s = 224.0 / 255.0;
            u.push((128.0 + s * (-0.168_736 * r - 0.331_264 * g + 0.5 * b)).round() as u8);
            v.push((128.0 + s * (0.5 * r - 0.418_688 * g - 0.081_312 * b)).round() as u8);
        }
    }
    (y, u, v)
}

/// Write `frames` as an H.264 MP4 at `fps` frames per second, atomically. All frames must
/// have one size; an odd width or height is padded by one repeated column or row.
///
/// # Errors
/// [`OutputError::Write`] naming `path` for no frames, frames of different sizes, a size over
/// 65,535 or `fps` = 0, or an encoder or muxer failure; [`OutputError::File`] for the write.
pub fn write_mp4(path: &Path, frames: &[image::RgbImage], fps: u32) -> Result<(), OutputError> {
    let fail = |message: String| OutputError::Write {
        path: path.to_path_buf(),
        message,
    };
    let first = frames
        .first()
        .ok_or_else(|| fail("no frames to encode".into()))?;
    if fps == 0 {
        return Err(fail("the frame rate is 0".into()));
    }
    let size = first.dimensions();
    if let Some((i, f)) = frames
        .iter()
        .enumerate()
        .find(|(_, f)| f.dimensions() != size)
    {
        return Err(fail(format!(
            "frame {i} is {}×{}, frame 0 is {}×{}",
            f.width(),
            f.height(),
            size.0,
            size.1
        )));
    }
    let (w, h) = (size.0 + size.0 % 2, size.1 + size.1 % 2);
    if w > u32::from(u16::MAX) || h > u32::from(u16::MAX) || w == 0 || h == 0 {
        return Err(fail(format!("frame size {w}×{h} is not encodable")));
    }
    let config = EncoderConfig::new()
        .skip_frames(false)
        .rate_control_mode(RateControlMode::Quality)
        .bitrate(BitRate::from_bps((w * h * fps).saturating_mul(2)))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .qp(QpRange::new(0, MAX_QP))
        .intra_frame_period(IntraFramePeriod::from_num_frames(fps * IDR_SECONDS))
        .vui(VuiConfig::bt601());
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| fail(format!("starting the H.264 encoder: {e}")))?;
    let (mut sps, mut pps) = (None, None);
    let mut samples = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let (rgb, fw, fh) = even_rgb(frame);
        let (y, u, v) = yuv420(&rgb, fw, fh);
        let yuv = YUVSlices::new((&y, &u, &v), (fw, fh), (fw, fw / 2, fw / 2));
        let bits = encoder
            .encode(&yuv)
            .map_err(|e| fail(format!("encoding frame {i}: {e}")))?;
        let idr = matches!(bits.frame_type(), FrameType::IDR);
        let mut nals = vec![];
        for nal in split_annex_b(&bits.to_vec()) {
            match nal[0] & 0x1f {
                7 => sps = Some(nal.to_vec()),
                8 => pps = Some(nal.to_vec()),
                _ => nals.push(nal.to_vec()),
            }
        }
        if nals.is_empty() {
            return Err(fail(format!(
                "the encoder returned no picture for frame {i}"
            )));
        }
        samples.push(Sample { nals, idr });
    }
    let (Some(sps), Some(pps)) = (sps, pps) else {
        return Err(fail("the encoder wrote no SPS/PPS".into()));
    };
    files::write_atomic(path, |out| {
        let io = std::io::Error::other;
        let brands = ["isom", "iso2", "avc1", "mp41"]
            .iter()
            .map(|b| b.parse().map_err(io))
            .collect::<Result<Vec<_>, _>>()?;
        let cfg = mp4::Mp4Config {
            major_brand: "isom".parse().map_err(io)?,
            minor_version: 512,
            compatible_brands: brands,
            timescale: 1000,
        };
        let mut mux = mp4::Mp4Writer::write_start(out, &cfg).map_err(io)?;
        mux.add_track(&mp4::TrackConfig {
            track_type: mp4::TrackType::Video,
            timescale: fps,
            language: "und".into(),
            media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                width: w as u16,
                height: h as u16,
                seq_param_set: sps.clone(),
                pic_param_set: pps.clone(),
            }),
        })
        .map_err(io)?;
        for (i, s) in samples.iter().enumerate() {
            // AVCC: each NAL unit prefixed by its 4-byte big-endian length.
            let mut bytes = Vec::with_capacity(s.nals.iter().map(|n| n.len() + 4).sum());
            for n in &s.nals {
                bytes.extend_from_slice(&(n.len() as u32).to_be_bytes());
                bytes.extend_from_slice(n);
            }
            mux.write_sample(
                1,
                &mp4::Mp4Sample {
                    start_time: i as u64,
                    duration: 1,
                    rendering_offset: 0,
                    is_sync: s.idr,
                    bytes: bytes.into(),
                },
            )
            .map_err(io)?;
        }
        mux.write_end().map_err(io)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_is_split_at_both_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 5, 0, 0, 1, 0x68, 6, 0, 0, 0, 1, 0x65, 7, 8,
        ];
        let nals = split_annex_b(&data);
        assert_eq!(nals, vec![&[0x67, 5][..], &[0x68, 6], &[0x65, 7, 8]]);
    }

    #[test]
    fn bt601_limited_range_extremes() {
        let rgb = [0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255];
        let (y, u, v) = yuv420(&rgb, 2, 2);
        assert_eq!(&y[..2], &[16, 235]);
        // Red and blue at full saturation reach Cr = 240 and Cb = 240 on their own.
        let (_, u1, v1) = yuv420(&[255, 0, 0].repeat(4), 2, 2);
        let (_, u2, _) = yuv420(&[0, 0, 255].repeat(4), 2, 2);
        assert_eq!((v1[0], u2[0]), (240, 240));
        assert!(u1[0] < 128 && u.len() == 1 && v.len() == 1);
    }

    #[test]
    fn odd_sizes_are_padded_by_repeating_the_edge() {
        let img = image::RgbImage::from_fn(3, 1, |x, _| image::Rgb([x as u8, 0, 0]));
        let (rgb, w, h) = even_rgb(&img);
        assert_eq!((w, h), (4, 2));
        let reds: Vec<u8> = rgb.chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, [0, 1, 2, 2, 0, 1, 2, 2]);
    }
}
