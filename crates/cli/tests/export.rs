//! PLY snapshots during a run (`output.ply_every`) and `splatdream export` of a checkpoint
//! (issue 28, item 6), on a short Spot-the-cow `fit` (lavapipe in CI).

mod common;

use common::{bin, run, short_fit, text, tmp};

#[test]
fn snapshots_and_export_match_the_run_outputs() {
    let dir = tmp("export", "fit");
    let run_dir = dir.join("run");
    run(short_fit(&run_dir, 12, 600)
        .args([
            "--set",
            "output.checkpoint_every=5",
            "--set",
            "output.keep_checkpoints=0",
        ])
        .args(["--set", "output.ply_every=5"]));
    let mut snaps: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("point_cloud_"))
        .collect();
    snaps.sort();
    assert_eq!(snaps, ["point_cloud_10.ply", "point_cloud_5.ply"]);

    // The final checkpoint exported on the host is the run's own PLY, byte for byte.
    let out = dir.join("final.ply");
    let log = run(bin().arg("export").arg(&run_dir).arg("--out").arg(&out));
    assert!(log.contains("at step 12"), "{log}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(run_dir.join("point_cloud.ply")).unwrap(),
        "export of the last checkpoint vs point_cloud.ply"
    );
    // A periodic checkpoint exports to the snapshot of the same step.
    let out5 = dir.join("five.ply");
    run(bin()
        .arg("export")
        .arg(run_dir.join("checkpoints/step-0000005.safetensors"))
        .arg("--out")
        .arg(&out5));
    assert_eq!(
        std::fs::read(&out5).unwrap(),
        std::fs::read(run_dir.join("point_cloud_5.ply")).unwrap(),
        "export of step 5 vs point_cloud_5.ply"
    );
    assert_ne!(std::fs::read(&out5).unwrap(), std::fs::read(&out).unwrap());

    // Bad input: a missing checkpoint, an unsupported format; nothing written.
    let bad = dir.join("bad.ply");
    let o = bin()
        .args(["export", "no/such/run", "--out"])
        .arg(&bad)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success() && t.contains("no/such/run"), "{t}");
    let o = bin()
        .arg("export")
        .arg(&run_dir)
        .arg("--out")
        .arg(dir.join("x.obj"))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("x.obj") && t.contains("unsupported"),
        "{t}"
    );
    assert!(!bad.exists() && !dir.join("x.obj").exists());
}
