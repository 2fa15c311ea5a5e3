//! Tensor-side scheduler arithmetic: ε/x₀/v conversions, forward noising, DDIM steps and
//! DDIM inversion. Ordinary tensor ops only, so everything works on autodiff tensors too.
//!
//! Shapes: any rank D ≥ 1 with the batch first, typically latents `[B, 4, h, w]`. Functions
//! taking `t: &[usize]` use one timestep per sample (`t.len()` = B, or 1 for all samples);
//! the DDIM steps take one scalar timestep for the whole batch, as diffusers' `step`.
//! Timesteps are integers in 0..T; a timestep ≥ T panics.

use burn::tensor::{Distribution, Tensor, TensorData};

use super::config::{PredictionType, SchedulerError};
use super::schedule::NoiseSchedule;

impl NoiseSchedule {
    /// A `[B, 1, …, 1]` tensor of `f(ᾱ_{t_b})` on `like`'s device.
    fn per_sample<const D: usize>(
        &self,
        t: &[usize],
        like: &Tensor<D>,
        f: impl Fn(f64) -> f64,
    ) -> Tensor<D> {
        let b = like.dims()[0];
        assert!(
            t.len() == b || t.len() == 1,
            "{} timesteps for a batch of {b} (need one per sample, or one)",
            t.len()
        );
        let v: Vec<f32> = t.iter().map(|&t| f(self.alpha_cumprod(t)) as f32).collect();
        let mut shape = [1usize; D];
        shape[0] = t.len();
        Tensor::<1>::from_data(TensorData::new(v, [t.len()]), &like.device()).reshape(shape)
    }

    /// (√ᾱ_t, √(1−ᾱ_t)) per sample, broadcastable against `like`.
    fn alpha_sigma<const D: usize>(&self, t: &[usize], like: &Tensor<D>) -> (Tensor<D>, Tensor<D>) {
        (
            self.per_sample(t, like, f64::sqrt),
            self.per_sample(t, like, |a| (1.0 - a).sqrt()),
        )
    }

    /// Forward noising x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε per sample; `DDPMScheduler.add_noise`
    /// (= `DDIMScheduler.add_noise`).
    pub fn add_noise<const D: usize>(
        &self,
        x0: Tensor<D>,
        eps: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        let (a, s) = self.alpha_sigma(t, &x0);
        x0 * a + eps * s
    }

    /// Velocity v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ per sample; `DDPMScheduler.get_velocity(x0, ε, t)`.
    pub fn get_velocity<const D: usize>(
        &self,
        x0: Tensor<D>,
        eps: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        let (a, s) = self.alpha_sigma(t, &x0);
        eps * a - x0 * s
    }

    /// x₀ = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t per sample (the `epsilon` branch of `DDIMScheduler.step`).
    pub fn eps_to_x0<const D: usize>(
        &self,
        eps: Tensor<D>,
        sample: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        let s = self.per_sample(t, &eps, |a| (1.0 - a).sqrt());
        let inv_a = self.per_sample(t, &eps, |a| 1.0 / a.sqrt());
        (sample - eps * s) * inv_a
    }

    /// ε = (x_t − √ᾱ_t·x₀)/√(1−ᾱ_t) per sample (the `sample` branch of `DDIMScheduler.step`).
    pub fn x0_to_eps<const D: usize>(
        &self,
        x0: Tensor<D>,
        sample: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        let a = self.per_sample(t, &x0, f64::sqrt);
        let inv_s = self.per_sample(t, &x0, |a| 1.0 / (1.0 - a).sqrt());
        (sample - x0 * a) * inv_s
    }

    /// ε = √ᾱ_t·v + √(1−ᾱ_t)·x_t per sample (the `v_prediction` branch of `DDIMScheduler.step`).
    pub fn v_to_eps<const D: usize>(
        &self,
        v: Tensor<D>,
        sample: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        let (a, s) = self.alpha_sigma(t, &v);
        v * a + sample * s
    }

    /// x₀ = √ᾱ_t·x_t − √(1−ᾱ_t)·v per sample (the `v_prediction` branch of `DDIMScheduler.step`).
    pub fn v_to_x0<const D: usize>(
        &self,
        v: Tensor<D>,
        sample: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        let (a, s) = self.alpha_sigma(t, &v);
        sample * a - v * s
    }

    /// The ε-prediction for a raw model output of the config's `prediction_type` at x_t = `sample`
    /// (per-sample t): ε itself, [`v_to_eps`](Self::v_to_eps), or [`x0_to_eps`](Self::x0_to_eps).
    /// Guidance code calls this on the (guided) U-Net output.
    pub fn to_epsilon<const D: usize>(
        &self,
        model_output: Tensor<D>,
        sample: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        match self.config().prediction_type {
            PredictionType::Epsilon => model_output,
            PredictionType::VPrediction => self.v_to_eps(model_output, sample, t),
            PredictionType::Sample => self.x0_to_eps(model_output, sample, t),
        }
    }

    /// The x₀-prediction for a raw model output of the config's `prediction_type` (per-sample t),
    /// unclipped.
    pub fn to_x0<const D: usize>(
        &self,
        model_output: Tensor<D>,
        sample: Tensor<D>,
        t: &[usize],
    ) -> Tensor<D> {
        match self.config().prediction_type {
            PredictionType::Epsilon => self.eps_to_x0(model_output, sample, t),
            PredictionType::VPrediction => self.v_to_x0(model_output, sample, t),
            PredictionType::Sample => model_output,
        }
    }

    /// (x₀, ε) from a model output at a level with cumulative alpha `abar`, exactly the three
    /// `prediction_type` branches of `DDIMScheduler.step`; x₀ clamped to ±`clip_sample_range`
    /// when `clip_sample` (ε stays unclipped: `use_clipped_model_output=False`).
    fn split<const D: usize>(
        &self,
        model_output: Tensor<D>,
        sample: Tensor<D>,
        abar: f64,
    ) -> (Tensor<D>, Tensor<D>) {
        let (a, s) = (abar.sqrt(), (1.0 - abar).sqrt());
        let (x0, eps) = match self.config().prediction_type {
            PredictionType::Epsilon => ((sample - model_output.clone() * s) / a, model_output),
            PredictionType::Sample => {
                let eps = (sample - model_output.clone() * a) / s;
                (model_output, eps)
            }
            PredictionType::VPrediction => (
                sample.clone() * a - model_output.clone() * s,
                model_output * a + sample * s,
            ),
        };
        let c = &self.config();
        let x0 = if c.clip_sample {
            x0.clamp(-c.clip_sample_range, c.clip_sample_range)
        } else {
            x0
        };
        (x0, eps)
    }

    /// One DDIM step from level t down to `t_prev` (< t; negative = the level before t = 0 with
    /// ᾱ = `final_alpha_cumprod`), the arithmetic of `DDIMScheduler.step` with its
    /// `prev_timestep` replaced by `t_prev`:
    /// x₀, ε from the model output at t; σ = η·√[(1−ᾱ_prev)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_prev)];
    /// x_prev = √ᾱ_prev·x₀ + √(1−ᾱ_prev−σ²)·ε + σ·ξ.
    /// ξ = `variance_noise`, or standard normal noise drawn on the sample's device when `None`
    /// and η > 0. η ∈ [0, 1] (η = 0: deterministic DDIM, η = 1: DDPM posterior variance).
    /// Returns (x_prev, x₀). Panics if t ≥ T.
    pub fn ddim_step_to<const D: usize>(
        &self,
        model_output: Tensor<D>,
        t: usize,
        t_prev: i64,
        sample: Tensor<D>,
        eta: f64,
        variance_noise: Option<Tensor<D>>,
    ) -> (Tensor<D>, Tensor<D>) {
        let abar = self.alpha_cumprod(t);
        let abar_prev = self.alpha_cumprod_at(t_prev);
        let (x0, eps) = self.split(model_output, sample, abar);
        let std = eta * self.ddim_variance(t, t_prev).sqrt();
        let dir = (1.0 - abar_prev - std * std).sqrt();
        let mut prev = x0.clone() * abar_prev.sqrt() + eps * dir;
        if eta > 0.0 {
            let xi =
                variance_noise.unwrap_or_else(|| x0.random_like(Distribution::Normal(0.0, 1.0)));
            prev = prev + xi * std;
        }
        (prev, x0)
    }

    /// Deterministic DDIM transfer of x at level `t_from` to level `t_to` (inversion when
    /// `t_to` > `t_from`): x₀, ε from `model_output` at `t_from` (negative `t_from` = the level
    /// before t = 0, ᾱ = `final_alpha_cumprod`), then x_{t_to} = √ᾱ_to·x₀ + √(1−ᾱ_to)·ε.
    /// This is `DDIMInverseScheduler.step`'s arithmetic with its source level
    /// `timestep − T//n` replaced by `t_from` and its target `timestep` by `t_to` (x₀ clipped
    /// when `clip_sample`). Returns (x_{t_to}, x₀). Panics if a timestep is ≥ T.
    pub fn ddim_invert_step<const D: usize>(
        &self,
        model_output: Tensor<D>,
        t_from: i64,
        t_to: usize,
        sample: Tensor<D>,
    ) -> (Tensor<D>, Tensor<D>) {
        let abar_from = self.alpha_cumprod_at(t_from);
        let abar_to = self.alpha_cumprod(t_to);
        let (x0, eps) = self.split(model_output, sample, abar_from);
        let next = x0.clone() * abar_to.sqrt() + eps * (1.0 - abar_to).sqrt();
        (next, x0)
    }

    /// The η-noised inversion step SDI uses (docs/methods.md §2, [EXT] threestudio):
    /// [`ddim_invert_step`](Self::ddim_invert_step) plus η·√v·ξ with
    /// v = `ddim_variance(t_to, t_from)` = (1−ᾱ_from)/(1−ᾱ_to)·(1−ᾱ_to/ᾱ_from).
    /// No diffusers function does this; the test reference is built from
    /// `DDIMInverseScheduler.step` and `DDIMScheduler._get_variance`.
    /// ξ = `noise`, or standard normal noise when `None` and η > 0. Returns (x_{t_to}, x₀).
    pub fn ddim_invert_step_eta<const D: usize>(
        &self,
        model_output: Tensor<D>,
        t_from: i64,
        t_to: usize,
        sample: Tensor<D>,
        eta: f64,
        noise: Option<Tensor<D>>,
    ) -> (Tensor<D>, Tensor<D>) {
        let (next, x0) = self.ddim_invert_step(model_output, t_from, t_to, sample);
        if eta <= 0.0 {
            return (next, x0);
        }
        let std = eta * self.ddim_variance(t_to, t_from).sqrt();
        let xi = noise.unwrap_or_else(|| next.random_like(Distribution::Normal(0.0, 1.0)));
        (next + xi * std, x0)
    }
}

/// DDIM sampling with a fixed number of inference steps: diffusers' `DDIMScheduler` after
/// `set_timesteps(n)`.
#[derive(Clone, Debug)]
pub struct Ddim {
    schedule: NoiseSchedule,
    num_inference_steps: usize,
    timesteps: Vec<usize>,
}

impl Ddim {
    /// `DDIMScheduler.set_timesteps(num_inference_steps)`.
    ///
    /// # Errors
    /// As [`NoiseSchedule::ddim_timesteps`].
    pub fn new(
        schedule: &NoiseSchedule,
        num_inference_steps: usize,
    ) -> Result<Self, SchedulerError> {
        Ok(Self {
            timesteps: schedule.ddim_timesteps(num_inference_steps)?,
            schedule: schedule.clone(),
            num_inference_steps,
        })
    }

    /// The schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// The sampling timesteps, descending (`scheduler.timesteps`).
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The number of inference steps n.
    pub fn num_inference_steps(&self) -> usize {
        self.num_inference_steps
    }

    /// t − T//n, the level `DDIMScheduler.step` moves to (negative below t = 0).
    pub fn prev_timestep(&self, t: usize) -> i64 {
        t as i64 - self.schedule.ddim_stride(self.num_inference_steps) as i64
    }

    /// `DDIMScheduler.step(model_output, t, sample, eta, variance_noise=…)` (no thresholding,
    /// `use_clipped_model_output=False`): [`NoiseSchedule::ddim_step_to`] with
    /// t_prev = [`prev_timestep`](Self::prev_timestep)(t). `model_output` is the raw U-Net output
    /// of the config's `prediction_type`; latents `[B, 4, h, w]`. Returns (x_prev, x₀).
    /// Panics if t ≥ T.
    pub fn step<const D: usize>(
        &self,
        model_output: Tensor<D>,
        t: usize,
        sample: Tensor<D>,
        eta: f64,
        variance_noise: Option<Tensor<D>>,
    ) -> (Tensor<D>, Tensor<D>) {
        let prev = self.prev_timestep(t);
        self.schedule
            .ddim_step_to(model_output, t, prev, sample, eta, variance_noise)
    }
}

/// DDIM inversion with a fixed number of steps: diffusers' `DDIMInverseScheduler` after
/// `set_timesteps(n)`.
#[derive(Clone, Debug)]
pub struct DdimInverse {
    schedule: NoiseSchedule,
    num_inference_steps: usize,
    timesteps: Vec<usize>,
}

impl DdimInverse {
    /// `DDIMInverseScheduler.set_timesteps(num_inference_steps)`.
    ///
    /// # Errors
    /// As [`NoiseSchedule::ddim_inverse_timesteps`].
    pub fn new(
        schedule: &NoiseSchedule,
        num_inference_steps: usize,
    ) -> Result<Self, SchedulerError> {
        Ok(Self {
            timesteps: schedule.ddim_inverse_timesteps(num_inference_steps)?,
            schedule: schedule.clone(),
            num_inference_steps,
        })
    }

    /// The schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// The inversion timesteps, ascending (`scheduler.timesteps`).
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The source level of the step that targets `t`: min(t − T//n, T−1) (negative means ᾱ =
    /// `final_alpha_cumprod`, diffusers' `initial_alpha_cumprod`).
    pub fn source_timestep(&self, t: usize) -> i64 {
        let s = t as i64 - self.schedule.ddim_stride(self.num_inference_steps) as i64;
        s.min(self.schedule.num_train_timesteps() as i64 - 1)
    }

    /// `DDIMInverseScheduler.step(model_output, t, sample)`: `sample` sits at level
    /// [`source_timestep`](Self::source_timestep)(t), `model_output` is the U-Net output for it
    /// (diffusers' pipelines label that U-Net call with `t`), and the result sits at level t:
    /// [`NoiseSchedule::ddim_invert_step`]. Returns (x_t, x₀). Panics if t ≥ T.
    pub fn step<const D: usize>(
        &self,
        model_output: Tensor<D>,
        t: usize,
        sample: Tensor<D>,
    ) -> (Tensor<D>, Tensor<D>) {
        let src = self.source_timestep(t);
        self.schedule.ddim_invert_step(model_output, src, t, sample)
    }
}
