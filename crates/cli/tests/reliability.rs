//! Interruptions and numerical faults lose nothing (lavapipe in CI), on short `fit` runs of
//! the shipped Spot-the-cow views:
//! - a run killed with SIGKILL resumes from its latest periodic checkpoint; the resumed run,
//!   stopped with SIGTERM, saves a checkpoint of the step it reached and exits 130; resuming
//!   with `--steps` at that step writes the outputs and evaluates them there; the last resume
//!   finishes with the full step count and valid outputs;
//! - a run resumed from its step-0 checkpoint keeps its one starting evaluation;
//! - steps whose loss is made NaN (the `SPLATDREAM_FAULT_NAN_STEPS` test hook) are skipped
//!   and counted, and a run of them stops the run as diverged without writing outputs.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, run, short_fit, text, tmp};

/// A small, fast fit: 32×32 views, 800 random splats, no turntable or renders.
fn small_fit(out: &Path, steps: u64) -> Command {
    short_fit(out, steps, 800)
}

/// Checkpoint steps present in `<run>/checkpoints`, ascending.
fn checkpoint_steps(run: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(run.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("step-")?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()
        })
        .collect();
    v.sort();
    v
}

/// Wait (up to `limit`) until `ready` holds while `child` is still running; panics if the
/// child exits first or time runs out.
fn wait_running(child: &mut Child, limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run exited ({st}) before {what}");
        }
        if ready() {
            return;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metrics(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
}

/// The exported PLY loads and holds finite values.
fn assert_valid_ply(path: &Path) {
    let data = splat::ply::read_ply(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!data.is_empty(), "no splats in {}", path.display());
    for (name, v) in [
        ("means", &data.means),
        ("quats", &data.quats),
        ("log_scales", &data.log_scales),
        ("opacity_logits", &data.opacity_logits),
        ("sh", &data.sh),
    ] {
        assert!(v.iter().all(|x| x.is_finite()), "non-finite `{name}`");
    }
}

#[test]
fn killed_and_terminated_runs_resume_to_completion() {
    let dir = tmp("reliability", "resume");
    let run = dir.join("run");
    const TOTAL: u64 = 260;

    // 1. SIGKILL once a periodic checkpoint exists (the run is far from done: 100,000 steps).
    let mut child = small_fit(&run, 100_000)
        .args([
            "--set",
            "output.checkpoint_every=20",
            "--set",
            "output.keep_checkpoints=0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_running(&mut child, Duration::from_secs(600), "a checkpoint", || {
        checkpoint_steps(&run).iter().any(|&s| s >= 40)
    });
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert!(!st.success());
    let killed_at = *checkpoint_steps(&run).last().unwrap();
    assert!((40..TOTAL).contains(&killed_at), "checkpoint {killed_at}");

    // 2. Resume towards TOTAL steps; SIGTERM once it has made progress past the checkpoint.
    let mut child = bin()
        .args(["fit", "--resume"])
        .arg(&run)
        .args([
            "--steps",
            &TOTAL.to_string(),
            "--set",
            "output.checkpoint_every=0",
        ])
        .args(["--set", "train.log_every=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let mut resumed_from = None;
    wait_running(
        &mut child,
        Duration::from_secs(600),
        "progress after resuming",
        || {
            while let Ok(line) = rx.try_recv() {
                if let Some(rest) = line.split(" at step ").nth(1)
                    && line.starts_with("resumed ")
                {
                    resumed_from = rest.split(' ').next().and_then(|s| s.parse::<u64>().ok());
                }
                log.push_str(&line);
                log.push('\n');
            }
            // The CLI prints a plain `step N: loss …` line every 100 steps without a terminal.
            resumed_from.is_some()
                && log
                    .lines()
                    .any(|l| l.starts_with("step ") && l.contains(": loss"))
        },
    );
    assert_eq!(resumed_from, Some(killed_at), "{log}");
    let pid = child.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let st = child.wait().unwrap();
    reader.join().unwrap();
    while let Ok(line) = rx.try_recv() {
        log.push_str(&line);
        log.push('\n');
    }
    assert_eq!(st.code(), Some(130), "SIGTERM must exit 130:\n{log}");
    assert!(log.contains("interrupted after step"), "{log}");
    let stopped_at = *checkpoint_steps(&run).last().unwrap();
    assert!(
        stopped_at > killed_at && stopped_at < TOTAL,
        "SIGTERM checkpoint at {stopped_at}:\n{log}"
    );
    assert!(
        !run.join("point_cloud.ply").exists(),
        "outputs of an unfinished run"
    );

    // 3. Finish where it stopped (`--steps` = the checkpoint's step): nothing is trained, the
    // outputs are written, and the splats they hold are evaluated at that step.
    let resume_to = |steps: u64| {
        bin()
            .args(["fit", "--resume"])
            .arg(&run)
            .args(["--steps", &steps.to_string()])
            .output()
            .unwrap()
    };
    let out = resume_to(stopped_at);
    let log_end = text(&out);
    assert!(
        out.status.success(),
        "finishing at the checkpoint failed:\n{log_end}"
    );
    assert!(log_end.contains("nothing left to train"), "{log_end}");
    assert_valid_ply(&run.join("point_cloud.ply"));
    let m = metrics(&run);
    let last = m["evals"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["step"], stopped_at,
        "no evaluation of the output splats:\n{log_end}"
    );
    assert!(last["psnr"].as_f64().unwrap().is_finite());

    // 4. Resume to the end.
    let out = resume_to(TOTAL);
    let log3 = text(&out);
    assert!(out.status.success(), "final resume failed:\n{log3}");
    assert!(
        log3.contains(&format!("at step {stopped_at}")),
        "did not resume from {stopped_at}:\n{log3}"
    );
    assert_eq!(*checkpoint_steps(&run).last().unwrap(), TOTAL);
    let m = metrics(&run);
    assert_eq!(m["start_step"], stopped_at);
    let steps: Vec<u64> = m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps.last(), Some(&TOTAL));
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "the step history repeats or goes back: {steps:?}"
    );
    let evals = m["evals"].as_array().unwrap();
    assert_eq!(
        evals.first().unwrap()["step"],
        0,
        "history before the kill kept"
    );
    assert_eq!(evals.last().unwrap()["step"], TOTAL);
    assert!(evals.last().unwrap()["psnr"].as_f64().unwrap().is_finite());
    assert_valid_ply(&run.join("point_cloud.ply"));
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains(&format!("steps = {TOTAL}")), "{cfg}");
}

#[test]
fn nan_steps_are_skipped_and_a_run_of_them_stops_the_fit() {
    let dir = tmp("reliability", "nan");
    // Three poisoned steps among 30: skipped, counted, reported; the outputs are finite.
    let run = dir.join("skip");
    // Read-backs (log_every = 10) at steps 1, 10, 20 and 30 report what was skipped since.
    let out = small_fit(&run, 30)
        .env("SPLATDREAM_FAULT_NAN_STEPS", "5,6,17")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("skipped 2 step(s)") && log.contains("up to step 10 (2 in all)"),
        "{log}"
    );
    assert!(
        log.contains("skipped 1 step(s)") && log.contains("up to step 20 (3 in all)"),
        "{log}"
    );
    let m = metrics(&run);
    assert_eq!(m["skipped_steps"], 3);
    for s in m["steps"].as_array().unwrap() {
        assert!(s["loss"].as_f64().is_some_and(f64::is_finite), "{s}");
    }
    assert_valid_ply(&run.join("point_cloud.ply"));

    // Ten poisoned steps in a row with max_bad_steps = 6: the run stops as diverged and
    // writes no outputs.
    let run = dir.join("diverge");
    let out = small_fit(&run, 30)
        .args([
            "--set",
            "train.log_every=1",
            "--set",
            "train.max_bad_steps=6",
        ])
        .env("SPLATDREAM_FAULT_NAN_STEPS", "3,4,5,6,7,8,9,10,11,12")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("training diverged"), "{log}");
    assert!(log.contains("up to step 8"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(!run.join("point_cloud.ply").exists());
}

#[test]
fn a_run_resumed_at_step_zero_keeps_one_starting_evaluation() {
    // SIGTERM as soon as the data is loaded: the run still evaluates its starting splats, then
    // stops before step 1 with a step-0 checkpoint. Resuming must not evaluate step 0 again.
    let run = tmp("reliability", "step0").join("run");
    let mut child = small_fit(&run, 100_000)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        let loaded = line.starts_with("loaded ");
        log.push_str(&line);
        log.push('\n');
        if loaded {
            let pid = child.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            break;
        }
    }
    for line in lines.map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
    }
    assert_eq!(child.wait().unwrap().code(), Some(130), "{log}");
    assert_eq!(checkpoint_steps(&run), [0], "{log}");

    let out = bin()
        .args(["fit", "--resume"])
        .arg(&run)
        .args(["--steps", "3"])
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("at step 0"),
        "did not resume from step 0:\n{log}"
    );
    let evals: Vec<u64> = metrics(&run)["evals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_u64().unwrap())
        .collect();
    assert_eq!(evals, [0, 3], "{log}");
}

/// Every tensor of a checkpoint file, by name: (shape, f32 values).
fn checkpoint_tensors(path: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, (v.shape().to_vec(), vals))
        })
        .collect()
}

/// Step losses of a run's metrics.json, by step.
fn step_losses(run: &Path) -> std::collections::BTreeMap<u64, f64> {
    metrics(run)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_u64().unwrap(), s["loss"].as_f64().unwrap()))
        .collect()
}

/// `--resume` continues exactly (the README's promise):
/// - resumed where it was saved and written back, the checkpoint comes out tensor for tensor
///   identical (parameters, both Adam moments, the densifier's accumulators), and the exported
///   PLY holds the checkpoint's parameters bit for bit;
/// - the first resumed step's loss (random background, camera order and all) equals the
///   uninterrupted run's loss at that step bit for bit; its forward pass reads only the restored
///   state. Later steps follow within 1 % (the backward's float atomics sum in any order).
#[test]
fn resume_restores_parameters_moments_and_the_next_step_exactly() {
    const SAVED: u64 = 10;
    const TOTAL: u64 = 20;
    let dir = tmp("reliability", "exact");
    let with_log = |c: &mut Command| {
        c.args([
            "--set",
            "train.log_every=1",
            "--set",
            "output.checkpoint_every=10",
        ])
        .args(["--set", "densify.start=4", "--set", "densify.every=4"])
        .args(["--set", "densify.stop=18"]);
    };
    // A: uninterrupted, a checkpoint at step 10.
    let a = dir.join("a");
    let mut c = small_fit(&a, TOTAL);
    with_log(&mut c);
    run(&mut c);
    let saved = a.join(format!("checkpoints/step-{SAVED:07}.safetensors"));
    assert!(
        saved.is_file(),
        "no checkpoint {} (have {:?})",
        saved.display(),
        checkpoint_steps(&a)
    );
    let a_losses = step_losses(&a);

    // B: resumed at step 10 with nothing to train: it saves the restored state again.
    let b = dir.join("b");
    run(bin()
        .args(["fit", "--resume"])
        .arg(&saved)
        .args(["--steps", &SAVED.to_string(), "--out"])
        .arg(&b));
    let want = checkpoint_tensors(&saved);
    let got = checkpoint_tensors(&b.join(format!("checkpoints/step-{SAVED:07}.safetensors")));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "tensor names"
    );
    for k in [
        "params.means",
        "adam_m.means",
        "adam_v.sh_dc",
        "densify.grad2d",
    ] {
        assert!(
            want.contains_key(k),
            "the checkpoint lacks {k}: {:?}",
            want.keys()
        );
    }
    for (name, (shape, v)) in &want {
        let (gs, gv) = &got[name];
        assert_eq!(shape, gs, "{name}: shape");
        let diff = v
            .iter()
            .zip(gv)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            diff,
            0,
            "{name}: {diff} of {} values differ after resume",
            v.len()
        );
    }
    let ply = splat::ply::read_ply(&b.join("point_cloud.ply")).unwrap();
    let n = ply.len();
    for (name, vals) in [
        ("params.means", &ply.means),
        ("params.quats", &ply.quats),
        ("params.log_scales", &ply.log_scales),
        ("params.opacity_logits", &ply.opacity_logits),
    ] {
        assert_eq!(&want[name].1, vals, "{name} in the exported PLY");
    }
    let k = splat::scene::sh_coeffs(ply.sh_degree);
    let (dc, rest) = (&want["params.sh_dc"].1, &want["params.sh_rest"].1);
    for i in 0..n {
        let row = &ply.sh[i * k * 3..(i + 1) * k * 3];
        assert_eq!(
            &row[..3],
            &dc[i * 3..i * 3 + 3],
            "sh_dc of splat {i} in the PLY"
        );
        assert_eq!(
            &row[3..],
            &rest[i * (k - 1) * 3..(i + 1) * (k - 1) * 3],
            "sh_rest of splat {i} in the PLY"
        );
    }

    // C: resumed at step 10 and trained to 20, beside A's record of the same steps.
    let c_run = dir.join("c");
    run(bin()
        .args(["fit", "--resume"])
        .arg(&saved)
        .args(["--steps", &TOTAL.to_string(), "--out"])
        .arg(&c_run));
    let c_losses = step_losses(&c_run);
    let first = *c_losses.keys().find(|s| **s > SAVED).unwrap();
    assert_eq!(
        c_losses[&first].to_bits(),
        a_losses[&first].to_bits(),
        "step {first}: resumed loss {} vs uninterrupted {}",
        c_losses[&first],
        a_losses[&first]
    );
    for (s, l) in c_losses.range(SAVED + 1..=TOTAL) {
        let r = a_losses[s];
        assert!(
            (l - r).abs() <= 0.01 * r.abs(),
            "step {s}: resumed loss {l} vs uninterrupted {r}"
        );
    }
}
