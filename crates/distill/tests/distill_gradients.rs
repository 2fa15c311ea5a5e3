//! Gradient plumbing of the guidance methods, with the committed tiny SD models
//! (`tests/cases/sd/tiny-eps`, ε-prediction, and `tests/cases/sd/tiny-v`, v-prediction):
//! the gradient a method returns, injected into autodiff latents with `distill::inject`, must
//! arrive at the latents as the method's formula evaluated independently here — U-Net called
//! separately for the unconditional and conditional branches, CFG, v → ε, ω(t) and DCA's λ_t
//! on the host from `alphas_cumprod`. Tolerance `1e-4·max|ref| + 1e-5`.
//!
//! - SDS (DreamFusion): `g = ω(t)(ε̂ − ε)` for every weighting.
//! - VDM + DCA (DreamMapping Eq. 19): `g = ω(t)(ε̂ − λ_t ℳψ(ε̂))`, ℳψ with its weights from
//!   before the step's online update; ℳψ's loss falls under repeated online steps; Adam's
//!   moments travel with ℳψ's weights in the checkpoint state, so a restored ℳψ takes the
//!   same next update as one that never stopped.
//! - SDI (methods.md §2): the DDIM inversion chain (negative-CFG U-Net calls at every level,
//!   x̂₀/ε split at ᾱ of the level, η-noise) redone on the host, then
//!   `g = (z − x̂₀(z_t))/(N·B²)` with `z_t` the inverted latent.
//! - SDS-Bridge (methods.md §4): stage 1 `(1 − ᾱ_t)(ε̂_100 − ε)`, stage 2 `w·w₂(t)(ε̂_tgt − ε̂_src)`.

mod common;

use burn::tensor::Tensor;
use common::{host64, injected, load, upload};
use distill::sdi::{inversion_levels, inversion_noise};
use distill::{
    Bridge, BridgeConfig, Guidance, GuidanceConfig, GuidanceInput, Prior, Sdi, SdiConfig, Sds,
    SdsConfig, ULiteConfig, Vdm, VdmConfig, Weighting,
};
use sd::UNet;
use sd::scheduler::{NoiseSchedule, PredictionType};
use testkit::{compare, gpu};

const B: usize = 2;
const LATENT: [usize; 4] = [B, 4, 8, 8];
/// One timestep under the DCA cut-off (300) and one above it.
const TIMESTEPS: [usize; B] = [137, 702];
const CFG: f64 = 7.5;

/// Seeded inputs for `model`.
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

/// Host-side reference pieces of one step: ε̂ (CFG form A at `CFG`, converted to ε), ε and
/// ᾱ per sample, independent of `distill` (two separate U-Net calls, host arithmetic).
struct Reference {
    eps_hat: Vec<f64>,
    eps: Vec<f64>,
    abar: [f64; B],
}

fn reference(unet: &UNet, schedule: &NoiseSchedule, inp: &GuidanceInput) -> Reference {
    reference_at(unet, schedule, inp, CFG)
}

fn reference_at(unet: &UNet, schedule: &NoiseSchedule, inp: &GuidanceInput, cfg: f64) -> Reference {
    let per = LATENT[1] * LATENT[2] * LATENT[3];
    let z = host64(&inp.latents);
    let eps = host64(&inp.noise);
    let abar: [f64; B] = std::array::from_fn(|i| schedule.alphas_cumprod()[inp.timesteps[i]]);
    let (a, s): (Vec<f64>, Vec<f64>) = abar
        .iter()
        .map(|&ab| (ab.sqrt(), (1.0 - ab).sqrt()))
        .unzip();
    let z_t: Vec<f64> = (0..B * per)
        .map(|k| a[k / per] * z[k] + s[k / per] * eps[k])
        .collect();
    let tf: Vec<f64> = inp.timesteps.iter().map(|&t| t as f64).collect();
    let run = |ctx: &Tensor<3>| host64(&unet.forward(upload(&z_t, LATENT), &tf, ctx.clone()));
    let (out_u, out_c) = (run(&inp.uncond), run(&inp.cond));
    let v_pred = schedule.config().prediction_type == PredictionType::VPrediction;
    let to_eps = |out: &[f64]| -> Vec<f64> {
        if v_pred {
            (0..B * per)
                .map(|k| a[k / per] * out[k] + s[k / per] * z_t[k])
                .collect()
        } else {
            out.to_vec()
        }
    };
    let (eu, ec) = (to_eps(&out_u), to_eps(&out_c));
    let eps_hat = eu.iter().zip(&ec).map(|(u, c)| u + cfg * (c - u)).collect();
    Reference { eps_hat, eps, abar }
}

/// ω(t) by hand.
fn omega(w: Weighting, abar: f64) -> f64 {
    match w {
        Weighting::Sigma2 => 1.0 - abar,
        Weighting::SigmaOverAlpha => ((1.0 - abar) / abar).sqrt(),
        Weighting::Uniform => 1.0,
    }
}

fn per() -> usize {
    LATENT[1] * LATENT[2] * LATENT[3]
}

#[test]
fn sds_gradient_reaches_latents() {
    for name in ["tiny-eps", "tiny-v"] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        let inp = input(d, 11);
        let r = reference(&unet, &schedule, &inp);
        for w in [
            Weighting::Sigma2,
            Weighting::SigmaOverAlpha,
            Weighting::Uniform,
        ] {
            let mut sds = Sds::new(SdsConfig {
                cfg_scale: CFG,
                weighting: w,
                scale: 1.0,
                ..SdsConfig::default()
            });
            let out = sds.gradient(&prior, &inp).expect("sds gradient");
            let got = injected(&inp.latents, out.grad);
            let want: Vec<f64> = (0..B * per())
                .map(|k| omega(w, r.abar[k / per()]) * (r.eps_hat[k] - r.eps[k]))
                .collect();
            let ratio = compare(&format!("{name} sds {w:?}"), &got, &want)
                .unwrap_or_else(|e| panic!("{e}"));
            println!("{name} sds {w:?}: ok (worst {ratio:.3} of tolerance)");
        }
    }
}

#[test]
fn vdm_gradient_reaches_latents() {
    // Default U-Lite (5 levels, 8×8 padded to 32×32) on tiny-eps, 3 levels (no padding) on
    // tiny-v; DCA on for both, plus DCA off on tiny-eps.
    for (name, levels, dca) in [
        ("tiny-eps", 5, true),
        ("tiny-v", 3, true),
        ("tiny-eps", 3, false),
    ] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        let cfg = VdmConfig {
            dca,
            ulite: ULiteConfig {
                levels,
                zero_init_head: false,
            },
            ..VdmConfig::default()
        };
        assert_eq!(cfg.cfg_scale, CFG);
        assert_eq!(cfg.weighting, Weighting::SigmaOverAlpha);
        assert_eq!(cfg.dca_cutoff, 300);
        let mut vdm = Vdm::new(cfg, &gpu().burn).expect("vdm");
        let inp = input(d, 23);
        let r = reference(&unet, &schedule, &inp);
        // ℳψ(ε̂) with the weights before the step.
        let before = vdm.state();
        let m = host64(&vdm.degrade(upload(&r.eps_hat, LATENT)));
        let out = vdm.gradient(&prior, &inp).expect("vdm gradient");
        assert_eq!(vdm.updates(), 1);
        let lam: [f64; B] = std::array::from_fn(|i| {
            if dca && inp.timesteps[i] <= 300 {
                1.0 - r.abar[i]
            } else {
                1.0
            }
        });
        if dca {
            assert!(lam[0] < 1.0 && lam[1] == 1.0, "{lam:?}");
        }
        let stat = |k: &str| {
            out.stats
                .iter()
                .find(|(n, _)| *n == k)
                .unwrap_or_else(|| panic!("stat {k}"))
                .1
                .value()
                .expect("stat read-back")
        };
        let lam_mean = lam.iter().sum::<f64>() / B as f64;
        assert!((stat("lambda_t_mean") - lam_mean).abs() < 1e-6);
        let l_op = m
            .iter()
            .zip(&r.eps)
            .map(|(m, e)| (m - e).powi(2))
            .sum::<f64>()
            / m.len() as f64;
        assert!(
            (stat("ulite_loss") - l_op).abs() < 1e-3 * l_op,
            "ulite_loss {} vs {l_op}",
            stat("ulite_loss")
        );
        let got = injected(&inp.latents, out.grad);
        let want: Vec<f64> = (0..B * per())
            .map(|k| {
                let i = k / per();
                omega(Weighting::SigmaOverAlpha, r.abar[i]) * (r.eps_hat[k] - lam[i] * m[k])
            })
            .collect();
        let what = format!("{name} vdm levels {levels} dca {dca}");
        let ratio = compare(&what, &got, &want).unwrap_or_else(|e| panic!("{e}"));
        println!("{what}: ok (worst {ratio:.3} of tolerance, L_op {l_op:.4})");

        // The step changed ψ; restoring the snapshot restores ℳψ.
        let after = host64(&vdm.degrade(upload(&r.eps_hat, LATENT)));
        let moved = after
            .iter()
            .zip(&m)
            .fold(0.0f64, |acc, (a, b)| acc.max((a - b).abs()));
        assert!(moved > 1e-4, "{what}: ψ did not change ({moved})");
        // …and the test tells the two apart: ℳψ after the step does not match `g`.
        let want_post: Vec<f64> = (0..B * per())
            .map(|k| {
                let i = k / per();
                omega(Weighting::SigmaOverAlpha, r.abar[i]) * (r.eps_hat[k] - lam[i] * after[k])
            })
            .collect();
        assert!(
            compare(&what, &got, &want_post).is_err(),
            "{what}: post-step ℳψ also matches"
        );
        vdm.load_state(&before).expect("load_state");
        let restored = host64(&vdm.degrade(upload(&r.eps_hat, LATENT)));
        let restored32: Vec<f32> = restored.iter().map(|&x| x as f32).collect();
        compare(&format!("{what} restored"), &restored32, &m).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The setting of the online-training tests: seeded inputs for the tiny ε-model, its CFG
/// prediction ε̂ (what ℳψ degrades), and a VDM config with a `levels`-level ℳψ (8×8 latents
/// need no padding up to 3 levels).
fn online_setting(seed: u64, levels: usize) -> (GuidanceInput, Tensor<4>, VdmConfig) {
    let (unet, schedule, d) = load("tiny-eps");
    let prior = Prior {
        unet: &unet,
        schedule: &schedule,
    };
    let inp = input(d, seed);
    let (eps_hat, _, _) = prior.eps_cfg(
        inp.noisy(&schedule),
        &inp.timesteps,
        inp.cond.clone(),
        inp.uncond.clone(),
        CFG,
    );
    let cfg = VdmConfig {
        ulite: ULiteConfig {
            levels,
            zero_init_head: false,
        },
        ..VdmConfig::default()
    };
    (inp, eps_hat, cfg)
}

#[test]
fn ulite_loss_falls_online() {
    // 3 levels: the default 5 levels work too (see `vdm_gradient_reaches_latents`) but take
    // ~3 s per step on lavapipe.
    let (inp, eps_hat, cfg) = online_setting(5, 3);
    let mut vdm = Vdm::new(cfg, &gpu().burn).expect("vdm");
    let mut losses = vec![];
    for _ in 0..30 {
        let (_, l) = vdm.train_step(eps_hat.clone(), inp.noise.clone());
        losses.push(distill::Stat::Device(l).value().expect("loss read-back"));
    }
    println!("L_op over 30 online steps: {losses:.4?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        losses[29] < 0.5 * losses[0],
        "L_op {} → {}",
        losses[0],
        losses[29]
    );
}

/// Adam's moments are part of VDM's checkpoint state: ℳψ restored from the state after two
/// online steps takes exactly the third step of the run that never stopped, while ℳψ restored
/// from its weights alone (fresh moments: what checkpoints held before the moments were saved)
/// takes a different one. Malformed moment entries are refused by name and change nothing.
#[test]
fn vdm_resume_continues_adam() {
    let (inp, eps_hat, cfg) = online_setting(17, 2);
    let weights_of = |st: &[distill::state::Entry]| -> Vec<distill::state::Entry> {
        st.iter()
            .filter(|(n, _, _)| n.starts_with("ulite."))
            .cloned()
            .collect()
    };
    let mut run = Vdm::new(cfg.clone(), &gpu().burn).expect("vdm");
    let start = run.state();
    assert!(
        start.iter().all(|(n, _, _)| n.starts_with("ulite.")),
        "moments before the first update"
    );
    let step = |v: &mut Vdm| {
        v.train_step(eps_hat.clone(), inp.noise.clone());
    };
    step(&mut run);
    step(&mut run);
    let saved = run.state();
    let weights = weights_of(&saved);
    let moments: Vec<_> = saved
        .iter()
        .filter(|(n, _, _)| n.starts_with("ulite_adam."))
        .collect();
    assert_eq!(weights.len() + moments.len(), saved.len(), "other entries");
    assert_eq!(moments.len(), 3 * weights.len(), "m, v and t per weight");
    for (name, shape, values) in &weights {
        let path = name.strip_prefix("ulite.").expect("prefix");
        let find = |field: &str| {
            saved
                .iter()
                .find(|(n, _, _)| *n == format!("ulite_adam.{path}.{field}"))
                .unwrap_or_else(|| panic!("no {field} for {name}"))
        };
        assert_eq!(&find("moment_1").1, shape);
        assert_eq!(&find("moment_2").1, shape);
        assert_eq!(find("time").2, vec![2.0], "{name}: two updates");
        assert!(find("moment_2").2.iter().all(|v| *v >= 0.0));
        assert_eq!(values.len(), shape.iter().product::<usize>());
    }
    step(&mut run);
    let want = weights_of(&run.state());

    let third_step_from = |st: &[distill::state::Entry]| {
        let mut v = Vdm::new(cfg.clone(), &gpu().burn).expect("vdm");
        v.load_state(st).expect("load");
        step(&mut v);
        weights_of(&v.state())
    };
    let max_diff = |a: &[distill::state::Entry], b: &[distill::state::Entry]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .flat_map(|(x, y)| {
                assert_eq!(x.0, y.0);
                x.2.iter().zip(&y.2).map(|(p, q)| (p - q).abs())
            })
            .fold(0.0f32, f32::max)
    };
    let resumed = max_diff(&third_step_from(&saved), &want);
    let fresh = max_diff(&third_step_from(&weights), &want);
    println!("third update: resumed differs by {resumed:e}, fresh moments by {fresh:e}");
    assert!(
        resumed <= 1e-6,
        "restored moments: third step off by {resumed}"
    );
    assert!(
        fresh > 1e-4,
        "fresh moments gave the same third step ({fresh}): the test cannot tell"
    );

    // Malformed moment entries are refused by name, and a refused load changes nothing.
    let mut v = Vdm::new(cfg.clone(), &gpu().burn).expect("vdm");
    v.load_state(&saved).expect("load");
    let name_of = |field: &str| {
        saved
            .iter()
            .position(|(n, _, _)| n.starts_with("ulite_adam.") && n.ends_with(field))
            .expect("a moment entry")
    };
    let refuse = |v: &mut Vdm, bad: Vec<distill::state::Entry>, needle: &str| {
        let e = v.load_state(&bad).unwrap_err().to_string();
        assert!(e.contains(needle), "`{needle}` not in: {e}");
        assert_eq!(v.state(), saved, "a refused load changed the state");
    };
    let i = name_of(".moment_1");
    let mut bad = saved.clone();
    bad[i].1.push(1);
    refuse(&mut v, bad, &saved[i].0);
    let i = name_of(".time");
    let mut bad = saved.clone();
    bad[i].2 = vec![0.5];
    refuse(&mut v, bad, &saved[i].0);
    let i = name_of(".moment_2");
    let mut bad = saved.clone();
    let gone = bad.remove(i);
    refuse(&mut v, bad, &gone.0);
    let mut bad = saved.clone();
    bad.push(("ulite_adam.nope.moment_1".into(), vec![1], vec![0.0]));
    refuse(&mut v, bad, "ulite_adam.nope.moment_1");
    let mut bad = saved.clone();
    bad[i].0 = bad[i].0.replace(".moment_2", ".moment_3");
    refuse(&mut v, bad, "moment_3");
}

#[test]
fn vdm_state_rejects_bad_entries() {
    let mut vdm = Vdm::new(
        VdmConfig {
            ulite: ULiteConfig {
                levels: 2,
                zero_init_head: true,
            },
            ..VdmConfig::default()
        },
        &gpu().burn,
    )
    .expect("vdm");
    let mut st = vdm.state();
    assert!(st.iter().any(|(n, _, _)| n == "ulite.conv_out.weight"));
    assert_eq!(
        st.iter().map(|(_, _, v)| v.len()).sum::<usize>(),
        vdm.ulite().num_learnable()
    );
    assert!(st.iter().all(|(n, _, _)| !n.contains("running")));
    vdm.load_state(&st).expect("roundtrip");
    let mut bad = st.clone();
    bad[0].1.push(1);
    let e = vdm.load_state(&bad).unwrap_err().to_string();
    assert!(e.contains(&st[0].0), "{e}");
    st.pop();
    let e = vdm.load_state(&st).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn build_names_methods_and_rejects_unknown() {
    let dev = &gpu().burn;
    assert_eq!(
        distill::METHODS,
        &["sds", "vdm", "sdi", "bridge", "lmc", "lods", "vsd"]
    );
    // LMC-SDS needs a pre-trained blur model file (crates/distill/tests/distill_lmc.rs builds it).
    for m in distill::METHODS.iter().filter(|m| **m != "lmc") {
        let g = distill::build(
            &GuidanceConfig {
                method: m.to_string(),
                ..GuidanceConfig::default()
            },
            dev,
        )
        .expect("known method");
        assert_eq!(g.name(), *m);
    }
    let vdm = distill::build(
        &GuidanceConfig {
            method: "vdm".into(),
            ..GuidanceConfig::default()
        },
        dev,
    )
    .expect("vdm");
    assert_eq!(vdm.cfg_scale(), 7.5);
    let err = distill::build(
        &GuidanceConfig {
            method: "nope".into(),
            ..GuidanceConfig::default()
        },
        dev,
    )
    .err()
    .expect("unknown method must fail")
    .to_string();
    assert!(
        err.contains("guidance.method") && err.contains("nope"),
        "{err}"
    );
    let err = distill::build(
        &GuidanceConfig {
            method: "vdm".into(),
            vdm: VdmConfig {
                lr: 0.0,
                ..VdmConfig::default()
            },
            ..GuidanceConfig::default()
        },
        dev,
    )
    .err()
    .expect("lr 0 must fail")
    .to_string();
    assert!(err.contains("guidance.vdm.lr"), "{err}");
    // Config parsing: defaults and unknown fields.
    let c: GuidanceConfig =
        serde_json::from_str(r#"{"method": "vdm", "vdm": {"dca": false}}"#).expect("parse");
    assert!(!c.vdm.dca && c.vdm.dca_cutoff == 300 && c.vdm.lr == 0.01);
    let e = serde_json::from_str::<GuidanceConfig>(r#"{"vdm": {"dca_cutof": 100}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("dca_cutof"), "{e}");
}

/// ε̂ with CFG `scale` at arbitrary (possibly negative) levels, on the host: two separate U-Net
/// calls, v → ε with ᾱ of the level (`final_alpha_cumprod` below 0).
#[allow(clippy::too_many_arguments)]
fn eps_host(
    unet: &UNet,
    schedule: &NoiseSchedule,
    x: &[f64],
    shape: [usize; 4],
    level: i64,
    cond: &Tensor<3>,
    uncond: &Tensor<3>,
    scale: f64,
) -> Vec<f64> {
    let b = shape[0];
    let tf = vec![level as f64; b];
    let run = |ctx: &Tensor<3>| host64(&unet.forward(upload(x, shape), &tf, ctx.clone()));
    let ab = schedule.alpha_cumprod_at(level);
    let (a, s) = (ab.sqrt(), (1.0 - ab).sqrt());
    let v_pred = schedule.config().prediction_type == PredictionType::VPrediction;
    let to_eps = |out: Vec<f64>| -> Vec<f64> {
        if v_pred {
            out.iter().zip(x).map(|(o, x)| a * o + s * x).collect()
        } else {
            out
        }
    };
    let (u, c) = (to_eps(run(uncond)), to_eps(run(cond)));
    u.iter().zip(&c).map(|(u, c)| u + scale * (c - u)).collect()
}

#[test]
fn sdi_inversion_levels_follow_the_reference_grid() {
    let (_, schedule, _) = load("tiny-eps");
    // Leading spacing, steps_offset 1: grid {1, 101, …, 901}; the clean start 1 − 100 = −99.
    assert_eq!(
        inversion_levels(&schedule, 137, 10, 0).unwrap(),
        vec![-99, 1, 101, 137]
    );
    assert_eq!(
        inversion_levels(&schedule, 980, 10, 50).unwrap(),
        vec![-99, 1, 101, 201, 301, 401, 501, 601, 701, 801, 901, 999]
    );
    assert_eq!(
        inversion_levels(&schedule, 20, 10, 3).unwrap(),
        vec![-99, 1, 23]
    );
}

#[test]
fn sdi_gradient_reaches_latents() {
    // η = 0.3 (the default) exercises the noise path; η = 0 is its special case.
    for (name, eta) in [("tiny-eps", 0.3), ("tiny-v", 0.3)] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        let cfg = SdiConfig {
            eta,
            ..SdiConfig::default()
        };
        assert_eq!((cfg.cfg_scale, cfg.inversion_cfg_scale), (7.5, -7.5));
        let mut sdi = Sdi::new(cfg.clone()).expect("sdi");
        // Two different timesteps (two inversion groups), kept low: each grid level below t
        // is one more pair of U-Net calls here and in the reference.
        let mut inp = input(d, 31);
        inp.timesteps = vec![137, 250];
        let out = sdi.gradient(&prior, &inp).expect("sdi gradient");
        let got = injected(&inp.latents, out.grad);

        // Host reference, one sample at a time (the two timesteps differ).
        let z = host64(&inp.latents);
        let n = per();
        let mut want = vec![0.0; B * n];
        for i in 0..B {
            let t = inp.timesteps[i];
            let one = [1, LATENT[1], LATENT[2], LATENT[3]];
            let cond = inp.cond.clone().narrow(0, i, 1);
            let uncond = inp.uncond.clone().narrow(0, i, 1);
            let levels = inversion_levels(&schedule, t, 10, 0).unwrap();
            let mut x = z[i * n..(i + 1) * n].to_vec();
            for (k, w) in levels.windows(2).enumerate() {
                let e = eps_host(&unet, &schedule, &x, one, w[0], &cond, &uncond, -7.5);
                let af = schedule.alpha_cumprod_at(w[0]);
                let at = schedule.alphas_cumprod()[w[1] as usize];
                let xi = if eta > 0.0 {
                    host64(&inversion_noise(inp.seed, i, k, one, &gpu().burn))
                } else {
                    vec![0.0; n]
                };
                let var = (1.0 - af) / (1.0 - at) * (1.0 - at / af);
                x = (0..n)
                    .map(|j| {
                        let x0 = (x[j] - (1.0 - af).sqrt() * e[j]) / af.sqrt();
                        at.sqrt() * x0 + (1.0 - at).sqrt() * e[j] + eta * var.sqrt() * xi[j]
                    })
                    .collect();
            }
            let e = eps_host(&unet, &schedule, &x, one, t as i64, &cond, &uncond, 7.5);
            let ab = schedule.alphas_cumprod()[t];
            for j in 0..n {
                let x0 = (x[j] - (1.0 - ab).sqrt() * e[j]) / ab.sqrt();
                want[i * n + j] = (z[i * n + j] - x0) / (n as f64 * (B * B) as f64);
            }
        }
        let what = format!("{name} sdi eta {eta}");
        let ratio = compare(&what, &got, &want).unwrap_or_else(|e| panic!("{e}"));
        println!("{what}: ok (worst {ratio:.3} of tolerance)");
        // Without inversion the same code gives SDS-with-x₀-loss, a different gradient.
        let mut plain = Sdi::new(SdiConfig {
            enable: false,
            ..cfg
        })
        .expect("sdi");
        let g0 = injected(
            &inp.latents,
            plain.gradient(&prior, &inp).expect("sdi").grad,
        );
        assert!(
            compare(&what, &g0, &want).is_err(),
            "{what}: inversion had no effect"
        );
    }
}

#[test]
fn bridge_gradient_reaches_latents() {
    for name in ["tiny-eps", "tiny-v"] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        let mut inp = input(d, 41);
        inp.extra = vec![sd::pipeline::gaussian([B, 77, d], 77, &gpu().burn)];
        let cfg = BridgeConfig {
            stage_two_start: 10,
            ..BridgeConfig::default()
        };
        assert_eq!(
            (cfg.stage_one_cfg, cfg.stage_two_weight),
            (100.0, 1.0),
            "3D defaults"
        );
        // Stage 1: SDS at s = 100 with w = 1 − ᾱ_t.
        let mut bridge = Bridge::new(cfg.clone()).expect("bridge");
        let r = reference_at(&unet, &schedule, &inp, 100.0);
        let got = injected(&inp.latents, bridge.gradient(&prior, &inp).expect("g").grad);
        let want: Vec<f64> = (0..B * per())
            .map(|k| (1.0 - r.abar[k / per()]) * (r.eps_hat[k] - r.eps[k]))
            .collect();
        compare(&format!("{name} bridge stage 1"), &got, &want).unwrap_or_else(|e| panic!("{e}"));

        // Stage 2: ε̂(y_tgt) − ε̂(y_src) on the same z_t: the reference with CFG scale 1 and the
        // source embedding in the unconditional slot is ε̂_src + (ε̂_tgt − ε̂_src); with scale 0
        // it is ε̂_src.
        let mut src = inp.clone();
        src.uncond = inp.extra[0].clone();
        let tgt = reference_at(&unet, &schedule, &src, 1.0).eps_hat;
        let srcp = reference_at(&unet, &schedule, &src, 0.0).eps_hat;
        for (weight, weighting) in [(1.0, Weighting::Uniform), (25.0, Weighting::Sigma2)] {
            let mut bridge = Bridge::new(BridgeConfig {
                stage_two_weight: weight,
                stage_two_weighting: weighting,
                ..cfg.clone()
            })
            .expect("bridge");
            let mut inp2 = inp.clone();
            inp2.step = 10;
            let got = injected(
                &inp.latents,
                bridge.gradient(&prior, &inp2).expect("g").grad,
            );
            let want: Vec<f64> = (0..B * per())
                .map(|k| weight * omega(weighting, r.abar[k / per()]) * (tgt[k] - srcp[k]))
                .collect();
            let what = format!("{name} bridge stage 2 w {weight} {weighting:?}");
            let ratio = compare(&what, &got, &want).unwrap_or_else(|e| panic!("{e}"));
            println!("{what}: ok (worst {ratio:.3} of tolerance)");
        }
        // Stage 2 without the source embedding is an input error, not a panic.
        let mut bare = input(d, 41);
        bare.step = 10;
        assert!(
            Bridge::new(cfg.clone())
                .unwrap()
                .gradient(&prior, &bare)
                .is_err()
        );
    }
}
