//! **LODS**, "Learn to Optimize Denoising Scores" (Yang, Chen, Chen, Liu, Lin; ECCV 2024,
//! arXiv 2312.04820; docs/methods.md §1). Implemented from the official code
//! (`yangxiaofeng/LODS`, `threestudio/models/guidance/lods_embedding_guidance.py` and
//! `lods_lora_guidance.py`), as the paper's equations were not available (methods.md §1).
//!
//! The CFG target of SDS does not match how the diffusion model was trained, so LODS fits the
//! **unconditional branch** of CFG to the current renders with the ordinary denoising loss and
//! distils along the difference between the pretrained conditional prediction and that learned
//! prediction. Two variants ([`LodsVariant`]); no configuration trains both:
//!
//! - **Embedding** (LODS-Emb): a learnable unconditional text embedding `y_α [1, 77, D]`
//!   replaces the ∅/negative embedding. It is created lazily at the first step from the
//!   negative-prompt embedding of the first batch element ([`GuidanceInput::uncond`]).
//!   `g = (1 − ᾱ_t)/s · [ε̂_α + s(ε̂_y − ε̂_α) − ε]` with `ε̂_y = ε̂_φ(z_t; y_view, t)`,
//!   `ε̂_α = ε̂_φ(z_t; y_α, t)` from one batched no-grad U-Net call.
//! - **LoRA** (LODS-LoRA): a LoRA ψ on every attention projection of the U-Net
//!   ([`sd::lora::UNetLora`], rank 4, `down` ~ N(0, (1/r)²), `up` = 0), used at scale 0.5 on the
//!   **fixed** embedding `y_n` of the placeholder prompt `<new1>` ([`Guidance::extra_prompts`],
//!   not view-dependent; not a learned token).
//!   `g = (1 − ᾱ_t)/s · [ε̂_{φ,ψ}(z_t; y_n, t) + s(ε̂_φ(z_t; y_view, t) − ε̂_{φ,ψ}(z_t; y_n, t)) − ε]`
//!   from two separate no-grad calls (the base U-Net on `y_view`, the LoRA U-Net on `y_n`).
//!
//! s = 1000 (form-A CFG with the learned branch in place of ∅, divided by s). The code computes
//! the algebraically equal `(1 − ᾱ_t)[(ε̂_y − ε̂_α) + (ε̂_α − ε)/s]`, which keeps f32 precision at
//! large s and allows `s = ∞` (ε drops out; methods.md §1.7 "CFG weight infinity").
//!
//! **One step** ([`Guidance::gradient`]):
//! 1. `z_t = α_t z + σ_t ε` from the loop's `t`, `ε`;
//! 2. `g` as above with the **pre-update** `y_α`/ψ (the reference computes both losses in one
//!    forward and steps afterwards);
//! 3. prior update: `t′ ~ U{0, …, 999}` per sample and a fresh `ε′`, `z′ = α_{t′} sg(z) + σ_{t′} ε′`,
//!    `L = mean‖f(z′; y_α or (ψ, y_n), t′) − target‖²` through the frozen U-Net (burn autodiff,
//!    gradient to y_α or ψ only), one Adam step ([`Lods::prior_step`]). `t′` and `ε′` come from
//!    a host stream seeded by ([`GuidanceInput::seed`] ⊕ [`LodsConfig::seed`],
//!    [`GuidanceInput::step`]), so a resumed run repeats them.
//!
//! **Choices beyond the reference.**
//! - v-prediction models: predictions are converted to ε ([`NoiseSchedule::to_epsilon`]) for `g`;
//!   the prior loss regresses the raw output on the model's **own** training target
//!   ([`crate::online::denoising_target`]: ε for ε-models, v for v-models), i.e. the ordinary
//!   denoising loss of that model. The reference only runs SD 2.1-base (ε), where both agree.
//! - The optimiser is Adam(W) with betas (0.9, 0.99), ε = 1e-15 and decoupled weight decay 0 by
//!   default: the 3DGS LODS-Emb setting (y_α lr 1e-4 in the 3DGS Adam). The NeRF configs use
//!   AdamW with PyTorch's default weight decay 0.01 (and y_α lr 1e-5); set `weight_decay`.
//! - The reference injects `g` with `½Σ(z − sg(z − g))²/B`; here the loop's [`crate::inject`]
//!   gives exactly `g` (no 1/B), as for every method of this crate.
//! - [`Guidance::state`] saves y_α or ψ and Adam's moments ([`PathAdam`]): a resumed run takes
//!   the same updates as an uninterrupted one.

use crate::timesteps::TimestepSchedule;
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use sd::UNetExtras;
use sd::lora::UNetLora;
use sd::scheduler::NoiseSchedule;
use serde::{Deserialize, Serialize};

use crate::online::{LazyModule, denoising_target, prior_draws, timestep_range, validate_adam};
use crate::optim::PathAdam;
use crate::{
    DistillError, ExtraPrompt, Guidance, GuidanceInput, GuidanceOutput, Prior, Stat, Weighting,
    check_input,
};

/// Which part of the prior LODS learns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LodsVariant {
    /// LODS-Emb: the unconditional text embedding y_α.
    #[default]
    Embedding,
    /// LODS-LoRA: LoRA ψ on the U-Net's attention, on the fixed placeholder prompt.
    Lora,
}

/// Settings of [`Lods`] (`[guidance.lods]` in the generate config). Defaults: the 3DGS
/// LODS-Emb configuration of the official code (methods.md §1.2, §1.4), with the LoRA-variant
/// values of its NeRF LoRA configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LodsConfig {
    /// `embedding` (LODS-Emb) or `lora` (LODS-LoRA).
    pub variant: LodsVariant,
    /// s, the CFG scale (form A) of the learned-branch CFG, also the normaliser 1/s (reference:
    /// 1000 in every 3D config; 100 for image-to-3D; `inf` allowed: ε drops out). Must be > 0.
    pub cfg_scale: f64,
    /// Adam learning rate of y_α (3DGS: 1e-4; NeRF: 1e-5; 2D: 1e-4).
    pub lr: f64,
    /// Adam learning rate of ψ (NeRF/T3Bench: 5e-7; 2D: 1e-6).
    pub lora_lr: f64,
    /// Adam (β₁, β₂) (reference: (0.9, 0.99)).
    pub betas: [f64; 2],
    /// Adam ε (reference: 1e-15).
    pub eps: f64,
    /// Decoupled (AdamW) weight decay (3DGS: 0; the NeRF configs' AdamW default: 0.01).
    pub weight_decay: f64,
    /// LoRA rank r (diffusers' default 4, which LODS does not override).
    pub lora_rank: usize,
    /// LoRA scale in `g` and in the prior loss (reference: 0.5, hard-coded `lora_weight`).
    pub lora_scale: f64,
    /// The fixed prompt of the LoRA branch (reference: the literal negative prompt `<new1>`).
    pub placeholder_prompt: String,
    /// Inclusive range of the prior-loss timestep `t′` (reference: the full 0..=999).
    pub prior_t: [usize; 2],
    /// Extra seed of the prior branch's `t′`/`ε′` stream, XOR-ed with the step's
    /// [`GuidanceInput::seed`] (0: the run's seed alone decides).
    pub seed: u64,
    /// Timestep schedule (official `lods_gs.py`: U{20, …, 980} for steps 0–500, then upper bound
    /// 550 — it resets `max_step` to 0.55 at every step > 500, overriding the yaml's 0.98 → 0.5;
    /// docs/methods.md §1.3).
    pub timesteps: TimestepSchedule,
}

impl Default for LodsConfig {
    fn default() -> Self {
        Self {
            variant: LodsVariant::Embedding,
            cfg_scale: 1000.0,
            lr: 1e-4,
            lora_lr: 5e-7,
            betas: [0.9, 0.99],
            eps: 1e-15,
            weight_decay: 0.0,
            lora_rank: 4,
            lora_scale: 0.5,
            placeholder_prompt: "<new1>".into(),
            prior_t: [0, 999],
            seed: 0,
            timesteps: TimestepSchedule::stepped(501, 550),
        }
    }
}

impl LodsConfig {
    /// Check the settings' ranges (the `prior_t` upper bound is checked against the model at the
    /// first step).
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the offending `guidance.lods.*` setting.
    pub fn validate(&self) -> Result<(), DistillError> {
        let bad = |name: &str, detail: String| DistillError::Setting {
            name: format!("guidance.lods.{name}"),
            detail,
        };
        if self.cfg_scale.is_nan() || self.cfg_scale <= 0.0 {
            return Err(bad(
                "cfg_scale",
                format!("{} is not a positive number", self.cfg_scale),
            ));
        }
        match self.variant {
            LodsVariant::Embedding => validate_adam(
                "guidance.lods",
                "lr",
                self.lr,
                self.betas,
                self.eps,
                self.weight_decay,
            )?,
            LodsVariant::Lora => {
                validate_adam(
                    "guidance.lods",
                    "lora_lr",
                    self.lora_lr,
                    self.betas,
                    self.eps,
                    self.weight_decay,
                )?;
                if self.lora_rank == 0 {
                    return Err(bad("lora_rank", "must be at least 1".into()));
                }
                if !self.lora_scale.is_finite() {
                    return Err(bad(
                        "lora_scale",
                        format!("{} is not finite", self.lora_scale),
                    ));
                }
            }
        }
        if self.prior_t[0] > self.prior_t[1] {
            return Err(bad(
                "prior_t",
                format!("{:?} is not an ordered range", self.prior_t),
            ));
        }
        Ok(())
    }
}

/// LODS-Emb's learnable unconditional embedding y_α (a module so burn-optim can step it).
#[derive(Module, Debug)]
pub struct LearnedEmbedding {
    /// `y_α [1, 77, D]`, shared across the batch.
    pub y: Param<Tensor<3>>,
}

/// LODS guidance (module docs): `g = (1 − ᾱ_t)[(ε̂_y − ε̂_learned) + (ε̂_learned − ε)/s]`, and
/// one Adam step per call on y_α (embedding variant) or ψ (LoRA variant).
pub struct Lods {
    /// Settings.
    pub config: LodsConfig,
    /// y_α on the autodiff device (embedding variant), created at the first step.
    embedding: LazyModule<LearnedEmbedding>,
    /// ψ on the autodiff device (LoRA variant), created at the first step for the prior's U-Net.
    lora: LazyModule<UNetLora>,
    /// Adam(W) on y_α or ψ (moments checkpointed as `embedding_adam.…` or `lora_adam.…`).
    optim: PathAdam,
    /// The autodiff side of the device.
    device: Device,
    /// Prior updates done so far.
    updates: usize,
}

impl std::fmt::Debug for Lods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lods")
            .field("config", &self.config)
            .field("updates", &self.updates)
            .finish()
    }
}

impl Lods {
    /// New LODS guidance; y_α or ψ is created at the first [`Guidance::gradient`] call (it needs
    /// the negative-prompt embedding or the U-Net) on the autodiff side of `device`.
    ///
    /// # Errors
    /// [`DistillError::Setting`] when [`LodsConfig::validate`] fails.
    pub fn new(config: LodsConfig, device: &Device) -> Result<Self, DistillError> {
        config.validate()?;
        let prefix = match config.variant {
            LodsVariant::Embedding => "embedding_adam",
            LodsVariant::Lora => "lora_adam",
        };
        let optim = PathAdam::adamw(prefix, config.betas, config.eps, config.weight_decay);
        Ok(Self {
            config,
            embedding: LazyModule::new("embedding", "lods"),
            lora: LazyModule::new("lora", "lods"),
            optim,
            device: device.clone().autodiff(),
            updates: 0,
        })
    }

    /// The current y_α `[1, 77, D]` (plain tensor), once created.
    pub fn embedding(&self) -> Option<Tensor<3>> {
        self.embedding.get().map(|e| e.y.val().detach().inner())
    }

    /// The current ψ, once created (its parameters on the autodiff device; `.valid()` gives a
    /// plain copy).
    pub fn lora(&self) -> Option<&UNetLora> {
        self.lora.get()
    }

    /// Number of prior updates done so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// `(1 − ᾱ_t)[(ε̂_y − ε̂_l) + (ε̂_l − ε)/s]`, plain tensors.
    fn combine(
        &self,
        schedule: &NoiseSchedule,
        t: &[usize],
        eps_y: Tensor<4>,
        eps_l: Tensor<4>,
        eps: Tensor<4>,
    ) -> Tensor<4> {
        let w = Weighting::Sigma2.tensor(schedule, t, &eps_y);
        let inv_s = 1.0 / self.config.cfg_scale;
        let diff = eps_y - eps_l.clone();
        let g = if inv_s == 0.0 {
            diff
        } else {
            diff + (eps_l - eps) * inv_s
        };
        g * w
    }

    /// The placeholder embedding `y_n [B, 77, D]` (plain) of the LoRA variant.
    fn placeholder(&self, input: &GuidanceInput) -> Result<Tensor<3>, DistillError> {
        input
            .extra
            .first()
            .map(|y| y.clone().detach().inner())
            .ok_or_else(|| {
                DistillError::Input(format!(
                    "lods (lora): the embedding of the placeholder prompt `{}` is missing from \
                     the input's extra prompts",
                    self.config.placeholder_prompt
                ))
            })
    }

    /// Create y_α (from `input.uncond`'s first sample) or ψ (for `prior.unet`) when absent, and
    /// check it fits the inputs.
    fn ensure_learned(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<(), DistillError> {
        match self.config.variant {
            LodsVariant::Embedding => {
                let first = input.uncond.clone().narrow(0, 0, 1).detach().inner();
                let want = first.dims();
                let emb = self.embedding.get_or_init(|| LearnedEmbedding {
                    y: Param::from_tensor(first.autodiff()),
                })?;
                let have = emb.y.dims();
                if have != want {
                    return Err(DistillError::Input(format!(
                        "lods: y_α has shape {have:?}, the negative-prompt embedding {want:?}"
                    )));
                }
            }
            LodsVariant::Lora => {
                let (rank, dev) = (self.config.lora_rank, self.device.clone());
                let psi = self
                    .lora
                    .get_or_init(|| UNetLora::for_unet(prior.unet, rank, &dev))?;
                if psi.blocks.len() != prior.unet.transformer_count() {
                    return Err(DistillError::Input(format!(
                        "lods: the LoRA has {} blocks, the U-Net {} transformer blocks",
                        psi.blocks.len(),
                        prior.unet.transformer_count()
                    )));
                }
            }
        }
        Ok(())
    }

    /// `g` with the current y_α/ψ, no gradient (module docs): the embedding variant queries
    /// `[y_view, y_α]` in one batched call, the LoRA variant calls the base U-Net on `y_view` and
    /// the LoRA U-Net on `y_n` separately.
    fn latent_gradient(
        &self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<Tensor<4>, DistillError> {
        let b = input.latents.dims()[0];
        let t = &input.timesteps;
        let z_t = input.noisy(prior.schedule);
        let (eps_y, eps_l) = match self.config.variant {
            LodsVariant::Embedding => {
                let emb = self.embedding.get().ok_or_else(not_created)?;
                let y = emb.y.val().detach().inner().repeat_dim(0, b);
                let (_, eps_y, eps_a) = prior.eps_cfg(z_t, t, input.cond.clone(), y, 1.0);
                (eps_y, eps_a)
            }
            LodsVariant::Lora => {
                let y_n = self.placeholder(input)?;
                let psi = self.lora.get().ok_or_else(not_created)?.valid();
                let tf: Vec<f64> = t.iter().map(|&t| t as f64).collect();
                let cond = input.cond.clone().detach().inner();
                let out_y = prior.unet.forward(z_t.clone(), &tf, cond).detach();
                let extras = UNetExtras {
                    lora: Some((&psi, self.config.lora_scale)),
                    class_embedding: None,
                };
                let out_l = prior
                    .unet
                    .forward_with(z_t.clone(), &tf, y_n, &extras)
                    .detach();
                (
                    prior.schedule.to_epsilon(out_y, z_t.clone(), t),
                    prior.schedule.to_epsilon(out_l, z_t, t),
                )
            }
        };
        Ok(self.combine(prior.schedule, t, eps_y, eps_l, input.noise.clone()))
    }

    /// One online step of the learned part of the prior on `input`'s renders (what
    /// [`Guidance::gradient`] does after computing `g`; creates y_α/ψ first if needed):
    /// `t′ ~ U{prior_t}` and `ε′` from the stream of ([`LodsConfig::seed`], `input.step`),
    /// `z′ = α_{t′} sg(z) + σ_{t′} ε′`, `L = mean‖U-Net(z′; y_α, t′) − target‖²` (embedding) or
    /// `mean‖U-Net_{ψ, lora_scale}(z′; y_n, t′) − target‖²` (LoRA) with the model's training
    /// target ([`denoising_target`]), and one Adam step on y_α/ψ. Returns `L` before the step as
    /// a `[1]` device tensor (not read back).
    ///
    /// # Errors
    /// As [`Guidance::gradient`].
    pub fn prior_step(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<Tensor<1>, DistillError> {
        check_input(input)?;
        let t_range = timestep_range("guidance.lods.prior_t", self.config.prior_t, prior.schedule)?;
        self.ensure_learned(prior, input)?;
        let b = input.latents.dims()[0];
        let z = input.latents.clone().detach().inner();
        let d = prior_draws(
            self.config.seed ^ input.seed,
            input.step,
            z.dims(),
            t_range,
            &z.device(),
        );
        let z_n = prior.schedule.add_noise(z.clone(), d.noise.clone(), &d.t);
        let target = denoising_target(prior.schedule, z, d.noise, &d.t);
        let tf: Vec<f64> = d.t.iter().map(|&t| t as f64).collect();
        let loss = match self.config.variant {
            LodsVariant::Embedding => {
                let emb = self.embedding.get().ok_or_else(not_created)?.clone();
                let out = prior.unet.forward(z_n, &tf, emb.y.val().repeat_dim(0, b));
                let loss = (out - target).square().mean();
                let grads = GradientsParams::from_grads(loss.backward(), &emb);
                let emb = self.optim.step(self.config.lr, emb, grads);
                self.embedding.set(emb);
                loss
            }
            LodsVariant::Lora => {
                let y_n = self.placeholder(input)?;
                let psi = self.lora.get().ok_or_else(not_created)?.clone();
                let extras = UNetExtras {
                    lora: Some((&psi, self.config.lora_scale)),
                    class_embedding: None,
                };
                let out = prior.unet.forward_with(z_n, &tf, y_n, &extras);
                let loss = (out - target).square().mean();
                let grads = GradientsParams::from_grads(loss.backward(), &psi);
                let psi = self.optim.step(self.config.lora_lr, psi, grads);
                self.lora.set(psi);
                loss
            }
        };
        self.updates += 1;
        Ok(loss.detach().inner().reshape([1]))
    }
}

/// The error for a learned part used before [`Lods::ensure_learned`] (a programming error).
fn not_created() -> DistillError {
    DistillError::Input("lods: y_α/ψ used before it was created".into())
}

impl Guidance for Lods {
    fn name(&self) -> &'static str {
        "lods"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.cfg_scale
    }

    /// The LoRA variant asks for the placeholder prompt (`<new1>`, not view-dependent); the
    /// embedding variant for nothing.
    fn extra_prompts(&self, _prompt: &str) -> Vec<ExtraPrompt> {
        match self.config.variant {
            LodsVariant::Embedding => vec![],
            LodsVariant::Lora => vec![ExtraPrompt {
                text: self.config.placeholder_prompt.clone(),
                view_dependent: false,
            }],
        }
    }

    /// `g` with the pre-update y_α/ψ, and one Adam step of the prior (module docs). Stats:
    /// `prior_loss` (the prior's denoising loss before the step, on the device).
    ///
    /// # Errors
    /// [`DistillError::Input`] on inconsistent inputs, a missing placeholder embedding (LoRA), or
    /// loaded state that does not fit; [`DistillError::Setting`] when `prior_t` exceeds the
    /// model's timesteps.
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        check_input(input)?;
        timestep_range("guidance.lods.prior_t", self.config.prior_t, prior.schedule)?;
        if self.config.variant == LodsVariant::Lora {
            self.placeholder(input)?;
        }
        self.ensure_learned(prior, input)?;
        let grad = self.latent_gradient(prior, input)?;
        let loss = self.prior_step(prior, input)?;
        Ok(GuidanceOutput {
            grad,
            stats: vec![("prior_loss", Stat::Device(loss))],
        })
    }

    /// y_α as `embedding.y` `[1, 77, D]` (embedding variant) or ψ as
    /// `lora.blocks.<i>.attn<1|2>.to_<q|k|v|out>.<down|up>` (LoRA variant); empty before the
    /// first step unless state was loaded.
    fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut s = match self.config.variant {
            LodsVariant::Embedding => self.embedding.state(),
            LodsVariant::Lora => self.lora.state(),
        };
        s.extend(self.optim.state());
        s
    }

    /// Restore [`Guidance::state`]'s entries. Before the first step the entries are kept and
    /// checked in full when y_α/ψ is created (at the next [`Guidance::gradient`]); loaded y_α
    /// replaces the negative-prompt initialisation. Adam's moments are restored from the
    /// `embedding_adam.…`/`lora_adam.…` entries ([`PathAdam`]); without them (a checkpoint from
    /// before they were saved) they start afresh.
    fn load_state(&mut self, state: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), DistillError> {
        // The weights first (their errors come first), undone if the moments are refused: a
        // refused load changes nothing.
        let (moments, net) = self.optim.split_state(state);
        let (embedding, lora) = (self.embedding.clone(), self.lora.clone());
        let prefix = match self.config.variant {
            LodsVariant::Embedding => {
                self.embedding.load_state(&net)?;
                "embedding"
            }
            LodsVariant::Lora => {
                self.lora.load_state(&net)?;
                "lora"
            }
        };
        if let Err(e) = self.optim.load_state(&moments, prefix, &net, &self.device) {
            (self.embedding, self.lora) = (embedding, lora);
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lods_is_send() {
        fn send<T: Send>() {}
        send::<super::Lods>();
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = super::LodsConfig::default();
        assert_eq!(c.cfg_scale, 1000.0);
        assert_eq!(c.prior_t, [0, 999]);
        c.validate().unwrap();
        let e = super::LodsConfig {
            lr: 0.0,
            ..c.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("guidance.lods.lr"), "{e}");
        let e = super::LodsConfig {
            variant: super::LodsVariant::Lora,
            lora_rank: 0,
            ..c
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("guidance.lods.lora_rank"), "{e}");
    }
}
