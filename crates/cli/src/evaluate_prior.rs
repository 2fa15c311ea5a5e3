//! `splatdream evaluate-prior`: the toy-world prior's own quality. One DDIM sample per
//! category × colour (front-view prompt), each labelled by the independent judge; prints the
//! accuracy and writes a grid (a row per category, a column per colour) and a JSON report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use eval::Judge;
use gpu::GpuContext;
use sd::pipeline::{SampleOptions, StableDiffusion};
use serde::Serialize;
use train::output::{grid, to_rgb8, write_png, write_text};

#[derive(Args)]
pub struct EvaluatePriorArgs {
    /// The toy-world prior (a folder or a built-in name).
    #[arg(long, default_value = "toyworld")]
    model: String,
    /// DDIM steps per sample.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 7.5)]
    cfg: f64,
    /// Seed of the first sample (sample k uses seed + k).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// View suffix appended to every prompt.
    #[arg(long, default_value = ", front view")]
    suffix: String,
    /// Output folder: `samples.png` (grid), `report.json`.
    #[arg(long, default_value = "runs/prior-check")]
    out: PathBuf,
}

#[derive(Serialize)]
struct Row {
    prompt: String,
    judged: String,
    category_ok: bool,
    colour_ok: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    steps: usize,
    cfg: f64,
    samples: usize,
    category_accuracy: f64,
    colour_accuracy: f64,
    accuracy: f64,
    seconds: f64,
    rows: Vec<Row>,
}

pub fn cmd_evaluate_prior(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: EvaluatePriorArgs,
) -> Result<()> {
    let world = experiments::toy::toy_world(&a.model)?;
    experiments::check_out_dir("--out", &a.out)?;
    let ctx = ctx()?;
    let model = StableDiffusion::load(&world.dir, &ctx.burn, sd::Precision::F32, false)
        .with_context(|| format!("loading {}", world.dir.display()))?;
    let judge = Judge::load(&world.judge_path(), &ctx.burn)?;
    let size = model.default_size();
    let t0 = Instant::now();
    let (mut images, mut rows) = (vec![], vec![]);
    let (nk, nc) = (world.info.categories.len(), world.info.colours.len());
    for k in 0..nk {
        for c in 0..nc {
            let prompt = format!("{}{}", world.prompt(k, c), a.suffix);
            let opts = SampleOptions {
                prompt: prompt.clone(),
                negative: String::new(),
                steps: a.steps,
                cfg_scale: a.cfg,
                seed: a.seed + (k * nc + c) as u64,
                width: size,
                height: size,
            };
            let image = model.txt2img(&opts, |_, _| {})?;
            let hwc = image.reshape([3, size, size]).permute([1, 2, 0]);
            let host = splat::scene::host(&hwc).map_err(anyhow::Error::msg)?;
            let v = judge.classify(&[host])?;
            let (jk, jc) = (v.category[0], v.colour[0]);
            let row = Row {
                judged: world.prompt(jk, jc),
                prompt,
                category_ok: jk == k,
                colour_ok: jc == c,
            };
            eprintln!(
                "{:3}/{}: {} → {}{}",
                k * nc + c + 1,
                nk * nc,
                row.prompt,
                row.judged,
                if row.category_ok && row.colour_ok {
                    ""
                } else {
                    "  ✗"
                }
            );
            rows.push(row);
            images.push(to_rgb8(hwc)?);
        }
    }
    let n = rows.len() as f64;
    let frac = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / n;
    let report = Report {
        model: world.dir.display().to_string(),
        steps: a.steps,
        cfg: a.cfg,
        samples: rows.len(),
        category_accuracy: frac(&|r| r.category_ok),
        colour_accuracy: frac(&|r| r.colour_ok),
        accuracy: frac(&|r| r.category_ok && r.colour_ok),
        seconds: t0.elapsed().as_secs_f64(),
        rows,
    };
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    if let Some(g) = grid(&images, nc) {
        write_png(&a.out.join("samples.png"), &g)?;
    }
    write_text(
        &a.out.join("report.json"),
        &(serde_json::to_string_pretty(&report)? + "\n"),
    )?;
    println!(
        "judge on {} samples of {}: category {:.1} %, colour {:.1} %, both {:.1} % ({:.0} s); {}",
        report.samples,
        a.model,
        100.0 * report.category_accuracy,
        100.0 * report.colour_accuracy,
        100.0 * report.accuracy,
        report.seconds,
        a.out.join("samples.png").display()
    );
    Ok(())
}
