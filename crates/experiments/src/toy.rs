//! Toy-world evaluation of a finished run: the prior's world and judge, a PLY scored against
//! the object its prompt names (`eval::evaluate`), the report written beside the run.

use std::path::Path;

use anyhow::{Context, Result, bail};
use eval::{EvalReport, Judge, ToyWorld, evaluate::EvalOptions};
use gpu::GpuContext;
use train::generate::GenerateConfig;

/// The toy world of `model` (a folder or built-in name).
///
/// # Errors
/// The model does not resolve, or is not a toy-world prior (no `toyworld.json`).
pub fn toy_world(model: &str) -> Result<ToyWorld> {
    let dir = sd::model::resolve(model).with_context(|| format!("--model {model}"))?;
    if !ToyWorld::is_toyworld(&dir) {
        bail!(
            "--model {model}: {} is not a toy-world prior (no toyworld.json); evaluation needs the toy world's ground truth",
            dir.display()
        );
    }
    Ok(ToyWorld::load(&dir)?)
}

/// Evaluate a PLY against `prompt` in `world` on the context's device.
///
/// # Errors
/// PLY, prompt, ground-truth, judge and device errors, each naming its file or input.
pub fn evaluate_ply(
    ctx: &GpuContext,
    ply: &Path,
    world: &ToyWorld,
    prompt: &str,
) -> Result<EvalReport> {
    world.parse_prompt(prompt)?;
    let judge = Judge::load(&world.judge_path(), &ctx.burn)?;
    let splats = splat::formats::read_scene(ply)?.to_splats(&ctx.burn);
    Ok(eval::evaluate(
        &splats,
        world,
        &judge,
        prompt,
        &EvalOptions::default(),
    )?)
}

/// Write a report as pretty JSON, atomically.
///
/// # Errors
/// The file cannot be written (the error names it).
pub fn write_report(path: &Path, report: &EvalReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report)? + "\n";
    train::output::write_text(path, &text).with_context(|| path.display().to_string())?;
    Ok(())
}

/// With a toy-world prior and a prompt naming one of its objects, score the result against
/// the ground truth (`evaluation.json` in the run folder, one line on stdout). A prompt outside
/// the toy world is only noted: the run itself succeeded.
///
/// # Errors
/// The toy world, its judge or the result cannot be read, or evaluating fails.
pub fn evaluate_if_toy(
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
    let report = evaluate_ply(ctx, &ply, &world, &cfg.prompt)
        .context("evaluating the result against the toy world")?;
    write_report(&cfg.output.dir.join("evaluation.json"), &report)?;
    println!("{}", report.line());
    Ok(Some(report))
}
