//! A run's schedule rescaled to another length: what a shipped 5,000-step recipe becomes in a
//! 150-step run on the toy-world prior (`compare --rescale`, issue 24 item 6).

use super::config::GenerateConfig;
use optim::densify::Strategy;

/// `cfg` with `steps` steps and every step count of its schedule multiplied by
/// `steps / cfg.steps` (rounded; intervals stay ≥ 1; a 0 meaning "off" or "half the run"
/// stays 0): the timestep anneal (`anneal_steps`, `steps`, `switch_step`) of every method's
/// schedule and of the run-level one, the means' learning-rate decay, densification (`start`,
/// `stop`, `every`, `reset_every`, `prune_scale3d_after`), the camera relaxation (`start`, `every`), SDS-Bridge's
/// `stage_two_start` and the checkpoint interval. Timestep *values* (t ranges, DCA's cutoff),
/// learning rates and thresholds are not step counts and are kept.
pub fn rescale_steps(cfg: &GenerateConfig, steps: u64) -> GenerateConfig {
    let mut out = cfg.clone();
    out.steps = steps;
    if cfg.steps == 0 || cfg.steps == steps {
        return out;
    }
    let r = steps as f64 / cfg.steps as f64;
    let at = |k: u64| (k as f64 * r).round() as u64;
    let every = |k: u64| if k == 0 { 0 } else { at(k).max(1) };
    let at_us = |k: usize| (k as f64 * r).round() as usize;
    out.timesteps = cfg.timesteps.as_ref().map(|t| t.rescaled(r));
    for schedule in out.guidance.all_timesteps_mut() {
        *schedule = schedule.rescaled(r);
    }
    out.lr.means_decay_steps = every(cfg.lr.means_decay_steps);
    match &mut out.densify {
        Strategy::Default(d) => {
            d.start = at(d.start);
            d.stop = at(d.stop);
            d.every = every(d.every);
            d.reset_every = every(d.reset_every);
            d.prune_scale3d_after = at(d.prune_scale3d_after);
        }
        Strategy::Mcmc(m) => {
            m.start = at(m.start);
            m.stop = at(m.stop);
            m.every = every(m.every);
        }
    }
    out.guidance.bridge.stage_two_start = at_us(cfg.guidance.bridge.stage_two_start);
    out.cameras.relax.start = at(cfg.cameras.relax.start);
    out.cameras.relax.every = every(cfg.cameras.relax.every);
    out.output.checkpoint_every = every(cfg.output.checkpoint_every);
    out.output.ply_every = every(cfg.output.ply_every);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill::timesteps::TimestepSchedule;
    use optim::densify::DefaultStrategy;

    /// The 5,000-step DreamMapping schedule at 150 steps: LucidDreamer's anneal over 1,500
    /// steps becomes 45, densification every 100 from 500 to 2,500 (say) becomes every 3 from
    /// 15 to 75; values that are not step counts are untouched.
    #[test]
    fn step_counts_scale_and_the_rest_stays() {
        let cfg = GenerateConfig {
            steps: 5000,
            timesteps: Some(TimestepSchedule::Annealed {
                t_min: 20,
                t_start: 980,
                t_end: 500,
                anneal_steps: 1500,
            }),
            densify: Strategy::Default(DefaultStrategy {
                start: 500,
                stop: 2500,
                every: 100,
                reset_every: 0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut cfg = cfg;
        cfg.lr.means_decay_steps = 5000;
        cfg.guidance.bridge.stage_two_start = 4000;
        cfg.cameras.relax.every = 500;
        cfg.cameras.relax.start = 500;
        let r = rescale_steps(&cfg, 150);
        assert_eq!(r.steps, 150);
        assert_eq!(
            r.timesteps,
            Some(TimestepSchedule::Annealed {
                t_min: 20,
                t_start: 980,
                t_end: 500,
                anneal_steps: 45
            })
        );
        // every method's own schedule too: VSD's switch at 5,001 of 5,000 steps → 150, SDI's
        // 10,000-step anneal → 300
        assert_eq!(
            r.guidance.vsd.timesteps,
            TimestepSchedule::stepped(150, 500)
        );
        assert_eq!(
            r.guidance.sdi.timesteps,
            TimestepSchedule::Linear {
                t_min: 250,
                t_max: 980,
                steps: 300
            }
        );
        assert_eq!(r.guidance.vdm.timesteps, cfg.guidance.vdm.timesteps);
        let Strategy::Default(d) = &r.densify else {
            panic!("strategy changed")
        };
        assert_eq!((d.start, d.stop, d.every, d.reset_every), (15, 75, 3, 0));
        assert_eq!(r.lr.means_decay_steps, 150);
        assert_eq!(r.guidance.bridge.stage_two_start, 120);
        assert_eq!((r.cameras.relax.start, r.cameras.relax.every), (15, 15));
        assert_eq!(
            r.cameras.relax.radius_factor,
            cfg.cameras.relax.radius_factor
        );
        assert_eq!(r.lr.means, cfg.lr.means);
        assert_eq!(r.guidance.vdm.dca_cutoff, cfg.guidance.vdm.dca_cutoff);
        // a second rescale back is (up to rounding) the original
        let back = rescale_steps(&r, 5000);
        assert_eq!(back.lr.means_decay_steps, 5000);
        // 0 (the run's own length) stays 0
        let mut own = cfg.clone();
        own.lr.means_decay_steps = 0;
        assert_eq!(rescale_steps(&own, 150).lr.means_decay_steps, 0);
        // the same length is the identity
        let same = rescale_steps(&cfg, 5000);
        assert_eq!(same.timesteps, cfg.timesteps);
        assert_eq!(same.densify, cfg.densify);
    }
}
