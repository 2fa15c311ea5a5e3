//! End-to-end test of `splatdream lmc-train` and `splatdream generate --method lmc` with the
//! committed tiny random-weight SD model (tests/cases/sd/tiny-eps) on lavapipe: pre-training
//! b̂ψ on a few spot-cow renders at 64² writes the safetensors file and a falling loss log; a
//! short LMC-SDS generate run with that file exits 0 with finite metrics; bad inputs fail
//! cleanly naming the folder or file.
//!
//! **Why `--t-max 10`.** The tiny model's random-weight VAE maps the renders to latents of
//! std ≈ 0.08, while the part of `ẑ_t = z + (σ_t/α_t)(ε − ε̂)` that no b̂ψ(z, t) can predict
//! grows like σ_t/α_t (≈ 0.3 at t = 200): at ordinary timesteps the pre-training loss of this
//! model is all noise floor within a few steps. At t ≤ 10 (σ/α ≤ 0.05) the learnable part
//! dominates and the loss visibly falls in 12 steps (the library test
//! `crates/distill/tests/distill_lmc.rs::blur_trainer_loss_falls` trains on unit-variance latents up to
//! t = 200).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{bin, root, text, tmp};

/// Four spot-cow renders (128² RGBA PNGs) copied into `dir/images`, and a fifth as a JPEG
/// next to the folder (passed with a second `--images`).
fn images(dir: &Path) -> (PathBuf, PathBuf) {
    let src = root().join("assets/spot-cow/train");
    let folder = dir.join("images");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..4 {
        let name = format!("r_{}.png", i * 10);
        std::fs::copy(src.join(&name), folder.join(&name)).unwrap();
    }
    let jpeg = dir.join("cow.jpg");
    image::open(src.join("r_5.png"))
        .unwrap()
        .to_rgb8()
        .save(&jpeg)
        .unwrap();
    // A file that is not an image is skipped by the folder listing.
    std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
    (folder, jpeg)
}

const TINY: &str = "tests/cases/sd/tiny-eps";

fn lmc_train(model: &str, dir: &Path, images: &[&Path], out: &Path, steps: u32) -> Command {
    let mut c = bin();
    c.args(["lmc-train", "--model", model]);
    for i in images {
        c.arg("--images").arg(i);
    }
    c.arg("--out").arg(out);
    c.args(["--steps", &steps.to_string()])
        .args([
            "--batch", "4", "--lr", "1e-2", "--t-min", "0", "--t-max", "10",
        ])
        .args(["--resolution", "64", "--levels", "2", "--base-width", "8"])
        .args(["--log-every", "1", "--seed", "3", "--log"])
        .arg(dir.join("loss.jsonl"));
    c
}

#[test]
fn lmc_train_then_generate() {
    let dir = tmp("lmc", "e2e");
    let (folder, jpeg) = images(&dir.0);
    let blur = dir.0.join("blur.safetensors");
    let t0 = std::time::Instant::now();
    let steps = 12;
    let out = lmc_train(TINY, &dir.0, &[&folder, &jpeg], &blur, steps)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "lmc-train failed:\n{t}");
    assert!(t.contains("encoding 5 image(s) at 64²"), "{t}");
    let train_s = t0.elapsed().as_secs_f64();
    assert!(blur.is_file(), "{t}");
    // No temporary file is left next to the output.
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The loss log: one line per step, finite, falling.
    let log = std::fs::read_to_string(dir.0.join("loss.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect();
    assert_eq!(rows.len(), steps as usize, "{log}");
    let loss: Vec<f64> = rows
        .iter()
        .map(|r| r["loss"].as_f64().unwrap_or(f64::NAN))
        .collect();
    assert!(loss.iter().all(|l| l.is_finite() && *l >= 0.0), "{loss:?}");
    assert_eq!(rows[0]["step"], 0);
    assert_eq!(rows[0]["lr"].as_f64(), Some(1e-2));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&loss[..3]), mean(&loss[loss.len() - 5..]));
    eprintln!("lmc-train: L_k {loss:.4?}\nfirst 3 {first:.4}, last 5 {last:.4}");
    assert!(
        last < 0.8 * first,
        "the loss did not fall by 20%: {first} → {last}"
    );

    // The file: the metadata records the run.
    let bytes = std::fs::read(&blur).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["splatdream.lmc.levels"], "2");
    assert_eq!(meta["splatdream.lmc.base_width"], "8");
    assert_eq!(meta["splatdream.lmc.model"], "tests/cases/sd/tiny-eps");
    assert_eq!(meta["splatdream.lmc.steps"], steps.to_string());
    assert_eq!(meta["splatdream.lmc.resolution"], "64");

    // LMC-SDS with it: a short generate run.
    let run = dir.0.join("run");
    let t1 = std::time::Instant::now();
    let out = bin()
        .args(["generate", "--model", "tests/cases/sd/tiny-eps"])
        .args(["--prompt", "a cow", "--method", "lmc", "--steps", "3"])
        .args(["--batch", "1", "--resolution", "64", "--out"])
        .arg(&run)
        .arg("--set")
        .arg(format!("guidance.lmc.blur_model={}", blur.display()))
        .args(["--set", "init.count=1000", "--set", "output.log_every=1"])
        .args(["--set", "output.turntable_frames=2"])
        .args([
            "--set",
            "output.turntable_size=32",
            "--set",
            "output.views=0",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "generate --method lmc failed:\n{t}");
    assert!(t.contains("method lmc"), "{t}");
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 3);
    for r in &metrics {
        for k in ["loss", "grad_norm", "t_mean"] {
            let v = r[k].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite(), "{k} = {v} in {r}");
        }
        assert!(r["grad_norm"].as_f64().unwrap() > 0.0, "{r}");
        for k in ["cond_rms", "lmc_rms"] {
            let v = r["guidance"][k].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{k} = {v} in {r}");
        }
    }
    assert!(run.join("point_cloud.ply").is_file());
    eprintln!(
        "lmc-train {steps} steps: {train_s:.1} s; generate --method lmc 3 steps: {:.1} s",
        t1.elapsed().as_secs_f64()
    );
}

#[test]
fn lmc_train_bad_inputs_are_named() {
    let dir = tmp("lmc", "bad");
    let out_file = dir.0.join("blur.safetensors");
    let check = |c: &mut Command, needle: &str| {
        let out = c.output().unwrap();
        let t = text(&out);
        assert!(!out.status.success(), "succeeded:\n{t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(t.contains(needle), "`{needle}` not named:\n{t}");
        assert!(!out_file.exists());
    };
    // A missing folder (checked before the GPU and the model).
    let missing = dir.0.join("no-such-folder");
    check(
        &mut lmc_train("nowhere/none", &dir.0, &[&missing], &out_file, 2),
        &missing.display().to_string(),
    );
    // A folder without images.
    let empty = dir.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("readme.txt"), "no images here").unwrap();
    check(
        &mut lmc_train(TINY, &dir.0, &[&empty], &out_file, 2),
        &empty.display().to_string(),
    );
    // An output folder that does not exist.
    let (folder, _) = images(&dir.0);
    let nowhere = dir.0.join("missing-dir/blur.safetensors");
    check(
        &mut lmc_train(TINY, &dir.0, &[&folder], &nowhere, 2),
        &nowhere.parent().unwrap().display().to_string(),
    );
    // An unreadable image (named).
    let broken = folder.join("a_broken.png");
    std::fs::write(&broken, b"definitely not a PNG").unwrap();
    check(
        &mut lmc_train(TINY, &dir.0, &[&folder], &out_file, 2),
        &broken.display().to_string(),
    );
    // A missing model folder.
    std::fs::remove_file(&broken).unwrap();
    let no_model = dir.0.join("no-model");
    let no_model_s = no_model.display().to_string();
    check(
        &mut lmc_train(&no_model_s, &dir.0, &[&folder], &out_file, 2),
        &no_model_s,
    );
    // generate --method lmc without a blur model names the setting.
    let out = bin()
        .args(["generate", "--model", "tests/cases/sd/tiny-eps"])
        .args(["--prompt", "a cow", "--method", "lmc", "--steps", "1"])
        .args(["--resolution", "64", "--out"])
        .arg(dir.0.join("run"))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("guidance.lmc.blur_model") && !t.contains("panicked"),
        "{t}"
    );
}
