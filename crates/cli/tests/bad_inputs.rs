//! The bad-input corpus: runs `splatdream` on every case under `crates/cli/tests/bad_inputs/` (and under
//! each folder listed in `SPLATDREAM_BAD_INPUTS`, `:`-separated) and requires, for each, a
//! non-zero exit that is not a panic (exit code 101, `panicked`, `RUST_BACKTRACE`), no wgpu
//! `Validation Error`, no hang (killed after `timeout_s`, default 120 s), and an error message
//! containing every `expect` string of the case (the file and the field at fault).
//!
//! The case format is described in `crates/cli/tests/bad_inputs/README.md`; `tools/gen_bad_inputs.py`
//! writes the committed cases. Cases run a few at a time (`SPLATDREAM_BAD_INPUTS_JOBS`, default
//! the number of cores, 2 to 4); `SPLATDREAM_BAD_INPUTS_ONLY=substring` runs only the cases
//! whose name contains it. All failures are reported together.

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::root;

/// Default time limit of one case.
const DEFAULT_TIMEOUT_S: u64 = 120;

/// One case folder and its parsed `case.toml`.
struct Case {
    name: String,
    dir: PathBuf,
    spec: toml::Table,
}

/// What running a case gave.
struct Outcome {
    name: String,
    /// `None` when the case passed.
    failure: Option<String>,
    seconds: f64,
}

/// Every case folder (one with a `case.toml`) directly under `dir`, sorted by name.
fn discover(dir: &Path) -> Vec<Case> {
    let mut cases = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot list the bad-input folder {}", dir.display());
    };
    for e in entries.flatten() {
        let path = e.path();
        let toml_path = path.join("case.toml");
        if !toml_path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&toml_path)
            .unwrap_or_else(|e| panic!("{}: {e}", toml_path.display()));
        let spec: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", toml_path.display()));
        let name = e.file_name().to_string_lossy().into_owned();
        cases.push(Case {
            name,
            dir: path,
            spec,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// A list of strings from the case spec (`key` absent → empty).
fn strings(spec: &toml::Table, key: &str) -> Result<Vec<String>, String> {
    match spec.get(key) {
        None => Ok(vec![]),
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("case.toml: `{key}` must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("case.toml: `{key}` must be a list of strings")),
    }
}

/// Copy a folder recursively, hard-linking files where possible (edits replace files, never
/// write through a link).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for e in entries.flatten() {
        let src = e.path();
        let dst = to.join(e.file_name());
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            let _ = std::fs::remove_file(&dst);
            if std::fs::hard_link(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).map_err(|e| format!("copying {}: {e}", src.display()))?;
            }
        }
    }
    Ok(())
}

/// Replace `path` with `bytes` (removing it first, so a hard link is not written through).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Bytes per element of a safetensors dtype.
fn dtype_size(dtype: &str) -> Result<usize, String> {
    Ok(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        other => return Err(format!("unknown safetensors dtype `{other}`")),
    })
}

/// Apply one `[[safetensors]]` edit of a case to the model copy: `drop` tensors, change a
/// tensor's `shape` or `dtype` (its data becomes zeros of the new size), then `truncate` the
/// file to that many bytes and `patch` bytes (`{ offset, hex }`).
fn edit_safetensors(model: &Path, edit: &toml::Table) -> Result<(), String> {
    let file = edit
        .get("file")
        .and_then(|v| v.as_str())
        .ok_or("[[safetensors]]: `file` missing")?;
    let path = model.join(file);
    let mut bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let drop = strings(edit, "drop")?;
    let shapes = edit.get("shape").and_then(|v| v.as_table());
    let dtypes = edit.get("dtype").and_then(|v| v.as_table());
    if !drop.is_empty() || shapes.is_some() || dtypes.is_some() {
        let n = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "short file")?) as usize;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| format!("{file}: {e}"))?;
        let data = &bytes[8 + n..];
        let mut entries: Vec<(String, serde_json::Value, usize)> = vec![];
        let mut meta = None;
        for (k, v) in header {
            if k == "__metadata__" {
                meta = Some(v);
                continue;
            }
            let start = v["data_offsets"][0].as_u64().ok_or("bad data_offsets")? as usize;
            entries.push((k, v, start));
        }
        entries.sort_by_key(|e| e.2);
        for d in &drop {
            if !entries.iter().any(|e| &e.0 == d) {
                return Err(format!("{file}: no tensor `{d}` to drop"));
            }
        }
        entries.retain(|e| !drop.contains(&e.0));
        let mut out_header = serde_json::Map::new();
        if let Some(m) = meta {
            out_header.insert("__metadata__".into(), m);
        }
        let mut out_data: Vec<u8> = vec![];
        for (name, mut v, _) in entries {
            let (s, e) = (
                v["data_offsets"][0].as_u64().unwrap_or(0) as usize,
                v["data_offsets"][1].as_u64().unwrap_or(0) as usize,
            );
            let mut chunk = data[s..e].to_vec();
            let new_shape = shapes.and_then(|t| t.get(&name));
            let new_dtype = dtypes.and_then(|t| t.get(&name)).and_then(|d| d.as_str());
            if new_shape.is_some() || new_dtype.is_some() {
                if let Some(sh) = new_shape {
                    let dims: Vec<u64> = sh
                        .as_array()
                        .ok_or("shape must be a list")?
                        .iter()
                        .map(|x| x.as_integer().unwrap_or(0) as u64)
                        .collect();
                    v["shape"] = serde_json::json!(dims);
                }
                if let Some(d) = new_dtype {
                    v["dtype"] = serde_json::json!(d);
                }
                let count: usize = v["shape"]
                    .as_array()
                    .ok_or("bad shape")?
                    .iter()
                    .map(|x| x.as_u64().unwrap_or(0) as usize)
                    .product();
                let size = dtype_size(v["dtype"].as_str().unwrap_or(""))?;
                chunk = vec![0u8; count * size];
            }
            let start = out_data.len();
            out_data.extend_from_slice(&chunk);
            v["data_offsets"] = serde_json::json!([start, out_data.len()]);
            out_header.insert(name, v);
        }
        let mut h = serde_json::to_vec(&out_header).map_err(|e| e.to_string())?;
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&h);
        bytes.extend_from_slice(&out_data);
    }
    if let Some(t) = edit.get("truncate") {
        let keep = t.as_integer().ok_or("`truncate` must be an integer")? as usize;
        bytes.truncate(keep);
    }
    if let Some(toml::Value::Array(patches)) = edit.get("patch") {
        for p in patches {
            let offset = p
                .get("offset")
                .and_then(|v| v.as_integer())
                .ok_or("patch: `offset` missing")? as usize;
            let hex = p
                .get("hex")
                .and_then(|v| v.as_str())
                .ok_or("patch: `hex` missing")?;
            for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
                let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
                let b = u8::from_str_radix(s, 16).map_err(|e| format!("patch hex: {e}"))?;
                *bytes
                    .get_mut(offset + i)
                    .ok_or("patch past the end of the file")? = b;
            }
        }
    }
    replace_file(&path, &bytes)
}

/// Assemble the case's model copy in `model` from `model_base` (a folder of
/// `tests/cases/sd/`), its `remove` list, the files under the case's `model/` folder, and its
/// `[[safetensors]]` edits.
fn assemble_model(case: &Case, base: &str, model: &Path) -> Result<(), String> {
    let src = root().join("tests/cases/sd").join(base);
    if !src.is_dir() {
        return Err(format!("model_base `{base}`: no folder {}", src.display()));
    }
    copy_tree(&src, model)?;
    for r in strings(&case.spec, "remove")? {
        let p = model.join(&r);
        let res = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        res.map_err(|e| format!("remove `{r}`: {e}"))?;
    }
    let overlay = case.dir.join("model");
    if overlay.is_dir() {
        copy_tree(&overlay, model)?;
    }
    if let Some(toml::Value::Array(edits)) = case.spec.get("safetensors") {
        for e in edits {
            let t = e.as_table().ok_or("[[safetensors]] must be tables")?;
            edit_safetensors(model, t)?;
        }
    }
    Ok(())
}

/// Run one case; `Err` is a problem with the case itself (reported as a failure too).
fn run_case(case: &Case, scratch: &Path) -> Result<Option<String>, String> {
    let tmp = scratch.join(&case.name);
    let _ = std::fs::remove_dir_all(&tmp);
    let out_dir = tmp.join("tmp");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let tiny_model = match case.spec.get("model_base").and_then(|v| v.as_str()) {
        Some(base) => {
            let m = tmp.join("model");
            assemble_model(case, base, &m)?;
            m
        }
        None => root().join("tests/cases/sd/tiny-eps"),
    };
    let args = strings(&case.spec, "args")?;
    if args.is_empty() {
        return Err("case.toml: `args` missing".into());
    }
    let expect = strings(&case.spec, "expect")?;
    let subst = |a: &str| {
        a.replace("{case}", &case.dir.display().to_string())
            .replace("{tmp}", &out_dir.display().to_string())
            .replace("{tiny_model}", &tiny_model.display().to_string())
            .replace("{root}", &root().display().to_string())
    };
    let args: Vec<String> = args.iter().map(|a| subst(a)).collect();
    let timeout = Duration::from_secs(
        case.spec
            .get("timeout_s")
            .and_then(|v| v.as_integer())
            .map_or(DEFAULT_TIMEOUT_S, |t| t.max(1) as u64),
    );
    let log = |n: &str| -> Result<(PathBuf, std::fs::File), String> {
        let p = tmp.join(n);
        let f = std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok((p, f))
    };
    let (out_path, out_file) = log("stdout.txt")?;
    let (err_path, err_file) = log("stderr.txt")?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_splatdream"))
        .current_dir(root())
        .args(&args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("SPLATDREAM_LOG")
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .map_err(|e| format!("spawning splatdream: {e}"))?;
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if t0.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for splatdream: {e}")),
        }
    };
    let output = format!(
        "{}{}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let mut problems = vec![];
    match status {
        None => problems.push(format!("hang: killed after {} s", timeout.as_secs())),
        Some(s) if s.success() => problems.push("exit code 0 (expected an error)".into()),
        Some(s) if s.code() == Some(101) => problems.push("exit code 101 (a panic)".into()),
        Some(s) if s.code().is_none() => problems.push(format!("killed by a signal: {s}")),
        Some(_) => {}
    }
    for bad in ["panicked", "RUST_BACKTRACE", "Validation Error"] {
        if output.contains(bad) {
            problems.push(format!("output contains `{bad}`"));
        }
    }
    for e in &expect {
        let e = subst(e);
        if !output.contains(&e) {
            problems.push(format!("output lacks `{e}`"));
        }
    }
    if problems.is_empty() {
        let _ = std::fs::remove_dir_all(&tmp);
        // The error line, for reading the corpus' messages with --nocapture.
        if let Some(l) = output.lines().find(|l| l.starts_with("error:")) {
            eprintln!("  {}: {l}", case.name);
        }
        return Ok(None);
    }
    let code = status
        .and_then(|s| s.code())
        .map_or("none".to_string(), |c| c.to_string());
    Ok(Some(format!(
        "{}\n    exit code: {code}\n    command: splatdream {}\n    output:\n{}",
        problems.join("; "),
        args.join(" "),
        output
            .lines()
            .map(|l| format!("      | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )))
}

#[test]
fn bad_inputs_fail_cleanly() {
    let corpus = root().join("crates/cli/tests/bad_inputs");
    let committed = discover(&corpus);
    // Exactly the folders crates/cli/tests/bad_inputs/MANIFEST lists.
    let names: Vec<String> = committed.iter().map(|c| c.name.clone()).collect();
    testkit::assert_manifest(&corpus, &names);
    let mut cases = committed;
    if let Ok(extra) = std::env::var("SPLATDREAM_BAD_INPUTS") {
        for d in extra.split(':').filter(|d| !d.is_empty()) {
            cases.extend(discover(Path::new(d)));
        }
    }
    let only = std::env::var("SPLATDREAM_BAD_INPUTS_ONLY").unwrap_or_default();
    let os = std::env::consts::OS;
    cases.retain(|c| {
        let on_this_os = strings(&c.spec, "platforms")
            .map(|p| p.is_empty() || p.iter().any(|x| x == os))
            .unwrap_or(true);
        on_this_os && c.name.contains(&only)
    });
    let total = cases.len();
    let jobs = std::env::var("SPLATDREAM_BAD_INPUTS_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 4)
        })
        .max(1);
    let scratch = std::env::temp_dir().join(format!("splatdream-bad-{}", std::process::id()));
    let queue = Mutex::new(cases.into_iter().collect::<VecDeque<Case>>());
    let results = Mutex::new(Vec::<Outcome>::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let Some(case) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
                    else {
                        break;
                    };
                    let t = Instant::now();
                    let failure = match run_case(&case, &scratch) {
                        Ok(f) => f,
                        Err(e) => Some(format!("broken case: {e}")),
                    };
                    let seconds = t.elapsed().as_secs_f64();
                    eprintln!(
                        "{} {} ({seconds:.1} s)",
                        if failure.is_some() { "FAIL" } else { "ok  " },
                        case.name
                    );
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Outcome {
                            name: case.name,
                            failure,
                            seconds,
                        });
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by(|a, b| a.name.cmp(&b.name));
    let slowest = results
        .iter()
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .map(|o| format!("{} ({:.1} s)", o.name, o.seconds))
        .unwrap_or_default();
    eprintln!(
        "{total} bad-input cases in {:.1} s with {jobs} at a time; slowest {slowest}",
        t0.elapsed().as_secs_f64()
    );
    let failures: Vec<String> = results
        .iter()
        .filter_map(|o| o.failure.as_ref().map(|f| format!("{}: {f}", o.name)))
        .collect();
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} bad-input cases failed (inputs kept in {}):\n\n{}",
        failures.len(),
        scratch.display(),
        failures.join("\n\n")
    );
}
