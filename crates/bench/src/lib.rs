//! The headless benchmark suites behind `splatdream bench` (docs/bench.md) and `--compare`:
//! the suites live here, apart from the CLI, which only parses its arguments into
//! [`BenchArgs`] and calls [`cmd_bench`].
//!
//! Every case runs `warmup` untimed runs and then `repeats` timed runs of one workload and
//! reports the median, minimum and maximum wall time in milliseconds and every sample. A timed
//! run ends only when the device has finished: burn and the rasterizer queue work lazily, so
//! each timed section ends by reading a value back to the host (which waits for everything it
//! depends on). Peak memory is the largest `bytes_reserved` of burn/cubecl's memory pools
//! sampled after each run of the case (`measure::reserved`).
//!
//! Results form one JSON document (schema [`SCHEMA`]) that `--compare` reads back.

mod compare;
mod measure;
mod ply;
mod suites;

use compare::compare;
use measure::*;
use suites::*;

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use gpu::GpuContext;
use serde_json::json;

/// The `schema` string of the JSON document.
pub const SCHEMA: &str = "splatdream-bench/1";

/// Every suite, in the order `bench all` runs them.
pub const SUITES: &[&str] = &["raster", "sort", "unet", "vae", "distill", "fit", "ply"];

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
    /// Writing and reading INRIA PLYs of --splats random splats at --sh-degree on the host
    /// (time, file size and the resident memory they add).
    Ply(BenchOpts),
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
    /// Timed runs per case (default: raster/sort 10, unet/vae/distill 5, fit 100, ply 3; --small 2).
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
    /// raster, ply: splat counts, comma-separated (default 10000,100000,1000000; --small 2000).
    #[arg(long, value_delimiter = ',')]
    splats: Vec<usize>,
    /// raster: square image sides in pixels, comma-separated (default 256,512,1024; --small 64).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<u32>,
    /// raster: cameras per call.
    #[arg(long, default_value_t = 1)]
    cameras: usize,
    /// raster, ply: SH degree of the random splats.
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
    /// unet, vae: how the convolutions run, `direct` (burn's kernel) or `im2col` (lowered to a
    /// matrix multiply; `sd::nn::ConvAlgorithm`).
    #[arg(long, default_value = "direct")]
    conv: sd::nn::ConvAlgorithm,
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
            Suite::Ply(o) => (o, vec!["ply"]),
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
            "ply" => ply::bench_ply(&plan, &mut results)?,
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
        files::write_bytes(out, text.as_bytes())?;
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

/// The current UTC time as RFC 3339 to the second (`2026-11-21T18:51:38Z`).
fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
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
