//! Timestep samplers (docs/methods.md §6.1 item 3).

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How t is drawn each step (one t per sample of the batch).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TimestepSchedule {
    /// t ~ U{t_min, …, t_max}.
    Uniform {
        /// Lowest t (inclusive).
        t_min: usize,
        /// Highest t (inclusive).
        t_max: usize,
    },
    /// LucidDreamer's warm-up anneal (docs/methods.md §5.3, [EXT]): t ~ U{t_min, …,
    /// t_end + ⌊(t_start − t_end)·r_k⌋} with r_k = 1 − min(k / anneal_steps, 1), so the upper
    /// bound shrinks linearly from `t_start` to `t_end` over `anneal_steps` steps.
    Annealed {
        /// Lowest t (20 in LucidDreamer).
        t_min: usize,
        /// Upper bound at step 0 (980).
        t_start: usize,
        /// Upper bound after the anneal (500).
        t_end: usize,
        /// Steps over which the bound shrinks (1500).
        anneal_steps: usize,
    },
    /// SDI's deterministic linear anneal (docs/methods.md §2.3, threestudio `t_anneal`): every
    /// sample of step k gets `t_k = round(t_min + (t_max − t_min)(1 − min(k/steps, 1)))`.
    Linear {
        /// t after `steps` steps (SDI: 250 in threestudio's config, 200 in its README).
        t_min: usize,
        /// t at step 0 (980).
        t_max: usize,
        /// Length of the anneal (SDI: 10,000).
        steps: usize,
    },
    /// A step function on the upper bound (threestudio's `[switch, 0.98, 0.5, switch + 1]`,
    /// SDS-Bridge and LODS; methods.md §1.3, §4.3): t ~ U{t_min, …, t_max} before step
    /// `switch_step`, U{t_min, …, t_max_after} from it on.
    Stepped {
        /// Lowest t (20).
        t_min: usize,
        /// Upper bound before the switch (980).
        t_max: usize,
        /// First step with the lower bound.
        switch_step: usize,
        /// Upper bound from `switch_step` on.
        t_max_after: usize,
    },
}

impl Default for TimestepSchedule {
    /// LucidDreamer's anneal 980 → 500 over 1,500 steps, t ≥ 20 (the code DreamMapping builds on;
    /// no method's default any more — each method's config sets its paper's schedule).
    fn default() -> Self {
        Self::Annealed {
            t_min: 20,
            t_start: 980,
            t_end: 500,
            anneal_steps: 1500,
        }
    }
}

impl TimestepSchedule {
    /// The inclusive range `[lo, hi]` at `step`, clipped to `0..num_train_timesteps`.
    pub fn range(&self, step: usize, num_train_timesteps: usize) -> (usize, usize) {
        let top = num_train_timesteps.saturating_sub(1);
        let (lo, hi) = match *self {
            Self::Uniform { t_min, t_max } => (t_min, t_max),
            Self::Annealed {
                t_min,
                t_start,
                t_end,
                anneal_steps,
            } => {
                let r = 1.0 - (step as f64 / anneal_steps.max(1) as f64).min(1.0);
                let span = t_start.saturating_sub(t_end) as f64;
                (t_min, t_end + (span * r).floor() as usize)
            }
            Self::Linear {
                t_min,
                t_max,
                steps,
            } => {
                let r = 1.0 - (step as f64 / steps.max(1) as f64).min(1.0);
                let t = (t_min as f64 + (t_max as f64 - t_min as f64) * r).round() as usize;
                (t, t)
            }
            Self::Stepped {
                t_min,
                t_max,
                switch_step,
                t_max_after,
            } => (
                t_min,
                if step < switch_step {
                    t_max
                } else {
                    t_max_after
                },
            ),
        };
        let hi = hi.min(top);
        (lo.min(hi), hi)
    }

    /// Draw `batch` timesteps for `step`.
    pub fn sample(
        &self,
        step: usize,
        batch: usize,
        num_train_timesteps: usize,
        rng: &mut impl Rng,
    ) -> Vec<usize> {
        let (lo, hi) = self.range(step, num_train_timesteps);
        (0..batch).map(|_| rng.random_range(lo..=hi)).collect()
    }

    /// t ~ U{20, …, 980}: DreamFusion's U(0.02, 0.98) on SD's 1,000-step grid (threestudio's
    /// `min_step_percent` 0.02 / `max_step_percent` 0.98). The default
    /// of SDS and LMC-SDS.
    pub const fn dreamfusion() -> Self {
        Self::Uniform {
            t_min: 20,
            t_max: 980,
        }
    }

    /// threestudio's step function `[switch_step − 1, 0.98, after/1000, switch_step]` on the
    /// upper bound, t ≥ 20 (VSD: switch 5,001 → 500; SDS-Bridge: the same; LODS: 501 → 550).
    pub const fn stepped(switch_step: usize, t_max_after: usize) -> Self {
        Self::Stepped {
            t_min: 20,
            t_max: 980,
            switch_step,
            t_max_after,
        }
    }

    /// The same schedule for a run `r` times as long: every step count (`anneal_steps`,
    /// `steps`, `switch_step`) multiplied by `r` and rounded (an anneal's length stays ≥ 1);
    /// the t values are kept. `compare --rescale` uses it.
    pub fn rescaled(&self, r: f64) -> Self {
        let at = |k: usize| (k as f64 * r).round() as usize;
        match self.clone() {
            Self::Annealed {
                t_min,
                t_start,
                t_end,
                anneal_steps,
            } => Self::Annealed {
                t_min,
                t_start,
                t_end,
                anneal_steps: at(anneal_steps).max(1),
            },
            Self::Linear {
                t_min,
                t_max,
                steps,
            } => Self::Linear {
                t_min,
                t_max,
                steps: at(steps).max(1),
            },
            Self::Stepped {
                t_min,
                t_max,
                switch_step,
                t_max_after,
            } => Self::Stepped {
                t_min,
                t_max,
                switch_step: at(switch_step),
                t_max_after,
            },
            u @ Self::Uniform { .. } => u,
        }
    }

    /// Check the ranges are ordered; `name` is the setting's path in the config file
    /// (`timesteps`, `guidance.vdm.timesteps`, …).
    ///
    /// # Errors
    /// [`crate::DistillError::Setting`] `name` with the bounds at fault.
    pub fn validate(&self, name: &str) -> Result<(), crate::DistillError> {
        let bad = |detail: String| crate::DistillError::Setting {
            name: name.into(),
            detail,
        };
        match *self {
            Self::Uniform { t_min, t_max } if t_min > t_max => {
                Err(bad(format!("t_min {t_min} > t_max {t_max}")))
            }
            Self::Annealed {
                t_min,
                t_start,
                t_end,
                ..
            } if t_end > t_start || t_min > t_end => Err(bad(format!(
                "need t_min ≤ t_end ≤ t_start, got {t_min}, {t_end}, {t_start}"
            ))),
            Self::Linear { t_min, t_max, .. } if t_min > t_max => {
                Err(bad(format!("t_min {t_min} > t_max {t_max}")))
            }
            Self::Stepped {
                t_min,
                t_max,
                t_max_after,
                ..
            } if t_min > t_max || t_min > t_max_after => Err(bad(format!(
                "need t_min ≤ t_max and t_min ≤ t_max_after, got {t_min}, {t_max}, {t_max_after}"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn anneal_bounds_follow_lucid_dreamer() {
        let s = TimestepSchedule::default();
        assert_eq!(s.range(0, 1000), (20, 980));
        assert_eq!(s.range(750, 1000), (20, 740));
        assert_eq!(s.range(1500, 1000), (20, 500));
        assert_eq!(s.range(10_000, 1000), (20, 500));
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let t = s.sample(1500, 1000, 1000, &mut rng);
        assert!(t.iter().all(|&t| (20..=500).contains(&t)));
        assert!(t.iter().any(|&t| t > 450) && t.iter().any(|&t| t < 70));
    }

    #[test]
    fn sdi_linear_anneal_is_deterministic() {
        // methods.md §2.5 step 1: t = round(1000·[0.25 + 0.73·(1 − k/10⁴)]).
        let s = TimestepSchedule::Linear {
            t_min: 250,
            t_max: 980,
            steps: 10_000,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert_eq!(s.sample(0, 3, 1000, &mut rng), vec![980; 3]);
        assert_eq!(s.range(5_000, 1000), (615, 615));
        assert_eq!(s.range(2_500, 1000), (798, 798)); // 250 + 730·0.75 = 797.5 → 798
        assert_eq!(s.range(20_000, 1000), (250, 250));
    }

    #[test]
    fn stepped_bound_switches_at_the_step() {
        let s = TimestepSchedule::Stepped {
            t_min: 20,
            t_max: 980,
            switch_step: 501,
            t_max_after: 550,
        };
        assert_eq!(s.range(500, 1000), (20, 980));
        assert_eq!(s.range(501, 1000), (20, 550));
        assert!(s.validate("timesteps").is_ok());
    }

    /// Rescaling multiplies step counts only; a uniform range has none.
    #[test]
    fn rescaled_scales_step_counts_and_keeps_t_values() {
        let r = 150.0 / 5000.0;
        assert_eq!(
            TimestepSchedule::stepped(5001, 500).rescaled(r),
            TimestepSchedule::stepped(150, 500)
        );
        assert_eq!(
            TimestepSchedule::default().rescaled(r),
            TimestepSchedule::Annealed {
                t_min: 20,
                t_start: 980,
                t_end: 500,
                anneal_steps: 45
            }
        );
        let linear = TimestepSchedule::Linear {
            t_min: 250,
            t_max: 980,
            steps: 10,
        };
        assert_eq!(
            linear.rescaled(0.01),
            TimestepSchedule::Linear {
                t_min: 250,
                t_max: 980,
                steps: 1
            }
        );
        assert_eq!(
            TimestepSchedule::dreamfusion().rescaled(r),
            TimestepSchedule::dreamfusion()
        );
        let bad = TimestepSchedule::Uniform {
            t_min: 900,
            t_max: 100,
        };
        let e = bad.validate("guidance.sds.timesteps").unwrap_err();
        assert!(e.to_string().contains("guidance.sds.timesteps"), "{e}");
    }
}
