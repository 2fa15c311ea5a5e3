//! COLMAP readers against hand-made models: binary equals text, poses and intrinsics as
//! written, every malformed field named.

use super::super::test_util::TempDir;
use super::super::{View, load as load_any};
use super::text::rest_after_tokens;
use super::*;
use glam::Vec3;
use image::RgbaImage;

struct Cam {
    id: u32,
    model: &'static str,
    model_id: i32,
    w: u64,
    h: u64,
    params: Vec<f64>,
}
struct Img {
    id: u32,
    q: [f64; 4],
    t: [f64; 3],
    cam: u32,
    name: &'static str,
    pts: Vec<(f64, f64, i64)>,
}
struct Pt {
    id: u64,
    xyz: [f64; 3],
    rgb: [u8; 3],
    err: f64,
    track: Vec<(i32, i32)>,
}

fn model() -> (Vec<Cam>, Vec<Img>, Vec<Pt>) {
    let s = std::f64::consts::FRAC_1_SQRT_2;
    let cams = vec![
        Cam {
            id: 1,
            model: "PINHOLE",
            model_id: 1,
            w: 8,
            h: 6,
            params: vec![10.0, 11.0, 4.0, 3.0],
        },
        Cam {
            id: 7,
            model: "SIMPLE_RADIAL",
            model_id: 2,
            w: 10,
            h: 8,
            params: vec![12.0, 5.5, 4.25, 0.05],
        },
    ];
    let imgs = vec![
        Img {
            id: 1,
            q: [s, 0.0, 0.0, s], // 90° about z
            t: [0.0, 0.0, 5.0],
            cam: 1,
            name: "b.png",
            pts: vec![(1.0, 2.0, 1), (3.5, 4.5, -1)],
        },
        Img {
            id: 2,
            q: [1.0, 0.0, 0.0, 0.0],
            t: [1.0, 2.0, 3.0],
            cam: 7,
            name: "a.png",
            pts: vec![],
        },
        Img {
            id: 3,
            q: [0.0, 2.0, 0.0, 0.0], // 180° about x, not normalized
            t: [0.5, -0.5, 2.0],
            cam: 1,
            name: "c.png",
            pts: vec![(0.5, 0.5, 4)],
        },
    ];
    let pts = vec![
        Pt {
            id: 1,
            xyz: [0.0, 0.0, 0.0],
            rgb: [255, 0, 0],
            err: 0.5,
            track: vec![(1, 0)],
        },
        Pt {
            id: 2,
            xyz: [1.0, -2.0, 3.5],
            rgb: [0, 255, 51],
            err: 0.1,
            track: vec![],
        },
        Pt {
            id: 5,
            xyz: [0.25, 0.5, -1.0],
            rgb: [10, 20, 30],
            err: 1.0,
            track: vec![(1, 1), (2, 0), (3, 0)],
        },
        Pt {
            id: 9,
            xyz: [-3.0, 4.0, 2.0],
            rgb: [128, 128, 128],
            err: 0.0,
            track: vec![(3, 0)],
        },
    ];
    (cams, imgs, pts)
}

fn write_images(root: &Path, cams: &[Cam], imgs: &[Img]) {
    std::fs::create_dir_all(root.join("images")).unwrap();
    for im in imgs {
        let c = cams.iter().find(|c| c.id == im.cam).unwrap();
        let seed = im.id as u8;
        RgbaImage::from_fn(c.w as u32, c.h as u32, |x, y| {
            image::Rgba([x as u8 * 20, y as u8 * 20, seed * 50, 255])
        })
        .save(root.join("images").join(im.name))
        .unwrap();
    }
}

fn write_bin(dir: &Path, cams: &[Cam], imgs: &[Img], pts: &[Pt]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut b = Vec::new();
    b.extend((cams.len() as u64).to_le_bytes());
    for c in cams {
        b.extend(c.id.to_le_bytes());
        b.extend(c.model_id.to_le_bytes());
        b.extend(c.w.to_le_bytes());
        b.extend(c.h.to_le_bytes());
        for p in &c.params {
            b.extend(p.to_le_bytes());
        }
    }
    std::fs::write(dir.join("cameras.bin"), &b).unwrap();
    let mut b = Vec::new();
    b.extend((imgs.len() as u64).to_le_bytes());
    for im in imgs {
        b.extend(im.id.to_le_bytes());
        for v in im.q.iter().chain(&im.t) {
            b.extend(v.to_le_bytes());
        }
        b.extend(im.cam.to_le_bytes());
        b.extend(im.name.as_bytes());
        b.push(0);
        b.extend((im.pts.len() as u64).to_le_bytes());
        for &(x, y, id) in &im.pts {
            b.extend(x.to_le_bytes());
            b.extend(y.to_le_bytes());
            b.extend(id.to_le_bytes());
        }
    }
    std::fs::write(dir.join("images.bin"), &b).unwrap();
    let mut b = Vec::new();
    b.extend((pts.len() as u64).to_le_bytes());
    for p in pts {
        b.extend(p.id.to_le_bytes());
        for v in p.xyz {
            b.extend(v.to_le_bytes());
        }
        b.extend(p.rgb);
        b.extend(p.err.to_le_bytes());
        b.extend((p.track.len() as u64).to_le_bytes());
        for &(i, j) in &p.track {
            b.extend(i.to_le_bytes());
            b.extend(j.to_le_bytes());
        }
    }
    std::fs::write(dir.join("points3D.bin"), &b).unwrap();
}

fn write_txt(dir: &Path, cams: &[Cam], imgs: &[Img], pts: &[Pt]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = String::from("# Camera list with one line of data per camera:\n");
    for c in cams {
        let params: Vec<String> = c.params.iter().map(|p| p.to_string()).collect();
        s += &format!(
            "{} {} {} {} {}\n",
            c.id,
            c.model,
            c.w,
            c.h,
            params.join(" ")
        );
    }
    std::fs::write(dir.join("cameras.txt"), s).unwrap();
    let mut s = String::from("# Image list with two lines of data per image:\n#\n");
    for im in imgs {
        s += &format!(
            "{} {} {} {} {} {} {} {} {} {}\n",
            im.id, im.q[0], im.q[1], im.q[2], im.q[3], im.t[0], im.t[1], im.t[2], im.cam, im.name
        );
        let p: Vec<String> = im
            .pts
            .iter()
            .map(|(x, y, i)| format!("{x} {y} {i}"))
            .collect();
        s += &p.join(" ");
        s += "\n";
    }
    std::fs::write(dir.join("images.txt"), s).unwrap();
    let mut s = String::from("# 3D point list\n");
    for p in pts {
        let tr: Vec<String> = p.track.iter().map(|(i, j)| format!("{i} {j}")).collect();
        s += &format!(
            "{} {} {} {} {} {} {} {} {}\n",
            p.id,
            p.xyz[0],
            p.xyz[1],
            p.xyz[2],
            p.rgb[0],
            p.rgb[1],
            p.rgb[2],
            p.err,
            tr.join(" ")
        );
    }
    std::fs::write(dir.join("points3D.txt"), s).unwrap();
}

fn no_holdout() -> LoadOptions {
    LoadOptions {
        eval_every: 0,
        ..Default::default()
    }
}

#[test]
fn binary_and_text_models_agree_with_hand_values() {
    let (cams, imgs, pts) = model();
    let tmp = TempDir::new("colmap");
    let (rb, rt) = (tmp.0.join("bin"), tmp.0.join("txt"));
    write_images(&rb, &cams, &imgs);
    write_images(&rt, &cams, &imgs);
    write_bin(&rb.join("sparse/0"), &cams, &imgs, &pts);
    write_txt(&rt.join("sparse"), &cams, &imgs, &pts);

    let mb = read_model(&rb.join("sparse/0")).unwrap();
    let mt = read_model(&rt.join("sparse")).unwrap();
    assert_eq!(mb.cameras, mt.cameras);
    assert_eq!(mb.images, mt.images);
    assert_eq!(mb.points, mt.points);
    assert_eq!(mb.cameras[&7].model, CameraModel::SimpleRadial);

    let db = load_any(&rb, &no_holdout()).unwrap();
    let dt = load_any(&rt, &no_holdout()).unwrap();
    assert_eq!(
        (db.kind, dt.kind),
        (DatasetKind::Colmap, DatasetKind::Colmap)
    );
    let cams_of = |v: &[View]| {
        v.iter()
            .map(|v| (v.name.clone(), v.camera))
            .collect::<Vec<_>>()
    };
    assert_eq!(cams_of(&db.train), cams_of(&dt.train));
    assert_eq!(db.points, dt.points);
    for (a, b) in db.train.iter().zip(&dt.train) {
        assert_eq!(a.image, b.image);
    }

    // Sorted by name: a (id 2), b (id 1), c (id 3).
    let v = &db.train;
    assert_eq!(
        v.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["a.png", "b.png", "c.png"]
    );
    let id4 = |t: [f32; 3], r: [[f32; 3]; 3]| {
        [
            [r[0][0], r[0][1], r[0][2], t[0]],
            [r[1][0], r[1][1], r[1][2], t[1]],
            [r[2][0], r[2][1], r[2][2], t[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    };
    let close = |a: [[f32; 4]; 4], b: [[f32; 4]; 4]| {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() < 1e-6)
    };
    let expect_a = id4(
        [1.0, 2.0, 3.0],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    );
    let expect_b = id4(
        [0.0, 0.0, 5.0],
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
    );
    let expect_c = id4(
        [0.5, -0.5, 2.0],
        [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]],
    );
    assert!(
        close(v[0].camera.viewmat, expect_a),
        "{:?}",
        v[0].camera.viewmat
    );
    assert!(
        close(v[1].camera.viewmat, expect_b),
        "{:?}",
        v[1].camera.viewmat
    );
    assert!(
        close(v[2].camera.viewmat, expect_c),
        "{:?}",
        v[2].camera.viewmat
    );
    // Camera centre −Rᵀt of b: Rᵀ·(0,0,5) = (0,0,5) → (0,0,−5).
    assert!((v[1].camera.position() - Vec3::new(0.0, 0.0, -5.0)).length() < 1e-6);
    assert_eq!(
        v[0].camera.k,
        [[12.0, 0.0, 5.5], [0.0, 12.0, 4.25], [0.0, 0.0, 1.0]]
    );
    assert_eq!(
        v[1].camera.k,
        [[10.0, 0.0, 4.0], [0.0, 11.0, 3.0], [0.0, 0.0, 1.0]]
    );
    assert_eq!((v[0].camera.width, v[0].camera.height), (10, 8));
    assert_eq!((v[1].camera.width, v[1].camera.height), (8, 6));
    // PINHOLE images are not resampled; SIMPLE_RADIAL ones are undistorted.
    let raw_b = super::super::decode_rgba(&rb.join("images/b.png")).unwrap();
    assert_eq!(v[1].image, raw_b);
    let raw_a = super::super::decode_rgba(&rb.join("images/a.png")).unwrap();
    assert_ne!(v[0].image, raw_a);

    let p = db.points.as_ref().unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(p.positions[1], [1.0, -2.0, 3.5]);
    assert_eq!(p.colors[1], [0.0, 1.0, 0.2]);
    assert_eq!(p.positions[3], [-3.0, 4.0, 2.0]);

    // Hold-out: index 0 (a.png) to eval; downscale 2 halves K and sizes.
    let ds = load_any(
        &rb,
        &LoadOptions {
            downscale: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ds.eval.len(), 1);
    assert_eq!(ds.eval[0].name, "a.png");
    assert_eq!(ds.train.len(), 2);
    assert_eq!(ds.eval[0].image.dimensions(), (5, 4));
    assert_eq!(
        ds.eval[0].camera.k,
        [[6.0, 0.0, 2.75], [0.0, 6.0, 2.125], [0.0, 0.0, 1.0]]
    );
}

#[test]
fn bad_binaries_are_errors_naming_the_file() {
    let (cams, imgs, pts) = model();
    let tmp = TempDir::new("colmap-bad");
    write_images(&tmp.0, &cams, &imgs);
    let sparse = tmp.0.join("sparse/0");
    write_bin(&sparse, &cams, &imgs, &pts);

    // Truncated images.bin.
    let good = std::fs::read(sparse.join("images.bin")).unwrap();
    std::fs::write(sparse.join("images.bin"), &good[..good.len() - 10]).unwrap();
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(e.contains("images.bin") && e.contains("truncated"), "{e}");
    std::fs::write(sparse.join("images.bin"), &good).unwrap();

    // Garbage (wrong "magic": an implausible header) in cameras.bin.
    std::fs::write(sparse.join("cameras.bin"), b"# not a binary model at all\n").unwrap();
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(e.contains("cameras.bin") && e.contains("header"), "{e}");
    std::fs::write(sparse.join("cameras.bin"), b"abc").unwrap();
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(e.contains("cameras.bin") && e.contains("truncated"), "{e}");

    // Unknown model id.
    let mut bad = cams;
    bad[1].model_id = 99;
    write_bin(&sparse, &bad, &imgs, &pts);
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(
        e.contains("cameras.bin: camera 7: unknown camera model id 99"),
        "{e}"
    );

    // Trailing bytes in points3D.bin.
    let (cams, imgs, pts) = model();
    write_bin(&sparse, &cams, &imgs, &pts);
    let mut p = std::fs::read(sparse.join("points3D.bin")).unwrap();
    p.extend([1, 2, 3]);
    std::fs::write(sparse.join("points3D.bin"), &p).unwrap();
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(
        e.contains("points3D.bin") && e.contains("unexpected bytes"),
        "{e}"
    );
}

#[test]
fn unsupported_models_and_bad_text_are_named() {
    let (mut cams, imgs, pts) = model();
    cams[1].model = "OPENCV_FISHEYE";
    cams[1].params = vec![12.0, 12.0, 5.0, 4.0, 0.1, 0.0, 0.0, 0.0];
    let tmp = TempDir::new("colmap-model");
    write_images(&tmp.0, &cams, &imgs);
    write_txt(&tmp.0.join("sparse/0"), &cams, &imgs, &pts);
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(
        e.contains("cameras.txt: camera 7: unsupported camera model OPENCV_FISHEYE"),
        "{e}"
    );

    // Wrong parameter count and a bad number, with line numbers.
    let p = tmp.0.join("sparse/0/cameras.txt");
    std::fs::write(&p, "# c\n1 PINHOLE 8 6 10 11 4\n").unwrap();
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(
        e.contains("cameras.txt: line 2: camera 1: PINHOLE takes 4"),
        "{e}"
    );
    std::fs::write(&p, "1 PINHOLE 8 six 10 11 4 3\n").unwrap();
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(e.contains("cameras.txt: line 1: bad HEIGHT `six`"), "{e}");

    // An image naming a camera that does not exist.
    std::fs::write(&p, "1 PINHOLE 8 6 10 11 4 3\n").unwrap();
    let e = load_any(&tmp.0, &no_holdout()).unwrap_err().to_string();
    assert!(
        e.contains("images.txt: image 2 (a.png): camera 7 is not in"),
        "{e}"
    );
}

/// Fuzzing found values finite in f64 that overflow f32: a point position (binary and text)
/// and an image translation. Each must be refused, not turned into an infinity.
#[test]
fn values_beyond_f32_are_refused() {
    let path = Path::new("points3D.bin");
    let mut buf = 1u64.to_le_bytes().to_vec();
    buf.extend(5u64.to_le_bytes()); // point id
    for v in [0.0f64, 1e300, 0.0] {
        buf.extend(v.to_le_bytes());
    }
    buf.extend([1, 2, 3]); // rgb
    buf.extend(0.5f64.to_le_bytes()); // error
    buf.extend(0u64.to_le_bytes()); // empty track
    let e = read_points_bin(path, &buf).unwrap_err().to_string();
    assert_eq!(e, "points3D.bin: point 5: non-finite position");
    let e = read_points_txt(Path::new("points3D.txt"), "5 0 -4e38 0 1 2 3 0.5\n")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "points3D.txt: line 1: point 5: non-finite position");

    let text = "1 1 0 0 0 0 9.9e86 3 1 a.png\n\n";
    let images = read_images_txt(Path::new("images.txt"), text).unwrap();
    assert_eq!(images[0].world_to_camera(), None);
    let mut ok = images[0].clone();
    ok.tvec = [0.0, 1e38, 3.0];
    assert!(ok.world_to_camera().is_some());
}

#[test]
fn rest_after_tokens_keeps_spaces_in_names() {
    assert_eq!(rest_after_tokens("1 2 3  my image.jpg ", 3), "my image.jpg");
    assert_eq!(rest_after_tokens("1 2", 3), "");
}
