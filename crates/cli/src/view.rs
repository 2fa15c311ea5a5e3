//! `splatdream view` and the `--viewer` option of `fit` and `generate`: the egui viewer on the
//! training device (crates/viewer).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::Args;
use gpu::GpuContext;
use live::live::Status;

#[derive(Args)]
pub struct ViewArgs {
    /// Scene file: INRIA PLY, compressed PLY, SPZ or `.splat`.
    ply: PathBuf,
    /// Up axis of the scene: x, y, z, -x, -y or -z.
    #[arg(long, default_value = "-y")]
    up: String,
    /// Background colour, r,g,b in [0,1].
    #[arg(long, default_value = "0,0,0")]
    background: String,
    /// Window width (logical points).
    #[arg(long, default_value_t = 1024.0)]
    width: f32,
    /// Window height (logical points).
    #[arg(long, default_value_t = 640.0)]
    height: f32,
    /// Save a screenshot of the window as PNG (plus PATH.json describing it) and close.
    #[arg(long, value_name = "PATH")]
    screenshot: Option<PathBuf>,
    /// Frames to draw before the screenshot.
    #[arg(long, default_value_t = 3)]
    screenshot_after_frames: u64,
}

/// `--viewer` options shared by `fit` and `generate`.
#[derive(Args, Clone, Debug, Default)]
pub struct ViewerFlags {
    /// Watch and steer the run in a window (training keeps its own thread; the window draws
    /// the latest snapshot). Closing the window does not stop training.
    #[arg(long)]
    pub viewer: bool,
    /// With --viewer: save a screenshot (PNG + PATH.json) once --viewer-screenshot-step steps
    /// are done, then close the window.
    #[arg(long, value_name = "PATH", requires = "viewer")]
    pub viewer_screenshot: Option<PathBuf>,
    /// Steps to wait for before the screenshot.
    #[arg(long, default_value_t = 1, requires = "viewer_screenshot")]
    pub viewer_screenshot_step: u64,
}

pub fn cmd_view(ctx: impl FnOnce() -> Result<GpuContext>, a: ViewArgs) -> Result<()> {
    ensure!(
        a.width >= 64.0 && a.height >= 64.0,
        "--width/--height: the window {}×{} is smaller than 64×64",
        a.width,
        a.height
    );
    if let Some(p) = &a.screenshot {
        experiments::check_out_file("--screenshot", p)?;
    }
    let data = splat::formats::read_scene(&a.ply)?;
    ensure!(
        !data.is_empty(),
        "{}: element `vertex` has 0 vertices; nothing to show",
        a.ply.display()
    );
    let up = crate::parse_axis(&a.up)?;
    let background = crate::parse_rgb(&a.background, "--background")?;
    let (centre, radius) = crate::framing(&data);
    let ctx = ctx()?;
    let splats = data.to_splats(&ctx.burn);
    viewer::run(
        &ctx,
        viewer::Source::Scene {
            splats,
            centre,
            radius,
        },
        viewer::ViewerOptions {
            title: format!("splatdream: {}", a.ply.display()),
            window: [a.width, a.height],
            background,
            up,
            screenshot: a.screenshot.map(|path| viewer::Screenshot {
                path,
                after_frames: a.screenshot_after_frames,
                min_step: 0,
            }),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Run `train` — a `fit` or `generate` job — with the viewer attached when `flags.viewer`:
/// training on a scoped thread, the window on this (the main) thread. When the window cannot
/// open, the run goes on without it. Returns the job's result after both ended.
///
/// # Errors
/// The job's error; a screenshot that could not be written.
pub fn with_viewer<T: Send>(
    ctx: &GpuContext,
    flags: &ViewerFlags,
    job: &str,
    background: [f32; 3],
    control: &live::control::Control,
    train: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    if !flags.viewer {
        return train();
    }
    if let Some(p) = &flags.viewer_screenshot {
        experiments::check_out_file("--viewer-screenshot", p)?;
    }
    let live = control.attach_live(job, Duration::from_millis(200));
    let opts = viewer::ViewerOptions {
        title: format!("splatdream {job}"),
        background,
        screenshot: flags
            .viewer_screenshot
            .clone()
            .map(|path| viewer::Screenshot {
                path,
                after_frames: 3,
                min_step: flags.viewer_screenshot_step,
            }),
        ..Default::default()
    };
    std::thread::scope(|s| {
        let live2 = live.clone();
        let worker = std::thread::Builder::new()
            .name(format!("{job}-training"))
            .spawn_scoped(s, move || {
                // Not before the window's surface is configured (see `wait_for_front_end`).
                live2.wait_for_front_end(Duration::from_secs(60));
                let r = train();
                live2.set_status(match &r {
                    Ok(_) => Status::Finished,
                    Err(e) if e.chain().any(live::stop::is_interrupted) => Status::Stopped,
                    Err(e) => Status::Failed(crate::message(e)),
                });
                r
            })
            .context("starting the training thread")?;
        let shown = viewer::run(ctx, viewer::Source::Live(live.clone()), opts);
        live.set_front_end_ready();
        if let Err(e) = &shown {
            eprintln!("viewer: {e}; training continues without it");
        }
        let result = worker
            .join()
            .map_err(|_| anyhow::anyhow!("the training thread panicked"))?;
        match (result, shown) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e @ viewer::ViewerError::Screenshot { .. })) => Err(e.into()),
            (Ok(v), Err(_)) => Ok(v),
            (Err(e), _) => Err(e),
        }
    })
}
