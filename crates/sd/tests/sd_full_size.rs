//! The full-size SD 2.1 architecture instantiates from the published configs and runs on the
//! device (random weights: real ones cannot be downloaded in CI), and attention at SD's real
//! size — 4096 tokens, 5 heads, whose naive score matrix (335 MB) exceeds lavapipe's 128 MiB
//! storage-binding limit — runs in blocks and matches a host computation.

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use sd::config::{ClipTextConfig, UNetConfig, VaeConfig};
use sd::weights::WeightFile;
use sd::{Precision, TextEncoder, UNet, Vae};
use testkit::host;
use testkit::{gpu, root};

/// The published config of one SD 2.1 component, shipped in `assets/sd21/<variant>/` (copied
/// from stabilityai/stable-diffusion-2-1{-base}; the licence allows committing configs).
fn shipped_config(variant: &str, component: &str) -> PathBuf {
    let file = if component == "scheduler" {
        "scheduler_config.json"
    } else {
        "config.json"
    };
    root()
        .join("assets/sd21")
        .join(variant)
        .join(component)
        .join(file)
}

fn finite(name: &str, v: &[f32]) {
    let bad = v.iter().filter(|x| !x.is_finite()).count();
    assert_eq!(bad, 0, "{name}: {bad} non-finite values");
    let mean_abs = v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len() as f64;
    assert!(mean_abs > 1e-6, "{name}: all (near) zero");
}

#[test]
fn full_size_sd21_runs_from_published_configs() {
    let dev = &gpu().burn;
    let w = WeightFile::random(dev, Precision::F32, 7);

    // U-Net (865 M parameters), batch 1 at an 8×8 latent so lavapipe finishes in minutes.
    let arch = UNetConfig::from_file(&shipped_config("base", "unet")).unwrap();
    assert_eq!(
        arch.heads,
        vec![5, 10, 20, 20],
        "heads per block from the config"
    );
    let unet = UNet::load(arch, &w).unwrap();
    // SD 2.1 (768, v-prediction) differs only in config: the same code reads it.
    let v = UNetConfig::from_file(&shipped_config("768v", "unet")).unwrap();
    assert!(v.config.upcast_attention);
    assert_eq!(v.config.sample_size, Some(96));
    let sched =
        sd::scheduler::NoiseSchedule::from_file(shipped_config("768v", "scheduler")).unwrap();
    assert_eq!(
        sched.config().prediction_type,
        sd::scheduler::PredictionType::VPrediction
    );
    let lat = sd::pipeline::gaussian([1, 4, 8, 8], 1, dev);
    let ctx = sd::pipeline::gaussian([1, 77, 1024], 2, dev);
    let out = unet.forward(lat, &[981.0], ctx);
    assert_eq!(out.dims(), [1, 4, 8, 8]);
    finite("unet out", &host(&out).unwrap());
    drop(unet);

    // Text encoder: 23 layers, width 1024; the 49408×1024 token table stays on the host.
    let cfg = ClipTextConfig::from_file(&shipped_config("base", "text_encoder")).unwrap();
    assert_eq!((cfg.num_hidden_layers, cfg.hidden_size), (23, 1024));
    let enc = TextEncoder::load(cfg, &w).unwrap();
    let tok = sd::tokenizer::ClipTokenizer::new().unwrap();
    let ids = vec![tok.encode("a DSLR photo of a corgi").unwrap()];
    let e = enc.forward(&ids).unwrap();
    assert_eq!(e.dims(), [1, 77, 1024]);
    finite("text embedding", &host(&e).unwrap());
    drop(enc);

    // VAE (128–512 channels): encode and decode a 64×64 image.
    let cfg = VaeConfig::from_file(&shipped_config("base", "vae")).unwrap();
    let vae = Vae::load(cfg, &w).unwrap();
    assert_eq!(vae.downscale(), 8);
    let img = sd::pipeline::gaussian([1, 3, 64, 64], 3, dev).clamp(-1.0, 1.0);
    let post = vae.encode(img);
    assert_eq!(post.mean.dims(), [1, 4, 8, 8]);
    finite("vae mean", &host(&post.mean).unwrap());
    let dec = vae.decode(post.mean);
    assert_eq!(dec.dims(), [1, 3, 64, 64]);
    finite("vae decoded", &host(&dec).unwrap());
}

#[test]
fn sd_size_attention_stays_under_the_binding_limit() {
    let dev = &gpu().burn;
    // SD 2.1-base's first block at 64×64 latents: 4096 tokens, 320 channels, 5 heads of 64.
    let (n, c, heads) = (4096usize, 320usize, 5usize);
    let naive = (heads * n * n * 4) as u64;
    let limit = gpu::alloc::max_binding_size();
    println!(
        "naive scores {} MiB, binding limit {} MiB, block budget {} MiB",
        naive >> 20,
        limit >> 20,
        sd::nn::attention_budget() >> 20
    );
    assert!(sd::nn::attention_budget() < limit);
    let random = |seed: u64| -> Vec<f32> {
        let mut s = seed;
        (0..n * c)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    };
    let (q, k, v) = (random(1), random(2), random(3));
    let up = |x: &Vec<f32>| Tensor::<3>::from_data(TensorData::new(x.clone(), [1, n, c]), dev);
    let out = sd::nn::attention(up(&q), up(&k), up(&v), heads, None, false);
    let got = host(&out).unwrap();
    // Host reference for a few query rows of every head, in f64.
    let d = c / heads;
    for &row in &[0usize, 1, 2047, 4095] {
        for h in 0..heads {
            let qi = &q[row * c + h * d..row * c + (h + 1) * d];
            let scores: Vec<f64> = (0..n)
                .map(|j| {
                    let kj = &k[j * c + h * d..j * c + (h + 1) * d];
                    qi.iter()
                        .zip(kj)
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for dd in 0..d {
                let want: f64 = (0..n)
                    .map(|j| e[j] / z * v[j * c + h * d + dd] as f64)
                    .sum();
                let g = got[row * c + h * d + dd] as f64;
                assert!(
                    (g - want).abs() < 1e-4,
                    "row {row} head {h} dim {dd}: got {g}, want {want}"
                );
            }
        }
    }
}
