//! Score-distillation guidance: the only crate that speaks both the diffusion vocabulary (`sd`)
//! and the 3D one (`splat` cameras), through one [`Guidance`] trait.
//!
//! One step of every method (docs/methods.md §0): render → VAE encode `z` (with gradient) →
//! sample `t`, `ε` → `z_t = α_t z + σ_t ε` → U-Net with classifier-free guidance (no gradient)
//! → the method's gradient `g` on the latents → inject with the pseudo-loss
//! `½‖z − sg(z − g)‖²` ([`inject`]), whose gradient with respect to `z` is exactly `g`.
//!
//! - [`Guidance`], [`GuidanceInput`], [`GuidanceOutput`], [`Prior`]: the seam to `train`.
//! - [`sds`]: DreamFusion's SDS with the common weightings.
//! - [`vdm`]: DreamMapping's VDM + DCA (Eq. 19) with its online degradation network ℳψ,
//!   the U-Lite of [`ulite`].
//! - [`lmc`]: LMC-SDS (Alldieck et al.) with its pre-trained, frozen blur model b̂ψ.
//! - [`lods`]: LODS (learned unconditional embedding or LoRA, trained online; s = 1000).
//! - [`vsd`]: ProlificDreamer's VSD (camera-conditioned LoRA trained online).
//! - [`online`]: shared plumbing of the methods that fit part of the prior online.
//! - [`optim`]: Adam(W) for those online networks, with checkpointable moments.
//! - [`timesteps`]: timestep samplers (uniform, LucidDreamer's annealed range).
//! - [`cameras`]: random cameras around the object (LucidDreamer/threestudio ranges).
//! - [`prompts`]: view-dependent prompt suffixes and their azimuth interpolation.
//!
//! Conventions: latents are `[B, 4, h, w]`, **scaled** by the VAE's `scaling_factor`; timesteps
//! are integers in `0..T` of the model's schedule; CFG is form A (`ε̂_∅ + s(ε̂_y − ε̂_∅)`) with
//! scales stated in form A; every prediction is converted to ε before a method sees it.

pub mod bridge;
pub mod cameras;
pub mod lmc;
pub mod lods;
pub mod online;
pub mod optim;
pub mod prompts;
pub mod sdi;
pub mod sds;
pub mod state;
pub mod timesteps;
pub mod ulite;
pub mod vdm;
pub mod vsd;

use burn::tensor::{Device, Tensor};
use sd::UNet;
use sd::scheduler::NoiseSchedule;
use serde::{Deserialize, Serialize};

pub use bridge::{Bridge, BridgeConfig};
pub use lmc::{BlurNet, BlurNetConfig, Lmc, LmcConfig};
pub use lods::{Lods, LodsConfig, LodsVariant};
pub use sdi::{Sdi, SdiConfig};
pub use sds::{Sds, SdsConfig, Weighting};
pub use ulite::{ULite, ULiteConfig};
pub use vdm::{Vdm, VdmConfig};
pub use vsd::{Vsd, VsdConfig};

/// Errors of a guidance step.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    /// Inputs of inconsistent shapes or counts (a programming or configuration error).
    #[error("guidance input: {0}")]
    Input(String),
    /// A setting is out of range; names the setting.
    #[error("guidance setting `{name}`: {detail}")]
    Setting {
        /// The setting's name as in the config file.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// Tokenizing or encoding a prompt failed (names the prompt).
    #[error(transparent)]
    Sd(#[from] sd::SdError),
    /// A file (e.g. a pre-trained network) cannot be read or written, or is malformed.
    #[error("{}: {detail}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (naming the tensor or metadata key where one is at fault).
        detail: String,
    },
}

/// The frozen diffusion prior a guidance queries: the U-Net and its noise schedule (which also
/// knows whether the U-Net predicts ε or v).
#[derive(Clone, Copy)]
pub struct Prior<'a> {
    /// The denoiser.
    pub unet: &'a UNet,
    /// ᾱ_t and the prediction type.
    pub schedule: &'a NoiseSchedule,
}

impl Prior<'_> {
    /// ε̂ with classifier-free guidance (form A, scale `s`) for `z_t [B, 4, h, w]` at per-sample
    /// `t`, conditioning `cond [B, 77, D]` and unconditional/negative `uncond [B, 77, D]`: one
    /// batched U-Net forward of 2B, converted to ε when the model predicts v. Plain (no
    /// gradient) tensors in and out; returns `(ε̂_cfg, ε̂_cond, ε̂_uncond)`.
    pub fn eps_cfg(
        &self,
        z_t: Tensor<4>,
        t: &[usize],
        cond: Tensor<3>,
        uncond: Tensor<3>,
        scale: f64,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let b = z_t.dims()[0];
        let z_t = z_t.detach();
        let tf: Vec<f64> = t.iter().chain(t.iter()).map(|&x| x as f64).collect();
        let t2: Vec<usize> = t.iter().chain(t.iter()).copied().collect();
        let both = Tensor::cat(vec![z_t.clone(), z_t], 0);
        let out = self
            .unet
            .forward(both.clone(), &tf, Tensor::cat(vec![uncond, cond], 0))
            .detach();
        let eps = self.schedule.to_epsilon(out, both, &t2);
        let u = eps.clone().narrow(0, 0, b);
        let c = eps.narrow(0, b, b);
        (sd::scheduler::cfg(u.clone(), c.clone(), scale), c, u)
    }
}

/// What a guidance sees in one step.
#[derive(Clone, Debug)]
pub struct GuidanceInput {
    /// `z [B, 4, h, w]`, the (scaled) VAE latents of the renders, detached.
    pub latents: Tensor<4>,
    /// Per-sample integer timesteps, length B.
    pub timesteps: Vec<usize>,
    /// `ε [B, 4, h, w]` ~ N(0, I), the noise added to form `z_t`.
    pub noise: Tensor<4>,
    /// `[B, 77, D]` text embeddings of the (view-dependent) prompt.
    pub cond: Tensor<3>,
    /// `[B, 77, D]` embeddings of the unconditional or negative prompt.
    pub uncond: Tensor<3>,
    /// The optimisation step (0-based), for methods with schedules.
    pub step: usize,
    /// Seed of this step's extra random draws (SDI's inversion noise, LODS/VSD's prior-branch
    /// t' and ε'), derived by the loop from the run seed and the step so a resumed run draws
    /// the same values.
    pub seed: u64,
    /// `[B, 77, D]` embeddings of the method's extra prompts, in the order of
    /// [`Guidance::extra_prompts`] (view-dependent ones already picked per sample's view);
    /// empty for methods that ask for none.
    pub extra: Vec<Tensor<3>>,
    /// `[B, 16]` camera-to-world matrices of the renders (OpenCV camera axes: x right, y down,
    /// z forward; row-major 4×4, the inverse of the rasterizer's `viewmat`), for methods that
    /// condition on the camera (VSD); `None` in 2D distillation.
    pub c2w: Option<Tensor<2>>,
}

/// A prompt a method needs encoded besides the prompt and the negative prompt (SDS-Bridge's
/// source prompt, LODS-LoRA's placeholder `<new1>`). The training loop encodes it once and
/// passes its embeddings in [`GuidanceInput::extra`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraPrompt {
    /// The text.
    pub text: String,
    /// Whether the view suffixes (", front view", …) are appended per sample as for the
    /// main prompt (when the run uses view-dependent prompting).
    pub view_dependent: bool,
}

impl GuidanceInput {
    /// Check the batch sizes, form `z_t = α_t z + σ_t ε` and query the prior with CFG scale
    /// `scale`: the first half of every method's step. Returns `(z_t, ε̂_cfg)`, plain tensors.
    ///
    /// # Errors
    /// [`DistillError::Input`] when the tensors' batch sizes or shapes disagree.
    pub fn guided_eps(
        &self,
        prior: &Prior<'_>,
        scale: f64,
    ) -> Result<(Tensor<4>, Tensor<4>), DistillError> {
        check_input(self)?;
        let z_t = self.noisy(prior.schedule);
        let (eps_hat, _, _) = prior.eps_cfg(
            z_t.clone(),
            &self.timesteps,
            self.cond.clone(),
            self.uncond.clone(),
            scale,
        );
        Ok((z_t, eps_hat))
    }

    /// `z_t = α_t z + σ_t ε` (plain tensors).
    pub fn noisy(&self, schedule: &NoiseSchedule) -> Tensor<4> {
        schedule.add_noise(
            self.latents.clone().detach(),
            self.noise.clone(),
            &self.timesteps,
        )
    }
}

/// What a guidance returns.
#[derive(Clone, Debug)]
pub struct GuidanceOutput {
    /// `g [B, 4, h, w]`, the gradient to inject into the latents (no autodiff graph).
    pub grad: Tensor<4>,
    /// Scalars to log (name, value), e.g. an auxiliary network's loss.
    pub stats: Vec<(&'static str, Stat)>,
}

/// A logged scalar. Device values stay on the device until the training loop logs, so a
/// guidance never forces a GPU→CPU read inside a step.
// A handful per step: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Stat {
    /// Known on the host.
    Host(f64),
    /// A `[1]` tensor on the device, read back only when logged.
    Device(Tensor<1>),
}

impl Stat {
    /// The value (a device read for [`Stat::Device`]).
    ///
    /// # Errors
    /// [`gpu::ReadError`] if the device read fails or the tensor is empty.
    pub fn value(&self) -> Result<f64, gpu::ReadError> {
        match self {
            Self::Host(v) => Ok(*v),
            Self::Device(t) => gpu::host(&t.clone().inner())?
                .first()
                .map(|v| *v as f64)
                .ok_or_else(|| gpu::ReadError("empty statistic".into())),
        }
    }
}

/// A score-distillation method. Implementations own their settings and any auxiliary network
/// (trained inside [`Guidance::gradient`] on the same sample, as DreamMapping's ℳψ).
pub trait Guidance {
    /// Short name (`sds`, `vdm`, …) as used by `--method`.
    fn name(&self) -> &'static str;

    /// The CFG scale (form A) this method queries the prior with.
    fn cfg_scale(&self) -> f64;

    /// Prompts the method needs besides `prompt` and the negative prompt, derived from the
    /// user's `prompt` (their embeddings arrive in [`GuidanceInput::extra`], same order).
    /// Default: none.
    fn extra_prompts(&self, prompt: &str) -> Vec<ExtraPrompt> {
        let _ = prompt;
        vec![]
    }

    /// The gradient on the latents for one step.
    ///
    /// # Errors
    /// [`DistillError::Input`] on inconsistent input shapes.
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError>;

    /// Named tensors of the method's learnable state (for checkpoints), flattened to host f32
    /// with their shapes. Default: none.
    fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![]
    }

    /// Restore what [`Guidance::state`] returned.
    ///
    /// # Errors
    /// [`DistillError::Input`] naming a missing or mis-shaped entry.
    fn load_state(&mut self, state: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), DistillError> {
        let _ = state;
        Ok(())
    }
}

/// `g` with NaN and ±Inf entries replaced by 0 (PyTorch `nan_to_num(…, 0, 0, 0)`).
pub fn finite_or_zero<const D: usize>(g: Tensor<D>) -> Tensor<D> {
    g.clone().mask_fill(g.is_finite().bool_not(), 0.0)
}

/// The SDS pseudo-loss `½‖z − sg(z − g)‖²` summed over all elements: its gradient with respect
/// to the autodiff latents `z` is exactly `g` (docs/methods.md §0, "SDS pseudo-loss trick").
/// Non-finite entries of `g` are replaced by 0 first (as the reference codes' `nan_to_num`).
pub fn inject(z: Tensor<4>, g: Tensor<4>) -> Tensor<1> {
    let g = finite_or_zero(g.detach());
    let target = (z.clone().detach() - g).detach();
    (z - target).square().sum() * 0.5
}

/// Which method and its settings (`[guidance]` of the generate config; `--method`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuidanceConfig {
    /// One of [`METHODS`]: `sds`, `vdm` (DreamMapping VDM + DCA), `sdi`, `bridge` (SDS-Bridge),
    /// `lmc` (LMC-SDS), `lods`, `vsd`.
    pub method: String,
    /// SDS settings (also the CFG scale and weighting used when `method = "sds"`).
    pub sds: SdsConfig,
    /// DreamMapping VDM + DCA settings (used when `method = "vdm"`).
    pub vdm: VdmConfig,
    /// SDI settings (`method = "sdi"`).
    pub sdi: SdiConfig,
    /// SDS-Bridge settings (`method = "bridge"`).
    pub bridge: BridgeConfig,
    /// LMC-SDS settings (used when `method = "lmc"`).
    pub lmc: LmcConfig,
    /// LODS settings (used when `method = "lods"`).
    pub lods: LodsConfig,
    /// VSD settings (used when `method = "vsd"`).
    pub vsd: VsdConfig,
}

impl Default for GuidanceConfig {
    fn default() -> Self {
        Self {
            method: "sds".into(),
            sds: SdsConfig::default(),
            vdm: VdmConfig::default(),
            sdi: SdiConfig::default(),
            bridge: BridgeConfig::default(),
            lmc: LmcConfig::default(),
            lods: LodsConfig::default(),
            vsd: VsdConfig::default(),
        }
    }
}

impl GuidanceConfig {
    /// The selected method's own timestep schedule (`[guidance.<method>.timesteps]`; each
    /// method's default is its paper's or reference code's, see the method configs).
    ///
    /// # Errors
    /// [`DistillError::Setting`] `guidance.method` for a method not in [`METHODS`].
    pub fn timesteps(&self) -> Result<&timesteps::TimestepSchedule, DistillError> {
        Ok(match self.method.as_str() {
            "sds" => &self.sds.timesteps,
            "vdm" => &self.vdm.timesteps,
            "sdi" => &self.sdi.timesteps,
            "bridge" => &self.bridge.timesteps,
            "lmc" => &self.lmc.timesteps,
            "lods" => &self.lods.timesteps,
            "vsd" => &self.vsd.timesteps,
            other => return Err(unknown_method(other)),
        })
    }

    /// Every method's timestep schedule, in [`METHODS`] order (for rescaling; the methods
    /// that are not selected are carried along).
    pub fn all_timesteps_mut(&mut self) -> [&mut timesteps::TimestepSchedule; 7] {
        [
            &mut self.sds.timesteps,
            &mut self.vdm.timesteps,
            &mut self.sdi.timesteps,
            &mut self.bridge.timesteps,
            &mut self.lmc.timesteps,
            &mut self.lods.timesteps,
            &mut self.vsd.timesteps,
        ]
    }

    /// Check every method's timestep schedule (a file may hold several methods' tables).
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the first `guidance.<method>.timesteps` out of order.
    pub fn validate_timesteps(&self) -> Result<(), DistillError> {
        let named = [
            ("guidance.sds.timesteps", &self.sds.timesteps),
            ("guidance.vdm.timesteps", &self.vdm.timesteps),
            ("guidance.sdi.timesteps", &self.sdi.timesteps),
            ("guidance.bridge.timesteps", &self.bridge.timesteps),
            ("guidance.lmc.timesteps", &self.lmc.timesteps),
            ("guidance.lods.timesteps", &self.lods.timesteps),
            ("guidance.vsd.timesteps", &self.vsd.timesteps),
        ];
        named.iter().try_for_each(|(name, s)| s.validate(name))
    }
}

fn unknown_method(name: &str) -> DistillError {
    DistillError::Setting {
        name: "guidance.method".into(),
        detail: format!(
            "unknown method `{name}`; expected one of {}",
            METHODS.join(", ")
        ),
    }
}

/// The method names [`build`] accepts.
pub const METHODS: &[&str] = &["sds", "vdm", "sdi", "bridge", "lmc", "lods", "vsd"];

/// Construct the configured guidance on `device` (auxiliary networks are created there; VDM's
/// ℳψ on the autodiff side of `device`).
///
/// # Errors
/// [`DistillError::Setting`] for an unknown method name or an invalid setting.
pub fn build(cfg: &GuidanceConfig, device: &Device) -> Result<Box<dyn Guidance>, DistillError> {
    match cfg.method.as_str() {
        "sds" => Ok(Box::new(Sds::new(cfg.sds.clone()))),
        "vdm" => Ok(Box::new(Vdm::new(cfg.vdm.clone(), device)?)),
        "sdi" => Ok(Box::new(Sdi::new(cfg.sdi.clone())?)),
        "bridge" => Ok(Box::new(Bridge::new(cfg.bridge.clone())?)),
        "lmc" => Ok(Box::new(Lmc::new(cfg.lmc.clone(), device)?)),
        "lods" => Ok(Box::new(Lods::new(cfg.lods.clone(), device)?)),
        "vsd" => Ok(Box::new(Vsd::new(cfg.vsd.clone(), device)?)),
        other => Err(unknown_method(other)),
    }
}

/// Check batch sizes agree across the input's tensors.
///
/// # Errors
/// [`DistillError::Input`] naming the tensor whose batch or shape disagrees.
pub fn check_input(input: &GuidanceInput) -> Result<(), DistillError> {
    let b = input.latents.dims()[0];
    let bad = |what: &str, n: usize| {
        DistillError::Input(format!("{what} has batch {n}, the latents have {b}"))
    };
    if input.timesteps.len() != b {
        return Err(bad("timesteps", input.timesteps.len()));
    }
    if input.noise.dims() != input.latents.dims() {
        return Err(DistillError::Input(format!(
            "noise {:?} and latents {:?} differ in shape",
            input.noise.dims(),
            input.latents.dims()
        )));
    }
    if input.cond.dims()[0] != b {
        return Err(bad("cond", input.cond.dims()[0]));
    }
    if input.uncond.dims()[0] != b {
        return Err(bad("uncond", input.uncond.dims()[0]));
    }
    if let Some(e) = input.extra.iter().find(|e| e.dims()[0] != b) {
        return Err(bad("an extra prompt embedding", e.dims()[0]));
    }
    if let Some(c) = &input.c2w
        && c.dims() != [b, 16]
    {
        return Err(DistillError::Input(format!(
            "c2w has shape {:?}, expected [{b}, 16]",
            c.dims()
        )));
    }
    Ok(())
}
