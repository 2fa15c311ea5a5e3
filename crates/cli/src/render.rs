//! `splatdream render`: a splat PLY to a PNG from one camera, or to frames (numbered PNGs, a
//! GIF or an H.264 MP4) along a turntable (`--orbit N`) or a camera path (`--path cams.json`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail, ensure};
use clap::Args;
use gpu::GpuContext;
use splat::{Camera, RasterizeMode, RenderOptions, render};
use train::output::{to_rgb8, write_gif, write_png};
use train::video::write_mp4;

use crate::{framing, parse_axis, parse_rgb};
use experiments::check_out_file;

/// `splatdream render`.
#[derive(Args)]
pub struct RenderArgs {
    /// Scene file: INRIA 3DGS PLY, compressed PLY, SPZ or `.splat`.
    #[arg(long)]
    ply: PathBuf,
    /// Camera JSON (OpenCV `viewmat` world→camera, `K`, `width`, `height`; see README).
    /// Without it, a camera looking at the scene from its bounds is used.
    #[arg(long)]
    camera: Option<PathBuf>,
    /// Camera path: a JSON array of cameras in --camera's form, one per frame.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Output by extension: `.png` (one frame; several frames as `<stem>_000.png`, …), `.gif`
    /// or `.mp4` (H.264).
    #[arg(long)]
    out: PathBuf,
    /// Render a turntable of this many frames around the scene centre.
    #[arg(long)]
    orbit: Option<usize>,
    /// Frames per second of a GIF or MP4.
    #[arg(long, default_value_t = 20)]
    fps: u32,
    /// Up axis of the scene for automatic and orbit cameras: x, y, z, -x, -y or -z.
    #[arg(long, default_value = "-y")]
    up: String,
    /// Orbit elevation in degrees.
    #[arg(long, default_value_t = 20.0)]
    elevation: f32,
    /// Image size for automatic and orbit cameras.
    #[arg(long, default_value_t = 512)]
    width: u32,
    /// Image height for automatic and orbit cameras.
    #[arg(long, default_value_t = 512)]
    height: u32,
    /// Background colour, r,g,b in [0,1].
    #[arg(long, default_value = "0,0,0")]
    background: String,
    /// SH degree to evaluate (default: the file's).
    #[arg(long)]
    sh_degree: Option<u32>,
    /// gsplat's antialiased mode.
    #[arg(long)]
    antialiased: bool,
}

/// The container `out`'s extension names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OutKind {
    Png,
    Gif,
    Mp4,
}

fn out_kind(out: &Path) -> Result<OutKind> {
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    Ok(match ext.as_deref() {
        Some("png") => OutKind::Png,
        Some("gif") => OutKind::Gif,
        Some("mp4") => OutKind::Mp4,
        _ => bail!(
            "--out {}: unknown image or video type (use .png, .gif or .mp4)",
            out.display()
        ),
    })
}

/// Run `splatdream render`.
///
/// # Errors
/// Bad options, an unreadable PLY or camera file (named), a device or write failure.
pub fn cmd_render(ctx: impl FnOnce() -> Result<GpuContext>, a: RenderArgs) -> Result<()> {
    ensure!(
        a.width > 0 && a.height > 0,
        "--width/--height: the image size {}×{} is empty",
        a.width,
        a.height
    );
    ensure!(a.fps > 0, "--fps: the frame rate must be at least 1");
    let kind = out_kind(&a.out)?;
    check_out_file("--out", &a.out)?;
    let chosen = [a.orbit.is_some(), a.camera.is_some(), a.path.is_some()];
    ensure!(
        chosen.iter().filter(|&&c| c).count() <= 1,
        "--orbit, --camera and --path are exclusive"
    );
    let data = splat::formats::read_scene(&a.ply)?;
    ensure!(
        !data.is_empty(),
        "{}: element `vertex` has 0 vertices; nothing to render",
        a.ply.display()
    );
    let up = parse_axis(&a.up)?;
    let opts = RenderOptions {
        background: parse_rgb(&a.background, "--background")?,
        sh_degree: a.sh_degree,
        mode: if a.antialiased {
            RasterizeMode::Antialiased
        } else {
            RasterizeMode::Classic
        },
        ..Default::default()
    };
    let cameras: Vec<Camera> = if let Some(path) = &a.camera {
        vec![Camera::load(path)?]
    } else if let Some(path) = &a.path {
        Camera::load_path(path)?
    } else {
        ensure!(a.orbit != Some(0), "--orbit needs at least one frame");
        // A turntable, or its first frame as the automatic camera.
        let (centre, radius) = framing(&data);
        let fov = 50f32.to_radians();
        let distance = radius / (0.5 * fov).tan() * 1.1;
        Camera::orbit(
            centre,
            up,
            distance,
            a.elevation.to_radians(),
            a.orbit.unwrap_or(1),
            fov,
            a.width,
            a.height,
        )
    };
    if kind != OutKind::Png
        && let Some(c) = cameras
            .iter()
            .find(|c| c.width != cameras[0].width || c.height != cameras[0].height)
    {
        bail!(
            "--path: every camera of a video needs one image size; {}×{} after {}×{}",
            c.width,
            c.height,
            cameras[0].width,
            cameras[0].height
        );
    }
    let ctx = ctx()?;
    let splats = data.to_splats(&ctx.burn);
    let mut frames = vec![];
    for cam in &cameras {
        let out = render(&splats, std::slice::from_ref(cam), &opts)?;
        let [_, h, w, _] = out.rgb.dims();
        frames.push(to_rgb8(out.rgb.reshape([h, w, 3]))?);
    }
    match kind {
        OutKind::Gif => write_gif(&a.out, &frames, (1000 / a.fps).max(10))?,
        OutKind::Mp4 => write_mp4(&a.out, &frames, a.fps)?,
        OutKind::Png if frames.len() == 1 => write_png(&a.out, &frames[0])?,
        OutKind::Png => {
            let stem = a.out.with_extension("");
            for (i, f) in frames.iter().enumerate() {
                write_png(&PathBuf::from(format!("{}_{i:03}.png", stem.display())), f)?;
            }
        }
    }
    eprintln!(
        "rendered {} splats, {} frame(s) → {}",
        data.len(),
        frames.len(),
        a.out.display()
    );
    Ok(())
}
