//! Helpers shared by the CLI end-to-end tests: the binary run from the repository root, its
//! output, and temporary folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the tests run the binary there, so relative paths are the README's).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `splatdream` binary of this build, in the repository root.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splatdream"));
    c.current_dir(root());
    c
}

/// stdout followed by stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run `c`, assert it succeeded (printing its command line and output if not), return its
/// output.
pub fn run(c: &mut Command) -> String {
    let out = c.output().expect("spawn splatdream");
    let t = text(&out);
    assert!(out.status.success(), "{c:?} failed:\n{t}");
    t
}

/// A fresh folder unique to this process, `prefix` and `tag`, removed on drop unless the test
/// failed (then it is kept for inspection).
pub struct TempDir(pub PathBuf);

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

/// A new empty [`TempDir`] named `splatdream-<prefix>-<pid>-<tag>` in the system temp folder.
pub fn tmp(prefix: &str, tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("splatdream-{prefix}-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// What ffprobe (FFmpeg, a third-party reader) finds in a video's first video stream.
#[derive(Debug, PartialEq)]
pub struct Probe {
    /// `codec_name`, e.g. `h264`.
    pub codec: String,
    /// Frames counted by decoding (`-count_frames`).
    pub frames: u64,
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// `r_frame_rate`, e.g. `20/1`.
    pub rate: String,
}

/// Run `ffprobe` on `path`. Panics naming what to install when ffprobe is missing (`.ci/run`
/// installs FFmpeg).
pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,r_frame_rate,nb_read_frames",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe (FFmpeg; .ci/run installs it) did not start: {e}"));
    let t = text(&out);
    assert!(out.status.success(), "ffprobe {}: {t}", path.display());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &j["streams"][0];
    let num = |k: &str| -> u64 {
        s[k].as_u64()
            .or_else(|| s[k].as_str()?.parse().ok())
            .unwrap_or_else(|| panic!("ffprobe: no {k} in {t}"))
    };
    Probe {
        codec: s["codec_name"].as_str().unwrap_or_default().to_string(),
        frames: num("nb_read_frames"),
        size: (num("width") as u32, num("height") as u32),
        rate: s["r_frame_rate"].as_str().unwrap_or_default().to_string(),
    }
}

/// A short `fit` of the shipped Spot-the-cow views into `out`: quarter resolution, `steps`
/// steps from `points` random splats, no turntable, no periodic evaluation, two evaluation
/// views without saved renders. Add `--set` options after it (later ones win).
pub fn short_fit(out: &Path, steps: u64, points: u32) -> Command {
    let mut c = bin();
    c.args([
        "fit",
        "--config",
        "configs/spot-cow.toml",
        "--downscale",
        "4",
    ])
    .args(["--steps", &steps.to_string(), "--eval-every", "0", "--out"])
    .arg(out)
    .args(["--set", &format!("init.random_points={points}")])
    .args(["--set", "output.turntable_frames=0"])
    .args([
        "--set",
        "eval.save_renders=false",
        "--set",
        "eval.max_views=2",
    ]);
    c
}
