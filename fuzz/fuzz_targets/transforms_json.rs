//! Fuzz `datasets::transforms::parse_transforms` (NeRF-synthetic and instant-ngp
//! `transforms*.json`) and the camera each frame would give: any bytes give a clean result;
//! parsed frames have finite poses and positive intrinsics, and the camera built from them for
//! an image of the declared size (or 64×64) either validates or is refused by
//! `Camera::validate`, never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use splat::Camera;
use datasets::Pose;
use datasets::transforms::parse_transforms;

fuzz_target!(|data: &[u8]| {
    // A folder that does not exist: extension-less `file_path`s fall back to `.png`.
    let path = Path::new("/nonexistent-splatdream-fuzz/transforms.json");
    let Ok(jobs) = parse_transforms(data, path) else {
        return;
    };
    assert!(jobs.len() <= data.len());
    for job in &jobs {
        let Pose::OpenGlC2w(c2w) = job.pose else {
            panic!("transforms give OpenGL camera-to-world poses");
        };
        assert!(c2w.to_cols_array().iter().all(|x| x.is_finite()));
        let k = &job.intrinsics;
        assert!(k.fx.is_some() || k.angle_x.is_some());
        for v in [k.fx, k.fy, k.angle_x, k.angle_y].into_iter().flatten() {
            assert!(v.is_finite() && v > 0.0);
        }
        for v in [k.cx, k.cy].into_iter().flatten() {
            assert!(v.is_finite());
        }
        if let Some((w, h)) = k.size {
            assert!(w > 0 && h > 0, "declared size {w}×{h}");
        }
        let d = &job.distortion;
        assert!([d.k1, d.k2, d.k3, d.p1, d.p2].iter().all(|x| x.is_finite()));
        // The camera the loader would build for an image of the declared size.
        let (w, h) = k.size.unwrap_or((64, 64));
        let Some(p) = k.resolve(w, h) else {
            panic!("a focal length or angle is present");
        };
        let cam = Camera::from_opengl_c2w(
            c2w,
            p.fx as f32,
            p.fy as f32,
            p.cx as f32,
            p.cy as f32,
            w,
            h,
        );
        if cam.validate("fuzz").is_ok() {
            assert!(cam.viewmat.iter().flatten().all(|x| x.is_finite()));
        }
    }
});
