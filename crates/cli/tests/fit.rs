//! End-to-end test of `splatdream fit` on the shipped Spot-the-cow views (lavapipe in CI):
//! a short fit must lower the training loss and raise held-out PSNR by stated margins, write
//! every output, export a PLY that `splatdream render` reloads with identical pixels, and that
//! PLY must open in a third-party tool (PlayCanvas splat-transform, pinned in
//! tools/splat_transform.sh; needs Node.js and the npm registry, or its cache).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splatdream"));
    c.env("SPLATDREAM_GARBAGE_FILL", "1");
    c.current_dir(root());
    c
}

fn run(c: &mut Command) -> String {
    let out = c.output().expect("spawn splatdream");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{c:?} failed:\n{text}");
    text
}

/// Margins of the short fit (64×64 views, 150 steps from 3,000 random splats, the colours'
/// learning rate raised to 0.02 so that 150 steps depend on their gradient). Measured
/// (session 17): held-out PSNR 7.36 → 19.11 dB; with the SH colour gradient's sign flipped in
/// `shaders/project_backward.wgsl` 15.37 dB; with the SSIM gradient's sign flipped in
/// `shaders/ssim_backward.wgsl` 11.56 dB (and the loss barely falls).
const MIN_HELDOUT_PSNR_DB: f64 = 17.5;
const MIN_PSNR_GAIN_DB: f64 = 8.0;
const MAX_LOSS_RATIO: f64 = 0.7;

#[test]
fn fit_spot_cow_improves_and_exports_a_reloadable_ply() {
    let out = std::env::temp_dir().join(format!("splatdream-fit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let log = run(bin()
        .args(["fit", "--config", "configs/spot-cow.toml", "--steps", "150"])
        .args(["--downscale", "2", "--eval-every", "75", "--out"])
        .arg(&out)
        .args([
            "--set",
            "init.random_points=3000",
            "--set",
            "output.turntable_frames=6",
        ])
        .args(["--set", "densify.start=50", "--set", "densify.stop=120"])
        .args(["--set", "lr.sh_dc=0.02", "--set", "output.mesh=true"]));
    assert!(log.contains("PSNR"), "no PSNR reported:\n{log}");

    // Metrics: evaluation at step 0 and at the end; loss and PSNR improved.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let evals = m["evals"].as_array().unwrap();
    let first = &evals[0];
    let last = evals.last().unwrap();
    assert_eq!(first["step"], 0);
    assert_eq!(last["step"], 150);
    let gain = last["psnr"].as_f64().unwrap() - first["psnr"].as_f64().unwrap();
    println!(
        "held-out PSNR {:.2} → {:.2} dB, SSIM {:?}",
        first["psnr"].as_f64().unwrap(),
        last["psnr"].as_f64().unwrap(),
        last["ssim"]
    );
    assert!(
        last["psnr"].as_f64().unwrap() >= MIN_HELDOUT_PSNR_DB,
        "held-out PSNR {:.2} dB is below the floor {MIN_HELDOUT_PSNR_DB} dB: {evals:?}",
        last["psnr"].as_f64().unwrap()
    );
    assert!(
        gain >= MIN_PSNR_GAIN_DB,
        "held-out PSNR rose by only {gain:.2} dB: {evals:?}"
    );
    let losses: Vec<f64> = m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["loss"].as_f64().unwrap())
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()));
    let head = losses[..3].iter().sum::<f64>() / 3.0;
    let tail = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        tail <= MAX_LOSS_RATIO * head,
        "training loss fell only from {head:.4} to {tail:.4}"
    );
    for f in [
        "config.toml",
        "point_cloud.ply",
        "turntable.gif",
        "renders/r_0.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // The exported PLY, reloaded by `splatdream render` from the same camera, gives exactly the
    // pixels of the in-training render (left half of renders/r_0.png).
    let png = out.join("reloaded.png");
    run(bin()
        .args(["render", "--ply"])
        .arg(out.join("point_cloud.ply"))
        .arg("--camera")
        .arg(out.join("renders/r_0.camera.json"))
        .args(["--background", "1,1,1", "--out"])
        .arg(&png));
    let reloaded = image::open(&png).unwrap().to_rgb8();
    let side = image::open(out.join("renders/r_0.png")).unwrap().to_rgb8();
    let (w, h) = reloaded.dimensions();
    assert_eq!(side.dimensions(), (2 * w, h));
    let mut differing = 0;
    for (x, y, p) in reloaded.enumerate_pixels() {
        if side.get_pixel(x, y) != p {
            differing += 1;
        }
    }
    assert_eq!(
        differing, 0,
        "{differing} pixels differ after reloading the PLY"
    );

    third_party_reads(&out.join("point_cloud.ply"), &out.join("splats.csv"));
    mesh_matches_the_splats(&out);
}

/// `splatdream mesh` of the fitted cow (issue 28, item 1), equal to the run's own `mesh.glb`
/// (`output.mesh = true`): the GLB passes the Khronos
/// glTF-Validator and loads in Python trimesh with vertex colours, and its silhouette at every
/// evaluation camera matches the splats' alpha (rendered over black and over white) with
/// IoU ≥ 0.8.
fn mesh_matches_the_splats(out: &Path) {
    let glb = out.join("cow.glb");
    let log = run(bin().arg("mesh").arg(out).arg("--out").arg(&glb));
    eprintln!("{log}");
    // `output.mesh = true` wrote the same mesh at the end of the run.
    assert!(
        std::fs::read(out.join("mesh.glb")).unwrap() == std::fs::read(&glb).unwrap(),
        "the run's mesh.glb differs from `splatdream mesh` of its point_cloud.ply"
    );
    for tool in ["tools/gltf_validator.sh", "tools/trimesh_load.sh"] {
        let o = Command::new("bash")
            .arg(root().join(tool))
            .arg(&glb)
            .output()
            .expect("bash");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{tool} rejected the mesh (it needs node + npm / python3-venv, which .ci/run \
             installs):\n{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("{tool}: {text}");
        if tool.contains("trimesh") {
            let j: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            assert!(j["faces"].as_u64().unwrap() > 500, "{j}");
            assert_eq!(j["vertex_colors"], true, "{j}");
            assert!(j["volume"].as_f64().unwrap() > 0.0, "{j}");
        }
    }
    let (doc, buffers, _) = gltf::import(&glb).unwrap();
    let prim = doc.meshes().next().unwrap().primitives().next().unwrap();
    let reader = prim.reader(|b| Some(&buffers[b.index()]));
    let pos: Vec<[f32; 3]> = reader.read_positions().unwrap().collect();
    let idx: Vec<u32> = reader.read_indices().unwrap().into_u32().collect();
    let mut ious = vec![];
    for entry in std::fs::read_dir(out.join("renders")).unwrap() {
        let cam_path = entry.unwrap().path();
        if !cam_path.to_string_lossy().ends_with(".camera.json") {
            continue;
        }
        // The evaluation camera at 4× the pixels (64² views would make the IoU mostly a
        // matter of boundary pixels).
        let mut cam = splat::Camera::load(&cam_path).unwrap();
        for r in 0..2 {
            for c in 0..3 {
                cam.k[r][c] *= 4.0;
            }
        }
        cam.width *= 4;
        cam.height *= 4;
        let big = out.join("mesh-check.camera.json");
        std::fs::write(&big, serde_json::to_string(&cam).unwrap()).unwrap();
        let mut planes = vec![];
        for bg in ["0,0,0", "1,1,1"] {
            let png = out.join(format!("alpha-{bg}.png"));
            run(bin()
                .arg("render")
                .arg("--ply")
                .arg(out.join("point_cloud.ply"))
                .arg("--camera")
                .arg(&big)
                .args(["--background", bg, "--out"])
                .arg(&png));
            planes.push(image::open(&png).unwrap().to_rgb8());
        }
        // Over black: α·c; over white: α·c + (1 − α). So α = 1 − (white − black).
        let (w, h) = planes[0].dimensions();
        let splat_mask: Vec<bool> = planes[0]
            .pixels()
            .zip(planes[1].pixels())
            .map(|(b, wh)| {
                let d: f32 = (0..3)
                    .map(|c| f32::from(wh[c]) - f32::from(b[c]))
                    .sum::<f32>()
                    / (3.0 * 255.0);
                1.0 - d > 0.5
            })
            .collect();
        let mesh_mask = silhouette(&pos, &idx, &cam, w, h);
        let inter = splat_mask
            .iter()
            .zip(&mesh_mask)
            .filter(|(a, b)| **a && **b)
            .count();
        let union = splat_mask
            .iter()
            .zip(&mesh_mask)
            .filter(|(a, b)| **a || **b)
            .count();
        let iou = inter as f64 / union.max(1) as f64;
        eprintln!(
            "mesh vs splat alpha at {}: IoU {iou:.3}",
            cam_path.display()
        );
        ious.push(iou);
    }
    assert!(!ious.is_empty(), "no evaluation cameras in renders/");
    let worst = ious.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        worst >= 0.8,
        "mesh silhouette IoU {worst:.3} < 0.8 at some camera: {ious:?}"
    );
}

/// Pixels covered by the triangles `idx` of `pos` seen from `cam` (pixel centres inside a
/// projected triangle, either winding).
fn silhouette(pos: &[[f32; 3]], idx: &[u32], cam: &splat::Camera, w: u32, h: u32) -> Vec<bool> {
    let view = cam.view_matrix();
    let (fx, fy) = cam.focal();
    let (cx, cy) = cam.principal();
    let px: Vec<Option<[f32; 2]>> = pos
        .iter()
        .map(|p| {
            let c = view.transform_point3(glam::Vec3::from_array(*p));
            (c.z > 1e-4).then(|| [fx * c.x / c.z + cx, fy * c.y / c.z + cy])
        })
        .collect();
    let mut mask = vec![false; (w * h) as usize];
    for t in idx.chunks_exact(3) {
        let (Some(a), Some(b), Some(c)) = (px[t[0] as usize], px[t[1] as usize], px[t[2] as usize])
        else {
            continue;
        };
        let area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if area.abs() < 1e-12 {
            continue;
        }
        let x0 = a[0].min(b[0]).min(c[0]).floor().max(0.0) as u32;
        let x1 = (a[0].max(b[0]).max(c[0]).ceil() as u32).min(w);
        let y0 = a[1].min(b[1]).min(c[1]).floor().max(0.0) as u32;
        let y1 = (a[1].max(b[1]).max(c[1]).ceil() as u32).min(h);
        for y in y0..y1 {
            for x in x0..x1 {
                let p = [x as f32 + 0.5, y as f32 + 0.5];
                let e = |u: [f32; 2], v: [f32; 2]| {
                    (v[0] - u[0]) * (p[1] - u[1]) - (v[1] - u[1]) * (p[0] - u[0])
                };
                let (e0, e1, e2) = (e(a, b), e(b, c), e(c, a));
                let inside =
                    (e0 >= 0.0 && e1 >= 0.0 && e2 >= 0.0) || (e0 <= 0.0 && e1 <= 0.0 && e2 <= 0.0);
                if inside {
                    mask[(y * w + x) as usize] = true;
                }
            }
        }
    }
    mask
}

/// PlayCanvas splat-transform converts the PLY to CSV; every column it reports must equal our
/// values (it writes the raw PLY properties: log scales, logits, unnormalised wxyz).
fn third_party_reads(ply: &Path, csv: &Path) {
    let st = Command::new("bash")
        .arg(root().join("tools/splat_transform.sh"))
        .args(["-q", "-w"])
        .arg(ply)
        .arg(csv)
        .status()
        .expect("bash");
    assert!(
        st.success(),
        "tools/splat_transform.sh failed: it needs node + npm (.ci/run installs them); there is \
         no silent skip"
    );
    let data = splat::ply::read_ply(ply).unwrap();
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let need = [
        "x", "y", "z", "rot_0", "rot_3", "scale_0", "scale_2", "opacity", "f_dc_0", "f_dc_2",
    ];
    for n in need {
        assert!(
            col.contains_key(n),
            "splat-transform CSV lacks `{n}`: {header:?}"
        );
    }
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), data.len(), "splat count");
    let k = splat::scene::sh_coeffs(data.sh_degree) * 3;
    for (i, r) in rows.iter().enumerate() {
        let want = [
            ("x", data.means[3 * i]),
            ("y", data.means[3 * i + 1]),
            ("z", data.means[3 * i + 2]),
            ("rot_0", data.quats[4 * i]),
            ("rot_3", data.quats[4 * i + 3]),
            ("scale_0", data.log_scales[3 * i]),
            ("scale_2", data.log_scales[3 * i + 2]),
            ("opacity", data.opacity_logits[i]),
            ("f_dc_0", data.sh[k * i]),
            ("f_dc_2", data.sh[k * i + 2]),
        ];
        for (name, w) in want {
            let got = r[col[name]] as f32;
            assert!(
                got == w || (got - w).abs() <= 1e-6 * w.abs(),
                "splat {i} `{name}`: splat-transform {got}, ours {w}"
            );
        }
    }
}
