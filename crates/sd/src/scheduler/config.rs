//! `scheduler_config.json` of a diffusers model folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Errors from reading a scheduler config or building a schedule from it.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The config file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a JSON object.
    #[error("{source_name}: not a JSON object: {message}")]
    Json {
        /// The file (or other source) name.
        source_name: String,
        /// What serde_json reported.
        message: String,
    },
    /// A field has the wrong type, an unknown value, or a value this crate does not support.
    #[error("{source_name}: field `{field}`: {message}")]
    Field {
        /// The file (or other source) name; `<config>` for configs built in code.
        source_name: String,
        /// The config field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A request the schedule cannot serve (e.g. more inference steps than training steps).
    #[error("{0}")]
    Invalid(String),
}

/// How the training betas β₀..β_{T−1} are laid out (`beta_schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// β = linspace(β_start, β_end, T).
    Linear,
    /// β = linspace(√β_start, √β_end, T)² (Stable Diffusion).
    ScaledLinear,
    /// Nichol & Dhariwal cosine schedule via `betas_for_alpha_bar` (max β 0.999).
    SquaredcosCapV2,
}

/// What the denoiser predicts (`prediction_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The added noise ε (SD 2.1-base).
    Epsilon,
    /// The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀ (SD 2.1-768).
    VPrediction,
    /// The clean sample x₀.
    Sample,
}

/// How `set_timesteps` spreads the inference timesteps over 0..T−1 (`timestep_spacing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// k·(T // n) + steps_offset, k = 0..n (diffusers' default; SD 2.1 configs).
    Leading,
    /// round(T − k·T/n) − 1.
    Trailing,
    /// round(linspace(0, T−1, n)) (DDIM only; diffusers' inverse scheduler rejects it).
    Linspace,
}

/// The scheduler fields of a diffusers `scheduler_config.json`, with the defaults of diffusers'
/// `DDIMScheduler.__init__` for absent (or `null`) fields. Unknown fields (`_class_name`,
/// `skip_prk_steps`, …) are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// T, the number of training timesteps (default 1000).
    pub num_train_timesteps: usize,
    /// β_start (default 0.0001).
    pub beta_start: f64,
    /// β_end (default 0.02).
    pub beta_end: f64,
    /// Beta layout (default `linear`).
    pub beta_schedule: BetaSchedule,
    /// Explicit betas (length T); overrides the three fields above.
    pub trained_betas: Option<Vec<f64>>,
    /// What the model predicts (default `epsilon`).
    pub prediction_type: PredictionType,
    /// Use ᾱ = 1 for the level "before t = 0" (default true; SD 2.1: false, i.e. ᾱ₀).
    pub set_alpha_to_one: bool,
    /// Offset added to leading-spacing timesteps (default 0; SD 2.1: 1).
    pub steps_offset: usize,
    /// Inference timestep spacing (default `leading`).
    pub timestep_spacing: TimestepSpacing,
    /// Clamp predicted x₀ to ±`clip_sample_range` in DDIM steps (default true; SD 2.1: false).
    pub clip_sample: bool,
    /// Clamp range for `clip_sample` (default 1.0).
    pub clip_sample_range: f64,
    /// Zero-terminal-SNR rescaling (Lin et al. 2023). Not supported: `true` is rejected.
    pub rescale_betas_zero_snr: bool,
    /// Dynamic thresholding. Not supported: `true` is rejected.
    pub thresholding: bool,
    /// DDPM variance type; only `fixed_small` (or absent) is supported.
    pub variance_type: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            trained_betas: None,
            prediction_type: PredictionType::Epsilon,
            set_alpha_to_one: true,
            steps_offset: 0,
            timestep_spacing: TimestepSpacing::Leading,
            clip_sample: true,
            clip_sample_range: 1.0,
            rescale_betas_zero_snr: false,
            thresholding: false,
            variance_type: None,
        }
    }
}

/// Decodes `obj[name]` into `slot` when present and not null.
fn field<T: serde::de::DeserializeOwned>(
    obj: &Map<String, Value>,
    name: &'static str,
    slot: &mut T,
    src: &str,
) -> Result<(), SchedulerError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            *slot = T::deserialize(v).map_err(|e| SchedulerError::Field {
                source_name: src.to_string(),
                field: name,
                message: format!("{e} (value {v})"),
            })?;
            Ok(())
        }
    }
}

impl SchedulerConfig {
    /// Reads a diffusers `scheduler_config.json`.
    ///
    /// # Errors
    /// [`SchedulerError::Io`] / [`SchedulerError::Json`] naming the file, or
    /// [`SchedulerError::Field`] naming the file and the offending field (wrong type, unknown
    /// enum value, unsupported option, inconsistent values).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SchedulerError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SchedulerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses config JSON text; `source_name` (a file name) prefixes every error.
    ///
    /// # Errors
    /// As [`SchedulerConfig::from_file`], without the I/O case.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self, SchedulerError> {
        let value: Value = serde_json::from_str(text).map_err(|e| SchedulerError::Json {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        let Value::Object(obj) = value else {
            return Err(SchedulerError::Json {
                source_name: source_name.to_string(),
                message: "top level is not an object".into(),
            });
        };
        let mut c = Self::default();
        let s = source_name;
        field(&obj, "num_train_timesteps", &mut c.num_train_timesteps, s)?;
        field(&obj, "beta_start", &mut c.beta_start, s)?;
        field(&obj, "beta_end", &mut c.beta_end, s)?;
        field(&obj, "beta_schedule", &mut c.beta_schedule, s)?;
        field(&obj, "trained_betas", &mut c.trained_betas, s)?;
        field(&obj, "prediction_type", &mut c.prediction_type, s)?;
        field(&obj, "set_alpha_to_one", &mut c.set_alpha_to_one, s)?;
        field(&obj, "steps_offset", &mut c.steps_offset, s)?;
        field(&obj, "timestep_spacing", &mut c.timestep_spacing, s)?;
        field(&obj, "clip_sample", &mut c.clip_sample, s)?;
        field(&obj, "clip_sample_range", &mut c.clip_sample_range, s)?;
        field(
            &obj,
            "rescale_betas_zero_snr",
            &mut c.rescale_betas_zero_snr,
            s,
        )?;
        field(&obj, "thresholding", &mut c.thresholding, s)?;
        field(&obj, "variance_type", &mut c.variance_type, s)?;
        c.validate_named(s)?;
        Ok(c)
    }

    /// Checks the config for values this crate cannot honour.
    ///
    /// # Errors
    /// [`SchedulerError::Field`] with source `<config>`.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        self.validate_named("<config>")
    }

    fn validate_named(&self, src: &str) -> Result<(), SchedulerError> {
        let err = |field: &'static str, message: String| SchedulerError::Field {
            source_name: src.to_string(),
            field,
            message,
        };
        let t = self.num_train_timesteps;
        if t < 2 {
            return Err(err("num_train_timesteps", format!("{t} < 2")));
        }
        if let Some(b) = &self.trained_betas {
            if b.len() != t {
                return Err(err(
                    "trained_betas",
                    format!("{} values, num_train_timesteps is {t}", b.len()),
                ));
            }
            if let Some(x) = b.iter().find(|x| !(**x > 0.0 && **x < 1.0)) {
                return Err(err("trained_betas", format!("beta {x} outside (0, 1)")));
            }
        } else if self.beta_schedule != BetaSchedule::SquaredcosCapV2 {
            for (name, v) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
                if !(v > 0.0 && v < 1.0) {
                    return Err(err(name, format!("{v} outside (0, 1)")));
                }
            }
        }
        if self.rescale_betas_zero_snr {
            return Err(err(
                "rescale_betas_zero_snr",
                "true is not supported (ᾱ_{T−1} = 0 breaks ε/x₀ conversions)".into(),
            ));
        }
        if self.thresholding {
            return Err(err("thresholding", "true is not supported".into()));
        }
        if let Some(v) = &self.variance_type
            && v != "fixed_small"
        {
            return Err(err(
                "variance_type",
                format!("`{v}` is not supported (only fixed_small)"),
            ));
        }
        if self.clip_sample && (self.clip_sample_range.is_nan() || self.clip_sample_range <= 0.0) {
            return Err(err(
                "clip_sample_range",
                format!("{} is not positive", self.clip_sample_range),
            ));
        }
        Ok(())
    }
}
