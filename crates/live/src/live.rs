//! Live view of a running `fit` or `generate`, for a front end on another thread (the egui
//! viewer of `--viewer`), reached through the run's [`crate::control::Control`].
//!
//! The front end attaches a [`Live`] to the control handle it passes to the loop
//! ([`crate::control::Control::attach_live`]); the loops then, at no cost when nothing is
//! attached:
//! - offer the current scene at most every [`Live::interval`]
//!   ([`crate::control::Control::offer_scene`]): the splat tensors are handed over as device
//!   handles (no copy, no read-back; the next Adam step writes new buffers, so the snapshot
//!   stays valid while the UI renders it);
//! - offer the current guidance view of `generate` (the render of the step and its timestep);
//! - block at the top of a step while the run is paused and write a checkpoint when one is
//!   asked for.
//!
//! Loss and PSNR samples come from the loops' logged steps and evaluations (the front end
//! forwards them with [`Live::record_loss`] / [`Live::record_psnr`]), so attaching adds no
//! read-back to a training step. [`Live::request_stop`] stops the run like SIGINT does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use burn::tensor::Tensor;
use splat::camera::Camera;
use splat::scene::Splats;

/// Where a run is.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Status {
    /// Loading data or models; no step yet.
    #[default]
    Starting,
    /// Training.
    Running,
    /// Held at a step boundary by [`Live::set_paused`].
    Paused,
    /// All steps done and outputs written.
    Finished,
    /// Stopped on request (a checkpoint was written).
    Stopped,
    /// Ended with an error (the message).
    Failed(String),
}

/// What `generate` is distilling at the moment.
#[derive(Clone, Debug)]
pub struct GuidanceView {
    /// `[H, W, 3]` the render of the first camera of the step, RGB in [0, 1], on the device.
    pub image: Tensor<3>,
    /// Mean diffusion timestep of the step's batch (0 … 999).
    pub timestep: f64,
    /// Azimuth of that camera, degrees.
    pub azimuth_deg: f32,
    /// Elevation of that camera, degrees.
    pub elevation_deg: f32,
    /// Step (1-based) the view belongs to.
    pub step: u64,
}

/// Everything a front end shows. Cloning is cheap: tensors are device handles.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `"fit"` or `"generate"`.
    pub job: String,
    /// The latest offered scene (plain, non-autodiff device tensors).
    pub scene: Option<Splats>,
    /// Increases with every new scene.
    pub scene_version: u64,
    /// Completed steps at the latest offer.
    pub step: u64,
    /// Total steps of the run.
    pub total: u64,
    /// Splats at the latest offer.
    pub splats: usize,
    /// SH degree being trained at the latest offer.
    pub sh_degree: u32,
    /// `(step, training loss)` of the logged steps.
    pub loss: Vec<[f64; 2]>,
    /// `(step, PSNR dB)` of the evaluations (fit).
    pub psnr: Vec<[f64; 2]>,
    /// Training steps per second over the last few seconds of unpaused training.
    pub steps_per_s: f64,
    /// `generate`'s current guidance view.
    pub guidance: Option<GuidanceView>,
    /// Run state.
    pub status: Status,
    /// Training cameras (fit) to frame the scene; may be empty.
    pub cameras: Vec<Camera>,
    /// The latest messages of the run, oldest first (at most 8).
    pub messages: Vec<String>,
}

/// Shared state between a training loop and a front end.
#[derive(Debug)]
pub struct Live {
    snapshot: Mutex<Snapshot>,
    paused: AtomicBool,
    holding: AtomicBool,
    front_end_ready: AtomicBool,
    save: AtomicBool,
    stop: AtomicBool,
    interval: Duration,
    rate: Mutex<RateMeter>,
}

#[derive(Debug)]
struct RateMeter {
    last_offer: Option<Instant>,
    window: Vec<(Instant, u64)>,
}

impl Live {
    /// A live view of a `job` (`"fit"` or `"generate"`) whose scenes are offered at most every
    /// `interval`.
    pub fn new(job: &str, interval: Duration) -> Self {
        Live {
            snapshot: Mutex::new(Snapshot {
                job: job.to_string(),
                ..Default::default()
            }),
            paused: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            front_end_ready: AtomicBool::new(false),
            save: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            interval,
            rate: Mutex::new(RateMeter {
                last_offer: None,
                window: vec![],
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // A panicking UI thread must not stop training: the data stays usable.
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How often scenes are offered at most.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A copy of the current state (tensors are shared handles).
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// The scene version only (cheap polling).
    pub fn scene_version(&self) -> u64 {
        self.lock().scene_version
    }

    /// Hold (or release) the loop at the next step boundary.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        let mut s = self.lock();
        if matches!(s.status, Status::Running | Status::Paused) {
            s.status = if paused {
                Status::Paused
            } else {
                Status::Running
            };
        }
    }

    /// Whether a pause is asked for.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Whether the loop is actually waiting at a step boundary (a pause takes effect when the
    /// step in flight ends).
    pub fn holding(&self) -> bool {
        self.holding.load(Ordering::SeqCst)
    }

    /// Mark the front end as up (the viewer calls this once its window surface is configured,
    /// or its front end when the window could not open).
    pub fn set_front_end_ready(&self) {
        self.front_end_ready.store(true, Ordering::SeqCst);
    }

    /// Block until [`Live::set_front_end_ready`] or `timeout`; returns whether it came. The
    /// front end starts the run after this: the window's first surface configuration waits
    /// for the shared queue to go idle and fails (wgpu `GpuWaitTimeout`, a panic through
    /// cubecl's device-error hook) if the run submits work at that moment.
    pub fn wait_for_front_end(&self, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while !self.front_end_ready.load(Ordering::SeqCst) {
            if t0.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Ask for a checkpoint after the current step (written by the loop, in its run folder).
    pub fn request_save(&self) {
        self.save.store(true, Ordering::SeqCst);
    }

    /// Ask the loop to checkpoint and stop (the same as SIGINT); releases a pause.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Whether [`Live::request_stop`] was called.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Whether a checkpoint was asked for since the last call (clears the request).
    pub(crate) fn take_save_request(&self) -> bool {
        self.save.swap(false, Ordering::SeqCst)
    }

    /// Mark the loop as held at (or released from) a step boundary.
    pub(crate) fn set_holding(&self, holding: bool) {
        self.holding.store(holding, Ordering::SeqCst);
    }

    /// Keep `generate`'s current guidance view.
    pub(crate) fn set_guidance(&self, view: GuidanceView) {
        self.lock().guidance = Some(view);
    }

    /// Record a logged training loss.
    pub fn record_loss(&self, step: u64, loss: f64) {
        if loss.is_finite() {
            self.lock().loss.push([step as f64, loss]);
        }
    }

    /// Record an evaluation PSNR (dB).
    pub fn record_psnr(&self, step: u64, psnr: f64) {
        if psnr.is_finite() {
            self.lock().psnr.push([step as f64, psnr]);
        }
    }

    /// Set the run state.
    pub fn set_status(&self, status: Status) {
        self.lock().status = status;
    }

    /// Set the training cameras (to frame the scene).
    pub fn set_cameras(&self, cameras: Vec<Camera>) {
        self.lock().cameras = cameras;
    }

    /// Add a message (the last 8 are kept).
    pub fn message(&self, text: impl Into<String>) {
        let mut s = self.lock();
        s.messages.push(text.into());
        let n = s.messages.len();
        if n > 8 {
            s.messages.drain(..n - 8);
        }
    }

    /// Whether a new scene is due (the interval has passed since the last one).
    pub(crate) fn due(&self, now: Instant) -> bool {
        let r = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        r.last_offer
            .is_none_or(|t| now.duration_since(t) >= self.interval)
    }

    pub(crate) fn offer(&self, step: u64, total: u64, sh_degree: u32, scene: Splats) {
        let now = Instant::now();
        let rate = {
            let mut r = self.rate.lock().unwrap_or_else(|e| e.into_inner());
            r.last_offer = Some(now);
            r.window.push((now, step));
            // A window of about five seconds.
            while r.window.len() > 2 && now.duration_since(r.window[0].0) > Duration::from_secs(5) {
                r.window.remove(0);
            }
            let (t0, s0) = r.window[0];
            let dt = now.duration_since(t0).as_secs_f64();
            (dt > 0.0 && step > s0).then(|| (step - s0) as f64 / dt)
        };
        let mut s = self.lock();
        s.splats = scene.len();
        s.scene = Some(scene);
        s.scene_version += 1;
        s.step = step;
        s.total = total;
        s.sh_degree = sh_degree;
        if let Some(r) = rate {
            s.steps_per_s = r;
        }
        if s.status == Status::Starting {
            s.status = Status::Running;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_history() {
        let live = Live::new("fit", Duration::ZERO);
        live.record_loss(1, 0.5);
        live.record_loss(2, f64::NAN);
        live.record_psnr(10, 21.0);
        for i in 0..20 {
            live.message(format!("m{i}"));
        }
        let s = live.snapshot();
        assert_eq!(s.loss, vec![[1.0, 0.5]]);
        assert_eq!(s.psnr, vec![[10.0, 21.0]]);
        assert_eq!(s.messages.len(), 8);
        assert_eq!(s.messages[0], "m12");
        live.set_paused(true);
        assert!(live.paused());
        // Paused only changes the status of a running job.
        assert_eq!(live.snapshot().status, Status::Starting);
    }
}
