//! `--model org/name` downloads (issue 28, item 5), against a Hub of our own: a local HTTP
//! server serving `tests/cases/sd/tiny-eps` as `test-org/tiny-eps` the way the Hugging Face
//! Hub does (`/api/models/<id>/revision/main`, `/<id>/resolve/main/<file>` with ranges,
//! `ETag` = sha256 for weights, `X-Repo-Commit`). No outside network. Checked: `--offline`
//! refuses to download; a transfer cut halfway fails naming the file and the next run resumes
//! it (a ranged request from past byte 0); the cache it leaves is read back by
//! `huggingface_hub` itself (`tools/hf_cache_read.sh`, pinned): one revision, `refs/main`,
//! exactly the pipeline's files with the served bytes; a weight whose bytes do not match the
//! published sha256 is refused and deleted.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{bin, root, text, tmp};
use sha2::{Digest, Sha256};

const REPO: &str = "test-org/tiny-eps";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const UNET: &str = "unet/diffusion_pytorch_model.safetensors";
const VAE: &str = "vae/diffusion_pytorch_model.safetensors";

/// The served repository and what the server saw.
struct Hub {
    files: BTreeMap<String, Vec<u8>>,
    /// `<path> <range>` of every file request, in order.
    log: Mutex<Vec<String>>,
    /// Cut the first full transfer of the U-Net weights halfway.
    cut_unet: AtomicBool,
    /// Serve this file with one byte changed.
    corrupt: Option<String>,
}

fn sha256(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

fn etag(name: &str, data: &[u8]) -> String {
    // Large files: their sha256 (the Hub's LFS etag); others: a 40-hex id like a git blob's.
    if name.ends_with(".safetensors") {
        sha256(data)
    } else {
        sha256(data)[..40].to_string()
    }
}

fn repo_files() -> BTreeMap<String, Vec<u8>> {
    let base = root().join("tests/cases/sd/tiny-eps");
    let mut out = BTreeMap::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    // Files a pipeline must not fetch.
    out.insert("unet/diffusion_pytorch_model.bin".into(), vec![7; 64]);
    out.insert("v2-1_512-ema-pruned.ckpt".into(), vec![9; 64]);
    out
}

fn respond(mut s: TcpStream, status: &str, headers: &[(String, String)], body: &[u8], cut: bool) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = s.write_all(head.as_bytes());
    let end = if cut { body.len() / 2 } else { body.len() };
    let _ = s.write_all(&body[..end]);
    let _ = s.flush();
}

fn handle(hub: &Hub, s: TcpStream) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    let api = format!("/api/models/{REPO}/revision/main");
    if path == api {
        let siblings: Vec<serde_json::Value> = hub
            .files
            .keys()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let body = serde_json::json!({ "id": REPO, "sha": COMMIT, "siblings": siblings });
        let h = [("Content-Type".into(), "application/json".into())];
        return respond(s, "200 OK", &h, body.to_string().as_bytes(), false);
    }
    let prefix = format!("/{REPO}/resolve/main/");
    let Some(name) = path.strip_prefix(&prefix) else {
        let h = [("X-Error-Code".into(), "RepoNotFound".into())];
        return respond(s, "404 Not Found", &h, b"not found", false);
    };
    let Some(data) = hub.files.get(name) else {
        let h = [("X-Error-Code".into(), "EntryNotFound".into())];
        return respond(s, "404 Not Found", &h, b"no such file", false);
    };
    let spec = range.clone().unwrap_or_else(|| "bytes=0-".into());
    hub.log.lock().unwrap().push(format!("{name} {spec}"));
    let (a, b) = spec
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| {
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().unwrap_or(data.len() - 1);
            (a, b.min(data.len() - 1))
        })
        .unwrap_or((0, data.len() - 1));
    let mut body = data[a..=b].to_vec();
    if hub.corrupt.as_deref() == Some(name) && body.len() > 1 {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    let cut = name == UNET && b > 0 && hub.cut_unet.swap(false, Ordering::SeqCst);
    let h = vec![
        (
            "Content-Range".into(),
            format!("bytes {a}-{b}/{}", data.len()),
        ),
        ("Accept-Ranges".into(), "bytes".into()),
        ("ETag".into(), format!("\"{}\"", etag(name, data))),
        ("X-Repo-Commit".into(), COMMIT.into()),
    ];
    respond(s, "206 Partial Content", &h, &body, cut);
}

/// Start a hub on a free local port; returns its endpoint.
fn serve(hub: Arc<Hub>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let hub = hub.clone();
            std::thread::spawn(move || handle(&hub, s));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn sample(endpoint: &str, cache: &Path, out: &Path, offline: bool) -> (bool, String) {
    let mut c = bin();
    if offline {
        c.arg("--offline");
    }
    let o = c
        .args([
            "sample", "--model", REPO, "--prompt", "a corgi", "--steps", "2", "--out",
        ])
        .arg(out)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!t.contains("panicked"), "{t}");
    (o.status.success(), t)
}

fn blobs(cache: &Path) -> Vec<PathBuf> {
    let dir = cache.join("models--test-org--tiny-eps/blobs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn models_download_resume_and_read_back_with_huggingface_hub() {
    let dir = tmp("download", "hub");
    let hub = Arc::new(Hub {
        files: repo_files(),
        log: Mutex::new(vec![]),
        cut_unet: AtomicBool::new(true),
        corrupt: None,
    });
    let endpoint = serve(hub.clone());
    let cache = dir.join("cache");
    let png = dir.join("corgi.png");

    // Offline: nothing fetched, a clear error.
    let (ok, t) = sample(&endpoint, &cache, &png, true);
    assert!(!ok && t.contains(REPO) && t.contains("offline"), "{t}");
    assert!(hub.log.lock().unwrap().is_empty() && blobs(&cache).is_empty());

    // A transfer cut halfway: the run fails naming the file; the partial blob is kept.
    let (ok, t) = sample(&endpoint, &cache, &png, false);
    eprintln!("cut transfer: {t}");
    assert!(!ok && t.contains(UNET) && t.contains("resume"), "{t}");
    assert!(
        blobs(&cache)
            .iter()
            .any(|b| b.extension().is_some_and(|e| e == "part")),
        "no partial blob: {:?}",
        blobs(&cache)
    );
    assert!(!png.exists());

    // The next run resumes it and samples.
    let (ok, t) = sample(&endpoint, &cache, &png, false);
    assert!(ok, "{t}");
    assert!(png.is_file());
    let log = hub.log.lock().unwrap().clone();
    eprintln!("requests: {log:#?}");
    let unet_size = hub.files[UNET].len();
    let resumed = log.iter().any(|l| {
        l.strip_prefix(&format!("{UNET} bytes="))
            .and_then(|r| r.split('-').next()?.parse::<usize>().ok())
            .is_some_and(|start| start > 0 && start < unet_size)
    });
    assert!(
        resumed,
        "no ranged request resumed the U-Net weights: {log:?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.contains(".bin") || l.contains(".ckpt")),
        "fetched a file a pipeline does not read: {log:?}"
    );

    // huggingface_hub reads the cache: one revision at refs/main, the pipeline's files, the
    // served bytes.
    let wanted: Vec<&String> = hub
        .files
        .keys()
        .filter(|f| !f.ends_with(".bin") && !f.ends_with(".ckpt"))
        .collect();
    let o = Command::new("bash")
        .arg(root().join("tools/hf_cache_read.sh"))
        .arg(&cache)
        .arg(REPO)
        .args(wanted.iter().map(|s| s.as_str()))
        .output()
        .expect("bash");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "huggingface_hub could not read the cache (tools/hf_cache_read.sh needs python3-venv, \
         which .ci/run installs):\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{j}");
    let revs = j["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 1, "{j}");
    assert_eq!(revs[0]["commit"], COMMIT);
    assert_eq!(revs[0]["refs"], serde_json::json!(["main"]));
    let files: Vec<&str> = revs[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(files, wanted.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    for f in &wanted {
        assert_eq!(j["sha256"][f.as_str()], sha256(&hub.files[*f]), "{f}");
    }
}

#[test]
fn a_weight_that_fails_its_published_sha256_is_refused() {
    let dir = tmp("download", "corrupt");
    let hub = Arc::new(Hub {
        files: repo_files(),
        log: Mutex::new(vec![]),
        cut_unet: AtomicBool::new(false),
        corrupt: Some(VAE.into()),
    });
    let endpoint = serve(hub.clone());
    let cache = dir.join("cache");
    let (ok, t) = sample(&endpoint, &cache, &dir.join("x.png"), false);
    eprintln!("corrupt weight: {t}");
    assert!(!ok && t.contains(VAE) && t.contains("sha256"), "{t}");
    let published = etag(VAE, &hub.files[VAE]);
    assert!(
        !blobs(&cache)
            .iter()
            .any(|b| b.file_name().unwrap().to_string_lossy() == published),
        "the corrupt blob was kept"
    );
    // Without model_index.json (fetched last) the cache is not taken for a complete model.
    let snap = cache
        .join("models--test-org--tiny-eps/snapshots")
        .join(COMMIT);
    assert!(!snap.join("model_index.json").exists());
}
