//! Shared plumbing of the methods that fit part of the diffusion prior online to the current
//! renders (LODS's unconditional embedding y_α or LoRA ψ, VSD's LoRA; docs/methods.md §1, §6.2):
//! the denoising training target, the seeded per-step draws of `t′` and `ε′`, the Adam(W)
//! settings, and a lazily created module whose checkpoint state can arrive before it exists.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sd::scheduler::{NoiseSchedule, PredictionType};

use crate::DistillError;
use crate::state::{Entry, load_module_state, module_state};

/// The model's own training target for `x₀ = z` noised with `ε` at per-sample `t`, i.e. what the
/// U-Net output is regressed on in diffusers' training scripts (and threestudio's `train_lora`):
/// `ε` for ε-prediction, `v = α_t ε − σ_t z` for v-prediction, `z` for sample prediction.
/// Shapes `[B, 4, h, w]`, plain tensors.
pub fn denoising_target(
    schedule: &NoiseSchedule,
    z: Tensor<4>,
    eps: Tensor<4>,
    t: &[usize],
) -> Tensor<4> {
    match schedule.config().prediction_type {
        PredictionType::Epsilon => eps,
        PredictionType::VPrediction => schedule.get_velocity(z, eps, t),
        PredictionType::Sample => z,
    }
}

/// A 64-bit seed for random stream `stream` of step `step` under `seed` (splitmix64 of the mix),
/// so the draws of a step do not depend on what ran before it (resumed runs repeat them).
pub fn stream_seed(seed: u64, step: usize, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add((step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(stream.wrapping_mul(0xd1b5_4a32_d192_ed03))
        ^ 0x10d5_0f1e_2024_0001;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random draws of one prior-fitting step.
#[derive(Clone, Debug)]
pub struct PriorDraws {
    /// `t′` per sample, uniform on the inclusive range.
    pub t: Vec<usize>,
    /// `ε′ [B, 4, h, w]` ~ N(0, I) ([`sd::pipeline::gaussian`], the same on every device).
    pub noise: Tensor<4>,
    /// One more U[0, 1) draw (VSD's camera-condition dropout).
    pub uniform: f64,
}

/// Draw `t′ ~ U{lo, …, hi}` per sample (host [`StdRng`]), `ε′` of `shape` and one uniform, all
/// seeded from `(seed, step)` only.
pub fn prior_draws(
    seed: u64,
    step: usize,
    shape: [usize; 4],
    (lo, hi): (usize, usize),
    device: &Device,
) -> PriorDraws {
    let mut rng = StdRng::seed_from_u64(stream_seed(seed, step, 1));
    let t = (0..shape[0]).map(|_| rng.random_range(lo..=hi)).collect();
    let uniform = rng.random::<f64>();
    let noise = sd::pipeline::gaussian(shape, stream_seed(seed, step, 2), device);
    PriorDraws { t, noise, uniform }
}

/// Check Adam settings; `prefix` is the config section (`guidance.lods`).
///
/// # Errors
/// [`DistillError::Setting`] naming `<prefix>.<field>`.
pub fn validate_adam(
    prefix: &str,
    lr_name: &str,
    lr: f64,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
) -> Result<(), DistillError> {
    let bad = |name: &str, detail: String| DistillError::Setting {
        name: format!("{prefix}.{name}"),
        detail,
    };
    if !(lr.is_finite() && lr > 0.0) {
        return Err(bad(lr_name, format!("{lr} is not a positive number")));
    }
    if !betas.iter().all(|b| (0.0..1.0).contains(b)) {
        return Err(bad("betas", format!("{betas:?}: both must be in [0, 1)")));
    }
    if !(eps.is_finite() && eps > 0.0) {
        return Err(bad("eps", format!("{eps} is not a positive number")));
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(bad(
            "weight_decay",
            format!("{weight_decay} is not a non-negative number"),
        ));
    }
    Ok(())
}

/// The inclusive timestep range `[lo, hi]` of a setting, checked against the model.
///
/// # Errors
/// [`DistillError::Setting`] naming `name` when `lo > hi` or `hi` is not a timestep of the
/// model.
pub fn timestep_range(
    name: &str,
    range: [usize; 2],
    schedule: &NoiseSchedule,
) -> Result<(usize, usize), DistillError> {
    let n = schedule.num_train_timesteps();
    if range[0] > range[1] || range[1] >= n {
        return Err(DistillError::Setting {
            name: name.into(),
            detail: format!(
                "{range:?} is not an ordered range inside 0..={}",
                n.saturating_sub(1)
            ),
        });
    }
    Ok((range[0], range[1]))
}

/// A learnable module created at the first step (it needs the U-Net or the first negative-prompt
/// embedding), whose checkpoint state may be loaded before that: the entries are then kept and
/// applied (and fully checked) when the module is created.
#[derive(Debug, Clone)]
pub struct LazyModule<M: Module> {
    module: Option<M>,
    pending: Option<Vec<Entry>>,
    prefix: &'static str,
    what: &'static str,
}

impl<M: Module> LazyModule<M> {
    /// Not yet created; its state entries are named `<prefix>.<module path>`; `what` names the
    /// method in error messages.
    pub fn new(prefix: &'static str, what: &'static str) -> Self {
        Self {
            module: None,
            pending: None,
            prefix,
            what,
        }
    }

    /// The module, when created.
    pub fn get(&self) -> Option<&M> {
        self.module.as_ref()
    }

    /// Replace the created module (after an optimiser step).
    pub fn set(&mut self, module: M) {
        self.module = Some(module);
    }

    /// The module, created with `init` on first use; state loaded before is applied then.
    ///
    /// # Errors
    /// [`DistillError::Input`] when loaded state does not fit the created module.
    pub fn get_or_init(&mut self, init: impl FnOnce() -> M) -> Result<&M, DistillError> {
        if self.module.is_none() {
            let mut m = init();
            if let Some(st) = self.pending.take() {
                m = load_module_state(self.prefix, self.what, m, &st)?;
            }
            self.module = Some(m);
        }
        self.module
            .as_ref()
            .ok_or_else(|| DistillError::Input(format!("{}: module not created", self.what)))
    }

    /// The module's parameters as checkpoint entries; before creation, the loaded entries (if
    /// any), so a checkpoint written before the first step round-trips.
    pub fn state(&self) -> Vec<Entry> {
        match (&self.module, &self.pending) {
            (Some(m), _) => module_state(self.prefix, m),
            (None, Some(p)) => p.clone(),
            (None, None) => vec![],
        }
    }

    /// Restore [`Self::state`]'s entries. A created module checks names and shapes at once
    /// ([`load_module_state`]); before creation every entry must carry the prefix and as many
    /// values as its shape holds, and the rest is checked when the module is created.
    ///
    /// # Errors
    /// [`DistillError::Input`] naming the unknown, missing or mis-shaped entry.
    pub fn load_state(&mut self, state: &[Entry]) -> Result<(), DistillError> {
        match &self.module {
            Some(m) => {
                let restored = load_module_state(self.prefix, self.what, m.clone(), state)?;
                self.module = Some(restored);
            }
            None => {
                let head = format!("{}.", self.prefix);
                for (name, shape, values) in state {
                    if !name.starts_with(&head) {
                        return Err(DistillError::Input(format!(
                            "{} state: unknown entry `{name}`",
                            self.what
                        )));
                    }
                    if shape.iter().product::<usize>() != values.len() {
                        return Err(DistillError::Input(format!(
                            "{} state: `{name}` has shape {shape:?} but {} values",
                            self.what,
                            values.len()
                        )));
                    }
                }
                self.pending = (!state.is_empty()).then(|| state.to_vec());
            }
        }
        Ok(())
    }
}
