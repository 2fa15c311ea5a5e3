//! End-to-end tests of `splatdream sample` and `splatdream bench unet` on the committed tiny
//! SD 2.1 models (`tests/cases/sd/tiny-eps`, `tiny-v`), on lavapipe.
//!
//! Every run is a child process (about 20–40 s each in a debug build, mostly shader
//! compilation), so independent runs inside a test are spawned together.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splatdream"));
    c.env("SPLATDREAM_GARBAGE_FILL", "1");
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model(name: &str) -> PathBuf {
    root().join("tests/cases/sd").join(name)
}

/// A fresh directory unique to this process and `tag`, removed on drop unless the test
/// failed (then it is kept for inspection).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn tmp(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("splatdream-sample-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// `splatdream sample` on `model` with `extra` arguments, started (not awaited).
fn sample(model: &Path, seed: u64, out: &Path, extra: &[&str]) -> Child {
    bin()
        .arg("sample")
        .arg("--model")
        .arg(model)
        .args(["--prompt", "a corgi", "--steps", "3", "--seed"])
        .arg(seed.to_string())
        .arg("--out")
        .arg(out)
        .args(extra)
        .spawn()
        .unwrap()
}

/// Wait for `child`; print its output; fail on a panic message.
fn finish(what: &str, child: Child) -> Output {
    let t = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!(
        "--- {what}: {} (waited {:.1} s)\nstdout: {}\nstderr: {err}",
        o.status,
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!err.contains("panicked"), "{what}: panic:\n{err}");
    o
}

fn ok(what: &str, child: Child) -> Output {
    let o = finish(what, child);
    assert!(
        o.status.success(),
        "{what}: exit {}:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn failed(what: &str, child: Child) -> String {
    let o = finish(what, child);
    assert!(!o.status.success(), "{what}: succeeded, expected an error");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The default image side from the configs: U-Net `sample_size` × the VAE downscale
/// (2^(levels − 1)).
fn native_side(model: &Path) -> u32 {
    let unet = json(&model.join("unet/config.json"));
    let vae = json(&model.join("vae/config.json"));
    let sample = unet["sample_size"].as_u64().expect("unet sample_size") as u32;
    let levels = vae["block_out_channels"].as_array().unwrap().len() as u32;
    sample << (levels - 1)
}

/// The PNG at `path`: its dimensions and per-channel variance over all pixels.
fn png(path: &Path) -> ((u32, u32), f64) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let v: Vec<f64> = img.as_raw().iter().map(|&x| x as f64).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    (img.dimensions(), var)
}

#[test]
fn sample_native_size() {
    let eps = model("tiny-eps");
    let side = native_side(&eps);
    let d = tmp("native");
    let out = d.join("a.png");
    let o = ok("sample tiny-eps", sample(&eps, 1, &out, &[]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("wrote"), "{stdout}");
    let (dims, var) = png(&out);
    assert_eq!(dims, (side, side), "tiny-eps native size");
    assert!(var > 0.0, "constant image");
}

/// v-prediction at an explicit non-square size; the same seed gives the same bytes, another
/// seed another image. (On tiny-v at 64×48, the cheapest sampling run: each process spends
/// most of its time compiling shaders, so the three runs go in parallel.)
#[test]
fn sample_v_prediction_explicit_size_and_seeds() {
    let v = model("tiny-v");
    let d = tmp("seeds");
    let (a, b, c) = (d.join("a.png"), d.join("b.png"), d.join("c.png"));
    let size = ["--width", "64", "--height", "48"];
    let runs = [
        sample(&v, 3, &a, &size),
        sample(&v, 3, &b, &size),
        sample(&v, 4, &c, &size),
    ];
    for (i, child) in runs.into_iter().enumerate() {
        ok(&format!("sample tiny-v run {i}"), child);
    }
    let (dims, var) = png(&a);
    assert_eq!(dims, (64, 48));
    assert!(var > 0.0, "constant image");
    assert_eq!(png(&c).0, (64, 48));
    let (ab, bb, cb) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert!(ab == bb, "same seed, different PNG bytes");
    let ia = image::load_from_memory(&ab).unwrap().to_rgb8();
    let ic = image::load_from_memory(&cb).unwrap().to_rgb8();
    let differing = ia
        .as_raw()
        .iter()
        .zip(ic.as_raw())
        .filter(|(x, y)| x != y)
        .count();
    assert!(
        differing > ia.as_raw().len() / 10,
        "seeds 3 and 4 give nearly the same image ({differing} values differ)"
    );
}

#[test]
fn sample_errors_are_clean() {
    let d = tmp("errors");
    // A model folder without unet/.
    let broken = d.join("no-unet");
    copy_dir(&model("tiny-eps"), &broken, &|p| p.ends_with("unet"));
    // An empty HF cache.
    let hub = d.join("hub");
    std::fs::create_dir_all(&hub).unwrap();
    let no_unet = sample(&broken, 1, &d.join("x.png"), &[]);
    // --offline: the cache lookup alone (without it the id would be downloaded;
    // crates/cli/tests/download.rs).
    let no_id = bin()
        .args([
            "--offline",
            "sample",
            "--model",
            "org/doesnotexist",
            "--prompt",
            "x",
            "--out",
        ])
        .arg(d.join("y.png"))
        .env("HF_HUB_CACHE", &hub)
        .spawn()
        .unwrap();
    let bad_width = sample(&model("tiny-eps"), 1, &d.join("z.png"), &["--width", "30"]);

    let err = failed("missing unet/", no_unet);
    assert!(
        err.contains(&broken.display().to_string()) && err.contains("unet"),
        "{err}"
    );
    let err = failed("unknown HF id", no_id);
    assert!(
        err.contains("org/doesnotexist")
            && err.contains("Hugging Face cache")
            && err.contains("offline"),
        "{err}"
    );
    assert!(err.contains(&hub.display().to_string()), "{err}");
    let err = failed("--width 30", bad_width);
    assert!(err.contains("30") && err.contains("multiple"), "{err}");
    for f in ["x.png", "y.png", "z.png"] {
        assert!(!d.join(f).exists(), "{f} written by a failed run");
    }
}

#[test]
fn bench_unet_json() {
    let o = ok(
        "bench unet",
        bin()
            .args(["bench", "unet", "--model"])
            .arg(model("tiny-eps"))
            .args(["--batch", "1", "--latent", "16", "--repeats", "1", "--json"])
            .spawn()
            .unwrap(),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})"));
    let r = v["results"].as_array().expect("results");
    let cases: Vec<&str> = r.iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(
        cases,
        ["unet/fwd/b=1/16x16/f32", "unet/fwd+grad/b=1/16x16/f32"],
        "{v}"
    );
    for r in r {
        let x = r["median_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("`median_ms` is not a number: {r}"));
        assert!(x > 0.0 && x.is_finite(), "median_ms = {x}");
        assert_eq!(r["params"]["batch"], 1);
        assert_eq!(r["params"]["latent"], 16);
    }
}

/// f16 compute runs. On an adapter without SHADER_F16 it must fail cleanly, naming the feature,
/// and the test then fails too unless `SPLATDREAM_NO_F16=1` says that adapter is accepted
/// (lavapipe, CI's adapter, has the feature).
#[test]
fn sample_f16_runs() {
    let d = tmp("f16");
    let out = d.join("f16.png");
    let o = finish(
        "sample --dtype f16",
        bin()
            .arg("sample")
            .arg("--model")
            .arg(model("tiny-v"))
            .args([
                "--prompt", "a corgi", "--steps", "1", "--width", "64", "--height", "48",
                "--dtype", "f16", "--out",
            ])
            .arg(&out)
            .spawn()
            .unwrap(),
    );
    if o.status.success() {
        assert_eq!(png(&out).0, (64, 48));
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("SHADER_F16"), "{err}");
        assert!(
            std::env::var_os("SPLATDREAM_NO_F16").is_some_and(|v| v == "1"),
            "sample --dtype f16 failed (the adapter lacks SHADER_F16); set SPLATDREAM_NO_F16=1 \
             to accept an adapter without it: {err}"
        );
    }
}

/// Copy `from` to `to`, leaving out the entries for which `skip` holds.
fn copy_dir(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if skip(&e.path()) {
            continue;
        }
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst, skip);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}
