//! SDS, the DreamFusion baseline (Poole et al. 2022, Eq. 3; docs/methods.md §0):
//! `g = w(t)·(ε̂_cfg(z_t; y, t) − ε)` with `z_t = α_t z + σ_t ε`.

use crate::timesteps::TimestepSchedule;
use burn::tensor::{Tensor, TensorData};
use sd::scheduler::NoiseSchedule;
use serde::{Deserialize, Serialize};

use crate::{DistillError, Guidance, GuidanceInput, GuidanceOutput, Prior};

/// The timestep weighting w(t) (docs/methods.md §0 and §6.1 item 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// w(t) = σ_t² = 1 − ᾱ_t (threestudio "sds", DreamFusion).
    #[default]
    Sigma2,
    /// w(t) = σ_t / α_t (LucidDreamer; what an x₀-space MSE gives).
    SigmaOverAlpha,
    /// w(t) = 1.
    Uniform,
}

impl Weighting {
    /// w(t) for one timestep.
    pub fn at(self, schedule: &NoiseSchedule, t: usize) -> f64 {
        let a = schedule.alpha_cumprod(t);
        match self {
            Self::Sigma2 => 1.0 - a,
            Self::SigmaOverAlpha => ((1.0 - a) / a).sqrt(),
            Self::Uniform => 1.0,
        }
    }

    /// w(t) per sample as a `[B, 1, 1, 1]` tensor on `like`'s device.
    pub fn tensor(self, schedule: &NoiseSchedule, t: &[usize], like: &Tensor<4>) -> Tensor<4> {
        let w: Vec<f32> = t.iter().map(|&t| self.at(schedule, t) as f32).collect();
        Tensor::from_data(TensorData::new(w, [t.len(), 1, 1, 1]), &like.device())
    }
}

/// Settings of [`Sds`] (`[guidance]` in the generate config).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SdsConfig {
    /// CFG scale, form A (DreamFusion used 100; 7.5 with VDM).
    pub cfg_scale: f64,
    /// w(t).
    pub weighting: Weighting,
    /// Overall multiplier of the gradient (`lambda_guidance`).
    pub scale: f64,
    /// Timestep schedule (DreamFusion: t ~ U(0.02, 0.98), i.e. U{20, …, 980}; docs/methods.md
    /// §0, threestudio's `min_step_percent`/`max_step_percent`).
    pub timesteps: TimestepSchedule,
}

impl Default for SdsConfig {
    fn default() -> Self {
        Self {
            cfg_scale: 100.0,
            weighting: Weighting::Sigma2,
            scale: 1.0,
            timesteps: TimestepSchedule::dreamfusion(),
        }
    }
}

/// Score distillation sampling.
#[derive(Clone, Debug)]
pub struct Sds {
    /// Settings.
    pub config: SdsConfig,
}

impl Sds {
    /// New SDS guidance.
    pub fn new(config: SdsConfig) -> Self {
        Self { config }
    }
}

impl Guidance for Sds {
    fn name(&self) -> &'static str {
        "sds"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.cfg_scale
    }

    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        let (_, eps_hat) = input.guided_eps(prior, self.config.cfg_scale)?;
        let w = self
            .config
            .weighting
            .tensor(prior.schedule, &input.timesteps, &eps_hat);
        let grad = (eps_hat - input.noise.clone()) * w * self.config.scale;
        Ok(GuidanceOutput {
            grad,
            stats: vec![],
        })
    }
}
