//! DreamMapping's **VDM + DCA** guidance (Cai, Wang, Liang, Shao, Chen, Zhan, Wang 2024,
//! "DreamMapping: High-Fidelity Text-to-3D Generation via Variational Distribution Mapping";
//! docs/methods.md §5).
//!
//! The render is treated as a degraded diffusion output, and a small degradation network ℳψ
//! (U-Lite, [`crate::ulite`]) is trained online to recover the injected noise from the
//! prior's prediction. Per step (methods.md §5.5, the paper's Algorithm 1):
//!
//! 1. `z_t = α_t z + σ_t ε`;
//! 2. `ε̂ = CFG_s(ε̂_φ(z_t; y, t), ε̂_φ(z_t; ∅, t))` without gradient (form A, s = 7.5);
//! 3. `m = ℳψ(ε̂)` with gradient to ψ only, the operator loss `L_op = mean‖m − ε‖²`
//!    (Eq. 17/18: no U-Net backward) and one Adam step on ψ (lr 0.01);
//! 4. DCA: `λ_t = 1 − ᾱ_t` for `t ≤ 300`, else 1;
//! 5. the latent gradient (Eq. 19) `g = ω(t)·(ε̂ − λ_t·sg(m))·scale`, injected with the SDS
//!    pseudo-loss ([`crate::inject`]).
//!
//! **Which m.** `g` uses the ℳψ output of the *same* forward that produced `L_op`, i.e. ℳψ
//! with its weights from **before** this step's ψ update: Algorithm 1 computes both losses
//! from one forward pass and then steps ψ and θ. (Evaluating ℳψ again after the update would
//! cost a second forward and is not what the paper does.)
//!
//! **ω(t)** is not specified by the paper; the default is LucidDreamer's `σ_t/α_t` (the
//! codebase DreamMapping built on), times `scale` (LucidDreamer's `lambda_guidance`).
//!
//! **Checkpoints.** [`Guidance::state`] / [`Guidance::load_state`] save and restore ℳψ's
//! weights (BatchNorm γ/β included; BatchNorm always uses batch statistics, so burn-nn's
//! running-statistics buffers are neither used nor saved) and Adam's moments ([`PathAdam`]), so
//! a resumed run takes the same ψ updates as an uninterrupted one.

use crate::timesteps::TimestepSchedule;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use sd::scheduler::NoiseSchedule;
use serde::{Deserialize, Serialize};

use crate::optim::PathAdam;
use crate::state::{load_module_state, module_state};
use crate::ulite::{MAX_LEVELS, ULite, ULiteConfig};
use crate::{DistillError, Guidance, GuidanceInput, GuidanceOutput, Prior, Stat, Weighting};

/// Settings of [`Vdm`] (`[guidance.vdm]` in the generate config). Defaults follow
/// docs/methods.md §5.4 and §6.3 (DreamMapping on SD 2.1-base, LucidDreamer defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VdmConfig {
    /// CFG scale, form A (DreamMapping: 7.5; its Eq. 4 is form B, so "7.5 in form B" would be
    /// 8.5 here — methods.md §6.3 item 3).
    pub cfg_scale: f64,
    /// ω(t) of Eq. 19 (unspecified by the paper; LucidDreamer's σ_t/α_t by default).
    pub weighting: Weighting,
    /// Overall multiplier of the gradient (LucidDreamer's `lambda_guidance`, default 1).
    pub scale: f64,
    /// Distribution coefficient annealing on/off (off: λ_t = 1 for all t, the "VDM without
    /// DCA" ablation).
    pub dca: bool,
    /// DCA cut-off on the 1000-step scale: λ_t = 1 − ᾱ_t for t ≤ `dca_cutoff`, else 1 (paper:
    /// 300; Algorithm 1 writes t < 300).
    pub dca_cutoff: usize,
    /// Adam learning rate of ℳψ (paper: 0.01).
    pub lr: f64,
    /// The U-Lite network ℳψ.
    pub ulite: ULiteConfig,
    /// Timestep schedule (DreamMapping Algorithm 1: t ~ U(0, 1000), i.e. U{0, …, 999}, no anneal;
    /// DCA then acts on ~30 % of draws. LucidDreamer's 980 → 500 anneal is `kind = "annealed"`;
    /// docs/methods.md §5.3).
    pub timesteps: TimestepSchedule,
}

impl Default for VdmConfig {
    fn default() -> Self {
        Self {
            cfg_scale: 7.5,
            weighting: Weighting::SigmaOverAlpha,
            scale: 1.0,
            dca: true,
            dca_cutoff: 300,
            lr: 0.01,
            ulite: ULiteConfig::default(),
            timesteps: TimestepSchedule::Uniform {
                t_min: 0,
                t_max: 999,
            },
        }
    }
}

impl VdmConfig {
    /// Check the settings' ranges.
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the offending `guidance.vdm.*` setting.
    pub fn validate(&self) -> Result<(), DistillError> {
        let bad = |name: &str, detail: String| DistillError::Setting {
            name: format!("guidance.vdm.{name}"),
            detail,
        };
        if !self.cfg_scale.is_finite() {
            return Err(bad(
                "cfg_scale",
                format!("{} is not finite", self.cfg_scale),
            ));
        }
        if !self.scale.is_finite() {
            return Err(bad("scale", format!("{} is not finite", self.scale)));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", format!("{} is not a positive number", self.lr)));
        }
        if !(1..=MAX_LEVELS).contains(&self.ulite.levels) {
            return Err(bad(
                "ulite.levels",
                format!("{} is outside 1..={MAX_LEVELS}", self.ulite.levels),
            ));
        }
        Ok(())
    }

    /// DCA's λ_t (DreamMapping §4.3, Algorithm 1): `1 − ᾱ_t` for `t ≤ dca_cutoff`, else 1;
    /// always 1 with `dca = false`.
    pub fn lambda(&self, schedule: &NoiseSchedule, t: usize) -> f64 {
        if self.dca && t <= self.dca_cutoff {
            1.0 - schedule.alpha_cumprod(t)
        } else {
            1.0
        }
    }
}

/// VDM + DCA guidance (DreamMapping Eq. 19, Algorithm 1): `g = ω(t)(ε̂ − λ_t ℳψ(ε̂))`, with
/// ℳψ a U-Lite trained online on `L_op = mean‖ℳψ(ε̂) − ε‖²` (one Adam step per call).
pub struct Vdm {
    /// Settings.
    pub config: VdmConfig,
    /// ℳψ, on the autodiff side of the device.
    net: ULite,
    /// Adam on ψ (β = (0.9, 0.999), ε = 1e-8 as PyTorch; no weight decay); moments
    /// checkpointed as `ulite_adam.…`.
    optim: PathAdam,
    /// ψ updates done so far.
    updates: usize,
}

impl std::fmt::Debug for Vdm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vdm")
            .field("config", &self.config)
            .field("parameters", &self.net.num_learnable())
            .field("updates", &self.updates)
            .finish()
    }
}

impl Vdm {
    /// New VDM guidance with a freshly initialised ℳψ (4 → 4 channels) on the autodiff side of
    /// `device`.
    ///
    /// # Errors
    /// [`DistillError::Setting`] when [`VdmConfig::validate`] fails.
    pub fn new(config: VdmConfig, device: &Device) -> Result<Self, DistillError> {
        config.validate()?;
        let dev = device.clone().autodiff();
        let net = ULite::new(4, 4, &config.ulite, &dev);
        let optim = PathAdam::adam("ulite_adam", [0.9, 0.999], 1e-8);
        Ok(Self {
            config,
            net,
            optim,
            updates: 0,
        })
    }

    /// ℳψ (weights as of the last update).
    pub fn ulite(&self) -> &ULite {
        &self.net
    }

    /// Number of ψ updates done so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Evaluate ℳψ(ε̂) with the current weights, without training (BatchNorm with batch
    /// statistics, as in training). Plain tensor out.
    pub fn degrade(&self, eps_hat: Tensor<4>) -> Tensor<4> {
        self.net.valid().forward(eps_hat.detach().inner())
    }

    /// One online step of ℳψ (DreamMapping Eq. 18, Algorithm 1 lines 12–15): `m = ℳψ(ε̂)`,
    /// `L_op = mean‖m − ε‖²`, one Adam step on ψ. Returns `(m, L_op)` where `m` (a plain
    /// tensor) is the output of the weights **before** the step and `L_op` a `[1]` device
    /// tensor (not read back here).
    pub fn train_step(&mut self, eps_hat: Tensor<4>, eps: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let x = eps_hat.detach().inner().autodiff();
        let target = eps.detach().inner().autodiff();
        let m = self.net.forward(x);
        let loss = (m.clone() - target).square().mean();
        let grads = loss.backward();
        let loss_v = loss.clone().detach().inner().reshape([1]);
        let grads = GradientsParams::from_grads(grads, &self.net);
        self.net = self.optim.step(self.config.lr, self.net.clone(), grads);
        self.updates += 1;
        (m.detach().inner(), loss_v)
    }
}

impl Guidance for Vdm {
    fn name(&self) -> &'static str {
        "vdm"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.cfg_scale
    }

    /// Eq. 19 with DCA; also trains ℳψ by one step (module docs). Stats: `ulite_loss` (L_op
    /// before the step) and `lambda_t_mean` (mean λ_t over the batch).
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        let (_, eps_hat) = input.guided_eps(prior, self.config.cfg_scale)?;
        let eps_hat = eps_hat.detach().inner();
        let (m, loss) = self.train_step(eps_hat.clone(), input.noise.clone());
        let lam: Vec<f32> = input
            .timesteps
            .iter()
            .map(|&t| self.config.lambda(prior.schedule, t) as f32)
            .collect();
        let lam_mean = lam.iter().map(|&x| x as f64).sum::<f64>() / lam.len().max(1) as f64;
        let lam_t = Tensor::<4>::from_data(
            TensorData::new(lam, [input.timesteps.len(), 1, 1, 1]),
            &eps_hat.device(),
        );
        let w = self
            .config
            .weighting
            .tensor(prior.schedule, &input.timesteps, &eps_hat);
        let grad = (eps_hat - m * lam_t) * w * self.config.scale;
        Ok(GuidanceOutput {
            grad,
            stats: vec![
                ("ulite_loss", Stat::Device(loss)),
                ("lambda_t_mean", Stat::Host(lam_mean)),
            ],
        })
    }

    /// ℳψ's weights as `ulite.<module path>` entries (e.g. `ulite.enc.0.pw.weight`), then
    /// Adam's moments as `ulite_adam.<path>.<moment_1|moment_2|time>` ([`PathAdam::state`];
    /// none before the first update).
    fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut s = module_state("ulite", &self.net);
        s.extend(self.optim.state());
        s
    }

    /// Restore ℳψ's weights and Adam's moments from [`Guidance::state`]'s entries; every
    /// weight must be present with its shape and no unknown entry may appear. Without
    /// `ulite_adam.…` entries (a checkpoint from before they were saved) the moments start
    /// afresh.
    fn load_state(&mut self, state: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), DistillError> {
        // The weights are checked first (their errors come first); nothing is applied until
        // both parts are accepted (`PathAdam::load_state` changes nothing when it refuses).
        let (moments, weights) = self.optim.split_state(state);
        let net = load_module_state("ulite", "vdm", self.net.clone(), &weights)?;
        let device = net.devices().first().cloned().unwrap_or_default();
        self.optim
            .load_state(&moments, "ulite", &weights, &device)?;
        self.net = net;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vdm_is_send() {
        fn send<T: Send>() {}
        send::<super::Vdm>();
    }
}
