//! `splatdream lmc-train`: pre-train LMC-SDS's blur model b̂ψ (docs/methods.md §3.2) for one
//! diffusion model on a set of images, and write it as safetensors for
//! `generate --method lmc --set guidance.lmc.blur_model=…`.
//!
//! The images are loaded once (transparent pixels composited over white), resized so the
//! shorter side is `--resolution` and centre-cropped to a square, encoded once through the VAE
//! (posterior mean × scaling factor), and then [`distill::lmc::BlurTrainer`] draws batches of
//! `(z, ẑ_t, t)` triplets from those latents. The output is written atomically every
//! `--save-every` steps and at the end; `--log` gets one JSON line per logged step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Tensor, TensorData};
use clap::Args;
use distill::lmc::{BlurMeta, BlurNet, BlurNetConfig, BlurTrainer, BlurTrainerConfig};
use distill::{Prior, Stat};
use gpu::GpuContext;
use sd::pipeline::StableDiffusion;

use crate::precision;

/// The options of `splatdream lmc-train`.
#[derive(Args)]
pub struct LmcTrainArgs {
    /// The diffusion model whose blur b̂ψ learns: a diffusers folder or a Hugging Face model id
    /// in the local HF cache (as for `generate`). b̂ψ only fits this model.
    #[arg(long)]
    pub(crate) model: String,
    /// Training images: a folder of PNG/JPEG files (not recursive) or one image file;
    /// repeatable. The paper used random OpenImages photographs.
    #[arg(long, required = true)]
    images: Vec<PathBuf>,
    /// Output file (.safetensors), written atomically (also every --save-every steps).
    #[arg(long)]
    out: PathBuf,
    /// Training steps (paper: ≈750K at batch 128; methods.md §6.3 suggests starting with
    /// 50–100K and watching the loss).
    #[arg(long, default_value_t = 50_000)]
    steps: u64,
    /// Triplets per step (paper: 128; each costs one U-Net forward).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Adam learning rate (paper: 1e-4).
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Learning-rate decay factor (paper: 0.9) …
    #[arg(long, default_value_t = 0.9)]
    lr_decay: f64,
    /// … applied every this many steps (paper: 100,000; 0 = never).
    #[arg(long, default_value_t = 100_000)]
    lr_decay_every: u64,
    /// Image side in pixels, a multiple of the VAE downscale (default: the model's native
    /// size, 512 for SD 2.1-base).
    #[arg(long)]
    resolution: Option<usize>,
    /// Encoder levels of b̂ψ (paper: 4).
    #[arg(long, default_value_t = 4)]
    levels: usize,
    /// Width of b̂ψ's first level (paper: 32; doubled per level, bottleneck 2× the last).
    #[arg(long, default_value_t = 32)]
    base_width: usize,
    /// Lowest timestep (paper: t ≥ 0.02 → 20).
    #[arg(long, default_value_t = 20)]
    t_min: usize,
    /// Highest timestep (paper: t ≤ 0.98 → 980).
    #[arg(long, default_value_t = 980)]
    t_max: usize,
    /// Seed of the initial weights, the batches, timesteps and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Loss log: one JSON object per logged step ({"step", "loss", "lr", "seconds"}).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Log (and read the loss back) every this many steps; the last step is always logged.
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Write the output every this many steps as well as at the end (0: only at the end).
    #[arg(long, default_value_t = 5_000)]
    save_every: u64,
    /// Diffusion model precision: f32, or f16 where the adapter has SHADER_F16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

/// The image files named by `--images`: folders give their PNG/JPEG files (sorted), files
/// are taken as they are.
fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("--images {}: cannot list the folder", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str())
                        })
                })
                .collect();
            if v.is_empty() {
                bail!(
                    "--images {}: the folder has no PNG or JPEG images",
                    p.display()
                );
            }
            v.sort();
            out.extend(v);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("--images {}: no such file or folder", p.display());
        }
    }
    Ok(out)
}

/// `path` as a `[1, 3, side, side]` tensor in [−1, 1] (`datasets::square_rgb_chw`: alpha
/// over white, shorter side resized to `side`, centre-cropped).
fn load_image(path: &Path, side: u32, device: &burn::tensor::Device) -> Result<Tensor<4>> {
    let v = datasets::square_rgb_chw(path, side)?;
    let s = side as usize;
    Ok(Tensor::from_data(TensorData::new(v, [1, 3, s, s]), device))
}

/// A trainer setting error as the command-line option it came from.
fn option_error(e: distill::DistillError) -> anyhow::Error {
    match e {
        distill::DistillError::Setting { name, detail } => {
            anyhow::anyhow!("--{}: {detail}", name.replace('_', "-").replace('/', "/--"))
        }
        e => e.into(),
    }
}

/// Write `net` with `meta` to `path` atomically.
fn save(path: &Path, net: &BlurNet, meta: &BlurMeta) -> Result<()> {
    let bytes = net.to_safetensors(meta)?;
    files::write_bytes(path, &bytes)?;
    Ok(())
}

/// `splatdream lmc-train`: pre-train LMC-SDS's blur network b̂ψ on the images given, with the
/// model's frozen VAE and noise schedule, and write it (safetensors + metadata) for
/// `guidance.lmc.blur_model`.
///
/// # Errors
/// Bad options (named), unreadable images or model, device failures, or an unwritable output.
pub fn cmd_lmc_train(
    ctx: impl FnOnce() -> Result<GpuContext>,
    a: LmcTrainArgs,
    control: &live::control::Control,
    net: sd::download::Network,
) -> Result<()> {
    ensure!(a.steps > 0, "--steps must be at least 1");
    let net_cfg = BlurNetConfig {
        levels: a.levels,
        base_width: a.base_width,
    };
    net_cfg.validate().map_err(option_error)?;
    let tcfg = BlurTrainerConfig {
        lr: a.lr,
        lr_decay: a.lr_decay,
        lr_decay_every: a.lr_decay_every,
        batch: a.batch,
        t_min: a.t_min,
        t_max: a.t_max,
        seed: a.seed,
    };
    tcfg.validate(usize::MAX).map_err(option_error)?;
    crate::check_out_file("--out", &a.out)?;
    let files = image_files(&a.images)?;
    let mut log = match &a.log {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("--log {}", p.display()))?,
        )),
        None => None,
    };

    let ctx = ctx()?;
    let p = precision(&ctx, &a.dtype)?;
    let dir = sd::download::resolve_or_download(&a.model, net)?;
    let t0 = Instant::now();
    let model = StableDiffusion::load(&dir, &ctx.burn, p, false)
        .with_context(|| format!("loading the diffusion model `{}`", a.model))?;
    let f = model.vae.downscale();
    let side = a.resolution.unwrap_or_else(|| model.default_size());
    ensure!(
        side >= f && side.is_multiple_of(f),
        "--resolution {side}: must be a positive multiple of the VAE downscale {f}"
    );
    eprintln!(
        "model {} loaded in {:.1} s; encoding {} image(s) at {side}²",
        dir.display(),
        t0.elapsed().as_secs_f64(),
        files.len()
    );

    // Encode every image once.
    let s = model.vae.scaling_factor();
    let mut latents = Vec::with_capacity(files.len());
    for file in &files {
        let x = load_image(file, side as u32, &ctx.burn)?;
        latents.push((model.vae.encode(x).mean * s).detach());
    }
    let data = Tensor::cat(latents, 0);
    let (var, mean) = data.clone().reshape([-1]).var_mean_bias(0);
    let stats = optim::params::host(&Tensor::cat(vec![mean, var.sqrt()], 0))
        .map_err(|e| anyhow::anyhow!("reading the latents back: {e}"))?;
    eprintln!(
        "latents: mean {:.4}, std {:.4} (scaled by {s})",
        stats[0], stats[1]
    );
    let uncond = model.encode_prompts(&[""])?;
    let prior = Prior {
        unet: &model.unet,
        schedule: &model.schedule,
    };
    tcfg.validate(model.schedule.num_train_timesteps())
        .map_err(option_error)?;
    let mut trainer = BlurTrainer::new(&net_cfg, tcfg.clone(), &ctx.burn)?;
    eprintln!(
        "training b̂ψ (levels {}, base width {}, {} parameters) on {} latents {:?} for {} steps of {}",
        a.levels,
        a.base_width,
        trainer.net().num_parameters(),
        files.len(),
        &data.dims()[1..],
        a.steps,
        a.batch
    );

    let meta = |steps: u64, loss: Option<f64>| BlurMeta {
        resolution: side,
        batch: a.batch,
        loss,
        ..BlurMeta::new(&net_cfg, &a.model, steps)
    };
    let bar = crate::progress::bar(a.steps);
    let t1 = Instant::now();
    let mut recent: Vec<f64> = vec![];
    for k in 0..a.steps {
        let loss = trainer.step(&prior, &data, &uncond)?;
        let done = k + 1;
        if k.is_multiple_of(a.log_every.max(1)) || done == a.steps {
            let v = Stat::Device(loss)
                .value()
                .map_err(|e| anyhow::anyhow!("reading the loss back: {e}"))?;
            ensure!(v.is_finite(), "the loss is not finite at step {k} ({v})");
            recent.push(v);
            if recent.len() > 10 {
                recent.remove(0);
            }
            if let (Some(w), Some(p)) = (log.as_mut(), &a.log) {
                let line = serde_json::json!({
                    "step": k,
                    "loss": v,
                    "lr": tcfg.lr_at(k),
                    "seconds": t1.elapsed().as_secs_f64(),
                });
                writeln!(w, "{line}")
                    .and_then(|()| w.flush())
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            let msg = format!("L_k {v:.4}");
            if bar.is_hidden() {
                eprintln!("step {k}: {msg}");
            }
            bar.set_message(msg);
        }
        bar.set_position(done);
        if a.save_every > 0 && done.is_multiple_of(a.save_every) && done != a.steps {
            let mean = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
            save(&a.out, &trainer.net(), &meta(done, Some(mean)))?;
        }
        if control.stop_requested() && done != a.steps {
            // SIGINT/SIGTERM: keep what was learnt (its metadata records the steps done).
            bar.finish_and_clear();
            let mean = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
            save(&a.out, &trainer.net(), &meta(done, Some(mean)))?;
            bail!(
                "interrupted after step {done} of {}; b̂ψ so far saved to {}",
                a.steps,
                a.out.display()
            );
        }
    }
    bar.finish_and_clear();
    let mean = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
    save(&a.out, &trainer.net(), &meta(a.steps, Some(mean)))?;
    println!(
        "wrote {} ({} steps in {:.1} s, mean L_k of the last {} logged steps {mean:.4})",
        a.out.display(),
        a.steps,
        t1.elapsed().as_secs_f64(),
        recent.len()
    );
    Ok(())
}
