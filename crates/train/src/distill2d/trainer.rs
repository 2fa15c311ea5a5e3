//! The `distill2d` loop as a trainer: [`Distill2dTrainer`] owns one run's state (the
//! parameter — latent or pixels — and its Adam moments, the guidance, the prompt embeddings,
//! the bad-step guard) and [`Distill2dTrainer::step`] is one step; [`super::distill2d`] is the
//! driver (metrics, progression frames, outputs).

use burn::tensor::{Device, Tensor};
use distill::{Guidance, GuidanceInput, GuidanceOutput, Prior};
use rand::{SeedableRng, rngs::StdRng};
use sd::pipeline::{StableDiffusion, gaussian};

use super::config::{Distill2dConfig, Space, load_image};
use crate::generate::{GenerateError, step_seed};
use crate::output::to_rgb8;
use optim::adam::Moments;
use optim::guard::{DEFAULT_MAX_BAD_STEPS, StepGuard, keep_unless_bad, non_finite};

/// What one [`Distill2dTrainer::step`] leaves on the device for the driver.
pub struct Step2d {
    /// The pseudo-loss (plus the L2 pull), `[1]`, plain tensor.
    pub loss: Tensor<1>,
    /// The guidance's output: `g [1, 4, h, w]` and its statistics.
    pub guidance: GuidanceOutput,
    /// The step's timestep.
    pub t: usize,
}

/// One `distill2d` run's optimisation state.
pub struct Distill2dTrainer<'a> {
    cfg: &'a Distill2dConfig,
    model: &'a StableDiffusion,
    device: &'a Device,
    guidance: Box<dyn Guidance>,
    shape: [usize; 4],
    /// The parameter: the scaled latent `[1, 4, h, w]` or pixels `[1, 3, s, s]` in [0, 1].
    pub param: Tensor<4>,
    start_value: Tensor<4>,
    moments: Moments,
    cond: Tensor<3>,
    uncond: Tensor<3>,
    extra: Vec<Tensor<3>>,
    /// The bad-step guard.
    pub guard: StepGuard,
}

impl<'a> Distill2dTrainer<'a> {
    /// Seed the device, build the guidance, load the initial image (if any), make the
    /// parameter and encode the prompts.
    ///
    /// # Errors
    /// [`GenerateError`] for an unreadable initial image, a guidance that cannot be built or
    /// a failing text encoder.
    pub fn new(
        cfg: &'a Distill2dConfig,
        model: &'a StableDiffusion,
        device: &'a Device,
    ) -> Result<Self, GenerateError> {
        device.seed(step_seed(cfg.seed, 0, 9));
        let guidance = distill::build(&cfg.guidance, device)?;
        let sf = model.vae.scaling_factor();
        let f = model.vae.downscale();
        let s = cfg.size as usize;
        let h = s / f;
        let init = match &cfg.init_image {
            Some(p) => Some(load_image(p, cfg.size, device)?),
            None => None,
        };
        let (shape, param): ([usize; 4], Tensor<4>) = match (cfg.space, &init) {
            (Space::Latent, Some(img)) => ([1, 4, h, h], model.vae.encode(img.clone()).mean * sf),
            (Space::Latent, None) => ([1, 4, h, h], gaussian([1, 4, h, h], cfg.seed, device)),
            (Space::Pixel, Some(img)) => ([1, 3, s, s], (img.clone() + 1.0) * 0.5),
            (Space::Pixel, None) => ([1, 3, s, s], Tensor::full([1, 3, s, s], 0.5, device)),
        };
        let n: usize = shape.iter().product();
        let moments = Moments::zeros_like(&param.clone().reshape([1, n]));
        let extra = guidance.extra_prompts(&cfg.prompt);
        let mut texts = vec![cfg.prompt.clone(), cfg.negative_prompt.clone()];
        texts.extend(extra.iter().map(|e| e.text.clone()));
        let embeds = model.encode_prompts(&texts)?.detach();
        Ok(Self {
            cfg,
            model,
            device,
            guidance,
            shape,
            start_value: param.clone(),
            param,
            moments,
            cond: embeds.clone().narrow(0, 0, 1),
            uncond: embeds.clone().narrow(0, 1, 1),
            extra: (0..extra.len())
                .map(|k| embeds.clone().narrow(0, 2 + k, 1))
                .collect(),
            guard: StepGuard::new(device, DEFAULT_MAX_BAD_STEPS),
        })
    }

    /// Step `step` (0-based; its draws derive from (seed, step)): z from the parameter (through
    /// the VAE encoder in pixel space) → the guidance's `g` → inject (+ λ·mean((x − x₀)²)) →
    /// backward → guarded Adam on the parameter. A non-finite `g`, loss or parameter gradient
    /// skips the update.
    ///
    /// # Errors
    /// [`GenerateError`] from the guidance or when no gradient reaches the parameter.
    pub fn step(&mut self, step: u64) -> Result<Step2d, GenerateError> {
        let cfg = self.cfg;
        let model = self.model;
        let sf = model.vae.scaling_factor();
        let num_t = model.schedule.num_train_timesteps();
        let n: usize = self.shape.iter().product();
        let mut rng = StdRng::seed_from_u64(step_seed(cfg.seed, step, 1));
        let t = cfg.timesteps.sample(step as usize, 1, num_t, &mut rng);
        let x = self.param.clone().detach().autodiff().require_grad();
        let z = match cfg.space {
            Space::Latent => x.clone(),
            Space::Pixel => model.vae.encode(x.clone() * 2.0 - 1.0).mean * sf,
        };
        let latents = z.clone().detach().inner();
        let input = GuidanceInput {
            noise: gaussian(latents.dims(), step_seed(cfg.seed, step, 2), self.device),
            latents,
            timesteps: t.clone(),
            cond: self.cond.clone(),
            uncond: self.uncond.clone(),
            step: step as usize,
            seed: step_seed(cfg.seed, step, 3),
            extra: self.extra.clone(),
            c2w: None,
        };
        let prior = Prior {
            unet: &model.unet,
            schedule: &model.schedule,
        };
        let g = self.guidance.gradient(&prior, &input)?;
        let mut loss = distill::inject(z, g.grad.clone());
        if cfg.init_l2 > 0.0 {
            loss = loss
                + (x.clone() - self.start_value.clone().detach())
                    .square()
                    .mean()
                    * cfg.init_l2;
        }
        let grads = loss.backward();
        let grad = x
            .grad(&grads)
            .ok_or_else(|| distill::DistillError::Input("no gradient reached the image".into()))?;
        let grad = grad.reshape([1, n]);
        let bad = self.guard.check(vec![
            non_finite(&g.grad),
            non_finite(&loss.clone().inner()),
            non_finite(&grad),
        ]);
        let old = (self.param.clone().reshape([1, n]), self.moments.clone());
        let updated = cfg
            .adam
            .update(old.0.clone(), grad, &mut self.moments, step + 1, cfg.lr);
        self.moments.m = keep_unless_bad(self.moments.m.clone(), old.1.m, &bad);
        self.moments.v = keep_unless_bad(self.moments.v.clone(), old.1.v, &bad);
        self.param = keep_unless_bad(updated, old.0, &bad).reshape(self.shape);
        if cfg.space == Space::Pixel {
            self.param = self.param.clone().clamp(0.0, 1.0);
        }
        Ok(Step2d {
            loss: loss.inner().reshape([1]),
            guidance: g,
            t: t[0],
        })
    }

    /// The current image, decoded (latent space) or as is (pixel space), as sRGB bytes.
    ///
    /// # Errors
    /// [`GenerateError`] when the device read fails.
    pub fn image(&self) -> Result<image::RgbImage, GenerateError> {
        let rgb = match self.cfg.space {
            Space::Latent => {
                (self
                    .model
                    .vae
                    .decode(self.param.clone() / self.model.vae.scaling_factor())
                    + 1.0)
                    * 0.5
            }
            Space::Pixel => self.param.clone(),
        };
        let hw = rgb.clamp(0.0, 1.0).squeeze_dim::<3>(0).permute([1, 2, 0]);
        Ok(to_rgb8(hw)?)
    }
}
