//! The egui viewer under Xvfb on lavapipe: `splatdream view` on a committed PLY and
//! `fit --viewer` take screenshots of their own window (egui's screenshot of the presented
//! frame), and the checks read the pixels.
//!
//! Needs `xvfb-run` (apt `xvfb xauth`; .ci/run installs it). Without it the tests fail with
//! that message: there is no silent skip (leave them out with `cargo test -- --skip viewer`). With
//! `SPLATDREAM_UPDATE_SCREENSHOTS=1` the screenshots are copied to docs/images/ (the README's).

mod common;

use std::path::Path;
use std::process::Command;

use common::{root, text, tmp};

fn xvfb() -> Command {
    let found = Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "xvfb-run is missing: apt-get install xvfb xauth (or leave these tests out with \
         `cargo test -- --skip viewer`)"
    );
    let mut c = Command::new("xvfb-run");
    c.args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_splatdream"))
        .current_dir(root());
    c
}

struct Shot {
    image: image::RgbaImage,
    meta: serde_json::Value,
}

fn load(png: &Path) -> Shot {
    let image = image::open(png)
        .unwrap_or_else(|e| panic!("{}: {e}", png.display()))
        .to_rgba8();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.json", png.display())).expect("screenshot sidecar"),
    )
    .expect("sidecar JSON");
    assert_eq!(meta["width"], image.width());
    assert_eq!(meta["height"], image.height());
    Shot { image, meta }
}

/// Pixels of `rect` (`[x0, y0, x1, y1]` in pixels).
fn pixels<'a>(img: &'a image::RgbaImage, rect: &serde_json::Value) -> Vec<&'a image::Rgba<u8>> {
    let r: Vec<u32> = (0..4)
        .map(|i| rect[i].as_f64().expect("rect") as u32)
        .collect();
    let (x1, y1) = (r[2].min(img.width()), r[3].min(img.height()));
    (r[1]..y1)
        .flat_map(|y| (r[0]..x1).map(move |x| img.get_pixel(x, y)))
        .collect()
}

fn dist(p: &image::Rgba<u8>, c: [f64; 3]) -> f64 {
    (0..3)
        .map(|k| (p[k] as f64 - c[k]).abs())
        .fold(0.0, f64::max)
}

/// The scene area shows a scene: a good part of it differs from the background colour, and
/// it is not one flat colour.
fn assert_scene_shown(shot: &Shot, min_fraction: f64) {
    let bg: Vec<f64> = (0..3)
        .map(|k| shot.meta["background"][k].as_f64().unwrap() * 255.0)
        .collect();
    let px = pixels(&shot.image, &shot.meta["scene_rect"]);
    assert!(px.len() > 10_000, "scene area of {} pixels", px.len());
    let differing = px
        .iter()
        .filter(|p| dist(p, [bg[0], bg[1], bg[2]]) > 24.0)
        .count();
    let fraction = differing as f64 / px.len() as f64;
    let mut colours: Vec<[u8; 3]> = px
        .iter()
        .map(|p| [p[0] >> 3, p[1] >> 3, p[2] >> 3])
        .collect();
    colours.sort();
    colours.dedup();
    assert!(
        fraction > min_fraction && fraction < 0.995,
        "{:.1} % of the scene area differs from the background {bg:?}",
        fraction * 100.0
    );
    assert!(
        colours.len() > 40,
        "only {} distinct colours",
        colours.len()
    );
}

fn keep_for_docs(png: &Path, name: &str) {
    if std::env::var_os("SPLATDREAM_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let dir = root().join("docs/images");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(png, dir.join(name)).unwrap();
    }
}

#[test]
fn view_shows_the_scene() {
    let mut c = xvfb();
    let dir = tmp("viewer", "view");
    let png = dir.join("view.png");
    let out = c
        .args(["view", "assets/donut.ply", "--screenshot"])
        .arg(&png)
        .args(["--width", "800", "--height", "520"])
        .output()
        .expect("spawn xvfb-run");
    assert!(out.status.success(), "view failed:\n{}", text(&out));
    let shot = load(&png);
    assert_eq!(shot.meta["splats"], 45624, "{}", shot.meta);
    assert_scene_shown(&shot, 0.15);
    // The donut's pink icing (about (0.9, 0.6, 0.8) in sRGB) must be on screen.
    let px = pixels(&shot.image, &shot.meta["scene_rect"]);
    let pink = px
        .iter()
        .filter(|p| p[0] > 180 && p[1] > 100 && p[1] < 190 && p[2] > 150 && p[0] > p[1] + 40)
        .count();
    assert!(pink > px.len() / 20, "{pink} pink pixels of {}", px.len());
    keep_for_docs(&png, "viewer.png");
}

#[test]
fn fit_viewer_shows_the_training_panel() {
    let mut c = xvfb();
    let dir = tmp("viewer", "fit");
    let png = dir.join("fit.png");
    let run = dir.join("run");
    let steps = 60;
    let out = c
        .args([
            "fit",
            "--config",
            "configs/spot-cow.toml",
            "--steps",
            &steps.to_string(),
        ])
        .args(["--set", "train.log_every=2", "--eval-every", "20", "--out"])
        .arg(&run)
        .args([
            "--viewer",
            "--viewer-screenshot-step",
            "6",
            "--viewer-screenshot",
        ])
        .arg(&png)
        .output()
        .expect("spawn xvfb-run");
    assert!(out.status.success(), "fit --viewer failed:\n{}", text(&out));
    // Closing the window did not stop training.
    assert!(run.join("point_cloud.ply").is_file(), "{}", text(&out));
    let shot = load(&png);
    let m = &shot.meta;
    assert_eq!(m["job"], "fit", "{m}");
    let step = m["step"].as_u64().unwrap();
    assert!(step >= 6, "screenshot at step {step}: {m}");
    assert!(m["loss_points"].as_u64().unwrap() >= 2, "{m}");
    assert_eq!(m["total"], steps);
    assert!(m["panel_rect"].is_array(), "no training panel: {m}");
    assert_scene_shown(&shot, 0.05);
    // The loss curve is drawn in the panel.
    let orange: Vec<f64> = (0..3)
        .map(|k| m["loss_colour"][k].as_f64().unwrap())
        .collect();
    let panel = pixels(&shot.image, &m["panel_rect"]);
    let curve = panel
        .iter()
        .filter(|p| dist(p, [orange[0], orange[1], orange[2]]) < 40.0)
        .count();
    assert!(curve > 60, "{curve} loss-curve pixels in the panel");
    keep_for_docs(&png, "viewer-fit.png");
}
