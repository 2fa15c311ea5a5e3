//! `splatdream fit`: settings from defaults, a TOML file and command-line overrides, the
//! dataset, a progress bar, and the summary.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use datasets::{LoadOptions, load};
use experiments::progress::FitProgress;
use gpu::GpuContext;
use train::fit::{FitConfig, fit};
use train::settings::{apply_overrides, read_settings, resume_dir};

#[derive(Args)]
pub struct FitArgs {
    /// Dataset folder: NeRF-synthetic (transforms_train.json), instant-ngp (transforms.json) or
    /// COLMAP (sparse/0 + images/). Default: the shipped Spot-the-cow views.
    dataset: Option<PathBuf>,
    /// TOML settings (see configs/fit.toml); command-line options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder for the outputs (with --resume: defaults to the resumed run's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a run: its folder (latest checkpoint) or a checkpoint file. Its config.toml is
    /// the base the other options override (e.g. --steps to train longer).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Optimizer steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Integer image downscale factor.
    #[arg(long)]
    downscale: Option<u32>,
    /// Densification strategy: default (3DGS) or mcmc.
    #[arg(long)]
    strategy: Option<String>,
    /// MCMC splat cap (with --strategy mcmc).
    #[arg(long)]
    cap_max: Option<usize>,
    /// Evaluate every N steps (0 = only at the end).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Highest SH degree (0–3).
    #[arg(long)]
    sh_degree: Option<u32>,
    /// Background: white, black, random, or r,g,b.
    #[arg(long)]
    background: Option<String>,
    /// Initialisation: auto, points, random, or a .ply file.
    #[arg(long)]
    init: Option<String>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Views per step.
    #[arg(long)]
    batch: Option<usize>,
    /// Any setting as dotted.key=value (TOML value syntax), e.g. --set lr.opacity_logits=0.03;
    /// repeatable, applied last.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the resolved settings as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    viewer: crate::view::ViewerFlags,
}

/// The settings: defaults (or the resumed run's config.toml) ← `--config` file ← options ←
/// `--set`.
pub fn resolve(a: &FitArgs) -> Result<FitConfig> {
    let mut table: toml::Table = match (&a.config, &a.resume) {
        (Some(path), _) => read_settings::<FitConfig>(path)?,
        (None, Some(r)) => read_settings::<FitConfig>(&resume_dir(r).join("config.toml"))
            .with_context(|| format!("--resume {}", r.display()))?,
        (None, None) => toml::Table::try_from(FitConfig::default())?,
    };
    let mut sets: Vec<(String, toml::Value)> = vec![];
    let mut put = |k: &str, v: toml::Value| sets.push((k.to_string(), v));
    let text = |v: &str| toml::Value::String(v.to_string());
    if let Some(d) = &a.dataset {
        put("data.path", text(&d.display().to_string()));
    }
    match (&a.out, &a.resume) {
        (Some(o), _) => put("output.dir", text(&o.display().to_string())),
        (None, Some(r)) => put("output.dir", text(&resume_dir(r).display().to_string())),
        _ => {}
    }
    let ints = [
        ("train.steps", a.steps),
        ("data.downscale", a.downscale.map(u64::from)),
        ("eval.every", a.eval_every),
        ("train.sh_degree", a.sh_degree.map(u64::from)),
        ("train.seed", a.seed),
        ("train.batch", a.batch.map(|v| v as u64)),
        ("densify.cap_max", a.cap_max.map(|v| v as u64)),
    ];
    for (key, v) in ints {
        if let Some(v) = v {
            put(key, toml::Value::Integer(v as i64));
        }
    }
    if let Some(bg) = &a.background {
        let v = match bg.as_str() {
            "white" | "black" | "random" => text(bg),
            rgb => toml::Value::Array(
                crate::parse_rgb(rgb, "--background (white, black, random or r,g,b)")?
                    .map(|c| toml::Value::Float(c as f64))
                    .to_vec(),
            ),
        };
        put("data.background", v);
    }
    if let Some(init) = &a.init {
        match init.as_str() {
            "auto" | "points" | "random" => put("init.kind", text(init)),
            path => {
                put("init.kind", text("ply"));
                put("init.ply", text(path));
            }
        }
    }
    if let Some(s) = &a.strategy {
        let current = table
            .get("densify")
            .and_then(|d| d.get("strategy"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        if current != s {
            // Another strategy: start from its defaults.
            table.insert(
                "densify".into(),
                toml::Value::Table(toml::Table::from_iter([(
                    "strategy".to_string(),
                    toml::Value::String(s.clone()),
                )])),
            );
        }
    }
    let cfg: FitConfig = apply_overrides(table, sets, &a.set)?;
    train::fit::validate(&cfg)?;
    Ok(cfg)
}

pub fn cmd_fit(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: FitArgs,
    control: &live::control::Control,
) -> Result<()> {
    let cfg = resolve(&a)?;
    if a.print_config {
        print!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    experiments::check_out_dir("--out", &cfg.output.dir)?;
    let t0 = Instant::now();
    let dataset = load(
        &cfg.data.path,
        &LoadOptions {
            downscale: cfg.data.downscale,
            eval_every: cfg.data.eval_every,
            max_views: (cfg.data.max_views > 0).then_some(cfg.data.max_views),
        },
    )?;
    eprintln!(
        "loaded {} ({} train, {} eval views) in {:.1} s",
        cfg.data.path.display(),
        dataset.train.len(),
        dataset.eval.len(),
        t0.elapsed().as_secs_f64()
    );
    let ctx = ctx()?;
    let mut progress = FitProgress::new(cfg.train.steps, control);
    let background = cfg.data.background.eval();
    let report = crate::view::with_viewer(&ctx, &a.viewer, "fit", background, control, || {
        fit(
            &dataset,
            &cfg,
            &ctx.burn,
            a.resume.as_deref(),
            control,
            &mut |e| progress.on_event(e),
        )
        .map_err(|e| experiments::with_resume_hint(e.into(), &cfg.output.dir))
    })?;
    progress.bar.finish_and_clear();
    match report.evals.last() {
        Some(r) => println!(
            "PSNR {:.2} dB, SSIM {:.4} on {} held-out views after {} steps ({} splats, {:.1} s training)",
            r.psnr, r.ssim, r.views, r.step, r.splats, report.train_seconds
        ),
        None => println!(
            "trained {} steps ({:.1} s); no held-out views to evaluate",
            cfg.train.steps, report.train_seconds
        ),
    }
    println!("outputs in {}", cfg.output.dir.display());
    Ok(())
}
