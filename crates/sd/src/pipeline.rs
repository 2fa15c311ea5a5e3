//! A whole SD 2.x model loaded from a diffusers folder, and text-to-image sampling with DDIM
//! and classifier-free guidance (diffusers `StableDiffusionPipeline` with `DDIMScheduler`,
//! η = 0), the user's sanity check that weights and port are right.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use crate::scheduler::{Ddim, NoiseSchedule};
use crate::tokenizer::ClipTokenizer;
use crate::{Precision, SdError, TextEncoder, UNet, Vae};

/// Tokenizer, text encoder, U-Net, VAE and noise schedule of one model folder.
#[derive(Debug)]
pub struct StableDiffusion {
    /// The resolved diffusers folder.
    pub dir: PathBuf,
    /// CLIP tokenizer (the folder's own vocabulary when present).
    pub tokenizer: ClipTokenizer,
    /// Text encoder.
    pub text_encoder: TextEncoder,
    /// Denoiser.
    pub unet: UNet,
    /// Autoencoder.
    pub vae: Vae,
    /// ᾱ_t and the prediction type from `scheduler/scheduler_config.json`.
    pub schedule: NoiseSchedule,
    /// The device every component lives on.
    pub device: Device,
}

/// The component folders a diffusers Stable Diffusion folder must have.
pub const COMPONENTS: [&str; 4] = ["text_encoder", "unet", "vae", "scheduler"];

impl StableDiffusion {
    /// Load every component of `dir` onto `device` in `precision`. With `verify`, each weight
    /// file whose name and size match a published SD 2.1 file is checked by sha256 first.
    ///
    /// # Errors
    /// [`SdError::Model`] listing every missing component folder or config; config, weight,
    /// tokenizer and scheduler errors naming the file.
    pub fn load(
        dir: &Path,
        device: &Device,
        precision: Precision,
        verify: bool,
    ) -> Result<Self, SdError> {
        let mut missing = vec![];
        for c in COMPONENTS {
            let cfg = if c == "scheduler" {
                "scheduler_config.json"
            } else {
                "config.json"
            };
            if !dir.join(c).join(cfg).is_file() {
                missing.push(format!("{c}/{cfg}"));
            }
        }
        if !missing.is_empty() {
            return Err(SdError::Model(format!(
                "{}: not a complete diffusers Stable Diffusion folder: missing {}",
                dir.display(),
                missing.join(", ")
            )));
        }
        if verify {
            for (c, stem) in [
                ("text_encoder", "model"),
                ("unet", "diffusion_pytorch_model"),
                ("vae", "diffusion_pytorch_model"),
            ] {
                let f = crate::model::component_weights(&dir.join(c), stem)?;
                match crate::model::verify_published(&f)? {
                    Some(entry) => tracing::info!("{}: sha256 matches {entry}", f.display()),
                    None => tracing::warn!(
                        "{}: no published hash for this file name and size; not verified",
                        f.display()
                    ),
                }
            }
        }
        let schedule = NoiseSchedule::from_file(dir.join("scheduler/scheduler_config.json"))?;
        // The pipeline keeps burn's convolution until the GPU kit has measured im2col.
        let conv = crate::nn::ConvAlgorithm::Direct;
        Ok(Self {
            dir: dir.to_path_buf(),
            tokenizer: ClipTokenizer::for_model_dir(dir)?,
            text_encoder: TextEncoder::from_dir(&dir.join("text_encoder"), device, precision)?,
            unet: UNet::from_dir(&dir.join("unet"), device, precision, conv)?,
            vae: Vae::from_dir(&dir.join("vae"), device, precision, conv)?,
            schedule,
            device: device.clone(),
        })
    }

    /// Put the tokenizer behind another text pipeline (open_clip's, the default, or
    /// transformers 4's slow one; see [`crate::tokenizer::TextPipeline`]).
    ///
    /// # Errors
    /// [`SdError::Tokenizer`] if the rebuilt tokenizer is rejected.
    pub fn set_text_pipeline(
        &mut self,
        pipeline: crate::tokenizer::TextPipeline,
    ) -> Result<(), SdError> {
        self.tokenizer = self.tokenizer.clone().with_text_pipeline(pipeline)?;
        Ok(())
    }

    /// Encode prompts to `encoder_hidden_states [B, 77, D]` (f32).
    ///
    /// # Errors
    /// Tokenizer errors; [`SdError::PromptTooLong`] for a prompt of more than 75 tokens
    /// (refused rather than cut).
    pub fn encode_prompts<S: AsRef<str>>(&self, prompts: &[S]) -> Result<Tensor<3>, SdError> {
        let mut ids = Vec::with_capacity(prompts.len());
        for p in prompts {
            ids.push(check_prompt(&self.tokenizer, p.as_ref())?);
        }
        self.text_encoder.forward(&ids)
    }

    /// The default image side: the U-Net's `sample_size` × the VAE's downscale (512 for
    /// SD 2.1-base, 768 for SD 2.1).
    pub fn default_size(&self) -> usize {
        self.unet.arch.config.sample_size.unwrap_or(64) * self.vae.downscale()
    }

    /// Text-to-image: DDIM with `opts.steps` steps (η = 0) and CFG form A from the seeded
    /// noise of [`gaussian`]. Returns the image `[1, 3, H, W]` in [0, 1]. `progress(i, n)` is
    /// called after each step. Follows diffusers `StableDiffusionPipeline.__call__` with a
    /// `DDIMScheduler` made from the folder's scheduler config.
    ///
    /// # Errors
    /// Size not a multiple of the VAE downscale, zero steps, tokenizer or scheduler errors.
    pub fn txt2img(
        &self,
        opts: &SampleOptions,
        progress: impl FnMut(usize, usize),
    ) -> Result<Tensor<4>, SdError> {
        let shape = self.latent_shape(opts)?;
        let latents = self.denoise(opts, gaussian(shape, opts.seed, &self.device), progress)?;
        Ok(self.decode_image(latents))
    }

    /// The initial latent shape `[1, C, H/f, W/f]` of `opts`' image size.
    ///
    /// # Errors
    /// [`SdError::Model`] when a side is zero or not a multiple of the VAE downscale f.
    pub fn latent_shape(&self, opts: &SampleOptions) -> Result<[usize; 4], SdError> {
        let f = self.vae.downscale();
        let (h, w) = (opts.height, opts.width);
        if h == 0 || w == 0 || h % f != 0 || w % f != 0 {
            return Err(SdError::Model(format!(
                "image size {w}×{h}: width and height must be positive multiples of {f}"
            )));
        }
        Ok([1, self.unet.arch.config.in_channels, h / f, w / f])
    }

    /// The sampling loop of [`txt2img`](Self::txt2img) from given initial latents
    /// `[1, C, H/f, W/f]` (DDIM's `init_noise_sigma` is 1, so they are used as they are):
    /// `opts.steps` DDIM steps (η = 0) with CFG form A, ε̂_∅ + s(ε̂_y − ε̂_∅) on the model
    /// output. Returns the final latents, not yet divided by the VAE's scaling factor.
    ///
    /// # Errors
    /// Zero steps, tokenizer or scheduler errors.
    pub fn denoise(
        &self,
        opts: &SampleOptions,
        mut latents: Tensor<4>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Tensor<4>, SdError> {
        if opts.steps == 0 {
            return Err(SdError::Model("--steps must be at least 1".into()));
        }
        let ddim = Ddim::new(&self.schedule, opts.steps)?;
        let ctx = self.encode_prompts(&[opts.negative.as_str(), opts.prompt.as_str()])?;
        let n = ddim.timesteps().len();
        for (i, &t) in ddim.timesteps().iter().enumerate() {
            let out = self.unet.forward(
                Tensor::cat(vec![latents.clone(), latents.clone()], 0),
                &[t as f64, t as f64],
                ctx.clone(),
            );
            let [u, c]: [Tensor<4>; 2] = out
                .chunk(2, 0)
                .try_into()
                .map_err(|_| SdError::Model("U-Net output batch is not 2".into()))?;
            let guided = crate::scheduler::cfg(u, c, opts.cfg_scale);
            latents = ddim.step(guided, t, latents, 0.0, None).0;
            progress(i + 1, n);
        }
        Ok(latents)
    }

    /// Decode final latents `[B, C, h, w]` (divided by the VAE's scaling factor first) to an
    /// image `[B, 3, h·f, w·f]` in [0, 1], as diffusers' `VaeImageProcessor.postprocess`
    /// (x/2 + 0.5, clamped).
    pub fn decode_image(&self, latents: Tensor<4>) -> Tensor<4> {
        let image = self.vae.decode(latents / self.vae.scaling_factor());
        ((image + 1.0) * 0.5).clamp(0.0, 1.0)
    }
}

/// Options of [`StableDiffusion::txt2img`].
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// The prompt.
    pub prompt: String,
    /// Negative prompt (the unconditional branch of CFG; "" for plain CFG).
    pub negative: String,
    /// DDIM steps.
    pub steps: usize,
    /// CFG scale s (form A: ε̂_∅ + s(ε̂_y − ε̂_∅)).
    pub cfg_scale: f64,
    /// Seed of the initial latent noise (host RNG, the same on every device).
    pub seed: u64,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

/// Standard-normal noise of `shape` from a seeded host RNG (splitmix64 + Box–Muller), so a
/// seed gives the same latents on every backend.
pub fn gaussian<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut state = seed ^ 0x5eed_5eed_5eed_5eed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        let (u1, u2) = (next(), next());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        v.push((r * a.cos()) as f32);
        v.push((r * a.sin()) as f32);
    }
    v.truncate(n);
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// The 77 ids of `prompt`, or [`SdError::PromptTooLong`] when it has more tokens than the
/// CLIP window holds (75 plus the start and end tokens). Needs no device, so callers can check
/// prompts before loading a model.
///
/// # Errors
/// Tokenizer errors and [`SdError::PromptTooLong`].
pub fn check_prompt(tokenizer: &ClipTokenizer, prompt: &str) -> Result<Vec<u32>, SdError> {
    let e = tokenizer.encode_full(prompt)?;
    if e.dropped > 0 {
        let max = crate::tokenizer::MAX_LENGTH - 2;
        let shown: String = prompt.chars().take(60).collect();
        return Err(SdError::PromptTooLong {
            prompt: if shown.len() < prompt.len() {
                format!("{shown}…")
            } else {
                shown
            },
            tokens: max + e.dropped,
            max,
            window: crate::tokenizer::MAX_LENGTH,
        });
    }
    Ok(e.ids)
}
