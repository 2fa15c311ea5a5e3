//! The suites: raster, sort, unet, vae, distill and fit, each a function that appends its
//! cases' results.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::tensor::Device;
use glam::Vec3;
use gpu::GpuContext;
use serde_json::json;
use splat::{Camera, RenderOptions, SplatData, render};

use super::measure::*;

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
pub(crate) fn bench_raster(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
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
pub(crate) fn bench_sort(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
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
            let r = splat::sort::sort_pairs(&ctx.burn, &keys, &values, bits, rep == 0)
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
pub(crate) fn bench_unet(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    let o = &p.opts;
    let prec =
        sd::Precision::for_device(&o.dtype, ctx).map_err(|e| anyhow::anyhow!("--dtype {e}"))?;
    let (unet, source) = match (&o.model, &o.unet_config) {
        (Some(m), _) => {
            let dir = sd::model::resolve(m)?;
            (
                sd::UNet::from_dir(&dir.join("unet"), &ctx.burn, prec, o.conv)?,
                dir.display().to_string(),
            )
        }
        (None, cfg) => {
            let (arch, src) = match cfg {
                Some(path) => (
                    sd::config::UNetConfig::from_file(path)?,
                    path.display().to_string(),
                ),
                None => (
                    sd::presets::Version::Sd21Base.unet()?,
                    "SD 2.1-base architecture".to_string(),
                ),
            };
            let w = sd::weights::WeightFile::random(&ctx.burn, prec, 0).with_conv(o.conv);
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
        "text_tokens": 77, "conv": o.conv.to_string(),
    });
    let passes = [("fwd", fwd), ("fwd+grad", grad)];
    let id = |pass: &str| format!("unet/{pass}/b={b}/{s}x{s}/{prec}");
    push_passes(out, "unet", passes, id, &params, p.warmup, peak, b);
    Ok(())
}

/// vae: the VAE encoder forward (posterior mean until read back), and forward + gradient to
/// the input image (backward of the mean's sum until the image gradient is read back), batch
/// `B` of `R`² images in [−1, 1].
pub(crate) fn bench_vae(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    let o = &p.opts;
    let prec =
        sd::Precision::for_device(&o.dtype, ctx).map_err(|e| anyhow::anyhow!("--dtype {e}"))?;
    let (vae, source) = match &o.model {
        Some(m) => {
            let dir = sd::model::resolve(m)?;
            (
                sd::vae::Vae::from_dir(&dir.join("vae"), &ctx.burn, prec, o.conv)?,
                dir.display().to_string(),
            )
        }
        None => {
            // SD 2.1-base's VAE (the same architecture as SD 2.1's).
            let cfg = sd::presets::Version::Sd21Base.vae()?;
            let w = sd::weights::WeightFile::random(&ctx.burn, prec, 0).with_conv(o.conv);
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
    let params = json!({
        "model": source, "dtype": prec.to_string(), "batch": b, "resolution": r,
        "conv": o.conv.to_string(),
    });
    let passes = [("enc-fwd", fwd), ("enc-fwd+grad", grad)];
    let id = |pass: &str| format!("vae/{pass}/b={b}/{r}x{r}/{prec}");
    push_passes(out, "vae", passes, id, &params, p.warmup, peak, b);
    Ok(())
}

/// distill: per method, `warmup.max(1) + repeats` steps of `train::generate::generate` (its
/// own loop, with metrics read back every step, no densification before step 100, no
/// turntable or views) with the model loaded once; samples are the step-to-step intervals.
pub(crate) fn bench_distill(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
    use train::generate::{GenerateConfig, generate, load_model};
    let o = &p.opts;
    let model_id = o.model.clone().context("the distill suite needs --model")?;
    let model = load_model(&model_id, &o.dtype, Default::default(), &ctx.burn)
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
        let cfg: GenerateConfig = train::settings::apply_overrides(table, sets, &o.set)?;
        train::generate::validate(&cfg).with_context(|| format!("method {method}"))?;
        ctx.burn.memory_cleanup();
        let mut clock = StepClock::new();
        // A timing run: no stop handling or live view.
        let control = live::control::Control::new();
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
pub(crate) fn bench_fit(ctx: &GpuContext, p: &Plan, out: &mut Vec<CaseResult>) -> Result<()> {
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
    let table = train::settings::read_settings::<FitConfig>(&path)?;
    let cfg: FitConfig = train::settings::apply_overrides(table, sets, &o.fit_set)
        .with_context(|| format!("--fit-config {}", path.display()))?;
    train::fit::validate(&cfg)?;
    let dataset = datasets::load(
        &cfg.data.path,
        &datasets::LoadOptions {
            downscale: cfg.data.downscale,
            eval_every: cfg.data.eval_every,
            max_views: (cfg.data.max_views > 0).then_some(cfg.data.max_views),
        },
    )?;
    let device = ctx.burn.clone();
    device.memory_cleanup();
    let mut clock = StepClock::new();
    let mut peak: Option<u64> = None;
    let control = live::control::Control::new();
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
