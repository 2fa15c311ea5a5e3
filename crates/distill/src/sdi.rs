//! **SDI**, Score Distillation via Reparametrized DDIM (Lukoianov, Sáez de Ocáriz Borde,
//! Greenewald, Guizilini, Bagautdinov, Sitzmann, Solomon; NeurIPS 2024; docs/methods.md §2),
//! following the threestudio reference guidance (`stable_diffusion_sdi_guidance.py`, [EXT]).
//!
//! SDS draws fresh noise every step; SDI instead **infers** the noise by DDIM-inverting the
//! current latent up to the step's noise level, which removes SDS's excess variance. Per step
//! and sample, with `t` from the (linear, deterministic) schedule:
//!
//! 1. inversion levels: the leading 10-step grid `{1, 101, …, 901}` cut to the points `< t`,
//!    one level `first − T/n` prepended (the clean start; negative, so ᾱ =
//!    `final_alpha_cumprod`, and the U-Net is called with that negative timestep as in the
//!    reference), and the end level `t' = min(t + δ, T − 1)` appended ([`inversion_levels`]);
//! 2. each inversion step `a → b`: `ε̂_a = CFG_{s_inv}(x_a; y, a)` with `s_inv = −7.5`
//!    (form A), `x_b = √ᾱ_b x̂₀ + √(1−ᾱ_b) ε̂_a + η√v_ab ξ` with η = 0.3
//!    ([`sd::scheduler::NoiseSchedule::ddim_invert_step_eta`]);
//! 3. `κ = (x_{t'} − α_{t'} z)/σ_{t'}` (so `z_t = x_{t'}`), `ε̂ = CFG_s(z_t; y, t)` with
//!    s = 7.5 and the U-Net labelled `t`; `x̂₀ = (z_t − σ_t ε̂)/α_t`;
//! 4. the x₀-space loss `½·mean((z − sg(x̂₀))²)/B`, whose gradient is
//!    `g = (z − x̂₀)/(N·B²)` (N = elements per sample), i.e. SDS with ε → κ and
//!    w(t) = σ_t/α_t, divided by N·B².
//!
//! Choices ([REC], methods.md §6.3 item 2): δ = 0 by default (`jitter = false`: the latent is
//! labelled with its true level); `jitter = true` reproduces the reference's δ ~ U{0, …,
//! T/n − 1}. Perp-neg (on in the reference config) is not implemented: both CFGs are plain
//! form A with the view prompt. `reduction = "sum"` drops the 1/(N·B²) (the scale then
//! matches SDS's sum-reduction gradients). `enable = false` replaces κ by fresh noise (the
//! paper's ablation: SDS with the x₀ loss).
//!
//! Cost: `⌈t/100⌉ + 1` extra guided U-Net evaluations per step (batched 2B each).

use crate::timesteps::TimestepSchedule;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use sd::scheduler::NoiseSchedule;
use serde::{Deserialize, Serialize};

use crate::{DistillError, Guidance, GuidanceInput, GuidanceOutput, Prior, Stat};

/// How the x₀ loss is reduced (what scale `g` has).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// `½·mean(…)/B` as the reference: `g = (z − x̂₀)/(N·B²)`.
    #[default]
    Mean,
    /// `½·sum(…)`: `g = z − x̂₀`.
    Sum,
}

/// Settings of [`Sdi`] (`[guidance.sdi]`). Defaults: threestudio's `configs/sdi.yaml` [EXT]
/// with δ = 0 [REC].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SdiConfig {
    /// CFG scale of the guidance prediction, form A (7.5).
    pub cfg_scale: f64,
    /// CFG scale during inversion, form A (−7.5).
    pub inversion_cfg_scale: f64,
    /// Inversion grid size n over T (10).
    pub inversion_steps: usize,
    /// η of the inversion noise (0.3).
    pub eta: f64,
    /// The reference's end-level jitter δ ~ U{0, …, T/n − 1} (off: δ = 0).
    pub jitter: bool,
    /// Infer the noise by inversion (off: fresh noise, the ablation).
    pub enable: bool,
    /// Loss reduction.
    pub reduction: Reduction,
    /// Overall multiplier.
    pub scale: f64,
    /// Timestep schedule (SDI's threestudio config `t_anneal`: t = 980 → 250 linearly over 10,000
    /// steps, one t per step; its README says 200; docs/methods.md §2.3).
    pub timesteps: TimestepSchedule,
}

impl Default for SdiConfig {
    fn default() -> Self {
        Self {
            cfg_scale: 7.5,
            inversion_cfg_scale: -7.5,
            inversion_steps: 10,
            eta: 0.3,
            jitter: false,
            enable: true,
            reduction: Reduction::Mean,
            scale: 1.0,
            timesteps: TimestepSchedule::Linear {
                t_min: 250,
                t_max: 980,
                steps: 10_000,
            },
        }
    }
}

impl SdiConfig {
    /// Check the settings.
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the `guidance.sdi.*` setting.
    pub fn validate(&self) -> Result<(), DistillError> {
        let bad = |name: &str, detail: String| DistillError::Setting {
            name: format!("guidance.sdi.{name}"),
            detail,
        };
        for (name, v) in [
            ("cfg_scale", self.cfg_scale),
            ("inversion_cfg_scale", self.inversion_cfg_scale),
            ("scale", self.scale),
        ] {
            if !v.is_finite() {
                return Err(bad(name, format!("{v} is not finite")));
            }
        }
        if !(0.0..=1.0).contains(&self.eta) {
            return Err(bad("eta", format!("{} is outside [0, 1]", self.eta)));
        }
        if self.inversion_steps == 0 {
            return Err(bad("inversion_steps", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// The inversion levels for target `t` (module docs, step 1): the inverse DDIM grid of
/// `n` steps below `t`, one level `first − T/n` prepended, `min(t + delta, T − 1)` appended.
/// Consecutive pairs are the inversion steps; the U-Net is evaluated at every level but the
/// last.
///
/// # Errors
/// [`DistillError::Setting`] when the schedule cannot make an `n`-step inverse grid.
pub fn inversion_levels(
    schedule: &NoiseSchedule,
    t: usize,
    n: usize,
    delta: usize,
) -> Result<Vec<i64>, DistillError> {
    let grid = schedule
        .ddim_inverse_timesteps(n)
        .map_err(|e| DistillError::Setting {
            name: "guidance.sdi.inversion_steps".into(),
            detail: e.to_string(),
        })?;
    let stride = schedule.ddim_stride(n) as i64;
    let mut kept: Vec<i64> = grid.iter().filter(|&&g| g < t).map(|&g| g as i64).collect();
    // Below the first grid point the chain starts from the clean level directly.
    let first = kept.first().copied().unwrap_or(grid[0] as i64);
    kept.insert(0, first - stride);
    let top = schedule.num_train_timesteps() - 1;
    kept.push((t + delta).min(top) as i64);
    Ok(kept)
}

/// The standard normal inversion noise ξ of inversion step `k` for the sample group that
/// starts at batch index `group`, from the step's seed (shape `[b, 4, h, w]`).
pub fn inversion_noise(
    seed: u64,
    group: usize,
    k: usize,
    shape: [usize; 4],
    device: &burn::tensor::Device,
) -> Tensor<4> {
    let s = seed
        ^ (group as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (k as u64 + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    sd::pipeline::gaussian(shape, s, device)
}

/// The end-level jitter δ of the sample group starting at batch index `group` (0 without
/// jitter).
pub fn jitter_delta(seed: u64, group: usize, stride: usize, jitter: bool) -> usize {
    if !jitter || stride == 0 {
        return 0;
    }
    StdRng::seed_from_u64(seed ^ 0x5d1_0000 ^ group as u64).random_range(0..stride)
}

/// SDI guidance (module docs).
#[derive(Clone, Debug)]
pub struct Sdi {
    /// Settings.
    pub config: SdiConfig,
}

impl Sdi {
    /// New SDI guidance.
    ///
    /// # Errors
    /// [`DistillError::Setting`] when [`SdiConfig::validate`] fails.
    pub fn new(config: SdiConfig) -> Result<Self, DistillError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// DDIM-invert `z [b, 4, h, w]` (all samples at target `t`) to the end level; returns
    /// `(x_{t'}, number of guided U-Net evaluations per sample)`. Plain tensors; `cond`/`uncond` are `[b, 77, D]`.
    #[allow(clippy::too_many_arguments)]
    pub fn invert(
        &self,
        prior: &Prior<'_>,
        z: Tensor<4>,
        t: usize,
        cond: Tensor<3>,
        uncond: Tensor<3>,
        seed: u64,
        group: usize,
    ) -> Result<(Tensor<4>, usize), DistillError> {
        let c = &self.config;
        let stride = prior.schedule.ddim_stride(c.inversion_steps);
        let delta = jitter_delta(seed, group, stride, c.jitter);
        let levels = inversion_levels(prior.schedule, t, c.inversion_steps, delta)?;
        let b = z.dims()[0];
        let ctx = Tensor::cat(vec![uncond, cond], 0);
        let mut x = z.detach();
        for (k, pair) in levels.windows(2).enumerate() {
            let (from, to) = (pair[0], pair[1] as usize);
            let tf = vec![from as f64; 2 * b];
            let out = prior
                .unet
                .forward(Tensor::cat(vec![x.clone(), x.clone()], 0), &tf, ctx.clone())
                .detach();
            // CFG on the raw output: ε and v are affine in it with weights summing to one at a
            // fixed x, so guiding the raw output is guiding ε.
            let u = out.clone().narrow(0, 0, b);
            let co = out.narrow(0, b, b);
            let guided = sd::scheduler::cfg(u, co, c.inversion_cfg_scale);
            let xi = (c.eta > 0.0).then(|| inversion_noise(seed, group, k, x.dims(), &x.device()));
            x = prior
                .schedule
                .ddim_invert_step_eta(guided, from, to, x, c.eta, xi)
                .0;
        }
        Ok((x, levels.len() - 1))
    }
}

impl Guidance for Sdi {
    fn name(&self) -> &'static str {
        "sdi"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.cfg_scale
    }

    /// Module docs, steps 1–4. Stats: `kappa_std` (std of the inferred noise; ≈ 1 when the
    /// inversion is well behaved) and `inversion_nfe` (guided U-Net evaluations per sample).
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        crate::check_input(input)?;
        let c = &self.config;
        let z = input.latents.clone().detach();
        let dims = z.dims();
        let b = dims[0];
        let schedule = prior.schedule;
        // z_t per sample: inverted (grouped by equal t, so the linear schedule runs batched)
        // or forward-noised.
        let (z_t, nfe) = if c.enable {
            let mut parts = Vec::with_capacity(b);
            let mut nfe = 0usize;
            let mut start = 0;
            while start < b {
                let t = input.timesteps[start];
                let mut end = start + 1;
                while end < b && input.timesteps[end] == t {
                    end += 1;
                }
                let n = end - start;
                let (x, evaluations) = self.invert(
                    prior,
                    z.clone().narrow(0, start, n),
                    t,
                    input.cond.clone().narrow(0, start, n),
                    input.uncond.clone().narrow(0, start, n),
                    input.seed,
                    start,
                )?;
                nfe += n * evaluations;
                parts.push(x);
                start = end;
            }
            (Tensor::cat(parts, 0), nfe as f64 / b as f64)
        } else {
            (input.noisy(schedule), 0.0)
        };
        let (eps_hat, _, _) = prior.eps_cfg(
            z_t.clone(),
            &input.timesteps,
            input.cond.clone(),
            input.uncond.clone(),
            c.cfg_scale,
        );
        let x0 = schedule.eps_to_x0(eps_hat, z_t.clone(), &input.timesteps);
        let factor = match c.reduction {
            Reduction::Mean => {
                let n = dims[1] * dims[2] * dims[3];
                1.0 / (n as f64 * (b * b) as f64)
            }
            Reduction::Sum => 1.0,
        };
        let grad = (z.clone() - x0) * (factor * c.scale);
        // κ = (z_t − α z)/σ at the labelled t, for the log.
        let per_sample = |f: &dyn Fn(usize) -> f64| {
            let v: Vec<f32> = input.timesteps.iter().map(|&t| f(t) as f32).collect();
            Tensor::<4>::from_data(TensorData::new(v, [b, 1, 1, 1]), &z.device())
        };
        let alpha = per_sample(&|t| schedule.sqrt_alpha_cumprod(t));
        let sigma = per_sample(&|t| schedule.sigma(t));
        let kappa = (z_t - z * alpha) / sigma;
        let kappa_std = kappa
            .reshape([dims.iter().product::<usize>()])
            .var(0)
            .sqrt();
        Ok(GuidanceOutput {
            grad,
            stats: vec![
                ("kappa_std", Stat::Device(kappa_std)),
                ("inversion_nfe", Stat::Host(nfe)),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::jitter_delta;

    /// δ is 0 without jitter (and for a zero stride); with it, a draw from U{0, …, stride − 1}
    /// per (seed, group): over many draws every value of a small stride appears and none
    /// reaches the stride, and the same (seed, group) gives the same δ.
    #[test]
    fn jitter_delta_is_uniform_below_the_stride() {
        assert!((0..50).all(|g| jitter_delta(7, g, 100, false) == 0));
        assert_eq!(jitter_delta(7, 0, 0, true), 0);
        let seen: std::collections::BTreeSet<usize> = (0..64u64)
            .flat_map(|s| (0..4).map(move |g| jitter_delta(s, g, 10, true)))
            .collect();
        assert_eq!(seen, (0..10).collect());
        assert_eq!(jitter_delta(3, 2, 100, true), jitter_delta(3, 2, 100, true));
    }
}
