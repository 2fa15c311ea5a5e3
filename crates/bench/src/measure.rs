//! How a bench case is timed and recorded: warm-up and timed runs that end with a read-back,
//! the statistics, burn's reserved-memory peak, and the plan of cases a run measures.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Device, Tensor};
use serde::Serialize;
use serde_json::{Value, json};

use super::*;

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
    pub(crate) fn new(
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

    pub(crate) fn with(mut self, key: &str, value: f64) -> Self {
        self.extra.insert(key.into(), json!(value));
        self
    }
}

/// (median, min, max) of non-empty `v`; the median of an even count is the mean of the middle
/// two.
pub(crate) fn stats(v: &[f64]) -> (f64, f64, f64) {
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
pub(crate) fn sync(t: Tensor<1>, what: &str) -> Result<()> {
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

pub(crate) fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Run `warmup + repeats` runs of `run` (which returns one wall time per case it times, in
/// milliseconds), sampling [`reserved`] after each; returns per case the timed samples and the
/// peak.
pub(crate) fn measure<const K: usize>(
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
pub(crate) struct Plan {
    pub(crate) opts: BenchOpts,
    pub(crate) suites: Vec<String>,
    pub(crate) warmup: usize,
}

impl Plan {
    pub(crate) fn repeats(&self, suite: &str) -> usize {
        self.opts.repeats.unwrap_or(if self.opts.small {
            2
        } else {
            match suite {
                "raster" | "sort" => 10,
                "fit" => 100,
                "ply" => 3,
                _ => 5,
            }
        })
    }

    pub(crate) fn pick<T: Copy>(&self, v: Option<T>, normal: T, small: T) -> T {
        v.unwrap_or(if self.opts.small { small } else { normal })
    }

    pub(crate) fn list<T: Clone>(&self, v: &[T], normal: &[T], small: &[T]) -> Vec<T> {
        if !v.is_empty() {
            v.to_vec()
        } else if self.opts.small {
            small.to_vec()
        } else {
            normal.to_vec()
        }
    }

    pub(crate) fn splats(&self) -> Vec<usize> {
        self.list(&self.opts.splats, &[10_000, 100_000, 1_000_000], &[2000])
    }
    pub(crate) fn sizes(&self) -> Vec<u32> {
        self.list(&self.opts.sizes, &[256, 512, 1024], &[64])
    }
    pub(crate) fn counts(&self) -> Vec<usize> {
        self.list(
            &self.opts.counts,
            &[100_000, 1_000_000, 10_000_000],
            &[10_000],
        )
    }
    pub(crate) fn methods(&self) -> Vec<String> {
        if self.opts.methods.is_empty() {
            distill::METHODS.iter().map(|s| s.to_string()).collect()
        } else {
            self.opts.methods.clone()
        }
    }
    pub(crate) fn resolution(&self) -> u32 {
        self.pick(self.opts.resolution, 512, 32)
    }
    pub(crate) fn fit_config(&self) -> PathBuf {
        self.opts
            .fit_config
            .clone()
            .unwrap_or_else(|| PathBuf::from("configs/spot-cow.toml"))
    }

    /// Check every option before any device work.
    pub(crate) fn check(&self) -> Result<()> {
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
            files::check_file_target(out).map_err(|e| anyhow::anyhow!("--out {e}"))?;
        }
        Ok(())
    }
}

/// Push one case per pass of a model suite (`id` names it from the pass), with
/// `samples_per_s` = `batch` / median.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_passes(
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
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Result<Self> {
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
pub(crate) struct StepClock {
    pub(crate) last: Option<Instant>,
    pub(crate) steps: Vec<f64>,
}

impl StepClock {
    pub(crate) fn new() -> Self {
        Self {
            last: None,
            steps: vec![],
        }
    }

    pub(crate) fn tick(&mut self) {
        let now = Instant::now();
        if let Some(l) = self.last {
            self.steps.push((now - l).as_secs_f64() * 1e3);
        }
        self.last = Some(now);
    }

    /// The samples after `warmup` warm-up steps (`warmup ≥ 1`; the first step is not timed).
    pub(crate) fn timed(&self, warmup: usize) -> Vec<f64> {
        self.steps[warmup - 1..].to_vec()
    }
}
