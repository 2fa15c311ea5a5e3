//! Pre-training b̂ψ (`splatdream lmc-train`, \[S2\] §4): triplets (z, t, ẑ_t) made with the
//! frozen prior and a blur loss between b̃ and ẑ_t.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};

use sd::pipeline::gaussian;

use crate::{DistillError, Prior};

use super::net::{BlurNet, BlurNetConfig, LATENT_CHANNELS, mix, renormalise};

/// The blur model's training loss (methods.md §3.2): `L_k = mean‖ẑ_t − b̃‖²` with
/// `b̃ = renormalise(b, ẑ_t)`, the mean over all elements. `z_hat` is treated as a constant.
/// Returns `[1]`.
pub fn blur_loss(b: Tensor<4>, z_hat: Tensor<4>) -> Tensor<1> {
    let z_hat = z_hat.detach();
    let bt = renormalise(b, z_hat.clone());
    (z_hat - bt).square().mean().reshape([1])
}

/// The frozen U-Net's unconditional ε-prediction at `z_t` (one U-Net call of B; v converted
/// to ε). `uncond [B, 77, D]` or `[1, 77, D]` (repeated). Plain tensors.
pub fn eps_uncond(prior: &Prior<'_>, z_t: Tensor<4>, t: &[usize], uncond: Tensor<3>) -> Tensor<4> {
    let b = z_t.dims()[0];
    let z_t = z_t.detach();
    let uncond = if uncond.dims()[0] == 1 && b > 1 {
        uncond.repeat_dim(0, b)
    } else {
        uncond
    };
    let tf: Vec<f64> = t.iter().map(|&x| x as f64).collect();
    let out = prior.unet.forward(z_t.clone(), &tf, uncond).detach();
    prior.schedule.to_epsilon(out, z_t, t)
}

/// Settings of [`BlurTrainer`] (the `lmc-train` options). Defaults: \[S2\] except `batch`.
#[derive(Clone, Debug, PartialEq)]
pub struct BlurTrainerConfig {
    /// Adam learning rate (\[S2\]: 1e-4).
    pub lr: f64,
    /// Staircase decay factor (\[S2\]: 0.9) …
    pub lr_decay: f64,
    /// … applied every this many steps (\[S2\]: 100,000; 0 = no decay).
    pub lr_decay_every: u64,
    /// Triplets per step (\[S2\]: 128; default 8 \[REC\]: each costs one U-Net forward).
    pub batch: usize,
    /// Lowest t (inclusive; \[S2\]: 0.02 → 20).
    pub t_min: usize,
    /// Highest t (inclusive; \[S2\]: 0.98 → 980).
    pub t_max: usize,
    /// Seed of the initial weights, the batch/t draws and the noise.
    pub seed: u64,
}

impl Default for BlurTrainerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            lr_decay: 0.9,
            lr_decay_every: 100_000,
            batch: 8,
            t_min: 20,
            t_max: 980,
            seed: 0,
        }
    }
}

impl BlurTrainerConfig {
    /// Check the ranges against a schedule of `num_train_timesteps`.
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the field (`lr`, `lr_decay`, `batch`, `t_min`/`t_max`).
    pub fn validate(&self, num_train_timesteps: usize) -> Result<(), DistillError> {
        let bad = |name: &str, detail: String| DistillError::Setting {
            name: name.into(),
            detail,
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", format!("{} is not a positive number", self.lr)));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0) {
            return Err(bad(
                "lr_decay",
                format!("{} is not a positive number", self.lr_decay),
            ));
        }
        if self.batch == 0 {
            return Err(bad("batch", "must be at least 1".into()));
        }
        if self.t_min > self.t_max || self.t_max >= num_train_timesteps {
            return Err(bad(
                "t_min/t_max",
                format!(
                    "[{}, {}] is not a range inside 0..{num_train_timesteps}",
                    self.t_min, self.t_max
                ),
            ));
        }
        Ok(())
    }

    /// The learning rate of step `k` (0-based): `lr · lr_decay^⌊k / lr_decay_every⌋`.
    pub fn lr_at(&self, k: u64) -> f64 {
        if self.lr_decay_every == 0 {
            return self.lr;
        }
        self.lr
            * self
                .lr_decay
                .powi((k / self.lr_decay_every).min(i32::MAX as u64) as i32)
    }
}

/// One training batch of triplets (plain tensors).
#[derive(Clone, Debug)]
pub struct Triplets {
    /// `z [B, 4, h, w]`, clean scaled latents.
    pub z: Tensor<4>,
    /// `ẑ_t [B, 4, h, w]`, the unconditional x₀ prediction at `z_t = α_t z + σ_t ε`.
    pub z_hat: Tensor<4>,
    /// Per-sample t.
    pub t: Vec<usize>,
}

/// The pre-training loop of b̂ψ (methods.md §3.2): per step, draw `batch` latents uniformly
/// (with replacement) from the data set, `t ~ U{t_min, …, t_max}` and fresh `ε`, form
/// `ẑ_t = (z_t − σ_t ε̂_φ(z_t; ∅, t))/α_t` with the frozen U-Net (no gradient), and take one
/// Adam step on `L_k` ([`blur_loss`]). Deterministic for a seed on one device: the initial
/// weights ([`BlurNet::seeded`]) and all draws come from host RNGs.
pub struct BlurTrainer {
    /// Settings.
    pub config: BlurTrainerConfig,
    /// b̂ψ on the autodiff side of the device.
    net: BlurNet,
    /// Adam (β = (0.9, 0.999), ε = 1e-8).
    optim: ModuleOptimizer,
    /// Batch and timestep draws.
    rng: StdRng,
    /// Steps done.
    steps: u64,
}

impl std::fmt::Debug for BlurTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlurTrainer")
            .field("config", &self.config)
            .field("net", &self.net.config())
            .field("steps", &self.steps)
            .finish()
    }
}

impl BlurTrainer {
    /// A trainer with a fresh b̂ψ of `net` ([`BlurNet::seeded`] from `config.seed`) on the
    /// autodiff side of `device`.
    ///
    /// # Errors
    /// [`DistillError::Setting`] for a bad network shape or training setting.
    pub fn new(
        net: &BlurNetConfig,
        config: BlurTrainerConfig,
        device: &Device,
    ) -> Result<Self, DistillError> {
        config.validate(usize::MAX)?;
        let dev = device.clone().autodiff();
        let net = BlurNet::seeded(net, mix(config.seed, 0, 1), &dev)?;
        let optim = AdamConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .init();
        let rng = StdRng::seed_from_u64(mix(config.seed, 0, 2));
        Ok(Self {
            config,
            net,
            optim,
            rng,
            steps: 0,
        })
    }

    /// Steps done.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The current network as a plain (non-autodiff) module, for evaluation and saving.
    pub fn net(&self) -> BlurNet {
        self.net.valid()
    }

    /// Draw the next step's triplets from `data [N, 4, h, w]` (scaled latents) with the
    /// unconditional embedding `uncond [1, 77, D]` (one U-Net call of `batch`). Advances the
    /// trainer's random streams (not the step count).
    ///
    /// # Errors
    /// [`DistillError::Input`] for empty data, wrong channel count, or a bad `t` range for the
    /// prior's schedule.
    pub fn sample(
        &mut self,
        prior: &Prior<'_>,
        data: &Tensor<4>,
        uncond: &Tensor<3>,
    ) -> Result<Triplets, DistillError> {
        let [n, c, h, w] = data.dims();
        if n == 0 || c != LATENT_CHANNELS {
            return Err(DistillError::Input(format!(
                "training latents have shape {:?}; expected [N ≥ 1, {LATENT_CHANNELS}, h, w]",
                data.dims()
            )));
        }
        if uncond.dims()[0] != 1 {
            return Err(DistillError::Input(format!(
                "the unconditional embedding has batch {}, expected 1",
                uncond.dims()[0]
            )));
        }
        self.config.validate(prior.schedule.num_train_timesteps())?;
        let b = self.config.batch;
        let idx: Vec<i32> = (0..b).map(|_| self.rng.random_range(0..n) as i32).collect();
        let t: Vec<usize> = (0..b)
            .map(|_| self.rng.random_range(self.config.t_min..=self.config.t_max))
            .collect();
        let device = data.device();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &device);
        let z = data.clone().detach().select(0, idx);
        let eps = gaussian([b, c, h, w], mix(self.config.seed, self.steps, 3), &device);
        let z_t = prior.schedule.add_noise(z.clone(), eps, &t);
        let e = eps_uncond(prior, z_t.clone(), &t, uncond.clone());
        let z_hat = prior.schedule.eps_to_x0(e, z_t, &t).detach();
        Ok(Triplets { z, z_hat, t })
    }

    /// One Adam step on `L_k` for `triplets`, at the learning rate of the current step.
    /// Returns `L_k` before the step as a `[1]` device tensor (not read back).
    pub fn train_on(&mut self, triplets: &Triplets) -> Tensor<1> {
        let z = triplets.z.clone().detach().inner().autodiff();
        let b = self.net.forward(z, &triplets.t);
        let loss = blur_loss(b, triplets.z_hat.clone().inner().autodiff());
        let grads = loss.backward();
        let value = loss.detach().inner();
        let grads = GradientsParams::from_grads(grads, &self.net);
        let lr = self.config.lr_at(self.steps);
        self.net = self.optim.step(lr, self.net.clone(), grads);
        self.steps += 1;
        value
    }

    /// [`BlurTrainer::sample`] then [`BlurTrainer::train_on`]: one training step.
    ///
    /// # Errors
    /// See [`BlurTrainer::sample`].
    pub fn step(
        &mut self,
        prior: &Prior<'_>,
        data: &Tensor<4>,
        uncond: &Tensor<3>,
    ) -> Result<Tensor<1>, DistillError> {
        let tr = self.sample(prior, data, uncond)?;
        Ok(self.train_on(&tr))
    }
}
