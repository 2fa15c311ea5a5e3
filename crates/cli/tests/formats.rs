//! Compressed scene formats (issue 28, item 3) against PlayCanvas splat-transform (pinned in
//! `tools/splat_transform.sh`; SPZ through Niantic's own library compiled into it): SPZ 2–4
//! and compressed PLY written by us are read by splat-transform, and written by
//! splat-transform are read by us; a `.splat` file is decoded alike by both. Every value must
//! come back within its format's quantisation step (the steps are in the format notes of
//! `crates/splat/src/formats/`), which a swapped SH order, channel order, quaternion order
//! or wrong scale encoding exceeds by far.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, root, run, tmp};
use splat::SplatData;
use splat::scene::sh_coeffs;

/// Run splat-transform on `input` → `output` with `extra` options; no silent skip.
fn splat_transform(input: &Path, output: &Path, extra: &[&str]) {
    let st = Command::new("bash")
        .arg(root().join("tools/splat_transform.sh"))
        .args(["-q", "-w"])
        .args(extra)
        .arg(input)
        .arg(output)
        .status()
        .expect("bash");
    assert!(
        st.success(),
        "tools/splat_transform.sh {} → {} failed: it needs node + npm (.ci/run installs them)",
        input.display(),
        output.display()
    );
}

/// A deterministic scene inside every format's ranges: 600 splats (three 256-splat chunks)
/// spread over a 4-unit box, SH degree `deg`.
fn scene(deg: u32) -> SplatData {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut u = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let n = 600;
    let k = sh_coeffs(deg);
    let mut d = SplatData {
        sh_degree: deg,
        ..Default::default()
    };
    for _ in 0..n {
        d.means
            .extend([4.0 * u() - 2.0, 4.0 * u() - 1.0, 3.0 * u() - 2.5]);
        let q = [u() - 0.5, u() - 0.5, u() - 0.5, u() - 0.5];
        d.quats.extend(q.map(|c| c * 3.0));
        d.log_scales
            .extend([-6.0 + 4.0 * u(), -6.0 + 4.0 * u(), -6.0 + 4.0 * u()]);
        d.opacity_logits.push(8.0 * u() - 4.0);
        d.sh.extend([4.0 * u() - 2.0, 4.0 * u() - 2.0, 4.0 * u() - 2.0]);
        d.sh.extend((3..3 * k).map(|_| 1.6 * u() - 0.8));
    }
    d
}

/// Largest errors a format may make on each quantity (half a step, plus float slack).
#[derive(Clone, Copy, Debug)]
struct Tol {
    /// Mean coordinates (scene units).
    mean: f32,
    /// Log scales.
    log_scale: f32,
    /// Opacity as a probability.
    alpha: f32,
    /// SH DC coefficient.
    dc: f32,
    /// Other SH coefficients.
    rest: f32,
    /// 1 − |q·q'| of the unit quaternions.
    quat: f32,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn unit(q: &[f32]) -> [f32; 4] {
    let n = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    [q[0] / n, q[1] / n, q[2] / n, q[3] / n]
}

/// Every splat of `want` against the splat of `got` nearest its mean (writers may reorder).
fn assert_close(want: &SplatData, got: &SplatData, tol: Tol, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: splat count");
    assert_eq!(got.sh_degree, want.sh_degree, "{what}: SH degree");
    let k = sh_coeffs(want.sh_degree);
    let mut worst = [0.0f32; 6];
    for i in 0..want.len() {
        let m = &want.means[3 * i..3 * i + 3];
        let j = (0..got.len())
            .min_by(|&a, &b| {
                let d = |x: usize| {
                    (0..3)
                        .map(|c| (got.means[3 * x + c] - m[c]).powi(2))
                        .sum::<f32>()
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        let max_diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        let qa = unit(&want.quats[4 * i..4 * i + 4]);
        let qb = unit(&got.quats[4 * j..4 * j + 4]);
        let dot: f32 = qa.iter().zip(&qb).map(|(a, b)| a * b).sum();
        let (sa, sb) = (
            &want.sh[3 * k * i..3 * k * (i + 1)],
            &got.sh[3 * k * j..3 * k * (j + 1)],
        );
        let errs = [
            max_diff(m, &got.means[3 * j..3 * j + 3]),
            max_diff(
                &want.log_scales[3 * i..3 * i + 3],
                &got.log_scales[3 * j..3 * j + 3],
            ),
            (sigmoid(want.opacity_logits[i]) - sigmoid(got.opacity_logits[j])).abs(),
            max_diff(&sa[..3], &sb[..3]),
            max_diff(&sa[3..], &sb[3..]),
            1.0 - dot.abs(),
        ];
        for (w, e) in worst.iter_mut().zip(errs) {
            *w = w.max(e);
        }
    }
    let limits = [
        tol.mean,
        tol.log_scale,
        tol.alpha,
        tol.dc,
        tol.rest,
        tol.quat,
    ];
    let names = [
        "mean",
        "log scale",
        "alpha",
        "SH DC",
        "SH rest",
        "1 − |q·q'|",
    ];
    eprintln!("{what}: worst errors {worst:?}");
    for ((w, l), name) in worst.iter().zip(limits).zip(names) {
        assert!(
            w <= &l,
            "{what}: {name} error {w} > {l} (all worst: {worst:?})"
        );
    }
}

/// SPZ's steps: 1/4096 positions, 1/16 log scales, 1/255 alpha, 1/(0.15·255) DC, SH
/// buckets of 8/128 (degree 1) and 16/128 (2–3); 9-bit smallest-three quaternions (v3, v4).
const SPZ: Tol = Tol {
    mean: 0.5 / 4096.0 + 1e-5,
    log_scale: 0.5 / 16.0 + 1e-5,
    alpha: 0.5 / 255.0 + 1e-5,
    dc: 0.5 / (0.15 * 255.0) + 1e-5,
    rest: 8.5 / 128.0 + 1e-5,
    quat: 2e-5,
};

/// Compressed PLY's steps, at most: 4-unit boxes in 10 bits (y) / 11 bits, 4-unit log-scale
/// ranges in 10 bits, colour ranges of ≤ 1.13 in 8 bits (÷ C0 for the DC), alpha 8 bits, SH
/// 8/256, 10-bit quaternion components.
const COMPRESSED: Tol = Tol {
    mean: 0.5 * 4.0 / 1023.0 + 1e-5,
    log_scale: 0.5 * 4.0 / 1023.0 + 1e-5,
    alpha: 0.5 / 255.0 + 1e-5,
    dc: 0.5 * 1.13 / 255.0 / 0.282_094_8 + 1e-5,
    rest: 8.0 / 256.0 + 1e-5,
    quat: 2e-5,
};

fn convert(input: &Path, out: &Path, extra: &[&str]) {
    run(bin().arg("convert").arg(input).arg(out).args(extra));
}

#[test]
fn spz_and_compressed_ply_round_trip_through_splat_transform() {
    let dir = tmp("formats", "rt");
    for deg in [3, 1] {
        let want = scene(deg);
        let ply = dir.join(format!("scene{deg}.ply"));
        splat::ply::write_ply(&ply, &want).unwrap();
        let cases: [(&str, &[&str], &[&str], Tol); 3] = [
            ("spz", &["--spz-version", "4"], &["--spz-version", "4"], SPZ),
            ("spz", &["--spz-version", "3"], &["--spz-version", "3"], SPZ),
            ("compressed.ply", &[], &[], COMPRESSED),
        ];
        for (ext, ours_opt, theirs_opt, tol) in cases {
            let tag = format!("deg {deg} {ext} {}", ours_opt.join(" "));
            // Ours written, theirs read.
            let ours = dir.join(format!("ours{deg}.{ext}"));
            let back = dir.join(format!("ours{deg}-back.ply"));
            convert(&ply, &ours, ours_opt);
            splat_transform(&ours, &back, &[]);
            let got = splat::ply::read_ply(&back).unwrap();
            assert_close(&want, &got, tol, &format!("{tag}: ours → splat-transform"));
            // Theirs written, ours read.
            let theirs = dir.join(format!("theirs{deg}.{ext}"));
            let mine = dir.join(format!("theirs{deg}-back.ply"));
            splat_transform(&ply, &theirs, theirs_opt);
            convert(&theirs, &mine, &[]);
            let got = splat::ply::read_ply(&mine).unwrap();
            assert_close(&want, &got, tol, &format!("{tag}: splat-transform → ours"));
        }
        // SPZ 2 (x, y, z of the quaternion in 8 bits each), which splat-transform reads.
        let v2 = dir.join(format!("v2-{deg}.spz"));
        let back = dir.join(format!("v2-{deg}-back.ply"));
        convert(&ply, &v2, &["--spz-version", "2"]);
        assert_eq!(
            &std::fs::read(&v2).unwrap()[..2],
            &[0x1f, 0x8b],
            "SPZ 2 is gzip"
        );
        splat_transform(&v2, &back, &[]);
        // x, y, z at 1/127.5; w = √(1 − |xyz|²) magnifies their error where w is small.
        let tol = Tol { quat: 5e-3, ..SPZ };
        let got = splat::ply::read_ply(&back).unwrap();
        assert_close(
            &want,
            &got,
            tol,
            &format!("deg {deg} spz v2: ours → splat-transform"),
        );
    }
}

/// `convert --up -y` (the rotation `generate` applies to its PLYs for SuperSplat and
/// PlayCanvas) equals splat-transform's own `--rotate 270,0,0` of the z-up scene, and `--up y`
/// its `--rotate 90,0,0` (in its convention +90° about x takes z to +y), SH coefficients of
/// degree 3 included: a wrong SH band order, sign or quaternion product fails here. Our files
/// pass through splat-transform once (PLY → PLY, float32 unchanged) so that the values compared
/// are the bytes on disk, not our reader's turn back to z-up.
#[test]
fn up_axis_matches_splat_transform_rotation() {
    let dir = tmp("formats", "up");
    let want = scene(3);
    let ply = dir.join("z-up.ply");
    splat::ply::write_ply(&ply, &want).unwrap();
    let float = Tol {
        mean: 1e-5,
        log_scale: 1e-6,
        alpha: 1e-6,
        dc: 1e-6,
        rest: 1e-4,
        quat: 1e-6,
    };
    for (up, rotate) in [("-y", "270,0,0"), ("y", "90,0,0")] {
        let theirs = dir.join(format!("theirs{up}.ply"));
        let st = Command::new("bash")
            .arg(root().join("tools/splat_transform.sh"))
            .args(["-q", "-w"])
            .arg(&ply)
            .args(["-r", rotate])
            .arg(&theirs)
            .status()
            .expect("bash");
        assert!(
            st.success(),
            "tools/splat_transform.sh --rotate failed (needs node + npm)"
        );
        let theirs = splat::ply::read_ply(&theirs).unwrap();
        let ours = dir.join(format!("ours{up}.ply"));
        convert(&ply, &ours, &["--up", up]);
        assert_eq!(
            splat::ply::declared_up(&ours).unwrap().map(|u| u.name()),
            Some(up)
        );
        let raw = dir.join(format!("ours{up}-raw.ply"));
        splat_transform(&ours, &raw, &[]);
        let raw = splat::ply::read_ply(&raw).unwrap();
        // z up → ∓y up: the highest splat has the most negative (−y) or positive (y) y.
        let top = (0..want.len())
            .max_by(|&a, &b| want.means[3 * a + 2].total_cmp(&want.means[3 * b + 2]))
            .unwrap();
        let sign = if up == "-y" { -1.0 } else { 1.0 };
        assert!((raw.means[3 * top + 1] - sign * want.means[3 * top + 2]).abs() < 1e-5);
        let what = format!("convert --up {up} vs splat-transform -r {rotate}");
        assert_close(&theirs, &raw, float, &what);
        // Our reader turns the file back to the z-up scene.
        let back = splat::ply::read_ply(&ours).unwrap();
        assert_close(
            &want,
            &back,
            float,
            &format!("read_ply of an --up {up} file"),
        );
    }
}

#[test]
fn splat_files_decode_as_splat_transform_decodes_them() {
    let dir = tmp("formats", "splat");
    let mut want = scene(0);
    // `.splat` colours are 0.5 + C0·DC in [0, 1]: keep the DC inside (|DC| ≤ 1.7).
    for c in &mut want.sh {
        *c *= 0.85;
    }
    // The antimatter15 layout, written here by hand.
    let mut bytes = Vec::with_capacity(32 * want.len());
    for i in 0..want.len() {
        for a in 0..3 {
            bytes.extend_from_slice(&want.means[3 * i + a].to_le_bytes());
        }
        for a in 0..3 {
            bytes.extend_from_slice(&want.log_scales[3 * i + a].exp().to_le_bytes());
        }
        let byte = |x: f32| (x * 255.0).round().clamp(0.0, 255.0) as u8;
        for c in 0..3 {
            bytes.push(byte(0.5 + 0.282_094_8 * want.sh[3 * i + c]));
        }
        bytes.push(byte(sigmoid(want.opacity_logits[i])));
        let q = unit(&want.quats[4 * i..4 * i + 4]);
        bytes.extend(q.map(|c| (c * 128.0 + 128.0).round().clamp(0.0, 255.0) as u8));
    }
    let file = dir.join("scene.splat");
    std::fs::write(&file, &bytes).unwrap();
    let theirs = dir.join("theirs.ply");
    let ours = dir.join("ours.ply");
    splat_transform(&file, &theirs, &[]);
    convert(&file, &ours, &[]);
    let (t, o) = (
        splat::ply::read_ply(&theirs).unwrap(),
        splat::ply::read_ply(&ours).unwrap(),
    );
    // Both decode the same bytes: equal up to float noise and splat-transform's rotation
    // decode (b/255·2 − 1 where the writer used (b − 128)/128: under 0.01 after normalising).
    let tight = Tol {
        mean: 1e-6,
        log_scale: 1e-5,
        alpha: 1e-5,
        dc: 1e-5,
        rest: 0.0,
        quat: 5e-4,
    };
    assert_close(&t, &o, tight, ".splat: ours vs splat-transform");
    let loose = Tol {
        mean: 1e-6,
        log_scale: 1e-5,
        alpha: 0.5 / 255.0 + 1e-5,
        dc: 0.5 / 255.0 / 0.282_094_8 + 1e-5,
        rest: 0.0,
        quat: 1e-4,
    };
    assert_close(&want, &o, loose, ".splat: ours vs the scene written");
    // Rendering reads it too (one frame, through the same reader).
    let png = dir.join("scene.png");
    run(bin()
        .arg("render")
        .arg("--ply")
        .arg(&file)
        .args(["--width", "32", "--height", "32", "--out"])
        .arg(&png));
    assert!(png.is_file());
}
