//! `splatdream evaluate`: score a generated (or fitted) splat scene against the toy-world
//! object its prompt names (`eval::evaluate`): silhouette IoU, masked PSNR, colour error and
//! the judge's R-precision at the ground-truth cameras.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use eval::ToyWorld;
use experiments::toy::{evaluate_ply, toy_world, write_report};
use gpu::GpuContext;

#[derive(Args)]
pub struct EvaluateArgs {
    /// A run folder (`point_cloud.ply` + `config.toml` of `generate` or `fit`) or a PLY file.
    target: PathBuf,
    /// The prompt naming the object ("a red chair"); default: the run's `prompt`.
    #[arg(long)]
    prompt: Option<String>,
    /// The toy-world prior whose ground truth and judge to use (a folder or a built-in name);
    /// default: the run's model when it is a toy-world prior, else `toyworld`.
    #[arg(long)]
    model: Option<String>,
    /// Print the report as JSON on stdout (the human-readable line goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also write the JSON report here (default for a run folder: `<run>/evaluation.json`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The `prompt` and `model` of a run folder's `config.toml` (either may be absent).
fn run_settings(dir: &Path) -> Result<(Option<String>, Option<String>)> {
    let path = dir.join("config.toml");
    if !path.is_file() {
        return Ok((None, None));
    }
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let t: toml::Table = text
        .parse()
        .with_context(|| format!("{}: not valid TOML", path.display()))?;
    let get = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Ok((get("prompt"), get("model")))
}

pub fn cmd_evaluate(ctx: impl FnOnce() -> Result<GpuContext>, a: EvaluateArgs) -> Result<()> {
    let (ply, run_dir) = if a.target.is_dir() {
        (a.target.join("point_cloud.ply"), Some(a.target.clone()))
    } else {
        (a.target.clone(), None)
    };
    if !ply.is_file() {
        bail!(
            "{}: no such PLY file (evaluate takes a run folder with point_cloud.ply, or a PLY)",
            ply.display()
        );
    }
    let (run_prompt, run_model) = match &run_dir {
        Some(d) => run_settings(d)?,
        None => (None, None),
    };
    let Some(prompt) = a.prompt.clone().or(run_prompt) else {
        bail!(
            "{}: no prompt: pass --prompt \"a <colour> <category>\"",
            a.target.display()
        );
    };
    let model = match (&a.model, run_model) {
        (Some(m), _) => m.clone(),
        (None, Some(m)) if sd::model::resolve(&m).is_ok_and(|d| ToyWorld::is_toyworld(&d)) => m,
        _ => "toyworld".to_string(),
    };
    let world = toy_world(&model)?;
    world.parse_prompt(&prompt)?;
    let ctx = ctx()?;
    let report = evaluate_ply(&ctx, &ply, &world, &prompt)?;
    let out = a.out.or_else(|| run_dir.map(|d| d.join("evaluation.json")));
    if let Some(path) = &out {
        write_report(path, &report)?;
    }
    if a.json {
        eprintln!("{}", report.line());
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.line());
    }
    Ok(())
}
