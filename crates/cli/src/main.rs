//! `splatdream`: the command-line tool. Argument parsing and I/O only; the work lives in the
//! library crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Device, Tensor};
use clap::{Args, Parser, Subcommand};
use glam::Vec3;
use gpu::{BackendChoice, GpuContext, GpuOptions};
use splat::{Camera, RasterizeMode, RenderOptions, SplatData, render};
use train::output::{to_rgb8, write_gif, write_png};

mod diffusion;
mod distill2d;
mod fit;
mod generate;
mod lmc;
mod view;

#[derive(Parser)]
#[command(
    name = "splatdream",
    version,
    about = "Gaussian splats on any GPU: rasterize, fit, distill"
)]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GpuArgs {
    /// Graphics API: auto, vulkan, metal, dx12 or gl.
    #[arg(long, global = true, default_value = "auto")]
    backend: String,
}

#[derive(Subcommand)]
enum Command {
    /// Print the adapter, backend, driver and the limits that matter.
    Info,
    /// Render a splat PLY from a camera JSON, or a turntable around it.
    Render(RenderArgs),
    /// Open a splat PLY in the interactive viewer (orbit/fly camera, RGB/depth/alpha/centres).
    View(view::ViewArgs),
    /// Fit splats to posed photographs (3DGS): NeRF-synthetic, instant-ngp or COLMAP.
    Fit(fit::FitArgs),
    /// Text to Gaussian splats by score distillation with a Stable Diffusion 2.x prior
    /// (SDS, DreamMapping's VDM + DCA, SDI, SDS-Bridge, LMC-SDS, LODS, VSD).
    Generate(generate::GenerateArgs),
    /// Score distillation on one image: text-to-2D, or editing from --init-image; writes the
    /// progression as a GIF.
    #[command(name = "distill2d")]
    Distill2d(distill2d::Distill2dArgs),
    /// Run several distillation methods on one prompt and seed: a side-by-side grid and a
    /// table of step time and peak device memory.
    Compare(distill2d::CompareArgs),
    /// Pre-train LMC-SDS's blur model b̂ψ for a diffusion model on a set of images (for
    /// `generate --method lmc`).
    LmcTrain(lmc::LmcTrainArgs),
    /// Text-to-image with a Stable Diffusion 2.x model (DDIM + CFG): the sanity check that
    /// weights load and the port is right.
    Sample(diffusion::SampleArgs),
    /// Benchmarks (median milliseconds of repeats).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Args)]
struct RenderArgs {
    /// INRIA 3DGS PLY file.
    #[arg(long)]
    ply: PathBuf,
    /// Camera JSON (OpenCV `viewmat` world→camera, `K`, `width`, `height`; see README).
    /// Without it, a camera looking at the scene from its bounds is used.
    #[arg(long)]
    camera: Option<PathBuf>,
    /// Output image (.png); with --orbit, a .gif turntable or a .png pattern (frames numbered).
    #[arg(long)]
    out: PathBuf,
    /// Render a turntable of this many frames around the scene centre.
    #[arg(long)]
    orbit: Option<usize>,
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

#[derive(Subcommand)]
enum BenchCommand {
    /// Rasterizer forward and backward on random splats.
    Raster(BenchRasterArgs),
    /// U-Net forward and forward + input gradient (full-size SD 2.1-base with random weights
    /// unless --model is given).
    Unet(diffusion::BenchUnetArgs),
}

#[derive(Args)]
struct BenchRasterArgs {
    /// Number of splats.
    #[arg(long, default_value_t = 100_000)]
    splats: usize,
    /// Image width.
    #[arg(long, default_value_t = 512)]
    width: u32,
    /// Image height.
    #[arg(long, default_value_t = 512)]
    height: u32,
    /// Cameras per call.
    #[arg(long, default_value_t = 1)]
    cameras: usize,
    /// SH degree of the random splats.
    #[arg(long, default_value_t = 3)]
    sh_degree: u32,
    /// Timed repeats (after one warm-up).
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPLATDREAM_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    install_stop_handler();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            if e.chain().any(train::stop::is_interrupted) {
                // The shell convention for a run ended by SIGINT.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// SIGINT/SIGTERM (Ctrl-C, `kill`): the first asks the running `fit`/`generate` loop to save a
/// checkpoint and stop (exit 130); a second exits at once (the last periodic checkpoint is
/// kept).
fn install_stop_handler() {
    let installed = ctrlc::set_handler(|| {
        if train::stop::requested() {
            eprintln!("\nstopping now (second signal)");
            std::process::exit(130);
        }
        eprintln!(
            "\nstop requested: saving a checkpoint after this step (signal again to quit now)"
        );
        train::stop::request();
    });
    if let Err(e) = installed {
        tracing::warn!("no SIGINT/SIGTERM handler: {e}");
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message already
/// holds (errors that print their source, such as `"{path}: {source}"`, would repeat it).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if out.contains(&c) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&c);
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    let backend: BackendChoice = cli.gpu.backend.parse().context("--backend")?;
    let ctx = || -> Result<GpuContext> {
        let ctx = GpuContext::new(&GpuOptions {
            backend,
            ..Default::default()
        })
        .with_context(|| format!("--backend {backend}"))?;
        Ok(ctx)
    };
    match cli.command {
        Command::Info => {
            println!("{}", ctx()?.report());
            Ok(())
        }
        Command::Render(args) => cmd_render(ctx, args),
        Command::View(args) => view::cmd_view(ctx, args),
        Command::Fit(args) => fit::cmd_fit(ctx, args),
        Command::Generate(args) => generate::cmd_generate(ctx, args),
        Command::Distill2d(args) => distill2d::cmd_distill2d(ctx, args),
        Command::Compare(args) => distill2d::cmd_compare(ctx, args),
        Command::LmcTrain(args) => lmc::cmd_lmc_train(ctx, args),
        Command::Sample(args) => diffusion::cmd_sample(ctx, args),
        Command::Bench(BenchCommand::Raster(args)) => cmd_bench_raster(&ctx()?, args),
        Command::Bench(BenchCommand::Unet(args)) => diffusion::cmd_bench_unet(&ctx()?, args),
    }
}

/// Check before any work that an output file can be created: its folder exists and is a
/// folder (a path inside a regular file, or in a missing folder, fails here naming `option`).
///
/// # Errors
/// The folder is missing or is not a folder.
pub(crate) fn check_out_file(option: &str, path: &std::path::Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        bail!(
            "{option} {}: cannot write there: {} {what}",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("{option} {}: is a folder, expected a file", path.display());
    }
    Ok(())
}

/// Check before any work that an output folder exists or can be created: the path itself, or
/// else its nearest existing ancestor, must be a folder (a path inside a regular file fails
/// here naming `option` and that file). Creates nothing.
///
/// # Errors
/// The path or an ancestor is a regular file.
pub(crate) fn check_out_dir(option: &str, path: &std::path::Path) -> Result<()> {
    for p in path.ancestors() {
        if p.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => bail!(
                "{option} {}: cannot create the folder: {} is not a folder",
                path.display(),
                p.display()
            ),
            Err(_) => continue,
        }
    }
    Ok(())
}

fn parse_rgb(s: &str, what: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what}: expected r,g,b numbers, got `{s}`"))?;
    match v.as_slice() {
        [r, g, b] if v.iter().all(|x| (0.0..=1.0).contains(x)) => Ok([*r, *g, *b]),
        _ => bail!("{what}: expected three numbers in [0, 1], got `{s}`"),
    }
}

fn parse_axis(s: &str) -> Result<Vec3> {
    Ok(match s {
        "x" | "+x" => Vec3::X,
        "y" | "+y" => Vec3::Y,
        "z" | "+z" => Vec3::Z,
        "-x" => -Vec3::X,
        "-y" => -Vec3::Y,
        "-z" => -Vec3::Z,
        _ => bail!("--up: expected one of x, y, z, -x, -y, -z, got `{s}`"),
    })
}

/// Robust scene centre and radius: median position and the 90th-percentile distance.
fn framing(data: &SplatData) -> (Vec3, f32) {
    let pts: Vec<Vec3> = data
        .means
        .chunks_exact(3)
        .map(|m| Vec3::new(m[0], m[1], m[2]))
        .filter(|p| p.is_finite())
        .collect();
    if pts.is_empty() {
        return (Vec3::ZERO, 1.0);
    }
    let median = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let c = Vec3::new(
        median(pts.iter().map(|p| p.x).collect()),
        median(pts.iter().map(|p| p.y).collect()),
        median(pts.iter().map(|p| p.z).collect()),
    );
    let mut d: Vec<f32> = pts.iter().map(|p| (*p - c).length()).collect();
    d.sort_by(f32::total_cmp);
    (c, d[(d.len() * 9 / 10).min(d.len() - 1)].max(1e-3))
}

fn cmd_render(ctx: impl FnOnce() -> Result<GpuContext>, a: RenderArgs) -> Result<()> {
    ensure!(
        a.width > 0 && a.height > 0,
        "--width/--height: the image size {}×{} is empty",
        a.width,
        a.height
    );
    check_out_file("--out", &a.out)?;
    let data = splat::ply::read_ply(&a.ply)?;
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
    let (centre, radius) = framing(&data);
    let fov = 50f32.to_radians();
    let distance = radius / (0.5 * fov).tan() * 1.1;
    let cameras: Vec<Camera> = match (a.orbit, &a.camera) {
        (Some(_), Some(_)) => bail!("--orbit and --camera are exclusive"),
        (Some(0), _) => bail!("--orbit needs at least one frame"),
        (None, Some(path)) => vec![Camera::load(path)?],
        // A turntable, or its first frame as the automatic camera.
        (frames, None) => Camera::orbit(
            centre,
            up,
            distance,
            a.elevation.to_radians(),
            frames.unwrap_or(1),
            fov,
            a.width,
            a.height,
        ),
    };
    let ctx = ctx()?;
    let splats = data.to_splats(&ctx.burn);
    let mut frames = vec![];
    for cam in &cameras {
        let out = render(&splats, std::slice::from_ref(cam), &opts)?;
        let [_, h, w, _] = out.rgb.dims();
        frames.push(to_rgb8(out.rgb.reshape([h, w, 3]))?);
    }
    let is_gif = a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gif"));
    if is_gif {
        write_gif(&a.out, &frames, 50)?;
    } else if frames.len() == 1 {
        write_png(&a.out, &frames[0])?;
    } else {
        let stem = a.out.with_extension("");
        for (i, f) in frames.iter().enumerate() {
            write_png(&PathBuf::from(format!("{}_{i:03}.png", stem.display())), f)?;
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

/// Deterministic random scene for benchmarks: splats in a unit cube, 4 units in front of
/// cameras on a small arc.
fn random_scene(n: usize, sh_degree: u32, seed: u64) -> SplatData {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32) / (1u64 << 24) as f32
    };
    let k = splat::scene::sh_coeffs(sh_degree);
    let mut d = SplatData {
        sh_degree,
        ..Default::default()
    };
    for _ in 0..n {
        d.means
            .extend([rnd() * 2.0 - 1.0, rnd() * 2.0 - 1.0, rnd() * 2.0 - 1.0]);
        d.quats
            .extend([rnd() - 0.5, rnd() - 0.5, rnd() - 0.5, rnd() - 0.5]);
        let base = -4.5 - rnd();
        d.log_scales
            .extend([base + rnd(), base + rnd(), base + rnd()]);
        d.opacity_logits.push(rnd() * 4.0 - 2.0);
        for c in 0..k * 3 {
            d.sh.push(if c < 3 {
                rnd() * 2.0 - 1.0
            } else {
                (rnd() - 0.5) * 0.2
            });
        }
    }
    d
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cmd_bench_raster(ctx: &GpuContext, a: BenchRasterArgs) -> Result<()> {
    if a.splats == 0 || a.repeats == 0 || a.cameras == 0 {
        bail!("--splats, --repeats and --cameras must be positive");
    }
    let data = random_scene(a.splats, a.sh_degree, 7);
    let cameras = Camera::orbit(
        Vec3::ZERO,
        -Vec3::Y,
        4.0,
        0.2,
        a.cameras,
        50f32.to_radians(),
        a.width,
        a.height,
    );
    let device: Device = ctx.burn.clone().autodiff();
    let opts = RenderOptions::default();
    // Wait for the queue: burn's `try_into_data` is lazy, so touch the bytes.
    let sync = |t: Tensor<1>| -> Result<()> {
        let data = t.try_into_data().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let v = data
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::ensure!(
            v.iter().all(|x| x.is_finite()),
            "non-finite benchmark result"
        );
        Ok(())
    };
    let mut fwd = vec![];
    let mut bwd = vec![];
    for rep in 0..=a.repeats {
        let s = data.to_splats(&device).require_grad();
        sync(s.opacity_logits.clone().inner().sum())?;
        let t0 = Instant::now();
        let out = render(&s, &cameras, &opts)?;
        let loss = out.rgb.clone().sum();
        sync(loss.clone().inner())?;
        let t1 = Instant::now();
        let grads = loss.backward();
        let g = s.means.grad(&grads).context("no gradient")?;
        let g2 = s.sh.grad(&grads).context("no gradient")?;
        sync(g.sum() + g2.sum())?;
        let t2 = Instant::now();
        if rep > 0 {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
        }
    }
    let info = ctx.adapter.get_info();
    let (f, b) = (median(fwd), median(bwd));
    if a.json {
        let j = serde_json::json!({
            "suite": "raster",
            "adapter": info.name,
            "backend": format!("{:?}", info.backend),
            "splats": a.splats,
            "width": a.width,
            "height": a.height,
            "cameras": a.cameras,
            "sh_degree": a.sh_degree,
            "repeats": a.repeats,
            "forward_ms": f,
            "backward_ms": b,
        });
        println!("{j}");
    } else {
        println!(
            "raster on {} ({:?}): {} splats, {}×{}, {} camera(s), SH {}",
            info.name, info.backend, a.splats, a.width, a.height, a.cameras, a.sh_degree
        );
        println!("forward  {f:9.3} ms (median of {})", a.repeats);
        println!("backward {b:9.3} ms (median of {})", a.repeats);
    }
    Ok(())
}
