//! H.264 MP4 output (issue 28, item 2): `render --orbit N --out x.mp4`, `render --path
//! cams.json --out x.mp4` and `fit`'s `output.turntable = "mp4"`, each read back by FFmpeg's
//! ffprobe (codec, decoded frame count, size, frame rate) and decoded by ffmpeg, frame by frame,
//! against the PNG renders of the same cameras (PSNR ≥ 35 dB). The frames are ≥ 320 pixels
//! high: H.264's 4:2:0 chroma costs the donut's saturated sprinkles PSNR at small sizes even
//! when lossless (x264 at QP 0: 30.8 dB at 96×64, 34.1 dB at 256², 37.0 dB at 512²).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Probe, bin, ffprobe, root, run, short_fit, text, tmp};

/// PSNR in dB of two 8-bit RGB images of one size.
fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.as_raw().len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

/// Decode every frame of `video` with ffmpeg into `dir/<video stem>/dec_000.png`, … and load
/// them.
fn decode(video: &Path, dir: &Path) -> Vec<image::RgbImage> {
    let dir = dir.join(video.file_stem().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-start_number", "0"])
        .arg(dir.join("dec_%03d.png"))
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg (.ci/run installs it) did not start: {e}"));
    assert!(out.status.success(), "ffmpeg: {}", text(&out));
    (0..)
        .map(|i| dir.join(format!("dec_{i:03}.png")))
        .take_while(|p| p.is_file())
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect()
}

/// Each decoded frame of `video` against `dir/<stem>_NNN.png`; returns the lowest PSNR.
fn worst_psnr(video: &Path, dir: &Path, stem: &str, n: usize) -> f64 {
    let decoded = decode(video, dir);
    assert_eq!(decoded.len(), n, "ffmpeg decoded {} frames", decoded.len());
    let mut worst = f64::INFINITY;
    for (i, d) in decoded.iter().enumerate() {
        let png = image::open(dir.join(format!("{stem}_{i:03}.png")))
            .unwrap()
            .to_rgb8();
        let p = psnr(d, &png);
        eprintln!("{stem} frame {i}: {p:.1} dB");
        worst = worst.min(p);
    }
    worst
}

#[test]
fn render_writes_h264_mp4s_that_ffmpeg_reads_back() {
    let dir = tmp("video", "render");
    let donut = root().join("assets/donut.ply");
    let size = ["--width", "768", "--height", "576"];

    // A turntable: the same 8 cameras as MP4 and as numbered PNGs.
    let mp4 = dir.join("orbit.mp4");
    for out in [&mp4, &dir.join("orbit.png")] {
        run(bin()
            .arg("render")
            .arg("--ply")
            .arg(&donut)
            .args(["--orbit", "8", "--up", "z", "--background", "0.2,0.3,0.4"])
            .args(size)
            .arg("--out")
            .arg(out));
    }
    let probe = ffprobe(&mp4);
    assert_eq!(
        probe,
        Probe {
            codec: "h264".into(),
            frames: 8,
            size: (768, 576),
            rate: "20/1".into()
        }
    );
    let worst = worst_psnr(&mp4, &dir, "orbit", 8);
    assert!(worst >= 35.0, "orbit: worst frame {worst:.1} dB < 35 dB");

    // A camera path of three cameras at 10 frames per second.
    let data = splat::ply::read_ply(&donut).unwrap();
    let n = data.len() as f32;
    let centre = data.means.chunks_exact(3).fold(glam::Vec3::ZERO, |a, m| {
        a + glam::Vec3::new(m[0], m[1], m[2]) / n
    });
    let (lo, hi) = data.bounds();
    let reach = 1.2 * (hi - lo).length();
    let cams: Vec<splat::Camera> = [0.0f32, 0.7, 1.4]
        .iter()
        .map(|&az| {
            let eye = centre + reach * glam::Vec3::new(az.cos(), az.sin(), 0.5);
            splat::Camera::look_at(eye, centre, glam::Vec3::Z, 0.8, 768, 576)
        })
        .collect();
    let path = dir.join("cams.json");
    std::fs::write(&path, serde_json::to_string(&cams).unwrap()).unwrap();
    let walk = dir.join("walk.mp4");
    for out in [&walk, &dir.join("walk.png")] {
        run(bin()
            .arg("render")
            .arg("--ply")
            .arg(&donut)
            .arg("--path")
            .arg(&path)
            .args(["--fps", "10", "--out"])
            .arg(out));
    }
    let probe = ffprobe(&walk);
    assert_eq!((probe.frames, probe.size), (3, (768, 576)));
    assert_eq!(probe.rate, "10/1");
    let worst = worst_psnr(&walk, &dir, "walk", 3);
    assert!(worst >= 35.0, "path: worst frame {worst:.1} dB < 35 dB");

    // Cameras of different sizes cannot share a video; nothing is written.
    let mut mixed = cams.clone();
    mixed[1].width = 64;
    std::fs::write(&path, serde_json::to_string(&mixed).unwrap()).unwrap();
    let bad = dir.join("mixed.mp4");
    let o = bin()
        .arg("render")
        .arg("--ply")
        .arg(&donut)
        .arg("--path")
        .arg(&path)
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("--path") && t.contains("64×576"),
        "{t}"
    );
    assert!(!bad.exists());
}

#[test]
fn fit_writes_an_mp4_turntable() {
    let dir = tmp("video", "fit");
    let run_dir = dir.join("run");
    run(short_fit(&run_dir, 2, 600)
        .args(["--set", "output.turntable_frames=5"])
        .args(["--set", "output.turntable_size=64"])
        .args(["--set", "output.turntable=\"mp4\""]));
    assert!(!run_dir.join("turntable.gif").exists());
    let probe = ffprobe(&run_dir.join("turntable.mp4"));
    assert_eq!((probe.codec.as_str(), probe.frames), ("h264", 5));
    assert_eq!(probe.rate, "20/1");
    assert!(probe.size.0.max(probe.size.1) == 64, "{probe:?}");
}
