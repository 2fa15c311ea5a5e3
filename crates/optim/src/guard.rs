//! Numerical guards of the training loops (`fit`, `generate`, `distill2d`).
//!
//! A step whose loss or gradients hold a NaN or an infinity never reaches the parameters: the
//! loop asks [`StepGuard::check`] for a device-side flag, and the optimizer step keeps the old
//! values and Adam moments where the flag is set ([`crate::params::Gaussians::adam_step_guarded`],
//! [`keep_unless_bad`]). The guard counts skipped steps on the device, so no extra read-back is
//! needed: its two counters join the loop's periodic read-back ([`StepGuard::device_parts`]),
//! after which [`StepGuard::after_read`] turns them into a warning, or into
//! [`Diverged`] when the last `max_bad_steps` steps were all skipped.
//!
//! Fault injection for tests: `SPLATDREAM_FAULT_NAN_STEPS=3,4,5` makes those (1-based) steps'
//! losses NaN ([`fault_nan`]).

use std::sync::OnceLock;

use burn::tensor::{Bool, Device, Tensor};

/// The default of the `max_bad_steps` settings: consecutive skipped steps before a run stops.
pub const DEFAULT_MAX_BAD_STEPS: u64 = 100;

/// The run diverged: every one of the last `run` steps had a non-finite loss or gradient.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "training diverged: the last {run} steps (up to step {step}) all had a NaN or infinite loss or gradient and were skipped ({total} skipped in all); the parameters are those of the last good step and nothing more was written — lower the learning rates or resume from the last checkpoint"
)]
pub struct Diverged {
    /// The step (1-based) at which the run stopped.
    pub step: u64,
    /// Consecutive skipped steps.
    pub run: u64,
    /// Skipped steps in all.
    pub total: u64,
}

/// Device-side bookkeeping of skipped steps for one run.
pub struct StepGuard {
    /// `[1]` skipped steps in all.
    skipped: Tensor<1>,
    /// `[1]` consecutive skipped steps up to the latest.
    run: Tensor<1>,
    /// The host value of `skipped` at the last read-back.
    reported: u64,
    /// Stop after this many consecutive skipped steps (0 = never).
    max_bad_steps: u64,
}

/// `[1]`: 1.0 when `t` holds a NaN or ±∞, else 0.0.
///
/// Decided from the sum of `t`: IEEE addition carries a NaN or ∞ through every partial sum
/// (∞ + −∞ is NaN), so one reduction replaces a per-element test and its integer count (on
/// lavapipe ≈ 0.5 s per lego step at 155,000 splats, against ≈ 0.05 s). A sum of finite values
/// that overflows f32 also counts as non-finite; a gradient that large is no usable step either.
pub fn non_finite<const D: usize>(t: &Tensor<D>) -> Tensor<1> {
    t.clone().sum().is_finite().bool_not().float().reshape([1])
}

/// `new` where `bad` (`[1]`, > 0 for a skipped step) is zero, else `old`; `new` and `old` have
/// the same shape. NaN-safe (a select, not a blend).
pub fn keep_unless_bad<const D: usize>(
    new: Tensor<D>,
    old: Tensor<D>,
    bad: &Tensor<1>,
) -> Tensor<D> {
    let dims = new.dims();
    let mask: Tensor<D, Bool> = bad.clone().greater_elem(0.0).reshape([1; D]).expand(dims);
    new.mask_where(mask, old)
}

impl StepGuard {
    /// Counters at zero on `device`; `max_bad_steps` consecutive skipped steps stop the run
    /// (0 = never stop).
    pub fn new(device: &Device, max_bad_steps: u64) -> Self {
        Self {
            skipped: Tensor::zeros([1], device),
            run: Tensor::zeros([1], device),
            reported: 0,
            max_bad_steps,
        }
    }

    /// Restore the total skipped count of a resumed run.
    pub fn with_skipped(mut self, skipped: u64) -> Self {
        self.skipped = self.skipped.clone() + skipped as f64;
        self.reported = skipped;
        self
    }

    /// The step's flag, `[1]`: 1 when any of `counts` (each `[1]`, from [`non_finite`]) is
    /// non-zero, else 0. Updates the counters on the device.
    pub fn check(&mut self, counts: Vec<Tensor<1>>) -> Tensor<1> {
        let total = Tensor::cat(counts, 0).sum();
        let bad = total.clone().greater_elem(0.0).float().reshape([1]);
        self.skipped = self.skipped.clone() + bad.clone();
        self.run = (self.run.clone() + bad.clone()) * bad.clone();
        bad
    }

    /// The two counters (total skipped, consecutive skipped), `[1]` each, to append to the
    /// loop's read-back.
    pub fn device_parts(&self) -> [Tensor<1>; 2] {
        [self.skipped.clone(), self.run.clone()]
    }

    /// Skipped steps at the last read-back.
    pub fn skipped(&self) -> u64 {
        self.reported
    }

    /// Skipped steps up to now (reads the device counter; for checkpoints).
    ///
    /// # Errors
    /// [`gpu::ReadError`] if the read fails.
    pub fn skipped_now(&self) -> Result<u64, gpu::ReadError> {
        let v = crate::params::host(&self.skipped)?;
        Ok(v.first().copied().unwrap_or(0.0).max(0.0) as u64)
    }

    /// Digest the read-back values of [`StepGuard::device_parts`] at 1-based `step`: a warning
    /// when steps were skipped since the last read-back.
    ///
    /// # Errors
    /// [`Diverged`] when the last `max_bad_steps` steps were all skipped.
    pub fn after_read(
        &mut self,
        skipped: f32,
        run: f32,
        step: u64,
    ) -> Result<Option<String>, Diverged> {
        let (skipped, run) = (skipped.max(0.0) as u64, run.max(0.0) as u64);
        if self.max_bad_steps > 0 && run >= self.max_bad_steps {
            return Err(Diverged {
                step,
                run,
                total: skipped,
            });
        }
        let new = skipped.saturating_sub(self.reported);
        self.reported = skipped;
        Ok((new > 0).then(|| {
            format!(
                "warning: skipped {new} step(s) with a NaN or infinite loss or gradient up to step {step} ({skipped} in all); the parameters were left unchanged"
            )
        }))
    }
}

/// The device memory burn's allocator holds now (bytes reserved), 0 when not reported.
pub fn reserved_bytes(device: &Device) -> u64 {
    device
        .memory_pool_usage()
        .map(|u| u.bytes_reserved)
        .unwrap_or(0)
}

/// Whether the test hook `SPLATDREAM_FAULT_NAN_STEPS` (comma-separated 1-based steps) asks for
/// a NaN loss at `step`.
pub fn fault_nan(step: u64) -> bool {
    static STEPS: OnceLock<Vec<u64>> = OnceLock::new();
    STEPS
        .get_or_init(|| {
            std::env::var("SPLATDREAM_FAULT_NAN_STEPS")
                .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_default()
        })
        .contains(&step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::host;

    #[test]
    fn counts_skips_and_stops_on_a_run_of_bad_steps() {
        let dev = crate::test_device().clone();
        let mut g = StepGuard::new(&dev, 3);
        let finite = Tensor::<2>::ones([2, 3], &dev);
        let nan = finite.clone() * f32::NAN;
        let inf = finite.clone() / 0.0;
        let pattern = [&finite, &nan, &finite, &inf, &nan];
        let mut flags = vec![];
        for t in pattern {
            flags.push(g.check(vec![non_finite(t), non_finite(&finite)]));
        }
        let flags = host(&Tensor::cat(flags, 0).reshape([1, 5])).unwrap();
        assert_eq!(flags, vec![0.0, 1.0, 0.0, 1.0, 1.0]);
        let [s, r] = g.device_parts();
        let v = host(&Tensor::cat(vec![s, r], 0).reshape([1, 2])).unwrap();
        assert_eq!(v, vec![3.0, 2.0]);
        let msg = g.after_read(v[0], v[1], 5).unwrap().unwrap();
        assert!(msg.contains("skipped 3 step"), "{msg}");
        assert_eq!(g.after_read(3.0, 2.0, 6).unwrap(), None);
        let err = g.after_read(6.0, 3.0, 9).unwrap_err();
        assert_eq!((err.step, err.run, err.total), (9, 3, 6));
    }

    /// One bad value among 7.2 M (a lego-sized SH gradient, `[150_000, 48]`) at the start, the
    /// middle or the end, ±∞ of both signs, and large finite values that must not trip it.
    #[test]
    fn non_finite_finds_one_bad_value_in_a_long_tensor() {
        let dev = crate::test_device().clone();
        let (rows, cols) = (150_000, 48);
        let n = rows * cols;
        let flag = |edits: &[(usize, f32)]| {
            let mut v: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e3).collect();
            for &(i, x) in edits {
                v[i] = x;
            }
            let t = Tensor::<2>::from_data(burn::tensor::TensorData::new(v, [rows, cols]), &dev);
            host(&non_finite(&t)).unwrap()[0]
        };
        assert_eq!(flag(&[]), 0.0);
        assert_eq!(flag(&[(0, 3e37), (n - 1, -3e37)]), 0.0);
        assert_eq!(flag(&[(0, f32::NAN)]), 1.0);
        assert_eq!(flag(&[(n / 2 + 17, f32::NAN)]), 1.0);
        assert_eq!(flag(&[(n - 1, f32::INFINITY)]), 1.0);
        assert_eq!(flag(&[(n / 3, f32::NEG_INFINITY)]), 1.0);
        assert_eq!(flag(&[(5, f32::INFINITY), (n - 5, f32::NEG_INFINITY)]), 1.0);
    }

    #[test]
    fn keep_unless_bad_selects_without_blending_nan() {
        let dev = crate::test_device().clone();
        let old = Tensor::<2>::ones([2, 2], &dev);
        let new = old.clone() * f32::NAN;
        let bad = Tensor::<1>::ones([1], &dev);
        let good = Tensor::<1>::zeros([1], &dev);
        let kept = host(&keep_unless_bad(new.clone(), old.clone(), &bad)).unwrap();
        assert_eq!(kept, vec![1.0; 4]);
        let taken = host(&keep_unless_bad(old.clone() * 2.0, old, &good)).unwrap();
        assert_eq!(taken, vec![2.0; 4]);
    }
}
