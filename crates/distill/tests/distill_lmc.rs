//! LMC-SDS (docs/methods.md §3) with the committed tiny SD models (`tests/cases/sd/tiny-eps`,
//! ε-prediction, and `tiny-v`, v-prediction):
//!
//! - the gradient that `distill::inject` delivers to autodiff latents equals
//!   `(1/ω)[ω(ε_y − ε_∅) + (b̃ − ẑ_t)]` recomputed here independently — separate U-Net calls
//!   per branch, ᾱ_t, z_t, v → ε, ẑ_t and the per-image-per-channel renormalisation on the host,
//!   only `b = b̂ψ(z, t)` taken from the same frozen `BlurNet` — in normal and fixed-ε mode
//!   (ε_fix read from the guidance state, reused across steps and restored exactly by
//!   `load_state`). Tolerance `1e-4·max|ref| + 1e-5`;
//! - a `BlurNet` save → load round trip gives identical outputs and metadata;
//! - corrupted, truncated, mis-shaped, incomplete files and bad metadata are rejected with
//!   errors naming the file and the tensor or key; `build` names `guidance.lmc.blur_model`;
//! - `BlurTrainer`'s loss `L_k` falls on the tiny model (mean of the last 5 of 20 steps below
//!   0.75× the mean of the first 5), reproducibly for a seed.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use common::{host64, injected, load, upload};
use distill::lmc::{BlurMeta, BlurTrainer, BlurTrainerConfig, EPS_FIX_STATE, VAR_EPS};
use distill::{
    BlurNet, BlurNetConfig, DistillError, Guidance, GuidanceConfig, GuidanceInput, Lmc, LmcConfig,
    Prior,
};
use sd::UNet;
use sd::scheduler::{NoiseSchedule, PredictionType};
use testkit::host;
use testkit::{compare, gpu};

const B: usize = 2;
const C: usize = 4;
const H: usize = 8;
const W: usize = 8;
const LATENT: [usize; 4] = [B, C, H, W];
const PER: usize = C * H * W;
const TIMESTEPS: [usize; B] = [137, 702];

fn input(d: usize, seed: u64) -> GuidanceInput {
    let dev = &gpu().burn;
    GuidanceInput {
        latents: sd::pipeline::gaussian(LATENT, seed, dev),
        timesteps: TIMESTEPS.to_vec(),
        noise: sd::pipeline::gaussian(LATENT, seed + 1, dev),
        cond: sd::pipeline::gaussian([B, 77, d], seed + 2, dev),
        uncond: sd::pipeline::gaussian([B, 77, d], seed + 3, dev),
        step: 0,
        seed,
        extra: vec![],
        c2w: None,
    }
}

/// A unique temporary folder, removed on drop unless the test panicked.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("splatdream-lmc-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const SMALL: BlurNetConfig = BlurNetConfig {
    levels: 2,
    base_width: 8,
};

/// A seeded, randomly initialised small b̂ψ written to `dir/blur.safetensors`.
fn blur_file(dir: &Path, seed: u64) -> PathBuf {
    let net = BlurNet::seeded(&SMALL, seed, &gpu().burn).expect("blur net");
    let path = dir.join("blur.safetensors");
    let mut meta = BlurMeta::new(&SMALL, "tests/cases/sd/tiny-eps", 123);
    meta.resolution = 64;
    meta.batch = 4;
    net.save(&path, &meta).expect("save");
    path
}

/// `out` (the raw U-Net output at `x`) converted to ε on the host.
fn to_eps(v_pred: bool, out: &[f64], x: &[f64], a: &[f64; B], s: &[f64; B]) -> Vec<f64> {
    (0..B * PER)
        .map(|k| {
            if v_pred {
                a[k / PER] * out[k] + s[k / PER] * x[k]
            } else {
                out[k]
            }
        })
        .collect()
}

/// b̃ on the host: `b` renormalised per image and channel to the (biased) std of `r`.
fn renorm_host(b: &[f64], r: &[f64]) -> Vec<f64> {
    let n = H * W;
    let mut out = vec![0.0; b.len()];
    for ic in 0..B * C {
        let sl = ic * n..(ic + 1) * n;
        let stats = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
            (m, (var + VAR_EPS).sqrt())
        };
        let (mb, sb) = stats(&b[sl.clone()]);
        let (_, sr) = stats(&r[sl.clone()]);
        for k in sl {
            out[k] = sr / sb * (b[k] - mb) + mb;
        }
    }
    out
}

fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

/// The reference pieces of one LMC step: `(g, g_with_unrenormalised_b, lmc term)`.
#[allow(clippy::too_many_arguments)]
fn reference(
    unet: &UNet,
    schedule: &NoiseSchedule,
    inp: &GuidanceInput,
    b_net: &[f64],
    eps_fix: Option<&[f64]>,
    omega: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let z = host64(&inp.latents);
    let eps = host64(&inp.noise);
    let abar: [f64; B] = std::array::from_fn(|i| schedule.alphas_cumprod()[inp.timesteps[i]]);
    let a: [f64; B] = std::array::from_fn(|i| abar[i].sqrt());
    let s: [f64; B] = std::array::from_fn(|i| (1.0 - abar[i]).sqrt());
    let noisy = |e: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..B * PER)
            .map(|k| a[k / PER] * z[k] + s[k / PER] * e(k))
            .collect()
    };
    let z_t = noisy(&|k| eps[k]);
    let zc_t = match eps_fix {
        Some(f) => noisy(&|k| f[k % PER]),
        None => z_t.clone(),
    };
    let tf: Vec<f64> = inp.timesteps.iter().map(|&t| t as f64).collect();
    let v_pred = schedule.config().prediction_type == PredictionType::VPrediction;
    let run = |x: &[f64], ctx: &Tensor<3>| {
        let out = host64(&unet.forward(upload(x, LATENT), &tf, ctx.clone()));
        to_eps(v_pred, &out, x, &a, &s)
    };
    let e_y = run(&zc_t, &inp.cond);
    let e_u = run(&zc_t, &inp.uncond);
    let e_u_zt = if eps_fix.is_some() {
        run(&z_t, &inp.uncond)
    } else {
        e_u.clone()
    };
    let z_hat: Vec<f64> = (0..B * PER)
        .map(|k| (z_t[k] - s[k / PER] * e_u_zt[k]) / a[k / PER])
        .collect();
    let bt = renorm_host(b_net, &z_hat);
    let g = |b: &[f64]| -> Vec<f64> {
        (0..B * PER)
            .map(|k| (omega * (e_y[k] - e_u[k]) + (b[k] - z_hat[k])) / omega)
            .collect()
    };
    let lmc: Vec<f64> = (0..B * PER).map(|k| bt[k] - z_hat[k]).collect();
    let cond: Vec<f64> = (0..B * PER).map(|k| omega * (e_y[k] - e_u[k])).collect();
    (g(&bt), g(b_net), lmc, cond)
}

fn stat(out: &distill::GuidanceOutput, k: &str) -> f64 {
    out.stats
        .iter()
        .find(|(n, _)| *n == k)
        .unwrap_or_else(|| panic!("stat {k}"))
        .1
        .value()
        .expect("stat read-back")
}

#[test]
fn lmc_gradient_reaches_latents() {
    let dir = TempDir::new("grad");
    let path = blur_file(&dir.0, 31);
    for (name, fixed, omega) in [
        ("tiny-eps", false, 20.0),
        ("tiny-eps", true, 20.0),
        ("tiny-v", false, 20.0),
        ("tiny-v", true, 2.0),
    ] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        let cfg = GuidanceConfig {
            method: "lmc".into(),
            lmc: LmcConfig {
                blur_model: Some(path.clone()),
                cfg_scale: omega,
                fixed_eps: fixed,
                fixed_eps_seed: 5,
                scale: 1.0,
                ..LmcConfig::default()
            },
            ..GuidanceConfig::default()
        };
        let mut lmc = distill::build(&cfg, &gpu().burn).expect("build lmc");
        assert_eq!(lmc.name(), "lmc");
        assert_eq!(lmc.cfg_scale(), omega);
        let inp = input(d, 41);
        let out = lmc.gradient(&prior, &inp).expect("lmc gradient");
        let state = lmc.state();
        let eps_fix: Option<Vec<f64>> = if fixed {
            assert_eq!(state.len(), 1, "{name}: one state entry");
            assert_eq!(state[0].0, EPS_FIX_STATE);
            assert_eq!(state[0].1, vec![1, C, H, W]);
            Some(state[0].2.iter().map(|&x| x as f64).collect())
        } else {
            assert!(state.is_empty(), "{name}: no state without fixed ε");
            None
        };
        // b from the same frozen network, evaluated on its own.
        let mut plain = Lmc::new(cfg.lmc.clone(), &gpu().burn).expect("lmc");
        let b_net = host64(
            &plain
                .blur_net()
                .forward(inp.latents.clone(), &inp.timesteps),
        );
        let (want, want_unrenorm, lmc_term, cond_term) =
            reference(&unet, &schedule, &inp, &b_net, eps_fix.as_deref(), omega);
        let got = injected(&inp.latents, out.grad.clone());
        let what = format!("{name} lmc fixed_eps {fixed} ω {omega}");
        let ratio = compare(&what, &got, &want).unwrap_or_else(|e| panic!("{e}"));
        // The test sees the renormalisation: b instead of b̃ does not match.
        assert!(
            compare(&what, &got, &want_unrenorm).is_err(),
            "{what}: the un-renormalised b also matches"
        );
        // The LMC term on its own (it is 1/ω of the gradient): the logged rms matches.
        let (lmc_rms, cond_rms) = (stat(&out, "lmc_rms"), stat(&out, "cond_rms"));
        assert!(
            (lmc_rms - rms(&lmc_term)).abs() <= 1e-4 * rms(&lmc_term) + 1e-6,
            "{what}: lmc_rms {lmc_rms} vs {}",
            rms(&lmc_term)
        );
        assert!(
            (cond_rms - rms(&cond_term)).abs() <= 1e-4 * rms(&cond_term) + 1e-6,
            "{what}: cond_rms {cond_rms} vs {}",
            rms(&cond_term)
        );
        println!(
            "{what}: ok (worst {ratio:.3} of tolerance; rms cond {cond_rms:.4}, lmc {lmc_rms:.4})"
        );

        if fixed {
            // Fixed ε really changes L_cond: the reference with z^c_t = z_t does not match.
            let (shared, ..) = reference(&unet, &schedule, &inp, &b_net, None, omega);
            assert!(
                compare(&what, &got, &shared).is_err(),
                "{what}: ε_fix made no difference"
            );
            // A second step keeps ε_fix; a fresh guidance restored from the state gives the
            // same gradient (exact resume), even with another fixed_eps_seed.
            let inp2 = input(d, 77);
            let g2 = host64(&lmc.gradient(&prior, &inp2).expect("step 2").grad);
            assert_eq!(lmc.state()[0].2, state[0].2, "{what}: ε_fix changed");
            plain.config.fixed_eps_seed = 999;
            plain.config.fixed_eps = true;
            plain.load_state(&state).expect("load_state");
            let g2r = host64(&plain.gradient(&prior, &inp2).expect("restored").grad);
            let g2r32: Vec<f32> = g2r.iter().map(|&x| x as f32).collect();
            compare(&format!("{what} resumed"), &g2r32, &g2).unwrap_or_else(|e| panic!("{e}"));
            // Bad state entries are named.
            let mut bad = state.clone();
            bad[0].1 = vec![1, C, H];
            let e = plain.load_state(&bad).unwrap_err().to_string();
            assert!(e.contains(EPS_FIX_STATE), "{e}");
            let e = plain
                .load_state(&[("lmc.nope".into(), vec![1], vec![0.0])])
                .unwrap_err()
                .to_string();
            assert!(e.contains("lmc.nope"), "{e}");
        }
    }
}

#[test]
fn blur_net_save_load_round_trip() {
    let dir = TempDir::new("roundtrip");
    let path = blur_file(&dir.0, 3);
    let dev = &gpu().burn;
    let (net, meta) = BlurNet::load(&path, dev).expect("load");
    assert_eq!(net.config(), SMALL);
    assert_eq!(meta.levels, 2);
    assert_eq!(meta.base_width, 8);
    assert_eq!(meta.model, "tests/cases/sd/tiny-eps");
    assert_eq!((meta.steps, meta.resolution, meta.batch), (123, 64, 4));
    // The network that was saved (same seed: host-RNG initialisation), against the loaded
    // one; 8×8 fits two levels, 6×10 is padded inside.
    let orig = BlurNet::seeded(&SMALL, 3, dev).expect("blur net");
    let other = BlurNet::seeded(&SMALL, 4, dev).expect("blur net");
    for (h, w) in [(8, 8), (6, 10)] {
        let z = sd::pipeline::gaussian([3, C, h, w], 9, dev);
        let t = [20, 500, 980];
        let a = host(&orig.forward(z.clone(), &t)).unwrap();
        let b = host(&net.forward(z.clone(), &t)).unwrap();
        assert_eq!(a.len(), 3 * C * h * w);
        assert!(a.iter().all(|x| x.is_finite()));
        assert_eq!(a, b, "{h}×{w}: outputs differ after the round trip");
        let c = host(&other.forward(z, &t)).unwrap();
        assert_ne!(a, c, "{h}×{w}: another seed gives the same network");
    }
    // The timestep matters.
    let z = sd::pipeline::gaussian([1, C, 8, 8], 9, dev);
    let lo = host(&net.forward(z.clone(), &[20])).unwrap();
    let hi = host(&net.forward(z, &[980])).unwrap();
    assert_ne!(lo, hi);
    // Default network: 4 levels of 32-64-128-256 and a 512 bottleneck.
    let big = BlurNet::new(&BlurNetConfig::default(), dev).unwrap();
    assert_eq!(big.mid.conv1.weight.dims(), [512, 256, 3, 3]);
    assert_eq!(big.enc[0].conv1.weight.dims(), [32, 14, 3, 3]);
    assert_eq!(big.head.weight.dims(), [4, 32, 1, 1]);
    println!("default b̂ψ: {} parameters", big.num_parameters());
}

/// Rewrite the safetensors file `src` into `dst` after `edit` of its tensors and metadata.
fn rewrite(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>)>, &mut HashMap<String, String>),
) {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let data = std::fs::read(src).unwrap();
    let (_, header) = SafeTensors::read_metadata(&data).unwrap();
    let mut meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&data).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors, &mut meta);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dst,
        safetensors::tensor::serialize(views, Some(meta)).unwrap(),
    )
    .unwrap();
}

#[test]
fn bad_blur_files_are_named() {
    let dir = TempDir::new("bad");
    let good = blur_file(&dir.0, 4);
    let dev = &gpu().burn;
    let err = |p: &Path| -> String {
        let e = BlurNet::load(p, dev).expect_err("must fail");
        assert!(matches!(e, DistillError::File { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&p.display().to_string()), "file not named: {e}");
        e
    };

    // Truncated.
    let bytes = std::fs::read(&good).unwrap();
    let p = dir.0.join("truncated.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    println!("truncated: {}", err(&p));
    // Garbage.
    let p = dir.0.join("garbage.safetensors");
    std::fs::write(&p, b"not a tensor file").unwrap();
    println!("garbage: {}", err(&p));
    // Missing file.
    let p = dir.0.join("absent.safetensors");
    println!("absent: {}", err(&p));

    // Mis-shaped tensor.
    let name = "blur.enc.1.conv2.weight";
    let p = dir.0.join("misshaped.safetensors");
    rewrite(&good, &p, |t, _| {
        let e = t.iter_mut().find(|(n, _, _)| n == name).unwrap();
        let keep = e.2.len() / e.1[0] * (e.1[0] - 1);
        e.1[0] -= 1;
        e.2.truncate(keep);
    });
    let e = err(&p);
    assert!(e.contains(name) && e.contains("shape"), "{e}");
    println!("mis-shaped: {e}");
    // Missing tensor.
    let name = "blur.head.bias";
    let p = dir.0.join("missing.safetensors");
    rewrite(&good, &p, |t, _| t.retain(|(n, _, _)| n != name));
    let e = err(&p);
    assert!(e.contains(name) && e.contains("missing"), "{e}");
    // Unexpected tensor.
    let p = dir.0.join("extra.safetensors");
    rewrite(&good, &p, |t, _| {
        t.push(("blur.enc.7.conv1.weight".into(), vec![1], vec![0; 4]))
    });
    let e = err(&p);
    assert!(e.contains("blur.enc.7.conv1.weight"), "{e}");
    // Metadata: a levels value that does not parse, one that disagrees with the tensors, no
    // metadata at all.
    let p = dir.0.join("badmeta.safetensors");
    rewrite(&good, &p, |_, m| {
        m.insert("splatdream.lmc.levels".into(), "two".into());
    });
    let e = err(&p);
    assert!(e.contains("splatdream.lmc.levels"), "{e}");
    let p = dir.0.join("wronglevels.safetensors");
    rewrite(&good, &p, |_, m| {
        m.insert("splatdream.lmc.levels".into(), "3".into());
    });
    let e = err(&p);
    assert!(e.contains("blur.") && e.contains("levels 3"), "{e}");
    let p = dir.0.join("nometa.safetensors");
    rewrite(&good, &p, |_, m| m.clear());
    let e = err(&p);
    assert!(e.contains("lmc-train"), "{e}");

    // Through the guidance: the setting and the file are named.
    let cfg = |blur_model: Option<PathBuf>| GuidanceConfig {
        method: "lmc".into(),
        lmc: LmcConfig {
            blur_model,
            ..LmcConfig::default()
        },
        ..GuidanceConfig::default()
    };
    let e = distill::build(&cfg(None), dev)
        .err()
        .expect("unset")
        .to_string();
    assert!(
        e.contains("guidance.lmc.blur_model") && e.contains("lmc-train"),
        "{e}"
    );
    let p = dir.0.join("misshaped.safetensors");
    let e = distill::build(&cfg(Some(p.clone())), dev)
        .err()
        .expect("bad file");
    assert!(
        matches!(&e, DistillError::Setting { name, .. } if name == "guidance.lmc.blur_model"),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(
        e.contains(&p.display().to_string()) && e.contains("blur.enc.1.conv2.weight"),
        "{e}"
    );
    // Config parsing: defaults and unknown fields.
    let c: GuidanceConfig =
        serde_json::from_str(r#"{"method": "lmc", "lmc": {"blur_model": "b.safetensors"}}"#)
            .expect("parse");
    assert_eq!(c.lmc.cfg_scale, 20.0);
    assert_eq!(
        c.lmc.blur_model.as_deref(),
        Some(Path::new("b.safetensors"))
    );
    let e = serde_json::from_str::<GuidanceConfig>(r#"{"lmc": {"omega": 10}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("omega"), "{e}");
}

#[test]
fn blur_trainer_loss_falls() {
    let (unet, schedule, d) = load("tiny-eps");
    let prior = Prior {
        unet: &unet,
        schedule: &schedule,
    };
    let dev = &gpu().burn;
    // Six smooth-ish latents: random fields blurred by a 2×2 box, like the VAE's.
    let data = {
        let z = sd::pipeline::gaussian([6, C, H + 1, W + 1], 21, dev);
        (z.clone().slice([0..6, 0..C, 0..H, 0..W])
            + z.clone().slice([0..6, 0..C, 1..H + 1, 0..W])
            + z.clone().slice([0..6, 0..C, 0..H, 1..W + 1])
            + z.slice([0..6, 0..C, 1..H + 1, 1..W + 1]))
            * 0.5
    };
    let uncond = sd::pipeline::gaussian([1, 77, d], 22, dev);
    // Low timesteps only: with the tiny model's random weights, ẑ_t at high t is dominated by
    // (σ_t/α_t)(ε − ε̂), which no b̂ψ(z, t) can predict (σ/α ≈ 14 at t = 980, 0.5 at t = 200),
    // so the learnable part of L_k only shows at low t.
    let cfg = BlurTrainerConfig {
        lr: 3e-3,
        batch: 4,
        t_min: 20,
        t_max: 200,
        seed: 7,
        ..BlurTrainerConfig::default()
    };
    let steps = 20;
    let run = |cfg: BlurTrainerConfig, steps: usize| -> Vec<f64> {
        let mut tr = BlurTrainer::new(&SMALL, cfg, dev).expect("trainer");
        (0..steps)
            .map(|_| {
                let l = tr.step(&prior, &data, &uncond).expect("step");
                distill::Stat::Device(l).value().expect("loss")
            })
            .collect()
    };
    let losses = run(cfg.clone(), steps);
    println!("L_k over {steps} steps: {losses:.4?}");
    assert!(losses.iter().all(|l| l.is_finite() && *l >= 0.0));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // Observed on lavapipe: ≈ 2.2 → ≈ 1.3 (ratio ≈ 0.6); required: below 0.75.
    let (first, last) = (mean(&losses[..5]), mean(&losses[steps - 5..]));
    println!("mean of the first 5: {first:.4}, of the last 5: {last:.4}");
    assert!(
        last < 0.75 * first,
        "L_k did not fall by 25%: {first} → {last}"
    );
    // Deterministic for a seed.
    let again = run(cfg, 3);
    assert_eq!(&again[..3], &losses[..3], "not reproducible");
}
