//! **VSD**, variational score distillation (Wang, Lu, Wang, Bao, Li, Su, Zhu 2023,
//! "ProlificDreamer: High-Fidelity and Diverse Text-to-3D Generation with Variational Score
//! Distillation"; docs/methods.md §4.1 and §6.2), following threestudio's
//! `stable_diffusion_vsd_guidance.py` and `configs/prolificdreamer.yaml`.
//!
//! The rendered distribution is modelled by a second diffusion model, the frozen U-Net plus a
//! LoRA ψ ([`sd::lora::UNetLora`], rank 4, scale 1) and a camera embedding
//! ([`sd::lora::ConditionEmbedding`], `Linear(16 → temb)·SiLU·Linear(temb → temb)` of the
//! flattened camera-to-world matrix, added to the time embedding), trained online on the renders
//! with the ordinary denoising loss. The 3D gradient is the difference of the two scores:
//!
//! `g = w(t)·(ε̂_cfg(z_t; y, t) − ε̂_ψ(z_t; y, t, c))`, `w(t) = 1 − ᾱ_t`,
//!
//! with `ε̂_cfg = ε̂_∅ + s(ε̂_y − ε̂_∅)` (form A, s = 7.5, the view-dependent prompt and the
//! negative prompt) and `ε̂_ψ` the LoRA U-Net's conditional prediction at scale 1
//! (threestudio's `guidance_scale_lora = 1`: the camera-conditioned prediction alone).
//!
//! **One step** ([`Guidance::gradient`]):
//! 1. `z_t = α_t z + σ_t ε` from the loop's `t`, `ε`;
//! 2. no grad: `ε̂_cfg` (one batched U-Net call) and `ε̂_ψ(z_t; y, t, c)` with the **pre-update**
//!    ψ (threestudio computes `g` before `train_lora` and steps both after one backward);
//! 3. LoRA update: `t′ ~ U{0, …, 999}` per render (`lora_n_timestamp_samples = 1`), fresh `ε′`,
//!    `z′ = α_{t′} sg(z) + σ_{t′} ε′`; the camera condition is replaced by zeros with probability
//!    0.1 (`lora_cfg_training`; one draw for the batch, as threestudio's `random.random()`);
//!    `L = mean‖U-Net_ψ(z′; y, t′, c) − target‖²` with target ε (v for v-prediction models:
//!    threestudio's `scheduler_lora` target), one Adam step on ψ and the camera embedding
//!    ([`Vsd::train_step`]).
//!
//! **Prompts.** threestudio feeds the LoRA the **view-independent** prompt embedding while the
//! pretrained CFG branch sees the view-dependent one; the view-independent prompt is requested
//! through [`Guidance::extra_prompts`] (the user's prompt, `view_dependent = false`) and arrives
//! as `extra[0]`.
//!
//! **Camera.** `c` = [`GuidanceInput::c2w`] flattened `[B, 16]` (threestudio's
//! `camera_condition_type = "extrinsics"`; this crate's matrices use OpenCV camera axes while
//! threestudio's are OpenGL — the MLP learns either), zeros when it is `None` (2D).
//!
//! **Choices.** Random draws come from a host stream seeded by ([`GuidanceInput::seed`] ⊕
//! [`VsdConfig::seed`], [`GuidanceInput::step`]) (resumes repeat them). The optimiser is AdamW with threestudio's
//! betas (0.9, 0.99), ε = 1e-15 and PyTorch's default weight decay 0.01 on the guidance group.
//! One model serves both roles (threestudio's ProlificDreamer config loads SD 2.1-base for the
//! prior and SD 2.1 (v) for the LoRA; methods.md uses one model per run). The reference's
//! `½Σ(z − sg(z − g))²/B` injection becomes [`crate::inject`]'s exact `g`. AdamW's moments are
//! checkpointed with the LoRA ([`PathAdam`]).

use crate::timesteps::TimestepSchedule;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use sd::UNetExtras;
use sd::lora::{ConditionEmbedding, UNetLora};
use serde::{Deserialize, Serialize};

use crate::online::{LazyModule, denoising_target, prior_draws, timestep_range, validate_adam};
use crate::optim::PathAdam;
use crate::{
    DistillError, ExtraPrompt, Guidance, GuidanceInput, GuidanceOutput, Prior, Stat, Weighting,
    check_input,
};

/// Width of the camera condition (a flattened 4×4 camera-to-world matrix).
pub const CAMERA_DIM: usize = 16;

/// Settings of [`Vsd`] (`[guidance.vsd]` in the generate config). Defaults: threestudio's
/// ProlificDreamer (stage 1) guidance settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VsdConfig {
    /// CFG scale of the pretrained branch, form A (ProlificDreamer: 7.5).
    pub cfg_scale: f64,
    /// w(t) (threestudio VSD: `1 − ᾱ_t`).
    pub weighting: Weighting,
    /// Overall multiplier of the gradient (`lambda_vsd`, 1).
    pub scale: f64,
    /// LoRA rank r (diffusers' default 4).
    pub lora_rank: usize,
    /// LoRA scale in both the prediction and the LoRA loss (threestudio: 1).
    pub lora_scale: f64,
    /// Adam learning rate of the LoRA and camera embedding (threestudio: 1e-4).
    pub lr: f64,
    /// Adam (β₁, β₂) (threestudio: (0.9, 0.99)).
    pub betas: [f64; 2],
    /// Adam ε (threestudio: 1e-15).
    pub eps: f64,
    /// Decoupled (AdamW) weight decay (threestudio: AdamW's default 0.01).
    pub weight_decay: f64,
    /// Condition the LoRA U-Net on the camera (threestudio: on, "extrinsics").
    pub camera_condition: bool,
    /// Probability of zeroing the camera condition in a LoRA training step (threestudio
    /// `lora_cfg_training`: 0.1; 0 disables).
    pub camera_dropout: f64,
    /// Inclusive range of the LoRA-loss timestep `t′` (threestudio: 0..=999).
    pub lora_t: [usize; 2],
    /// Extra seed of the LoRA branch's random stream, XOR-ed with the step's
    /// [`GuidanceInput::seed`] (0: the run's seed alone decides).
    pub seed: u64,
    /// Timestep schedule (threestudio's ProlificDreamer config: `min_step_percent` 0.02,
    /// `max_step_percent [5000, 0.98, 0.5, 5001]`).
    pub timesteps: TimestepSchedule,
}

impl Default for VsdConfig {
    fn default() -> Self {
        Self {
            cfg_scale: 7.5,
            weighting: Weighting::Sigma2,
            scale: 1.0,
            lora_rank: 4,
            lora_scale: 1.0,
            lr: 1e-4,
            betas: [0.9, 0.99],
            eps: 1e-15,
            weight_decay: 0.01,
            camera_condition: true,
            camera_dropout: 0.1,
            lora_t: [0, 999],
            seed: 0,
            timesteps: TimestepSchedule::stepped(5001, 500),
        }
    }
}

impl VsdConfig {
    /// Check the settings' ranges (the `lora_t` upper bound is checked against the model at the
    /// first step).
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the offending `guidance.vsd.*` setting.
    pub fn validate(&self) -> Result<(), DistillError> {
        let bad = |name: &str, detail: String| DistillError::Setting {
            name: format!("guidance.vsd.{name}"),
            detail,
        };
        for (name, v) in [
            ("cfg_scale", self.cfg_scale),
            ("scale", self.scale),
            ("lora_scale", self.lora_scale),
        ] {
            if !v.is_finite() {
                return Err(bad(name, format!("{v} is not finite")));
            }
        }
        validate_adam(
            "guidance.vsd",
            "lr",
            self.lr,
            self.betas,
            self.eps,
            self.weight_decay,
        )?;
        if self.lora_rank == 0 {
            return Err(bad("lora_rank", "must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.camera_dropout) {
            return Err(bad(
                "camera_dropout",
                format!("{} is not a probability", self.camera_dropout),
            ));
        }
        if self.lora_t[0] > self.lora_t[1] {
            return Err(bad(
                "lora_t",
                format!("{:?} is not an ordered range", self.lora_t),
            ));
        }
        Ok(())
    }
}

/// What VSD trains: the LoRA ψ and the camera embedding.
#[derive(Module, Debug)]
pub struct VsdNet {
    /// LoRA on every attention projection of the U-Net.
    pub lora: UNetLora,
    /// `[B, 16] → [B, temb]` camera embedding, when `camera_condition` is on.
    pub camera: Option<ConditionEmbedding>,
}

impl VsdNet {
    /// The U-Net extras for camera condition `c [B, 16]` (plain or autodiff, per the module's
    /// side) at LoRA scale `scale`.
    pub fn extras(&self, c: Tensor<2>, scale: f64) -> UNetExtras<'_> {
        UNetExtras {
            lora: Some((&self.lora, scale)),
            class_embedding: self.camera.as_ref().map(|m| m.forward(c)),
        }
    }
}

/// VSD guidance (module docs): `g = w(t)(ε̂_cfg − ε̂_ψ)` and one Adam step per call on the LoRA
/// and camera embedding.
pub struct Vsd {
    /// Settings.
    pub config: VsdConfig,
    /// ψ and the camera embedding on the autodiff device, created at the first step.
    net: LazyModule<VsdNet>,
    /// Adam(W) on [`VsdNet`] (moments checkpointed as `vsd_adam.…`).
    optim: PathAdam,
    /// The autodiff side of the device.
    device: Device,
    /// LoRA updates done so far.
    updates: usize,
}

impl std::fmt::Debug for Vsd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vsd")
            .field("config", &self.config)
            .field("updates", &self.updates)
            .finish()
    }
}

impl Vsd {
    /// New VSD guidance; the LoRA and camera embedding are created at the first
    /// [`Guidance::gradient`] call (they need the U-Net's shapes) on the autodiff side of
    /// `device`.
    ///
    /// # Errors
    /// [`DistillError::Setting`] when [`VsdConfig::validate`] fails.
    pub fn new(config: VsdConfig, device: &Device) -> Result<Self, DistillError> {
        config.validate()?;
        let optim = PathAdam::adamw("vsd_adam", config.betas, config.eps, config.weight_decay);
        Ok(Self {
            config,
            net: LazyModule::new("vsd", "vsd"),
            optim,
            device: device.clone().autodiff(),
            updates: 0,
        })
    }

    /// The LoRA and camera embedding, once created (autodiff parameters; `.valid()` gives a
    /// plain copy).
    pub fn net(&self) -> Option<&VsdNet> {
        self.net.get()
    }

    /// Number of LoRA updates done so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// The view-independent prompt embedding `[B, 77, D]` (plain), `extra[0]`.
    fn lora_prompt(input: &GuidanceInput) -> Result<Tensor<3>, DistillError> {
        input
            .extra
            .first()
            .map(|y| y.clone().detach().inner())
            .ok_or_else(|| {
                DistillError::Input(
                    "vsd: the view-independent prompt embedding (extra[0]) is missing".into(),
                )
            })
    }

    /// The camera condition `[B, 16]` (plain): `c2w` or zeros.
    fn camera(input: &GuidanceInput) -> Tensor<2> {
        match &input.c2w {
            Some(c) => c.clone().detach().inner(),
            None => Tensor::zeros(
                [input.latents.dims()[0], CAMERA_DIM],
                &input.latents.device(),
            ),
        }
    }

    /// Create the LoRA and camera embedding for `prior.unet` when absent, and check they fit.
    fn ensure_net(&mut self, prior: &Prior<'_>) -> Result<(), DistillError> {
        let (rank, cam_on) = (self.config.lora_rank, self.config.camera_condition);
        let dev = self.device.clone();
        let unet = prior.unet;
        let net = self.net.get_or_init(|| VsdNet {
            lora: UNetLora::for_unet(unet, rank, &dev),
            camera: cam_on.then(|| ConditionEmbedding::new(CAMERA_DIM, unet.temb_dim(), &dev)),
        })?;
        if net.lora.blocks.len() != unet.transformer_count() {
            return Err(DistillError::Input(format!(
                "vsd: the LoRA has {} blocks, the U-Net {} transformer blocks",
                net.lora.blocks.len(),
                unet.transformer_count()
            )));
        }
        if let Some(c) = &net.camera
            && c.linear_2.weight.dims()[1] != unet.temb_dim()
        {
            return Err(DistillError::Input(format!(
                "vsd: the camera embedding is {} wide, the U-Net's time embedding {}",
                c.linear_2.weight.dims()[1],
                unet.temb_dim()
            )));
        }
        Ok(())
    }

    /// `g = w(t)(ε̂_cfg − ε̂_ψ)·scale` with the current LoRA, no gradient.
    fn latent_gradient(
        &self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<Tensor<4>, DistillError> {
        let y = Self::lora_prompt(input)?;
        let net = self.net.get().ok_or_else(not_created)?.valid();
        let (z_t, eps_cfg) = input.guided_eps(prior, self.config.cfg_scale)?;
        let t = &input.timesteps;
        let tf: Vec<f64> = t.iter().map(|&t| t as f64).collect();
        let extras = net.extras(Self::camera(input), self.config.lora_scale);
        let out = prior
            .unet
            .forward_with(z_t.clone(), &tf, y, &extras)
            .detach();
        let eps_psi = prior.schedule.to_epsilon(out, z_t, t);
        let w = self.config.weighting.tensor(prior.schedule, t, &eps_cfg);
        Ok((eps_cfg - eps_psi) * w * self.config.scale)
    }

    /// One online step of the LoRA and camera embedding on `input`'s renders (what
    /// [`Guidance::gradient`] does after computing `g`; creates them first if needed):
    /// `t′ ~ U{lora_t}`, `ε′` and the camera-dropout draw from the stream of
    /// ([`VsdConfig::seed`], `input.step`), `z′ = α_{t′} sg(z) + σ_{t′} ε′`,
    /// `L = mean‖U-Net_ψ(z′; y, t′, c) − target‖²` ([`denoising_target`]) and one Adam step.
    /// Returns `L` before the step as a `[1]` device tensor (not read back).
    ///
    /// # Errors
    /// As [`Guidance::gradient`].
    pub fn train_step(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<Tensor<1>, DistillError> {
        check_input(input)?;
        let t_range = timestep_range("guidance.vsd.lora_t", self.config.lora_t, prior.schedule)?;
        let y = Self::lora_prompt(input)?;
        self.ensure_net(prior)?;
        let net = self.net.get().ok_or_else(not_created)?.clone();
        let z = input.latents.clone().detach().inner();
        let d = prior_draws(
            self.config.seed ^ input.seed,
            input.step,
            z.dims(),
            t_range,
            &z.device(),
        );
        let cam = Self::camera(input);
        let cam = if d.uniform < self.config.camera_dropout {
            cam.zeros_like()
        } else {
            cam
        };
        let z_n = prior.schedule.add_noise(z.clone(), d.noise.clone(), &d.t);
        let target = denoising_target(prior.schedule, z, d.noise, &d.t);
        let tf: Vec<f64> = d.t.iter().map(|&t| t as f64).collect();
        let out = prior
            .unet
            .forward_with(z_n, &tf, y, &net.extras(cam, self.config.lora_scale));
        let loss = (out - target).square().mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let net = self.optim.step(self.config.lr, net, grads);
        self.net.set(net);
        self.updates += 1;
        Ok(loss.detach().inner().reshape([1]))
    }
}

/// The error for the LoRA used before [`Vsd::ensure_net`] (a programming error).
fn not_created() -> DistillError {
    DistillError::Input("vsd: the LoRA was used before it was created".into())
}

impl Guidance for Vsd {
    fn name(&self) -> &'static str {
        "vsd"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.cfg_scale
    }

    /// The view-independent prompt for the LoRA branch (threestudio's `text_embeddings` vs
    /// `text_embeddings_vd`).
    fn extra_prompts(&self, prompt: &str) -> Vec<ExtraPrompt> {
        vec![ExtraPrompt {
            text: prompt.to_string(),
            view_dependent: false,
        }]
    }

    /// `g` with the pre-update LoRA and one LoRA step (module docs). Stats: `lora_loss` (the
    /// LoRA's denoising loss before the step, on the device).
    ///
    /// # Errors
    /// [`DistillError::Input`] on inconsistent inputs, a missing view-independent prompt
    /// embedding (`extra[0]`) or loaded state that does not fit; [`DistillError::Setting`] when
    /// `lora_t` exceeds the model's timesteps.
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        check_input(input)?;
        timestep_range("guidance.vsd.lora_t", self.config.lora_t, prior.schedule)?;
        Self::lora_prompt(input)?;
        self.ensure_net(prior)?;
        let grad = self.latent_gradient(prior, input)?;
        let loss = self.train_step(prior, input)?;
        Ok(GuidanceOutput {
            grad,
            stats: vec![("lora_loss", Stat::Device(loss))],
        })
    }

    /// The LoRA as `vsd.lora.blocks.<i>.attn<1|2>.to_<q|k|v|out>.<down|up>` and the camera
    /// embedding as `vsd.camera.linear_<1|2>.<weight|bias>` (weights `[in, out]`), then
    /// AdamW's moments as `vsd_adam.<path>.<moment_1|moment_2|time>` ([`PathAdam::state`]);
    /// empty before the first step unless state was loaded.
    fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut s = self.net.state();
        s.extend(self.optim.state());
        s
    }

    /// Restore [`Guidance::state`]'s entries (the LoRA before the first step: kept and checked
    /// in full when it is created). AdamW's moments are restored; without `vsd_adam.…` entries
    /// (a checkpoint from before they were saved) they start afresh.
    fn load_state(&mut self, state: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), DistillError> {
        // The weights first (their errors come first), undone if the moments are refused: a
        // refused load changes nothing.
        let (moments, net) = self.optim.split_state(state);
        let before = self.net.clone();
        self.net.load_state(&net)?;
        if let Err(e) = self.optim.load_state(&moments, "vsd", &net, &self.device) {
            self.net = before;
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vsd_is_send() {
        fn send<T: Send>() {}
        send::<super::Vsd>();
    }

    #[test]
    fn config_validation_names_settings() {
        let c = super::VsdConfig::default();
        c.validate().unwrap();
        let e = super::VsdConfig {
            camera_dropout: 1.5,
            ..c.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("guidance.vsd.camera_dropout"), "{e}");
        let e = super::VsdConfig {
            betas: [0.9, 1.0],
            ..c
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("guidance.vsd.betas"), "{e}");
    }
}
