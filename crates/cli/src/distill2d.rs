//! `splatdream distill2d`: score distillation on one image (text-to-2D and editing), and
//! `splatdream compare`: every method on one prompt and seed, side by side.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use gpu::GpuContext;
use indicatif::{ProgressBar, ProgressStyle};
use train::distill2d::{Distill2dConfig, distill2d};
use train::generate::{GenerateConfig, load_model};
use train::output::{grid, write_png, write_text};

use crate::fit;

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
    model: Option<String>,
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

/// Read a TOML settings file as a table after checking it parses as `T` (so errors name the
/// file and the field).
fn read_table<T: serde::de::DeserializeOwned>(path: &Path) -> Result<toml::Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str::<T>(&text).with_context(|| format!("{}: invalid settings", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// Defaults ← `--config` ← options ← `--set`.
pub fn resolve(a: &Distill2dArgs) -> Result<Distill2dConfig> {
    let table = match &a.config {
        Some(p) => read_table::<Distill2dConfig>(p)?,
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
    fit::apply_overrides(table, sets, &a.set)
}

fn bar(total: u64) -> Result<ProgressBar> {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (ETA {eta})",
        )?
        .progress_chars("=> "),
    );
    Ok(bar)
}

pub fn cmd_distill2d(ctx: impl FnOnce() -> Result<GpuContext>, a: Distill2dArgs) -> Result<()> {
    let cfg = resolve(&a)?;
    match &a.config {
        Some(f) => train::distill2d::validate(&cfg).with_context(|| f.display().to_string())?,
        None => train::distill2d::validate(&cfg)?,
    }
    if a.print_config {
        print!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    crate::check_out_dir("--out", &cfg.output.dir)?;
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
        &[
            (label, cfg.prompt.clone()),
            ("negative_prompt".into(), cfg.negative_prompt.clone()),
        ],
    )?;
    let ctx = ctx()?;
    let model = load_model(&cfg.model, &cfg.dtype, &ctx.burn)
        .with_context(|| format!("loading the diffusion model `{}`", cfg.model))?;
    let bar = bar(cfg.steps)?;
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

#[derive(Args)]
pub struct CompareArgs {
    /// Comma-separated methods, e.g. sds,vdm,sdi,bridge,lmc,lods,vsd.
    #[arg(long, value_delimiter = ',', required = true)]
    methods: Vec<String>,
    /// The text prompt (all methods).
    #[arg(long)]
    prompt: String,
    /// Seed (all methods).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `3d` (generate splats) or `2d` (distill2d).
    #[arg(long, default_value = "3d")]
    mode: String,
    /// Base settings: a generate TOML (3d) or distill2d TOML (2d); each method's own settings
    /// come from its `[guidance.<method>]` table.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Diffusers folder or Hugging Face model id.
    #[arg(long)]
    model: Option<String>,
    /// Steps per method.
    #[arg(long)]
    steps: Option<u64>,
    /// Output folder: one sub-folder per method, plus compare.png, compare.md and
    /// compare.json.
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    /// Any setting as dotted.key=value for every method; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// One row of the comparison table.
#[derive(serde::Serialize)]
struct Row {
    method: String,
    steps: u64,
    seconds: f64,
    ms_per_step: f64,
    peak_reserved_mib: f64,
    final_grad_norm: f64,
    folder: PathBuf,
}

/// The last `grad_norm` in a metrics.jsonl.
fn last_grad_norm(path: &Path) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        })
        .and_then(|v| v["grad_norm"].as_f64())
        .unwrap_or(f64::NAN)
}

pub fn cmd_compare(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: CompareArgs,
    control: &train::control::Control,
) -> Result<()> {
    for m in &a.methods {
        if !distill::METHODS.contains(&m.as_str()) {
            bail!(
                "--methods: unknown method `{m}`; this build has: {}",
                distill::METHODS.join(", ")
            );
        }
    }
    let three_d = match a.mode.as_str() {
        "3d" => true,
        "2d" => false,
        other => bail!("--mode: `{other}` is neither 3d nor 2d"),
    };
    let s = |v: &str| toml::Value::String(v.to_string());
    let i = |v: u64| toml::Value::Integer(v as i64);
    let common = |method: &str, dir: &Path| {
        let mut sets = vec![
            ("prompt".to_string(), s(&a.prompt)),
            ("seed".to_string(), i(a.seed)),
            ("guidance.method".to_string(), s(method)),
            ("output.dir".to_string(), s(&dir.display().to_string())),
        ];
        if let Some(m) = &a.model {
            sets.push(("model".into(), s(m)));
        }
        if let Some(n) = a.steps {
            sets.push(("steps".into(), i(n)));
        }
        sets
    };
    let mut gen_cfgs: Vec<GenerateConfig> = vec![];
    let mut cfgs2d: Vec<Distill2dConfig> = vec![];
    for m in &a.methods {
        let dir = a.out.join(m);
        if three_d {
            let table = match &a.config {
                Some(p) => read_table::<GenerateConfig>(p)?,
                None => toml::Table::try_from(GenerateConfig::default())?,
            };
            let c: GenerateConfig = fit::apply_overrides(table, common(m, &dir), &a.set)?;
            train::generate::validate(&c).with_context(|| format!("method {m}"))?;
            gen_cfgs.push(c);
        } else {
            let table = match &a.config {
                Some(p) => read_table::<Distill2dConfig>(p)?,
                None => toml::Table::try_from(Distill2dConfig::default())?,
            };
            let c: Distill2dConfig = fit::apply_overrides(table, common(m, &dir), &a.set)?;
            train::distill2d::validate(&c).with_context(|| format!("method {m}"))?;
            cfgs2d.push(c);
        }
    }
    let (model_id, dtype) = match (gen_cfgs.first(), cfgs2d.first()) {
        (Some(c), _) => (c.model.clone(), c.dtype.clone()),
        (None, Some(c)) => (c.model.clone(), c.dtype.clone()),
        _ => bail!("--methods: none given"),
    };
    let ctx = ctx()?;
    let model = load_model(&model_id, &dtype, &ctx.burn)
        .with_context(|| format!("loading the diffusion model `{model_id}`"))?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut rows = vec![];
    let mut strips = vec![];
    for (k, m) in a.methods.iter().enumerate() {
        eprintln!("[{}/{}] {m}", k + 1, a.methods.len());
        let (steps, seconds, peak, dir, images) = if three_d {
            let c = &gen_cfgs[k];
            let r = train::generate::generate(c, &model, &ctx.burn, None, control, &mut |_| {})
                .with_context(|| format!("method {m}"))?;
            let data = splat::ply::read_ply(&c.output.dir.join("point_cloud.ply"))?;
            let splats = train::params::Gaussians::from_data(&data, 0, &ctx.burn).splats();
            let size = c.output.turntable_size.max(8);
            let cams = train::generate::grid_cameras(&c.cameras, 4, size);
            let opts = splat::RenderOptions {
                background: c.background.colour.eval(),
                sh_degree: Some(0),
                ..Default::default()
            };
            let frames = train::output::render_frames(&splats, &cams, &opts)?;
            let steps = r.steps - r.start_step;
            (
                steps,
                r.train_seconds,
                r.peak_reserved_bytes,
                c.output.dir.clone(),
                frames,
            )
        } else {
            let c = &cfgs2d[k];
            let r = distill2d(c, &model, &ctx.burn, &mut |_, _, _| {})
                .with_context(|| format!("method {m}"))?;
            let img = image::open(c.output.dir.join("final.png"))?.to_rgb8();
            (
                r.steps,
                r.train_seconds,
                r.peak_reserved_bytes,
                c.output.dir.clone(),
                vec![img],
            )
        };
        let per_row = images.len();
        strips.push((per_row, images));
        rows.push(Row {
            method: m.clone(),
            steps,
            seconds,
            ms_per_step: seconds * 1e3 / steps.max(1) as f64,
            peak_reserved_mib: peak as f64 / (1 << 20) as f64,
            final_grad_norm: last_grad_norm(&dir.join("metrics.jsonl")),
            folder: dir,
        });
    }
    // One row per method (in --methods order), its views left to right.
    let columns = strips.iter().map(|(n, _)| *n).max().unwrap_or(1);
    let all: Vec<image::RgbImage> = strips.into_iter().flat_map(|(_, v)| v).collect();
    let png = a.out.join("compare.png");
    if let Some(img) = grid(&all, columns) {
        write_png(&png, &img)?;
    }
    let mut md = format!(
        "# compare: \"{}\", seed {}, {} mode, model {}\n\nRows of compare.png, top to bottom, \
         follow this table. Peak memory is what burn's allocator had reserved on the device \
         (sampled after every step).\n\n| method | steps | s | ms/step | peak reserved MiB | \
         final ‖g‖ |\n|---|---|---|---|---|---|\n",
        a.prompt, a.seed, a.mode, model_id
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.0} | {:.3e} |\n",
            r.method, r.steps, r.seconds, r.ms_per_step, r.peak_reserved_mib, r.final_grad_norm
        ));
    }
    write_text(&a.out.join("compare.md"), &md)?;
    write_text(
        &a.out.join("compare.json"),
        &serde_json::to_string_pretty(&rows)?,
    )?;
    print!("{md}");
    println!("grid: {}", png.display());
    Ok(())
}
