//! `fit`'s settings ([`FitConfig`] and its sections, the TOML of `--config`), their validation,
//! and the run's error type.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use splat::framing::TurntablePath;

use crate::background::{Background, NamedBackground};
use crate::checkpoint::{CheckpointError, hash_text};
use crate::output::{ExtraFormat, OutputError};
pub use crate::video::TurntableFormat;
use datasets::Dataset;
use datasets::init::{InitConfig, InitKind};
use live::stop::Interrupted;
use optim::adam::Adam;
use optim::densify::Strategy;
use optim::guard::Diverged;

/// Dataset settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset folder (NeRF-synthetic, instant-ngp or COLMAP; detected).
    pub path: PathBuf,
    /// Integer downscale factor of the images.
    pub downscale: u32,
    /// Hold out every n-th view for evaluation where the dataset has no split (0 = none).
    pub eval_every: usize,
    /// Use at most this many views per split (0 = all).
    pub max_views: usize,
    /// Background behind transparent pixels.
    pub background: Background,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("assets/spot-cow"),
            downscale: 1,
            eval_every: 8,
            max_views: 0,
            background: Background::Named(NamedBackground::White),
        }
    }
}

/// Optimisation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Views per step (all views of one step must share an image size).
    pub batch: usize,
    /// λ of the D-SSIM term (3DGS: 0.2).
    pub ssim_lambda: f64,
    /// Highest SH degree.
    pub sh_degree: u32,
    /// The active SH degree rises by one every this many steps (3DGS: 1,000).
    pub sh_degree_interval: u64,
    /// Seed of view order, backgrounds, initialisation and densification.
    pub seed: u64,
    /// gsplat's antialiased rasterization mode.
    pub antialiased: bool,
    /// Read the loss back (and report it) every this many steps.
    pub log_every: u64,
    /// Stop as diverged after this many consecutive steps with a NaN or infinite loss or
    /// gradient (each is skipped: the parameters are left unchanged; 0 = never stop).
    pub max_bad_steps: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 7_000,
            batch: 1,
            ssim_lambda: 0.2,
            sh_degree: 3,
            sh_degree_interval: 1_000,
            seed: 0,
            antialiased: false,
            log_every: 10,
            max_bad_steps: optim::guard::DEFAULT_MAX_BAD_STEPS,
        }
    }
}

/// Per-group Adam learning rates (gsplat `simple_trainer.py`; the means' rates are multiplied
/// by the scene scale and decay exponentially from `means` to `means_final` over the run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningRates {
    /// Initial means rate (× scene scale).
    pub means: f64,
    /// Final means rate (× scene scale).
    pub means_final: f64,
    /// Quaternions.
    pub quats: f64,
    /// Log scales.
    pub log_scales: f64,
    /// Opacity logits.
    pub opacity_logits: f64,
    /// SH DC.
    pub sh_dc: f64,
    /// Higher SH bands (3DGS: DC rate / 20).
    pub sh_rest: f64,
}

impl Default for LearningRates {
    fn default() -> Self {
        Self {
            means: 1.6e-4,
            means_final: 1.6e-6,
            quats: 1e-3,
            log_scales: 5e-3,
            opacity_logits: 5e-2,
            sh_dc: 2.5e-3,
            sh_rest: 2.5e-3 / 20.0,
        }
    }
}

/// Evaluation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Evaluate every this many steps (and always after the last; 0 = only after the last).
    pub every: u64,
    /// Evaluate at most this many held-out views, evenly spread (0 = all).
    pub max_views: usize,
    /// Write `renders/<view>.png` (render | photo) and `renders/<view>.camera.json` after the
    /// last evaluation.
    pub save_renders: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            every: 1_000,
            max_views: 0,
            save_renders: true,
        }
    }
}

/// Output settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Run folder (created; files in it are replaced atomically).
    pub dir: PathBuf,
    /// Turntable frames (0 = no turntable).
    pub turntable_frames: usize,
    /// Longest side of the turntable frames in pixels.
    pub turntable_size: u32,
    /// Path of the turntable camera: see [`TurntablePath`].
    pub turntable_path: TurntablePath,
    /// Container of the turntable: `"gif"` (`turntable.gif`) or `"mp4"` (`turntable.mp4`,
    /// H.264).
    pub turntable: TurntableFormat,
    /// Compressed copies of the final scene beside `point_cloud.ply`: `"spz"`
    /// (`point_cloud.spz`, SPZ 4) and/or `"compressed.ply"` (`point_cloud.compressed.ply`).
    pub formats: Vec<ExtraFormat>,
    /// Also write `mesh.glb`: the scene's surface as a coloured triangle mesh (`splatdream
    /// mesh`'s defaults; y-up).
    pub mesh: bool,
    /// Save a checkpoint (`checkpoints/step-*.safetensors`) every this many steps (0 = only
    /// on SIGINT/SIGTERM); `--resume` continues from the latest.
    pub checkpoint_every: u64,
    /// Keep this many newest checkpoints (older ones are deleted after a save; 0 = keep all).
    pub keep_checkpoints: usize,
    /// Write a snapshot `point_cloud_<step>.ply` every this many steps (0 = none; the final
    /// `point_cloud.ply` is always written). A snapshot due inside an opacity reset's recovery
    /// window is written when the window has passed, named by that step.
    pub ply_every: u64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/fit"),
            turntable_frames: 60,
            turntable_size: 320,
            turntable_path: TurntablePath::Auto,
            turntable: TurntableFormat::Gif,
            formats: vec![],
            mesh: false,
            checkpoint_every: 1_000,
            keep_checkpoints: 2,
            ply_every: 0,
        }
    }
}

/// Everything `fit` needs; the TOML file form of `splatdream fit --config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConfig {
    /// Dataset.
    pub data: DataConfig,
    /// Initial splats.
    pub init: InitConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Learning rates.
    pub lr: LearningRates,
    /// Adam.
    pub adam: Adam,
    /// Densification strategy.
    pub densify: Strategy,
    /// Evaluation.
    pub eval: EvalConfig,
    /// Outputs.
    pub output: OutputConfig,
}

/// Errors of `fit`.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// A setting is unusable.
    #[error("config: `{field}`: {message}")]
    Config {
        /// Dotted field name.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Loading the dataset failed.
    #[error(transparent)]
    Data(#[from] datasets::DataError),
    /// Reading the initial PLY failed.
    #[error(transparent)]
    Ply(#[from] splat::ply::PlyError),
    /// A scene file in another format (compressed PLY, SPZ, `.splat`) could not be read or
    /// written; names the file and field.
    #[error(transparent)]
    Scene(#[from] splat::formats::SceneError),
    /// Writing `mesh.glb` failed; names the file.
    #[error(transparent)]
    Mesh(#[from] splat::extract::write::MeshWriteError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] splat::RenderError),
    /// Writing an output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Creating the run folder failed.
    #[error("{path}: {source}")]
    Io {
        /// Folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A device read failed.
    #[error(transparent)]
    Device(#[from] gpu::ReadError),
    /// Saving or loading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Too many consecutive steps had a non-finite loss or gradient.
    #[error(transparent)]
    Diverged(#[from] Diverged),
    /// SIGINT/SIGTERM: a checkpoint was saved and the run stopped.
    #[error("{0}")]
    Interrupted(#[from] Interrupted),
    /// A photo is larger than one device buffer can hold.
    #[error(
        "{}/{view}: a {width}×{height} photo needs {bytes} bytes on the device (f32 RGBA), above this device's storage-binding limit of {limit} bytes; use --downscale {downscale} (data.downscale)",
        root.display()
    )]
    PhotoTooLarge {
        /// Dataset folder.
        root: PathBuf,
        /// The view's image name.
        view: String,
        /// Width (after the configured downscale).
        width: u32,
        /// Height.
        height: u32,
        /// Bytes needed.
        bytes: u64,
        /// The device's limit.
        limit: u64,
        /// The smallest total downscale factor that fits.
        downscale: u32,
    },
}

/// Check that every photo fits one device buffer before anything is uploaded.
///
/// # Errors
/// [`FitError::PhotoTooLarge`] naming the first view that does not, and the downscale that
/// would make it fit.
pub(crate) fn check_photo_sizes(dataset: &Dataset) -> Result<(), FitError> {
    let limit = gpu::alloc::max_binding_size();
    for v in dataset.train.iter().chain(&dataset.eval) {
        let (w, h) = v.image.dimensions();
        let bytes = w as u64 * h as u64 * 16;
        if bytes > limit {
            let factor = (1u32..)
                .find(|d| (w / d) as u64 * (h / d) as u64 * 16 <= limit)
                .unwrap_or(u32::MAX);
            return Err(FitError::PhotoTooLarge {
                root: dataset.root.clone(),
                view: v.name.clone(),
                width: w,
                height: h,
                bytes,
                limit,
                downscale: factor,
            });
        }
    }
    Ok(())
}

pub(crate) fn config_err(field: &str, message: impl Into<String>) -> FitError {
    FitError::Config {
        field: field.into(),
        message: message.into(),
    }
}

/// Check a configuration before any work.
///
/// # Errors
/// [`FitError::Config`] naming the first unusable field.
pub fn validate(cfg: &FitConfig) -> Result<(), FitError> {
    if cfg.train.steps == 0 {
        return Err(config_err("train.steps", "must be at least 1"));
    }
    if cfg.train.batch == 0 {
        return Err(config_err("train.batch", "must be at least 1"));
    }
    if cfg.train.sh_degree > 3 {
        return Err(config_err("train.sh_degree", "must be 0–3"));
    }
    if !(0.0..=1.0).contains(&cfg.train.ssim_lambda) {
        return Err(config_err("train.ssim_lambda", "must be in [0, 1]"));
    }
    if cfg.data.downscale == 0 {
        return Err(config_err("data.downscale", "must be at least 1"));
    }
    if let Background::Rgb(c) = cfg.data.background
        && c.iter().any(|v| !(0.0..=1.0).contains(v))
    {
        return Err(config_err(
            "data.background",
            "RGB components must be in [0, 1]",
        ));
    }
    if !(cfg.init.opacity > 0.0 && cfg.init.opacity < 1.0) {
        return Err(config_err("init.opacity", "must be in (0, 1)"));
    }
    if cfg.init.kind == InitKind::Ply && cfg.init.ply.is_none() {
        return Err(config_err("init.ply", "kind = \"ply\" needs a file"));
    }
    for (name, v) in [
        ("lr.means", cfg.lr.means),
        ("lr.means_final", cfg.lr.means_final),
        ("lr.quats", cfg.lr.quats),
        ("lr.log_scales", cfg.lr.log_scales),
        ("lr.opacity_logits", cfg.lr.opacity_logits),
        ("lr.sh_dc", cfg.lr.sh_dc),
        ("lr.sh_rest", cfg.lr.sh_rest),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(config_err(name, "must be a finite non-negative number"));
        }
    }
    if cfg.lr.means <= 0.0 || cfg.lr.means_final <= 0.0 {
        return Err(config_err(
            "lr.means",
            "means rates must be positive (log decay)",
        ));
    }
    Ok(())
}

/// Hash of the settings that define the optimisation (everything but `train.steps`,
/// `eval` and `output`, which a resumed run may change).
pub(crate) fn config_hash(cfg: &FitConfig) -> String {
    let mut c = cfg.clone();
    c.train.steps = 0;
    c.eval = EvalConfig::default();
    c.output = OutputConfig::default();
    hash_text(&toml::to_string(&c).unwrap_or_default())
}
