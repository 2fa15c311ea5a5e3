//! `distill2d`: score distillation on a single image — the 2D experiments of every method
//! (docs/methods.md §1.7, §2.7, §3.7, §4.7, §5.7): text-to-image by optimising SD latents (or
//! pixels through the VAE encoder) with a guidance's gradient, and image-conditioned editing
//! when an initial image is given (SDS-Bridge painting → real with `source_prompt`, LMC-SDS
//! editing with an L2 pull to the original).
//!
//! One step: `z` = the latent parameter (latent space) or `E(2·x − 1)·s_vae` of the pixel
//! parameter `x ∈ [0, 1]` (pixel space, gradient through the encoder) → the guidance's `g` on
//! `z` from the prompt, the negative prompt and the method's extra prompts (no view suffixes)
//! → inject with the pseudo-loss, plus `λ·mean((x − x_init)²)` when `init_l2 > 0` → Adam on
//! the parameter. Every `frame_every` steps the current image is decoded into the progression.
//!
//! Outputs in `output.dir`: `config.toml`, `metrics.jsonl`, `progress.gif` (the progression),
//! `final.png`.

//!
//! Settings and records are in `config.rs`, one step in `trainer.rs` ([`Distill2dTrainer`]);
//! the driver is here.

mod config;
mod trainer;

pub use config::*;
pub use optim::guard::reserved_bytes;
pub use trainer::{Distill2dTrainer, Step2d};

use crate::metrics::MetricsLog;
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use distill::Stat;
use sd::pipeline::StableDiffusion;

use crate::generate::{GenerateError, check_vae_size, config_err};
use crate::output::{write_gif, write_png, write_text};
use optim::params::host;

/// Run `distill2d` with a loaded model; `on_step(done, total, record)` after every step.
///
/// # Errors
/// [`GenerateError`] for bad settings, an unreadable initial image, device failures, a
/// non-finite gradient, or outputs that cannot be written.
pub fn distill2d(
    cfg: &Distill2dConfig,
    model: &StableDiffusion,
    device: &Device,
    on_step: &mut dyn FnMut(u64, u64, Option<&Record2d>),
) -> Result<Report2d, GenerateError> {
    validate(cfg)?;
    let f = model.vae.downscale();
    if !(cfg.size as usize).is_multiple_of(f) {
        return Err(config_err(
            "size",
            format!("must be a multiple of the VAE downscale {f}"),
        ));
    }
    check_vae_size(model, &cfg.dtype, 1, cfg.size, ("size", "size"))?;
    let out = &cfg.output.dir;
    std::fs::create_dir_all(out).map_err(|e| GenerateError::Io {
        path: out.clone(),
        message: e.to_string(),
    })?;
    write_text(
        &out.join("config.toml"),
        &toml::to_string_pretty(cfg).map_err(|e| config_err("<all>", e.to_string()))?,
    )?;
    let mut trainer = Distill2dTrainer::new(cfg, model, device)?;

    let metrics_path = out.join("metrics.jsonl");
    let mut metrics = MetricsLog::open(&metrics_path, 0)?;
    let mut frames = vec![trainer.image()?];
    let mut report = Report2d::default();
    let t0 = Instant::now();
    for step in 0..cfg.steps {
        let Step2d {
            loss,
            guidance: g,
            t,
        } = trainer.step(step)?;
        let done = step + 1;
        report.peak_reserved_bytes = report.peak_reserved_bytes.max(reserved_bytes(device));
        let mut record = None;
        if step.is_multiple_of(cfg.output.log_every.max(1)) || done == cfg.steps {
            let gd = distill::finite_or_zero(g.grad.clone());
            let [skipped, run] = trainer.guard.device_parts();
            let mut parts = vec![loss, gd.square().sum().reshape([1]), skipped, run];
            parts.extend(g.stats.iter().filter_map(|(_, v)| match v {
                Stat::Device(t) => Some(t.clone().inner().reshape([1])),
                Stat::Host(_) => None,
            }));
            let k = parts.len();
            let vals =
                host(&Tensor::cat(parts, 0).reshape([1, k])).map_err(GenerateError::Device)?;
            if let Some(w) = trainer.guard.after_read(vals[2], vals[3], step + 1)? {
                tracing::warn!("{}: {w}", cfg.output.dir.display());
            }
            let mut dev = vals[4..].iter();
            let rec = Record2d {
                step,
                loss: vals[0] as f64,
                grad_norm: (vals[1] as f64).sqrt(),
                t,
                guidance: g
                    .stats
                    .iter()
                    .map(|(name, v)| {
                        let x = match v {
                            Stat::Host(x) => *x,
                            Stat::Device(_) => dev.next().map_or(f64::NAN, |x| *x as f64),
                        };
                        (name.to_string(), serde_json::json!(x))
                    })
                    .collect(),
            };
            metrics.append(&rec)?;
            record = Some(rec);
        }
        if done.is_multiple_of(cfg.output.frame_every.max(1)) || done == cfg.steps {
            frames.push(trainer.image()?);
        }
        on_step(done, cfg.steps, record.as_ref());
    }
    report.train_seconds = t0.elapsed().as_secs_f64();
    report.steps = cfg.steps;
    let last = frames
        .last()
        .cloned()
        .ok_or_else(|| config_err("output", "no frame"))?;
    let gif = out.join("progress.gif");
    write_gif(&gif, &frames, 120)?;
    let png = out.join("final.png");
    write_png(&png, &last)?;
    report.frames = frames.len();
    report.outputs = vec![gif, png, metrics_path];
    Ok(report)
}
