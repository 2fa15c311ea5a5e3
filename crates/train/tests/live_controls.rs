//! The viewer's run controls without a window: `live::live` attached to a real `fit` on the
//! shipped Spot-the-cow views (downscaled 4×, lavapipe). Pause holds the loop at a step
//! boundary, Save now writes a checkpoint at the next step (not a periodic one), Stop (the
//! panel's button) checkpoints and ends the run as interrupted, and the offered snapshots are
//! device tensors of the scene being trained.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use train::fit::{FitError, fit};

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn checkpoint(out: &Path, step: u64) -> std::path::PathBuf {
    out.join("checkpoints")
        .join(format!("step-{step:07}.safetensors"))
}

#[test]
fn pause_save_now_and_stop_act_on_a_running_fit() {
    let ctx = testkit::gpu();
    let (mut cfg, dataset, out) = common::spot_cow_fit("live");
    cfg.train.steps = 100_000;
    cfg.eval.every = 0;
    // No periodic checkpoint within this test: every one it finds was asked for.
    cfg.output.checkpoint_every = 1_000_000;
    let control = live::control::Control::new();
    let live = control.attach_live("fit", Duration::ZERO);
    live.set_paused(true);
    let device = ctx.burn.clone();
    let ctl = control.clone();
    let worker = std::thread::spawn(move || fit(&dataset, &cfg, &device, None, &ctl, &mut |_| {}));

    // Paused before step 1: nothing is trained.
    let long = Duration::from_secs(300);
    wait_for("the loop to hold", long, || live.holding());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(live.snapshot().step, 0);
    assert!(live.snapshot().scene.is_none());

    live.set_paused(false);
    wait_for("step 3", long, || live.snapshot().step >= 3);
    live.set_paused(true);
    // Held once the step in flight ended: then the step count stops moving.
    wait_for("the loop to hold", long, || live.holding());
    let held = live.snapshot().step;
    std::thread::sleep(Duration::from_secs(3));
    assert!(live.holding());
    assert_eq!(live.snapshot().step, held, "training went on while paused");

    // The snapshot is the scene being trained, as device tensors.
    let snap = live.snapshot();
    let scene = snap.scene.expect("a scene was offered");
    assert_eq!(scene.len(), snap.splats);
    assert_eq!(scene.means.dims(), [snap.splats, 3]);
    assert_eq!(snap.cameras.len(), 48);
    assert_eq!(snap.job, "fit");

    // Save now: a checkpoint of the next step.
    live.request_save();
    live.set_paused(false);
    let saved = checkpoint(&out, held + 1);
    wait_for("the save-now checkpoint", long, || saved.is_file());

    // Stop: checkpoint and an interrupted run.
    live.request_stop();
    let result = worker.join().expect("fit thread");
    match result {
        Err(FitError::Interrupted(i)) => {
            assert!(i.step > held, "stopped at {} after step {held}", i.step);
            assert_eq!(i.checkpoint, checkpoint(&out, i.step));
            assert!(i.checkpoint.is_file());
        }
        other => panic!("expected an interrupted run, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&out);
}
