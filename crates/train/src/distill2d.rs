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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use distill::timesteps::TimestepSchedule;
use distill::{GuidanceConfig, GuidanceInput, Prior, Stat};
use rand::{SeedableRng, rngs::StdRng};
use sd::pipeline::{StableDiffusion, gaussian};
use serde::{Deserialize, Serialize};

use crate::generate::{
    GenerateError, check_distillation, check_run, check_vae_size, config_err, step_seed,
};
use crate::output::{to_rgb8, write_gif, write_png, write_text};
use optim::adam::{Adam, Moments};
use optim::guard::{DEFAULT_MAX_BAD_STEPS, StepGuard, keep_unless_bad, non_finite};
use optim::params::host;

/// What is optimised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// The scaled SD latent `[1, 4, size/8, size/8]` directly (SDS-Bridge, LODS, DreamMapping).
    #[default]
    Latent,
    /// RGB pixels `[1, 3, size, size]` in [0, 1], through the VAE encoder (LMC-SDS's pixel
    /// setting).
    Pixel,
}

/// `[output]` of `distill2d`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Output2d {
    /// Run folder.
    pub dir: PathBuf,
    /// Decode a progression frame every this many steps (and at the end).
    pub frame_every: u64,
    /// Log metrics every this many steps.
    pub log_every: u64,
}

impl Default for Output2d {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/distill2d"),
            frame_every: 50,
            log_every: 10,
        }
    }
}

/// Settings of `distill2d` (`--config` TOML). Defaults: SDS-Bridge's text-to-image setting
/// (docs/methods.md §4.4: a 64×64×4 latent from `randn`, lr 0.01, AdamW β = (0.9, 0.99),
/// ε = 1e-15 without weight decay) with the method chosen by `guidance.method`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Distill2dConfig {
    /// Diffusers folder or Hugging Face id.
    pub model: String,
    /// The text prompt.
    pub prompt: String,
    /// Negative prompt (the unconditional branch).
    pub negative_prompt: String,
    /// Seed.
    pub seed: u64,
    /// Optimisation steps.
    pub steps: u64,
    /// Image side in pixels (a multiple of the VAE downscale).
    pub size: u32,
    /// Latent or pixel parameter.
    pub space: Space,
    /// An image to start from (editing); resized and centre-cropped to `size`².
    pub init_image: Option<PathBuf>,
    /// Weight of `mean((x − x_init)²)` on the parameter (LMC-SDS editing: 0.1); needs
    /// `init_image`.
    pub init_l2: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Adam moments.
    pub adam: Adam,
    /// Diffusion model precision: f32 or f16.
    pub dtype: String,
    /// Guidance method and settings.
    pub guidance: GuidanceConfig,
    /// Timestep sampler.
    pub timesteps: TimestepSchedule,
    /// Outputs.
    pub output: Output2d,
}

impl Default for Distill2dConfig {
    fn default() -> Self {
        Self {
            model: "stabilityai/stable-diffusion-2-1-base".into(),
            prompt: String::new(),
            negative_prompt: String::new(),
            seed: 0,
            steps: 2_500,
            size: 512,
            space: Space::Latent,
            init_image: None,
            init_l2: 0.0,
            lr: 0.01,
            adam: Adam {
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-15,
            },
            dtype: "f32".into(),
            guidance: GuidanceConfig::default(),
            timesteps: TimestepSchedule::Uniform {
                t_min: 20,
                t_max: 980,
            },
            output: Output2d::default(),
        }
    }
}

/// Check the settings before any work.
///
/// # Errors
/// [`GenerateError::Config`] naming the first unusable field.
pub fn validate(cfg: &Distill2dConfig) -> Result<(), GenerateError> {
    check_run(&cfg.prompt, cfg.steps)?;
    if cfg.size < 8 || !cfg.size.is_multiple_of(8) {
        return Err(config_err("size", "must be a positive multiple of 8"));
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(config_err("lr", "must be positive"));
    }
    if !(cfg.init_l2 >= 0.0 && cfg.init_l2.is_finite()) {
        return Err(config_err("init_l2", "must be non-negative"));
    }
    if cfg.init_l2 > 0.0 && cfg.init_image.is_none() {
        return Err(config_err("init_l2", "needs init_image"));
    }
    check_distillation(&cfg.dtype, &cfg.guidance, &cfg.timesteps)
}

/// `[1, 3, size, size]` in [−1, 1] from an image file, resized to cover `size`² and
/// centre-cropped.
///
/// # Errors
/// [`GenerateError::Io`] naming the file when it cannot be read or decoded.
pub fn load_image(path: &Path, size: u32, device: &Device) -> Result<Tensor<4>, GenerateError> {
    let img = image::open(path)
        .map_err(|e| GenerateError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .resize_to_fill(size, size, image::imageops::FilterType::Lanczos3)
        .to_rgb8();
    let s = size as usize;
    let mut v = vec![0f32; 3 * s * s];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            v[c * s * s + y as usize * s + x as usize] = p[c] as f32 / 127.5 - 1.0;
        }
    }
    Ok(Tensor::from_data(TensorData::new(v, [1, 3, s, s]), device))
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record2d {
    /// 0-based step.
    pub step: u64,
    /// The injected pseudo-loss `½‖g‖²` (plus the L2 term).
    pub loss: f64,
    /// ‖g‖.
    pub grad_norm: f64,
    /// The step's timestep.
    pub t: usize,
    /// The guidance's statistics.
    pub guidance: serde_json::Map<String, serde_json::Value>,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report2d {
    /// Steps run.
    pub steps: u64,
    /// Seconds in the loop.
    pub train_seconds: f64,
    /// Progression frames written.
    pub frames: usize,
    /// Files written.
    pub outputs: Vec<PathBuf>,
    /// Largest device memory reserved by burn's allocator after any step, bytes (0 when the
    /// backend does not report it).
    pub peak_reserved_bytes: u64,
}

pub use optim::guard::reserved_bytes;

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
    device.seed(step_seed(cfg.seed, 0, 9));
    let mut guidance = distill::build(&cfg.guidance, device)?;
    let sf = model.vae.scaling_factor();
    let s = cfg.size as usize;
    let h = s / f;
    let init = match &cfg.init_image {
        Some(p) => Some(load_image(p, cfg.size, device)?),
        None => None,
    };
    // The parameter, flattened to [1, n] for Adam, and its initial value for the L2 pull.
    let (shape, mut param): ([usize; 4], Tensor<4>) = match (cfg.space, &init) {
        (Space::Latent, Some(img)) => ([1, 4, h, h], model.vae.encode(img.clone()).mean * sf),
        (Space::Latent, None) => ([1, 4, h, h], gaussian([1, 4, h, h], cfg.seed, device)),
        (Space::Pixel, Some(img)) => ([1, 3, s, s], (img.clone() + 1.0) * 0.5),
        (Space::Pixel, None) => ([1, 3, s, s], Tensor::full([1, 3, s, s], 0.5, device)),
    };
    let start_value = param.clone();
    let n: usize = shape.iter().product();
    let mut moments = Moments::zeros_like(&param.clone().reshape([1, n]));

    let extra = guidance.extra_prompts(&cfg.prompt);
    let mut texts = vec![cfg.prompt.clone(), cfg.negative_prompt.clone()];
    texts.extend(extra.iter().map(|e| e.text.clone()));
    let embeds = model.encode_prompts(&texts)?.detach();
    let cond = embeds.clone().narrow(0, 0, 1);
    let uncond = embeds.clone().narrow(0, 1, 1);
    let extra: Vec<Tensor<3>> = (0..extra.len())
        .map(|k| embeds.clone().narrow(0, 2 + k, 1))
        .collect();
    let prior = Prior {
        unet: &model.unet,
        schedule: &model.schedule,
    };
    let num_t = model.schedule.num_train_timesteps();

    let metrics_path = out.join("metrics.jsonl");
    write_text(&metrics_path, "")?;
    let mut metrics = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| GenerateError::Io {
            path: metrics_path.clone(),
            message: e.to_string(),
        })?;
    let decode = |p: &Tensor<4>| -> Result<image::RgbImage, GenerateError> {
        let rgb = match cfg.space {
            Space::Latent => (model.vae.decode(p.clone() / sf) + 1.0) * 0.5,
            Space::Pixel => p.clone(),
        };
        let hw = rgb.clamp(0.0, 1.0).squeeze_dim::<3>(0).permute([1, 2, 0]);
        Ok(to_rgb8(hw)?)
    };
    let mut frames = vec![decode(&param)?];
    let mut report = Report2d::default();
    let t0 = Instant::now();
    let mut guard = StepGuard::new(device, DEFAULT_MAX_BAD_STEPS);
    for step in 0..cfg.steps {
        let mut rng = StdRng::seed_from_u64(step_seed(cfg.seed, step, 1));
        let t = cfg.timesteps.sample(step as usize, 1, num_t, &mut rng);
        let x = param.clone().detach().autodiff().require_grad();
        let z = match cfg.space {
            Space::Latent => x.clone(),
            Space::Pixel => model.vae.encode(x.clone() * 2.0 - 1.0).mean * sf,
        };
        let latents = z.clone().detach().inner();
        let input = GuidanceInput {
            noise: gaussian(latents.dims(), step_seed(cfg.seed, step, 2), device),
            latents,
            timesteps: t.clone(),
            cond: cond.clone(),
            uncond: uncond.clone(),
            step: step as usize,
            seed: step_seed(cfg.seed, step, 3),
            extra: extra.clone(),
            c2w: None,
        };
        let g = guidance.gradient(&prior, &input)?;
        let mut loss = distill::inject(z, g.grad.clone());
        if cfg.init_l2 > 0.0 {
            loss = loss + (x.clone() - start_value.clone().detach()).square().mean() * cfg.init_l2;
        }
        let grads = loss.backward();
        let grad = x
            .grad(&grads)
            .ok_or_else(|| GenerateError::Device("no gradient reached the image".into()))?;
        // A non-finite guidance gradient, loss or image gradient skips the step.
        let grad = grad.reshape([1, n]);
        let bad = guard.check(vec![
            non_finite(&g.grad),
            non_finite(&loss.clone().inner()),
            non_finite(&grad),
        ]);
        let old = (param.clone().reshape([1, n]), moments.clone());
        let updated = cfg
            .adam
            .update(old.0.clone(), grad, &mut moments, step + 1, cfg.lr);
        moments.m = keep_unless_bad(moments.m.clone(), old.1.m, &bad);
        moments.v = keep_unless_bad(moments.v.clone(), old.1.v, &bad);
        param = keep_unless_bad(updated, old.0, &bad).reshape(shape);
        if cfg.space == Space::Pixel {
            param = param.clamp(0.0, 1.0);
        }
        let done = step + 1;
        report.peak_reserved_bytes = report.peak_reserved_bytes.max(reserved_bytes(device));
        let mut record = None;
        if step.is_multiple_of(cfg.output.log_every.max(1)) || done == cfg.steps {
            let gd = distill::finite_or_zero(g.grad.clone());
            let [skipped, run] = guard.device_parts();
            let mut parts = vec![
                loss.inner().reshape([1]),
                gd.square().sum().reshape([1]),
                skipped,
                run,
            ];
            parts.extend(g.stats.iter().filter_map(|(_, v)| match v {
                Stat::Device(t) => Some(t.clone().inner().reshape([1])),
                Stat::Host(_) => None,
            }));
            let k = parts.len();
            let vals =
                host(&Tensor::cat(parts, 0).reshape([1, k])).map_err(GenerateError::Device)?;
            if let Some(w) = guard.after_read(vals[2], vals[3], step + 1)? {
                tracing::warn!("{}: {w}", cfg.output.dir.display());
            }
            let mut dev = vals[4..].iter();
            let rec = Record2d {
                step,
                loss: vals[0] as f64,
                grad_norm: (vals[1] as f64).sqrt(),
                t: t[0],
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
            let line =
                serde_json::to_string(&rec).map_err(|e| config_err("metrics", e.to_string()))?;
            writeln!(metrics, "{line}").map_err(|e| GenerateError::Io {
                path: metrics_path.clone(),
                message: e.to_string(),
            })?;
            record = Some(rec);
        }
        if done.is_multiple_of(cfg.output.frame_every.max(1)) || done == cfg.steps {
            frames.push(decode(&param)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_validate() {
        let cfg = Distill2dConfig {
            prompt: "a fox".into(),
            ..Default::default()
        };
        let text = toml::to_string_pretty(&cfg).unwrap();
        let back: Distill2dConfig = toml::from_str(&text).unwrap();
        assert_eq!(toml::to_string_pretty(&back).unwrap(), text);
        validate(&cfg).unwrap();
        let bad = Distill2dConfig {
            init_l2: 0.1,
            ..cfg
        };
        assert!(validate(&bad).unwrap_err().to_string().contains("init_l2"));
    }

    #[test]
    fn shipped_2d_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let name = "distill2d-bridge.toml";
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let cfg: Distill2dConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cfg.guidance.method, "bridge");
        validate(&Distill2dConfig {
            prompt: "a fox".into(),
            ..cfg
        })
        .unwrap();
    }
}
