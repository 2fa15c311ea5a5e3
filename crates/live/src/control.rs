//! The control handle of a training run: stop requests (SIGINT/SIGTERM, the viewer's stop
//! button), pause and save-now from an attached live view, and the live view's scene and
//! guidance offers. The front end makes one [`Control`] per process or per run and passes it
//! to `train::fit::fit` and `train::generate::generate`; there is no process-global state.
//! A signal handler holds a clone and calls [`Control::request_stop`] (one atomic store,
//! async-signal-safe). The loops check [`Control::stop_requested`] before every step, save a
//! checkpoint of the last completed step and return [`crate::stop::Interrupted`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use splat::scene::Splats;

use crate::live::{GuidanceView, Live};

/// Stop flag and optional live view of a run. Cloning shares them (an `Arc`).
#[derive(Clone, Debug, Default)]
pub struct Control {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stop: AtomicBool,
    live: OnceLock<Arc<Live>>,
}

impl Control {
    /// A handle with no stop requested and no live view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attach a live view of `job` (`"fit"` or `"generate"`) offering scenes at most every
    /// `interval`; returns the one already attached if there is one.
    pub fn attach_live(&self, job: &str, interval: Duration) -> Arc<Live> {
        self.inner
            .live
            .get_or_init(|| Arc::new(Live::new(job, interval)))
            .clone()
    }

    /// The attached live view, if any.
    pub fn live(&self) -> Option<&Arc<Live>> {
        self.inner.live.get()
    }

    /// Ask the running loop to checkpoint and stop.
    pub fn request_stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for, here or through the live view.
    pub fn stop_requested(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst) || self.live().is_some_and(|l| l.stop_requested())
    }

    /// Block while the attached live view holds the run paused (returns at once on a stop
    /// request or when nothing is attached). Returns the time spent paused.
    pub fn pause_point(&self) -> Duration {
        let Some(live) = self.live() else {
            return Duration::ZERO;
        };
        let t0 = Instant::now();
        if live.paused() && !self.stop_requested() {
            live.set_holding(true);
            while live.paused() && !self.stop_requested() {
                std::thread::sleep(Duration::from_millis(20));
            }
            live.set_holding(false);
        }
        t0.elapsed()
    }

    /// Offer the scene after step `step` of `total` (1-based) if a live view is attached and
    /// its interval has passed (or it is the last step); `scene` is only called then.
    pub fn offer_scene(
        &self,
        step: u64,
        total: u64,
        sh_degree: u32,
        scene: impl FnOnce() -> Splats,
    ) {
        if let Some(live) = self.live()
            && (step >= total || live.due(Instant::now()))
        {
            live.offer(step, total, sh_degree, scene());
        }
    }

    /// Offer `generate`'s guidance view (built only when a live view is attached).
    pub fn offer_guidance(&self, view: impl FnOnce() -> GuidanceView) {
        if let Some(live) = self.live() {
            live.set_guidance(view());
        }
    }

    /// Whether the live view asked for a checkpoint since the last call (clears the request).
    pub fn take_save_request(&self) -> bool {
        self.live().is_some_and(|l| l.take_save_request())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_come_from_the_handle_or_its_live_view_and_stay_per_handle() {
        let a = Control::new();
        let b = Control::new();
        assert!(!a.stop_requested());
        a.clone().request_stop();
        assert!(a.stop_requested());
        assert!(!b.stop_requested(), "a stop of one run reached another");
        let live = b.attach_live("fit", Duration::ZERO);
        assert!(Arc::ptr_eq(
            &live,
            &b.attach_live("generate", Duration::ZERO)
        ));
        live.set_paused(true);
        live.request_stop();
        assert!(b.stop_requested());
        assert!(!live.paused(), "a stop releases a pause");
        live.request_save();
        assert!(b.take_save_request());
        assert!(!b.take_save_request());
    }

    #[test]
    fn a_paused_loop_holds_until_the_handle_stops_it() {
        let c = Control::new();
        let live = c.attach_live("generate", Duration::ZERO);
        live.set_paused(true);
        let c2 = c.clone();
        let held = std::thread::spawn(move || c2.pause_point());
        let t0 = Instant::now();
        while !live.holding() {
            assert!(t0.elapsed() < Duration::from_secs(10), "never held");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        c.request_stop();
        let waited = held.join().unwrap();
        assert!(
            waited >= Duration::from_millis(50),
            "returned after {waited:?}"
        );
        assert!(!live.holding());
        assert_eq!(Control::new().pause_point(), Duration::ZERO);
    }
}
