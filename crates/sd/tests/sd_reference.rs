//! SD 2.1 parity against diffusers/transformers (format B of `reference-cases.md`): the CLIP
//! text encoder, the U-Net (output, input gradients, CFG) and the VAE (posterior, decoder,
//! input gradients) of tiny random-weight models with the real SD 2.1 architecture, made by
//! `tools/gen_sd_cases.py` and committed under `tests/cases/sd/`. Every case in
//! `$SPLATDREAM_SD_CASES` (model folders `<name>/` plus `<name>_{component}.safetensors`) runs
//! too. Tolerance: `1e-4·max|ref| + 1e-5` against the float64 reference.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;
use sd::nn::ConvAlgorithm;
use sd::{Precision, TextEncoder, UNet, Vae};
use testkit::{compare, f32s, f64s, gpu, root};

/// A tensor's values on the host; the read error as text (these checks report messages).
fn host<const D: usize>(t: &Tensor<D>) -> Result<Vec<f32>, String> {
    testkit::host(t).map_err(|e| e.to_string())
}

/// `(model folder, case file)` for every `<name>_{component}.safetensors` in the committed
/// directory and in `$SPLATDREAM_SD_CASES`.
fn cases(component: &str) -> Vec<(PathBuf, PathBuf)> {
    let mut dirs = vec![root().join("tests/cases/sd")];
    if let Ok(extra) = std::env::var("SPLATDREAM_SD_CASES") {
        let extra = PathBuf::from(extra);
        assert!(
            extra.is_dir(),
            "$SPLATDREAM_SD_CASES = {} is not a directory",
            extra.display()
        );
        dirs.push(extra);
    }
    let suffix = format!("_{component}.safetensors");
    let mut out = vec![];
    for (i, d) in dirs.into_iter().enumerate() {
        if i == 0 {
            let names: Vec<String> = std::fs::read_dir(&d)
                .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".safetensors"))
                .collect();
            testkit::assert_manifest(&d, &names);
        }
        let mut v: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.strip_suffix(&suffix)?.to_string();
                Some((d.join(name).join(component), p))
            })
            .collect();
        v.sort();
        out.extend(v);
    }
    out
}

/// Upload a case tensor as f32.
fn upload<const D: usize>(st: &SafeTensors, name: &str) -> Result<Tensor<D>, String> {
    let (v, shape) = f64s(st, name)?;
    let shape: [usize; D] = shape
        .try_into()
        .map_err(|s| format!("tensor `{name}`: rank {s:?}, expected {D}"))?;
    let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
    Ok(Tensor::from_data(TensorData::new(v, shape), &gpu().burn))
}

/// The float64 reference of `name` (`{name}_f64` when stored, else `name`).
fn reference(st: &SafeTensors, name: &str) -> Result<Vec<f64>, String> {
    let f64_name = format!("{name}_f64");
    if st.names().iter().any(|n| **n == f64_name) {
        Ok(f64s(st, &f64_name)?.0)
    } else {
        Ok(f64s(st, name)?.0)
    }
}

/// Compare a device tensor with the reference and print the error ratio.
fn check<const D: usize>(
    st: &SafeTensors,
    case: &Path,
    name: &str,
    got: &Tensor<D>,
) -> Result<(), String> {
    let want = reference(st, name)?;
    let got = host(got)?;
    let r = compare(name, &got, &want)?;
    println!(
        "{}: {name} ok (worst {:.3} of tolerance)",
        case.display(),
        r
    );
    Ok(())
}

/// Run every case of `component`, collecting failures so one bad case names itself and the
/// rest still run.
fn run_all(component: &str, run: impl Fn(&Path, &SafeTensors) -> Result<(), String>) {
    let all = cases(component);
    assert!(!all.is_empty(), "no {component} cases found");
    let mut failures = vec![];
    for (model, case) in &all {
        let bytes = match std::fs::read(case) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{}: {e}", case.display()));
                continue;
            }
        };
        let res = SafeTensors::deserialize(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|st| run(model, &st));
        if let Err(e) = res {
            failures.push(format!(
                "{} (model {}): {e}",
                case.display(),
                model.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `sample`'s whole loop (`StableDiffusion::denoise` + `decode_image`: prompt encoding, CFG,
/// 3 DDIM steps, the VAE's scaling and decode, postprocessing) against diffusers'
/// `StableDiffusionPipeline` with a `DDIMScheduler` from each folder's scheduler config
/// (`tiny-eps`: ε-prediction, SD 2.1-base's PNDM config; `tiny-v`: v-prediction, DDIM config),
/// from the case's fixed initial latents (`tools/gen_pipeline_cases.py`). Timesteps exact;
/// final latents and image within the usual tolerance of the float64 pipeline.
#[test]
fn txt2img_matches_diffusers_pipeline() {
    run_all("pipeline", |component, st| {
        let model = component.parent().unwrap();
        let sd = sd::pipeline::StableDiffusion::load(model, &gpu().burn, Precision::F32, false)
            .map_err(|e| e.to_string())?;
        let (_, meta) = SafeTensors::read_metadata(
            &std::fs::read(model.with_file_name(format!(
                "{}_pipeline.safetensors",
                model.file_name().unwrap().to_string_lossy()
            )))
            .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let meta = meta.metadata().clone().ok_or("no metadata")?;
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or(format!("metadata `{k}` missing"))
        };
        let num = |k: &str| -> Result<f64, String> {
            get(k)?
                .parse::<f64>()
                .map_err(|e| format!("metadata `{k}`: {e}"))
        };
        let opts = sd::pipeline::SampleOptions {
            prompt: get("prompt")?,
            negative: get("negative_prompt")?,
            steps: num("steps")? as usize,
            cfg_scale: num("guidance_scale")?,
            seed: 0,
            height: num("height")? as usize,
            width: num("width")? as usize,
        };
        let ddim = sd::scheduler::Ddim::new(&sd.schedule, opts.steps).map_err(|e| e.to_string())?;
        let (want_t, _) = f64s(st, "timesteps")?;
        let got_t: Vec<f64> = ddim.timesteps().iter().map(|&t| t as f64).collect();
        if got_t != want_t {
            return Err(format!("DDIM timesteps {got_t:?}, diffusers {want_t:?}"));
        }
        let init: Tensor<4> = upload(st, "init_latents")?;
        if init.dims() != sd.latent_shape(&opts).map_err(|e| e.to_string())? {
            return Err(format!("init_latents shape {:?}", init.dims()));
        }
        let latents = sd
            .denoise(&opts, init, |_, _| {})
            .map_err(|e| e.to_string())?;
        check(st, component, "latents", &latents)?;
        check(st, component, "image", &sd.decode_image(latents))
    });
}

#[test]
fn text_encoder_matches_transformers() {
    run_all("text_encoder", |model, st| {
        let enc =
            TextEncoder::from_dir(model, &gpu().burn, Precision::F32).map_err(|e| e.to_string())?;
        let (ids, shape) = f64s(st, "input_ids")?;
        let n = shape[1];
        let ids: Vec<Vec<u32>> = ids
            .chunks(n)
            .map(|r| r.iter().map(|&x| x as u32).collect())
            .collect();
        let out = enc.forward(&ids).map_err(|e| e.to_string())?;
        check(st, model, "last_hidden_state", &out)
    });
}

#[test]
fn unet_matches_diffusers_with_input_gradients_and_cfg() {
    for conv in [ConvAlgorithm::Direct, ConvAlgorithm::Im2col] {
        eprintln!("convolutions: {conv}");
        run_all("unet", |model, st| unet_case(model, st, conv));
    }
}

/// One U-Net case: forward, both input gradients and a CFG pair against diffusers.
fn unet_case(model: &Path, st: &SafeTensors, conv: ConvAlgorithm) -> Result<(), String> {
    {
        let unet =
            UNet::from_dir(model, &gpu().burn, Precision::F32, conv).map_err(|e| e.to_string())?;
        let latents = upload::<4>(st, "latents")?.autodiff().require_grad();
        let ctx = upload::<3>(st, "encoder_hidden_states")?
            .autodiff()
            .require_grad();
        let t = f64s(st, "timesteps")?.0;
        let out = unet.forward(latents.clone(), &t, ctx.clone());
        check(st, model, "out", &out)?;
        let g = upload::<4>(st, "grad_g")?;
        let grads = (out * g.autodiff()).sum().backward();
        let gl = latents
            .grad(&grads)
            .ok_or("no gradient reached the latents")?;
        check(st, model, "grad_latents", &gl)?;
        let gc = ctx
            .grad(&grads)
            .ok_or("no gradient reached the text embedding")?;
        check(st, model, "grad_encoder_hidden_states", &gc)?;

        // Classifier-free guidance: uncond and cond in one batch of 2.
        let lat = upload::<4>(st, "cfg_latents")?;
        let ctx2 = upload::<3>(st, "cfg_encoder_hidden_states")?;
        let ts = f64s(st, "cfg_timestep")?.0[0];
        let s = f32s(st, "cfg_guidance_scale")?[0] as f64;
        let both = unet.forward(Tensor::cat(vec![lat.clone(), lat], 0), &[ts, ts], ctx2);
        let [u, c]: [Tensor<4>; 2] = both
            .chunk(2, 0)
            .try_into()
            .map_err(|_| "chunk".to_string())?;
        let guided = sd::scheduler::cfg(u, c, s);
        check(st, model, "cfg_guided", &guided)
    }
}

#[test]
fn vae_matches_diffusers_with_input_gradients() {
    // Direct only: the U-Net test covers im2col's 3×3 and 1×1 convolutions (CI time).
    run_all("vae", |model, st| {
        vae_case(model, st, ConvAlgorithm::Direct)
    });
}

/// One VAE case: encoder statistics, decoder output and both input gradients against
/// diffusers.
fn vae_case(model: &Path, st: &SafeTensors, conv: ConvAlgorithm) -> Result<(), String> {
    {
        let vae =
            Vae::from_dir(model, &gpu().burn, Precision::F32, conv).map_err(|e| e.to_string())?;
        let image = upload::<4>(st, "image")?.autodiff().require_grad();
        let post = vae.encode(image.clone());
        check(st, model, "mean", &post.mean)?;
        check(st, model, "logvar", &post.logvar)?;
        check(st, model, "std", &post.std)?;
        let g = upload::<4>(st, "grad_g_mean")?;
        let grads = (post.mean * g.autodiff()).sum().backward();
        let gi = image.grad(&grads).ok_or("no gradient reached the image")?;
        check(st, model, "grad_image_from_mean", &gi)?;

        let z = upload::<4>(st, "z")?.autodiff().require_grad();
        let dec = vae.decode(z.clone());
        check(st, model, "decoded", &dec)?;
        let g = upload::<4>(st, "grad_g_decoded")?;
        let grads = (dec * g.autodiff()).sum().backward();
        let gz = z.grad(&grads).ok_or("no gradient reached z")?;
        check(st, model, "grad_z_from_decoded", &gz)
    }
}

/// Deterministic values in [−1, 1) of `shape` (a multiplicative hash of the index and `seed`).
fn pattern<const D: usize>(seed: u64, shape: [usize; D]) -> TensorData {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    TensorData::new(v, shape)
}

/// A convolution lowered to im2col in bands of output rows gives the result of one band and of
/// burn's direct `conv2d` (odd sizes, padding 1 and 0, 3×3 and 1×1 kernels).
#[test]
fn im2col_bands_equal_one_band_and_the_direct_convolution() {
    use burn::tensor::{module::conv2d, ops::ConvOptions};
    let dev = &gpu().burn;
    let mk = |seed: u64, shape: [usize; 4]| Tensor::<4>::from_data(pattern(seed, shape), dev);
    let bias = Tensor::<1>::from_data(TensorData::new(vec![0.5f32, -0.25, 0.0, 1.0], [4]), dev);
    let x = mk(1, [2, 5, 9, 7]);
    for (k, pad) in [(3, 1), (3, 0), (1, 0)] {
        let w = mk(2, [4, 5, k, k]);
        let one = sd::nn::conv2d_im2col(x.clone(), &w, Some(&bias), pad, usize::MAX);
        // 2 × 5 × k² × width elements per output row: a budget of 3 rows forces several bands.
        let row = 2 * 5 * k * k * (7 + 2 * pad + 1 - k);
        let banded = sd::nn::conv2d_im2col(x.clone(), &w, Some(&bias), pad, 3 * row);
        let direct = conv2d(
            x.clone(),
            w,
            Some(bias.clone()),
            ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
        );
        assert_eq!(one.dims(), direct.dims(), "k {k} pad {pad}");
        let (a, b, d) = (
            host(&one).unwrap(),
            host(&banded).unwrap(),
            host(&direct).unwrap(),
        );
        let worst = |u: &[f32], v: &[f32]| {
            u.iter()
                .zip(v)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max)
        };
        assert!(
            worst(&a, &b) < 1e-5,
            "k {k} pad {pad}: bands differ by {}",
            worst(&a, &b)
        );
        assert!(
            worst(&a, &d) < 1e-4,
            "k {k} pad {pad}: im2col vs direct {}",
            worst(&a, &d)
        );
    }
}

/// Attention in query blocks gives the same result as one block (the budget only changes how
/// the work is split), including with CLIP's causal mask.
#[test]
fn blocked_attention_equals_single_block() {
    let dev = &gpu().burn;
    let mk = |seed: u64, shape: [usize; 3]| Tensor::<3>::from_data(pattern(seed, shape), dev);
    let (q, k, v) = (mk(1, [2, 77, 32]), mk(2, [2, 77, 32]), mk(3, [2, 77, 32]));
    let mask = sd::nn::causal_mask(77, dev);
    let full = sd::nn::attention(
        q.clone(),
        k.clone(),
        v.clone(),
        4,
        Some(mask.clone()),
        false,
    );
    // 2 batches × 4 heads × 77 keys × 4 bytes = 2464 bytes per query row: 3 rows per block.
    let per_row = 2 * 4 * 77 * 4;
    assert!(
        (1 << 16) / per_row < 77,
        "the test budget must force several blocks"
    );
    let blocked = sd::nn::attention_in_blocks(q, k, v, 4, Some(mask), false, 1 << 16);
    let a = host(&full).unwrap();
    let b = host(&blocked).unwrap();
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "blocked attention differs by {worst}");
    // Row 0 of a causal attention sees only key 0, so its output is v's row 0.
    let v0 = host(&mk(3, [2, 77, 32])).unwrap();
    for bi in 0..2 {
        let row = &a[bi * 77 * 32..bi * 77 * 32 + 32];
        let want = &v0[bi * 77 * 32..bi * 77 * 32 + 32];
        for (x, y) in row.iter().zip(want) {
            assert!((x - y).abs() < 1e-5, "causal row 0: {x} vs {y}");
        }
    }
}

/// f16 compute stays close to the float64 reference: every
/// output within `F16_TOL·max|ref|`. f16 keeps ~3 significant digits, and errors grow through
/// the 23-layer text encoder and the U-Net's ~70 layers, so this is a looser bound than f32's.
#[test]
fn f16_compute_is_close_to_reference() {
    const F16_TOL: f64 = 3e-2;
    if !gpu().shader_f16() {
        assert!(
            std::env::var_os("SPLATDREAM_NO_F16").is_some_and(|v| v == "1"),
            "the adapter lacks SHADER_F16, so f16 compute cannot be tested; set \
             SPLATDREAM_NO_F16=1 to accept that"
        );
        println!("SPLATDREAM_NO_F16=1: adapter lacks SHADER_F16; f16 compute not tested");
        return;
    }
    let close = |case: &Path, name: &str, got: &[f32], want: &[f64]| -> Result<(), String> {
        let max_ref = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| {
                if g.is_finite() {
                    (*g as f64 - w).abs()
                } else {
                    f64::INFINITY
                }
            })
            .fold(0.0f64, f64::max);
        println!(
            "{}: f16 {name}: worst |err| {:.2e} = {:.4}·max|ref|",
            case.display(),
            worst,
            worst / max_ref
        );
        if worst > F16_TOL * max_ref {
            return Err(format!(
                "f16 {name}: worst |err| {worst:.3e} > {F16_TOL}·max|ref| ({max_ref:.3e})"
            ));
        }
        Ok(())
    };
    run_all("text_encoder", |model, st| {
        let enc =
            TextEncoder::from_dir(model, &gpu().burn, Precision::F16).map_err(|e| e.to_string())?;
        let (ids, shape) = f64s(st, "input_ids")?;
        let ids: Vec<Vec<u32>> = ids
            .chunks(shape[1])
            .map(|r| r.iter().map(|&x| x as u32).collect())
            .collect();
        let out = host(&enc.forward(&ids).map_err(|e| e.to_string())?)?;
        close(
            model,
            "last_hidden_state",
            &out,
            &reference(st, "last_hidden_state")?,
        )
    });
    run_all("unet", |model, st| {
        let unet = UNet::from_dir(model, &gpu().burn, Precision::F16, ConvAlgorithm::Direct)
            .map_err(|e| e.to_string())?;
        let out = unet.forward(
            upload::<4>(st, "latents")?,
            &f64s(st, "timesteps")?.0,
            upload::<3>(st, "encoder_hidden_states")?,
        );
        close(model, "out", &host(&out)?, &reference(st, "out")?)
    });
    run_all("vae", |model, st| {
        let vae = Vae::from_dir(model, &gpu().burn, Precision::F16, ConvAlgorithm::Direct)
            .map_err(|e| e.to_string())?;
        let post = vae.encode(upload::<4>(st, "image")?);
        close(model, "mean", &host(&post.mean)?, &reference(st, "mean")?)?;
        let dec = vae.decode(upload::<4>(st, "z")?);
        close(model, "decoded", &host(&dec)?, &reference(st, "decoded")?)
    });
}
