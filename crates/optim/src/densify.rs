//! Densification strategies: when and where splats are added, moved and removed during
//! training.
//!
//! - [`Strategy::Default`]: adaptive density control of 3DGS (Kerbl et al. 2023, §5.2) as
//!   gsplat's `DefaultStrategy` sets it up: the screen-space mean gradient is accumulated per
//!   splat; every `every` steps between `start` and `stop`, splats whose average exceeds
//!   `grow_grad2d` are cloned (small ones) or split in two (large ones, samples drawn from the
//!   Gaussian, scales ÷ 1.6); splats with opacity below `prune_opacity` or (after the first
//!   opacity reset, or after `prune_scale3d_after`) larger than `prune_scale3d`·scene scale are
//!   removed; every `reset_every` steps opacities are clamped to 2·`prune_opacity`.
//! - [`Strategy::Mcmc`]: 3DGS as Markov Chain Monte Carlo (Kheradmand et al. 2024): dead splats
//!   (opacity ≤ `min_opacity`) are relocated onto live ones sampled by opacity, 5 % new splats
//!   are added per refinement up to `cap_max`, both with the opacity/scale correction of their
//!   Eq. 9, and position noise scaled by the covariance is injected every step; the training
//!   loss adds opacity and scale regularisers.
//!
//! Statistics (gradient norms, counts) live on the device; the per-splat decisions read three
//! floats per splat back every `every` steps and are made on the host, and the new rows are
//! uploaded. Optimizer moments follow every row operation: kept rows keep theirs, new rows
//! start at zero, relocated rows are zeroed, pruned rows are dropped ([`Gaussians`]).

use burn::tensor::{Distribution, Tensor, TensorData};
use rand::{
    Rng, SeedableRng, distr::Distribution as _, distr::weighted::WeightedIndex, rngs::StdRng,
};
use serde::{Deserialize, Serialize};

use crate::params::{Gaussians, LOG_SCALES, MEANS, OPACITY, QUATS, SH_DC, SH_REST, host, indices};

/// Which strategy, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "lowercase")]
pub enum Strategy {
    /// 3DGS adaptive density control.
    Default(DefaultStrategy),
    /// MCMC relocation with a splat cap.
    Mcmc(McmcStrategy),
}

impl Default for Strategy {
    fn default() -> Self {
        Self::Default(DefaultStrategy::default())
    }
}

/// Settings of the 3DGS strategy (gsplat `DefaultStrategy` defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultStrategy {
    /// First step that refines.
    pub start: u64,
    /// Refinement and opacity resets stop at this step; 0 = half the run's own length (gsplat:
    /// 15,000 of 30,000), see [`DefaultStrategy::stop_for`].
    pub stop: u64,
    /// Steps between refinements.
    pub every: u64,
    /// Steps between opacity resets (0 = never). A reset is skipped when the run would end
    /// within [`DefaultStrategy::recovery`] steps of it.
    pub reset_every: u64,
    /// Threshold on the average screen-space gradient norm (NDC-scaled, as gsplat).
    pub grow_grad2d: f64,
    /// Splats larger than this fraction of the scene scale are split, smaller ones cloned.
    pub grow_scale3d: f64,
    /// Opacity below which a splat is pruned.
    pub prune_opacity: f64,
    /// Splats larger than this fraction of the scene scale are pruned at refinements from
    /// [`DefaultStrategy::big_prune_after`] on.
    pub prune_scale3d: f64,
    /// Refinements at steps after this one also prune the splats larger than
    /// `prune_scale3d` (3DGS `densify_and_prune`'s `big_points_ws`); 0 = gsplat's and 3DGS's
    /// rule, after the first opacity reset (`step > reset_every`; never when resets are off).
    /// LODS (`lods_gs.py`) prunes them at every refinement after step 300 and never resets.
    pub prune_scale3d_after: u64,
    /// Hard cap on the splat count (growth stops there; 0 = none).
    pub max_splats: usize,
}

impl Default for DefaultStrategy {
    fn default() -> Self {
        Self {
            start: 500,
            stop: 0,
            every: 100,
            reset_every: 3_000,
            grow_grad2d: 2e-4,
            grow_scale3d: 0.01,
            prune_opacity: 0.005,
            prune_scale3d: 0.1,
            prune_scale3d_after: 0,
            max_splats: 0,
        }
    }
}

impl DefaultStrategy {
    /// The step (1-based, exclusive) at which refinement and resets stop in a run of `total`
    /// optimizer steps: `stop`, or `total / 2` when `stop` is 0.
    pub fn stop_for(&self, total: u64) -> u64 {
        if self.stop == 0 { total / 2 } else { self.stop }
    }

    /// Steps after an opacity reset during which the splats are still recovering their
    /// opacities: half a reset period, at least one refinement interval. No run ends, and `fit`
    /// evaluates nothing, inside this window (a reset whose window would reach past the run's
    /// end is skipped; an evaluation due inside it waits until the window has passed).
    pub fn recovery(&self) -> u64 {
        (self.reset_every / 2).max(self.every)
    }

    /// Whether a refinement at step `step` (1-based) also prunes big splats: after
    /// `prune_scale3d_after`, or after the first reset when that is 0.
    pub fn big_prune_after(&self, step: u64) -> bool {
        if self.prune_scale3d_after > 0 {
            step > self.prune_scale3d_after
        } else {
            self.reset_every > 0 && step > self.reset_every
        }
    }

    /// `(refine, reset)` after optimizer step `step` (1-based) of a run of `total` steps. A
    /// refinement needs a full `every` interval before the run ends (its clones and splits
    /// leave a transient that costs 4–5 dB of held-out PSNR right after it, docs/quality.md
    /// session 28), so a `stop` past the run's end never refines in its last interval. (gsplat's
    /// `simple_trainer` never refines on a run's last step either: with its 0-based step and
    /// `step % refine_every == 0`, the last refinement of a 3,000-step run is 99 steps before
    /// the end.)
    pub fn actions(&self, step: u64, total: u64) -> (bool, bool) {
        if step >= self.stop_for(total) {
            return (false, false);
        }
        let refine = step > self.start
            && step.is_multiple_of(self.every)
            && step + self.every.max(1) <= total;
        let reset = self.reset_every > 0
            && step.is_multiple_of(self.reset_every)
            && step + self.recovery() <= total;
        (refine, reset)
    }

    /// Whether step `step` of a run of `total` steps lies in the recovery window of a reset
    /// (the reset's own step included).
    pub fn recovering(&self, step: u64, total: u64) -> bool {
        if self.reset_every == 0 {
            return false;
        }
        let last = step / self.reset_every * self.reset_every;
        last > 0 && self.actions(last, total).1 && step < last + self.recovery()
    }
}

/// Settings of the MCMC strategy (gsplat `MCMCStrategy` defaults; regulariser weights from the
/// paper's released configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McmcStrategy {
    /// Maximum number of splats.
    pub cap_max: usize,
    /// First step that refines.
    pub start: u64,
    /// Refinement stops at this step.
    pub stop: u64,
    /// Steps between refinements.
    pub every: u64,
    /// Opacity at or below which a splat is dead and gets relocated.
    pub min_opacity: f64,
    /// Position noise scale (multiplies the current means learning rate).
    pub noise_lr: f64,
    /// Weight of the mean-opacity regulariser.
    pub opacity_reg: f64,
    /// Weight of the mean-scale regulariser.
    pub scale_reg: f64,
}

impl Default for McmcStrategy {
    fn default() -> Self {
        Self {
            cap_max: 1_000_000,
            start: 500,
            stop: 25_000,
            every: 100,
            min_opacity: 0.005,
            noise_lr: 5e5,
            opacity_reg: 0.01,
            scale_reg: 0.01,
        }
    }
}

/// What one refinement did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DensifyReport {
    /// Step.
    pub step: u64,
    /// Splats cloned.
    pub cloned: usize,
    /// Splats split (each replaced by two).
    pub split: usize,
    /// Splats pruned.
    pub pruned: usize,
    /// Dead splats relocated (MCMC).
    pub relocated: usize,
    /// Splats added (MCMC).
    pub added: usize,
    /// Whether opacities were reset.
    pub opacity_reset: bool,
    /// Splat count afterwards.
    pub splats: usize,
}

/// A strategy with its running statistics.
pub struct Densifier {
    strategy: Strategy,
    scene_scale: f64,
    /// Σ over observations of the scaled screen-space gradient norm, `[N]`.
    grad2d: Option<Tensor<1>>,
    /// Length of the run, optimizer steps (the default strategy's stop and reset rules).
    total_steps: u64,
    /// Number of observations in which the splat was visible, `[N]`.
    count: Option<Tensor<1>>,
    /// The run's seed; the random choices of the refinement after step k are drawn from a
    /// generator seeded by `(seed, k)`, so a resumed run makes the same choices as an
    /// uninterrupted one.
    seed: u64,
    rng: StdRng,
}

/// How the loss whose screen-space gradient [`Densifier::observe`] receives was reduced over
/// the batch's cameras.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over cameras (`fit`'s photometric loss; gsplat's convention).
    Mean,
    /// The sum over cameras (`generate`: `distill::inject` gives each camera its full `g`).
    Sum,
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Standard normal sample (Box–Muller).
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Rotation matrix (row-major) of a wxyz quaternion, normalised first (norm clamped to ≥ 1e-12,
/// as torch's `F.normalize` in gsplat's `quat_scale_to_covar_preci`).
pub(crate) fn rotation(q: &[f32]) -> [[f32; 3]; 3] {
    let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
        .sqrt()
        .max(1e-12);
    let (w, x, y, z) = (q[0] / n, q[1] / n, q[2] / n, q[3] / n);
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// Eq. 9 of Kheradmand et al. 2024 (gsplat `compute_relocation`): a splat of opacity `o` and
/// scale `s` that becomes `n` copies gets opacity 1 − (1 − o)^(1/n) and scale `s · o / D` with
/// D = Σ_{i=1}^{n} Σ_{k=0}^{i−1} C(i−1, k) (−1)^k ô^{k+1} / √(k+1), so that the copies
/// together render like the original. Returns (new opacity, scale factor).
pub fn relocation(o: f64, n: usize, min_opacity: f64) -> (f64, f64) {
    let n = n.max(1);
    let o_new = (1.0 - (1.0 - o).powf(1.0 / n as f64)).clamp(min_opacity, 1.0 - 1e-7);
    let mut denom = 0.0;
    for i in 1..=n {
        let mut binom = 1.0f64; // C(i−1, k)
        for k in 0..i {
            if k > 0 {
                binom *= (i - k) as f64 / k as f64;
            }
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            denom += binom * sign * o_new.powi(k as i32 + 1) / ((k + 1) as f64).sqrt();
        }
    }
    (o_new, o / denom)
}

impl Densifier {
    /// A strategy for a scene of the given scale (3DGS: 1.1 × the largest distance of a camera
    /// centre from their mean) in a run of `total_steps` optimizer steps.
    pub fn new(strategy: Strategy, scene_scale: f64, seed: u64, total_steps: u64) -> Self {
        Self {
            strategy,
            scene_scale,
            total_steps,
            grad2d: None,
            count: None,
            seed,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The accumulated screen-space gradient statistics `(Σ‖∇‖ [N], visible count [N])` since
    /// the last refinement, when any (for checkpoints).
    pub fn accumulators(&self) -> Option<(Tensor<1>, Tensor<1>)> {
        Some((self.grad2d.clone()?, self.count.clone()?))
    }

    /// Restore what [`Densifier::accumulators`] returned (`None` clears them).
    pub fn set_accumulators(&mut self, acc: Option<(Tensor<1>, Tensor<1>)>) {
        (self.grad2d, self.count) = match acc {
            Some((g, c)) => (Some(g), Some(c)),
            None => (None, None),
        };
    }

    /// The strategy.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// Whether the strategy wants the screen-space mean gradient of this step.
    pub fn wants_means2d_grad(&self, step: u64) -> bool {
        match &self.strategy {
            Strategy::Default(s) => step < s.stop_for(self.total_steps),
            Strategy::Mcmc(_) => false,
        }
    }

    /// Whether the splats are inside an opacity reset's recovery window after step `step`
    /// ([`DefaultStrategy::recovering`]; never for MCMC).
    pub fn recovering(&self, step: u64) -> bool {
        match &self.strategy {
            Strategy::Default(s) => s.recovering(step, self.total_steps),
            Strategy::Mcmc(_) => false,
        }
    }

    /// Extra loss terms of the strategy for `splats` (MCMC: λ_o·mean(opacity) +
    /// λ_s·mean(scale)); `None` for the default strategy.
    pub fn regulariser(&self, splats: &splat::Splats) -> Option<Tensor<1>> {
        match &self.strategy {
            Strategy::Mcmc(s) => {
                let o = burn::tensor::activation::sigmoid(splats.opacity_logits.clone()).mean();
                let sc = splats.log_scales.clone().exp().mean();
                Some(o * s.opacity_reg + sc * s.scale_reg)
            }
            Strategy::Default(_) => None,
        }
    }

    /// Accumulate the screen-space gradient of one step: `grad` is dL/d(means2d), `[C, N, 2]`
    /// in pixels, for images `width`×`height`, of a loss reduced over the C cameras as
    /// `reduction` says. Each component is scaled by half the image size (an NDC gradient, as
    /// 3DGS's rasterizer reports it) and, for a batch-mean loss, by C (gsplat's
    /// `DefaultStrategy._update_state`), so that every camera contributes the gradient of its
    /// own image's loss; a loss summed over the cameras (`generate`'s `distill::inject`,
    /// LucidDreamer's `SpecifyGradient`) already gives each camera that, and is not scaled by C
    /// (issue 26: the ×C made the threshold act C× looser). The norm is added for every
    /// (camera, splat) pair where the splat was visible; visibility is taken as a non-zero
    /// gradient.
    pub fn observe(&mut self, grad: Tensor<3>, width: u32, height: u32, reduction: Reduction) {
        let [c, n, _] = grad.dims();
        let per_camera = match reduction {
            Reduction::Mean => c as f64,
            Reduction::Sum => 1.0,
        };
        // Per-axis scale by scalar multiplies (no per-step upload of a scale tensor).
        let sx = 0.5 * width as f64 * per_camera;
        let sy = 0.5 * height as f64 * per_camera;
        let gx = grad.clone().narrow(2, 0, 1) * sx;
        let gy = grad.narrow(2, 1, 1) * sy;
        let norm = (gx.square() + gy.square()).sqrt().reshape([c, n]);
        let visible = norm.clone().greater_elem(0.0).float();
        let add_norm = norm.sum_dim(0).reshape([n]);
        let add_count = visible.sum_dim(0).reshape([n]);
        self.grad2d = Some(match self.grad2d.take() {
            Some(g) if g.dims()[0] == n => g + add_norm,
            _ => add_norm,
        });
        self.count = Some(match self.count.take() {
            Some(g) if g.dims()[0] == n => g + add_count,
            _ => add_count,
        });
    }

    /// Run the strategy after the optimizer step `step` (1-based). `lr_means` is the current
    /// means learning rate (MCMC noise). Returns a report when the splats were refined.
    ///
    /// # Errors
    /// A device read failure.
    pub fn after_step(
        &mut self,
        step: u64,
        g: &mut Gaussians,
        lr_means: f64,
    ) -> Result<Option<DensifyReport>, gpu::ReadError> {
        self.rng = StdRng::seed_from_u64(crate::rng::step_seed(self.seed, step, 0x5eed_de45));
        match self.strategy.clone() {
            Strategy::Default(s) => self.default_step(&s, step, g),
            Strategy::Mcmc(s) => {
                // As the default strategy, no relocation in the run's last interval.
                let report = if step >= s.start
                    && step < s.stop
                    && step.is_multiple_of(s.every)
                    && step + s.every.max(1) <= self.total_steps
                {
                    Some(self.mcmc_refine(&s, step, g)?)
                } else {
                    None
                };
                if step < s.stop || s.noise_lr > 0.0 {
                    self.inject_noise(&s, g, lr_means);
                }
                Ok(report)
            }
        }
    }

    fn default_step(
        &mut self,
        s: &DefaultStrategy,
        step: u64,
        g: &mut Gaussians,
    ) -> Result<Option<DensifyReport>, gpu::ReadError> {
        let (refine, reset) = s.actions(step, self.total_steps);
        if !refine && !reset {
            return Ok(None);
        }
        let mut report = DensifyReport {
            step,
            ..Default::default()
        };
        if refine {
            self.grow_and_prune(s, step, g, &mut report)?;
        }
        if reset {
            // Clamp opacities to 2·prune_opacity and forget their moments (gsplat
            // `reset_opa`).
            let cap = logit(2.0 * s.prune_opacity);
            let p = &mut g.groups[OPACITY];
            p.value = p.value.clone().clamp_max(cap);
            p.moments = crate::adam::Moments::zeros_like(&p.value);
            report.opacity_reset = true;
        }
        report.splats = g.len();
        Ok(Some(report))
    }

    fn grow_and_prune(
        &mut self,
        s: &DefaultStrategy,
        step: u64,
        g: &mut Gaussians,
        report: &mut DensifyReport,
    ) -> Result<(), gpu::ReadError> {
        let n = g.len();
        let device = g.device();
        let (grad2d, count) = match (self.grad2d.take(), self.count.take()) {
            (Some(a), Some(b)) if a.dims()[0] == n => {
                (host(&a.reshape([n, 1]))?, host(&b.reshape([n, 1]))?)
            }
            _ => (vec![0.0; n], vec![0.0; n]),
        };
        let log_scales = host(&g.groups[LOG_SCALES].value)?;
        let opacity = host(&g.groups[OPACITY].value)?;
        let max_scale = |i: usize| {
            log_scales[3 * i..3 * i + 3]
                .iter()
                .fold(f32::MIN, |m, &v| m.max(v))
                .exp() as f64
        };
        let grow_limit = if s.max_splats > 0 {
            s.max_splats.saturating_sub(n)
        } else {
            usize::MAX
        };
        let mut clone = vec![];
        let mut split = vec![];
        for i in 0..n {
            let avg = grad2d[i] as f64 / (count[i] as f64).max(1.0);
            if avg > s.grow_grad2d {
                if max_scale(i) <= s.grow_scale3d * self.scene_scale {
                    clone.push(i as u32);
                } else {
                    split.push(i as u32);
                }
            }
        }
        // Respect the cap: keep the first candidates (each split adds one, each clone one).
        clone.truncate(grow_limit);
        split.truncate(grow_limit.saturating_sub(clone.len()));

        // Prune (on the pre-growth rows; new rows inherit from their parents and are checked at
        // the next refinement).
        let prune_big = s.big_prune_after(step);
        let mut is_split = vec![false; n];
        for &i in &split {
            is_split[i as usize] = true;
        }
        let mut keep = Vec::with_capacity(n);
        for i in 0..n {
            let o = sigmoid(opacity[i]) as f64;
            let too_big = prune_big && max_scale(i) > s.prune_scale3d * self.scene_scale;
            if is_split[i] {
                continue; // replaced by its two samples
            }
            if o < s.prune_opacity || too_big {
                report.pruned += 1;
                continue;
            }
            keep.push(i as u32);
        }

        // New rows: clones copy their parent; splits draw two samples from the parent
        // Gaussian with scales / 1.6 (3DGS `densify_and_split`, N = 2).
        let mut new_rows: Vec<u32> = clone.clone();
        new_rows.extend(split.iter().copied());
        new_rows.extend(split.iter().copied());
        let parents = indices(&new_rows, &device);
        let mut new: [Tensor<2>; 6] =
            std::array::from_fn(|k| g.groups[k].value.clone().select(0, parents.clone()));
        if !split.is_empty() {
            let sel = indices(&split, &device);
            let means = host(&g.groups[MEANS].value.clone().select(0, sel.clone()))?;
            let quats = host(&g.groups[QUATS].value.clone().select(0, sel.clone()))?;
            let ls = host(&g.groups[LOG_SCALES].value.clone().select(0, sel))?;
            let m = split.len();
            let mut sm = vec![0.0f32; 2 * m * 3];
            let mut sl = vec![0.0f32; 2 * m * 3];
            for rep in 0..2 {
                for j in 0..m {
                    let r = rotation(&quats[4 * j..4 * j + 4]);
                    let z: [f32; 3] =
                        std::array::from_fn(|a| normal(&mut self.rng) * ls[3 * j + a].exp());
                    let o = (rep * m + j) * 3;
                    for a in 0..3 {
                        sm[o + a] =
                            means[3 * j + a] + r[a][0] * z[0] + r[a][1] * z[1] + r[a][2] * z[2];
                        sl[o + a] = ls[3 * j + a] - 1.6f32.ln();
                    }
                }
            }
            let c = clone.len();
            let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [2 * m, 3]), &device);
            new[MEANS] = new[MEANS].clone().slice_assign([c..c + 2 * m, 0..3], t(sm));
            new[LOG_SCALES] = new[LOG_SCALES]
                .clone()
                .slice_assign([c..c + 2 * m, 0..3], t(sl));
        }
        g.select(&indices(&keep, &device));
        if !new_rows.is_empty() {
            g.append(new);
        }
        report.cloned = clone.len();
        report.split = split.len();
        Ok(())
    }

    fn mcmc_refine(
        &mut self,
        s: &McmcStrategy,
        step: u64,
        g: &mut Gaussians,
    ) -> Result<DensifyReport, gpu::ReadError> {
        let mut report = DensifyReport {
            step,
            ..Default::default()
        };
        // Relocate dead splats onto live ones.
        let opacity: Vec<f32> = host(&g.groups[OPACITY].value)?
            .into_iter()
            .map(sigmoid)
            .collect();
        let dead: Vec<u32> = (0..opacity.len() as u32)
            .filter(|&i| opacity[i as usize] as f64 <= s.min_opacity)
            .collect();
        let alive: Vec<u32> = (0..opacity.len() as u32)
            .filter(|&i| opacity[i as usize] as f64 > s.min_opacity)
            .collect();
        if !dead.is_empty() && !alive.is_empty() {
            let weights: Vec<f32> = alive.iter().map(|&i| opacity[i as usize]).collect();
            let sampled: Vec<u32> = match WeightedIndex::new(&weights) {
                Ok(w) => (0..dead.len())
                    .map(|_| alive[w.sample(&mut self.rng)])
                    .collect(),
                Err(_) => return Ok(report),
            };
            self.relocate_onto(s, g, &opacity, &sampled, Some(&dead))?;
            report.relocated = dead.len();
        }
        // Add 5 % new splats (up to the cap), sampled by opacity.
        let n = g.len();
        let target = s.cap_max.min((1.05 * n as f64) as usize);
        if target > n {
            let opacity: Vec<f32> = host(&g.groups[OPACITY].value)?
                .into_iter()
                .map(sigmoid)
                .collect();
            if let Ok(w) = WeightedIndex::new(&opacity) {
                let sampled: Vec<u32> = (0..target - n)
                    .map(|_| w.sample(&mut self.rng) as u32)
                    .collect();
                self.relocate_onto(s, g, &opacity, &sampled, None)?;
                report.added = target - n;
            }
        }
        report.splats = g.len();
        Ok(report)
    }

    /// Give every distinct sampled splat its Eq. 9 opacity and scale for `1 + times sampled`
    /// copies, then copy the sampled rows into `dead` (relocation) or append them (growth).
    /// Moments of the sampled rows, the dead rows and the new rows are zeroed.
    fn relocate_onto(
        &mut self,
        s: &McmcStrategy,
        g: &mut Gaussians,
        opacity: &[f32],
        sampled: &[u32],
        dead: Option<&[u32]>,
    ) -> Result<(), gpu::ReadError> {
        let device = g.device();
        let mut times = std::collections::BTreeMap::<u32, usize>::new();
        for &i in sampled {
            *times.entry(i).or_default() += 1;
        }
        let distinct: Vec<u32> = times.keys().copied().collect();
        let rows = indices(&distinct, &device);
        let ls = host(&g.groups[LOG_SCALES].value.clone().select(0, rows.clone()))?;
        let mut new_logit = Vec::with_capacity(distinct.len());
        let mut new_ls = Vec::with_capacity(distinct.len() * 3);
        for (j, (&i, &t)) in times.iter().enumerate() {
            let (o, f) = relocation(opacity[i as usize] as f64, t + 1, s.min_opacity);
            new_logit.push(logit(o) as f32);
            for a in 0..3 {
                new_ls.push(ls[3 * j + a] + (f.max(1e-12)).ln() as f32);
            }
        }
        let d = distinct.len();
        g.assign_rows(
            OPACITY,
            &rows,
            Tensor::<2>::from_data(TensorData::new(new_logit, [d, 1]), &device),
        );
        g.assign_rows(
            LOG_SCALES,
            &rows,
            Tensor::<2>::from_data(TensorData::new(new_ls, [d, 3]), &device),
        );
        g.reset_moments_rows(&rows);
        let src = indices(sampled, &device);
        match dead {
            Some(dead) => {
                let dst = indices(dead, &device);
                for k in [MEANS, QUATS, LOG_SCALES, OPACITY, SH_DC, SH_REST] {
                    let v = g.groups[k].value.clone().select(0, src.clone());
                    g.assign_rows(k, &dst, v);
                }
                g.reset_moments_rows(&dst);
            }
            None => {
                let new: [Tensor<2>; 6] =
                    std::array::from_fn(|k| g.groups[k].value.clone().select(0, src.clone()));
                g.append(new);
            }
        }
        Ok(())
    }

    /// MCMC position noise (gsplat `inject_noise_to_position`): means += lr·noise_lr ·
    /// σ(100(0.005 − o))·Σ·ε with ε ~ N(0, I) and Σ = R S² Rᵀ the splat covariance, so only
    /// near-transparent splats move noticeably. One fused kernel
    /// ([`crate::mcmc_noise::inject_position_noise`]).
    fn inject_noise(&mut self, s: &McmcStrategy, g: &mut Gaussians, lr_means: f64) {
        let n = g.len();
        if n == 0 || s.noise_lr <= 0.0 {
            return;
        }
        let eps = Tensor::<2>::random([n, 3], Distribution::Normal(0.0, 1.0), &g.device());
        let means = crate::mcmc_noise::inject_position_noise(
            g.groups[MEANS].value.clone(),
            g.groups[QUATS].value.clone(),
            g.groups[LOG_SCALES].value.clone(),
            g.groups[OPACITY].value.clone(),
            eps,
            lr_means * s.noise_lr,
        );
        g.groups[MEANS].value = means;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocation_one_copy_is_identity() {
        let (o, f) = relocation(0.3, 1, 0.005);
        assert!((o - 0.3).abs() < 1e-9);
        assert!((f - 1.0).abs() < 1e-9, "{f}");
    }

    #[test]
    fn relocation_preserves_total_transmittance() {
        // n copies of opacity o' stacked let through (1 − o')ⁿ = 1 − o.
        for &(o, n) in &[(0.5, 2), (0.9, 3), (0.2, 7)] {
            let (o2, f) = relocation(o, n, 0.0);
            assert!(((1.0 - o2).powi(n as i32) - (1.0 - o)).abs() < 1e-9);
            assert!(f > 0.0 && f.is_finite());
        }
    }

    /// gsplat's rule that no run ends inside an opacity reset's recovery (issue 26: `fit
    /// --steps 3000` with `reset_every = 3000` exported the washed-out model reset at step 3000).
    #[test]
    fn resets_never_reach_the_end_of_a_run_and_stop_defaults_to_half() {
        let fit_toml = DefaultStrategy {
            stop: 15_000,
            ..Default::default()
        };
        let resets = |s: &DefaultStrategy, total: u64| -> Vec<u64> {
            (1..=total).filter(|&t| s.actions(t, total).1).collect()
        };
        assert_eq!(resets(&fit_toml, 3_000), Vec::<u64>::new());
        assert_eq!(resets(&fit_toml, 7_000), vec![3_000]);
        assert_eq!(resets(&fit_toml, 30_000), vec![3_000, 6_000, 9_000, 12_000]);
        // stop = 0: refinement and resets over the first half of the run.
        let auto = DefaultStrategy::default();
        assert_eq!(auto.stop_for(30_000), 15_000);
        assert_eq!(resets(&auto, 30_000), vec![3_000, 6_000, 9_000, 12_000]);
        assert!(auto.actions(14_900, 30_000).0 && !auto.actions(15_000, 30_000).0);
        assert_eq!(resets(&auto, 4_000), Vec::<u64>::new());
        // Recovery: the reset's own step and the next `recovery()` − 1 steps.
        assert_eq!(fit_toml.recovery(), 1_500);
        let rec: Vec<u64> = (1..=7_000)
            .filter(|&t| fit_toml.recovering(t, 7_000))
            .collect();
        assert_eq!(
            (rec[0], *rec.last().unwrap(), rec.len()),
            (3_000, 4_499, 1_500)
        );
        for total in [1_000, 3_000, 4_499, 4_500, 7_000, 30_000] {
            assert!(
                !fit_toml.recovering(total, total),
                "run of {total} ends recovering"
            );
        }
        let never = DefaultStrategy {
            reset_every: 0,
            ..Default::default()
        };
        assert!(resets(&never, 30_000).is_empty() && !never.recovering(3_000, 30_000));
        // A stop past the end: the last refinement leaves one interval to recover.
        let refines = |s: &DefaultStrategy, total: u64| -> Vec<u64> {
            (1..=total).filter(|&t| s.actions(t, total).0).collect()
        };
        let r = refines(&fit_toml, 3_000);
        assert_eq!((r[0], *r.last().unwrap()), (600, 2_900));
        assert!(!fit_toml.actions(3_000, 3_000).0);
        assert_eq!(*refines(&fit_toml, 3_050).last().unwrap(), 2_900);
        assert_eq!(*refines(&fit_toml, 3_100).last().unwrap(), 3_000);
    }

    #[test]
    fn rotation_of_identity_and_z90() {
        let r = rotation(&[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(r, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let r = rotation(&[h, 0.0, 0.0, h]);
        // +90° about z maps x to y.
        assert!((r[1][0] - 1.0).abs() < 1e-6 && r[0][0].abs() < 1e-6);
    }
}
