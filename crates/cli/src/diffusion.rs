//! `splatdream sample` (txt2img with DDIM, the sanity check of an SD 2.x model); `bench unet`
//! and `bench vae` live in `bench.rs`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use gpu::GpuContext;
use sd::pipeline::{SampleOptions, StableDiffusion};
use train::output::{to_rgb8, write_png};

#[derive(Args)]
pub struct SampleArgs {
    /// A diffusers folder, or a Hugging Face model id found in the local HF cache
    /// (e.g. stabilityai/stable-diffusion-2-1-base).
    #[arg(long)]
    pub(crate) model: String,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// Negative prompt (the unconditional branch of classifier-free guidance).
    #[arg(long, default_value = "")]
    negative: String,
    /// DDIM steps.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 7.5)]
    cfg: f64,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image width (default: the model's native size, 512 for 2.1-base, 768 for 2.1).
    #[arg(long)]
    width: Option<usize>,
    /// Image height (default: the model's native size).
    #[arg(long)]
    height: Option<usize>,
    /// Compute precision: f32, or f16 where the adapter has SHADER_F16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Check the weight files' sha256 against the published SD 2.1 hashes before loading.
    #[arg(long)]
    verify: bool,
    /// Text pipeline in front of CLIP's BPE: open_clip (what SD 2.x was trained with) or
    /// transformers-slow (transformers 4's slow tokenizer).
    #[arg(long, default_value = "open_clip")]
    tokenizer: sd::tokenizer::TextPipeline,
    /// Output PNG.
    #[arg(long, default_value = "sample.png")]
    out: PathBuf,
}

pub fn cmd_sample(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: SampleArgs,
    net: sd::download::Network,
) -> Result<()> {
    if a.prompt.trim().is_empty() {
        bail!("--prompt: the prompt is empty");
    }
    ensure!(a.steps > 0, "--steps: must be at least 1");
    experiments::check_out_file("--out", &a.out)?;
    check_prompts(
        &a.model,
        a.tokenizer,
        &[
            ("--prompt".into(), a.prompt.clone()),
            ("--negative".into(), a.negative.clone()),
        ],
        net,
    )?;
    let ctx = &ctx()?;
    let p = experiments::precision(ctx, &a.dtype)?;
    let dir = sd::model::resolve(&a.model)?;
    let t0 = Instant::now();
    let mut model = StableDiffusion::load(&dir, &ctx.burn, p, a.verify)?;
    model.set_text_pipeline(a.tokenizer)?;
    eprintln!(
        "loaded {} in {:.1} s ({p})",
        dir.display(),
        t0.elapsed().as_secs_f64()
    );
    let side = model.default_size();
    let opts = SampleOptions {
        prompt: a.prompt,
        negative: a.negative,
        steps: a.steps,
        cfg_scale: a.cfg,
        seed: a.seed,
        width: a.width.unwrap_or(side),
        height: a.height.unwrap_or(side),
    };
    let bar = indicatif::ProgressBar::new(opts.steps as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps  {elapsed} (eta {eta})",
        )
        .expect("static template"),
    );
    let t1 = Instant::now();
    let image = model.txt2img(&opts, |i, _| bar.set_position(i as u64))?;
    let [_, c, h, w] = image.dims();
    let hwc = image.reshape([c, h, w]).permute([1, 2, 0]);
    let rgb = to_rgb8(hwc)?;
    bar.finish_and_clear();
    write_png(&a.out, &rgb)?;
    println!(
        "wrote {} ({w}×{h}, {} steps, cfg {}, seed {}) in {:.1} s",
        a.out.display(),
        opts.steps,
        opts.cfg_scale,
        opts.seed,
        t1.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Check prompts against the model's tokenizer (behind `pipeline`) before any device work: an empty prompt, or one
/// longer than the CLIP window (75 tokens), is an error naming where it came from (`label`,
/// e.g. `--prompt` or `prompts.txt: line 3`). Resolving the model here also reports a missing
/// model folder before the GPU is touched.
///
/// # Errors
/// The model cannot be resolved, its tokenizer cannot be built, or a prompt is refused.
pub(crate) fn check_prompts(
    model: &str,
    pipeline: sd::tokenizer::TextPipeline,
    prompts: &[(String, String)],
    net: sd::download::Network,
) -> Result<()> {
    let dir = sd::download::resolve_or_download(model, net)?;
    let tokenizer =
        sd::tokenizer::ClipTokenizer::for_model_dir(&dir)?.with_text_pipeline(pipeline)?;
    for (label, prompt) in prompts {
        sd::pipeline::check_prompt(&tokenizer, prompt).with_context(|| label.clone())?;
    }
    Ok(())
}
