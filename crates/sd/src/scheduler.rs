//! Diffusion schedulers for Stable Diffusion 2.1, following diffusers 0.42.1 arithmetic.
//!
//! - [`SchedulerConfig`]: a diffusers `scheduler_config.json` (defaults of `DDIMScheduler`).
//! - [`NoiseSchedule`]: β_t, ᾱ_t (host, f64 holding diffusers' float32 values), α_t = √ᾱ_t,
//!   σ_t = √(1−ᾱ_t), SNR, DDPM/DDIM variances, DDIM timestep lists; and on tensors
//!   ε ↔ x₀ ↔ v conversions, forward noising, DDIM steps and DDIM inversion.
//! - [`Ddim`] / [`DdimInverse`]: `DDIMScheduler` / `DDIMInverseScheduler` after `set_timesteps`.
//! - [`cfg`]: classifier-free guidance, form A of docs/methods.md §0.
//!
//! Conventions: integer timesteps t ∈ 0..T (T = 1000 for SD 2.1), x_t = α_t·x₀ + σ_t·ε,
//! v = α_t·ε − σ_t·x₀. Tensors are latents `[B, 4, h, w]` (any rank with the batch first
//! works) in f32 on any device, autodiff included; schedule values are computed on the host in
//! f64 and enter the graph as constants.
//!
//! ```no_run
//! use sd::scheduler::{Ddim, NoiseSchedule};
//! let sched = NoiseSchedule::from_file("sd21/base/scheduler/scheduler_config.json")?;
//! let ddim = Ddim::new(&sched, 50)?; // timesteps 981, 961, …, 1
//! # Ok::<(), sd::scheduler::SchedulerError>(())
//! ```

mod config;
mod ops;
mod schedule;

use burn::tensor::Tensor;

pub use config::{BetaSchedule, PredictionType, SchedulerConfig, SchedulerError, TimestepSpacing};
pub use ops::{Ddim, DdimInverse};
pub use schedule::NoiseSchedule;

/// Classifier-free guidance, form A (docs/methods.md §0):
/// ε̂ = ε̂_∅ + s·(ε̂_y − ε̂_∅), i.e. `uncond + scale·(cond − uncond)` (diffusers' pipelines:
/// `noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)`).
/// `scale` = 1 returns `cond`; form B with scale s is form A with s + 1. Same shapes in and out.
pub fn cfg<const D: usize>(uncond: Tensor<D>, cond: Tensor<D>, scale: f64) -> Tensor<D> {
    uncond.clone() + (cond - uncond) * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd21(pred: PredictionType) -> NoiseSchedule {
        NoiseSchedule::new(SchedulerConfig {
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            prediction_type: pred,
            set_alpha_to_one: false,
            steps_offset: 1,
            clip_sample: false,
            ..SchedulerConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn alphas_cumprod_monotone_and_consistent() {
        for cfg in [
            SchedulerConfig::default(),
            SchedulerConfig {
                beta_schedule: BetaSchedule::SquaredcosCapV2,
                ..SchedulerConfig::default()
            },
        ] {
            let s = NoiseSchedule::new(cfg).unwrap();
            let a = s.alphas_cumprod();
            assert_eq!(a.len(), 1000);
            assert!(a.windows(2).all(|w| w[1] < w[0]), "ᾱ not decreasing");
            assert!(a[0] < 1.0 && a[999] > 0.0);
            assert!((a[0] - (1.0 - s.betas()[0])).abs() < 1e-7);
        }
        let s = sd21(PredictionType::Epsilon);
        // SD 2.1 landmarks (diffusers float32 values, rounded).
        assert!((s.alpha_cumprod(0) - 0.99915).abs() < 1e-6);
        assert!((s.alpha_cumprod(999) - 0.0046600).abs() < 1e-6);
        assert_eq!(s.final_alpha_cumprod(), s.alpha_cumprod(0));
        for t in [0, 500, 999] {
            let (a, sg) = (s.sqrt_alpha_cumprod(t), s.sigma(t));
            assert!((a * a + sg * sg - 1.0).abs() < 1e-12);
            assert!((s.snr(t) - a * a / (sg * sg)).abs() < 1e-9 * s.snr(t));
        }
    }

    #[test]
    fn variances() {
        let s = sd21(PredictionType::Epsilon);
        // β̃_t ≤ β_t, ≈ β_t for large t; t = 0 clamps to 1e-20.
        assert_eq!(s.ddpm_posterior_variance(0), 1e-20);
        for t in [1, 10, 500, 999] {
            let v = s.ddpm_posterior_variance(t);
            assert!(v > 0.0 && v <= s.betas()[t] * (1.0 + 1e-4));
            assert!((s.ddim_variance(t, t as i64 - 1) - v).abs() < 1e-12);
        }
    }

    #[test]
    fn timesteps() {
        let s = sd21(PredictionType::Epsilon);
        let ts = s.ddim_timesteps(10).unwrap();
        assert_eq!(ts, vec![901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
        let inv = s.ddim_inverse_timesteps(10).unwrap();
        assert_eq!(inv, ts.iter().rev().copied().collect::<Vec<_>>());
        assert!(s.ddim_timesteps(0).is_err() && s.ddim_timesteps(1001).is_err());
        let mut c = s.config().clone();
        c.timestep_spacing = TimestepSpacing::Trailing;
        let t = NoiseSchedule::new(c.clone())
            .unwrap()
            .ddim_timesteps(4)
            .unwrap();
        assert_eq!(t, vec![999, 749, 499, 249]);
        c.timestep_spacing = TimestepSpacing::Linspace;
        let l = NoiseSchedule::new(c).unwrap();
        assert_eq!(l.ddim_timesteps(4).unwrap(), vec![999, 666, 333, 0]);
        assert!(l.ddim_inverse_timesteps(4).is_err());
    }

    /// Host transcription of the tensor formulas (same expressions) for roundtrips.
    #[test]
    fn conversions_roundtrip_on_host() {
        let s = sd21(PredictionType::VPrediction);
        for t in [0usize, 1, 250, 999] {
            let (a, sg) = (s.sqrt_alpha_cumprod(t), s.sigma(t));
            for (x0, eps) in [(0.7, -1.3), (-2.0, 0.25)] {
                let xt = a * x0 + sg * eps;
                let x0_from_eps = (xt - sg * eps) / a;
                let eps_from_x0 = (xt - a * x0) / sg;
                let v = a * eps - sg * x0;
                let eps_from_v = a * v + sg * xt;
                let x0_from_v = a * xt - sg * v;
                assert!((x0_from_eps - x0).abs() < 1e-9, "t {t}");
                assert!((eps_from_x0 - eps).abs() < 1e-9, "t {t}");
                assert!((eps_from_v - eps).abs() < 1e-12, "t {t}");
                assert!((x0_from_v - x0).abs() < 1e-12, "t {t}");
            }
        }
    }

    #[test]
    fn config_errors_name_field() {
        let e = SchedulerConfig::from_json_str(r#"{"beta_schedule": "cosine"}"#, "x.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.json") && e.contains("beta_schedule"), "{e}");
        let e = SchedulerConfig::from_json_str(r#"{"steps_offset": "1"}"#, "y.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("y.json") && e.contains("steps_offset"), "{e}");
        let e = SchedulerConfig::from_json_str(r#"{"rescale_betas_zero_snr": true}"#, "z.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rescale_betas_zero_snr"), "{e}");
        let c = SchedulerConfig::from_json_str(
            r#"{"_class_name": "PNDMScheduler", "trained_betas": null, "skip_prk_steps": true,
                "prediction_type": "v_prediction", "timestep_spacing": "trailing"}"#,
            "ok.json",
        )
        .unwrap();
        assert_eq!(c.prediction_type, PredictionType::VPrediction);
        assert_eq!(c.timestep_spacing, TimestepSpacing::Trailing);
        assert!(c.clip_sample && c.set_alpha_to_one);
        let e = SchedulerConfig::from_file("/nonexistent/scheduler_config.json").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/scheduler_config.json"));
    }
}
