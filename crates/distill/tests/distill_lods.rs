//! LODS (both variants), VSD and the U-Net LoRA they train, with the committed tiny SD models
//! (`tests/cases/sd/tiny-eps`, ε-prediction, and `tests/cases/sd/tiny-v`, v-prediction).
//!
//! - LoRA: the adapted U-Net equals a U-Net whose projection weights were merged on the host,
//!   `W + scale·down·up`, loaded from a rewritten weight file; `up = 0` gives the base U-Net; the
//!   additive time-embedding term reproduces another timestep's embedding computed on the host.
//! - Gradients: what `distill::inject` delivers to autodiff latents equals the method's formula
//!   recomputed here with separate U-Net calls, the **pre-update** learned part and host
//!   arithmetic (tolerance `1e-4·max|ref| + 1e-5`):
//!   LODS-Emb `(1−ᾱ_t)/s·[ε̂_α + s(ε̂_y − ε̂_α) − ε]`, LODS-LoRA the same with the LoRA U-Net
//!   (scale 0.5) on `y_n`, VSD `(1−ᾱ_t)(ε̂_cfg − ε̂_ψ(z_t; y, t, c))`.
//! - The prior losses (LODS y_α, LODS ψ, VSD LoRA) fall under repeated online steps on a fixed
//!   input.
//! - Checkpoint state round-trips; mis-shaped, missing and unknown entries are refused.

mod common;
mod lods_support;

use burn::module::Module;
use burn::tensor::Tensor;
use common::{host64, injected, load, model_dir, upload};
use distill::state::{Entry, load_module_state, module_state};
use distill::vsd::VsdNet;
use distill::{
    Guidance, GuidanceConfig, GuidanceInput, Lods, LodsConfig, LodsVariant, Prior, Vsd, VsdConfig,
};
use lods_support::*;
use safetensors::SafeTensors;
use sd::lora::{ConditionEmbedding, UNetLora};
use sd::{Precision, UNet, UNetExtras};
use testkit::host;
use testkit::{compare, gpu};

#[test]
fn lora_forward_equals_merged_weights() {
    let dev = &gpu().burn;
    for name in ["tiny-eps", "tiny-v"] {
        let (unet, _, d) = load(name);
        assert_eq!(unet.transformer_count(), unet.transformer_shapes().len());
        let x = sd::pipeline::gaussian(LATENT, 3, dev);
        let ctx = sd::pipeline::gaussian([B, 77, d], 4, dev);
        let t = tf(&TIMESTEPS);
        let base = host64(&unet.forward(x.clone(), &t, ctx.clone()));

        // up = 0 (the initialisation): the base U-Net, at any scale.
        let fresh = UNetLora::for_unet(&unet, 4, dev);
        assert_eq!(fresh.rank(), 4);
        let extras = UNetExtras {
            lora: Some((&fresh, 0.8)),
            class_embedding: None,
        };
        let got = host(&unet.forward_with(x.clone(), &t, ctx.clone(), &extras)).expect("readback");
        compare(&format!("{name} lora up=0"), &got, &base).unwrap_or_else(|e| panic!("{e}"));
        // The init distribution: down ~ N(0, (1/r)²), up = 0.
        let st = module_state("lora", &fresh);
        let downs: Vec<f32> = st
            .iter()
            .filter(|(n, _, _)| n.ends_with(".down"))
            .flat_map(|(_, _, v)| v.iter().copied())
            .collect();
        let var = downs.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / downs.len() as f64;
        assert!((var.sqrt() - 0.25).abs() < 0.02, "down std {}", var.sqrt());
        assert!(
            st.iter()
                .filter(|(n, _, _)| n.ends_with(".up"))
                .all(|(_, _, v)| v.iter().all(|&x| x == 0.0))
        );

        // Random up: equals the U-Net with host-merged weights (written as F32).
        let scales: &[(f64, &str)] = if name == "tiny-eps" {
            &[(0.5, "half")]
        } else {
            &[(1.0, "one")]
        };
        for &(scale, tag) in scales {
            let (lora, entries) = random_lora(&unet, 4, 40);
            let dir = merged_unet_dir(name, &unet, &entries, scale, tag);
            let merged = UNet::from_dir(&dir, dev, Precision::F32, sd::nn::ConvAlgorithm::Direct)
                .expect("merged unet");
            let want = host64(&merged.forward(x.clone(), &t, ctx.clone()));
            let extras = UNetExtras {
                lora: Some((&lora, scale)),
                class_embedding: None,
            };
            let got =
                host(&unet.forward_with(x.clone(), &t, ctx.clone(), &extras)).expect("readback");
            let ratio = compare(&format!("{name} lora scale {scale}"), &got, &want)
                .unwrap_or_else(|e| panic!("{e}"));
            let moved = want
                .iter()
                .zip(&base)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                moved > 1e-3,
                "{name}: the merged LoRA changes nothing ({moved})"
            );
            println!(
                "{name} lora scale {scale}: ok (worst {ratio:.3} of tolerance, moved {moved:.3e})"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The time embedding `time_2(silu(time_1(sinusoid(t))))` of diffusers on the host (f64) from
/// the weight file: `[temb]`.
fn host_time_embedding(name: &str, t: f64) -> Vec<f64> {
    let bytes = std::fs::read(model_dir(name).join("unet/diffusion_pytorch_model.safetensors"))
        .expect("weights");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let f = |n: &str| testkit::f64s(&st, n).expect(n);
    let (w1, s1) = f("time_embedding.linear_1.weight");
    let (b1, _) = f("time_embedding.linear_1.bias");
    let (w2, s2) = f("time_embedding.linear_2.weight");
    let (b2, _) = f("time_embedding.linear_2.bias");
    let dim = s1[1];
    let half = dim / 2;
    // flip_sin_to_cos = true, freq_shift = 0 (the tiny configs).
    let mut e = vec![0.0; dim];
    for i in 0..half {
        let arg = t * (-(10000f64.ln()) * i as f64 / half as f64).exp();
        e[i] = arg.cos();
        e[half + i] = arg.sin();
    }
    let lin = |w: &[f64], b: &[f64], rows: usize, cols: usize, x: &[f64]| -> Vec<f64> {
        (0..rows)
            .map(|o| b[o] + (0..cols).map(|c| w[o * cols + c] * x[c]).sum::<f64>())
            .collect()
    };
    let h: Vec<f64> = lin(&w1, &b1, s1[0], s1[1], &e)
        .into_iter()
        .map(|x| x / (1.0 + (-x).exp()))
        .collect();
    lin(&w2, &b2, s2[0], s2[1], &h)
}

#[test]
fn class_embedding_adds_to_time_embedding() {
    // forward(t₁, class = E(t₂) − E(t₁)) = forward(t₂): the additive term enters exactly where
    // the time embedding does (before the resnets' SiLU).
    let dev = &gpu().burn;
    let name = "tiny-eps";
    let (unet, _, d) = load(name);
    let x = sd::pipeline::gaussian(LATENT, 8, dev);
    let ctx = sd::pipeline::gaussian([B, 77, d], 9, dev);
    let (t1, t2) = ([100.0, 800.0], [650.0, 20.0]);
    let mut delta = vec![];
    for i in 0..B {
        let (e1, e2) = (
            host_time_embedding(name, t1[i]),
            host_time_embedding(name, t2[i]),
        );
        delta.extend(e2.iter().zip(&e1).map(|(a, b)| a - b));
    }
    assert_eq!(delta.len(), B * unet.temb_dim());
    let extras = UNetExtras {
        lora: None,
        class_embedding: Some(upload(&delta, [B, unet.temb_dim()])),
    };
    let got = host(&unet.forward_with(x.clone(), &t1, ctx.clone(), &extras)).expect("readback");
    let want = host64(&unet.forward(x, &t2, ctx));
    let ratio = compare("class embedding", &got, &want).unwrap_or_else(|e| panic!("{e}"));
    println!("class embedding: ok (worst {ratio:.3} of tolerance)");
}

// ---------------------------------------------------------------------------------------------
// Gradients

/// The LODS gradient `(1−ᾱ_t)/s·[ε̂_l + s(ε̂_y − ε̂_l) − ε]` on the host, written as the
/// reference code writes it.
fn lods_formula(n: &Noised, s: f64, e_y: &[f64], e_l: &[f64]) -> Vec<f64> {
    (0..B * per())
        .map(|k| {
            let i = k / per();
            (1.0 - n.abar[i]) / s * (e_l[k] + s * (e_y[k] - e_l[k]) - n.eps[k])
        })
        .collect()
}

#[test]
fn lods_embedding_gradient_reaches_latents() {
    for name in ["tiny-eps", "tiny-v"] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        // A large y_α learning rate (default 1e-4) so the step visibly moves y_α and the test
        // can tell the pre-update y_α from the post-update one.
        let cfg = LodsConfig {
            lr: 0.05,
            ..LodsConfig::default()
        };
        let s = cfg.cfg_scale;
        assert_eq!(s, 1000.0);
        let mut lods = Lods::new(cfg.clone(), &gpu().burn).expect("lods");
        assert!(lods.extra_prompts("a cat").is_empty());
        assert!(lods.embedding().is_none() && lods.state().is_empty());

        // The first call creates y_α from the first negative-prompt embedding; g uses that
        // (pre-update) y_α, then y_α takes one Adam step.
        let inp = input(d, 31, 3);
        let first = inp.uncond.clone().narrow(0, 0, 1);
        let y_pre = host64(&first);
        let loss_want = host_prior_loss(&schedule, &inp.latents, cfg.seed, inp.step, |z, t| {
            unet.forward(z, t, first.clone().repeat_dim(0, B))
        });
        let out = lods.gradient(&prior, &inp).expect("lods step");
        assert_eq!(lods.updates(), 1);
        let loss = stat(&out, "prior_loss");
        assert!(
            (loss - loss_want).abs() < 1e-4 * loss_want,
            "{name}: prior_loss {loss} vs host {loss_want}"
        );
        let y_post = lods.embedding().expect("y_α");
        assert_eq!(y_post.dims(), [1, 77, d]);
        let moved = host64(&y_post)
            .iter()
            .zip(&y_pre)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved > 1e-3, "{name}: y_α did not move ({moved})");

        let got = injected(&inp.latents, out.grad);
        let n = noised(&schedule, &inp.latents, &inp.noise, &inp.timesteps);
        let t = tf(&inp.timesteps);
        let run = |ctx: Tensor<3>| {
            to_eps(
                &schedule,
                &n,
                &host64(&unet.forward(upload(&n.z_t, LATENT), &t, ctx)),
            )
        };
        let e_y = run(inp.cond.clone());
        let e_pre = run(upload(&y_pre.repeat(B), [B, 77, d]));
        let e_post = run(y_post.repeat_dim(0, B));
        let what = format!("{name} lods-emb");
        let ratio = compare(&what, &got, &lods_formula(&n, s, &e_y, &e_pre))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            compare(&what, &got, &lods_formula(&n, s, &e_y, &e_post)).is_err(),
            "{what}: the post-update y_α also matches"
        );
        println!("{what}: ok (worst {ratio:.3} of tolerance, prior loss {loss:.4})");
    }
}

#[test]
fn lods_lora_gradient_reaches_latents() {
    for name in ["tiny-eps", "tiny-v"] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        // A large ψ learning rate (default 5e-7) so the step visibly moves ψ.
        let cfg = LodsConfig {
            variant: LodsVariant::Lora,
            lora_lr: 0.02,
            ..LodsConfig::default()
        };
        let (s, scale) = (cfg.cfg_scale, cfg.lora_scale);
        assert_eq!((s, scale, cfg.lora_rank), (1000.0, 0.5, 4));
        let mut lods = Lods::new(cfg.clone(), &gpu().burn).expect("lods");
        let extra = lods.extra_prompts("a cat");
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].text, "<new1>");
        assert!(!extra[0].view_dependent);

        // Without the placeholder embedding the step fails, naming it.
        let mut bare = input(d, 3, 0);
        bare.extra.clear();
        let e = lods.gradient(&prior, &bare).unwrap_err().to_string();
        assert!(e.contains("<new1>"), "{e}");

        // Start from a ψ with non-zero `up` (loaded before the first step, so applied when ψ is
        // created): with the fresh `up = 0` the LoRA branch would equal the base U-Net.
        let (psi, entries) = random_lora(&unet, 4, 500);
        lods.load_state(&entries).expect("load ψ");
        let inp = input(d, 71, 4);
        let y_n = inp.extra[0].clone();
        let with = |l: &UNetLora, z: Tensor<4>, t: &[f64]| {
            unet.forward_with(
                z,
                t,
                y_n.clone(),
                &UNetExtras {
                    lora: Some((l, scale)),
                    class_embedding: None,
                },
            )
        };
        let loss_want = host_prior_loss(&schedule, &inp.latents, cfg.seed, inp.step, |z, t| {
            with(&psi, z, t)
        });
        let out = lods.gradient(&prior, &inp).expect("lods-lora step");
        let loss = stat(&out, "prior_loss");
        assert!(
            (loss - loss_want).abs() < 1e-4 * loss_want,
            "{name}: prior_loss {loss} vs host {loss_want}"
        );
        let got = injected(&inp.latents, out.grad);
        let n = noised(&schedule, &inp.latents, &inp.noise, &inp.timesteps);
        let t = tf(&inp.timesteps);
        let z_t = || upload(&n.z_t, LATENT);
        let e_y = to_eps(
            &schedule,
            &n,
            &host64(&unet.forward(z_t(), &t, inp.cond.clone())),
        );
        let e_l = |l: &UNetLora| to_eps(&schedule, &n, &host64(&with(l, z_t(), &t)));
        let what = format!("{name} lods-lora");
        let ratio = compare(&what, &got, &lods_formula(&n, s, &e_y, &e_l(&psi)))
            .unwrap_or_else(|e| panic!("{e}"));
        let post = lods.lora().expect("ψ").valid();
        assert!(
            compare(&what, &got, &lods_formula(&n, s, &e_y, &e_l(&post))).is_err(),
            "{what}: the post-update ψ also matches"
        );
        println!("{what}: ok (worst {ratio:.3} of tolerance, prior loss {loss:.4})");
    }
}

/// `c [B, 16]` through the camera embedding `Linear·SiLU·Linear` on the host from VSD's state.
fn host_camera_embedding(st: &[Entry], c: &[f64]) -> Vec<f64> {
    let get = |n: &str| {
        st.iter()
            .find(|(k, _, _)| k == n)
            .unwrap_or_else(|| panic!("entry {n}"))
    };
    let (_, s1, w1) = get("vsd.camera.linear_1.weight");
    let (_, _, b1) = get("vsd.camera.linear_1.bias");
    let (_, s2, w2) = get("vsd.camera.linear_2.weight");
    let (_, _, b2) = get("vsd.camera.linear_2.bias");
    // burn-nn weights are [in, out].
    let lin = |w: &[f32], b: &[f32], shape: &[usize], x: &[f64]| -> Vec<f64> {
        let (i_n, o_n) = (shape[0], shape[1]);
        (0..o_n)
            .map(|o| b[o] as f64 + (0..i_n).map(|i| w[i * o_n + o] as f64 * x[i]).sum::<f64>())
            .collect()
    };
    let mut out = vec![];
    for row in c.chunks(16) {
        let h: Vec<f64> = lin(w1, b1, s1, row)
            .into_iter()
            .map(|x| x / (1.0 + (-x).exp()))
            .collect();
        out.extend(lin(w2, b2, s2, &h));
    }
    out
}

/// A VSD state with random LoRA `up` matrices and a fresh camera embedding.
fn random_vsd_state(unet: &UNet, seed: u64) -> Vec<Entry> {
    let (lora, _) = random_lora(unet, 4, seed);
    let net = VsdNet {
        lora,
        camera: Some(ConditionEmbedding::new(16, unet.temb_dim(), &gpu().burn)),
    };
    module_state("vsd", &net)
}

#[test]
fn vsd_gradient_reaches_latents() {
    for name in ["tiny-eps", "tiny-v"] {
        let (unet, schedule, d) = load(name);
        let prior = Prior {
            unet: &unet,
            schedule: &schedule,
        };
        // lr 1e-2 (default 1e-4) so the step visibly moves ψ and the camera embedding.
        let cfg = VsdConfig {
            lr: 0.01,
            ..VsdConfig::default()
        };
        assert_eq!(
            (cfg.cfg_scale, cfg.lora_scale, cfg.lora_rank),
            (7.5, 1.0, 4)
        );
        let mut vsd = Vsd::new(cfg.clone(), &gpu().burn).expect("vsd");
        let extra = vsd.extra_prompts("a cat");
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].text, "a cat");
        assert!(!extra[0].view_dependent);

        // Start from a LoRA with non-zero `up` (see lods_lora_gradient_reaches_latents).
        let st = random_vsd_state(&unet, 700);
        vsd.load_state(&st).expect("load");
        let inp = input(d, 131, 6);
        let n = noised(&schedule, &inp.latents, &inp.noise, &inp.timesteps);
        let t = tf(&inp.timesteps);
        let z_t = || upload(&n.z_t, LATENT);
        let run = |ctx: Tensor<3>| to_eps(&schedule, &n, &host64(&unet.forward(z_t(), &t, ctx)));
        let (e_u, e_c) = (run(inp.uncond.clone()), run(inp.cond.clone()));
        let c2w = host64(inp.c2w.as_ref().expect("c2w"));
        // ε̂_ψ(z_t; y, t, c) of a state's LoRA and camera embedding, on prompt `y` (the
        // `vsd.…` weights; AdamW's `vsd_adam.…` moments are not the network's).
        let e_psi = |st: &[Entry], y: Tensor<3>| {
            let st: Vec<Entry> = st
                .iter()
                .filter(|e| e.0.starts_with("vsd."))
                .cloned()
                .collect();
            let st = st.as_slice();
            let mut net = VsdNet {
                lora: UNetLora::for_unet(&unet, 4, &gpu().burn),
                camera: Some(ConditionEmbedding::new(16, unet.temb_dim(), &gpu().burn)),
            };
            net = load_module_state("vsd", "test", net, st).expect("state");
            let cam = host_camera_embedding(st, &c2w);
            let out = unet.forward_with(
                z_t(),
                &t,
                y,
                &UNetExtras {
                    lora: Some((&net.lora, 1.0)),
                    class_embedding: Some(upload(&cam, [B, unet.temb_dim()])),
                },
            );
            to_eps(&schedule, &n, &host64(&out))
        };
        let want_with = |e_psi: &[f64]| -> Vec<f64> {
            (0..B * per())
                .map(|k| {
                    let i = k / per();
                    let cfg_eps = e_u[k] + 7.5 * (e_c[k] - e_u[k]);
                    (1.0 - n.abar[i]) * (cfg_eps - e_psi[k])
                })
                .collect()
        };
        let out = vsd.gradient(&prior, &inp).expect("vsd step");
        assert_eq!(vsd.updates(), 1);
        let loss = stat(&out, "lora_loss");
        assert!(loss.is_finite() && loss > 0.0);
        let got = injected(&inp.latents, out.grad);
        let what = format!("{name} vsd");
        let ratio = compare(&what, &got, &want_with(&e_psi(&st, inp.extra[0].clone())))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            compare(
                &what,
                &got,
                &want_with(&e_psi(&vsd.state(), inp.extra[0].clone()))
            )
            .is_err(),
            "{what}: the post-update LoRA also matches"
        );
        if name == "tiny-eps" {
            // The LoRA branch sees the view-independent prompt (extra[0]), not `cond`.
            assert!(compare(&what, &got, &want_with(&e_psi(&st, inp.cond.clone()))).is_err());
            // 2D: without cameras the condition is zeros.
            let mut no_cam = inp.clone();
            no_cam.c2w = None;
            vsd.gradient(&prior, &no_cam).expect("vsd without cameras");
        }
        println!("{what}: ok (worst {ratio:.3} of tolerance, LoRA loss {loss:.4})");
    }
}

// ---------------------------------------------------------------------------------------------
// Online training

/// Whether the mean of the last two losses is at least 10% below the mean of the first two.
fn falls(l: &[f64]) -> bool {
    let head = (l[0] + l[1]) / 2.0;
    let tail = (l[l.len() - 2] + l[l.len() - 1]) / 2.0;
    l.iter().all(|x| x.is_finite()) && tail < 0.9 * head
}

/// Each learned part's loss over `STEPS` online steps on one fixed input (same step, hence the
/// same t′ and ε′ every time: the loss is a fixed function of the learned part and must fall:
/// the mean of the last two at least 10% below the mean of the first two). Learning rates are
/// raised for the few steps (defaults: y_α 1e-4, LODS ψ 5e-7, VSD 1e-4).
const STEPS: usize = 4;

/// `step` called `STEPS` times on a fixed tiny-eps input; the losses it returned.
fn online_losses(
    what: &str,
    mut step: impl FnMut(&Prior<'_>, &GuidanceInput) -> Tensor<1>,
) -> Vec<f64> {
    let (unet, schedule, d) = load("tiny-eps");
    let prior = Prior {
        unet: &unet,
        schedule: &schedule,
    };
    let inp = input(d, 201, 5);
    let l: Vec<f64> = (0..STEPS)
        .map(|_| {
            distill::Stat::Device(step(&prior, &inp))
                .value()
                .expect("loss read-back")
        })
        .collect();
    println!("{what}: {l:.5?}");
    assert!(falls(&l), "{what}: {l:?}");
    l
}

#[test]
fn lods_embedding_loss_falls() {
    let mut lods = Lods::new(
        LodsConfig {
            lr: 0.3,
            ..LodsConfig::default()
        },
        &gpu().burn,
    )
    .expect("lods");
    online_losses("LODS y_α prior loss", |p, i| {
        lods.prior_step(p, i).expect("step")
    });
}

#[test]
fn lods_lora_loss_falls() {
    let mut lods = Lods::new(
        LodsConfig {
            variant: LodsVariant::Lora,
            lora_lr: 0.03,
            ..LodsConfig::default()
        },
        &gpu().burn,
    )
    .expect("lods-lora");
    online_losses("LODS ψ prior loss", |p, i| {
        lods.prior_step(p, i).expect("step")
    });
}

#[test]
fn vsd_lora_loss_falls() {
    let mut vsd = Vsd::new(
        VsdConfig {
            lr: 0.01,
            ..VsdConfig::default()
        },
        &gpu().burn,
    )
    .expect("vsd");
    online_losses("VSD LoRA loss", |p, i| vsd.train_step(p, i).expect("step"));
}

// ---------------------------------------------------------------------------------------------
// Checkpoint state and construction

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Round trip on a created module: loading other values replaces them, loading the saved ones
/// restores them; mis-shaped, missing and unknown entries are refused and change nothing.
/// Adam's moments (`…_adam.<path>.<moment_1|moment_2|time>`, after the weights) take part.
fn assert_round_trip(g: &mut dyn Guidance, st: &[Entry]) {
    let other: Vec<Entry> = st
        .iter()
        .map(|(n, s, v)| {
            // Adam's update count stays a whole number; everything else moves by 0.25.
            let shift = if n.ends_with(".time") { 1.0 } else { 0.25 };
            (n.clone(), s.clone(), v.iter().map(|x| x + shift).collect())
        })
        .collect();
    g.load_state(&other).expect("load other values");
    assert_eq!(g.state(), other);
    g.load_state(st).expect("load saved values");
    assert_eq!(g.state(), st);
    let mut bad = st.to_vec();
    bad[0].1.push(1);
    let e = g.load_state(&bad).unwrap_err().to_string();
    assert!(e.contains(&st[0].0), "{e}");
    let mut short = st.to_vec();
    let last = short.pop().expect("an entry");
    let e = g.load_state(&short).unwrap_err().to_string();
    assert!(e.contains("missing") && e.contains(&last.0), "{e}");
    let mut unknown = st.to_vec();
    unknown.push(("nope.x".into(), vec![1], vec![0.0]));
    let e = g.load_state(&unknown).unwrap_err().to_string();
    assert!(e.contains("nope.x"), "{e}");
    assert_eq!(g.state(), st, "a refused load changed the state");
}

#[test]
fn state_round_trips() {
    let (unet, schedule, d) = load("tiny-eps");
    let prior = Prior {
        unet: &unet,
        schedule: &schedule,
    };
    let dev = &gpu().burn;
    let inp = input(d, 301, 0);

    // LODS-Emb: one entry, y_α.
    let cfg = LodsConfig {
        lr: 0.05,
        ..LodsConfig::default()
    };
    let mut lods = Lods::new(cfg.clone(), dev).expect("lods");
    lods.prior_step(&prior, &inp).expect("step");
    let st = lods.state();
    let names: Vec<(&str, Vec<usize>)> =
        st.iter().map(|(n, s, _)| (n.as_str(), s.clone())).collect();
    assert_eq!(
        names,
        [
            ("embedding.y", vec![1, 77, d]),
            ("embedding_adam.y.moment_1", vec![1, 77, d]),
            ("embedding_adam.y.moment_2", vec![1, 77, d]),
            ("embedding_adam.y.time", vec![1]),
        ]
    );
    assert_eq!(st[3].2, vec![1.0], "one Adam update");
    assert_round_trip(&mut lods, &st);
    // Loaded before the first step: kept, and it replaces the negative-prompt initialisation.
    let mut fresh = Lods::new(cfg.clone(), dev).expect("lods");
    fresh.load_state(&st).expect("pending load");
    assert_eq!(fresh.state(), st);
    assert!(fresh.embedding().is_none());
    let other_inp = input(d, 311, 1);
    fresh
        .prior_step(&prior, &other_inp)
        .expect("step after load");
    let y = host(&fresh.embedding().expect("y_α")).expect("readback");
    assert!(max_diff(&y, &st[0].2) < 0.1, "{}", max_diff(&y, &st[0].2));
    let neg = host(&other_inp.uncond.clone().narrow(0, 0, 1)).expect("readback");
    assert!(max_diff(&y, &neg) > 0.5);
    // A mis-shaped entry loaded before the first step is refused when y_α is created.
    let mut pending_bad = vec![st[0].clone()];
    pending_bad[0].1 = vec![1, 77, d + 1];
    pending_bad[0].2.extend(vec![0.0; 77]);
    let mut fresh = Lods::new(cfg, dev).expect("lods");
    fresh
        .load_state(&pending_bad)
        .expect("pending load is checked later");
    let e = fresh.gradient(&prior, &inp).unwrap_err().to_string();
    assert!(e.contains("embedding.y"), "{e}");
    // The other variant's state.
    let e = Lods::new(LodsConfig::default(), dev)
        .expect("lods")
        .load_state(&[("lora.blocks.0.attn1.to_q.up".into(), vec![1], vec![0.0])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown"), "{e}");

    // LODS-LoRA: per transformer block 2 attentions × 4 projections × (down, up).
    let mut lods = Lods::new(
        LodsConfig {
            variant: LodsVariant::Lora,
            lora_lr: 0.02,
            ..LodsConfig::default()
        },
        dev,
    )
    .expect("lods-lora");
    lods.prior_step(&prior, &inp).expect("step");
    let st = lods.state();
    let weights = st.iter().filter(|(n, _, _)| n.starts_with("lora.")).count();
    assert_eq!(weights, unet.transformer_count() * 2 * 4 * 2);
    assert_eq!(
        st.iter()
            .filter(|(n, _, _)| n.starts_with("lora_adam."))
            .count(),
        3 * weights,
        "m, v and t per LoRA weight"
    );
    assert!(
        st.iter()
            .any(|(n, s, _)| n == "lora.blocks.0.attn2.to_k.down" && s == &vec![d, 4])
    );
    assert_round_trip(&mut lods, &st);

    // VSD: the LoRA and the camera embedding.
    let cfg = VsdConfig {
        lr: 0.01,
        ..VsdConfig::default()
    };
    let mut vsd = Vsd::new(cfg.clone(), dev).expect("vsd");
    vsd.train_step(&prior, &inp).expect("step");
    let st = vsd.state();
    let weights = st.iter().filter(|(n, _, _)| n.starts_with("vsd.")).count();
    assert_eq!(weights, unet.transformer_count() * 2 * 4 * 2 + 4);
    assert_eq!(
        st.iter()
            .filter(|(n, _, _)| n.starts_with("vsd_adam."))
            .count(),
        3 * weights,
        "m, v and t per LoRA and camera-embedding weight"
    );
    assert!(
        st.iter()
            .any(|(n, s, _)| n == "vsd.camera.linear_1.weight" && s == &vec![16, unet.temb_dim()])
    );
    assert_round_trip(&mut vsd, &st);
    // Without the camera condition there is no camera embedding to load.
    let mut plain = Vsd::new(
        VsdConfig {
            camera_condition: false,
            ..cfg
        },
        dev,
    )
    .expect("vsd");
    plain.load_state(&st).expect("pending load");
    let e = plain.gradient(&prior, &inp).unwrap_err().to_string();
    assert!(e.contains("vsd.camera"), "{e}");
}

#[test]
fn build_and_config() {
    let dev = &gpu().burn;
    for m in ["lods", "vsd"] {
        assert!(distill::METHODS.contains(&m));
        let g = distill::build(
            &GuidanceConfig {
                method: m.to_string(),
                ..GuidanceConfig::default()
            },
            dev,
        )
        .expect("known method");
        assert_eq!(g.name(), m);
    }
    let c: GuidanceConfig = serde_json::from_str(
        r#"{"method": "lods", "lods": {"variant": "lora", "lora_scale": 0.25}, "vsd": {"camera_dropout": 0.0}}"#,
    )
    .expect("parse");
    assert_eq!(c.lods.variant, LodsVariant::Lora);
    assert_eq!(c.lods.lora_scale, 0.25);
    assert_eq!(c.lods.lora_lr, 5e-7);
    assert_eq!(c.vsd.camera_dropout, 0.0);
    assert_eq!(c.vsd.lr, 1e-4);
    let lods = distill::build(&c, dev).expect("lods lora");
    assert_eq!(lods.cfg_scale(), 1000.0);
    assert_eq!(lods.extra_prompts("x")[0].text, "<new1>");
    let e = serde_json::from_str::<GuidanceConfig>(r#"{"lods": {"variant": "both"}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("both"), "{e}");
    let e = serde_json::from_str::<GuidanceConfig>(r#"{"vsd": {"lora_rnak": 4}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lora_rnak"), "{e}");
    for (cfg, name) in [
        (
            GuidanceConfig {
                method: "lods".into(),
                lods: LodsConfig {
                    cfg_scale: 0.0,
                    ..LodsConfig::default()
                },
                ..GuidanceConfig::default()
            },
            "guidance.lods.cfg_scale",
        ),
        (
            GuidanceConfig {
                method: "vsd".into(),
                vsd: VsdConfig {
                    lr: -1.0,
                    ..VsdConfig::default()
                },
                ..GuidanceConfig::default()
            },
            "guidance.vsd.lr",
        ),
    ] {
        let e = distill::build(&cfg, dev)
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.contains(name), "{e}");
    }
    // prior_t beyond the model's timesteps is named at the first step.
    let (unet, schedule, d) = load("tiny-eps");
    let prior = Prior {
        unet: &unet,
        schedule: &schedule,
    };
    let mut lods = Lods::new(
        LodsConfig {
            prior_t: [0, 1000],
            ..LodsConfig::default()
        },
        dev,
    )
    .expect("lods");
    let e = lods
        .gradient(&prior, &input(d, 1, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("guidance.lods.prior_t"), "{e}");
}
