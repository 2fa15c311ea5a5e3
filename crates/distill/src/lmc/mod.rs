//! **LMC-SDS**: score distillation with a learned manifold corrective (Alldieck, Kolotouros,
//! Sminchisescu 2024, "Score Distillation Sampling with Learned Manifold Corrective" \[S2\];
//! docs/methods.md §3 and §6.3 items 7–8).
//!
//! SDS splits into a prompt term and a "projection" term (methods.md §3.1):
//! `ε̂_cfg − ε = ω(ε̂_y − ε̂_∅) + (ε̂_∅ − ε)`, where `ε̂_∅ − ε ∝ z − ẑ_t` pulls the render towards
//! the unconditional one-step denoised estimate `ẑ_t`, a *blurred* version of `z` — which is
//! what erases detail at low ω. LMC-SDS replaces `z` in that term by `b̃(z, t)`, a learned model
//! of the denoiser's blur applied to `z`, so only the genuine "towards the manifold" part stays.
//!
//! # The gradient (methods.md §3.1, §3.5; \[S2\] Eq. 9–10, "scaled by 1/ω", w(t) = 1)
//!
//! ```text
//! z_t  = α_t z + σ_t ε                                  (α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t))
//! z^c_t = z_t, or α_t z + σ_t ε_fix in fixed-ε mode (ε_fix drawn once per run)
//! ε_y = ε̂_φ(z^c_t; y, t),  ε_∅ = ε̂_φ(z^c_t; ∅, t)          (U-Net, no gradient, ε units)
//! ẑ_t = (z_t − σ_t ε̂_φ(z_t; ∅, t)) / α_t                (reuses ε_∅ when z^c_t = z_t)
//! b   = b̂ψ(z, t)                                        (frozen [`BlurNet`], no gradient)
//! b̃   = σ(ẑ_t)/σ(b) · (b − μ(b)) + μ(b)                 (per image, per channel; [`renormalise`])
//! g   = scale · (1/ω) · [ ω (ε_y − ε_∅) + (b̃ − ẑ_t) ]
//! ```
//!
//! `g` is injected into the latents with the SDS pseudo-loss ([`crate::inject`]): the gradient
//! is taken with respect to `z`, not `z_t` (no `α_t` factor, methods.md §6.3 item 8), the
//! `√ᾱ_t/√(1−ᾱ_t)` factor of `L_proj` is dropped as in \[S2\], and the Jacobians of the U-Net
//! and of b̂ψ are omitted. The two summands have different units (ε vs latent), as in \[S2\].
//! `ε_y`, `ε_∅` come from one batched U-Net call of 2B ([`Prior::eps_cfg`]); fixed-ε mode adds
//! one unconditional call at `z_t` (3 U-Net evaluations per sample instead of 2).
//! `∅` is whatever [`GuidanceInput::uncond`] holds, i.e. the run's negative prompt: \[S2\]'s
//! `ε_∅` and `ẑ_t` are *unconditional* (empty prompt), so set `negative_prompt = ""` (as
//! `configs/lmc.toml` does; b̂ψ is trained against the empty prompt too).
//!
//! # The blur model b̂ψ ([`BlurNet`], methods.md §3.2)
//!
//! A plain U-Net in SD **latent** space (\[REC\], §6.3 item 7: \[S2\] used a 128² pixel model that
//! is not public): input `[B, 4 + 10, h, w]` = the scaled latent and the 10-channel frequency
//! encoding of t ([`time_encoding`]) broadcast to every pixel; `levels` encoder levels of
//! two Conv3×3+ReLU then MaxPool2 with widths `base_width·2^i`; a bottleneck of two Conv3×3+ReLU
//! at `2·base_width·2^(levels−1)`; decoder levels of nearest ×2 upsampling, concatenation with
//! the skip and two Conv3×3+ReLU halving the width; a final Conv1×1 to 4 channels. Defaults
//! (levels 4, base width 32 → 32-64-128-256, bottleneck 512) follow \[S2\] plus §6.3 item 8.
//! **No tanh** on the output (\[REC\]): \[S2\]'s images were bounded in [−1, 1], SD latents are
//! not (scaled latents reach |z| ≈ 4–5), and the renormalisation below makes the loss invariant
//! to the output's per-channel contrast anyway.
//!
//! It is **pre-trained once and frozen** ([`BlurTrainer`], `splatdream lmc-train`) on triplets
//! `(z, ẑ_t, t)`: `z` the scaled VAE latents of natural images, `t ~ U{20, …, 980}`
//! (\[S2\]: U(0.02, 0.98)), fresh `ε`, `ẑ_t` the frozen U-Net's **unconditional** x₀ prediction
//! (empty-prompt embedding), with the normalised loss `L_k = mean‖ẑ_t − b̃‖²` ([`blur_loss`]),
//! Adam at lr 1e-4 decayed ×0.9 every 100K steps (\[S2\]). b̂ψ mimics *one* diffusion model's blur:
//! retrain it for another model. The file records the model it was trained for.
//!
//! # Choices that are ours (\[REC\])
//! - latent space, 4 + 10 input channels, no tanh (above);
//! - μ/σ per image and per channel, σ the **biased** (population) standard deviation, with
//!   [`VAR_EPS`] added to the variance so a constant `b` cannot divide by zero;
//! - ẑ_t unconditional (it comes from `L_proj`); the same t for both terms in fixed-ε mode;
//! - ε_fix is one `[1, 4, h, w]` draw shared by every sample of a batch, from
//!   `guidance.lmc.fixed_eps_seed`, kept in [`Guidance::state`] so a resumed run continues with
//!   the same ε_fix;
//! - the blur-net training batch defaults to 8 (paper: 128) because every sample costs one U-Net
//!   forward; inputs whose sides are not multiples of `2^levels` are zero-padded at the
//!   bottom/right and the output cropped back (the time channels are padded with zeros too).
//!
//! # The file format
//! safetensors, every float parameter as F32 under its module path with the prefix `blur.`
//! (e.g. `blur.enc.0.conv1.weight`), and string metadata `splatdream.lmc.<field>` for every
//! field of [`BlurMeta`] (format tag, levels, base width, model, steps, …). [`BlurNet::load`] rejects a
//! missing, unexpected, mis-shaped or non-F32 tensor and missing or bad metadata with an error
//! naming the file and the tensor.

mod format;
mod net;
mod pretrain;

pub use format::*;
pub use net::*;
pub use pretrain::*;

use crate::timesteps::TimestepSchedule;
use std::path::PathBuf;

use net::mix;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use sd::pipeline::gaussian;

use crate::{DistillError, Guidance, GuidanceInput, GuidanceOutput, Prior, Stat, check_input};

/// Settings of [`Lmc`] (`[guidance.lmc]` in the generate config). Defaults follow
/// methods.md §3 and §6.3 item 8 (3D: ω = 20, w(t) = 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmcConfig {
    /// The pre-trained b̂ψ (`splatdream lmc-train --out …`); required by [`Lmc::new`].
    pub blur_model: Option<PathBuf>,
    /// ω, the CFG scale of `L_cond` (form A; \[S2\] 3D comparisons: 20, "often" 10). The total
    /// is scaled by 1/ω (\[S2\]).
    pub cfg_scale: f64,
    /// Fixed-ε diversity option (\[S2\]): `L_cond` uses one ε_fix per run, `L_lmc` fresh ε.
    pub fixed_eps: bool,
    /// Seed of ε_fix (\[REC\]; ε_fix is then kept in the checkpoint state).
    pub fixed_eps_seed: u64,
    /// Overall multiplier of the gradient (1).
    pub scale: f64,
    /// Timestep schedule ([S2]: t ~ U(0.02, 0.98) with no anneal, i.e. U{20, …, 980}).
    pub timesteps: TimestepSchedule,
}

impl Default for LmcConfig {
    fn default() -> Self {
        Self {
            blur_model: None,
            cfg_scale: 20.0,
            fixed_eps: false,
            fixed_eps_seed: 0,
            scale: 1.0,
            timesteps: TimestepSchedule::dreamfusion(),
        }
    }
}

impl LmcConfig {
    /// Check the numeric settings (the blur model is checked by [`Lmc::new`]).
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the `guidance.lmc.*` setting.
    pub fn validate(&self) -> Result<(), DistillError> {
        if !(self.cfg_scale.is_finite() && self.cfg_scale > 0.0) {
            return Err(DistillError::Setting {
                name: "guidance.lmc.cfg_scale".into(),
                detail: format!(
                    "{} is not a positive number (the gradient is scaled by 1/ω)",
                    self.cfg_scale
                ),
            });
        }
        if !self.scale.is_finite() {
            return Err(DistillError::Setting {
                name: "guidance.lmc.scale".into(),
                detail: format!("{} is not finite", self.scale),
            });
        }
        Ok(())
    }
}

/// LMC-SDS guidance (module docs): `g = scale·(1/ω)[ω(ε_y − ε_∅) + (b̃ − ẑ_t)]` with a frozen,
/// pre-trained b̂ψ.
pub struct Lmc {
    /// Settings.
    pub config: LmcConfig,
    /// b̂ψ, frozen, on the plain device.
    blur: BlurNet,
    /// The blur model file's metadata.
    meta: BlurMeta,
    /// ε_fix `[1, 4, h, w]` once drawn (fixed-ε mode) or restored from a checkpoint.
    eps_fix: Option<Tensor<4>>,
}

impl std::fmt::Debug for Lmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lmc")
            .field("config", &self.config)
            .field("blur", &self.meta)
            .field("eps_fix", &self.eps_fix.as_ref().map(|e| e.dims()))
            .finish()
    }
}

/// The name of ε_fix in [`Guidance::state`].
pub const EPS_FIX_STATE: &str = "lmc.eps_fix";

impl Lmc {
    /// Load b̂ψ from `config.blur_model` onto `device` (plain side; frozen).
    ///
    /// # Errors
    /// [`DistillError::Setting`] `guidance.lmc.blur_model` when it is unset or the file cannot
    /// be loaded (the message names the file and the cause); other settings from
    /// [`LmcConfig::validate`].
    pub fn new(config: LmcConfig, device: &Device) -> Result<Self, DistillError> {
        config.validate()?;
        let setting = |detail: String| DistillError::Setting {
            name: "guidance.lmc.blur_model".into(),
            detail,
        };
        let path = config.blur_model.clone().ok_or_else(|| {
            setting(
                "not set: LMC-SDS needs a pre-trained blur model b̂ψ; train one with \
                 `splatdream lmc-train --model … --images … --out blur.safetensors` and pass \
                 `--set guidance.lmc.blur_model=\"blur.safetensors\"`"
                    .into(),
            )
        })?;
        let (blur, meta) =
            BlurNet::load(&path, &device.clone().inner()).map_err(|e| setting(e.to_string()))?;
        tracing::info!(
            "LMC blur model {}: levels {}, base width {}, trained for `{}` over {} steps",
            path.display(),
            meta.levels,
            meta.base_width,
            meta.model,
            meta.steps
        );
        Ok(Self::with_net(config, blur, meta))
    }

    /// An LMC guidance around an already loaded b̂ψ (plain tensors; tests and tools).
    pub fn with_net(config: LmcConfig, blur: BlurNet, meta: BlurMeta) -> Self {
        Self {
            config,
            blur,
            meta,
            eps_fix: None,
        }
    }

    /// The frozen b̂ψ.
    pub fn blur_net(&self) -> &BlurNet {
        &self.blur
    }

    /// The blur model file's metadata.
    pub fn meta(&self) -> &BlurMeta {
        &self.meta
    }

    /// ε_fix `[1, 4, h, w]` for latents `like [B, 4, h, w]`: the restored or earlier draw, or a
    /// new one from `fixed_eps_seed`.
    ///
    /// # Errors
    /// [`DistillError::Input`] when a restored ε_fix does not match the latents' shape.
    pub fn eps_fix(&mut self, like: &Tensor<4>) -> Result<Tensor<4>, DistillError> {
        let [_, c, h, w] = like.dims();
        if let Some(e) = &self.eps_fix {
            if e.dims() != [1, c, h, w] {
                return Err(DistillError::Input(format!(
                    "ε_fix has shape {:?}, the latents need [1, {c}, {h}, {w}] (resolution changed since the checkpoint?)",
                    e.dims()
                )));
            }
            return Ok(e.clone());
        }
        let e = gaussian(
            [1, c, h, w],
            mix(self.config.fixed_eps_seed, 0, 4),
            &like.device(),
        );
        self.eps_fix = Some(e.clone());
        Ok(e)
    }
}

/// Root mean square of `x` as a `[1]` tensor.
fn rms(x: Tensor<4>) -> Tensor<1> {
    x.square().mean().sqrt().reshape([1])
}

impl Guidance for Lmc {
    fn name(&self) -> &'static str {
        "lmc"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.cfg_scale
    }

    /// The LMC-SDS gradient (module docs). Stats (device): `cond_rms` = rms of
    /// `ω(ε_y − ε_∅)`, `lmc_rms` = rms of `b̃ − ẑ_t` (the two summands before the 1/ω).
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        check_input(input)?;
        let omega = self.config.cfg_scale;
        let t = &input.timesteps;
        let z = input.latents.clone().detach().inner();
        let b = z.dims()[0];
        let z_t = input.noisy(prior.schedule).inner();
        let zc_t = if self.config.fixed_eps {
            let e = self.eps_fix(&z)?.expand(z.dims());
            prior.schedule.add_noise(z.clone(), e, t)
        } else {
            z_t.clone()
        };
        let (_, e_y, e_u) = prior.eps_cfg(zc_t, t, input.cond.clone(), input.uncond.clone(), omega);
        let e_u_zt = if self.config.fixed_eps {
            eps_uncond(prior, z_t.clone(), t, input.uncond.clone())
        } else {
            e_u.clone()
        };
        let z_hat = prior.schedule.eps_to_x0(e_u_zt, z_t, t);
        let blur = self.blur.forward(z, t).detach();
        let bt = renormalise(blur, z_hat.clone());
        let cond = (e_y - e_u) * omega;
        let lmc = bt - z_hat;
        debug_assert_eq!(cond.dims()[0], b);
        let grad = (cond.clone() + lmc.clone()) * (self.config.scale / omega);
        Ok(GuidanceOutput {
            grad,
            stats: vec![
                ("cond_rms", Stat::Device(rms(cond))),
                ("lmc_rms", Stat::Device(rms(lmc))),
            ],
        })
    }

    /// ε_fix (`lmc.eps_fix`, `[1, 4, h, w]`) once drawn; nothing otherwise (b̂ψ is frozen and
    /// lives in its own file).
    fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let Some(e) = &self.eps_fix else {
            return vec![];
        };
        let values = e
            .clone()
            .inner()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        vec![(EPS_FIX_STATE.to_string(), e.dims().to_vec(), values)]
    }

    /// Restore ε_fix from [`Guidance::state`]'s entry (absent: drawn afresh when needed).
    fn load_state(&mut self, state: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), DistillError> {
        for (name, shape, values) in state {
            if name != EPS_FIX_STATE {
                return Err(DistillError::Input(format!(
                    "lmc state: unknown entry `{name}`"
                )));
            }
            let ok = shape.len() == 4
                && shape[0] == 1
                && shape[1] == LATENT_CHANNELS
                && shape.iter().product::<usize>() == values.len();
            if !ok {
                return Err(DistillError::Input(format!(
                    "lmc state: `{name}` has shape {shape:?} ({} values), expected [1, {LATENT_CHANNELS}, h, w]",
                    values.len()
                )));
            }
            let dev = self.blur.head.weight.val().device();
            self.eps_fix = Some(Tensor::from_data(
                TensorData::new(values.clone(), [shape[0], shape[1], shape[2], shape[3]]),
                &dev,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_is_documented_form() {
        let e = time_encoding(250);
        let tau = 0.25f64;
        for k in 0..TIME_FREQUENCIES {
            let a = (1u32 << k) as f64 * std::f64::consts::PI * tau;
            assert!((e[2 * k] as f64 - a.sin()).abs() < 1e-6);
            assert!((e[2 * k + 1] as f64 - a.cos()).abs() < 1e-6);
        }
        assert_eq!(time_encoding(0)[0], 0.0);
        assert_eq!(time_encoding(0)[1], 1.0);
    }

    #[test]
    fn lr_decays_in_stairs() {
        let c = BlurTrainerConfig {
            lr_decay_every: 10,
            ..BlurTrainerConfig::default()
        };
        assert_eq!(c.lr_at(0), 1e-4);
        assert_eq!(c.lr_at(9), 1e-4);
        assert!((c.lr_at(10) - 0.9e-4).abs() < 1e-18);
        assert!((c.lr_at(25) - 0.81e-4).abs() < 1e-18);
    }

    #[test]
    fn config_defaults_and_validation() {
        assert_eq!(
            BlurNetConfig::default(),
            BlurNetConfig {
                levels: 4,
                base_width: 32
            }
        );
        assert!(
            BlurNetConfig {
                levels: 0,
                base_width: 8
            }
            .validate()
            .is_err()
        );
        let c = LmcConfig::default();
        assert_eq!(c.cfg_scale, 20.0);
        assert!(!c.fixed_eps && c.blur_model.is_none() && c.scale == 1.0);
        assert!(
            LmcConfig {
                cfg_scale: 0.0,
                ..LmcConfig::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn lmc_is_send() {
        fn send<T: Send>() {}
        send::<Lmc>();
        send::<BlurTrainer>();
    }
}
