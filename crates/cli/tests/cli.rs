//! End-to-end tests of the `splatdream` binary on lavapipe.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splatdream"));
    c.env("SPLATDREAM_GARBAGE_FILL", "1");
    c
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("splatdream-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Mean RGB of the pixels whose distance from the centre (in units of the image width) lies
/// in [r0, r1).
fn ring_mean(img: &image::RgbImage, r0: f32, r1: f32) -> [f32; 3] {
    let (w, h) = img.dimensions();
    let (mut sum, mut n) = ([0f32; 3], 0f32);
    for (x, y, p) in img.enumerate_pixels() {
        let dx = (x as f32 + 0.5) / w as f32 - 0.5;
        let dy = (y as f32 + 0.5) / h as f32 - 0.5;
        let r = (dx * dx + dy * dy).sqrt();
        if r >= r0 && r < r1 {
            for c in 0..3 {
                sum[c] += p[c] as f32;
            }
            n += 1.0;
        }
    }
    sum.map(|s| s / n.max(1.0))
}

/// The shipped donut (assets/donut.ply, MIT), seen from straight above: a pink ring around a
/// hole that shows the background.
#[test]
fn render_donut_top_view_is_a_donut() {
    let cam = tmp("top.json");
    // OpenCV camera 0.45 units above the donut looking down −z (+z up in the scene).
    std::fs::write(
        &cam,
        r#"{"viewmat": [[1,0,0,0],[0,-1,0,0],[0,0,-1,0.45],[0,0,0,1]],
            "K": [[160,0,64],[0,160,64],[0,0,1]], "width": 128, "height": 128}"#,
    )
    .unwrap();
    let out = tmp("donut.png");
    let st = bin()
        .args(["render", "--ply"])
        .arg(root().join("assets/donut.ply"))
        .arg("--camera")
        .arg(&cam)
        .arg("--out")
        .arg(&out)
        .args(["--background", "0,1,0"])
        .status()
        .unwrap();
    assert!(st.success());
    let img = image::open(&out).unwrap().to_rgb8();
    let hole = ring_mean(&img, 0.0, 0.04);
    let ring = ring_mean(&img, 0.16, 0.27);
    let outside = ring_mean(&img, 0.48, 0.5);
    eprintln!("hole {hole:?} ring {ring:?} outside {outside:?}");
    // Hole and corners show the green background; the ring is icing with blue sprinkles
    // (red and blue well above the background's, green well below).
    assert!(
        hole[1] > 200.0 && hole[0] < 80.0,
        "hole is not background: {hole:?}"
    );
    assert!(
        outside[1] > 200.0 && outside[0] < 80.0,
        "outside is not background: {outside:?}"
    );
    assert!(
        ring[0] > 80.0 && ring[2] > 150.0 && ring[1] < 180.0 && ring[2] > ring[1],
        "ring is not icing: {ring:?}"
    );
}

#[test]
fn render_turntable_gif_and_errors() {
    let out = tmp("turn.gif");
    let st = bin()
        .args(["render", "--ply"])
        .arg(root().join("assets/donut.ply"))
        .args([
            "--orbit", "3", "--up", "z", "--width", "48", "--height", "48", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"GIF89a"), "not a GIF");

    // Bad inputs: non-zero exit, the file named, no panic.
    let missing = tmp("nope.ply");
    let o = bin()
        .args(["render", "--ply"])
        .arg(&missing)
        .arg("--out")
        .arg(tmp("x.png"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nope.ply") && !err.contains("panicked"),
        "{err}"
    );

    let bad_cam = tmp("bad.json");
    std::fs::write(&bad_cam, r#"{"viewmat": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "K": [[0,0,0],[0,1,0],[0,0,1]], "width": 8, "height": 8}"#).unwrap();
    let o = bin()
        .args(["render", "--ply"])
        .arg(root().join("assets/donut.ply"))
        .arg("--camera")
        .arg(&bad_cam)
        .arg("--out")
        .arg(tmp("y.png"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.json") && err.contains("`K`"), "{err}");

    let o = bin()
        .args(["--backend", "quantum", "info"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("quantum"));
}

#[test]
fn bench_raster_json() {
    let o = bin()
        .args(["bench", "raster", "--splats", "2000", "--sizes", "64"])
        .args(["--repeats", "2", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bench --json prints JSON");
    assert_eq!(j["schema"], "splatdream-bench/1");
    let r = j["results"].as_array().expect("results");
    let cases: Vec<&str> = r.iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(
        cases,
        ["raster/fwd/n=2000/64x64", "raster/bwd/n=2000/64x64"],
        "{j}"
    );
    for r in r {
        let v = r["median_ms"].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0 && v.is_finite(), "median_ms = {v}");
        assert_eq!(r["samples_ms"].as_array().map(Vec::len), Some(2));
        assert_eq!(r["params"]["splats"], 2000);
    }
}

#[test]
fn info_reports_adapter() {
    let o = bin().arg("info").output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("adapter:") && s.contains("max_storage_buffer_binding_size"),
        "{s}"
    );
}
