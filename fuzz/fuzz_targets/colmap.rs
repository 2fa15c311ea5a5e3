//! Fuzz the COLMAP sparse-model parsers (`datasets::colmap::read_*_{bin,txt}`). The first
//! byte picks the file kind (`% 6`: cameras, images, points3D × binary, text); the rest is the
//! file. Any bytes give a clean result; parsed records satisfy the readers' invariants.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use datasets::PointCloud;
use datasets::colmap::{
    ColmapCamera, ColmapImage, read_cameras_bin, read_cameras_txt, read_images_bin,
    read_images_txt, read_points_bin, read_points_txt,
};

fn check_cameras(cams: &std::collections::BTreeMap<u32, ColmapCamera>, len: usize) {
    assert!(cams.len() <= len);
    for (id, c) in cams {
        assert_eq!(*id, c.id);
        assert_eq!(c.params.len(), c.model.num_params());
        assert!(c.params.iter().all(|p| p.is_finite()));
        assert!(c.width > 0 && c.height > 0);
        // Must not panic for any model; supported models give the parameters back.
        if let Ok((k, _)) = c.pinhole() {
            assert!([k.fx, k.fy, k.cx, k.cy].iter().all(|x| x.is_finite()));
        }
    }
}

fn check_images(images: &[ColmapImage], len: usize) {
    assert!(images.len() <= len);
    for im in images {
        if let Some(m) = im.world_to_camera() {
            assert!(m.to_cols_array().iter().all(|x| x.is_finite()));
        }
    }
}

fn check_points(pc: &PointCloud, len: usize) {
    assert!(pc.len() <= len);
    assert_eq!(pc.positions.len(), pc.colors.len());
    assert!(pc.positions.iter().flatten().all(|x| x.is_finite()));
    assert!(pc.colors.iter().flatten().all(|c| (0.0..=1.0).contains(c)));
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, file)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(file);
    let n = file.len();
    match kind % 6 {
        0 => {
            if let Ok(c) = read_cameras_bin(Path::new("cameras.bin"), file) {
                check_cameras(&c, n)
            }
        }
        1 => {
            if let Ok(c) = read_cameras_txt(Path::new("cameras.txt"), &text) {
                check_cameras(&c, n)
            }
        }
        2 => {
            if let Ok(i) = read_images_bin(Path::new("images.bin"), file) {
                check_images(&i, n)
            }
        }
        3 => {
            if let Ok(i) = read_images_txt(Path::new("images.txt"), &text) {
                check_images(&i, n)
            }
        }
        4 => {
            if let Ok(p) = read_points_bin(Path::new("points3D.bin"), file) {
                check_points(&p, n)
            }
        }
        _ => {
            if let Ok(p) = read_points_txt(Path::new("points3D.txt"), &text) {
                check_points(&p, n)
            }
        }
    }
});
