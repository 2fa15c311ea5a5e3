//! End-to-end test of `splatdream generate` with the committed tiny random-weight SD model
//! (tests/cases/sd/tiny-eps) at 64² on lavapipe: a short SDS run writes a reloadable PLY, a
//! decodable turntable, a view grid and finite metrics; `--resume` continues at the saved step;
//! a missing model folder fails cleanly naming what is missing. Step counts are small because
//! a tiny-model step takes seconds on lavapipe in a debug build.

use std::path::Path;
use std::process::Command;

mod common;
use common::{bin, run, text};

/// The common options of the tiny runs.
fn tiny<'a>(c: &'a mut Command, out: &Path) -> &'a mut Command {
    tiny_with(c, out, "sds")
}

/// The common options of the tiny runs with guidance `method`.
fn tiny_with<'a>(c: &'a mut Command, out: &Path, method: &str) -> &'a mut Command {
    c.args([
        "generate",
        "--model",
        "tests/cases/sd/tiny-eps",
        "--prompt",
        "a corgi",
    ])
    .args([
        "--batch",
        "1",
        "--resolution",
        "64",
        "--method",
        method,
        "--out",
    ])
    .arg(out)
    .args(["--set", "init.count=2000", "--set", "output.log_every=1"])
    .args([
        "--set",
        "output.turntable_frames=6",
        "--set",
        "output.turntable_size=64",
    ])
    .args(["--set", "output.views=4"])
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

fn checkpoint_step(path: &Path) -> u64 {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.with_extension("json")).unwrap())
            .unwrap();
    j["step"].as_u64().unwrap()
}

#[test]
fn generate_tiny_model_outputs_and_resume() {
    let out = std::env::temp_dir().join(format!("splatdream-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let t0 = std::time::Instant::now();
    // 6 steps with a checkpoint every 3.
    run(tiny(&mut bin(), &out)
        .args(["--steps", "6", "--set", "output.checkpoint_every=3"])
        .args(["--set", "output.ply_every=3"]));
    let first = t0.elapsed();
    let ck = out.join("checkpoints");
    assert!(ck.join("step-0000003.safetensors").is_file());
    // A PLY snapshot at step 3 (not at the end, where `point_cloud.ply` is the output).
    let snap = splat::ply::read_ply(&out.join("point_cloud_3.ply")).unwrap();
    assert!(!snap.is_empty());
    assert!(!out.join("point_cloud_6.ply").exists());
    assert_eq!(checkpoint_step(&ck.join("step-0000006.safetensors")), 6);
    let m = metrics(&out);
    assert_eq!(m.len(), 6, "{m:?}");
    assert_eq!(m[0]["step"], 0);

    // Resume from the run folder (its latest checkpoint, step 6) to 9 steps; the test hook
    // poisons the loss of optimizer step 8 (0-based step 7), which must be skipped.
    let log = run(bin()
        .args(["generate", "--resume"])
        .arg(&out)
        .args(["--steps", "9"])
        .env("SPLATDREAM_FAULT_NAN_STEPS", "8"));
    assert!(log.contains("resumed"), "{log}");
    assert!(
        log.contains("skipped 1 step(s) with a NaN or infinite loss or gradient up to step 8"),
        "{log}"
    );
    assert_eq!(checkpoint_step(&ck.join("step-0000009.safetensors")), 9);
    let m = metrics(&out);
    let steps: Vec<u64> = m.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(
        steps,
        (0..9).collect::<Vec<_>>(),
        "the log continues at step 6"
    );
    for r in &m {
        if r["step"] == 7 {
            assert!(r["loss"].is_null(), "the poisoned step's loss: {r}");
        }
        for k in ["loss", "grad_norm", "grad_abs_mean", "t_mean", "step_ms"] {
            if k == "loss" && r["step"] == 7 {
                continue;
            }
            let v = r[k].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite(), "{k} = {v} in {r}");
        }
        assert!(r["splats"].as_u64().unwrap() > 0);
        assert!(r["grad_norm"].as_f64().unwrap() > 0.0);
    }

    // Outputs: the PLY reloads with the logged splat count, the turntable decodes.
    let data = splat::ply::read_ply(&out.join("point_cloud.ply")).unwrap();
    assert_eq!(data.len() as u64, m[8]["splats"].as_u64().unwrap());
    assert!(data.means.iter().all(|v| v.is_finite()));
    let gif = std::fs::File::open(out.join("turntable.gif")).unwrap();
    let frames = image::AnimationDecoder::into_frames(
        image::codecs::gif::GifDecoder::new(std::io::BufReader::new(gif)).unwrap(),
    )
    .collect_frames()
    .unwrap();
    assert_eq!(frames.len(), 6);
    let views = image::open(out.join("views.png")).unwrap();
    assert_eq!((views.width(), views.height()), (4 * 64, 64));
    let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        cfg.contains("seed = 0") && cfg.contains("steps = 9"),
        "{cfg}"
    );
    // The PLY is written −y up for splat viewers (issue 26) and says so; `export` of the last
    // checkpoint writes the same bytes, and `--up z` the training world (which our reader
    // also gives back from the −y file).
    assert_eq!(
        splat::ply::declared_up(&out.join("point_cloud.ply")).unwrap(),
        Some(splat::transform::UpAxis::NegY)
    );
    let exported = out.join("exported.ply");
    run(bin().arg("export").arg(&out).arg("--out").arg(&exported));
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(out.join("point_cloud.ply")).unwrap()
    );
    let z_up = out.join("exported-z.ply");
    run(bin()
        .args(["export", "--up", "z"])
        .arg(&out)
        .arg("--out")
        .arg(&z_up));
    let z = splat::ply::read_ply(&z_up).unwrap();
    assert!(
        z.means
            .iter()
            .zip(&data.means)
            .all(|(a, b)| (a - b).abs() < 1e-5)
    );
    eprintln!(
        "generate: first run (6 steps) {:.1} s, total {:.1} s",
        first.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&out).ok();
}

/// DreamMapping's VDM + DCA for two dozen steps: ℳψ trains online (its loss is logged every
/// step and stays finite), the run writes its PLY and an MP4 turntable.
#[test]
fn generate_vdm_two_dozen_steps() {
    let out = std::env::temp_dir().join(format!("splatdream-gen-vdm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let t0 = std::time::Instant::now();
    // 8×8 latents: three U-Lite levels fit without padding.
    run(tiny_with(&mut bin(), &out, "vdm")
        .args(["--steps", "24"])
        .args(["--set", "guidance.vdm.ulite.levels=3"])
        .args(["--set", "output.turntable=\"mp4\""]));
    let m = metrics(&out);
    assert_eq!(m.len(), 24);
    let ulite: Vec<f64> = m
        .iter()
        .map(|r| r["guidance"]["ulite_loss"].as_f64().unwrap_or(f64::NAN))
        .collect();
    assert!(
        ulite.iter().all(|v| v.is_finite() && *v >= 0.0),
        "{ulite:?}"
    );
    for r in &m {
        for k in ["loss", "grad_norm", "t_mean"] {
            let v = r[k].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite(), "{k} = {v} in {r}");
        }
    }
    let data = splat::ply::read_ply(&out.join("point_cloud.ply")).unwrap();
    assert_eq!(data.len() as u64, m[23]["splats"].as_u64().unwrap());
    // `output.turntable = "mp4"`: an H.264 turntable of the configured frames, read by ffprobe.
    let probe = common::ffprobe(&out.join("turntable.mp4"));
    assert_eq!(
        (probe.codec.as_str(), probe.frames, probe.size),
        ("h264", 6, (64, 64))
    );
    assert!(!out.join("turntable.gif").exists());
    eprintln!("generate vdm: 24 steps {:.1} s", t0.elapsed().as_secs_f64());
    std::fs::remove_dir_all(&out).ok();
}

/// A suite split over jobs (issue 29): `--shard 0/2` of three prompts runs prompts 0 and 2
/// only; a run whose lock a live job holds is left alone; a second sitting skips the finished
/// run and takes over the lock once it is stale (a dead job's).
#[test]
fn generate_suite_shards_skip_finished_runs_and_respect_locks() {
    let out = common::tmp("gen-suite", "out");
    let prompts = out.join("suite.txt");
    std::fs::write(&prompts, "a corgi\n# a comment line\na cat\n\na dog\n").unwrap();
    let suite = |c: &mut Command| {
        c.args([
            "generate",
            "--model",
            "tests/cases/sd/tiny-eps",
            "--prompts",
        ])
        .arg(&prompts)
        .args([
            "--shard",
            "0/2",
            "--steps",
            "1",
            "--batch",
            "1",
            "--resolution",
            "64",
        ])
        .arg("--out")
        .arg(out.join("runs"))
        .args([
            "--set",
            "init.count=500",
            "--set",
            "output.turntable_frames=2",
        ])
        .args([
            "--set",
            "output.turntable_size=32",
            "--set",
            "output.views=0",
        ]);
    };
    // A live job holds prompt 0's folder (its lock was refreshed just now).
    let (corgi, cat, dog) = (
        out.join("runs/000-a-corgi"),
        out.join("runs/001-a-cat"),
        out.join("runs/002-a-dog"),
    );
    std::fs::create_dir_all(&corgi).unwrap();
    std::fs::write(corgi.join(".splatdream.lock"), "host elsewhere pid 1\n").unwrap();
    let mut c = bin();
    suite(&mut c);
    let log = run(&mut c);
    assert!(log.contains("locked by a live job"), "{log}");
    assert!(
        !corgi.join("point_cloud.ply").exists(),
        "a locked run was written"
    );
    assert!(!cat.exists(), "prompt 1 belongs to shard 1/2");
    assert!(dog.join("point_cloud.ply").is_file(), "{log}");
    assert!(
        !dog.join(".splatdream.lock").exists(),
        "a finished run keeps its lock"
    );
    let dog_metrics = std::fs::read(dog.join("metrics.jsonl")).unwrap();

    // The holder died: its lock is two hours old. The second sitting runs prompt 0 and skips 2.
    std::fs::OpenOptions::new()
        .append(true)
        .open(corgi.join(".splatdream.lock"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let mut c = bin();
    suite(&mut c);
    let log = run(&mut c);
    assert!(corgi.join("point_cloud.ply").is_file(), "{log}");
    assert!(log.contains("finished before"), "{log}");
    assert_eq!(
        std::fs::read(dog.join("metrics.jsonl")).unwrap(),
        dog_metrics,
        "a finished run was run again"
    );
    assert!(!cat.exists());
}

#[test]
fn generate_missing_model_names_the_files() {
    let dir = std::env::temp_dir().join(format!("splatdream-nomodel-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("unet")).unwrap();
    let out = bin()
        .args(["generate", "--prompt", "a corgi", "--model"])
        .arg(&dir)
        .args(["--out"])
        .arg(dir.join("run"))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "succeeded without a model:\n{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(
        t.contains(&dir.display().to_string()),
        "folder not named:\n{t}"
    );
    assert!(
        t.contains("unet/config.json") && t.contains("vae/config.json"),
        "{t}"
    );

    // A model id absent from the HF cache, with downloads off, says how to get it.
    let out = bin()
        .env("HF_HUB_CACHE", &dir)
        .args([
            "--offline",
            "generate",
            "--prompt",
            "a corgi",
            "--model",
            "nobody/no-model",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains("nobody/no-model") && t.contains("offline"),
        "{t}"
    );
    assert!(!t.contains("panicked"), "{t}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_method_is_a_config_error() {
    let out = bin()
        .args([
            "generate",
            "--prompt",
            "a corgi",
            "--method",
            "nope",
            "--print-config",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("guidance.method") && t.contains("sds"), "{t}");
}
