//! `splatdream gallery` (issue 29, item 3): a static page over a suite folder. The page is
//! checked as text (cards per prompt, the sortable table, image links that resolve) and in
//! headless Chromium (Debian's `chromium`, installed by `.ci/run`): every image decodes and a
//! screenshot shows cards and the table. Bad input: no runs, a corrupt `config.toml`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, run, text, tmp};

/// A fake finished run: its config, a views strip of `colour`, a metrics line and, when
/// `iou` is given, a toy-world evaluation.
fn fake_run(dir: &Path, prompt: &str, method: &str, colour: [u8; 3], iou: Option<f64>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("prompt = \"{prompt}\"\nsteps = 150\n\n[guidance]\nmethod = \"{method}\"\n"),
    )
    .unwrap();
    image::RgbImage::from_fn(96, 24, |x, _| {
        if x % 24 < 12 {
            image::Rgb(colour)
        } else {
            image::Rgb([255, 255, 255])
        }
    })
    .save(dir.join("compare-views.png"))
    .unwrap();
    std::fs::write(
        dir.join("metrics.jsonl"),
        "{\"step\":149,\"splats\":6000,\"loss\":1.0}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("compare-row.json"),
        format!(
            "{{\"prompt\":\"{prompt}\",\"method\":\"{method}\",\"steps\":150,\"seconds\":236.5}}"
        ),
    )
    .unwrap();
    if let Some(iou) = iou {
        std::fs::write(
            dir.join("evaluation.json"),
            format!(
                "{{\"iou\":{iou},\"masked_psnr_db\":7.85,\"colour_error\":0.314,\
                 \"r_precision_category\":0.38,\"r_precision_colour\":1.0}}"
            ),
        )
        .unwrap();
    }
}

/// A fake run: folder, prompt, method, its image's colour, its IoU (None: not evaluated).
type FakeRun = (
    &'static str,
    &'static str,
    &'static str,
    [u8; 3],
    Option<f64>,
);

#[test]
fn gallery_page_shows_every_run_and_renders_in_headless_chromium() {
    let dir = tmp("gallery", "suite");
    let runs: [FakeRun; 4] = [
        (
            "a-red-chair/sds",
            "a red chair",
            "sds",
            [220, 30, 30],
            Some(0.535),
        ),
        (
            "a-red-chair/vdm",
            "a red chair",
            "vdm",
            [200, 60, 90],
            Some(0.418),
        ),
        ("a-blue-car/sds", "a blue car", "sds", [30, 30, 220], None),
        (
            "a-blue-car/vdm",
            "a blue car",
            "vdm",
            [60, 90, 200],
            Some(0.617),
        ),
    ];
    for (folder, prompt, method, colour, iou) in runs {
        fake_run(&dir.join(folder), prompt, method, colour, iou);
    }
    // Not a run: no output next to the config (an interrupted run's folder at its start).
    std::fs::create_dir_all(dir.join("a-blue-car/sdi")).unwrap();
    std::fs::write(
        dir.join("a-blue-car/sdi/config.toml"),
        "prompt = \"a blue car\"\n",
    )
    .unwrap();

    let log = run(bin().arg("gallery").arg(&*dir));
    assert!(log.contains("4 runs"), "{log}");
    let page_path = dir.join("index.html");
    let html = std::fs::read_to_string(&page_path).unwrap();
    for needle in [
        "<h2>a red chair</h2>",
        "<h2>a blue car</h2>",
        "IoU 0.535",
        "<th>IoU</th>",
        "data-v=\"0.617\"",
        "addEventListener('click'",
    ] {
        assert!(html.contains(needle), "{needle} missing from:\n{html}");
    }
    assert!(
        !html.contains("sdi"),
        "a folder with no outputs became a run"
    );
    let srcs: Vec<&str> = html
        .split("<img src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(srcs.len(), 4, "{html}");
    for s in &srcs {
        assert!(dir.join(s).is_file(), "image link {s} does not resolve");
    }

    // Headless Chromium: the DOM after load says every image decoded; the screenshot is a page.
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("headless Chromium is needed (Debian: apt-get install chromium; .ci/run does)");
    let url = format!(
        "file://{}",
        std::path::absolute(&page_path).unwrap().display()
    );
    let headless = |extra: &[&str]| {
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(["--virtual-time-budget=5000", "--window-size=1000,1400"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = headless(&["--dump-dom"]);
    assert!(
        dom.contains("data-images=\"4\"") && dom.contains("data-loaded=\"4\""),
        "images did not load: {}",
        dom.lines().find(|l| l.contains("<body")).unwrap_or(&dom)
    );
    assert_eq!(
        dom.matches("<tr><td>").count(),
        4,
        "table rows after load: {dom}"
    );
    let shot = dir.join("shot.png");
    headless(&[&format!("--screenshot={}", shot.display())]);
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1000, 1400));
    // The cards' views strips: pixels of each run's colour are on the screenshot.
    for colour in [[220, 30, 30], [30, 30, 220]] {
        let near = |p: &image::Rgb<u8>| (0..3).all(|c| p.0[c].abs_diff(colour[c]) <= 8);
        let hits = img.pixels().filter(|p| near(p)).count();
        assert!(
            hits > 500,
            "colour {colour:?}: {hits} pixels on the screenshot"
        );
    }
}

#[test]
fn gallery_bad_input_is_named() {
    let empty = tmp("gallery", "empty");
    let out = bin().arg("gallery").arg(&*empty).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("no runs found"), "{}", text(&out));

    let dir = tmp("gallery", "corrupt");
    fake_run(&dir.join("run"), "a cup", "sds", [0, 200, 0], None);
    std::fs::write(dir.join("run/config.toml"), "prompt = \"unterminated\n").unwrap();
    let out = bin().arg("gallery").arg(&*dir).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("config.toml"), "{}", text(&out));
}
