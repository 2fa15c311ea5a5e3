//! `generate`: text to Gaussian splats by score distillation (DreamFusion-style SDS, or
//! DreamMapping's VDM + DCA once `distill` has it), everything on one device.
//!
//! One step (docs/architecture.md, docs/methods.md §0 and §5.5):
//! 1. sample `batch` cameras ([`distill::cameras::CameraConfig::sample`]) and a background;
//! 2. render the splats at `resolution`² (autodiff) → `rgb [B, H, W, 3]` in [0, 1];
//! 3. `image = 2·rgb − 1` as NCHW (the one layout conversion), `z = E(image).mean · s_vae`
//!    through the VAE encoder with the gradient path kept;
//! 4. sample `t` per sample ([`distill::timesteps::TimestepSchedule`]) and `ε ~ N(0, I)`;
//! 5. the guidance computes `g` from the detached `z`, the view-dependent prompt embeddings
//!    (front/side/back/overhead, encoded once at the start) and the negative prompt;
//! 6. inject `g` with the pseudo-loss `½‖z − sg(z − g)‖²` ([`distill::inject`]), backpropagate
//!    through the VAE encoder and the rasterizer, Adam on the splat parameters, densify.
//!
//! The step is [`crate::generate_trainer::GenerateTrainer::step`]; [`generate`] drives it.
//!
//! Randomness: every draw of step `k` (cameras, background, timesteps, noise) comes from a
//! generator seeded by `(seed, k)`, so a resumed run continues exactly where the saved run
//! would have (the densifier draws the choices of the refinement after step `k` the same way).
//!
//! Outputs in `output.dir`: `config.toml` (resolved, with the seed), `metrics.jsonl` (one JSON
//! object per logged step), `checkpoints/step-*.safetensors` (+ `.json`), and at the end
//! `point_cloud.ply` (INRIA), `turntable.gif` and `views.png`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use distill::cameras::CameraConfig;
use distill::prompts::{View, ViewPromptConfig, ViewPrompts};
use distill::timesteps::TimestepSchedule;
use distill::{GuidanceConfig, Stat};
use glam::Vec3;
use rand::{Rng, rngs::StdRng};
use sd::pipeline::StableDiffusion;
use serde::{Deserialize, Serialize};
use splat::{Camera, RenderOptions};

use crate::adam::{Adam, exp_decay};
use crate::checkpoint::{Checkpoint, CheckpointError, Meta, hash_text, training_entries};
use crate::densify::{DefaultStrategy, Densifier, Strategy};
use crate::fit::{Background, NamedBackground};
use crate::generate_trainer::GenerateTrainer;
use crate::init::{from_points, sphere_points};
use crate::mesh::{GeometryError, Mesh, normalise, read_point_cloud, y_up_to_z_up};
use crate::output::{OutputError, grid, render_frames, write_gif, write_png, write_text};
use crate::params::{Gaussians, host};

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
        }
    }
}

/// `[lr]`: Adam learning rates per parameter group (LucidDreamer, docs/methods.md §5.4
/// [EXT]). Each decays exponentially from its initial to its final value: the means over
/// `means_decay_steps` (3DGS's 30K schedule), the others over the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningRates {
    /// Means, initial.
    pub means: f64,
    /// Means, final.
    pub means_final: f64,
    /// Steps of the means' decay.
    pub means_decay_steps: u64,
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
            means_decay_steps: 30_000,
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
        [
            exp_decay(self.means, self.means_final, step, self.means_decay_steps),
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
    /// Probability per step of a uniformly random colour instead (LucidDreamer's
    /// `bg_aug_ratio`, 0.5).
    pub random_ratio: f64,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        Self {
            colour: Background::Named(NamedBackground::White),
            random_ratio: 0.5,
        }
    }
}

impl BackgroundConfig {
    /// The colour of one step.
    pub fn sample(&self, rng: &mut StdRng) -> [f32; 3] {
        if self.random_ratio > 0.0 && rng.random::<f64>() < self.random_ratio {
            std::array::from_fn(|_| rng.random())
        } else {
            self.colour.train(rng)
        }
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
    /// Views in `views.png` (0 = none), four per row.
    pub views: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/generate"),
            checkpoint_every: 500,
            log_every: 10,
            turntable_frames: 60,
            turntable_size: 256,
            views: 8,
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
    /// Stop as diverged after this many consecutive steps with a NaN or infinite loss or
    /// gradient (each is skipped: the splats are left unchanged; 0 = never stop).
    pub max_bad_steps: u64,
    /// Guidance method and settings.
    pub guidance: GuidanceConfig,
    /// Timestep sampler.
    pub timesteps: TimestepSchedule,
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
    /// Outputs.
    pub output: OutputConfig,
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
            max_bad_steps: crate::guard::DEFAULT_MAX_BAD_STEPS,
            guidance: GuidanceConfig::default(),
            timesteps: TimestepSchedule::default(),
            cameras: CameraConfig::default(),
            prompts: ViewPromptConfig::default(),
            init: InitConfig::default(),
            lr: LearningRates::default(),
            adam: Adam::default(),
            densify: lucid_densify(),
            background: BackgroundConfig::default(),
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
    /// Reading a mesh or point cloud failed.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// Writing an output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Saving or loading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// File-system error.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// A device read failed.
    #[error("device: {0}")]
    Device(String),
    /// Too many consecutive steps had a non-finite loss or gradient.
    #[error(transparent)]
    Diverged(#[from] crate::guard::Diverged),
    /// SIGINT/SIGTERM: a checkpoint was saved and the run stopped.
    #[error(transparent)]
    Interrupted(#[from] crate::stop::Interrupted),
}

pub(crate) fn config_err(field: &str, message: impl Into<String>) -> GenerateError {
    GenerateError::Config {
        field: field.into(),
        message: message.into(),
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> GenerateError {
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

/// The model precision parses, the guidance method is built in and the timestep schedule is
/// ordered (`generate` and `distill2d`).
///
/// # Errors
/// [`GenerateError::Config`] naming `dtype`, `guidance.method` or `timesteps`.
pub(crate) fn check_distillation(
    dtype: &str,
    guidance: &GuidanceConfig,
    timesteps: &TimestepSchedule,
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
    timesteps.validate().map_err(|e| config_err("timesteps", e))
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
    check_distillation(&cfg.dtype, &cfg.guidance, &cfg.timesteps)?;
    cfg.cameras
        .validate()
        .map_err(|e| config_err("cameras", e))?;
    if cfg.init.kind != InitKind::Sphere && cfg.init.path.is_none() {
        return Err(config_err(
            "init.path",
            format!("init.kind = \"{:?}\" needs a file", cfg.init.kind).to_lowercase(),
        ));
    }
    if matches!(cfg.init.kind, InitKind::Sphere | InitKind::Mesh) && cfg.init.count == 0 {
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
    if !(l.opacity_logits >= 0.0 && l.opacity_logits.is_finite()) {
        return Err(config_err("lr.opacity_logits", "must be non-negative"));
    }
    Ok(())
}

/// Resolve `model` (a diffusers folder or Hugging Face id) and load it in precision `dtype`
/// (`f32`/`f16`); the errors name the folder and the missing files.
///
/// # Errors
/// [`GenerateError::Config`] for a bad `dtype`; [`GenerateError::Sd`] from
/// `sd::model::resolve` / `StableDiffusion::load`.
pub fn load_model(
    model: &str,
    dtype: &str,
    device: &Device,
) -> Result<StableDiffusion, GenerateError> {
    let precision: sd::Precision = dtype.parse().map_err(|e: String| config_err("dtype", e))?;
    let dir = sd::model::resolve(model)?;
    Ok(StableDiffusion::load(&dir, device, precision, false)?)
}

/// The initial splats (SH degree 0).
///
/// # Errors
/// Missing or unreadable files, with their names.
pub fn initial_splats(cfg: &InitConfig, seed: u64) -> Result<splat::SplatData, GenerateError> {
    let path = || {
        cfg.path
            .clone()
            .ok_or_else(|| config_err("init.path", "missing"))
    };
    let (mut pos, mut col) = match cfg.kind {
        InitKind::Sphere => sphere_points(cfg.count, cfg.radius, cfg.colour, seed),
        InitKind::Ply => {
            let mut data = splat::ply::read_ply(&path()?)?;
            if data.sh_degree > 0 {
                // Keep the DC term only (generation runs at SH degree 0).
                let k = splat::scene::sh_coeffs(data.sh_degree);
                data.sh = data
                    .sh
                    .chunks_exact(3 * k)
                    .flat_map(|c| c[..3].to_vec())
                    .collect();
                data.sh_degree = 0;
            }
            return Ok(data);
        }
        InitKind::Points => read_point_cloud(&path()?)?,
        InitKind::Mesh => Mesh::load(&path()?)?.sample_surface(cfg.count, seed),
    };
    if pos.is_empty() {
        return Err(config_err("init", "no initial points"));
    }
    if cfg.kind != InitKind::Sphere {
        if cfg.y_up {
            y_up_to_z_up(&mut pos);
        }
        normalise(&mut pos, cfg.radius);
        if let Some(c) = cfg.colour {
            col.iter_mut().for_each(|x| *x = c);
        }
    }
    Ok(from_points(&pos, &col, cfg.opacity, cfg.scale_factor))
}

pub use crate::rng::step_seed;

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0-based step index.
    pub step: u64,
    /// The pseudo-loss `½‖g‖²` (summed), the value of the injected loss.
    pub loss: f64,
    /// ‖g‖ over the batch.
    pub grad_norm: f64,
    /// mean |g|.
    pub grad_abs_mean: f64,
    /// Mean timestep of the batch.
    pub t_mean: f64,
    /// Splat count after the step.
    pub splats: usize,
    /// Mean wall time per step since the previous logged step, milliseconds.
    pub step_ms: f64,
    /// Means learning rate.
    pub lr_means: f64,
    /// The guidance's own statistics.
    pub guidance: serde_json::Map<String, serde_json::Value>,
}

/// Progress notifications for a front end.
pub enum Event<'a> {
    /// A step finished.
    Step {
        /// Completed steps.
        step: u64,
        /// Total steps.
        total: u64,
        /// The record, on logged steps.
        record: Option<&'a StepRecord>,
        /// Splats.
        splats: usize,
    },
    /// Something worth telling the user.
    Message(String),
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GenerateReport {
    /// The first step index this invocation ran (the checkpoint's step when resumed).
    pub start_step: u64,
    /// Completed steps at the end.
    pub steps: u64,
    /// Final splat count.
    pub splats: usize,
    /// Seconds in the optimisation loop.
    pub train_seconds: f64,
    /// Files written.
    pub outputs: Vec<PathBuf>,
    /// Largest device memory reserved by burn's allocator after any step, bytes (its pools
    /// keep freed pages, so this tracks the high-water mark; 0 when not reported).
    pub peak_reserved_bytes: u64,
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
fn config_hash(cfg: &GenerateConfig) -> String {
    let mut c = cfg.clone();
    c.steps = 0;
    c.output = OutputConfig::default();
    hash_text(&toml::to_string(&c).unwrap_or_default())
}

/// The turntable cameras: an orbit at the camera sampler's mean radius, elevation and FoV.
pub fn turntable_cameras(cams: &CameraConfig, frames: usize, size: u32) -> Vec<Camera> {
    let mid = |r: [f32; 2]| 0.5 * (r[0] + r[1]);
    Camera::orbit(
        Vec3::ZERO,
        Vec3::Z,
        mid(cams.radius),
        mid(cams.elevation_deg).to_radians(),
        frames,
        mid(cams.fov_deg).to_radians(),
        size,
        size,
    )
}

/// `views` cameras at evenly spaced azimuths starting at the front, mean radius, elevation
/// and FoV.
pub fn grid_cameras(cams: &CameraConfig, views: usize, size: u32) -> Vec<Camera> {
    let mid = |r: [f32; 2]| 0.5 * (r[0] + r[1]);
    (0..views)
        .map(|i| {
            CameraConfig::at(
                360.0 * i as f32 / views.max(1) as f32,
                mid(cams.elevation_deg),
                mid(cams.radius),
                mid(cams.fov_deg),
                Vec3::ZERO,
                size,
            )
        })
        .collect()
}

/// Run `generate` with a loaded model. With `resume` (a checkpoint file or a run folder), the
/// splats, their Adam moments, the densifier's accumulators and the guidance state are
/// restored and the run continues at the saved step; `metrics.jsonl` keeps its lines before
/// that step and continues. Calls `on_event` as it goes. `control` carries stop requests
/// (checked before every step: a checkpoint is saved and [`GenerateError::Interrupted`]
/// returned) and the optional live view (pause, save-now, scene and guidance offers).
///
/// # Errors
/// [`GenerateError`] for bad settings, unreadable inputs, device failures, a non-finite
/// gradient, a stop request, or outputs that cannot be written.
pub fn generate(
    cfg: &GenerateConfig,
    model: &StableDiffusion,
    device: &Device,
    resume: Option<&Path>,
    control: &crate::control::Control,
    on_event: &mut dyn FnMut(Event),
) -> Result<GenerateReport, GenerateError> {
    validate(cfg)?;
    let f = model.vae.downscale() as u32;
    if !cfg.resolution.is_multiple_of(f) {
        return Err(config_err(
            "resolution",
            format!("must be a multiple of the VAE downscale {f}"),
        ));
    }
    check_vae_size(
        model,
        &cfg.dtype,
        cfg.batch,
        cfg.resolution,
        ("batch", "resolution"),
    )?;
    // Read the checkpoint before writing anything, so a bad one changes nothing.
    let resumed = match resume {
        Some(r) => {
            let path = crate::checkpoint::resolve(r)?;
            let ck = Checkpoint::load(&path)?;
            Some((path, ck))
        }
        None => None,
    };
    let out_dir = &cfg.output.dir;
    let ck_dir = out_dir.join("checkpoints");
    std::fs::create_dir_all(&ck_dir).map_err(|e| io_err(&ck_dir, e))?;
    let config_text = to_toml(cfg)?;
    write_text(&out_dir.join("config.toml"), &config_text)?;
    let hash = config_hash(cfg);

    let mut trainer = GenerateTrainer::new(cfg, model, device, resumed, &hash, on_event)?;
    let start = trainer.start;
    let save = |trainer: &GenerateTrainer, step: u64| {
        save_checkpoint(
            cfg,
            &hash,
            step,
            &trainer.gaussians,
            &trainer.densifier,
            &*trainer.guidance,
        )
    };
    let metrics_path = out_dir.join("metrics.jsonl");
    let mut metrics = open_metrics(&metrics_path, start)?;

    let mut report = GenerateReport {
        start_step: start,
        ..Default::default()
    };
    let res = cfg.resolution;
    let steps = cfg.steps;
    let t_loop = Instant::now();
    let mut last_log = (Instant::now(), start);
    for step in start..steps {
        control.pause_point();
        if control.stop_requested() {
            let checkpoint = save(&trainer, step)?;
            return Err(crate::stop::Interrupted {
                step,
                checkpoint,
                run: out_dir.clone(),
            }
            .into());
        }
        let o = trainer.step(step)?;

        let done = step + 1;
        report.peak_reserved_bytes = report
            .peak_reserved_bytes
            .max(crate::distill2d::reserved_bytes(device));
        let logged = step.is_multiple_of(cfg.output.log_every.max(1)) || done == steps;
        let mut record = None;
        if logged {
            let gd = distill::finite_or_zero(o.guidance.grad.clone());
            let n = gd.dims().iter().product::<usize>() as f64;
            let [skipped, run] = trainer.guard.device_parts();
            let mut parts = vec![
                o.loss.clone().reshape([1]),
                gd.clone().square().sum().reshape([1]),
                gd.abs().sum().reshape([1]),
                skipped,
                run,
            ];
            // The guidance's device statistics join the same single read-back.
            parts.extend(o.guidance.stats.iter().filter_map(|(_, v)| match v {
                Stat::Device(t) => Some(t.clone().inner().reshape([1])),
                Stat::Host(_) => None,
            }));
            let k = parts.len();
            let vals =
                host(&Tensor::cat(parts, 0).reshape([1, k])).map_err(GenerateError::Device)?;
            let mut device_vals = vals[5..].iter();
            let guidance_stats: serde_json::Map<String, serde_json::Value> = o
                .guidance
                .stats
                .iter()
                .map(|(name, v)| {
                    let x = match v {
                        Stat::Host(x) => *x,
                        Stat::Device(_) => device_vals.next().map_or(f64::NAN, |x| *x as f64),
                    };
                    (name.to_string(), serde_json::json!(x))
                })
                .collect();
            if let Some(w) = trainer.guard.after_read(vals[3], vals[4], done)? {
                on_event(Event::Message(w));
            }
            let now = Instant::now();
            let step_ms = (now - last_log.0).as_secs_f64() * 1e3 / (done - last_log.1) as f64;
            last_log = (now, done);
            let rec = StepRecord {
                step,
                loss: vals[0] as f64,
                grad_norm: (vals[1] as f64).sqrt(),
                grad_abs_mean: vals[2] as f64 / n,
                t_mean: o.timesteps.iter().sum::<usize>() as f64 / o.timesteps.len() as f64,
                splats: trainer.gaussians.len(),
                step_ms,
                lr_means: o.lrs[0],
                guidance: guidance_stats,
            };
            let line = serde_json::to_string(&rec).map_err(|e| io_err(&metrics_path, e))?;
            writeln!(metrics, "{line}").map_err(|e| io_err(&metrics_path, e))?;
            metrics.flush().map_err(|e| io_err(&metrics_path, e))?;
            record = Some(rec);
        }
        on_event(Event::Step {
            step: done,
            total: steps,
            record: record.as_ref(),
            splats: trainer.gaussians.len(),
        });
        control.offer_guidance(|| crate::live::GuidanceView {
            image: o
                .rgb
                .clone()
                .slice(0..1)
                .reshape([res as i32, res as i32, 3]),
            timestep: o.timesteps.iter().sum::<usize>() as f64 / o.timesteps.len().max(1) as f64,
            azimuth_deg: o.sampled[0].azimuth_deg,
            elevation_deg: o.sampled[0].elevation_deg,
            step: done,
        });
        control.offer_scene(done, steps, 0, || trainer.gaussians.splats());
        let every = cfg.output.checkpoint_every;
        let periodic = every > 0 && done.is_multiple_of(every) && done != steps;
        // A save asked for from the viewer joins the periodic checkpoints.
        if periodic || (control.take_save_request() && done != steps) {
            save(&trainer, done)?;
        }
    }
    report.train_seconds = t_loop.elapsed().as_secs_f64();
    let done = steps.max(start);
    report.steps = done;
    let ck = save(&trainer, done)?;
    report.outputs.push(ck);

    // Outputs.
    let data = trainer.gaussians.to_data().map_err(GenerateError::Device)?;
    let ply = out_dir.join("point_cloud.ply");
    splat::ply::write_ply(&ply, &data)?;
    report.outputs.push(ply);
    let opts = RenderOptions {
        background: cfg.background.colour.eval(),
        sh_degree: Some(0),
        ..Default::default()
    };
    let splats = trainer.gaussians.splats();
    let size = cfg.output.turntable_size.max(8);
    if cfg.output.turntable_frames > 0 {
        let cams = turntable_cameras(&cfg.cameras, cfg.output.turntable_frames, size);
        let frames = render_frames(&splats, &cams, &opts)?;
        let path = out_dir.join("turntable.gif");
        write_gif(&path, &frames, 50)?;
        report.outputs.push(path);
    }
    if cfg.output.views > 0 {
        let cams = grid_cameras(&cfg.cameras, cfg.output.views, size);
        let frames = render_frames(&splats, &cams, &opts)?;
        if let Some(img) = grid(&frames, 4) {
            let path = out_dir.join("views.png");
            write_png(&path, &img)?;
            report.outputs.push(path);
        }
    }
    report.splats = trainer.gaussians.len();
    report.outputs.push(metrics_path);
    Ok(report)
}

/// The text embeddings of a run, encoded once: per view (front, side, back, overhead) the
/// prompt and every view-dependent extra prompt; the negative prompt and fixed extra prompts
/// once.
pub struct PromptEmbeddings {
    /// `[4, 77, D]` the view prompts.
    views: Tensor<3>,
    /// `[1, 77, D]`.
    negative: Tensor<3>,
    /// Per extra prompt: `[4, 77, D]` (view-dependent) or `[1, 77, D]`.
    extra: Vec<Tensor<3>>,
}

impl PromptEmbeddings {
    /// Encode `views`' four prompts, `negative` and `extra` (view-dependent ones with the same
    /// view suffixes as the prompt) in one text-encoder batch.
    ///
    /// # Errors
    /// The tokenizer's or text encoder's error.
    pub fn encode(
        model: &StableDiffusion,
        views: &ViewPrompts,
        negative: &str,
        extra: &[distill::ExtraPrompt],
        prompts: &ViewPromptConfig,
    ) -> Result<Self, GenerateError> {
        let mut texts: Vec<String> = views.all().to_vec();
        texts.push(negative.to_string());
        let mut counts = vec![];
        for e in extra {
            if e.view_dependent {
                texts.extend(ViewPrompts::new(&e.text, prompts.clone()).all());
                counts.push(4);
            } else {
                texts.push(e.text.clone());
                counts.push(1);
            }
        }
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let all = model.encode_prompts(&refs)?.detach();
        let mut at = 5;
        let extra = counts
            .into_iter()
            .map(|n| {
                let e = all.clone().narrow(0, at, n);
                at += n;
                e
            })
            .collect();
        Ok(Self {
            views: all.clone().narrow(0, 0, 4),
            negative: all.narrow(0, 4, 1),
            extra,
        })
    }

    /// `(cond, uncond, extra)` for a batch whose samples see `views`: each `[B, 77, D]`.
    pub fn select(
        &self,
        views: &[View],
        device: &Device,
    ) -> (Tensor<3>, Tensor<3>, Vec<Tensor<3>>) {
        let b = views.len();
        let idx: Vec<i32> = views
            .iter()
            .map(|v| View::ALL.iter().position(|x| x == v).unwrap_or(0) as i32)
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), device);
        let pick = |t: &Tensor<3>| {
            if t.dims()[0] == 1 {
                t.clone().repeat_dim(0, b)
            } else {
                t.clone().select(0, idx.clone())
            }
        };
        (
            pick(&self.views),
            pick(&self.negative),
            self.extra.iter().map(pick).collect(),
        )
    }
}

/// `[B, 16]` camera-to-world matrices (row-major, OpenCV axes) of `cams`, for
/// [`GuidanceInput::c2w`].
pub fn c2w_tensor(cams: &[Camera], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = cams
        .iter()
        .flat_map(|c| c.view_matrix().inverse().transpose().to_cols_array())
        .collect();
    Tensor::from_data(TensorData::new(v, [cams.len(), 16]), device)
}

/// The scene scale the densifier's size thresholds are fractions of: 1.1 × the largest camera
/// distance, as 3DGS defines it for its training cameras ([REC]).
pub(crate) fn scene_scale(cfg: &GenerateConfig) -> f64 {
    1.1 * cfg.cameras.radius[1] as f64
}

/// Open `metrics.jsonl` for appending, keeping only the lines of steps before `start` (all of
/// them gone for a fresh run).
fn open_metrics(path: &Path, start: u64) -> Result<std::fs::File, GenerateError> {
    let kept: String = if start > 0 {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s < start)
            })
            .map(|l| format!("{l}\n"))
            .collect()
    } else {
        String::new()
    };
    write_text(path, &kept)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))
}

fn save_checkpoint(
    cfg: &GenerateConfig,
    hash: &str,
    step: u64,
    gaussians: &Gaussians,
    densifier: &Densifier,
    guidance: &dyn distill::Guidance,
) -> Result<PathBuf, GenerateError> {
    let mut tensors = training_entries(gaussians, densifier)?;
    for (name, shape, v) in guidance.state() {
        tensors.push((format!("guidance.{name}"), shape, v));
    }
    let ck = Checkpoint {
        meta: Meta {
            step,
            seed: cfg.seed,
            config_hash: hash.to_string(),
            splats: gaussians.len(),
            method: guidance.name().to_string(),
            sh_degree: gaussians.max_sh_degree,
        },
        tensors,
    };
    let path = cfg
        .output
        .dir
        .join("checkpoints")
        .join(crate::checkpoint::file_name(step));
    ck.save(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_toml() {
        let cfg = GenerateConfig {
            prompt: "a corgi".into(),
            ..Default::default()
        };
        let text = to_toml(&cfg).unwrap();
        let back: GenerateConfig = toml::from_str(&text).unwrap();
        assert_eq!(to_toml(&back).unwrap(), text);
        validate(&cfg).unwrap();
        assert!(
            validate(&GenerateConfig::default()).is_err(),
            "empty prompt"
        );
    }

    #[test]
    fn shipped_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for name in [
            "dreammapping.toml",
            "generate-preview.toml",
            "sdi.toml",
            "bridge.toml",
            "lmc.toml",
            "lods.toml",
            "vsd.toml",
        ] {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let cfg: GenerateConfig =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cfg.model, "stabilityai/stable-diffusion-2-1-base");
        }
    }

    /// configs/lods.toml and configs/vsd.toml validate, select their method and spell out its
    /// defaults (the papers' values).
    #[test]
    fn method_configs_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for (name, method) in [("lods.toml", "lods"), ("vsd.toml", "vsd")] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let mut cfg: GenerateConfig =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            cfg.prompt = "a corgi".into();
            validate(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cfg.guidance.method, method, "{name}");
            cfg.guidance.lods.validate().unwrap();
            cfg.guidance.vsd.validate().unwrap();
            assert_eq!(cfg.guidance.lods, distill::LodsConfig::default(), "{name}");
            assert_eq!(cfg.guidance.vsd, distill::VsdConfig::default(), "{name}");
        }
    }
}
