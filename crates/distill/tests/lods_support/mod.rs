//! Shared pieces of the LODS/VSD tests (`distill_lods.rs`): guidance inputs, noising, host
//! references of the prior-branch loss, LoRA weights merged into a U-Net folder, f16 reading.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;

use crate::common::{host64, injected, load, model_dir, upload};
use burn::module::Module;
use burn::tensor::Tensor;
use distill::online::prior_draws;
use distill::state::{Entry, load_module_state, module_state};
use distill::vsd::VsdNet;
use distill::{
    Guidance, GuidanceConfig, GuidanceInput, Lods, LodsConfig, LodsVariant, Prior, Vsd, VsdConfig,
};
use safetensors::{Dtype, SafeTensors};
use sd::lora::{ConditionEmbedding, UNetLora};
use sd::scheduler::{NoiseSchedule, PredictionType};
use sd::{Precision, UNet, UNetExtras};
use testkit::host;
use testkit::{compare, gpu};

pub const B: usize = 2;
pub const LATENT: [usize; 4] = [B, 4, 8, 8];
pub const TIMESTEPS: [usize; B] = [137, 702];

pub fn per() -> usize {
    LATENT[1] * LATENT[2] * LATENT[3]
}

/// Seeded inputs: latents, noise, cond, uncond, one extra prompt embedding, a camera.
pub fn input(d: usize, seed: u64, step: usize) -> GuidanceInput {
    let dev = &gpu().burn;
    GuidanceInput {
        latents: sd::pipeline::gaussian(LATENT, seed, dev),
        timesteps: TIMESTEPS.to_vec(),
        noise: sd::pipeline::gaussian(LATENT, seed + 1, dev),
        cond: sd::pipeline::gaussian([B, 77, d], seed + 2, dev),
        uncond: sd::pipeline::gaussian([B, 77, d], seed + 3, dev),
        step,
        // 0: the prior-branch draws are seeded by the method's own `seed` setting alone, which
        // the host references below use.
        seed: 0,
        extra: vec![sd::pipeline::gaussian([B, 77, d], seed + 4, dev)],
        c2w: Some(sd::pipeline::gaussian([B, 16], seed + 5, dev)),
    }
}

pub fn stat(out: &distill::GuidanceOutput, k: &str) -> f64 {
    out.stats
        .iter()
        .find(|(n, _)| *n == k)
        .unwrap_or_else(|| panic!("stat {k}"))
        .1
        .value()
        .expect("stat read-back")
}

/// Host-side pieces of one step: `z_t`, ε, ᾱ and (α, σ) per sample.
pub struct Noised {
    pub z_t: Vec<f64>,
    pub eps: Vec<f64>,
    pub abar: [f64; B],
    pub a: [f64; B],
    pub s: [f64; B],
}

pub fn noised(
    schedule: &NoiseSchedule,
    latents: &Tensor<4>,
    noise: &Tensor<4>,
    t: &[usize],
) -> Noised {
    let z = host64(latents);
    let eps = host64(noise);
    let abar: [f64; B] = std::array::from_fn(|i| schedule.alphas_cumprod()[t[i]]);
    let a: [f64; B] = std::array::from_fn(|i| abar[i].sqrt());
    let s: [f64; B] = std::array::from_fn(|i| (1.0 - abar[i]).sqrt());
    let z_t = (0..z.len())
        .map(|k| a[k / per()] * z[k] + s[k / per()] * eps[k])
        .collect();
    Noised {
        z_t,
        eps,
        abar,
        a,
        s,
    }
}

/// A raw U-Net output converted to ε on the host (v → ε with `α v + σ z_t`).
pub fn to_eps(schedule: &NoiseSchedule, n: &Noised, out: &[f64]) -> Vec<f64> {
    if schedule.config().prediction_type == PredictionType::VPrediction {
        (0..out.len())
            .map(|k| n.a[k / per()] * out[k] + n.s[k / per()] * n.z_t[k])
            .collect()
    } else {
        out.to_vec()
    }
}

pub fn tf(t: &[usize]) -> Vec<f64> {
    t.iter().map(|&t| t as f64).collect()
}

/// The prior loss `mean‖out − target‖²` recomputed on the host for the draws of `step`: the
/// target is ε′ (ε-model) or `α ε′ − σ z` (v-model). `run(z′, t′)` gives the raw U-Net output.
pub fn host_prior_loss(
    schedule: &NoiseSchedule,
    latents: &Tensor<4>,
    seed: u64,
    step: usize,
    run: impl Fn(Tensor<4>, &[f64]) -> Tensor<4>,
) -> f64 {
    let d = prior_draws(seed, step, LATENT, (0, 999), &gpu().burn);
    let n = noised(schedule, latents, &d.noise, &d.t);
    let z = host64(latents);
    let out = host64(&run(upload(&n.z_t, LATENT), &tf(&d.t)));
    let v_pred = schedule.config().prediction_type == PredictionType::VPrediction;
    let mut acc = 0.0;
    for k in 0..out.len() {
        let i = k / per();
        let target = if v_pred {
            n.a[i] * n.eps[k] - n.s[i] * z[k]
        } else {
            n.eps[k]
        };
        acc += (out[k] - target).powi(2);
    }
    acc / out.len() as f64
}

// ---------------------------------------------------------------------------------------------
// LoRA on the U-Net

/// Rewrite the tiny model's U-Net weights with every attention projection merged as
/// `W + scale·(down·up)ᵀ` (torch layout `[out, in]`) from `lora`'s host values; returns the new
/// `unet/` folder.
pub fn merged_unet_dir(name: &str, unet: &UNet, lora: &[Entry], scale: f64, tag: &str) -> PathBuf {
    let src = model_dir(name).join("unet");
    let file = sd::model::component_weights(&src, "diffusion_pytorch_model").expect("weights");
    let bytes = std::fs::read(file).expect("weights");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let get = |n: &str| -> (&[usize], &[f32]) {
        let (_, s, v) = lora
            .iter()
            .find(|(k, _, _)| k == n)
            .unwrap_or_else(|| panic!("lora entry {n}"));
        (s, v)
    };
    let mut replaced: Vec<(String, Vec<u8>, Vec<usize>)> = vec![];
    for (i, shape) in unet.transformer_shapes().iter().enumerate() {
        for attn in ["attn1", "attn2"] {
            for (proj, key) in [
                ("to_q", "to_q"),
                ("to_k", "to_k"),
                ("to_v", "to_v"),
                ("to_out", "to_out.0"),
            ] {
                let wname = format!("{}.{attn}.{key}.weight", shape.prefix);
                let t = st.tensor(&wname).expect("projection weight");
                let w = floats(&t);
                let (out_f, in_f) = (t.shape()[0], t.shape()[1]);
                let base = format!("lora.blocks.{i}.{attn}.{proj}");
                let (ds, down) = get(&format!("{base}.down"));
                let (us, up) = get(&format!("{base}.up"));
                let r = ds[1];
                assert_eq!((ds[0], us[0], us[1]), (in_f, r, out_f), "{base}");
                let mut merged = vec![0u8; w.len() * 4];
                for o in 0..out_f {
                    for c in 0..in_f {
                        let mut acc = 0.0f64;
                        for k in 0..r {
                            acc += down[c * r + k] as f64 * up[k * out_f + o] as f64;
                        }
                        let v = (w[o * in_f + c] + scale * acc) as f32;
                        merged[(o * in_f + c) * 4..(o * in_f + c + 1) * 4]
                            .copy_from_slice(&v.to_le_bytes());
                    }
                }
                replaced.push((wname, merged, t.shape().to_vec()));
            }
        }
    }
    let mut views = vec![];
    for (n, t) in st.tensors() {
        if let Some((_, data, shape)) = replaced.iter().find(|(k, _, _)| *k == n) {
            views.push((
                n,
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                    .expect("view"),
            ));
        } else {
            views.push((n, t));
        }
    }
    let dir = std::env::temp_dir().join(format!(
        "splatdream-lora-{}-{name}-{tag}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).expect("config");
    safetensors::serialize_to_file(
        views,
        None,
        &dir.join("diffusion_pytorch_model.safetensors"),
    )
    .expect("write merged weights");
    dir
}

/// An IEEE half-precision value as f64.
pub fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 => {
            if frac == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A safetensors F32 or F16 tensor's values as f64.
pub fn floats(t: &safetensors::tensor::TensorView<'_>) -> Vec<f64> {
    match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect(),
        Dtype::F16 => t
            .data()
            .chunks_exact(2)
            .map(|b| f16_to_f64(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        d => panic!("unexpected dtype {d:?}"),
    }
}

/// A rank-`r` LoRA set for `unet` whose `up` matrices are random too (host values returned).
pub fn random_lora(unet: &UNet, rank: usize, seed: u64) -> (UNetLora, Vec<Entry>) {
    let dev = &gpu().burn;
    let lora = UNetLora::for_unet(unet, rank, dev);
    let mut st = module_state("lora", &lora);
    for (k, (name, shape, v)) in st.iter_mut().enumerate() {
        if name.ends_with(".up") {
            let g = host(&sd::pipeline::gaussian(
                [shape[0], shape[1]],
                seed + k as u64,
                dev,
            ))
            .expect("readback");
            *v = g.into_iter().map(|x| 0.3 * x).collect();
        }
    }
    let lora = load_module_state("lora", "test", lora, &st).expect("load lora");
    (lora, st)
}
