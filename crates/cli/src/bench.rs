//! `splatdream bench`: the headless benchmark suites (docs/bench.md) and `--compare`.
//!
//! Every case runs `warmup` untimed runs and then `repeats` timed runs of one workload and
//! reports the median, minimum and maximum wall time in milliseconds and every sample. A timed
//! run ends only when the device has finished: burn and the rasterizer queue work lazily, so
//! each timed section ends by reading a value back to the host (which waits for everything it
//! depends on). Peak memory is the largest `bytes_reserved` of burn/cubecl's memory pools
//! sampled after each run of the case ([`reserved`]).
//!
//! Results form one JSON document (schema [`SCHEMA`]) that `--compare` reads back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Device, Tensor};
use clap::{Args, Subcommand};
use glam::Vec3;
use gpu::GpuContext;
use serde::Serialize;
use serde_json::{Value, json};
use splat::{Camera, RenderOptions, SplatData, render};

/// The `schema` string of the JSON document.
pub const SCHEMA: &str = "splatdream-bench/1";

/// Every suite, in the order `bench all` runs them.
pub const SUITES: &[&str] = &["raster", "sort", "unet", "vae", "distill", "fit"];

/// `splatdream bench`: a suite, or `--compare A B`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Compare two result files (the JSON of `--json`/`--out`): a table of the cases in both
    /// with median A, median B and B/A. Needs no GPU. Same as `bench compare A B`.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
    #[command(subcommand)]
    suite: Option<Suite>,
}

#[derive(Subcommand)]
enum Suite {
    /// Rasterizer forward and backward on random splats, over --splats × --sizes.
    Raster(BenchOpts),
    /// The rasterizer's GPU radix sort alone: --counts random (u32 key, u32 value) pairs.
    Sort(BenchOpts),
    /// U-Net forward, and forward + gradient to the input latents (random SD 2.1-base weights
    /// unless --model).
    Unet(BenchOpts),
    /// VAE encoder forward, and forward + gradient to the input image (the SDS path of RGB
    /// renders; random SD 2.1 VAE weights unless --model).
    Vae(BenchOpts),
    /// One full `generate` step per distillation method (render → encode → noise → U-Net
    /// with CFG → guidance → backward into the splats → Adam). Needs --model.
    Distill(BenchOpts),
    /// `fit` optimiser steps per second on a dataset (default configs/spot-cow.toml).
    Fit(BenchOpts),
    /// Every suite (or --suites) with one set of options; --small for a CI-sized run.
    All(BenchOpts),
    /// Compare two result files; see `bench --compare`.
    Compare(CompareArgs),
}

#[derive(Args)]
struct CompareArgs {
    /// The baseline result file (its medians are the denominators).
    a: PathBuf,
    /// The result file compared with it.
    b: PathBuf,
}

/// The options shared by every suite; each suite reads the ones it names.
#[derive(Args, Clone, Debug)]
pub struct BenchOpts {
    /// Untimed runs before the timed ones (distill and fit always discard at least their
    /// first step, whose start cannot be timed; the JSON records the count used).
    #[arg(long)]
    warmup: Option<usize>,
    /// Timed runs per case (default: raster/sort 10, unet/vae/distill 5, fit 100; --small 2).
    #[arg(long)]
    repeats: Option<usize>,
    /// CI preset: tiny workloads that finish on a software adapter (lavapipe) in a debug build.
    /// Options given explicitly still win.
    #[arg(long)]
    small: bool,
    /// Print the results as one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON document to this file (atomically: a temporary file, then rename).
    #[arg(long)]
    out: Option<PathBuf>,
    /// all: the suites to run, comma-separated (default: all of them).
    #[arg(long, value_delimiter = ',')]
    suites: Vec<String>,
    /// raster: splat counts, comma-separated (default 10000,100000,1000000; --small 2000).
    #[arg(long, value_delimiter = ',')]
    splats: Vec<usize>,
    /// raster: square image sides in pixels, comma-separated (default 256,512,1024; --small 64).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<u32>,
    /// raster: cameras per call.
    #[arg(long, default_value_t = 1)]
    cameras: usize,
    /// raster: SH degree of the random splats.
    #[arg(long, default_value_t = 3)]
    sh_degree: u32,
    /// sort: pair counts, comma-separated (default 100000,1000000,10000000; --small 10000).
    #[arg(long, value_delimiter = ',')]
    counts: Vec<usize>,
    /// sort: key bits sorted on (32 = the rasterizer's depth sort).
    #[arg(long, default_value_t = 32)]
    bits: u32,
    /// unet, vae, distill: a diffusers folder or Hugging Face id (local cache). unet and vae
    /// default to the SD 2.1-base architecture with random weights; distill requires it.
    #[arg(long)]
    model: Option<String>,
    /// unet: a `unet/config.json` to instantiate with random weights instead of SD 2.1-base
    /// (also spelt --config).
    #[arg(long, alias = "config", conflicts_with = "model")]
    unet_config: Option<PathBuf>,
    /// unet, vae, distill: compute precision, f32 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// unet: latents per call (default 8: 4 views × CFG's two branches; --small 1); vae: images
    /// (default 4; --small 1); distill: cameras per step (default 4; --small 1).
    #[arg(long)]
    batch: Option<usize>,
    /// unet: latent side (default 64 = 512² images; --small 8).
    #[arg(long)]
    latent: Option<usize>,
    /// vae, distill: image side in pixels (default 512; --small 32).
    #[arg(long)]
    resolution: Option<u32>,
    /// distill: methods, comma-separated (default: every method of this build).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// distill: initial splats (generate's init.count; default 50000; --small 500).
    #[arg(long)]
    init_count: Option<usize>,
    /// distill: a generate setting as dotted.key=value, repeatable (e.g.
    /// guidance.sdi.inversion_steps=4).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// fit: settings file (default configs/spot-cow.toml, the shipped dataset).
    #[arg(long)]
    fit_config: Option<PathBuf>,
    /// fit: a fit setting as dotted.key=value, repeatable (e.g. data.downscale=1).
    #[arg(long = "fit-set", value_name = "KEY=VALUE")]
    fit_set: Vec<String>,
}

/// One benchmark case of the JSON document (docs/bench.md lists every field).
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// The suite (`raster`, `sort`, `unet`, `vae`, `distill`, `fit`).
    pub suite: String,
    /// Stable id of the workload, e.g. `raster/fwd/n=10000/512x512`.
    pub case: String,
    /// The workload's parameters.
    pub params: Value,
    /// Untimed runs before the timed ones.
    pub warmup: usize,
    /// Timed runs.
    pub repeats: usize,
    /// Median of `samples_ms` (the mean of the middle two for an even count), milliseconds.
    pub median_ms: f64,
    /// Fastest sample, milliseconds.
    pub min_ms: f64,
    /// Slowest sample, milliseconds.
    pub max_ms: f64,
    /// Every timed run, milliseconds, in run order.
    pub samples_ms: Vec<f64>,
    /// Largest `bytes_reserved` of the device's memory pools seen after any run of the case;
    /// null when the backend does not report it.
    pub peak_memory_bytes: Option<u64>,
    /// Per-suite throughput (`steps_per_s`, `samples_per_s`, `mkeys_per_s`), from the median.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl CaseResult {
    fn new(
        suite: &str,
        case: String,
        params: Value,
        warmup: usize,
        samples: Vec<f64>,
        peak: Option<u64>,
    ) -> Self {
        let (median_ms, min_ms, max_ms) = stats(&samples);
        Self {
            suite: suite.into(),
            case,
            params,
            warmup,
            repeats: samples.len(),
            median_ms,
            min_ms,
            max_ms,
            samples_ms: samples,
            peak_memory_bytes: peak,
            extra: Default::default(),
        }
    }

    fn with(mut self, key: &str, value: f64) -> Self {
        self.extra.insert(key.into(), json!(value));
        self
    }
}

/// (median, min, max) of non-empty `v`; the median of an even count is the mean of the middle
/// two.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    };
    (median, s[0], s[n - 1])
}

/// Bytes reserved by burn/cubecl's memory pools on `device` now (`None` where the backend
/// does not report it). Pools keep freed pages for reuse, so this is the allocator's
/// high-water mark since the last [`Device::memory_cleanup`], not the bytes of live tensors.
pub fn reserved(device: &Device) -> Option<u64> {
    device.memory_pool_usage().map(|u| u.bytes_reserved)
}

/// Wait for everything `t` depends on by reading it back, and check it is finite.
fn sync(t: Tensor<1>, what: &str) -> Result<()> {
    let v = t
        .try_into_data()
        .map_err(|e| anyhow::anyhow!("{what}: device read failed: {e:?}"))?
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{what}: {e:?}"))?;
    ensure!(
        v.iter().all(|x| x.is_finite()),
        "{what}: non-finite benchmark result"
    );
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Run `warmup + repeats` runs of `run` (which returns one wall time per case it times, in
/// milliseconds), sampling [`reserved`] after each; returns per case the timed samples and the
/// peak.
fn measure<const K: usize>(
    device: &Device,
    warmup: usize,
    repeats: usize,
    mut run: impl FnMut(usize) -> Result<[f64; K]>,
) -> Result<([Vec<f64>; K], Option<u64>)> {
    let mut samples: [Vec<f64>; K] = std::array::from_fn(|_| vec![]);
    let mut peak: Option<u64> = None;
    for rep in 0..warmup + repeats {
        let t = run(rep)?;
        if let Some(r) = reserved(device) {
            peak = Some(peak.unwrap_or(0).max(r));
        }
        if rep >= warmup {
            for (s, x) in samples.iter_mut().zip(t) {
                s.push(x);
            }
        }
    }
    Ok((samples, peak))
}

/// The resolved settings of a run.
struct Plan {
    opts: BenchOpts,
    suites: Vec<String>,
    warmup: usize,
}

impl Plan {
    fn repeats(&self, suite: &str) -> usize {
        self.opts.repeats.unwrap_or(if self.opts.small {
            2
        } else {
            match suite {
                "raster" | "sort" => 10,
                "fit" => 100,
                _ => 5,
            }
        })
    }

    fn pick<T: Copy>(&self, v: Option<T>, normal: T, small: T) -> T {
        v.unwrap_or(if self.opts.small { small } else { normal })
    }

    fn list<T: Clone>(&self, v: &[T], normal: &[T], small: &[T]) -> Vec<T> {
        if !v.is_empty() {
            v.to_vec()
        } else if self.opts.small {
            small.to_vec()
        } else {
            normal.to_vec()
        }
    }

    fn splats(&self) -> Vec<usize> {
        self.list(&self.opts.splats, &[10_000, 100_000, 1_000_000], &[2000])
    }
    fn sizes(&self) -> Vec<u32> {
        self.list(&self.opts.sizes, &[256, 512, 1024], &[64])
    }
    fn counts(&self) -> Vec<usize> {
        self.list(
            &self.opts.counts,
            &[100_000, 1_000_000, 10_000_000],
            &[10_000],
        )
    }
    fn methods(&self) -> Vec<String> {
        if self.opts.methods.is_empty() {
            distill::METHODS.iter().map(|s| s.to_string()).collect()
        } else {
            self.opts.methods.clone()
        }
    }
    fn resolution(&self) -> u32 {
        self.pick(self.opts.resolution, 512, 32)
    }
    fn fit_config(&self) -> PathBuf {
        self.opts
            .fit_config
            .clone()
            .unwrap_or_else(|| PathBuf::from("configs/spot-cow.toml"))
    }

    /// Check every option before any device work.
    fn check(&self) -> Result<()> {
        if self.opts.repeats == Some(0) {
            bail!("--repeats: must be at least 1");
        }
        for s in &self.suites {
            ensure!(
                SUITES.contains(&s.as_str()),
                "--suites: unknown suite `{s}`; the suites are {}",
                SUITES.join(", ")
            );
        }
        ensure!(!self.suites.is_empty(), "--suites: the list is empty");
        let has = |s: &str| self.suites.iter().any(|x| x == s);
        if has("raster") {
            ensure!(
                self.splats().iter().all(|&n| n > 0),
                "--splats: counts must be at least 1"
            );
            ensure!(
                self.sizes().iter().all(|&s| (1..=16384).contains(&s)),
                "--sizes: sides must be in 1..=16384"
            );
            ensure!(self.opts.cameras > 0, "--cameras: must be at least 1");
            ensure!(self.opts.sh_degree <= 3, "--sh-degree: must be 0 to 3");
        }
        if has("sort") {
            ensure!(
                self.counts()
                    .iter()
                    .all(|&n| n > 0 && n <= u32::MAX as usize),
                "--counts: counts must be in 1..=4294967295"
            );
            ensure!(
                (1..=32).contains(&self.opts.bits),
                "--bits: must be 1 to 32"
            );
        }
        if has("unet") || has("vae") || has("distill") {
            ensure!(self.opts.batch != Some(0), "--batch: must be at least 1");
            ensure!(self.opts.latent != Some(0), "--latent: must be at least 1");
            ensure!(
                self.opts
                    .resolution
                    .is_none_or(|r| r > 0 && r.is_multiple_of(8)),
                "--resolution: must be a positive multiple of 8"
            );
            if let Some(m) = &self.opts.model {
                sd::model::resolve(m).with_context(|| format!("--model {m}"))?;
            }
        }
        if has("distill") {
            if self.opts.model.is_none() {
                bail!(
                    "the distill suite needs --model (a diffusers folder or a Hugging Face id in \
                     the local cache, e.g. tests/cases/sd/tiny-eps or \
                     stabilityai/stable-diffusion-2-1-base); leave it out of --suites otherwise"
                );
            }
            for m in self.methods() {
                ensure!(
                    distill::METHODS.contains(&m.as_str()),
                    "--methods: unknown method `{m}`; this build has {}",
                    distill::METHODS.join(", ")
                );
            }
            ensure!(
                self.opts.init_count != Some(0),
                "--init-count: must be at least 1"
            );
        }
        if has("fit") {
            let c = self.fit_config();
            ensure!(c.is_file(), "--fit-config {}: no such file", c.display());
        }
        if let Some(out) = &self.opts.out {
            crate::check_out_file("--out", out)?;
        }
        Ok(())
    }
}

/// Run `splatdream bench`.
///
/// # Errors
/// Bad options, a missing model or dataset, device failures, or an unwritable `--out`.
pub fn cmd_bench(ctx: impl FnOnce() -> Result<GpuContext>, a: BenchArgs) -> Result<()> {
    let (opts, suites) = match (a.compare, a.suite) {
        (Some(files), _) => return compare(&files[0], &files[1]),
        (None, Some(Suite::Compare(c))) => return compare(&c.a, &c.b),
        (None, None) => bail!(
            "bench: name a suite ({}, all) or give --compare A B",
            SUITES.join(", ")
        ),
        (None, Some(s)) => match s {
            Suite::Raster(o) => (o, vec!["raster"]),
            Suite::Sort(o) => (o, vec!["sort"]),
            Suite::Unet(o) => (o, vec!["unet"]),
            Suite::Vae(o) => (o, vec!["vae"]),
            Suite::Distill(o) => (o, vec!["distill"]),
            Suite::Fit(o) => (o, vec!["fit"]),
            Suite::All(o) => (o, vec![]),
            Suite::Compare(_) => unreachable!("handled above"),
        },
    };
    let suites: Vec<String> = if suites.is_empty() {
        if opts.suites.is_empty() {
            SUITES.iter().map(|s| s.to_string()).collect()
        } else {
            opts.suites.clone()
        }
    } else {
        suites.into_iter().map(String::from).collect()
    };
    let plan = Plan {
        warmup: opts.warmup.unwrap_or(1),
        opts,
        suites,
    };
    plan.check()?;
    let started_at = utc_now();
    let ctx = ctx()?;
    let info = ctx.adapter.get_info();
    let mut results = vec![];
    for s in &plan.suites {
        ctx.burn.memory_cleanup();
        let before = results.len();
        match s.as_str() {
            "raster" => bench_raster(&ctx, &plan, &mut results)?,
            "sort" => bench_sort(&ctx, &plan, &mut results)?,
            "unet" => bench_unet(&ctx, &plan, &mut results)?,
            "vae" => bench_vae(&ctx, &plan, &mut results)?,
            "distill" => bench_distill(&ctx, &plan, &mut results)?,
            "fit" => bench_fit(&ctx, &plan, &mut results)?,
            other => bail!("unknown suite `{other}`"),
        }
        for r in &results[before..] {
            eprintln!(
                "{:<44} median {:>10.3} ms  (min {:.3}, max {:.3}, {} runs)",
                r.case, r.median_ms, r.min_ms, r.max_ms, r.repeats
            );
        }
    }
    let doc = json!({
        "schema": SCHEMA,
        "splatdream_version": env!("CARGO_PKG_VERSION"),
        "adapter": info.name,
        "backend": format!("{:?}", info.backend),
        "device_type": format!("{:?}", info.device_type),
        "driver": format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        "started_at": started_at,
        "results": results,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    if let Some(out) = &plan.opts.out {
        write_atomic(out, &text)?;
        eprintln!("wrote {}", out.display());
    }
    if plan.opts.json {
        println!("{text}");
    } else {
        println!(
            "{} ({:?}, {:?}), splatdream {}",
            info.name,
            info.backend,
            info.device_type,
            env!("CARGO_PKG_VERSION")
        );
        println!(
            "{:<44} {:>12} {:>12} {:>12} {:>10}",
            "case", "median ms", "min ms", "max ms", "peak MiB"
        );
        for r in &results {
            let peak = r
                .peak_memory_bytes
                .map_or("-".to_string(), |b| format!("{:.1}", b as f64 / 1048576.0));
            println!(
                "{:<44} {:>12.3} {:>12.3} {:>12.3} {:>10}",
                r.case, r.median_ms, r.min_ms, r.max_ms, peak
            );
        }
    }
    Ok(())
}

/// Write `text` to `path` through a temporary file in the same folder and a rename, so a
/// reader never sees a partial file.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--out {}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}", tmp.display(), path.display())
    })
}

/// The current UTC time as RFC 3339 (`2026-11-21T18:51:38Z`).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Deterministic random scene for benchmarks (tools/bench/gsplat_bench.py draws the same):
/// splats in the cube [−1, 1]³ seen by cameras at distance 4. A 64-bit LCG (Knuth's MMIX
/// constants) gives uniforms `(s >> 40) / 2^24`; per splat in order: mean (3), quaternion
/// (4, each U − 0.5), log-scales (3, `base + U` with `base = −4.5 − U`), opacity logit
/// (`4U − 2`), SH (`3K`, DC `2U − 1`, the rest `(U − 0.5)·0.2`).
pub fn random_scene(n: usize, sh_degree: u32, seed: u64) -> SplatData {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32) / (1u64 << 24) as f32
    };
    let k = splat::scene::sh_coeffs(sh_degree);
    let mut d = SplatData {
        sh_degree,
        ..Default::default()
    };
    for _ in 0..n {
        d.means
            .extend([rnd() * 2.0 - 1.0, rnd() * 2.0 - 1.0, rnd() * 2.0 - 1.0]);
        d.quats
            .extend([rnd() - 0.5, rnd() - 0.5, rnd() - 0.5, rnd() - 0.5]);
        let base = -4.5 - rnd();
        d.log_scales
            .extend([base + rnd(), base + rnd(), base + rnd()]);
        d.opacity_logits.push(rnd() * 4.0 - 2.0);
        for c in 0..k * 3 {
            d.sh.push(if c < 3 {
                rnd() * 2.0 - 1.0
            } else {
                (rnd() - 0.5) * 0.2
            });
        }
    }
    d
}

/// The benchmark cameras: an orbit of `count` around the origin at distance 4, elevation
/// 0.2 rad, world up −y, horizontal FoV 50°, `side`² pixels.
pub fn bench_cameras(count: usize, side: u32) -> Vec<Camera> {
    Camera::orbit(
        Vec3::ZERO,
        -Vec3::Y,
        4.0,
        0.2,
        count,
        50f32.to_radians(),
        side,
        side,
    )
}

/// raster: per splat count and image side, the forward (`render` until the image is read
/// back) and the backward (`loss.backward()` of the image sum until the gradients of the
/// means and SH are read back) of one call, on fresh leaves each run.
fn bench_raster(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    let o = &p.opts;
    let repeats = p.repeats("raster");
    let device: Device = ctx.burn.clone().autodiff();
    let opts = RenderOptions::default();
    for &n in &p.splats() {
        let data = random_scene(n, o.sh_degree, 7);
        for &side in &p.sizes() {
            let cameras = bench_cameras(o.cameras, side);
            ctx.burn.memory_cleanup();
            let ([fwd, bwd], peak) = measure(&ctx.burn, p.warmup, repeats, |_| {
                let s = data.to_splats(&device).require_grad();
                sync(s.opacity_logits.clone().inner().sum(), "upload")?;
                let t0 = Instant::now();
                let img = render(&s, &cameras, &opts)?;
                let loss = img.rgb.sum();
                sync(loss.clone().inner(), "raster forward")?;
                let f = ms(t0);
                let t1 = Instant::now();
                let grads = loss.backward();
                let g = s.means.grad(&grads).context("no gradient to the means")?;
                let g2 = s.sh.grad(&grads).context("no gradient to the SH")?;
                sync(g.sum() + g2.sum(), "raster backward")?;
                Ok([f, ms(t1)])
            })?;
            let mut suffix = String::new();
            if o.sh_degree != 3 {
                suffix += &format!("/sh={}", o.sh_degree);
            }
            if o.cameras != 1 {
                suffix += &format!("/cams={}", o.cameras);
            }
            let params = json!({
                "splats": n, "width": side, "height": side, "cameras": o.cameras,
                "sh_degree": o.sh_degree, "seed": 7,
            });
            for (pass, samples) in [("fwd", fwd), ("bwd", bwd)] {
                out.push(CaseResult::new(
                    "raster",
                    format!("raster/{pass}/n={n}/{side}x{side}{suffix}"),
                    params.clone(),
                    p.warmup,
                    samples,
                    peak,
                ));
            }
        }
    }
    Ok(())
}

/// sort: per count, the rasterizer's radix sort of that many random (key, value) u32 pairs on
/// `--bits` key bits, from submission to the device finishing (fresh unsorted copies are
/// uploaded before each run, untimed). The first run's output is checked to be sorted.
fn bench_sort(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    let repeats = p.repeats("sort");
    let bits = p.opts.bits;
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    };
    for &n in &p.counts() {
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        let keys: Vec<u32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u32 & mask
            })
            .collect();
        let values: Vec<u32> = (0..n as u32).collect();
        ctx.burn.memory_cleanup();
        let ([samples], peak) = measure(&ctx.burn, p.warmup, repeats, |rep| {
            let r = splat::raster::sort_pairs(&ctx.burn, &keys, &values, bits, rep == 0)
                .map_err(|e| anyhow::anyhow!("radix sort of {n} pairs: {e}"))?;
            if rep == 0 {
                ensure!(
                    r.keys.windows(2).all(|w| w[0] <= w[1])
                        && r.values
                            .iter()
                            .zip(&r.keys)
                            .all(|(&v, &k)| keys[v as usize] == k),
                    "radix sort of {n} pairs: the output is not the sorted input"
                );
            }
            Ok([r.elapsed.as_secs_f64() * 1e3])
        })?;
        let r = CaseResult::new(
            "sort",
            format!("sort/n={n}/bits={bits}"),
            json!({ "pairs": n, "bits": bits, "key_bytes": 4, "value_bytes": 4 }),
            p.warmup,
            samples,
            peak,
        );
        let mkeys = n as f64 / r.median_ms / 1e3;
        out.push(r.with("mkeys_per_s", mkeys));
    }
    Ok(())
}

/// unet: the U-Net forward (until its output is read back), and forward + gradient to the
/// input latents (until that gradient is read back), batch `B` of `L`² latents, 77-token
/// random text embeddings, timesteps `999 − 97i mod 1000`.
fn bench_unet(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    let o = &p.opts;
    let prec = crate::diffusion::precision(ctx, &o.dtype)?;
    let (unet, source) = match (&o.model, &o.unet_config) {
        (Some(m), _) => {
            let dir = sd::model::resolve(m)?;
            (
                sd::UNet::from_dir(&dir.join("unet"), &ctx.burn, prec)?,
                dir.display().to_string(),
            )
        }
        (None, cfg) => {
            let (arch, src) = match cfg {
                Some(path) => (
                    sd::config::UNetConfig::from_file(path)?,
                    path.display().to_string(),
                ),
                None => {
                    let text = include_str!("../../../assets/sd21/base/unet/config.json");
                    let c: sd::config::UNetConfig = serde_json::from_str(text)
                        .context("shipped assets/sd21/base/unet/config.json")?;
                    (
                        c.check(Path::new("assets/sd21/base/unet/config.json"))?,
                        "SD 2.1-base architecture".to_string(),
                    )
                }
            };
            let w = sd::weights::WeightFile::random(&ctx.burn, prec, 0);
            (sd::UNet::load(arch, &w)?, format!("{src} (random weights)"))
        }
    };
    let b = p.pick(o.batch, 8, 1);
    let s = p.pick(o.latent, 64, 8);
    let cfg = &unet.arch.config;
    let latents = sd::pipeline::gaussian([b, cfg.in_channels, s, s], 1, &ctx.burn);
    let text = sd::pipeline::gaussian([b, 77, cfg.cross_attention_dim], 2, &ctx.burn);
    let t: Vec<f64> = (0..b).map(|i| (999 - (i * 97) % 1000) as f64).collect();
    let repeats = p.repeats("unet");
    let ([fwd, grad], peak) = measure(&ctx.burn, p.warmup, repeats, |_| {
        let t0 = Instant::now();
        let y = unet.forward(latents.clone(), &t, text.clone());
        sync(y.reshape([-1]).slice(0..1), "U-Net forward")?;
        let f = ms(t0);
        let t1 = Instant::now();
        let x = latents.clone().autodiff().require_grad();
        let y = unet.forward(x.clone(), &t, text.clone().autodiff());
        let grads = y.sum().backward();
        let g = x.grad(&grads).context("no gradient reached the latents")?;
        sync(g.reshape([-1]).slice(0..1), "U-Net input gradient")?;
        Ok([f, ms(t1)])
    })?;
    let params = json!({
        "model": source, "dtype": prec.to_string(), "batch": b, "latent": s,
        "text_tokens": 77,
    });
    let passes = [("fwd", fwd), ("fwd+grad", grad)];
    let id = |pass: &str| format!("unet/{pass}/b={b}/{s}x{s}/{prec}");
    push_passes(out, "unet", passes, id, &params, p.warmup, peak, b);
    Ok(())
}

/// The SD 2.1 (and 2.1-base) `vae/config.json`, for random-weight VAE benchmarks.
const SD21_VAE_CONFIG: &str = r#"{
  "_class_name": "AutoencoderKL",
  "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  "in_channels": 3,
  "latent_channels": 4,
  "layers_per_block": 2,
  "norm_num_groups": 32,
  "out_channels": 3,
  "sample_size": 768,
  "scaling_factor": 0.18215
}"#;

/// vae: the VAE encoder forward (posterior mean until read back), and forward + gradient to
/// the input image (backward of the mean's sum until the image gradient is read back), batch
/// `B` of `R`² images in [−1, 1].
fn bench_vae(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    let o = &p.opts;
    let prec = crate::diffusion::precision(ctx, &o.dtype)?;
    let (vae, source) = match &o.model {
        Some(m) => {
            let dir = sd::model::resolve(m)?;
            (
                sd::vae::Vae::from_dir(&dir.join("vae"), &ctx.burn, prec)?,
                dir.display().to_string(),
            )
        }
        None => {
            let cfg: sd::config::VaeConfig =
                serde_json::from_str(SD21_VAE_CONFIG).context("SD 2.1 VAE config")?;
            let w = sd::weights::WeightFile::random(&ctx.burn, prec, 0);
            (
                sd::vae::Vae::load(cfg, &w)?,
                "SD 2.1 VAE architecture (random weights)".to_string(),
            )
        }
    };
    let b = p.pick(o.batch, 4, 1);
    let r = p.resolution();
    let f = vae.downscale() as u32;
    ensure!(
        r.is_multiple_of(f),
        "--resolution {r}: must be a multiple of the VAE downscale {f}"
    );
    let image = sd::pipeline::gaussian([b, 3, r as usize, r as usize], 3, &ctx.burn)
        .mul_scalar(0.5)
        .clamp(-1.0, 1.0);
    let repeats = p.repeats("vae");
    let ([fwd, grad], peak) = measure(&ctx.burn, p.warmup, repeats, |_| {
        let t0 = Instant::now();
        let z = vae.encode(image.clone()).mean;
        sync(z.reshape([-1]).slice(0..1), "VAE encoder forward")?;
        let fwd = ms(t0);
        let t1 = Instant::now();
        let x = image.clone().autodiff().require_grad();
        let z = vae.encode(x.clone()).mean;
        let grads = z.sum().backward();
        let g = x.grad(&grads).context("no gradient reached the image")?;
        sync(g.reshape([-1]).slice(0..1), "VAE encoder input gradient")?;
        Ok([fwd, ms(t1)])
    })?;
    let params = json!({ "model": source, "dtype": prec.to_string(), "batch": b, "resolution": r });
    let passes = [("enc-fwd", fwd), ("enc-fwd+grad", grad)];
    let id = |pass: &str| format!("vae/{pass}/b={b}/{r}x{r}/{prec}");
    push_passes(out, "vae", passes, id, &params, p.warmup, peak, b);
    Ok(())
}

/// Push one case per pass of a model suite (`id` names it from the pass), with
/// `samples_per_s` = `batch` / median.
#[allow(clippy::too_many_arguments)]
fn push_passes(
    out: &mut Vec<CaseResult>,
    suite: &str,
    passes: [(&str, Vec<f64>); 2],
    id: impl Fn(&str) -> String,
    params: &serde_json::Value,
    warmup: usize,
    peak: Option<u64>,
    batch: usize,
) {
    for (pass, samples) in passes {
        let c = CaseResult::new(suite, id(pass), params.clone(), warmup, samples, peak);
        let sps = batch as f64 / c.median_ms * 1e3;
        out.push(c.with("samples_per_s", sps));
    }
}

/// A temporary folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Self> {
        let d = std::env::temp_dir().join(format!("splatdream-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(Self(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Per-step wall times from a training loop's step events: each step's time is the interval
/// since the previous step's event (the loops read metrics back every step here, so each
/// event comes after the device finished the step). The first step has no start and is
/// always dropped, so `warmup.max(1)` steps are discarded.
struct StepClock {
    last: Option<Instant>,
    steps: Vec<f64>,
}

impl StepClock {
    fn new() -> Self {
        Self {
            last: None,
            steps: vec![],
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if let Some(l) = self.last {
            self.steps.push((now - l).as_secs_f64() * 1e3);
        }
        self.last = Some(now);
    }

    /// The samples after `warmup` warm-up steps (`warmup ≥ 1`; the first step is not timed).
    fn timed(&self, warmup: usize) -> Vec<f64> {
        self.steps[warmup - 1..].to_vec()
    }
}

/// distill: per method, `warmup.max(1) + repeats` steps of `train::generate::generate` (its
/// own loop, with metrics read back every step, no densification before step 100, no
/// turntable or views) with the model loaded once; samples are the step-to-step intervals.
fn bench_distill(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    use train::generate::{GenerateConfig, generate, load_model};
    let o = &p.opts;
    let model_id = o.model.clone().context("the distill suite needs --model")?;
    let model = load_model(&model_id, &o.dtype, &ctx.burn)
        .with_context(|| format!("loading the diffusion model `{model_id}`"))?;
    let warmup = p.warmup.max(1);
    let repeats = p.repeats("distill");
    let b = p.pick(o.batch, 4, 1);
    let res = p.resolution();
    let count = p.pick(o.init_count, 50_000, 500);
    let scratch = Scratch::new("distill")?;
    let s = |v: &str| toml::Value::String(v.to_string());
    let i = |v: u64| toml::Value::Integer(v as i64);
    for method in p.methods() {
        let dir = scratch.0.join(&method);
        let mut sets = vec![
            ("model".to_string(), s(&model_id)),
            ("prompt".into(), s("a DSLR photo of a corgi")),
            ("dtype".into(), s(&o.dtype)),
            ("seed".into(), i(0)),
            ("steps".into(), i((warmup + repeats) as u64)),
            ("batch".into(), i(b as u64)),
            ("resolution".into(), i(u64::from(res))),
            ("guidance.method".into(), s(&method)),
            ("init.count".into(), i(count as u64)),
            ("output.dir".into(), s(&dir.display().to_string())),
            ("output.log_every".into(), i(1)),
            ("output.checkpoint_every".into(), i(0)),
            ("output.turntable_frames".into(), i(0)),
            ("output.views".into(), i(0)),
        ];
        if o.small {
            sets.push(("guidance.vdm.ulite.levels".into(), i(2)));
            sets.push(("guidance.sdi.inversion_steps".into(), i(4)));
        }
        if method == "lmc" {
            // LMC-SDS needs a pre-trained b̂ψ; an untrained one of the same shape costs the
            // same per step.
            let cfg = if o.small {
                distill::BlurNetConfig {
                    levels: 1,
                    base_width: 4,
                }
            } else {
                distill::BlurNetConfig::default()
            };
            let net = distill::BlurNet::seeded(&cfg, 0, &ctx.burn)
                .map_err(|e| anyhow::anyhow!("blur model: {e}"))?;
            let file = scratch.0.join("blur.safetensors");
            net.save(&file, &distill::lmc::BlurMeta::new(&cfg, &model_id, 0))?;
            sets.push((
                "guidance.lmc.blur_model".into(),
                s(&file.display().to_string()),
            ));
        }
        let table = toml::Table::try_from(GenerateConfig::default())?;
        let cfg: GenerateConfig = crate::fit::apply_overrides(table, sets, &o.set)?;
        train::generate::validate(&cfg).with_context(|| format!("method {method}"))?;
        ctx.burn.memory_cleanup();
        let mut clock = StepClock::new();
        // A timing run: no stop handling or live view.
        let control = train::control::Control::new();
        let report = generate(&cfg, &model, &ctx.burn, None, &control, &mut |e| {
            if let train::generate::Event::Step { .. } = e {
                clock.tick();
            }
        })
        .with_context(|| format!("distill method {method}"))?;
        let samples = clock.timed(warmup);
        ensure!(
            samples.len() == repeats,
            "distill method {method}: {} timed steps instead of {repeats}",
            samples.len()
        );
        let peak = (report.peak_reserved_bytes > 0).then_some(report.peak_reserved_bytes);
        let r = CaseResult::new(
            "distill",
            format!("distill/{method}/b={b}/{res}x{res}"),
            json!({
                "method": method, "model": model_id, "dtype": o.dtype, "batch": b,
                "resolution": res, "init_splats": count, "set": o.set,
            }),
            warmup,
            samples,
            peak,
        );
        let sps = 1e3 / r.median_ms;
        out.push(r.with("steps_per_s", sps));
    }
    Ok(())
}

/// fit: `warmup.max(1) + repeats` steps of `train::fit::fit` on the configured dataset
/// (metrics read back every step, evaluation only after the last step, no turntable or
/// checkpoints); samples are the step-to-step intervals, `steps_per_s` is 1000 / median.
fn bench_fit(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    use train::fit::{Event, FitConfig, fit};
    let o = &p.opts;
    let path = p.fit_config();
    let warmup = p.warmup.max(1);
    let repeats = p.repeats("fit");
    let scratch = Scratch::new("fit")?;
    let i = |v: u64| toml::Value::Integer(v as i64);
    let mut sets = vec![
        ("train.steps".to_string(), i((warmup + repeats) as u64)),
        ("train.log_every".into(), i(1)),
        ("eval.every".into(), i(0)),
        ("output.checkpoint_every".into(), i(0)),
        ("output.turntable_frames".into(), i(0)),
        (
            "output.dir".into(),
            toml::Value::String(scratch.0.display().to_string()),
        ),
    ];
    if o.small {
        sets.push(("data.downscale".into(), i(4)));
        sets.push(("init.random_points".into(), i(500)));
    }
    let table = crate::fit::read_settings::<FitConfig>(&path)?;
    let cfg: FitConfig = crate::fit::apply_overrides(table, sets, &o.fit_set)
        .with_context(|| format!("--fit-config {}", path.display()))?;
    train::fit::validate(&cfg)?;
    let dataset = train::data::load(
        &cfg.data.path,
        &train::data::LoadOptions {
            downscale: cfg.data.downscale,
            eval_every: cfg.data.eval_every,
            max_views: (cfg.data.max_views > 0).then_some(cfg.data.max_views),
        },
    )?;
    let device = ctx.burn.clone();
    device.memory_cleanup();
    let mut clock = StepClock::new();
    let mut peak: Option<u64> = None;
    let control = train::control::Control::new();
    fit(&dataset, &cfg, &ctx.burn, None, &control, &mut |e| {
        if let Event::Step { .. } = e {
            clock.tick();
            if let Some(r) = reserved(&device) {
                peak = Some(peak.unwrap_or(0).max(r));
            }
        }
    })
    .with_context(|| format!("fit on {}", cfg.data.path.display()))?;
    let samples = clock.timed(warmup);
    ensure!(
        samples.len() == repeats,
        "fit: {} timed steps instead of {repeats}",
        samples.len()
    );
    let name = cfg
        .data
        .path
        .file_name()
        .map_or("dataset".into(), |n| n.to_string_lossy().to_string());
    let (w, h) = dataset
        .train
        .first()
        .map_or((0, 0), |v| (v.camera.width, v.camera.height));
    let r = CaseResult::new(
        "fit",
        format!("fit/{name}/{w}x{h}"),
        json!({
            "config": path.display().to_string(), "dataset": cfg.data.path.display().to_string(),
            "downscale": cfg.data.downscale, "train_views": dataset.train.len(),
            "width": w, "height": h, "batch": cfg.train.batch, "set": o.fit_set,
        }),
        warmup,
        samples,
        peak,
    );
    let sps = 1e3 / r.median_ms;
    out.push(r.with("steps_per_s", sps));
    Ok(())
}

/// One side of a comparison: the file's adapter and its cases' medians.
struct Loaded {
    adapter: String,
    medians: BTreeMap<String, f64>,
    order: Vec<String>,
}

/// Read a result file, naming the file and the field on any problem.
fn load_results(path: &Path) -> Result<Loaded> {
    let p = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("{p}: cannot read"))?;
    let doc: Value = serde_json::from_str(&text).with_context(|| format!("{p}: not valid JSON"))?;
    let schema = doc
        .get("schema")
        .and_then(Value::as_str)
        .with_context(|| format!("{p}: field `schema`: missing or not a string"))?;
    ensure!(
        schema == SCHEMA,
        "{p}: field `schema`: `{schema}` is not `{SCHEMA}`"
    );
    let adapter = doc
        .get("adapter")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let results = doc
        .get("results")
        .and_then(Value::as_array)
        .with_context(|| format!("{p}: field `results`: missing or not an array"))?;
    let mut medians = BTreeMap::new();
    let mut order = vec![];
    for (k, r) in results.iter().enumerate() {
        let case = r
            .get("case")
            .and_then(Value::as_str)
            .with_context(|| format!("{p}: field `results[{k}].case`: missing or not a string"))?;
        let m = r
            .get("median_ms")
            .and_then(Value::as_f64)
            .filter(|m| m.is_finite() && *m > 0.0)
            .with_context(|| {
                format!(
                    "{p}: field `results[{k}].median_ms` ({case}): missing or not a positive number"
                )
            })?;
        ensure!(
            medians.insert(case.to_string(), m).is_none(),
            "{p}: field `results[{k}].case`: `{case}` appears twice"
        );
        order.push(case.to_string());
    }
    Ok(Loaded {
        adapter,
        medians,
        order,
    })
}

/// `bench --compare A B`: the cases in both with median A, median B and B/A (above 1: B is
/// slower), then the cases only in one of them.
fn compare(a_path: &Path, b_path: &Path) -> Result<()> {
    let a = load_results(a_path)?;
    let b = load_results(b_path)?;
    println!("A: {} ({})", a_path.display(), a.adapter);
    println!("B: {} ({})", b_path.display(), b.adapter);
    let width = a
        .order
        .iter()
        .chain(&b.order)
        .map(|c| c.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:>12}  {:>12}  {:>8}",
        "case", "A median ms", "B median ms", "B/A"
    );
    let mut both = 0;
    for c in &a.order {
        if let Some(mb) = b.medians.get(c) {
            let ma = a.medians[c];
            println!("{c:<width$}  {ma:>12.3}  {mb:>12.3}  {:>8.3}", mb / ma);
            both += 1;
        }
    }
    if both == 0 {
        println!("(no case is in both files)");
    }
    for (label, x, y, path) in [("A", &a, &b, a_path), ("B", &b, &a, b_path)] {
        let only: Vec<&String> = x
            .order
            .iter()
            .filter(|c| !y.medians.contains_key(*c))
            .collect();
        if !only.is_empty() {
            println!("only in {label} ({}):", path.display());
            for c in only {
                println!("  {c}  {:.3} ms", x.medians[c]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_median_min_max() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert_eq!(stats(&[5.0]), (5.0, 5.0, 5.0));
    }

    /// tools/bench/gsplat_bench.py draws the same scene: these values are what its numpy port
    /// gives (`random_scene(3, 3)`), so a change here must be made there too.
    #[test]
    fn random_scene_matches_the_gsplat_script() {
        let d = random_scene(3, 3, 7);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(
            close(&d.means[..3], &[0.911319, 0.8131516, -0.454507]),
            "{:?}",
            &d.means[..3]
        );
        assert!(
            close(&d.log_scales[..3], &[-4.7717066, -5.0607767, -4.9221773]),
            "{:?}",
            &d.log_scales[..3]
        );
        assert!(
            close(&d.opacity_logits, &[-1.2242203, -0.71169806, -1.5896618]),
            "{:?}",
            d.opacity_logits
        );
        assert_eq!(d.sh.len(), 3 * 16 * 3);
        let v = bench_cameras(2, 64)[0].viewmat;
        assert!(
            (v[0][0] + 1.0).abs() < 1e-6 && (v[2][3] - 4.0).abs() < 1e-5,
            "{v:?}"
        );
        assert!((bench_cameras(1, 64)[0].k[0][0] - 68.62422).abs() < 1e-3);
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let t = utc_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.as_str() >= "2024-01-01T00:00:00Z", "{t}");
    }
}
