//! The `generate` loop as a trainer: [`GenerateTrainer`] owns one run's optimisation state
//! (splats and Adam moments, densifier, guidance and its auxiliary networks, the prompt
//! embeddings, the bad-step guard) and [`GenerateTrainer::step`] is one distillation step;
//! [`super::generate`] is the driver around it (logging, checkpoints, outputs).
//!
//! The step is the module documentation of [`super`], items 1–6.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use distill::cameras::SampledCamera;
use distill::prompts::{PromptProcessor, View};
use distill::{Guidance, GuidanceInput, GuidanceOutput, Prior};
use rand::{SeedableRng, rngs::StdRng};
use sd::pipeline::{StableDiffusion, gaussian};
use splat::{Camera, RenderOptions, render};

use super::config::InitKind;
use super::config::{GenerateConfig, GenerateError};
use super::record::Event;
use super::setup::draw_timesteps;
use super::setup::{c2w_tensor, coarse_config, initial_splats, scene_scale};
use crate::checkpoint::{Checkpoint, CheckpointError};
use optim::densify::{Densifier, Reduction};
use optim::guard::{StepGuard, fault_nan, keep_unless_bad, non_finite};
use optim::params::Gaussians;
use optim::rng::step_seed;

/// One `generate` run's optimisation state.
pub struct GenerateTrainer<'a> {
    cfg: &'a GenerateConfig,
    model: &'a StableDiffusion,
    device: &'a Device,
    prior: Prior<'a>,
    num_t: usize,
    /// The view prompts and their embeddings, encoded once.
    prompts: PromptProcessor,
    /// The method.
    pub guidance: Box<dyn Guidance>,
    /// The splats and their Adam moments.
    pub gaussians: Gaussians,
    /// The densification strategy's state.
    pub densifier: Densifier,
    /// Skips steps with a non-finite gradient and stops a run after too many.
    pub guard: StepGuard,
    /// The first step this trainer runs (the checkpoint's step when resumed, else 0).
    pub start: u64,
}

/// What one step did; device tensors, nothing read back.
pub struct StepOutcome {
    /// The cameras of the batch, with their azimuth and elevation.
    pub sampled: Vec<SampledCamera>,
    /// The background colour of each view, RGB in [0, 1] (all equal unless
    /// `background.per_view`).
    pub backgrounds: Vec<[f32; 3]>,
    /// Per-sample timesteps.
    pub timesteps: Vec<usize>,
    /// `z(θ) [B, 4, h, w]`: the scaled VAE latents of the renders before the update, detached.
    pub latents: Tensor<4>,
    /// The guidance's output: `g [B, 4, h, w]` (injected as ∂L/∂z) and its statistics.
    pub guidance: GuidanceOutput,
    /// `[1]` the injected pseudo-loss ½‖g‖².
    pub loss: Tensor<1>,
    /// `[B, H, W, 3]` the renders in [0, 1], detached.
    pub rgb: Tensor<4>,
    /// The learning rates the step used, per parameter group in `params::GROUPS` order (means,
    /// quats, log_scales, opacity logits, SH DC, SH rest).
    pub lrs: [f64; 6],
}

impl<'a> GenerateTrainer<'a> {
    /// A fresh run (step 0: initial splats from `cfg.init`) or, with `resumed`, the run saved in
    /// a checkpoint (`hash`: the config hash, compared with the checkpoint's to warn when
    /// settings changed). Seeds the device generator, builds the guidance and encodes the
    /// prompt embeddings once.
    ///
    /// # Errors
    /// A fit checkpoint, unreadable checkpoint tensors, a guidance that cannot be built or
    /// restored, or a failing text encoder.
    pub fn new(
        cfg: &'a GenerateConfig,
        model: &'a StableDiffusion,
        device: &'a Device,
        resumed: Option<(PathBuf, Checkpoint)>,
        hash: &str,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Self, GenerateError> {
        // Seed the device RNG first so auxiliary networks (VDM's ℳψ) start from the same
        // weights for the same seed.
        device.seed(step_seed(cfg.seed, 0, 9));
        let mut guidance = distill::build(&cfg.guidance, device)?;
        let mut densifier;
        let gaussians;
        let start: u64;
        match resumed {
            Some((path, ck)) => {
                if ck.meta.method == "fit" {
                    return Err(CheckpointError::Read {
                        path,
                        message: "a fit checkpoint, not a generate checkpoint".into(),
                    }
                    .into());
                }
                if ck.meta.seed != cfg.seed {
                    on_event(Event::Message(format!(
                        "note: the checkpoint's seed is {}, the config's {}; continuing with the config's",
                        ck.meta.seed, cfg.seed
                    )));
                }
                if ck.meta.config_hash != hash {
                    on_event(Event::Message(
                        "note: settings differ from the checkpointed run's (beyond steps/output)"
                            .into(),
                    ));
                }
                gaussians = ck.gaussians(device, &path)?;
                start = ck.meta.step;
                densifier =
                    Densifier::new(cfg.densify.clone(), scene_scale(cfg), cfg.seed, cfg.steps);
                ck.restore_densifier(&mut densifier, device);
                guidance.load_state(&ck.with_prefix("guidance."))?;
                on_event(Event::Message(format!(
                    "resumed {} at step {start} ({} splats)",
                    path.display(),
                    gaussians.len()
                )));
            }
            None => {
                let init = if cfg.init.kind == InitKind::Coarse {
                    coarse_stage(cfg, model, device, on_event)?
                } else {
                    initial_splats(&cfg.init, cfg.seed)?
                };
                gaussians = Gaussians::from_data(&init, 0, device);
                densifier =
                    Densifier::new(cfg.densify.clone(), scene_scale(cfg), cfg.seed, cfg.steps);
                start = 0;
                on_event(Event::Message(format!(
                    "{} initial splats ({:?} init), method {}, {} steps of {} × {}²",
                    gaussians.len(),
                    cfg.init.kind,
                    guidance.name(),
                    cfg.steps,
                    cfg.batch,
                    cfg.resolution
                )));
            }
        }
        device.seed(step_seed(cfg.seed, start, 8));

        // Prompt embeddings, once: the four view prompts, the negative prompt and the method's
        // extra prompts.
        let prompts = PromptProcessor::encode(
            model,
            &cfg.prompt,
            &cfg.prompts,
            &cfg.negative_prompt,
            &guidance.extra_prompts(&cfg.prompt),
        )?;
        let prior = Prior {
            unet: &model.unet,
            schedule: &model.schedule,
        };
        let num_t = model.schedule.num_train_timesteps();
        Ok(Self {
            cfg,
            model,
            device,
            prior,
            num_t,
            prompts,
            guidance,
            gaussians,
            densifier,
            guard: StepGuard::new(device, cfg.max_bad_steps),
            start,
        })
    }

    /// The model the trainer distils from.
    pub fn model(&self) -> &StableDiffusion {
        self.model
    }

    /// One distillation step with index `step` (0-based; its draws are seeded by
    /// `(cfg.seed, step)`): render, encode, guidance gradient, backward into the splats, Adam,
    /// densification (items 1–6 of [`crate::generate`]).
    ///
    /// # Errors
    /// A render that overflows the intersection buffer, a guidance error or a device failure.
    pub fn step(&mut self, step: u64) -> Result<StepOutcome, GenerateError> {
        let cfg = self.cfg;
        let device = self.device;
        let model = self.model;
        let res = cfg.resolution;
        let steps = cfg.steps;
        let num_t = self.num_t;
        let prior = &self.prior;
        let prompts = &self.prompts;
        let guidance = &mut self.guidance;
        let gaussians = &mut self.gaussians;
        let densifier = &mut self.densifier;
        let guard = &mut self.guard;
        let mut rng = StdRng::seed_from_u64(step_seed(cfg.seed, step, 1));
        let sampled = cfg.cameras.at_step(step).sample(cfg.batch, res, &mut rng);
        let cams: Vec<Camera> = sampled.iter().map(|s| s.camera).collect();
        let bgs = cfg.background.sample_views(sampled.len(), &mut rng);
        let bg = bgs[0];
        let per_view_bg = bgs.iter().any(|b| *b != bg);
        let t = draw_timesteps(cfg, step, num_t, &mut rng)?;
        let opt_step = step + 1;
        let want_means2d = densifier.wants_means2d_grad(opt_step);

        let leaves = gaussians.leaves();
        let out = render(
            &leaves.splats,
            &cams,
            &RenderOptions {
                // Backgrounds that differ per view are composited below over a black render.
                background: if per_view_bg { [0.0; 3] } else { bg },
                sh_degree: Some(0),
                means2d_grad: want_means2d,
                ..Default::default()
            },
        )?;
        let rgb = if per_view_bg {
            over_backgrounds(out.rgb.clone(), out.alpha.clone(), &bgs, device)
        } else {
            out.rgb.clone()
        };
        // What the VAE sees: the colour, or (LucidDreamer's `as_latent` steps) the normalised
        // disparity in grey, so the guidance gradient reaches the splats through depth and alpha.
        let shown = if cfg.latents.depth_step(cfg.seed, step) {
            super::lucid_disparity(out.depth.clone(), out.alpha.clone(), &cams, device)
                .repeat_dim(3, 3)
        } else {
            rgb.clone()
        };
        // The one layout conversion: rasterizer [B, H, W, 3] in [0, 1] → VAE [B, 3, H, W] in
        // [−1, 1].
        let image = shown.permute([0, 3, 1, 2]) * 2.0 - 1.0;
        let posterior = model.vae.encode(image);
        let z = if cfg.latents.posterior_sample {
            let eps = gaussian(posterior.mean.dims(), step_seed(cfg.seed, step, 4), device);
            posterior.sample(eps)
        } else {
            posterior.mean
        } * model.vae.scaling_factor();
        let latents = z.clone().detach().inner();
        let z0 = latents.clone();
        let mut noise = gaussian(latents.dims(), step_seed(cfg.seed, step, 2), device);
        if cfg.latents.noise_offset != 0.0 {
            let [_, c, _, _] = latents.dims();
            let offset = gaussian([1, c, 1, 1], step_seed(cfg.seed, step, 5), device);
            noise = noise + offset * cfg.latents.noise_offset;
        }
        let view_of: Vec<View> = sampled
            .iter()
            .map(|s| prompts.view(s.azimuth_deg as f64, s.elevation_deg as f64))
            .collect();
        let (cond, uncond, extra) = prompts.select(&view_of, device);
        let input = GuidanceInput {
            latents,
            timesteps: t.clone(),
            noise,
            cond,
            uncond,
            step: step as usize,
            seed: step_seed(cfg.seed, step, 3),
            extra,
            c2w: Some(c2w_tensor(&cams, device)),
        };
        let g = guidance.gradient(prior, &input)?;
        let mut loss = distill::inject(z, g.grad.clone());
        if let Some(reg) = super::regularisers(
            &cfg.regularisers,
            rgb.clone(),
            out.depth.clone(),
            out.alpha.clone(),
            leaves.leaves[optim::params::LOG_SCALES].clone(),
            &cams,
            device,
        ) {
            loss = loss + reg;
        }
        if fault_nan(opt_step) {
            loss = loss * f32::NAN;
        }
        let grads = loss.backward();
        let pg: [Option<Tensor<2>>; 6] = std::array::from_fn(|k| leaves.leaves[k].grad(&grads));
        // A non-finite guidance gradient, loss or splat gradient skips the step.
        let mut counts = vec![non_finite(&g.grad), non_finite(&loss.clone().inner())];
        counts.extend(pg.iter().flatten().map(non_finite));
        let bad = guard.check(counts);
        if want_means2d && let Some(gr) = out.means2d.grad(&grads) {
            densifier.observe(
                keep_unless_bad(gr.clone(), gr.zeros_like(), &bad),
                res,
                res,
                Reduction::Sum,
            );
        }
        let lrs = cfg.lr.at(step, steps);
        gaussians.adam_step_guarded(&cfg.adam, opt_step, &pg, &lrs, &bad);
        densifier
            .after_step(opt_step, gaussians, lrs[0])
            .map_err(GenerateError::Device)?;
        Ok(StepOutcome {
            sampled,
            backgrounds: bgs,
            timesteps: t,
            latents: z0,
            guidance: g,
            loss: loss.inner(),
            rgb: rgb.inner(),
            lrs,
        })
    }

    /// `z [B, 4, h, w]`: the scaled VAE latents (posterior mean) of the current splats rendered
    /// at `cams` over `backgrounds` (one per camera) at the run's resolution, without
    /// gradients; what [`StepOutcome::latents`] holds for the step's cameras (with
    /// `latents.posterior_sample` off).
    ///
    /// # Errors
    /// A render that overflows the intersection buffer.
    pub fn latents(
        &self,
        cams: &[Camera],
        backgrounds: &[[f32; 3]],
    ) -> Result<Tensor<4>, GenerateError> {
        let out = render(
            &self.gaussians.splats(),
            cams,
            &RenderOptions {
                background: [0.0; 3],
                sh_degree: Some(0),
                ..Default::default()
            },
        )?;
        let rgb = over_backgrounds(out.rgb.inner(), out.alpha.inner(), backgrounds, self.device);
        let image = rgb.permute([0, 3, 1, 2]) * 2.0 - 1.0;
        Ok(self.model.vae.encode(image).mean * self.model.vae.scaling_factor())
    }
}

/// `rgb [B, H, W, 3]` rendered over black, composited over one background per view:
/// `rgb + (1 − alpha)·bg_b` with `alpha [B, H, W]`, `bgs` one RGB per view in [0, 1] (the
/// rasterizer's own compositing, so gradients reach the splats' opacities through `alpha` as
/// they do through an in-kernel background).
pub fn over_backgrounds(
    rgb: Tensor<4>,
    alpha: Tensor<3>,
    bgs: &[[f32; 3]],
    device: &Device,
) -> Tensor<4> {
    let flat: Vec<f32> = bgs.iter().flatten().copied().collect();
    let bg = Tensor::<4>::from_data(TensorData::new(flat, [bgs.len(), 1, 1, 3]), device);
    let transmittance = (alpha.neg() + 1.0).unsqueeze_dim::<4>(3);
    rgb + transmittance * bg
}

/// Runs the coarse initialisation stage of `cfg` ([`coarse_config`]) and returns its splats
/// (SH degree 0) for the main stage to start from.
///
/// # Errors
/// As [`GenerateTrainer::new`] and [`GenerateTrainer::step`] for the stage's config.
fn coarse_stage(
    cfg: &GenerateConfig,
    model: &StableDiffusion,
    device: &Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<splat::SplatData, GenerateError> {
    let coarse = coarse_config(cfg, model.vae.downscale() as u32);
    super::config::validate(&coarse)?;
    on_event(Event::Message(format!(
        "coarse stage: sds, {} steps of {} × {}² from a {}-point sphere",
        coarse.steps, coarse.batch, coarse.resolution, coarse.init.count
    )));
    let mut trainer = GenerateTrainer::new(&coarse, model, device, None, "coarse", on_event)?;
    let report_every = (coarse.steps / 5).max(1);
    for step in 0..coarse.steps {
        trainer.step(step)?;
        if (step + 1) % report_every == 0 || step + 1 == coarse.steps {
            on_event(Event::Message(format!(
                "coarse stage: step {}/{}, {} splats",
                step + 1,
                coarse.steps,
                trainer.gaussians.len()
            )));
        }
    }
    trainer.gaussians.to_data().map_err(GenerateError::Device)
}
