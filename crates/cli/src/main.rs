//! `splatdream`: the command-line tool. Argument parsing and I/O only; the work lives in the
//! library crates.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use glam::Vec3;
use gpu::{BackendChoice, GpuContext, GpuOptions};
use splat::SplatData;

mod convert;
mod diffusion;
mod distill2d;
mod evaluate;
mod evaluate_prior;
mod export;
mod fit;
mod generate;
mod mesh;
mod render;
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
    /// Never download: a `--model org/name` missing from the Hugging Face cache is an error
    /// (as with `HF_HUB_OFFLINE=1`). Without it such a model is downloaded into the cache.
    #[arg(long, global = true)]
    offline: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print the adapter, backend, driver and the limits that matter.
    Info,
    /// Render a splat PLY from a camera JSON, a camera path or a turntable: PNG, GIF or MP4.
    Render(render::RenderArgs),
    /// Open a splat PLY in the interactive viewer (orbit/fly camera, RGB/depth/alpha/centres).
    View(view::ViewArgs),
    /// Fit splats to posed photographs (3DGS): NeRF-synthetic, instant-ngp or COLMAP.
    Fit(fit::FitArgs),
    /// Text to Gaussian splats by score distillation with a Stable Diffusion 2.x prior
    /// (SDS, DreamMapping's VDM + DCA, SDI, SDS-Bridge, LMC-SDS, LODS, VSD).
    Generate(generate::GenerateArgs),
    /// Score a run's splats against the toy-world object its prompt names: silhouette IoU,
    /// masked PSNR, colour error and the judge's R-precision at the ground-truth cameras.
    Evaluate(evaluate::EvaluateArgs),
    /// The toy-world prior's own quality: a sample of every category × colour, labelled by the
    /// judge; the accuracy, a grid and a JSON report.
    EvaluatePrior(evaluate_prior::EvaluatePriorArgs),
    /// Score distillation on one image: text-to-2D, or editing from --init-image; writes the
    /// progression as a GIF.
    #[command(name = "distill2d")]
    Distill2d(distill2d::Distill2dArgs),
    /// Run several distillation methods on one prompt and seed: a side-by-side grid and a
    /// table of step time and peak device memory.
    Compare(experiments::compare::CompareArgs),
    /// Pre-train LMC-SDS's blur model b̂ψ for a diffusion model on a set of images (for
    /// `generate --method lmc`).
    LmcTrain(experiments::lmc_train::LmcTrainArgs),
    /// Write a `fit` or `generate` checkpoint (or a run folder's latest) as a splat file (PLY,
    /// compressed PLY or SPZ), on the host (no GPU).
    Export(export::ExportArgs),
    /// Convert a scene file between formats: PLY, compressed PLY, SPZ, `.splat` (read only).
    Convert(convert::ConvertArgs),
    /// A coloured triangle mesh (GLB or OBJ) from a splat scene: density grid → surface nets
    /// → splat colours, optional decimation. No GPU.
    Mesh(mesh::MeshArgs),
    /// Text-to-image with a Stable Diffusion 2.x model (DDIM + CFG): the sanity check that
    /// weights load and the port is right.
    Sample(diffusion::SampleArgs),
    /// A static HTML page over a folder of runs (a `generate --prompts` suite or a `compare`
    /// table): a card per run grouped by prompt, and a sortable table. Needs no GPU.
    Gallery(experiments::gallery::GalleryArgs),
    /// Benchmark suites (raster, sort, unet, vae, distill, fit, all) as median milliseconds of
    /// repeats, one JSON document with --json/--out; `--compare A B` compares two result files.
    Bench(bench::BenchArgs),
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
    let control = live::control::Control::new();
    // Commands whose loops save their state and stop on request; the others have nothing to
    // save and stop at the first signal.
    let graceful = matches!(
        cli.command,
        Command::Fit(_) | Command::Generate(_) | Command::Compare(_) | Command::LmcTrain(_)
    );
    install_stop_handler(control.clone(), graceful);
    match run(cli, &control) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            if e.chain().any(live::stop::is_interrupted) {
                // The shell convention for a run ended by SIGINT.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// SIGINT/SIGTERM (Ctrl-C, `kill`): in a `graceful` command (`fit`, `generate`, `compare`,
/// `lmc-train`) the first asks the running loop to save a checkpoint (or its output) and stop
/// (exit 130) and a second exits at once (the last periodic checkpoint is kept); any other
/// command exits at once (exit 130; its outputs are written atomically, so none is left half
/// written).
fn install_stop_handler(control: live::control::Control, graceful: bool) {
    let installed = ctrlc::set_handler(move || {
        if !graceful {
            eprintln!("\nstopped by a signal");
            std::process::exit(130);
        }
        if control.stop_requested() {
            eprintln!("\nstopping now (second signal)");
            std::process::exit(130);
        }
        eprintln!(
            "\nstop requested: saving a checkpoint after this step (signal again to quit now)"
        );
        control.request_stop();
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

fn run(cli: Cli, control: &live::control::Control) -> Result<()> {
    let backend: BackendChoice = cli.gpu.backend.parse().context("--backend")?;
    // A `--model org/name` missing from the Hugging Face cache is downloaded where each
    // command first needs the model (after its own inputs are checked), unless --offline.
    let net = if cli.gpu.offline {
        sd::download::Network::Offline
    } else {
        sd::download::Network::Allowed
    };
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
        Command::Render(args) => render::cmd_render(ctx, args),
        Command::View(args) => view::cmd_view(ctx, args),
        Command::Fit(args) => fit::cmd_fit(ctx, args, control),
        Command::Generate(args) => generate::cmd_generate(ctx, args, control, net),
        Command::Evaluate(args) => evaluate::cmd_evaluate(ctx, args),
        Command::EvaluatePrior(args) => evaluate_prior::cmd_evaluate_prior(ctx, args),
        Command::Distill2d(args) => distill2d::cmd_distill2d(ctx, args, net),
        Command::Compare(args) => experiments::compare::cmd_compare(ctx, args, control, net),
        Command::LmcTrain(args) => experiments::lmc_train::cmd_lmc_train(ctx, args, control, net),
        Command::Sample(args) => diffusion::cmd_sample(ctx, args, net),
        Command::Bench(args) => bench::cmd_bench(ctx, args),
        Command::Gallery(args) => experiments::gallery::cmd_gallery(args),
        Command::Export(args) => export::cmd_export(args),
        Command::Convert(args) => convert::cmd_convert(args),
        Command::Mesh(args) => mesh::cmd_mesh(args),
    }
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
