//! `generate`'s settings ([`GenerateConfig`] and its sections, the TOML of `--config`), their
//! validation, and the run's error type.

use std::path::{Path, PathBuf};

use distill::GuidanceConfig;
use distill::cameras::CameraConfig;
use distill::prompts::ViewPromptConfig;
use distill::timesteps::TimestepSchedule;
use rand::{Rng, rngs::StdRng};
use sd::pipeline::StableDiffusion;
use serde::{Deserialize, Serialize};

use crate::background::{Background, NamedBackground};
use crate::checkpoint::{CheckpointError, hash_text};
use crate::output::{ExtraFormat, OutputError};
use crate::video::TurntableFormat;
use datasets::mesh::GeometryError;
use optim::adam::{Adam, exp_decay};
use optim::densify::{DefaultStrategy, Strategy};

/// LucidDreamer's negative prompt (docs/methods.md §5.4, [EXT]).
pub const LUCID_NEGATIVE: &str = "unrealistic, blurry, low quality, out of focus, ugly, low contrast, dull, dark, low-resolution, oversaturation.";

/// Where the initial splats come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// `count` points uniform in a ball of `radius`.
    Sphere,
    /// An INRIA splat PLY (`path`), used as is.
    Ply,
    /// A point-cloud PLY (`path`: `x, y, z[, red, green, blue]`), one splat per point.
    Points,
    /// `count` points sampled on a mesh surface (`path`: `.obj`, `.glb`, `.gltf`), the
    /// stand-in for DreamMapping's Shap-E initialisation.
    Mesh,
    /// A coarse stage of the run's own prior: SDS (the run's `[guidance.sds]` settings) for
    /// `coarse_steps` steps at `coarse_resolution`, from the sphere of this table, its
    /// densification and timestep schedules rescaled to the stage's length; its splats seed
    /// the main stage (issue 26: the stand-in for a Shap-E/Point-E geometry when no such model
    /// is at hand; DreamFusion-style coarse-to-fine).
    Coarse,
}

/// `[init]`: the initial splats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// Source.
    pub kind: InitKind,
    /// File for `ply`, `points` and `mesh`.
    pub path: Option<PathBuf>,
    /// Points for `sphere` and `mesh` ([S4]: ≈50,000).
    pub count: usize,
    /// Radius of the sphere; `points` and `mesh` are normalised to fit inside it (bounding-box
    /// centre at the origin, farthest point at `radius`). 0.8 keeps the object inside the
    /// narrowest default view (FoV 18.3° at distance 5.2 sees ±0.84) [REC].
    pub radius: f32,
    /// One colour for every point (`[r, g, b]` in [0, 1]); unset: random colours for the
    /// sphere, the file's colours (grey where none) for `points` and `mesh`.
    pub colour: Option<[f32; 3]>,
    /// Initial opacity (3DGS / LucidDreamer: 0.1).
    pub opacity: f32,
    /// Multiplier on the nearest-neighbour scales.
    pub scale_factor: f32,
    /// Whether `points`/`mesh` files are y-up with the front facing +z (OBJ/glTF convention)
    /// and must be turned to the z-up, front-facing-+x world of the camera sampler.
    pub y_up: bool,
    /// Steps of the `coarse` stage.
    pub coarse_steps: u64,
    /// Image side of the `coarse` stage in pixels (0 = half the run's `resolution`), rounded
    /// down to a multiple of 8 latent pixels (64 for SD 2.1, 32 for the toy prior).
    pub coarse_resolution: u32,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            kind: InitKind::Sphere,
            path: None,
            count: 50_000,
            radius: 0.8,
            colour: None,
            opacity: 0.1,
            scale_factor: 1.0,
            y_up: true,
            coarse_steps: 300,
            coarse_resolution: 0,
        }
    }
}

/// `[lr]`: Adam learning rates per parameter group (LucidDreamer, docs/methods.md §5.4
/// [EXT]). Each decays exponentially from its initial to its final value over the run; the
/// means' rates are multiplied by `spatial_lr_scale` and decay over `means_decay_steps`
/// (LucidDreamer `GaussianModel.training_setup`: `position_lr_init × spatial_lr_scale` →
/// `position_lr_final × spatial_lr_scale` with `max_steps = iterations`, the scale being
/// `scene.cameras_extent = default_radius = 3.5`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningRates {
    /// Means, initial.
    pub means: f64,
    /// Means, final.
    pub means_final: f64,
    /// Steps of the means' decay; 0 = the run's own length (LucidDreamer; issue 26: we
    /// decayed over 3DGS's fixed 30,000 steps, so a 5,000-step run ended at 46 % of the way).
    pub means_decay_steps: u64,
    /// Multiplies `means` and `means_final` (LucidDreamer's `spatial_lr_scale`, its camera
    /// `default_radius` 3.5; 3DGS uses the training cameras' extent). World units.
    pub spatial_lr_scale: f64,
    /// Colour (SH DC), initial.
    pub sh_dc: f64,
    /// Colour, final.
    pub sh_dc_final: f64,
    /// Opacity logits.
    pub opacity_logits: f64,
    /// Log scales, initial.
    pub log_scales: f64,
    /// Log scales, final.
    pub log_scales_final: f64,
    /// Rotations, initial.
    pub quats: f64,
    /// Rotations, final.
    pub quats_final: f64,
}

impl Default for LearningRates {
    fn default() -> Self {
        Self {
            means: 1.6e-4,
            means_final: 1.6e-6,
            means_decay_steps: 0,
            spatial_lr_scale: 3.5,
            sh_dc: 5e-3,
            sh_dc_final: 3e-3,
            opacity_logits: 5e-2,
            log_scales: 5e-3,
            log_scales_final: 1e-3,
            quats: 1e-3,
            quats_final: 2e-4,
        }
    }
}

impl LearningRates {
    /// The six per-group rates (params order) at 0-based `step` of a run of `steps`.
    pub fn at(&self, step: u64, steps: u64) -> [f64; 6] {
        let d = |a: f64, b: f64| exp_decay(a, b, step, steps);
        let dc = d(self.sh_dc, self.sh_dc_final);
        let means_steps = if self.means_decay_steps == 0 {
            steps
        } else {
            self.means_decay_steps
        };
        let s = self.spatial_lr_scale;
        [
            exp_decay(self.means * s, self.means_final * s, step, means_steps),
            d(self.quats, self.quats_final),
            d(self.log_scales, self.log_scales_final),
            self.opacity_logits,
            dc,
            dc / 20.0,
        ]
    }
}

/// `[background]`: what the renders are composited over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackgroundConfig {
    /// `"white"`, `"black"`, `"random"` or `[r, g, b]` (LucidDreamer: white).
    pub colour: Background,
    /// Probability of an augmented background instead of `colour` (LucidDreamer's
    /// `bg_aug_ratio`: 0.5 in its argument defaults, 0.66 in every shipped config).
    pub random_ratio: f64,
    /// Share of the augmented backgrounds that are black rather than a uniformly random colour
    /// (LucidDreamer `gaussian_renderer.render`: 0.5; 0 here before issue 26).
    pub black_share: f64,
    /// Draw the background per view of the batch (LucidDreamer renders each view apart and
    /// draws its background there) rather than once per step.
    pub per_view: bool,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        Self {
            colour: Background::Named(NamedBackground::White),
            random_ratio: 0.5,
            black_share: 0.0,
            per_view: false,
        }
    }
}

impl BackgroundConfig {
    /// One background draw: with probability `random_ratio` an augmented one (black with
    /// probability `black_share`, else a uniformly random colour), else `colour`.
    pub fn sample(&self, rng: &mut StdRng) -> [f32; 3] {
        if self.random_ratio > 0.0 && rng.random::<f64>() < self.random_ratio {
            if self.black_share > 0.0 && rng.random::<f64>() < self.black_share {
                [0.0; 3]
            } else {
                std::array::from_fn(|_| rng.random())
            }
        } else {
            self.colour.train(rng)
        }
    }

    /// The backgrounds of a batch of `views`: one draw per view when `per_view`, else one draw
    /// repeated.
    pub fn sample_views(&self, views: usize, rng: &mut StdRng) -> Vec<[f32; 3]> {
        if self.per_view {
            (0..views).map(|_| self.sample(rng)).collect()
        } else {
            vec![self.sample(rng); views]
        }
    }
}

/// `[latents]`: how a render becomes the latents the guidance sees, and the noise added to them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatentConfig {
    /// Encode to a sample of the VAE posterior, `mean + std·ε`, instead of its mean
    /// (LucidDreamer `StableDiffusion.encode_imgs`: `latent_dist.sample()`).
    pub posterior_sample: bool,
    /// Offset noise: `ε + offset·ε'` with one `ε' [1, 4, 1, 1]` per step shared by the batch
    /// (LucidDreamer `StableDiffusion.train_step`: 0.1).
    pub noise_offset: f64,
    /// Probability per step that the VAE encodes the views' normalised disparity
    /// ([`super::lucid_disparity`], grey, the same value in R, G and B) instead of their colour,
    /// so that the guidance shapes the geometry alone (LucidDreamer `train.py`:
    /// `random.random() < opt.as_latent_ratio`, 0.2 in every shipped config, then
    /// `StableDiffusion.train_step(as_latent=True)`: `encode_imgs(pred_depth.repeat(1, 3, 1, 1))`).
    /// One draw per step for the whole batch; 0 = never (the default).
    pub depth_ratio: f64,
}

impl Default for LatentConfig {
    fn default() -> Self {
        Self {
            posterior_sample: false,
            noise_offset: 0.0,
            depth_ratio: 0.0,
        }
    }
}

impl LatentConfig {
    /// Whether step `step` of a run seeded `seed` encodes the disparity instead of the colour
    /// (`depth_ratio`; the draw has its own stream, `step_seed(seed, step, 6)`, so setting it
    /// leaves every other draw of the run unchanged).
    pub fn depth_step(&self, seed: u64, step: u64) -> bool {
        use rand::{Rng, SeedableRng};
        self.depth_ratio > 0.0
            && rand::rngs::StdRng::seed_from_u64(optim::rng::step_seed(seed, step, 6))
                .random::<f64>()
                < self.depth_ratio
    }
}

/// `[output]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Run folder.
    pub dir: PathBuf,
    /// Save a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Read back and log metrics every this many steps (each is a device sync).
    pub log_every: u64,
    /// Turntable frames (0 = no turntable).
    pub turntable_frames: usize,
    /// Side of the turntable frames and grid views in pixels.
    pub turntable_size: u32,
    /// Container of the turntable: `"gif"` (`turntable.gif`) or `"mp4"` (`turntable.mp4`,
    /// H.264).
    pub turntable: TurntableFormat,
    /// Compressed copies of the final scene beside `point_cloud.ply`: `"spz"`
    /// (`point_cloud.spz`, SPZ 4) and/or `"compressed.ply"` (`point_cloud.compressed.ply`).
    pub formats: Vec<ExtraFormat>,
    /// Also write `mesh.glb`: the scene's surface as a coloured triangle mesh (`splatdream
    /// mesh`'s defaults; y-up).
    pub mesh: bool,
    /// Views in `views.png` (0 = none), four per row.
    pub views: usize,
    /// Write a snapshot `point_cloud_<step>.ply` every this many steps (0 = none; the final
    /// `point_cloud.ply` is always written). A snapshot due inside an opacity reset's recovery
    /// window is written when the window has passed, named by that step.
    pub ply_every: u64,
    /// Up axis of the written splat files (`point_cloud*.ply`, `.spz`, `.compressed.ply`):
    /// `"-y"` (default; the COLMAP frame, which SuperSplat and PlayCanvas show upright),
    /// `"y"` (three.js-style viewers) or `"z"` (the training world unchanged). The PLY header
    /// records it and our readers turn such a file back to the z-up world
    /// ([`splat::transform::UpAxis`]).
    pub up: splat::transform::UpAxis,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/generate"),
            checkpoint_every: 500,
            log_every: 10,
            turntable_frames: 60,
            turntable_size: 256,
            turntable: TurntableFormat::Gif,
            formats: vec![],
            mesh: false,
            views: 8,
            ply_every: 0,
            up: splat::transform::UpAxis::NegY,
        }
    }
}

/// Everything `generate` needs; the TOML form of `splatdream generate --config`. Defaults are
/// the DreamMapping / LucidDreamer setting (docs/methods.md §5.4) except the guidance method,
/// whose struct default is SDS (configs/dreammapping.toml selects VDM).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// Diffusers folder or Hugging Face id (found in the local HF cache).
    pub model: String,
    /// The text prompt.
    pub prompt: String,
    /// Negative prompt (the unconditional branch of CFG).
    pub negative_prompt: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// Optimisation steps ([S4]: 5,000).
    pub steps: u64,
    /// Cameras per step ([S4]: 4).
    pub batch: usize,
    /// Render side in pixels (512 for SD 2.1-base; a multiple of the VAE downscale).
    pub resolution: u32,
    /// Diffusion model precision: f32 or f16.
    pub dtype: String,
    /// The text pipeline in front of CLIP's BPE: `"open_clip"` (what SD 2.x was trained with,
    /// the default) or `"transformers-slow"` (transformers 4's slow tokenizer, for parity with
    /// diffusers runs made with it; the two differ on CJK text, `!` and HTML entities).
    pub tokenizer: sd::tokenizer::TextPipeline,
    /// Stop as diverged after this many consecutive steps with a NaN or infinite loss or
    /// gradient (each is skipped: the splats are left unchanged; 0 = never stop).
    pub max_bad_steps: u64,
    /// Guidance method and settings.
    pub guidance: GuidanceConfig,
    /// Run-level timestep schedule that replaces the method's own
    /// (`[guidance.<method>.timesteps]`, the paper's by default); absent unless set. Config
    /// files written before the schedules moved into the methods' tables have it here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timesteps: Option<TimestepSchedule>,
    /// Draw one t per step, shared by every view of the batch (DreamMapping's Algorithm 1;
    /// docs/methods.md §5, "One optimisation step", item 2), instead of one t per view (LucidDreamer's `train.py`,
    /// the default).
    pub shared_timestep: bool,
    /// Camera sampler.
    pub cameras: CameraConfig,
    /// View-dependent prompts.
    pub prompts: ViewPromptConfig,
    /// Initial splats.
    pub init: InitConfig,
    /// Learning rates.
    pub lr: LearningRates,
    /// Adam.
    pub adam: Adam,
    /// Densification (3DGS strategy with LucidDreamer's schedule).
    pub densify: Strategy,
    /// Background.
    pub background: BackgroundConfig,
    /// Encoding and noising of the latents.
    pub latents: LatentConfig,
    /// LucidDreamer's extra losses (off by default).
    pub regularisers: super::RegulariserConfig,
    /// Outputs.
    pub output: OutputConfig,
}

impl GenerateConfig {
    /// The timestep schedule this run samples from: the run-level `timesteps` when set, else
    /// the selected method's own (`guidance.<method>.timesteps`).
    ///
    /// # Errors
    /// [`GenerateError::Config`] `guidance.method` for a method this build does not have.
    pub fn timestep_schedule(&self) -> Result<&TimestepSchedule, GenerateError> {
        match &self.timesteps {
            Some(t) => Ok(t),
            None => self.guidance.timesteps().map_err(setting_err),
        }
    }
}

/// LucidDreamer's densification mapped onto the 3DGS strategy: refine every 100 steps from
/// step 100 to 3,000, gradient threshold 7.5e-4, `percent_dense` 0.003, opacity reset every
/// 300 steps (docs/methods.md §5.4 [EXT]); pruning thresholds are 3DGS's.
pub fn lucid_densify() -> Strategy {
    Strategy::Default(DefaultStrategy {
        start: 100,
        stop: 3_000,
        every: 100,
        reset_every: 300,
        grow_grad2d: 7.5e-4,
        grow_scale3d: 0.003,
        ..DefaultStrategy::default()
    })
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            model: "stabilityai/stable-diffusion-2-1-base".into(),
            prompt: String::new(),
            negative_prompt: LUCID_NEGATIVE.into(),
            seed: 0,
            steps: 5_000,
            batch: 4,
            resolution: 512,
            dtype: "f32".into(),
            tokenizer: sd::tokenizer::TextPipeline::default(),
            max_bad_steps: optim::guard::DEFAULT_MAX_BAD_STEPS,
            guidance: GuidanceConfig::default(),
            timesteps: None,
            shared_timestep: false,
            cameras: CameraConfig::default(),
            prompts: ViewPromptConfig::default(),
            init: InitConfig::default(),
            lr: LearningRates::default(),
            adam: Adam::default(),
            densify: lucid_densify(),
            background: BackgroundConfig::default(),
            latents: LatentConfig::default(),
            regularisers: super::RegulariserConfig::default(),
            output: OutputConfig::default(),
        }
    }
}

/// Errors of `generate`.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A setting is unusable.
    #[error("config: `{field}`: {message}")]
    Config {
        /// Dotted field name.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Loading or running the diffusion model failed.
    #[error(transparent)]
    Sd(#[from] sd::SdError),
    /// The guidance failed or is misconfigured.
    #[error(transparent)]
    Distill(#[from] distill::DistillError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] splat::RenderError),
    /// Reading an initial splat PLY failed.
    #[error(transparent)]
    Ply(#[from] splat::ply::PlyError),
    /// A scene file in another format (compressed PLY, SPZ, `.splat`) could not be read or
    /// written; names the file and field.
    #[error(transparent)]
    Scene(#[from] splat::formats::SceneError),
    /// Writing `mesh.glb` failed; names the file.
    #[error(transparent)]
    Mesh(#[from] splat::extract::write::MeshWriteError),
    /// Reading a mesh or point cloud failed.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// Writing an output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Saving or loading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Writing `metrics.jsonl` failed.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// File-system error.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// A device read failed.
    #[error(transparent)]
    Device(#[from] gpu::ReadError),
    /// Too many consecutive steps had a non-finite loss or gradient.
    #[error(transparent)]
    Diverged(#[from] optim::guard::Diverged),
    /// SIGINT/SIGTERM: a checkpoint was saved and the run stopped.
    #[error("{0}")]
    Interrupted(#[from] live::stop::Interrupted),
}

pub(crate) fn config_err(field: &str, message: impl Into<String>) -> GenerateError {
    GenerateError::Config {
        field: field.into(),
        message: message.into(),
    }
}

/// A distill setting out of range as the config field it names.
fn setting_err(e: distill::DistillError) -> GenerateError {
    match e {
        distill::DistillError::Setting { name, detail } => config_err(&name, detail),
        other => other.into(),
    }
}

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The prompt is not empty and there is at least one step (`generate` and `distill2d`).
///
/// # Errors
/// [`GenerateError::Config`] naming `prompt` or `steps`.
pub(crate) fn check_run(prompt: &str, steps: u64) -> Result<(), GenerateError> {
    if prompt.trim().is_empty() {
        return Err(config_err("prompt", "is empty; pass --prompt \"…\""));
    }
    if steps == 0 {
        return Err(config_err("steps", "must be at least 1"));
    }
    Ok(())
}

/// The largest VAE activation of a batch fits one device buffer: `batch` images of
/// `side`² through the VAE at full resolution hold `batch × block_out_channels[0] × side²`
/// values (the encoder's first and the decoder's last blocks, and their gradients), which
/// burn allocates as one buffer each. Checked before any work, so the run fails at once
/// naming the settings instead of minutes later inside the allocator.
///
/// # Errors
/// [`GenerateError::Config`] naming `side_field` and `batch_field`.
pub(crate) fn check_vae_size(
    model: &StableDiffusion,
    dtype: &str,
    batch: usize,
    side: u32,
    (batch_field, side_field): (&str, &str),
) -> Result<(), GenerateError> {
    let ch = model
        .vae
        .config
        .block_out_channels
        .first()
        .copied()
        .unwrap_or(0) as u64;
    let elem: u64 = if dtype == "f16" { 2 } else { 4 };
    let bytes = batch as u64 * ch * side as u64 * side as u64 * elem;
    let limit = gpu::alloc::max_binding_size();
    if bytes > limit {
        let lower = if batch_field == side_field {
            format!("`{side_field}`")
        } else {
            format!("`{side_field}` or `{batch_field}`")
        };
        return Err(config_err(
            side_field,
            format!(
                "{batch} image(s) of {side}² through the VAE need {bytes}-byte activations ({batch} × {ch} channels × {side}² × {elem} bytes), above this device's storage-binding limit of {limit} bytes; lower {lower}"
            ),
        ));
    }
    Ok(())
}

/// The model precision parses, the guidance method is built in and the timestep schedules
/// (the run-level one when set, and every method's) are ordered (`generate` and `distill2d`).
///
/// # Errors
/// [`GenerateError::Config`] naming `dtype`, `guidance.method`, `timesteps` or
/// `guidance.<method>.timesteps`.
pub(crate) fn check_distillation(
    dtype: &str,
    guidance: &GuidanceConfig,
    timesteps: Option<&TimestepSchedule>,
) -> Result<(), GenerateError> {
    dtype
        .parse::<sd::Precision>()
        .map_err(|e| config_err("dtype", e))?;
    if !distill::METHODS.contains(&guidance.method.as_str()) {
        return Err(config_err(
            "guidance.method",
            format!(
                "unknown method `{}`; this build has: {}",
                guidance.method,
                distill::METHODS.join(", ")
            ),
        ));
    }
    if let Some(t) = timesteps {
        t.validate("timesteps").map_err(setting_err)?;
    }
    guidance.validate_timesteps().map_err(setting_err)
}

/// Check a configuration before any work.
///
/// # Errors
/// [`GenerateError::Config`] naming the first unusable field.
pub fn validate(cfg: &GenerateConfig) -> Result<(), GenerateError> {
    check_run(&cfg.prompt, cfg.steps)?;
    if cfg.batch == 0 {
        return Err(config_err("batch", "must be at least 1"));
    }
    if cfg.resolution < 8 || !cfg.resolution.is_multiple_of(8) {
        return Err(config_err(
            "resolution",
            "must be a positive multiple of 8 (the VAE downscale)",
        ));
    }
    check_distillation(&cfg.dtype, &cfg.guidance, cfg.timesteps.as_ref())?;
    cfg.cameras.validate().map_err(setting_err)?;
    if !matches!(cfg.init.kind, InitKind::Sphere | InitKind::Coarse) && cfg.init.path.is_none() {
        return Err(config_err(
            "init.path",
            format!("init.kind = \"{:?}\" needs a file", cfg.init.kind).to_lowercase(),
        ));
    }
    if matches!(
        cfg.init.kind,
        InitKind::Sphere | InitKind::Mesh | InitKind::Coarse
    ) && cfg.init.count == 0
    {
        return Err(config_err("init.count", "must be at least 1"));
    }
    if !(cfg.init.radius > 0.0 && cfg.init.radius.is_finite()) {
        return Err(config_err("init.radius", "must be positive"));
    }
    if !(cfg.init.opacity > 0.0 && cfg.init.opacity < 1.0) {
        return Err(config_err("init.opacity", "must be in (0, 1)"));
    }
    if !(0.0..=1.0).contains(&cfg.background.random_ratio) {
        return Err(config_err("background.random_ratio", "must be in [0, 1]"));
    }
    if !(0.0..=1.0).contains(&cfg.background.black_share) {
        return Err(config_err("background.black_share", "must be in [0, 1]"));
    }
    if !(cfg.latents.noise_offset.is_finite() && cfg.latents.noise_offset >= 0.0) {
        return Err(config_err("latents.noise_offset", "must be finite and ≥ 0"));
    }
    if !(0.0..=1.0).contains(&cfg.latents.depth_ratio) {
        return Err(config_err("latents.depth_ratio", "must be in [0, 1]"));
    }
    let r = &cfg.regularisers;
    for (name, v) in [
        ("regularisers.tv_image", r.tv_image),
        ("regularisers.tv_depth", r.tv_depth),
        ("regularisers.mean_scale", r.mean_scale),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(config_err(name, "must be finite and ≥ 0"));
        }
    }
    if cfg.init.kind == InitKind::Coarse && cfg.init.coarse_steps == 0 {
        return Err(config_err(
            "init.coarse_steps",
            "must be at least 1 for kind = \"coarse\"",
        ));
    }
    if let Background::Rgb(c) = cfg.background.colour
        && c.iter().any(|v| !(0.0..=1.0).contains(v))
    {
        return Err(config_err(
            "background.colour",
            "components must be in [0, 1]",
        ));
    }
    let l = &cfg.lr;
    for (name, v) in [
        ("lr.means", l.means),
        ("lr.means_final", l.means_final),
        ("lr.sh_dc", l.sh_dc),
        ("lr.sh_dc_final", l.sh_dc_final),
        ("lr.log_scales", l.log_scales),
        ("lr.log_scales_final", l.log_scales_final),
        ("lr.quats", l.quats),
        ("lr.quats_final", l.quats_final),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(config_err(name, "must be positive (exponential decay)"));
        }
    }
    if !(l.spatial_lr_scale > 0.0 && l.spatial_lr_scale.is_finite()) {
        return Err(config_err("lr.spatial_lr_scale", "must be positive"));
    }
    if !(l.opacity_logits >= 0.0 && l.opacity_logits.is_finite()) {
        return Err(config_err("lr.opacity_logits", "must be non-negative"));
    }
    Ok(())
}

/// Resolved config as TOML.
///
/// # Errors
/// [`GenerateError::Config`] when serialisation fails.
pub fn to_toml(cfg: &GenerateConfig) -> Result<String, GenerateError> {
    toml::to_string_pretty(cfg).map_err(|e| config_err("<all>", e.to_string()))
}

/// Hash of the settings that define the optimisation (everything but `steps` and `output`,
/// which a resumed run may change).
pub(crate) fn config_hash(cfg: &GenerateConfig) -> String {
    let mut c = cfg.clone();
    c.steps = 0;
    c.output = OutputConfig::default();
    hash_text(&toml::to_string(&c).unwrap_or_default())
}
