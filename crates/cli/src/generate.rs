//! `splatdream generate`: text to Gaussian splats by score distillation. Settings from
//! defaults, a TOML file and command-line overrides (as `fit`), the model, a progress bar; one
//! run per prompt with `--prompts`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use gpu::GpuContext;
use indicatif::{ProgressBar, ProgressStyle};
use train::generate::{Event, GenerateConfig, generate, load_model};

use crate::fit;
use crate::lock::{Acquired, RunLock};
use crate::shard::Shard;
use train::settings::resume_dir;

#[derive(Args)]
pub struct GenerateArgs {
    /// The text prompt.
    #[arg(long)]
    prompt: Option<String>,
    /// A text file with one prompt per non-empty line (lines starting with `#` are comments);
    /// each runs into `<out>/<index>-<slug>/`.
    #[arg(long, conflicts_with = "prompt")]
    prompts: Option<PathBuf>,
    /// With --prompts: run only shard I of N (prompts I, I + N, …; folders keep the suite's
    /// numbering). Without it, a Slurm array task's `SLURM_ARRAY_TASK_ID`/`_COUNT`/`_MIN` pick
    /// the shard. In a --prompts batch a finished run is skipped and an interrupted one
    /// continues from its last checkpoint.
    #[arg(long, value_name = "I/N", requires = "prompts")]
    shard: Option<String>,
    /// TOML settings (see configs/dreammapping.toml); command-line options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Diffusers folder or Hugging Face model id in the local HF cache.
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Guidance method: sds, vdm, sdi, bridge, lmc, lods or vsd.
    #[arg(long)]
    method: Option<String>,
    /// Optimisation steps (the total, also when resuming).
    #[arg(long)]
    steps: Option<u64>,
    /// Cameras per step.
    #[arg(long)]
    batch: Option<usize>,
    /// Render side in pixels.
    #[arg(long)]
    resolution: Option<u32>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder for the outputs (with --resume: defaults to the resumed run's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a run: its folder (latest checkpoint) or a checkpoint file. Its config.toml is
    /// the base the other options override.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Any setting as dotted.key=value (TOML value syntax), e.g. --set init.count=20000;
    /// repeatable, applied last.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the resolved settings as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    viewer: crate::view::ViewerFlags,
}

/// `configs/toyworld.toml`: the base settings of `--model toyworld` without `--config`.
const TOYWORLD_CONFIG: &str = include_str!("../../../configs/toyworld.toml");

/// Whether `--model` names the built-in toy-world prior.
fn is_toyworld_name(model: &str) -> bool {
    model == "toyworld"
}

/// The base settings before options: the `--config` file, else `configs/toyworld.toml` for
/// `--model toyworld`, else the defaults.
///
/// # Errors
/// The file cannot be read or does not parse as generate settings (the error names it).
pub(crate) fn base_table(config: Option<&Path>, model: Option<&str>) -> Result<toml::Table> {
    Ok(match config {
        Some(path) => train::settings::read_settings::<GenerateConfig>(path)?,
        None if model.is_some_and(is_toyworld_name) => train::settings::parse_settings::<
            GenerateConfig,
        >(
            TOYWORLD_CONFIG, "configs/toyworld.toml"
        )?,
        None => toml::Table::try_from(GenerateConfig::default())?,
    })
}

/// The settings: defaults (`configs/toyworld.toml` for `--model toyworld`) (or the resumed run's config.toml) ← `--config` ← options ← `--set`.
pub fn resolve(a: &GenerateArgs) -> Result<GenerateConfig> {
    let table: toml::Table = match (&a.config, &a.resume) {
        (None, Some(r)) => {
            train::settings::read_settings::<GenerateConfig>(&resume_dir(r).join("config.toml"))
                .with_context(|| format!("--resume {}", r.display()))?
        }
        (config, _) => base_table(config.as_deref(), a.model.as_deref())?,
    };
    let mut sets: Vec<(String, toml::Value)> = vec![];
    let mut put = |k: &str, v: toml::Value| sets.push((k.to_string(), v));
    let s = |v: &str| toml::Value::String(v.to_string());
    let i = |v: u64| toml::Value::Integer(v as i64);
    if let Some(p) = &a.prompt {
        put("prompt", s(p));
    }
    if let Some(v) = &a.model {
        put("model", s(v));
    }
    if let Some(v) = &a.method {
        put("guidance.method", s(v));
    }
    if let Some(v) = a.steps {
        put("steps", i(v));
    }
    if let Some(v) = a.batch {
        put("batch", i(v as u64));
    }
    if let Some(v) = a.resolution {
        put("resolution", i(v as u64));
    }
    if let Some(v) = a.seed {
        put("seed", i(v));
    }
    match (&a.out, &a.resume) {
        (Some(o), _) => put("output.dir", s(&o.display().to_string())),
        (None, Some(r)) => put("output.dir", s(&resume_dir(r).display().to_string())),
        _ => {}
    }
    let cfg: GenerateConfig = train::settings::apply_overrides(table, sets, &a.set)?;
    Ok(cfg)
}

/// A folder-name slug of a prompt: lowercase ASCII alphanumerics joined by `-`, ≤ 40 chars.
pub(crate) fn slug(prompt: &str) -> String {
    let mut out = String::new();
    for c in prompt.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "prompt".into() } else { out }
}

pub fn cmd_generate(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: GenerateArgs,
    control: &live::control::Control,
    net: sd::download::Network,
) -> Result<()> {
    let base = resolve(&a)?;
    let mut labels: Vec<String> = vec![];
    // One config per prompt.
    let runs: Vec<GenerateConfig> = match &a.prompts {
        Some(file) => {
            if a.resume.is_some() {
                bail!(
                    "--resume continues one run; resume each folder of a --prompts batch on its own"
                );
            }
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let prompts: Vec<(usize, &str)> = text
                .lines()
                .map(str::trim)
                .enumerate()
                .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
                .collect();
            if prompts.is_empty() {
                bail!("{}: no prompts (one per non-empty line)", file.display());
            }
            let shard = Shard::resolve(a.shard.as_deref(), |k| std::env::var(k).ok())?;
            let mine: Vec<(usize, &(usize, &str))> = prompts
                .iter()
                .enumerate()
                .filter(|(k, _)| shard.takes(*k))
                .collect();
            if mine.is_empty() {
                bail!(
                    "{}: shard {}/{} holds none of its {} prompts",
                    file.display(),
                    shard.index,
                    shard.count,
                    prompts.len()
                );
            }
            mine.into_iter()
                .map(|(k, (line, p))| {
                    let mut c = base.clone();
                    c.prompt = p.to_string();
                    c.output.dir = base.output.dir.join(format!("{k:03}-{}", slug(p)));
                    labels.push(format!("{}: line {}", file.display(), line + 1));
                    c
                })
                .collect()
        }
        None => {
            labels.push(if a.prompt.is_some() {
                "--prompt".into()
            } else {
                match &a.config {
                    Some(f) => format!("{}: `prompt`", f.display()),
                    None => "prompt".into(),
                }
            });
            vec![base]
        }
    };
    for c in &runs {
        match &a.config {
            Some(f) => train::generate::validate(c).with_context(|| f.display().to_string())?,
            None => train::generate::validate(c)?,
        }
    }
    for c in &runs {
        crate::check_out_dir("--out", &c.output.dir)?;
    }
    // Prompts as the guidance sees them (with each view suffix) must fit CLIP's window.
    let mut prompts = vec![];
    for (c, label) in runs.iter().zip(&labels) {
        let suffixes: Vec<&str> = if c.prompts.enabled {
            c.prompts.suffixes.iter().map(String::as_str).collect()
        } else {
            vec![""]
        };
        for s in suffixes {
            prompts.push((label.clone(), format!("{}{s}", c.prompt)));
        }
        prompts.push(("negative_prompt".into(), c.negative_prompt.clone()));
    }
    if !a.print_config {
        crate::diffusion::check_prompts(&runs[0].model, &prompts, net)?;
    }
    if a.print_config {
        for c in &runs {
            print!("{}", train::generate::to_toml(c)?);
        }
        return Ok(());
    }
    let ctx = ctx()?;
    let cfg0 = &runs[0];
    let model = load_model(&cfg0.model, &cfg0.dtype, &ctx.burn)
        .with_context(|| format!("loading the diffusion model `{}`", cfg0.model))?;
    eprintln!("model {} loaded", model.dir.display());
    let background = runs[0].background.colour.eval();
    crate::view::with_viewer(&ctx, &a.viewer, "generate", background, control, || {
        generate_all(
            &ctx,
            &model,
            &runs,
            a.resume.as_deref(),
            a.prompts.is_some(),
            control,
        )
    })
}

/// Whether a run's folder holds everything a finished run writes: the checkpoint of its last
/// step, then `point_cloud.ply`, then the turntable and views it is configured to write (in
/// the order `train::generate::generate` writes them).
fn run_is_finished(cfg: &GenerateConfig) -> bool {
    let dir = &cfg.output.dir;
    let last = dir
        .join("checkpoints")
        .join(train::checkpoint::file_name(cfg.steps));
    last.is_file()
        && dir.join("point_cloud.ply").is_file()
        && (cfg.output.turntable_frames == 0
            || dir.join(cfg.output.turntable.file_name()).is_file())
        && (cfg.output.views == 0 || dir.join("views.png").is_file())
}

/// Run every prompt's config in turn (progress bar, summary line).
fn generate_all(
    ctx: &GpuContext,
    model: &sd::pipeline::StableDiffusion,
    runs: &[GenerateConfig],
    resume: Option<&std::path::Path>,
    batch: bool,
    control: &live::control::Control,
) -> Result<()> {
    let live = || control.live();
    for cfg in runs {
        // A batch (--prompts) skips finished runs and continues interrupted ones, so a
        // requeued or restarted job picks up where it stopped.
        let dir = cfg.output.dir.as_path();
        if batch && run_is_finished(cfg) {
            eprintln!(
                "\"{}\": finished before in {} (skipped)",
                cfg.prompt,
                dir.display()
            );
            continue;
        }
        let _lock = if batch {
            match RunLock::acquire(dir)? {
                Acquired::Held(lock) => Some(lock),
                Acquired::Busy(who) => {
                    eprintln!(
                        "\"{}\": {} is locked by a live job ({who}; skipped)",
                        cfg.prompt,
                        dir.display()
                    );
                    continue;
                }
            }
        } else {
            None
        };
        let continued = batch && train::checkpoint::resolve(dir).is_ok();
        let resume = if continued { Some(dir) } else { resume };
        eprintln!(
            "generating \"{}\" → {}",
            cfg.prompt,
            cfg.output.dir.display()
        );
        let bar = ProgressBar::new(cfg.steps);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (ETA {eta})",
            )?
            .progress_chars("=> "),
        );
        let mut msg = String::new();
        let mut on_event = |e: Event| match e {
            Event::Step {
                step,
                record,
                splats,
                ..
            } => {
                if let Some(r) = record {
                    if let Some(v) = live() {
                        v.record_loss(step, r.loss);
                    }
                    msg = format!(
                        "loss {:.4} | t {:.0} | {splats} splats | {:.0} ms/step",
                        r.loss, r.t_mean, r.step_ms
                    );
                    if bar.is_hidden() {
                        eprintln!("step {}: {msg}", r.step);
                    }
                }
                bar.set_position(step);
                bar.set_message(msg.clone());
            }
            Event::Message(m) => {
                if let Some(v) = live() {
                    v.message(m.clone());
                }
                if bar.is_hidden() {
                    eprintln!("{m}");
                } else {
                    bar.println(m);
                }
            }
        };
        let report = generate(cfg, model, &ctx.burn, resume, control, &mut on_event)
            .map_err(|e| fit::with_resume_hint(e.into(), &cfg.output.dir))?;
        bar.finish_and_clear();
        println!(
            "generated {} splats in {} steps ({} this run, {:.1} s); outputs in {}",
            report.splats,
            report.steps,
            report.steps - report.start_step,
            report.train_seconds,
            cfg.output.dir.display()
        );
        evaluate_if_toy(ctx, &model.dir, cfg)?;
    }
    Ok(())
}

/// With a toy-world prior and a prompt naming one of its objects, score the result against
/// the ground truth (`evaluation.json` in the run folder, one line on stdout). A prompt outside
/// the toy world is only noted: the run itself succeeded.
pub(crate) fn evaluate_if_toy(
    ctx: &GpuContext,
    model_dir: &Path,
    cfg: &GenerateConfig,
) -> Result<Option<eval::EvalReport>> {
    if !eval::ToyWorld::is_toyworld(model_dir) {
        return Ok(None);
    }
    let world = eval::ToyWorld::load(model_dir)?;
    if let Err(e) = world.parse_prompt(&cfg.prompt) {
        eprintln!("not evaluated: {e}");
        return Ok(None);
    }
    let ply = cfg.output.dir.join("point_cloud.ply");
    let report = crate::evaluate::evaluate_ply(ctx, &ply, &world, &cfg.prompt)
        .context("evaluating the result against the toy world")?;
    crate::evaluate::write_report(&cfg.output.dir.join("evaluation.json"), &report)?;
    println!("{}", report.line());
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_folder_safe() {
        assert_eq!(slug("A DSLR photo of a corgi!"), "a-dslr-photo-of-a-corgi");
        assert_eq!(slug("???"), "prompt");
    }
}
