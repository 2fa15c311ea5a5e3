//! End-to-end tests of `splatdream distill2d` and `splatdream compare` with the committed tiny
//! random-weight SD model (tests/cases/sd/tiny-eps) on lavapipe: every guidance method runs in
//! 2D and in 3D for a few steps with finite metrics throughout, `compare` writes its grid and
//! its table, and an editing run starts from an image and writes its progression as a GIF.
//! Sizes are tiny (32² images, 4×4 latents) because each U-Net call takes a while on lavapipe in
//! a debug build.

use std::path::{Path, PathBuf};

mod common;
use common::{bin, root, run, text};

/// Every method `compare` is run with here: all of `distill::METHODS`.
const METHODS: &str = "sds,vdm,sdi,bridge,lmc,lods,vsd";

fn fresh(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("splatdream-distill-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Settings that keep every method's auxiliary parts small.
const SMALL: [&str; 4] = [
    "--set",
    "guidance.vdm.ulite.levels=2",
    "--set",
    "guidance.sdi.inversion_steps=4",
];

/// A minimal LMC-SDS blur model for the tiny model (one `lmc-train` step on one image, one
/// level of width 4): enough for `--method lmc` to run; its quality is tested in
/// crates/cli/tests/lmc.rs.
fn blur_model(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("blur.safetensors");
    run(bin()
        .args(["lmc-train", "--model", "tests/cases/sd/tiny-eps"])
        .args(["--images", "assets/spot-cow/val/r_0.png", "--out"])
        .arg(&file)
        .args(["--steps", "1", "--batch", "1", "--resolution", "32"])
        .args(["--levels", "1", "--base-width", "4"]));
    format!("guidance.lmc.blur_model=\"{}\"", file.display())
}

/// Every logged loss and gradient norm in `dir/metrics.jsonl` is finite; returns the lines.
fn finite_metrics(dir: &Path) -> Vec<serde_json::Value> {
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "{}: no metrics", dir.display());
    for l in &lines {
        for k in ["loss", "grad_norm"] {
            let v = l[k].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite(), "{}: {k} = {v} in {l}", dir.display());
        }
    }
    lines
}

/// compare.md has one row per method and compare.json parses with finite timings.
fn check_table(out: &Path, methods: &[&str]) {
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), methods.len());
    for (r, m) in rows.iter().zip(methods) {
        assert_eq!(r["method"], *m);
        assert!(md.contains(&format!("| {m} |")), "{md}");
        let ms = r["ms_per_step"].as_f64().unwrap();
        assert!(ms.is_finite() && ms > 0.0, "{r}");
        assert!(r["peak_reserved_mib"].as_f64().unwrap() >= 0.0);
        finite_metrics(&out.join(m));
    }
    let grid = image::open(out.join("compare.png")).unwrap();
    assert!(
        grid.height() >= methods.len() as u32 * 32,
        "one row per method"
    );
}

#[test]
fn compare_every_method_in_3d() {
    let out = fresh("cmp3d");
    let methods: Vec<&str> = METHODS.split(',').collect();
    let blur = blur_model(&fresh("blur3d"));
    run(bin()
        .args(["compare", "--mode", "3d", "--methods", METHODS])
        .args(["--prompt", "a corgi", "--seed", "3", "--steps", "3"])
        .args(["--model", "tests/cases/sd/tiny-eps", "--out"])
        .arg(&out)
        .args(SMALL)
        .args(["--set", &blur])
        .args(["--set", "batch=1", "--set", "resolution=32"])
        .args(["--set", "init.count=500", "--set", "output.log_every=1"])
        .args([
            "--set",
            "output.turntable_frames=0",
            "--set",
            "output.views=0",
        ])
        .args(["--set", "output.turntable_size=32"]));
    check_table(&out, &methods);
    for m in &methods {
        assert!(out.join(m).join("point_cloud.ply").is_file(), "{m}");
        assert_eq!(finite_metrics(&out.join(m)).len(), 3, "{m}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn compare_every_method_in_2d() {
    let out = fresh("cmp2d");
    let methods: Vec<&str> = METHODS.split(',').collect();
    let blur = blur_model(&fresh("blur2d"));
    run(bin()
        .args(["compare", "--mode", "2d", "--methods", METHODS])
        .args(["--prompt", "a corgi", "--seed", "3", "--steps", "3"])
        .args(["--model", "tests/cases/sd/tiny-eps", "--out"])
        .arg(&out)
        .args(SMALL)
        .args(["--set", &blur])
        .args(["--set", "size=32", "--set", "output.log_every=1"]));
    check_table(&out, &methods);
    for m in &methods {
        assert_eq!(finite_metrics(&out.join(m)).len(), 3, "{m}");
        assert!(out.join(m).join("progress.gif").is_file());
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn distill2d_edit_from_an_image_writes_its_progression() {
    let out = fresh("edit");
    let img = root().join("assets/spot-cow/val/r_0.png");
    run(bin()
        .args([
            "distill2d",
            "--method",
            "bridge",
            "--prompt",
            "a photo of a cow",
        ])
        .args([
            "--model",
            "tests/cases/sd/tiny-eps",
            "--size",
            "32",
            "--steps",
            "4",
        ])
        .arg("--init-image")
        .arg(&img)
        .args(["--space", "pixel", "--lr", "0.05", "--out"])
        .arg(&out)
        .args(["--set", "guidance.bridge.stage_two_start=0"])
        .args(["--set", "guidance.bridge.source_prompt=\"a cow, painting\""])
        .args(["--set", "init_l2=0.1", "--set", "output.frame_every=2"]));
    let m = finite_metrics(&out);
    // log_every 10: step 0 and the last step are logged.
    assert_eq!(m.len(), 2, "{m:?}");
    // The start frame, then steps 2 and 4.
    use image::AnimationDecoder;
    let file = std::fs::File::open(out.join("progress.gif")).unwrap();
    let dec = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(file)).unwrap();
    let frames: Vec<image::Frame> = dec.into_frames().map(|f| f.unwrap()).collect();
    assert_eq!(frames.len(), 3);
    // The editing run started from the image (a cow on white), not from flat grey: the first
    // frame has both near-white and dark pixels.
    let first = frames[0].buffer();
    let lum: Vec<u32> = first
        .pixels()
        .map(|p| p[0] as u32 + p[1] as u32 + p[2] as u32)
        .collect();
    assert!(
        lum.iter().any(|&l| l > 600) && lum.iter().any(|&l| l < 400),
        "{lum:?}"
    );
    let fin = image::open(out.join("final.png")).unwrap().to_rgb8();
    assert_eq!(fin.dimensions(), (32, 32));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn distill2d_rejects_unknown_methods_and_missing_images() {
    let out = fresh("bad");
    let o = bin()
        .args(["distill2d", "--method", "nope", "--prompt", "x"])
        .args(["--model", "tests/cases/sd/tiny-eps", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("guidance.method"), "{}", text(&o));
    let o = bin()
        .args(["distill2d", "--prompt", "x", "--size", "32", "--steps", "1"])
        .args([
            "--model",
            "tests/cases/sd/tiny-eps",
            "--init-image",
            "no/such.png",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("no/such.png"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}

/// Several prompts: one `<slug>/<method>` folder each, one table row each; a second run with
/// the same arguments reuses the finished runs (their metrics are not rewritten) and `--rerun`
/// runs them again.
#[test]
fn compare_several_prompts_resumes_finished_runs() {
    let out = fresh("cmp-prompts");
    let prompts = out.join("prompts.txt");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        &prompts,
        "# two prompts\na corgi\n\na cat  # trailing comment\n",
    )
    .unwrap();
    let cmd = || {
        let mut c = bin();
        c.args(["compare", "--mode", "2d", "--methods", "sds"])
            .args(["--prompt", "a dog", "--prompts"])
            .arg(&prompts)
            .args([
                "--steps",
                "2",
                "--model",
                "tests/cases/sd/tiny-eps",
                "--out",
            ])
            .arg(&out)
            .args(["--set", "size=32", "--set", "output.log_every=1"]);
        c
    };
    run(&mut cmd());
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let got: Vec<&str> = rows.iter().map(|r| r["prompt"].as_str().unwrap()).collect();
    assert_eq!(got, ["a dog", "a corgi", "a cat"]);
    let metrics = |slug: &str| out.join(slug).join("sds").join("metrics.jsonl");
    for slug in ["a-dog", "a-corgi", "a-cat"] {
        assert_eq!(
            finite_metrics(&out.join(slug).join("sds")).len(),
            2,
            "{slug}"
        );
    }
    let before = std::fs::metadata(metrics("a-cat"))
        .unwrap()
        .modified()
        .unwrap();
    let again = run(&mut cmd());
    assert!(again.contains("finished before"), "{again}");
    assert_eq!(
        std::fs::metadata(metrics("a-cat"))
            .unwrap()
            .modified()
            .unwrap(),
        before,
        "a finished run was run again"
    );
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert_eq!(md.matches("| sds | a ").count(), 3, "{md}");
    run(cmd().arg("--rerun"));
    assert_ne!(
        std::fs::metadata(metrics("a-cat"))
            .unwrap()
            .modified()
            .unwrap(),
        before,
        "--rerun did not run it again"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// compare's per-method settings are checked before anything runs: a malformed or unknown
/// `--method-config`, `--rescale` without `--steps`, and the 3D-only options in 2D each fail
/// with a message naming the option.
#[test]
fn compare_rejects_bad_method_settings() {
    let base = ["compare", "--methods", "sds,vdm", "--prompt", "a red chair"];
    let cases: [(&[&str], &str); 5] = [
        (&["--method-config", "vdm"], "expected METHOD=FILE"),
        (
            &["--method-config", "sdi=configs/sdi.toml"],
            "`sdi` is not one of --methods",
        ),
        (&["--rescale"], "--rescale needs --steps"),
        (
            &["--mode", "2d", "--overlay", "configs/toyworld-overlay.toml"],
            "--mode 3d only",
        ),
        (
            &["--method-config", "vdm=configs/missing.toml"],
            "configs/missing.toml",
        ),
    ];
    for (extra, want) in cases {
        let out = bin().args(base).args(extra).output().unwrap();
        let t = text(&out);
        assert!(!out.status.success(), "{extra:?} succeeded:\n{t}");
        assert!(t.contains(want), "{extra:?}: want `{want}` in:\n{t}");
        assert!(!t.contains("panicked"), "{t}");
    }
}

/// A method that fails (here lmc without its blur model) is listed with its error, the other
/// methods still run and are tabulated, and the command exits non-zero.
#[test]
fn compare_goes_on_past_a_failing_method() {
    let out = fresh("cmp-fail");
    let o = bin()
        .args(["compare", "--mode", "2d", "--methods", "lmc,sds"])
        .args(["--prompt", "a corgi", "--steps", "1"])
        .args(["--model", "tests/cases/sd/tiny-eps", "--out"])
        .arg(&out)
        .args(["--set", "size=32"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("1 of 2 runs failed"), "{t}");
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("| sds |"), "{md}");
    assert!(
        md.contains("Failed runs") && md.contains("- lmc, \"a corgi\""),
        "{md}"
    );
    assert!(!t.contains("panicked"), "{t}");
    let _ = std::fs::remove_dir_all(&out);
}
