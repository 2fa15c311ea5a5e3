//! `splatdream generate`: text to Gaussian splats by score distillation. Settings from
//! defaults, a TOML file and command-line overrides (as `fit`), the model, a progress bar; one
//! run per prompt with `--prompts`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use experiments::generate::{base_table, generate_all, runs_from_file};
use gpu::GpuContext;
use train::generate::{GenerateConfig, load_model};
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
    model: Option<String>,
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

pub fn cmd_generate(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: GenerateArgs,
    control: &live::control::Control,
    net: sd::download::Network,
) -> Result<()> {
    let base = resolve(&a)?;
    // One config per prompt.
    let (runs, labels) = match &a.prompts {
        Some(file) => {
            if a.resume.is_some() {
                bail!(
                    "--resume continues one run; resume each folder of a --prompts batch on its own"
                );
            }
            runs_from_file(&base, file, a.shard.as_deref())?
        }
        None => {
            let label = if a.prompt.is_some() {
                "--prompt".into()
            } else {
                match &a.config {
                    Some(f) => format!("{}: `prompt`", f.display()),
                    None => "prompt".into(),
                }
            };
            (vec![base], vec![label])
        }
    };
    for c in &runs {
        match &a.config {
            Some(f) => train::generate::validate(c).with_context(|| f.display().to_string())?,
            None => train::generate::validate(c)?,
        }
    }
    for c in &runs {
        experiments::check_out_dir("--out", &c.output.dir)?;
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
    // One model serves every run: they must agree on its tokenizer.
    for (c, label) in runs.iter().zip(&labels) {
        ensure!(
            c.tokenizer == runs[0].tokenizer,
            "{label}: tokenizer = \"{}\" differs from the first run's \"{}\"; runs of one invocation share the model and its tokenizer",
            c.tokenizer,
            runs[0].tokenizer
        );
    }
    if !a.print_config {
        crate::diffusion::check_prompts(&runs[0].model, runs[0].tokenizer, &prompts, net)?;
    }
    if a.print_config {
        for c in &runs {
            print!("{}", train::generate::to_toml(c)?);
        }
        return Ok(());
    }
    let ctx = ctx()?;
    let cfg0 = &runs[0];
    let model = load_model(&cfg0.model, &cfg0.dtype, cfg0.tokenizer, &ctx.burn)
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
