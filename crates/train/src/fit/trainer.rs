//! The `fit` loop as a trainer: [`FitTrainer`] owns one run's optimisation state (the
//! training photos on the device, splats and Adam moments, densifier, bad-step guard, the view
//! order); [`FitTrainer::step`] is one optimisation step — views → targets → `splat::render` →
//! L1/SSIM loss → backward → guarded Adam — and [`FitTrainer::refine`] the densification after
//! it; [`super::fit`] is the driver around them (evaluation, logging, events, checkpoints,
//! outputs), which evaluates between the two (brush's `step`/`refine`; gsplat never evaluates
//! right after a refinement either).

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use datasets::init::{InitConfig, InitKind, from_points, random_points};
use datasets::{Dataset, View};
use optim::adam::exp_decay;
use optim::densify::{Densifier, DensifyReport};
use optim::guard::{StepGuard, fault_nan, non_finite};
use optim::loss::photometric;
use optim::params::{Gaussians, host};
use optim::rng::step_seed;
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use splat::{Camera, RasterizeMode, RenderOptions, render};

use super::config::{FitConfig, FitError, config_err};
use splat::framing::Framing;

/// The device copy of one view's photo, `[H, W, 4]` straight RGBA in [0, 1].
pub(super) struct Photo {
    rgba: Tensor<3>,
    pub(super) camera: Camera,
    /// Whether alpha is coverage to composite over the background (NeRF-synthetic); photos
    /// are opaque (their alpha only marks the undistortion border, whose colour is
    /// edge-clamped, so it is ignored).
    composite: bool,
}

pub(super) fn upload(view: &View, composite: bool, device: &Device) -> Photo {
    let (w, h) = view.image.dimensions();
    let v: Vec<f32> = view
        .image
        .as_raw()
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    Photo {
        rgba: Tensor::from_data(TensorData::new(v, [h as usize, w as usize, 4]), device),
        camera: view.camera,
        composite,
    }
}

impl Photo {
    /// RGB composited over `bg`, `[H, W, 3]`.
    pub(super) fn target(&self, bg: [f32; 3]) -> Tensor<3> {
        let [h, w, _] = self.rgba.dims();
        let rgb = self.rgba.clone().slice([0..h, 0..w, 0..3]);
        if !self.composite {
            return rgb;
        }
        let a = self.rgba.clone().slice([0..h, 0..w, 3..4]);
        let bg = Tensor::<3>::from_data(TensorData::new(bg.to_vec(), [1, 1, 3]), &rgb.device());
        rgb * a.clone() + bg * (a.neg() + 1.0)
    }
}

/// Stage timer for `SPLATDREAM_PROFILE=1`: waits for the device after a stage (by reading one
/// value of a tensor the stage produced) and prints the stage's wall time to stderr.
struct StageTimer {
    on: bool,
    last: Instant,
}

impl StageTimer {
    fn new() -> Self {
        Self {
            on: std::env::var("SPLATDREAM_PROFILE").is_ok_and(|v| v == "1"),
            last: Instant::now(),
        }
    }

    fn stage<const D: usize>(&mut self, name: &str, probe: &Tensor<D>) {
        if !self.on {
            return;
        }
        let flat = probe.clone().inner().reshape([-1]).slice(0..1);
        let _ = host(&flat);
        let now = Instant::now();
        eprintln!(
            "[profile] fit {name:<14} {:9.3} ms",
            (now - self.last).as_secs_f64() * 1e3
        );
        self.last = now;
    }
}

/// The initial splats for `dataset` under `cfg` (SH degree 0 unless read from a PLY).
///
/// # Errors
/// [`FitError::Config`] when `kind = "points"` and the dataset has none, PLY errors.
pub fn initial_splats(
    dataset: &Dataset,
    cfg: &InitConfig,
    seed: u64,
) -> Result<splat::SplatData, FitError> {
    let cams: Vec<Camera> = dataset.train.iter().map(|v| v.camera).collect();
    let random = || -> Result<splat::SplatData, FitError> {
        let f = Framing::of(&cams).ok_or_else(|| {
            config_err(
                "data.path",
                format!("{}: no training views", dataset.root.display()),
            )
        })?;
        let (pos, col) = random_points(
            cfg.random_points,
            f.centre,
            cfg.random_extent * f.radius,
            seed,
        );
        Ok(from_points(&pos, &col, cfg.opacity, cfg.scale_factor))
    };
    Ok(match cfg.kind {
        InitKind::Ply => {
            let path = cfg
                .ply
                .as_ref()
                .ok_or_else(|| config_err("init.ply", "missing"))?;
            splat::formats::read_scene(path)?
        }
        InitKind::Points => {
            let pc = dataset.points.as_ref().ok_or_else(|| {
                config_err(
                    "init.kind",
                    format!("\"points\": {} has no SfM points", dataset.root.display()),
                )
            })?;
            from_points(&pc.positions, &pc.colors, cfg.opacity, cfg.scale_factor)
        }
        InitKind::Auto => match &dataset.points {
            Some(pc) if !pc.positions.is_empty() => {
                from_points(&pc.positions, &pc.colors, cfg.opacity, cfg.scale_factor)
            }
            _ => random()?,
        },
        InitKind::Random => random()?,
    })
}

/// The views still to visit in the current epoch, and the epoch. Each epoch is a fresh
/// permutation drawn from `(seed, epoch)`, so a resumed run visits the same views.
pub(super) struct ViewOrder {
    pub(super) epoch: u64,
    pub(super) left: Vec<usize>,
}

impl ViewOrder {
    fn next(&mut self, n: usize, seed: u64) -> usize {
        if self.left.is_empty() {
            self.epoch += 1;
            self.left = (0..n).collect();
            self.left
                .shuffle(&mut StdRng::seed_from_u64(step_seed(seed, self.epoch, 11)));
        }
        self.left.pop().unwrap_or(0)
    }
}

/// What one [`FitTrainer::step`] leaves on the device for the driver: the loss and its parts
/// (plain tensors, `[1]`; read back only on logged steps) and the SH degree it trained.
pub struct FitStep {
    /// (1 − λ)·L1 + λ·(1 − SSIM) (+ the strategy's regulariser), `[1]`.
    pub loss: Tensor<1>,
    /// L1, `[1]`.
    pub l1: Tensor<1>,
    /// SSIM, `[1]`.
    pub ssim: Tensor<1>,
    /// The SH degree rendered this step (grows every `train.sh_degree_interval` steps).
    pub sh_degree: u32,
}

/// One `fit` run's optimisation state.
pub struct FitTrainer<'a> {
    cfg: &'a FitConfig,
    photos: Vec<Photo>,
    mode: RasterizeMode,
    scene_scale: f32,
    /// The splats and their Adam moments.
    pub gaussians: Gaussians,
    /// The densification strategy and its statistics.
    pub densifier: Densifier,
    /// The bad-step guard (skipped steps, divergence).
    pub guard: StepGuard,
    pub(super) order: ViewOrder,
}

impl<'a> FitTrainer<'a> {
    /// A trainer on `dataset`'s training views (uploaded to `device`) from `gaussians`,
    /// `densifier`, `guard` and `order` (fresh, or restored from a checkpoint by the driver).
    pub(super) fn new(
        cfg: &'a FitConfig,
        dataset: &Dataset,
        device: &Device,
        gaussians: Gaussians,
        densifier: Densifier,
        guard: StepGuard,
        order: ViewOrder,
    ) -> Self {
        let composite = dataset.kind == datasets::DatasetKind::NerfSynthetic;
        Self {
            cfg,
            photos: dataset
                .train
                .iter()
                .map(|v| upload(v, composite, device))
                .collect(),
            mode: raster_mode(cfg),
            scene_scale: dataset.scene_extent().max(1e-6),
            gaussians,
            densifier,
            guard,
            order,
        }
    }

    /// Step `step` (1-based; every random draw of it derives from (seed, step), so a resumed
    /// run repeats it). A step whose loss or gradients are not finite leaves the parameters
    /// and moments unchanged and is counted by the guard ([`optim::guard`]).
    ///
    /// # Errors
    /// [`FitError`] when rendering fails or the densifier cannot read its statistics.
    pub fn step(&mut self, step: u64) -> Result<FitStep, FitError> {
        let cfg = self.cfg;
        let seed = cfg.train.seed;
        let photos = &self.photos;
        let mut timer = StageTimer::new();
        let mut rng = StdRng::seed_from_u64(step_seed(seed, step, 12));
        // Views of this step (a fresh permutation every epoch).
        let mut batch = Vec::with_capacity(cfg.train.batch);
        while batch.len() < cfg.train.batch.min(photos.len()) {
            batch.push(self.order.next(photos.len(), seed));
        }
        let size = (
            photos[batch[0]].camera.width,
            photos[batch[0]].camera.height,
        );
        batch.retain(|&i| (photos[i].camera.width, photos[i].camera.height) == size);
        let bg = cfg.data.background.train(&mut rng);
        let target = Tensor::stack(batch.iter().map(|&i| photos[i].target(bg)).collect(), 0);
        let cameras: Vec<Camera> = batch.iter().map(|&i| photos[i].camera).collect();
        let sh_degree = (step.saturating_sub(1) / cfg.train.sh_degree_interval.max(1))
            .min(cfg.train.sh_degree as u64) as u32;
        let want_means2d = self.densifier.wants_means2d_grad(step);
        timer.stage("targets", &target);
        let leaves = self.gaussians.leaves();
        let out = render(
            &leaves.splats,
            &cameras,
            &RenderOptions {
                background: bg,
                sh_degree: Some(sh_degree),
                mode: self.mode,
                means2d_grad: want_means2d,
                ..Default::default()
            },
        )?;
        timer.stage("render", &out.rgb);
        let [loss, l1, ssim_v] = photometric(out.rgb.clone(), target, cfg.train.ssim_lambda);
        let mut loss = match self.densifier.regulariser(&leaves.splats) {
            Some(reg) => loss + reg,
            None => loss,
        };
        if fault_nan(step) {
            loss = loss * f32::NAN;
        }
        timer.stage("loss", &loss);
        let grads = loss.backward();
        let g: [Option<Tensor<2>>; 6] = std::array::from_fn(|k| leaves.leaves[k].grad(&grads));
        let mut counts = vec![non_finite(&loss.clone().inner())];
        counts.extend(g.iter().flatten().map(non_finite));
        let bad = self.guard.check(counts);
        if want_means2d && let Some(gm) = out.means2d.grad(&grads) {
            // A skipped step adds nothing to the densification statistics.
            self.densifier.observe(
                optim::guard::keep_unless_bad(gm.clone(), gm.zeros_like(), &bad),
                size.0,
                size.1,
                optim::densify::Reduction::Mean,
            );
        }
        if let Some(g0) = &g[0] {
            timer.stage("backward", g0);
        }
        let lr_means = self.lr_means(step);
        let lrs = [
            lr_means,
            cfg.lr.quats,
            cfg.lr.log_scales,
            cfg.lr.opacity_logits,
            cfg.lr.sh_dc,
            cfg.lr.sh_rest,
        ];
        self.gaussians
            .adam_step_guarded(&cfg.adam, step, &g, &lrs, &bad);
        timer.stage("adam", &self.gaussians.groups[5].value);
        Ok(FitStep {
            loss: loss.inner(),
            l1: l1.inner(),
            ssim: ssim_v.inner(),
            sh_degree,
        })
    }

    /// The means' learning rate of optimizer step `step` (1-based): gsplat's exponential decay
    /// from `lr.means` to `lr.means_final`, both × the scene scale, over the run.
    fn lr_means(&self, step: u64) -> f64 {
        let cfg = self.cfg;
        exp_decay(
            cfg.lr.means * self.scene_scale as f64,
            cfg.lr.means_final * self.scene_scale as f64,
            step - 1,
            cfg.train.steps,
        )
    }

    /// The densification after optimizer step `step` (1-based): the strategy's clone, split,
    /// prune and opacity reset (or MCMC's relocation and noise), with the means' learning rate
    /// of that step. Returns the strategy's report on steps where it refined.
    ///
    /// A refinement leaves the model in a transient that Adam takes tens of steps to undo
    /// (cloned splats double their opacity in place, split ones are new samples): on
    /// `assets/spot-cow` an evaluation right after one read 4–5 dB below the evaluations 25
    /// steps before and after it (docs/quality.md, session 28), so the driver evaluates and
    /// writes snapshots before calling this.
    ///
    /// # Errors
    /// [`FitError::Device`] when the densifier cannot read its statistics back.
    pub fn refine(&mut self, step: u64) -> Result<Option<DensifyReport>, FitError> {
        let lr_means = self.lr_means(step);
        self.densifier
            .after_step(step, &mut self.gaussians, lr_means)
            .map_err(FitError::Device)
    }
}

/// The rasterization mode `cfg` asks for.
pub(super) fn raster_mode(cfg: &FitConfig) -> RasterizeMode {
    if cfg.train.antialiased {
        RasterizeMode::Antialiased
    } else {
        RasterizeMode::Classic
    }
}
