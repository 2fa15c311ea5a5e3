//! `splatdream fit`: settings from defaults, a TOML file and command-line overrides, the
//! dataset, a progress bar, and the summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use datasets::{LoadOptions, load};
use gpu::GpuContext;
use indicatif::{ProgressBar, ProgressStyle};
use train::fit::{Event, FitConfig, fit};
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

/// When `e` is a device failure mid-run (device lost, out of memory, a failed read, a scene
/// grown past the device's limits), point at the latest checkpoint of `run` (a lost device
/// cannot be read, so the periodic checkpoint is what survives).
pub fn with_resume_hint(e: anyhow::Error, run: &Path) -> anyhow::Error {
    use train::fit::FitError;
    use train::generate::GenerateError;
    let device = e.chain().any(|c| {
        matches!(
            c.downcast_ref(),
            Some(FitError::Device(_) | FitError::Render(_))
        ) || matches!(
            c.downcast_ref(),
            Some(GenerateError::Device(_) | GenerateError::Render(_))
        )
    });
    match train::checkpoint::resolve(run) {
        Ok(ck) if device => e.context(format!(
            "the run failed on the device; the latest checkpoint {} is kept: continue with --resume {} (with settings that fit the device)",
            ck.display(),
            run.display()
        )),
        _ => e,
    }
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
    if let Some(d) = &a.dataset {
        put("data.path", toml::Value::String(d.display().to_string()));
    }
    match (&a.out, &a.resume) {
        (Some(o), _) => put("output.dir", toml::Value::String(o.display().to_string())),
        (None, Some(r)) => put(
            "output.dir",
            toml::Value::String(resume_dir(r).display().to_string()),
        ),
        _ => {}
    }
    if let Some(v) = a.steps {
        put("train.steps", toml::Value::Integer(v as i64));
    }
    if let Some(v) = a.downscale {
        put("data.downscale", toml::Value::Integer(v as i64));
    }
    if let Some(v) = a.eval_every {
        put("eval.every", toml::Value::Integer(v as i64));
    }
    if let Some(v) = a.sh_degree {
        put("train.sh_degree", toml::Value::Integer(v as i64));
    }
    if let Some(v) = a.seed {
        put("train.seed", toml::Value::Integer(v as i64));
    }
    if let Some(v) = a.batch {
        put("train.batch", toml::Value::Integer(v as i64));
    }
    if let Some(bg) = &a.background {
        let v = match bg.as_str() {
            "white" | "black" | "random" => toml::Value::String(bg.clone()),
            rgb => {
                let c: Vec<toml::Value> = rgb
                    .split(',')
                    .map(|x| x.trim().parse::<f64>().map(toml::Value::Float))
                    .collect::<Result<_, _>>()
                    .with_context(|| {
                        format!("--background: expected white, black, random or r,g,b, got `{bg}`")
                    })?;
                if c.len() != 3 {
                    bail!("--background: expected three components, got `{bg}`");
                }
                toml::Value::Array(c)
            }
        };
        put("data.background", v);
    }
    if let Some(init) = &a.init {
        match init.as_str() {
            "auto" | "points" | "random" => put("init.kind", toml::Value::String(init.clone())),
            path => {
                put("init.kind", toml::Value::String("ply".into()));
                put("init.ply", toml::Value::String(path.to_string()));
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
    if let Some(v) = a.cap_max {
        put("densify.cap_max", toml::Value::Integer(v as i64));
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
    crate::check_out_dir("--out", &cfg.output.dir)?;
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
    let bar = ProgressBar::new(cfg.train.steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (ETA {eta})",
        )?
        .progress_chars("=> "),
    );
    let mut last_loss = f32::NAN;
    let mut last_psnr = f64::NAN;
    let mut splats = 0usize;
    // Without a terminal the bar is hidden; print evaluations and messages plainly then.
    let say = |bar: &ProgressBar, line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let live = || control.live();
    let mut on_event = |e: Event| match e {
        Event::Step {
            step,
            loss,
            splats: n,
            ..
        } => {
            if let Some(l) = loss {
                last_loss = l;
                if let Some(v) = live() {
                    v.record_loss(step, l as f64);
                }
            }
            splats = n;
            if bar.is_hidden() && step % 100 == 0 {
                eprintln!("step {step}: loss {last_loss:.4}, {splats} splats");
            }
            bar.set_position(step);
            bar.set_message(format!(
                "loss {last_loss:.4} | PSNR {last_psnr:.2} dB | {splats} splats"
            ));
        }
        Event::Eval(r) => {
            last_psnr = r.psnr;
            if let Some(v) = live() {
                v.record_psnr(r.step, r.psnr);
            }
            say(
                &bar,
                format!(
                    "step {}: eval PSNR {:.2} dB, SSIM {:.4} on {} views, {} splats, {:.1} s training",
                    r.step, r.psnr, r.ssim, r.views, r.splats, r.train_seconds
                ),
            );
        }
        Event::Message(m) => {
            if let Some(v) = live() {
                v.message(m.clone());
            }
            say(&bar, m)
        }
    };
    let background = cfg.data.background.eval();
    let report = crate::view::with_viewer(&ctx, &a.viewer, "fit", background, control, || {
        fit(
            &dataset,
            &cfg,
            &ctx.burn,
            a.resume.as_deref(),
            control,
            &mut on_event,
        )
        .map_err(|e| with_resume_hint(e.into(), &cfg.output.dir))
    })?;
    bar.finish_and_clear();
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
