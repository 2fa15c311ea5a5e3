//! `splatdream sample` (txt2img with DDIM, the sanity check of an SD 2.x model) and
//! `splatdream bench unet` (U-Net forward and forward+input-gradient timings).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Tensor;
use clap::Args;
use gpu::GpuContext;
use sd::pipeline::{SampleOptions, StableDiffusion};
use sd::weights::WeightFile;
use sd::{Precision, UNet};
use train::output::{to_rgb8, write_png};

#[derive(Args)]
pub struct SampleArgs {
    /// A diffusers folder, or a Hugging Face model id found in the local HF cache
    /// (e.g. stabilityai/stable-diffusion-2-1-base).
    #[arg(long)]
    model: String,
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
    /// Output PNG.
    #[arg(long, default_value = "sample.png")]
    out: PathBuf,
}

/// Parse `--dtype` and check the adapter can compute in it.
pub(crate) fn precision(ctx: &GpuContext, dtype: &str) -> Result<Precision> {
    let p: Precision = dtype
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--dtype: {e}"))?;
    if p == Precision::F16 && !ctx.shader_f16() {
        bail!(
            "--dtype f16: adapter `{}` lacks SHADER_F16; use --dtype f32",
            ctx.adapter.get_info().name
        );
    }
    Ok(p)
}

pub fn cmd_sample(ctx: impl FnOnce() -> Result<GpuContext>, a: SampleArgs) -> Result<()> {
    if a.prompt.trim().is_empty() {
        bail!("--prompt: the prompt is empty");
    }
    ensure!(a.steps > 0, "--steps: must be at least 1");
    crate::check_out_file("--out", &a.out)?;
    check_prompts(
        &a.model,
        &[
            ("--prompt".into(), a.prompt.clone()),
            ("--negative".into(), a.negative.clone()),
        ],
    )?;
    let ctx = &ctx()?;
    let p = precision(ctx, &a.dtype)?;
    let dir = sd::model::resolve(&a.model)?;
    let t0 = Instant::now();
    let model = StableDiffusion::load(&dir, &ctx.burn, p, a.verify)?;
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

#[derive(Args)]
pub struct BenchUnetArgs {
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Latent side (64 = 512² images for SD 2.1-base).
    #[arg(long, default_value_t = 64)]
    latent: usize,
    /// f32 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// A diffusers folder or HF id whose U-Net to time (real weights). Without it, the
    /// full-size SD 2.1-base architecture (shipped config) with random weights.
    #[arg(long)]
    model: Option<String>,
    /// A `unet/config.json` to instantiate with random weights instead of SD 2.1-base.
    #[arg(long, conflicts_with = "model")]
    config: Option<PathBuf>,
    /// Timed repeats (after one warm-up).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Block until the queue has run everything `t` depends on, and check the result is finite.
fn sync(t: Tensor<1>) -> Result<()> {
    let v = t
        .try_into_data()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(v.iter().all(|x| x.is_finite()), "non-finite U-Net output");
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn cmd_bench_unet(ctx: &GpuContext, a: BenchUnetArgs) -> Result<()> {
    ensure!(
        a.batch > 0 && a.latent > 0 && a.repeats > 0,
        "--batch, --latent and --repeats must be positive"
    );
    let p = precision(ctx, &a.dtype)?;
    let t0 = Instant::now();
    let (unet, source) = match (&a.model, &a.config) {
        (Some(m), _) => {
            let dir = sd::model::resolve(m)?;
            (
                UNet::from_dir(&dir.join("unet"), &ctx.burn, p)?,
                dir.display().to_string(),
            )
        }
        (None, cfg) => {
            let (arch, src) = match cfg {
                Some(path) => (
                    sd::config::UNetConfig::from_file(path)?,
                    path.display().to_string(),
                ),
                None => {
                    let text = include_str!("../../../assets/sd21/base-unet-config.json");
                    let c: sd::config::UNetConfig = serde_json::from_str(text)
                        .context("shipped assets/sd21/base-unet-config.json")?;
                    (
                        c.check(std::path::Path::new("assets/sd21/base-unet-config.json"))?,
                        "SD 2.1-base architecture".to_string(),
                    )
                }
            };
            let w = WeightFile::random(&ctx.burn, p, 0);
            (UNet::load(arch, &w)?, format!("{src} (random weights)"))
        }
    };
    let load_s = t0.elapsed().as_secs_f64();
    let cfg = &unet.arch.config;
    let (b, s) = (a.batch, a.latent);
    let ctx_dim = cfg.cross_attention_dim;
    let latents = sd::pipeline::gaussian([b, cfg.in_channels, s, s], 1, &ctx.burn);
    let text = sd::pipeline::gaussian([b, 77, ctx_dim], 2, &ctx.burn);
    let t: Vec<f64> = (0..b).map(|i| (999 - (i * 97) % 1000) as f64).collect();
    let mut fwd = vec![];
    let mut grad = vec![];
    for rep in 0..=a.repeats {
        let t1 = Instant::now();
        let out = unet.forward(latents.clone(), &t, text.clone());
        sync(out.reshape([-1]).slice(0..1))?;
        let t2 = Instant::now();
        let x = latents.clone().autodiff().require_grad();
        let out = unet.forward(x.clone(), &t, text.clone().autodiff());
        let grads = out.sum().backward();
        let g = x.grad(&grads).context("no gradient reached the latents")?;
        sync(g.reshape([-1]).slice(0..1))?;
        let t3 = Instant::now();
        if rep > 0 {
            fwd.push((t2 - t1).as_secs_f64() * 1e3);
            grad.push((t3 - t2).as_secs_f64() * 1e3);
        }
    }
    let info = ctx.adapter.get_info();
    let (f, g) = (median(fwd), median(grad));
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "suite": "unet",
                "adapter": info.name,
                "backend": format!("{:?}", info.backend),
                "model": source,
                "dtype": p.to_string(),
                "batch": b,
                "latent": s,
                "repeats": a.repeats,
                "load_s": load_s,
                "forward_ms": f,
                "forward_input_grad_ms": g,
            })
        );
    } else {
        println!(
            "unet on {} ({:?}): {source}, {p}, batch {b}, latent {s}×{s} (loaded in {load_s:.1} s)",
            info.name, info.backend
        );
        println!("forward             {f:10.1} ms (median of {})", a.repeats);
        println!("forward + input grad {g:9.1} ms (median of {})", a.repeats);
    }
    Ok(())
}

/// Check prompts against the model's tokenizer before any device work: an empty prompt, or one
/// longer than the CLIP window (75 tokens), is an error naming where it came from (`label`,
/// e.g. `--prompt` or `prompts.txt: line 3`). Resolving the model here also reports a missing
/// model folder before the GPU is touched.
///
/// # Errors
/// The model cannot be resolved, its tokenizer cannot be built, or a prompt is refused.
pub(crate) fn check_prompts(model: &str, prompts: &[(String, String)]) -> Result<()> {
    let dir = sd::model::resolve(model)?;
    let tokenizer = sd::tokenizer::ClipTokenizer::for_model_dir(&dir)?;
    for (label, prompt) in prompts {
        sd::pipeline::check_prompt(&tokenizer, prompt).with_context(|| label.clone())?;
    }
    Ok(())
}
