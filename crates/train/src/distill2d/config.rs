//! Settings of `distill2d` (`[distill2d]` TOML), what it reports, and the initial image.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use distill::GuidanceConfig;
use distill::timesteps::TimestepSchedule;
use serde::{Deserialize, Serialize};

use crate::generate::{GenerateError, check_distillation, check_run, config_err};
use optim::adam::Adam;

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
    /// The text pipeline in front of CLIP's BPE (`generate`'s `tokenizer`; open_clip by
    /// default).
    pub tokenizer: sd::tokenizer::TextPipeline,
    /// Guidance method and settings.
    pub guidance: GuidanceConfig,
    /// Timestep sampler of the 2D run. It replaces the methods' own (3D) schedules in
    /// `guidance.<method>.timesteps`: the papers' 2D experiments sample t uniformly (SDS-Bridge's
    /// 2D code from a 500-step DDIM grid, ≈ U{20, …, 980}), not with the 3D anneals.
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
            tokenizer: sd::tokenizer::TextPipeline::default(),
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
    check_distillation(&cfg.dtype, &cfg.guidance, Some(&cfg.timesteps))
}

/// `[1, 3, size, size]` in [−1, 1] from an image file through the workspace's one image
/// loader, `datasets::square_rgb_chw` (alpha over white, resized to cover `size`² with
/// Lanczos3, centre-cropped).
///
/// # Errors
/// [`GenerateError::Io`] naming the file when it cannot be read or decoded.
pub fn load_image(path: &Path, size: u32, device: &Device) -> Result<Tensor<4>, GenerateError> {
    let v = datasets::square_rgb_chw(path, size).map_err(|e| GenerateError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let s = size as usize;
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
