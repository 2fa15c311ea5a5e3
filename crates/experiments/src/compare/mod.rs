//! `splatdream compare`: every method on one or more prompts with one seed, side by side.
//!
//! Writes a grid of views (`compare.png`, one row per prompt × method), a table
//! (`compare.md`, `compare.json`) of steps, seconds, step time and peak device memory and,
//! on a toy-world prior in 3D mode, the evaluation of each result against the ground truth
//! (silhouette IoU, masked PSNR, colour error, judge R-precision; `eval::evaluate`) with
//! per-method means over the prompts. A finished (prompt, method) run leaves
//! `compare-row.json` in its folder and is not run again, so a long table resumes where an
//! interrupted one stopped, an interrupted 3D run from its last checkpoint (`--rerun` runs
//! everything again from the start). A run that fails is listed
//! with its error and the others go on; the command then exits non-zero.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use eval::EvalReport;
use gpu::GpuContext;
use train::distill2d::{Distill2dConfig, distill2d};
use train::generate::{GenerateConfig, load_model};
use train::output::{grid, write_png, write_text};

use crate::generate;
use crate::lock::{Acquired, RunLock};
use crate::shard::Shard;

mod rows;
use rows::{ROW_FILE, Row, finished_row, last_grad_norm, markdown, summarise};

/// The options of `splatdream compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// Comma-separated methods, e.g. sds,vdm,sdi,bridge,lmc,lods,vsd.
    #[arg(long, value_delimiter = ',', required = true)]
    methods: Vec<String>,
    /// The text prompt (all methods); repeat for several prompts.
    #[arg(long)]
    prompt: Vec<String>,
    /// A text file with one prompt per non-empty line (`#` starts a comment), run after any
    /// --prompt.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Seed (all methods and prompts).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `3d` (generate splats) or `2d` (distill2d).
    #[arg(long, default_value = "3d")]
    mode: String,
    /// Base settings: a generate TOML (3d) or distill2d TOML (2d); each method's own settings
    /// come from its `[guidance.<method>]` table. In 3D with `--model toyworld` the default
    /// is `configs/toyworld.toml`, as for `generate`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Diffusers folder, built-in name (`toyworld`) or Hugging Face model id.
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Steps per method.
    #[arg(long)]
    steps: Option<u64>,
    /// Output folder: one sub-folder per method (per prompt and method when there are several
    /// prompts: `<slug>/<method>`), plus compare.png, compare.md and compare.json.
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    /// Any setting as dotted.key=value for every method; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run every (prompt, method) again, even where its folder holds a finished result.
    #[arg(long)]
    rerun: bool,
    /// A method's own base settings instead of --config (3D): METHOD=FILE, repeatable, e.g.
    /// `vdm=configs/dreammapping.toml`.
    #[arg(long = "method-config", value_name = "METHOD=FILE")]
    method_config: Vec<String>,
    /// Settings laid over every method's base settings (3D): each top-level key or table of
    /// this file replaces the base's (e.g. `configs/toyworld-overlay.toml`: the toy-world
    /// prior's model, resolution, cameras, view prompts and background).
    #[arg(long)]
    overlay: Option<PathBuf>,
    /// With --steps (3D): rescale every step count of each method's schedule (anneal,
    /// learning-rate decay, densification, SDS-Bridge's second stage, checkpoints) to the new
    /// length (`train::generate::rescale_steps`) instead of only ending the run early; --set
    /// is applied after it.
    #[arg(long)]
    rescale: bool,
    /// Run only shard I of N of the prompts (`0/4`: prompts 0, 4, 8, …), e.g. one per GPU or
    /// Slurm array task; without it, `SLURM_ARRAY_TASK_ID`/`_COUNT`/`_MIN` pick the shard when
    /// set. Run folders are the same as unsharded; the summary files get a `-shard-I-of-N`
    /// suffix, and an unsharded `compare` afterwards tabulates every shard's finished runs.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
}

/// `--prompt`s then the lines of `--prompts` (blank lines and `#` comments skipped).
fn prompt_list(a: &CompareArgs) -> Result<Vec<String>> {
    let mut out = a.prompt.clone();
    if let Some(file) = &a.prompts {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--prompts: reading {}", file.display()))?;
        out.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if out.is_empty() {
        bail!("no prompt: pass --prompt \"…\" (repeatable) or --prompts FILE");
    }
    Ok(out)
}

/// A run's settings: a generate (3D) or distill2d (2D) config.
enum Settings {
    ThreeD(Box<GenerateConfig>),
    TwoD(Box<Distill2dConfig>),
}

impl Settings {
    fn model_and_dtype(&self) -> (String, String) {
        match self {
            Settings::ThreeD(c) => (c.model.clone(), c.dtype.clone()),
            Settings::TwoD(c) => (c.model.clone(), c.dtype.clone()),
        }
    }
    fn tokenizer(&self) -> sd::tokenizer::TextPipeline {
        match self {
            Settings::ThreeD(c) => c.tokenizer,
            Settings::TwoD(c) => c.tokenizer,
        }
    }
    fn steps(&self) -> u64 {
        match self {
            Settings::ThreeD(c) => c.steps,
            Settings::TwoD(c) => c.steps,
        }
    }
    fn dir(&self) -> &Path {
        match self {
            Settings::ThreeD(c) => &c.output.dir,
            Settings::TwoD(c) => &c.output.dir,
        }
    }
}

/// Resolve every (prompt, method) run's settings before anything runs, so a bad setting stops
/// the comparison at once.
fn resolve_runs(a: &CompareArgs, prompts: &[String], three_d: bool) -> Result<Vec<Settings>> {
    let s = |v: &str| toml::Value::String(v.to_string());
    let i = |v: u64| toml::Value::Integer(v as i64);
    if !three_d && (!a.method_config.is_empty() || a.overlay.is_some() || a.rescale) {
        bail!("--method-config, --overlay and --rescale apply to --mode 3d only");
    }
    if a.rescale && a.steps.is_none() {
        bail!("--rescale needs --steps (the length to rescale each method's schedule to)");
    }
    let mut method_files = std::collections::BTreeMap::new();
    for spec in &a.method_config {
        let Some((m, file)) = spec.split_once('=') else {
            bail!("--method-config {spec}: expected METHOD=FILE");
        };
        if !a.methods.iter().any(|x| x == m) {
            bail!("--method-config {spec}: `{m}` is not one of --methods");
        }
        method_files.insert(m.to_string(), PathBuf::from(file));
    }
    let overlay = match &a.overlay {
        Some(p) => Some(train::settings::read_settings::<GenerateConfig>(p).context("--overlay")?),
        None => None,
    };
    let mut runs = vec![];
    for prompt in prompts {
        for m in &a.methods {
            let dir = if prompts.len() == 1 {
                a.out.join(m)
            } else {
                a.out.join(generate::slug(prompt)).join(m)
            };
            let mut sets = vec![
                ("prompt".to_string(), s(prompt)),
                ("seed".to_string(), i(a.seed)),
                ("guidance.method".to_string(), s(m)),
                ("output.dir".to_string(), s(&dir.display().to_string())),
            ];
            if let Some(model) = &a.model {
                sets.push(("model".into(), s(model)));
            }
            if let Some(n) = a.steps.filter(|_| !a.rescale) {
                sets.push(("steps".into(), i(n)));
            }
            let ctx = || format!("method {m}, prompt \"{prompt}\"");
            runs.push(if three_d {
                let config = method_files.get(m).or(a.config.as_ref());
                let mut table =
                    generate::base_table(config.map(PathBuf::as_path), a.model.as_deref())
                        .with_context(ctx)?;
                for (k, v) in overlay.iter().flatten() {
                    table.insert(k.clone(), v.clone());
                }
                let c: GenerateConfig = match a.steps.filter(|_| a.rescale) {
                    Some(n) => {
                        let c: GenerateConfig = train::settings::apply_overrides(table, sets, &[])?;
                        let c = train::generate::rescale_steps(&c, n);
                        train::settings::apply_overrides(toml::Table::try_from(c)?, vec![], &a.set)?
                    }
                    None => train::settings::apply_overrides(table, sets, &a.set)?,
                };
                train::generate::validate(&c).with_context(ctx)?;
                Settings::ThreeD(Box::new(c))
            } else {
                let table = match &a.config {
                    Some(p) => train::settings::read_settings::<Distill2dConfig>(p)?,
                    None => toml::Table::try_from(Distill2dConfig::default())?,
                };
                let c: Distill2dConfig = train::settings::apply_overrides(table, sets, &a.set)?;
                train::distill2d::validate(&c).with_context(ctx)?;
                Settings::TwoD(Box::new(c))
            });
        }
    }
    Ok(runs)
}

/// The views shown for a finished run: four turntable views of the splats (3D) or the final
/// image (2D).
fn views(run: &Settings, ctx: &GpuContext) -> Result<Vec<image::RgbImage>> {
    match run {
        Settings::ThreeD(c) => {
            let data = splat::ply::read_ply(&c.output.dir.join("point_cloud.ply"))?;
            let splats = optim::params::Gaussians::from_data(&data, 0, &ctx.burn).splats();
            let size = c.output.turntable_size.max(8);
            let cams = c.cameras.grid(4, size);
            let opts = splat::RenderOptions {
                background: c.background.colour.eval(),
                sh_degree: Some(0),
                ..Default::default()
            };
            Ok(train::output::render_frames(&splats, &cams, &opts)?)
        }
        Settings::TwoD(c) => {
            let path = c.output.dir.join("final.png");
            let img = image::open(&path).with_context(|| path.display().to_string())?;
            Ok(vec![img.to_rgb8()])
        }
    }
}

/// The name of a finished run's views strip inside its folder.
const STRIP_FILE: &str = "compare-views.png";

/// A run's views side by side, kept in its folder as [`STRIP_FILE`] so that a finished run's
/// row and strip can be carried to another machine without its splats (a table spread over
/// sittings on different machines: docs/quality.md). Read back for a 3D run whose splats are
/// absent; rendered from the run's output (and written) otherwise.
fn strip(run: &Settings, ctx: &GpuContext) -> Result<image::RgbImage> {
    let path = run.dir().join(STRIP_FILE);
    let carried =
        matches!(run, Settings::ThreeD(_)) && !run.dir().join("point_cloud.ply").is_file();
    if carried && let Ok(img) = image::open(&path) {
        return Ok(img.to_rgb8());
    }
    let images = views(run, ctx)?;
    let img = grid(&images, images.len()).context("a run with no views")?;
    write_png(&path, &img)?;
    Ok(img)
}

/// Whether `dir/checkpoints` holds a checkpoint (an interrupted 3D run).
fn has_checkpoint(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("checkpoints")).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
    })
}

/// `splatdream compare`: run every (prompt, method) not finished before, then write the grid
/// and the tables (module docs).
///
/// # Errors
/// Bad options or settings (named) before any run; after the runs, a summary error when any
/// run failed (the others are tabulated first).
pub fn cmd_compare(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: CompareArgs,
    control: &live::control::Control,
    net: sd::download::Network,
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
    let prompts = prompt_list(&a)?;
    let shard = Shard::resolve(a.shard.as_deref(), |k| std::env::var(k).ok())?;
    let per_prompt = a.methods.len().max(1);
    // Every run is resolved (a bad setting stops every shard alike), then this shard's kept.
    let runs: Vec<(usize, Settings)> = resolve_runs(&a, &prompts, three_d)?
        .into_iter()
        .enumerate()
        .filter(|(k, _)| shard.takes(k / per_prompt))
        .collect();
    let Some((_, first)) = runs.first() else {
        bail!(
            "--methods: none given, or --shard {} holds no prompt",
            a.shard.as_deref().unwrap_or("-")
        );
    };
    let (model_id, dtype) = first.model_and_dtype();
    // One model serves every run: model, precision and tokenizer must agree.
    for (_, r) in &runs {
        let (m, d) = r.model_and_dtype();
        if (m.as_str(), d.as_str(), r.tokenizer())
            != (model_id.as_str(), dtype.as_str(), first.tokenizer())
        {
            bail!(
                "{}: model `{m}`, dtype {d}, tokenizer {} differ from the first run's (`{model_id}`, {dtype}, {}); one comparison loads one model (set them alike, e.g. with --overlay or --set)",
                r.dir().display(),
                r.tokenizer(),
                first.tokenizer()
            );
        }
    }
    sd::download::resolve_or_download(&model_id, net)?;
    let ctx = ctx()?;
    let model = load_model(&model_id, &dtype, first.tokenizer(), &ctx.burn)
        .with_context(|| format!("loading the diffusion model `{model_id}`"))?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut rows = vec![];
    let mut strips = vec![];
    let mut failures: Vec<String> = vec![];
    for (n, (k, run)) in runs.iter().enumerate() {
        let prompt = &prompts[k / per_prompt];
        let m = &a.methods[k % per_prompt];
        let dir = run.dir().to_path_buf();
        eprintln!("[{}/{}] {m}: \"{prompt}\"", n + 1, runs.len());
        let row = match finished_row(&dir, prompt, m, run.steps()).filter(|_| !a.rerun) {
            Some(row) => {
                eprintln!(
                    "  finished before: {} (pass --rerun to run it again)",
                    dir.join(ROW_FILE).display()
                );
                row
            }
            None => {
                // Shards or array tasks of one suite never run the same folder at once.
                let _lock = match RunLock::acquire(&dir)? {
                    Acquired::Held(lock) => lock,
                    Acquired::Busy(who) => {
                        eprintln!("  locked by a live job ({who}): skipped");
                        failures.push(format!("{m}, \"{prompt}\": locked by {who}"));
                        continue;
                    }
                };
                let _ = std::fs::remove_file(dir.join(ROW_FILE));
                let outcome = (|| -> Result<(u64, u64, f64, u64, Option<EvalReport>)> {
                    Ok(match run {
                        Settings::ThreeD(c) => {
                            // An interrupted run continues from its last checkpoint.
                            let resume = (!a.rerun && has_checkpoint(&dir)).then_some(&*dir);
                            let r = train::generate::generate(
                                c,
                                &model,
                                &ctx.burn,
                                resume,
                                control,
                                &mut |_| {},
                            )?;
                            let e = crate::toy::evaluate_if_toy(&ctx, &model.dir, c)?;
                            (
                                r.steps,
                                r.steps - r.start_step,
                                r.train_seconds,
                                r.peak_reserved_bytes,
                                e,
                            )
                        }
                        Settings::TwoD(c) => {
                            let r = distill2d(c, &model, &ctx.burn, &mut |_, _, _| {})?;
                            (
                                r.steps,
                                r.steps,
                                r.train_seconds,
                                r.peak_reserved_bytes,
                                None,
                            )
                        }
                    })
                })();
                // A failing method is reported and the table goes on (a stop does not).
                let (steps, sitting_steps, seconds, peak, evaluation) = match outcome {
                    Ok(v) => v,
                    Err(e) if e.chain().any(live::stop::is_interrupted) => {
                        return Err(e.context(format!("method {m}, prompt \"{prompt}\"")));
                    }
                    Err(e) => {
                        eprintln!("  failed: {e:#}");
                        failures.push(format!("{m}, \"{prompt}\": {e:#}"));
                        continue;
                    }
                };
                let row = Row {
                    prompt: prompt.clone(),
                    method: m.clone(),
                    steps,
                    seconds,
                    ms_per_step: seconds * 1e3 / sitting_steps.max(1) as f64,
                    peak_reserved_mib: peak as f64 / (1 << 20) as f64,
                    final_grad_norm: last_grad_norm(&dir.join("metrics.jsonl")),
                    folder: dir.clone(),
                    evaluation,
                };
                write_text(
                    &dir.join(ROW_FILE),
                    &(serde_json::to_string_pretty(&row)? + "\n"),
                )?;
                row
            }
        };
        strips.push(strip(run, &ctx)?);
        rows.push(row);
    }
    // One row per run (prompts in order, methods in --methods order), its views left to right.
    let name = |stem: &str, ext: &str| a.out.join(format!("{stem}{}.{ext}", shard.suffix()));
    let png = name("compare", "png");
    if let Some(img) = grid(&strips, 1) {
        write_png(&png, &img)?;
    }
    let summary = summarise(&a.methods, &rows);
    let mut md = markdown(&a, &model_id, &rows, &summary);
    if !failures.is_empty() {
        md.push_str("\nFailed runs (not in the tables above; run again to retry them):\n\n");
        for f in &failures {
            md.push_str(&format!("- {f}\n"));
        }
    }
    write_text(&name("compare", "md"), &md)?;
    write_text(
        &name("compare", "json"),
        &serde_json::to_string_pretty(&rows)?,
    )?;
    if !summary.is_empty() {
        write_text(
            &name("summary", "json"),
            &serde_json::to_string_pretty(&summary)?,
        )?;
    }
    print!("{md}");
    println!("grid: {}", png.display());
    if !failures.is_empty() {
        bail!(
            "{} of {} runs failed (listed in {})",
            failures.len(),
            runs.len(),
            name("compare", "md").display()
        );
    }
    Ok(())
}
