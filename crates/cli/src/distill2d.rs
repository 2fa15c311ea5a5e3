//! `splatdream distill2d`: score distillation on one image (text-to-2D and editing).

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;
use experiments::progress::bar;
use gpu::GpuContext;
use train::distill2d::{Distill2dConfig, distill2d};
use train::generate::load_model;

#[derive(Args)]
pub struct Distill2dArgs {
    /// The text prompt.
    #[arg(long)]
    prompt: Option<String>,
    /// TOML settings (see `splatdream distill2d --print-config`); options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Diffusers folder or Hugging Face model id in the local HF cache.
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Guidance method: sds, vdm, sdi, bridge, lmc, lods or vsd.
    #[arg(long)]
    method: Option<String>,
    /// Optimisation steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Image side in pixels.
    #[arg(long)]
    size: Option<u32>,
    /// `latent` (optimise the SD latent) or `pixel` (optimise RGB through the VAE encoder).
    #[arg(long)]
    space: Option<String>,
    /// Start from this image (editing, e.g. painting → real with the bridge method and
    /// --set guidance.bridge.source_prompt="…, painting" --set guidance.bridge.stage_two_start=0).
    #[arg(long)]
    init_image: Option<PathBuf>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Any setting as dotted.key=value (TOML value syntax); repeatable, applied last.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the resolved settings as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

/// Defaults ← `--config` ← options ← `--set`.
pub fn resolve(a: &Distill2dArgs) -> Result<Distill2dConfig> {
    let table = match &a.config {
        Some(p) => train::settings::read_settings::<Distill2dConfig>(p)?,
        None => toml::Table::try_from(Distill2dConfig::default())?,
    };
    let mut sets: Vec<(String, toml::Value)> = vec![];
    let s = |v: &str| toml::Value::String(v.to_string());
    let i = |v: u64| toml::Value::Integer(v as i64);
    let mut put = |k: &str, v: Option<toml::Value>| {
        if let Some(v) = v {
            sets.push((k.to_string(), v));
        }
    };
    put("prompt", a.prompt.as_deref().map(s));
    put("model", a.model.as_deref().map(s));
    put("guidance.method", a.method.as_deref().map(s));
    put("steps", a.steps.map(i));
    put("size", a.size.map(|v| i(v as u64)));
    put("space", a.space.as_deref().map(s));
    put(
        "init_image",
        a.init_image.as_ref().map(|p| s(&p.display().to_string())),
    );
    put("lr", a.lr.map(toml::Value::Float));
    put("seed", a.seed.map(i));
    put(
        "output.dir",
        a.out.as_ref().map(|p| s(&p.display().to_string())),
    );
    Ok(train::settings::apply_overrides(table, sets, &a.set)?)
}

pub fn cmd_distill2d(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: Distill2dArgs,
    net: sd::download::Network,
) -> Result<()> {
    let cfg = resolve(&a)?;
    match &a.config {
        Some(f) => train::distill2d::validate(&cfg).with_context(|| f.display().to_string())?,
        None => train::distill2d::validate(&cfg)?,
    }
    if a.print_config {
        print!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    experiments::check_out_dir("--out", &cfg.output.dir)?;
    if let Some(img) = &cfg.init_image {
        let (w, h) = image::image_dimensions(img)
            .with_context(|| format!("--init-image {}: cannot read the image", img.display()))?;
        ensure!(
            w > 0 && h > 0,
            "--init-image {}: the image is empty ({w}×{h})",
            img.display()
        );
    }
    let label = if a.prompt.is_some() {
        "--prompt".to_string()
    } else {
        "prompt".to_string()
    };
    crate::diffusion::check_prompts(
        &cfg.model,
        cfg.tokenizer,
        &[
            (label, cfg.prompt.clone()),
            ("negative_prompt".into(), cfg.negative_prompt.clone()),
        ],
        net,
    )?;
    let ctx = ctx()?;
    let model = load_model(&cfg.model, &cfg.dtype, cfg.tokenizer, &ctx.burn)
        .with_context(|| format!("loading the diffusion model `{}`", cfg.model))?;
    let bar = bar(cfg.steps);
    let report = distill2d(&cfg, &model, &ctx.burn, &mut |done, _, rec| {
        if let Some(r) = rec {
            let msg = format!("loss {:.4} | ‖g‖ {:.3e} | t {}", r.loss, r.grad_norm, r.t);
            if bar.is_hidden() {
                eprintln!("step {}: {msg}", r.step);
            }
            bar.set_message(msg);
        }
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "{} steps of {} in {:.1} s; progression ({} frames) and final image in {}",
        report.steps,
        cfg.guidance.method,
        report.train_seconds,
        report.frames,
        cfg.output.dir.display()
    );
    Ok(())
}
