//! The discrete noise schedule β_t, ᾱ_t and host-side quantities derived from it.

use super::config::{BetaSchedule, SchedulerConfig, SchedulerError, TimestepSpacing};

/// The discrete DDPM noise schedule of a diffusers scheduler config, on the host.
///
/// Timesteps are integers t ∈ 0..T (T = `num_train_timesteps`, 1000 for SD 2.1), as passed to
/// the U-Net. Notation (docs/methods.md §0): ᾱ_t = ∏_{s≤t}(1−β_s), α_t = √ᾱ_t, σ_t = √(1−ᾱ_t).
///
/// # Precision
/// diffusers builds the schedule in float32 torch: `betas` float32 (for `scaled_linear`,
/// `torch.linspace(√β_start, √β_end, T, dtype=float32) ** 2`), `alphas = 1.0 − betas` float32,
/// and `torch.cumprod` (on CPU it accumulates in float64 and rounds each output to float32).
/// This type replicates that float32 pipeline (β rounded to f32 and squared in f32, α = 1 − β in
/// f32, the cumulative product accumulated in f64 and each ᾱ_t rounded to f32) and stores the
/// resulting values as f64, so every later formula runs in f64 on the same numbers diffusers
/// holds. The one deliberate difference: the linspace is the correctly rounded one
/// (f64 then rounded to f32); torch's CPU linspace kernel is off by ≤ 1 f32 ulp on about a third
/// of the entries, depending on its SIMD width. Measured on the SD 2.1 config the resulting ᾱ_t
/// differ from diffusers' by ≤ 3.8e-7 relative (pure f64 without the f32 emulation: 9.3e-7).
#[derive(Clone, Debug)]
pub struct NoiseSchedule {
    config: SchedulerConfig,
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
}

/// numpy/torch-style linspace in f64 (first half counted from `a`, second half from `b`).
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            if i < n / 2 {
                a + step * i as f64
            } else {
                b - step * (n - 1 - i) as f64
            }
        })
        .collect()
}

/// diffusers `betas_for_alpha_bar(T)` with the cosine transform and max β 0.999 (f64, as Python).
fn squaredcos_cap_v2(t: usize) -> Vec<f64> {
    let abar = |x: f64| {
        ((x + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
            .cos()
            .powi(2)
    };
    (0..t)
        .map(|i| {
            let t1 = i as f64 / t as f64;
            let t2 = (i + 1) as f64 / t as f64;
            (1.0 - abar(t2) / abar(t1)).min(0.999)
        })
        .collect()
}

impl NoiseSchedule {
    /// Builds the schedule of `config` (see the type's precision notes).
    ///
    /// # Errors
    /// [`SchedulerError::Field`] when [`SchedulerConfig::validate`] rejects the config.
    pub fn new(config: SchedulerConfig) -> Result<Self, SchedulerError> {
        config.validate()?;
        let t = config.num_train_timesteps;
        let betas32: Vec<f32> = if let Some(b) = &config.trained_betas {
            b.iter().map(|&x| x as f32).collect()
        } else {
            match config.beta_schedule {
                BetaSchedule::Linear => linspace(config.beta_start, config.beta_end, t)
                    .into_iter()
                    .map(|x| x as f32)
                    .collect(),
                BetaSchedule::ScaledLinear => {
                    linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), t)
                        .into_iter()
                        .map(|x| {
                            let x = x as f32;
                            x * x
                        })
                        .collect()
                }
                BetaSchedule::SquaredcosCapV2 => {
                    squaredcos_cap_v2(t).into_iter().map(|x| x as f32).collect()
                }
            }
        };
        let mut acc = 1.0f64;
        let alphas_cumprod: Vec<f64> = betas32
            .iter()
            .map(|&b| {
                acc *= (1.0f32 - b) as f64;
                acc as f32 as f64
            })
            .collect();
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ok(Self {
            betas: betas32.into_iter().map(f64::from).collect(),
            alphas_cumprod,
            final_alpha_cumprod,
            config,
        })
    }

    /// Reads a diffusers `scheduler_config.json` and builds its schedule.
    ///
    /// # Errors
    /// As [`SchedulerConfig::from_file`] (errors name the file and the field).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, SchedulerError> {
        Self::new(SchedulerConfig::from_file(path)?)
    }

    /// The config this schedule was built from.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// T, the number of training timesteps.
    pub fn num_train_timesteps(&self) -> usize {
        self.config.num_train_timesteps
    }

    /// β_t for t ∈ 0..T (float32 values as f64; diffusers `scheduler.betas`).
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// ᾱ_t for t ∈ 0..T (diffusers `scheduler.alphas_cumprod`; strictly decreasing).
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// ᾱ used for the level "before t = 0": 1 when `set_alpha_to_one`, else ᾱ₀ (diffusers
    /// `DDIMScheduler.final_alpha_cumprod` = `DDIMInverseScheduler.initial_alpha_cumprod`).
    pub fn final_alpha_cumprod(&self) -> f64 {
        self.final_alpha_cumprod
    }

    /// ᾱ_t. Panics if t ≥ T.
    pub fn alpha_cumprod(&self, t: usize) -> f64 {
        self.check(t);
        self.alphas_cumprod[t]
    }

    /// ᾱ at a DDIM level: ᾱ_t for t ≥ 0, [`final_alpha_cumprod`](Self::final_alpha_cumprod)
    /// for t < 0 (diffusers' `alphas_cumprod[t] if t >= 0 else final_alpha_cumprod`).
    /// Panics if t ≥ T.
    pub fn alpha_cumprod_at(&self, t: i64) -> f64 {
        if t < 0 {
            self.final_alpha_cumprod
        } else {
            self.alpha_cumprod(t as usize)
        }
    }

    /// α_t = √ᾱ_t, the signal scale of x_t = α_t·x₀ + σ_t·ε. Panics if t ≥ T.
    pub fn sqrt_alpha_cumprod(&self, t: usize) -> f64 {
        self.alpha_cumprod(t).sqrt()
    }

    /// σ_t = √(1−ᾱ_t), the noise scale. Panics if t ≥ T.
    pub fn sigma(&self, t: usize) -> f64 {
        (1.0 - self.alpha_cumprod(t)).sqrt()
    }

    /// Signal-to-noise ratio ᾱ_t / (1−ᾱ_t) = α_t²/σ_t². Panics if t ≥ T.
    pub fn snr(&self, t: usize) -> f64 {
        let a = self.alpha_cumprod(t);
        a / (1.0 - a)
    }

    /// DDPM posterior variance β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_{t−1}) of q(x_{t−1}|x_t, x₀),
    /// clamped to ≥ 1e-20, with ᾱ_{−1} = 1. Matches `DDPMScheduler._get_variance(t)` with
    /// `variance_type="fixed_small"` on a scheduler without `set_timesteps` (previous step t−1;
    /// DDPM uses 1, not `final_alpha_cumprod`, before t = 0). Panics if t ≥ T.
    pub fn ddpm_posterior_variance(&self, t: usize) -> f64 {
        let a = self.alpha_cumprod(t);
        let ap = if t == 0 {
            1.0
        } else {
            self.alphas_cumprod[t - 1]
        };
        let beta = 1.0 - a / ap;
        ((1.0 - ap) / (1.0 - a) * beta).max(1e-20)
    }

    /// DDIM variance between levels t and `t_prev` < t:
    /// (1−ᾱ_prev)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_prev), the posterior variance v_{prev,t} (methods.md §2),
    /// with ᾱ_prev = `final_alpha_cumprod` for `t_prev` < 0. Matches
    /// `DDIMScheduler._get_variance(t, t_prev)`. Panics if t ≥ T.
    pub fn ddim_variance(&self, t: usize, t_prev: i64) -> f64 {
        let a = self.alpha_cumprod(t);
        let ap = self.alpha_cumprod_at(t_prev);
        (1.0 - ap) / (1.0 - a) * (1.0 - a / ap)
    }

    /// T // n, the stride diffusers' DDIM schedulers use between consecutive levels
    /// (whatever the spacing).
    pub fn ddim_stride(&self, num_inference_steps: usize) -> usize {
        self.num_train_timesteps() / num_inference_steps.max(1)
    }

    /// The DDIM sampling timesteps, descending, as `DDIMScheduler.set_timesteps(n)` sets
    /// `scheduler.timesteps` for the config's `timestep_spacing`:
    /// leading `k·(T//n) + steps_offset`, trailing `round(T − k·T/n) − 1`,
    /// linspace `round(linspace(0, T−1, n))` (rounding half to even, as numpy).
    ///
    /// # Errors
    /// n = 0, n > T, or a timestep ≥ T (leading with a large `steps_offset`).
    pub fn ddim_timesteps(&self, num_inference_steps: usize) -> Result<Vec<usize>, SchedulerError> {
        let n = num_inference_steps;
        let t = self.num_train_timesteps();
        self.check_steps(n)?;
        let ts: Vec<i64> = match self.config.timestep_spacing {
            TimestepSpacing::Leading => {
                let r = t / n;
                (0..n)
                    .rev()
                    .map(|k| (k * r + self.config.steps_offset) as i64)
                    .collect()
            }
            TimestepSpacing::Trailing => self.trailing(n),
            TimestepSpacing::Linspace => {
                let last = (t - 1) as f64;
                let step = if n > 1 { last / (n - 1) as f64 } else { 0.0 };
                (0..n)
                    .rev()
                    .map(|k| {
                        let v = if k + 1 == n && n > 1 {
                            last
                        } else {
                            k as f64 * step
                        };
                        v.round_ties_even() as i64
                    })
                    .collect()
            }
        };
        self.to_timesteps(ts)
    }

    /// The DDIM inversion timesteps, ascending, as `DDIMInverseScheduler.set_timesteps(n)`:
    /// leading `k·(T//n) + steps_offset`, trailing `round(T − k·T/n) − 1` reversed.
    ///
    /// # Errors
    /// As [`ddim_timesteps`](Self::ddim_timesteps); also `linspace` spacing, which diffusers'
    /// inverse scheduler rejects.
    pub fn ddim_inverse_timesteps(
        &self,
        num_inference_steps: usize,
    ) -> Result<Vec<usize>, SchedulerError> {
        let n = num_inference_steps;
        self.check_steps(n)?;
        let ts: Vec<i64> = match self.config.timestep_spacing {
            TimestepSpacing::Leading => {
                let r = self.num_train_timesteps() / n;
                (0..n)
                    .map(|k| (k * r + self.config.steps_offset) as i64)
                    .collect()
            }
            TimestepSpacing::Trailing => self.trailing(n).into_iter().rev().collect(),
            TimestepSpacing::Linspace => {
                return Err(SchedulerError::Invalid(
                    "DDIM inversion does not support timestep_spacing `linspace` \
                     (diffusers' DDIMInverseScheduler rejects it)"
                        .into(),
                ));
            }
        };
        self.to_timesteps(ts)
    }

    /// `np.round(np.arange(T, 0, -T/n)).astype(int64) - 1` (descending).
    fn trailing(&self, n: usize) -> Vec<i64> {
        let t = self.num_train_timesteps() as f64;
        let ratio = t / n as f64;
        // numpy's arange length: ceil((stop - start) / step).
        let len = ((0.0 - t) / -ratio).ceil() as usize;
        (0..len)
            .map(|k| (t + k as f64 * -ratio).round_ties_even() as i64 - 1)
            .collect()
    }

    fn check_steps(&self, n: usize) -> Result<(), SchedulerError> {
        let t = self.num_train_timesteps();
        if n == 0 || n > t {
            return Err(SchedulerError::Invalid(format!(
                "num_inference_steps = {n} must be in 1..={t} (num_train_timesteps)"
            )));
        }
        Ok(())
    }

    fn to_timesteps(&self, ts: Vec<i64>) -> Result<Vec<usize>, SchedulerError> {
        let t = self.num_train_timesteps() as i64;
        ts.into_iter()
            .map(|x| {
                if (0..t).contains(&x) {
                    Ok(x as usize)
                } else {
                    Err(SchedulerError::Invalid(format!(
                        "timestep {x} outside 0..{t} (steps_offset {})",
                        self.config.steps_offset
                    )))
                }
            })
            .collect()
    }

    pub(crate) fn check(&self, t: usize) {
        assert!(
            t < self.num_train_timesteps(),
            "timestep {t} outside 0..{}",
            self.num_train_timesteps()
        );
    }
}
