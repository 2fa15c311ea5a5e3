//! An output folder that cannot take more bytes (issue 28, item 7): a resumed `fit` and a
//! resumed `generate` whose next checkpoint does not fit exit with an error naming that file,
//! leave no temporary files, keep the previous checkpoint and PLY byte for byte and the metrics
//! readable, and resume from that checkpoint once space is back.
//!
//! "No space" is a small tmpfs mounted in a private mount namespace (`unshare --mount`, with
//! `--user --map-root-user` when not root): the run folder is copied onto it, the resumed run
//! writes there until the disk is full (`ENOSPC` part-way through a file), and the folder is
//! copied back out for the checks. (A file-size limit, `ulimit -f`, cannot stand in: lavapipe
//! backs device memory with memfd files, which the limit also caps: SIGBUS at device creation.)
//! Without `unshare` or mount rights the test fails under CI and prints SKIPPED elsewhere.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{bin, run, short_fit, text, tmp};

/// Whether this machine can mount a tmpfs in a private namespace; `Err` says why not.
fn namespaces_work(probe: &Path) -> Result<(), String> {
    std::fs::create_dir_all(probe).map_err(|e| e.to_string())?;
    let out = Command::new("unshare")
        .args(unshare_args())
        .args(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(probe)
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out))
    }
}

/// `unshare`'s options: a private mount namespace, in a user namespace unless root.
fn unshare_args() -> Vec<&'static str> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        vec!["--mount"]
    } else {
        vec!["--user", "--map-root-user", "--mount"]
    }
}

/// Skip (print why) where namespaces are unavailable, except under CI, where that fails.
fn require_namespaces(probe: &Path) -> bool {
    match namespaces_work(probe) {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: cannot mount a tmpfs in a private namespace: {why}");
            false
        }
        Err(why) => panic!("CI must be able to mount a tmpfs in a namespace: {why}"),
    }
}

/// Run `c` (whose run folder is `mnt`) with `mnt` a tmpfs holding a copy of `src` and
/// `free_kib` KiB to spare; afterwards `mnt`'s content is copied to `after`.
fn on_small_tmpfs(
    c: &Command,
    src: &Path,
    mnt: &Path,
    after: &Path,
    free_kib: u64,
) -> std::process::Output {
    // tmpfs counts whole pages per file.
    let used: u64 = snapshot(src)
        .values()
        .map(|b| (b.len() as u64).div_ceil(4096) * 4)
        .sum();
    std::fs::create_dir_all(mnt).unwrap();
    std::fs::create_dir_all(after).unwrap();
    let script = "set -e; after=\"$0\"; mnt=\"$3\"; mount -t tmpfs -o size=\"$1\"k tmpfs \"$mnt\"; \
                  cp -a \"$2/.\" \"$mnt/\"; shift 4; set +e; \"$@\"; rc=$?; \
                  cp -a \"$mnt/.\" \"$after/\"; exit $rc";
    let mut w = Command::new("unshare");
    w.args(unshare_args())
        .args(["sh", "-c", script])
        .arg(after)
        .arg((used + free_kib).to_string())
        .arg(src)
        .arg(mnt)
        .arg("--")
        .arg(c.get_program())
        .args(c.get_args());
    if let Some(dir) = c.get_current_dir() {
        w.current_dir(dir);
    }
    w.output().unwrap()
}

/// Every file under `dir` with its bytes (relative paths).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Run `resume` (on run folder `mnt`) on a tmpfs with a copy of `src` and less room than
/// a checkpoint needs, and check what the issue asks: a failure naming `failing` (relative to
/// the run folder), no temporary or lock files, and the files in `keep` unchanged. The folder
/// as the failed run left it is in `after`.
fn fails_cleanly(
    resume: &Command,
    src: &Path,
    mnt: &Path,
    after: &Path,
    failing: &str,
    keep: &[&str],
) {
    let before = snapshot(src);
    for k in keep {
        assert!(
            before.contains_key(*k),
            "{k} missing before the run out of space"
        );
    }
    let checkpoint = before
        .iter()
        .find(|(k, _)| k.ends_with(".safetensors"))
        .expect("a checkpoint")
        .1
        .len() as u64;
    // Well under a checkpoint (parameters and Adam moments), above the text files.
    let out = on_small_tmpfs(resume, src, mnt, after, (checkpoint / 1024 / 3).max(16));
    let log = text(&out);
    assert!(
        !out.status.success(),
        "the run out of space succeeded:\n{log}"
    );
    let named = mnt.join(failing).display().to_string();
    assert!(
        log.contains(&named) && log.contains("No space left on device"),
        "the error does not name {named} and the cause:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let left = snapshot(after);
    let stray: Vec<_> = left
        .keys()
        .filter(|k| k.ends_with(".tmp") || k.ends_with(".splatdream.lock"))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
    assert!(!left.contains_key(failing), "a partial {failing} was left");
    for k in keep {
        assert!(left.get(*k) == before.get(*k), "{k} changed");
    }
}

#[test]
fn fit_out_of_space_keeps_the_last_checkpoint_and_resumes() {
    let dir = tmp("full-disk", "fit");
    if !require_namespaces(&dir.join("probe")) {
        return;
    }
    let (src, mnt, after) = (dir.join("run"), dir.join("mnt"), dir.join("after"));
    let mut first = short_fit(&src, 10, 800);
    first.args(["--set", "output.checkpoint_every=10"]);
    run(&mut first);
    let resume = |run_dir: &Path| {
        let mut c = bin();
        c.args(["fit", "--resume"]).arg(run_dir).args([
            "--steps",
            "30",
            "--set",
            "output.checkpoint_every=10",
        ]);
        c
    };
    fails_cleanly(
        &resume(&mnt),
        &src,
        &mnt,
        &after,
        "checkpoints/step-0000020.safetensors",
        &["checkpoints/step-0000010.safetensors", "point_cloud.ply"],
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(after.join("metrics.json")).unwrap())
            .expect("metrics.json still parses");
    assert!(m["steps"].as_array().is_some_and(|s| !s.is_empty()), "{m}");
    // What the failed run left resumes from its last checkpoint once there is room.
    let log = run(&mut resume(&after));
    assert!(
        log.contains("at step 10"),
        "did not resume from step 10:\n{log}"
    );
    assert!(after.join("checkpoints/step-0000030.safetensors").is_file());
    assert!(
        !splat::ply::read_ply(&after.join("point_cloud.ply"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn generate_out_of_space_keeps_the_last_checkpoint_and_resumes() {
    let dir = tmp("full-disk", "generate");
    if !require_namespaces(&dir.join("probe")) {
        return;
    }
    let (src, mnt, after) = (dir.join("run"), dir.join("mnt"), dir.join("after"));
    let mut first = bin();
    first
        .args([
            "generate",
            "--model",
            "tests/cases/sd/tiny-eps",
            "--prompt",
            "a corgi",
        ])
        .args([
            "--batch",
            "1",
            "--resolution",
            "64",
            "--steps",
            "2",
            "--out",
        ])
        .arg(&src)
        .args(["--set", "init.count=2000", "--set", "output.log_every=1"])
        .args([
            "--set",
            "output.turntable_frames=0",
            "--set",
            "output.views=0",
        ])
        .args(["--set", "output.checkpoint_every=2"]);
    run(&mut first);
    let resume = |run_dir: &Path| {
        let mut c = bin();
        c.args(["generate", "--resume"]).arg(run_dir).args([
            "--steps",
            "6",
            "--set",
            "output.checkpoint_every=2",
        ]);
        c
    };
    fails_cleanly(
        &resume(&mnt),
        &src,
        &mnt,
        &after,
        "checkpoints/step-0000004.safetensors",
        &["checkpoints/step-0000002.safetensors", "point_cloud.ply"],
    );
    let steps = |run_dir: &Path| -> Vec<u64> {
        std::fs::read_to_string(run_dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("metrics.jsonl line {l}: {e}"))["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert!(steps(&after).starts_with(&[0, 1]), "{:?}", steps(&after));
    let log = run(&mut resume(&after));
    assert!(log.contains("resumed"), "{log}");
    assert!(after.join("checkpoints/step-0000006.safetensors").is_file());
    assert_eq!(
        steps(&after),
        (0..6).collect::<Vec<_>>(),
        "one line per step"
    );
}
