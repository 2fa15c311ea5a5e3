//! End-to-end test of `splatdream bench` on lavapipe: `bench all --small` with the committed
//! tiny random-weight SD model (tests/cases/sd/tiny-eps) writes one JSON document with every
//! documented field (docs/bench.md) and sane values for every suite and distillation method;
//! `bench --compare` (and `bench compare`) lists the cases of two files with their ratios and
//! the cases only in one; malformed inputs fail cleanly naming the file and field.

use std::path::Path;

mod common;
use common::{bin, run, text, tmp};

/// The distillation methods of this build (`distill::METHODS`).
const METHODS: [&str; 7] = ["sds", "vdm", "sdi", "bridge", "lmc", "lods", "vsd"];

fn read_json(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}\n{t}", path.display()))
}

/// Every documented field of one result, with sane values.
fn check_result(r: &serde_json::Value, repeats: usize) {
    let suite = r["suite"].as_str().unwrap_or_else(|| panic!("suite: {r}"));
    let case = r["case"].as_str().unwrap_or_else(|| panic!("case: {r}"));
    assert!(case.starts_with(&format!("{suite}/")), "{case}");
    assert!(r["params"].is_object(), "{r}");
    assert_eq!(r["warmup"].as_u64(), Some(1), "{r}");
    assert_eq!(r["repeats"].as_u64(), Some(repeats as u64), "{r}");
    let f = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("{case}: {k} missing: {r}"))
    };
    let (med, min, max) = (f("median_ms"), f("min_ms"), f("max_ms"));
    assert!(med.is_finite() && med > 0.0, "{case}: median {med}");
    assert!(min <= med && med <= max, "{case}: {min} ≤ {med} ≤ {max}");
    let samples = r["samples_ms"].as_array().expect("samples_ms");
    assert_eq!(samples.len(), repeats, "{case}");
    for s in samples {
        let s = s.as_f64().unwrap();
        assert!(
            s.is_finite() && s > 0.0 && min <= s && s <= max,
            "{case}: {s}"
        );
    }
    let peak = r["peak_memory_bytes"].as_u64();
    if suite == "ply" {
        // Host-side: no device pools; the file size and the resident memory it added instead.
        assert!(
            peak.is_none(),
            "{case}: a host suite reports a device peak: {r}"
        );
        assert!(f("file_mib") > 0.0, "{case}: file_mib");
        assert!(f("peak_extra_mib") >= 0.0, "{case}: peak_extra_mib");
    } else {
        // Vulkan through cubecl reports its pools.
        assert!(peak.is_some_and(|b| b > 0), "{case}: peak {r}");
    }
    let throughput = match suite {
        "fit" | "distill" => Some("steps_per_s"),
        "unet" | "vae" => Some("samples_per_s"),
        "sort" => Some("mkeys_per_s"),
        _ => None,
    };
    if let Some(k) = throughput {
        let v = f(k);
        assert!(v.is_finite() && v > 0.0, "{case}: {k} = {v}");
    }
}

#[test]
fn bench_all_small_json_and_compare() {
    let dir = tmp("bench", "all");
    let a = dir.join("a.json");
    let t0 = std::time::Instant::now();
    let repeats = 1;
    run(bin()
        .args(["bench", "all", "--small", "--repeats", "1", "--json"])
        .args(["--model", "tests/cases/sd/tiny-eps", "--out"])
        .arg(&a));
    eprintln!("bench all --small: {:.1} s", t0.elapsed().as_secs_f64());

    let doc = read_json(&a);
    assert_eq!(doc["schema"], "splatdream-bench/1");
    for k in [
        "splatdream_version",
        "adapter",
        "backend",
        "device_type",
        "driver",
        "started_at",
    ] {
        assert!(
            doc[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k}: {}",
            doc[k]
        );
    }
    assert_eq!(doc["backend"], "Vulkan");
    let results = doc["results"].as_array().expect("results");
    for r in results {
        check_result(r, repeats);
    }
    let cases: Vec<&str> = results
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    for want in [
        "raster/fwd/n=2000/64x64",
        "raster/bwd/n=2000/64x64",
        "sort/n=10000/bits=32",
        "unet/fwd/b=1/8x8/f32",
        "unet/fwd+grad/b=1/8x8/f32",
        "vae/enc-fwd/b=1/32x32/f32",
        "vae/enc-fwd+grad/b=1/32x32/f32",
        "fit/spot-cow/32x32",
        "ply/write/n=2000/sh=3",
        "ply/read/n=2000/sh=3",
    ] {
        assert!(cases.contains(&want), "{want} not in {cases:?}");
    }
    for m in METHODS {
        let id = format!("distill/{m}/b=1/32x32");
        assert_eq!(
            cases.iter().filter(|c| **c == id).count(),
            1,
            "{id} in {cases:?}"
        );
    }

    // A second file: the same cases at twice the time, one dropped and one added.
    let b = dir.join("b.json");
    let mut doc_b = doc.clone();
    let rs = doc_b["results"].as_array_mut().unwrap();
    let dropped = rs.remove(0)["case"].as_str().unwrap().to_string();
    for r in rs.iter_mut() {
        let m = r["median_ms"].as_f64().unwrap();
        r["median_ms"] = serde_json::json!(2.0 * m);
    }
    let mut extra = rs[0].clone();
    extra["case"] = "raster/fwd/n=1/8x8".into();
    rs.push(extra);
    std::fs::write(&b, serde_json::to_string(&doc_b).unwrap()).unwrap();

    for args in [vec!["bench", "--compare"], vec!["bench", "compare"]] {
        let out = run(bin().args(&args).arg(&a).arg(&b));
        for c in &cases[1..] {
            let line = out
                .lines()
                .find(|l| l.split_whitespace().next() == Some(*c))
                .unwrap_or_else(|| panic!("{c} not in the table:\n{out}"));
            let ratio: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
            assert!((ratio - 2.0).abs() < 1e-3, "{line}");
        }
        let only_a = out.find("only in A").expect(&out);
        let only_b = out.find("only in B").expect(&out);
        assert!(out[only_a..only_b].contains(&dropped), "{out}");
        assert!(out[only_b..].contains("raster/fwd/n=1/8x8"), "{out}");
    }
}

#[test]
fn bench_compare_malformed_names_file_and_field() {
    let dir = tmp("bench", "bad");
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        r#"{"schema":"splatdream-bench/1","adapter":"x","results":[{"case":"sort/n=1/bits=32","median_ms":1.0}]}"#,
    )
    .unwrap();
    let cases = [
        ("notjson.json", "{", "not valid JSON"),
        ("schema.json", r#"{"results":[]}"#, "field `schema`"),
        (
            "results.json",
            r#"{"schema":"splatdream-bench/1","results":{}}"#,
            "field `results`",
        ),
        (
            "median.json",
            r#"{"schema":"splatdream-bench/1","results":[{"case":"a","median_ms":"fast"}]}"#,
            "field `results[0].median_ms`",
        ),
        (
            "case.json",
            r#"{"schema":"splatdream-bench/1","results":[{"median_ms":1}]}"#,
            "field `results[0].case`",
        ),
    ];
    for (name, body, want) in cases {
        let bad = dir.join(name);
        std::fs::write(&bad, body).unwrap();
        let out = bin()
            .args(["bench", "--compare"])
            .arg(&good)
            .arg(&bad)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {t}");
        assert!(t.contains(name) && t.contains(want), "{name}: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    // A missing file names itself.
    let out = bin()
        .args(["bench", "--compare"])
        .arg(dir.join("missing.json"))
        .arg(&good)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success() && t.contains("missing.json"), "{t}");
    // Bad benchmark options fail before any work.
    for (args, want) in [
        (vec!["bench", "raster", "--repeats", "0"], "--repeats"),
        (vec!["bench", "distill", "--small"], "needs --model"),
        (
            vec!["bench", "unet", "--model", "/nonexistent/sd"],
            "/nonexistent/sd",
        ),
        (vec!["bench", "all", "--suites", "nope"], "unknown suite"),
        (vec!["bench"], "name a suite"),
    ] {
        let out = bin().args(&args).output().unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains(want) && !t.contains("panicked"), "{args:?}: {t}");
    }
}
