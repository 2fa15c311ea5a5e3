//! ply: writing and reading INRIA splat PLYs on the host (issue 28, item 4: 1 M splats of SH
//! degree 3 in ≤ 2 s each, peak memory ≤ 1.5× the file size).

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use super::measure::{CaseResult, Plan, Scratch};
use super::suites::random_scene;

/// The process's resident-set high-water mark (`VmHWM`) and current size (`VmRSS`) in bytes,
/// from `/proc/self/status` (Linux; `None` elsewhere).
fn rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Reset the high-water mark to the current resident size (`clear_refs` 5, Linux ≥ 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// ply: per `--splats` count, `splat::ply::write_ply` of that many random splats (the
/// benchmarks' `random_scene`, `--sh-degree`) to a file in the temp folder, then `read_ply` of
/// it; samples are wall times. Extras: `file_mib`, and `peak_extra_mib` — how far the process's
/// resident memory rose above its size before the timed runs (the scene itself is resident
/// before, so this is what writing or reading costs beyond its input or output; Linux only).
pub(crate) fn bench_ply(p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    let repeats = p.repeats("ply");
    let deg = p.opts.sh_degree;
    let scratch = Scratch::new("ply")?;
    for &n in &p.splats() {
        let data = random_scene(n, deg, 7);
        let path = scratch.0.join(format!("scene-{n}.ply"));
        let mut write = vec![];
        let mut read = vec![];
        let (mut write_peak, mut read_peak) = (0u64, 0u64);
        for rep in 0..p.warmup + repeats {
            let measured = reset_peak();
            let base = rss().map_or(0, |r| r.1);
            let t0 = Instant::now();
            splat::ply::write_ply(&path, &data)
                .with_context(|| format!("writing {}", path.display()))?;
            let w = t0.elapsed().as_secs_f64() * 1e3;
            let w_peak = rss()
                .filter(|_| measured)
                .map_or(0, |r| r.0.saturating_sub(base));
            let measured = reset_peak();
            let base = rss().map_or(0, |r| r.1);
            let t1 = Instant::now();
            let back = splat::ply::read_ply(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let r = t1.elapsed().as_secs_f64() * 1e3;
            let r_peak = rss()
                .filter(|_| measured)
                .map_or(0, |r| r.0.saturating_sub(base));
            if rep == 0 {
                anyhow::ensure!(back == data, "{}: read back differs", path.display());
            }
            drop(back);
            if rep >= p.warmup {
                write.push(w);
                read.push(r);
                write_peak = write_peak.max(w_peak);
                read_peak = read_peak.max(r_peak);
            }
        }
        let file = std::fs::metadata(&path)?.len();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        for (pass, samples, peak) in [("write", write, write_peak), ("read", read, read_peak)] {
            let r = CaseResult::new(
                "ply",
                format!("ply/{pass}/n={n}/sh={deg}"),
                json!({ "splats": n, "sh_degree": deg, "pass": pass, "seed": 7 }),
                p.warmup,
                samples,
                None,
            );
            out.push(
                r.with("file_mib", mib(file))
                    .with("peak_extra_mib", mib(peak))
                    .with("peak_over_file", peak as f64 / file as f64),
            );
        }
    }
    Ok(())
}
