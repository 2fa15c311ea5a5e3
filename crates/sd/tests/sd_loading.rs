//! Loading SD 2.x model folders: every bad input (missing/wrong-shape/wrong-dtype tensor,
//! truncated or corrupt safetensors, malformed or unsupported config, incomplete folder,
//! pickle-only weights) is an `Err` whose message names the file and the tensor or field,
//! never a panic; both committed key layouts (`tiny-eps`, `tiny-v`) load; the Hugging Face
//! cache lookup; sha256; f16 → f32 widening.
//!
//! Bad fixtures are made at run time from copies of `tests/cases/sd/tiny-*` in a temporary
//! directory, so the test needs nothing but the committed files.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use burn::tensor::DType;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sd::config::{ClipTextConfig, UNetConfig, VaeConfig};
use sd::pipeline::StableDiffusion;
use sd::weights::WeightFile;
use sd::{Precision, TextEncoder, UNet, Vae};
use testkit::{gpu, root};

/// Held for reading by every test that touches the GPU or other C code, and for writing by
/// the one test that mutates the process environment, so that `set_var` never runs while
/// another thread of this binary might call `getenv` (e.g. Mesa during device creation).
static ENV_LOCK: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    ENV_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

fn device() -> &'static burn::tensor::Device {
    &gpu().burn
}

fn case(name: &str) -> PathBuf {
    root().join("tests/cases/sd").join(name)
}

/// A fresh, empty directory unique to this process and `tag`, removed on drop unless the
/// test failed (then it is kept for inspection).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn scratch(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("splatdream-sdload-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A copy of the committed model `name` (or only its `component` folder) in a scratch
/// directory for `tag`: the guard and the model folder.
fn copy_model(name: &str, component: Option<&str>, tag: &str) -> (TempDir, PathBuf) {
    let t = scratch(tag);
    let dst = t.join(name);
    match component {
        Some(c) => copy_dir(&case(name).join(c), &dst.join(c)),
        None => copy_dir(&case(name), &dst),
    }
    (t, dst)
}

/// One tensor of a safetensors file, owned.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Read every tensor of `file`, let `edit` change the list, and write it back.
fn rewrite(file: &Path, edit: impl FnOnce(&mut Vec<Entry>)) {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<Entry> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| Entry {
            name,
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            data: t.data().to_vec(),
        })
        .collect();
    edit(&mut v);
    let views: Vec<(String, TensorView)> = v
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                TensorView::new(e.dtype, e.shape.clone(), &e.data).unwrap(),
            )
        })
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(file, out).unwrap();
}

fn find<'a>(v: &'a mut [Entry], name: &str) -> &'a mut Entry {
    v.iter_mut()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("fixture has no tensor `{name}`"))
}

/// Assert `msg` contains every one of `parts`.
fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks `{p}`:\n{msg}");
    }
}

fn unet_err(dir: &Path) -> String {
    match UNet::from_dir(dir, device(), Precision::F32, sd::nn::ConvAlgorithm::Direct) {
        Ok(_) => panic!("{}: U-Net loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn vae_err(dir: &Path) -> String {
    match Vae::from_dir(dir, device(), Precision::F32, sd::nn::ConvAlgorithm::Direct) {
        Ok(_) => panic!("{}: VAE loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn model_err(dir: &Path) -> String {
    match StableDiffusion::load(dir, device(), Precision::F32, false) {
        Ok(_) => panic!("{}: model loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

const UNET_FILE: &str = "diffusion_pytorch_model.safetensors";

#[test]
fn missing_tensor_names_file_and_tensor() {
    let _g = shared();
    // Through the whole pipeline (text encoder loads first, then the U-Net fails).
    let (_t, m) = copy_model("tiny-eps", None, "missing");
    let file = m.join("unet").join(UNET_FILE);
    let name = "up_blocks.1.attentions.0.proj_in.weight";
    rewrite(&file, |v| v.retain(|e| e.name != name));
    let msg = model_err(&m);
    assert_names(&msg, &[&file.display().to_string(), name, "missing"]);

    // A legacy/new VAE attention key absent in both layouts: both names are mentioned.
    let (_t, m) = copy_model("tiny-v", Some("vae"), "missing-vae");
    let file = m.join("vae/diffusion_pytorch_model.fp16.safetensors");
    let name = "decoder.mid_block.attentions.0.key.weight";
    rewrite(&file, |v| v.retain(|e| e.name != name));
    let msg = vae_err(&m.join("vae"));
    assert_names(
        &msg,
        &[
            &file.display().to_string(),
            name,
            "decoder.mid_block.attentions.0.to_k.weight",
        ],
    );

    // Unprefixed CLIP keys (tiny-v): the missing key is named as the file spells its keys.
    let (_t, m) = copy_model("tiny-v", Some("text_encoder"), "missing-clip");
    let file = m.join("text_encoder/model.fp16.safetensors");
    let name = "encoder.layers.1.mlp.fc2.bias";
    rewrite(&file, |v| v.retain(|e| e.name != name));
    let msg = match TextEncoder::from_dir(&m.join("text_encoder"), device(), Precision::F32) {
        Ok(_) => panic!("text encoder loaded without {name}"),
        Err(e) => e.to_string(),
    };
    assert_names(&msg, &[&file.display().to_string(), name]);
    assert!(
        !msg.contains("text_model."),
        "unprefixed file, prefixed name in the error: {msg}"
    );
}

#[test]
fn wrong_shape_names_file_tensor_and_both_shapes() {
    let _g = shared();
    let (_t, m) = copy_model("tiny-eps", Some("unet"), "shape");
    let file = m.join("unet").join(UNET_FILE);
    // conv_in: [16, 4, 3, 3] → [16, 4, 1, 1].
    rewrite(&file, |v| {
        let e = find(v, "conv_in.weight");
        assert_eq!(e.shape, [16, 4, 3, 3]);
        e.shape = vec![16, 4, 1, 1];
        e.data.truncate(16 * 4 * 4);
    });
    let msg = unet_err(&m.join("unet"));
    assert_names(
        &msg,
        &[
            &file.display().to_string(),
            "conv_in.weight",
            "[16, 4, 3, 3]",
            "[16, 4, 1, 1]",
        ],
    );

    // A bias one element short.
    let (_t, m) = copy_model("tiny-eps", Some("vae"), "shape-vae");
    let file = m.join("vae").join(UNET_FILE);
    rewrite(&file, |v| {
        let e = find(v, "decoder.conv_out.bias");
        assert_eq!(e.shape, [3]);
        e.shape = vec![2];
        e.data.truncate(8);
    });
    let msg = vae_err(&m.join("vae"));
    assert_names(
        &msg,
        &[
            &file.display().to_string(),
            "decoder.conv_out.bias",
            "[3]",
            "[2]",
        ],
    );
}

/// A Linear weight stored transposed (`[in, out]` instead of PyTorch's `[out, in]`, same
/// element count) must be rejected, not silently loaded with its values scrambled.
#[test]
fn transposed_linear_weight_is_rejected() {
    let _g = shared();
    let (_t, m) = copy_model("tiny-eps", Some("unet"), "transposed");
    let file = m.join("unet").join(UNET_FILE);
    // time_embedding.linear_1: 16 → 64, stored [64, 16]; write it as [16, 64].
    rewrite(&file, |v| {
        let e = find(v, "time_embedding.linear_1.weight");
        assert_eq!(e.shape, [64, 16]);
        e.shape = vec![16, 64];
    });
    let msg = unet_err(&m.join("unet"));
    assert_names(
        &msg,
        &[
            &file.display().to_string(),
            "time_embedding.linear_1.weight",
            "[64, 16]",
            "[16, 64]",
        ],
    );
}

#[test]
fn wrong_dtype_names_file_tensor_and_dtype() {
    let _g = shared();
    for (dtype, size, label) in [(Dtype::I64, 8, "I64"), (Dtype::U8, 1, "U8")] {
        let (_t, m) = copy_model("tiny-eps", Some("unet"), &format!("dtype-{label}"));
        let file = m.join("unet").join(UNET_FILE);
        rewrite(&file, |v| {
            let e = find(v, "conv_in.bias");
            e.dtype = dtype;
            e.data = vec![1u8; 16 * size];
        });
        let msg = unet_err(&m.join("unet"));
        assert_names(&msg, &[&file.display().to_string(), "conv_in.bias", label]);
    }
}

#[test]
fn truncated_and_corrupt_files_name_the_file() {
    let _g = shared();
    let (_t, m) = copy_model("tiny-eps", Some("vae"), "trunc");
    let file = m.join("vae").join(UNET_FILE);
    let bytes = std::fs::read(&file).unwrap();
    let path = file.display().to_string();

    // Cut in half: the header promises more data than the file holds.
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let msg = vae_err(&m.join("vae"));
    assert_names(&msg, &[&path, "safetensors"]);

    // Garbage in the 8-byte header length.
    let mut bad = bytes.clone();
    bad[..8].copy_from_slice(b"\xff\xfe\xfd\xfcGARB");
    std::fs::write(&file, &bad).unwrap();
    assert_names(&vae_err(&m.join("vae")), &[&path]);

    // A plausible length, but the header is not JSON.
    let mut bad = bytes.clone();
    for b in &mut bad[8..40] {
        *b = b'#';
    }
    std::fs::write(&file, &bad).unwrap();
    assert_names(&vae_err(&m.join("vae")), &[&path]);

    // Too short to hold the header length; empty.
    for n in [5, 0] {
        std::fs::write(&file, &bytes[..n]).unwrap();
        assert_names(&vae_err(&m.join("vae")), &[&path]);
    }

    // Not a file at all.
    let dir_instead = m.join("vae").join("dir.safetensors");
    std::fs::create_dir_all(&dir_instead).unwrap();
    let msg = WeightFile::open(&dir_instead, device(), Precision::F32)
        .map(|_| ())
        .expect_err("a directory opened as a weight file")
        .to_string();
    assert_names(&msg, &[&dir_instead.display().to_string()]);
    let nope = m.join("vae/nope.safetensors");
    let msg = WeightFile::open(&nope, device(), Precision::F32)
        .map(|_| ())
        .expect_err("a missing file opened")
        .to_string();
    assert_names(&msg, &[&nope.display().to_string()]);
}

/// Edit the JSON object in `file`.
fn edit_json(file: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn unet_config_err(file: &Path) -> String {
    match UNetConfig::from_file(file) {
        Ok(_) => panic!("{}: config accepted", file.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_configs_name_file_and_field() {
    let (_t, m) = copy_model("tiny-eps", None, "config");
    let unet = m.join("unet/config.json");
    let orig = std::fs::read_to_string(&unet).unwrap();
    let path = unet.display().to_string();

    // Malformed JSON.
    std::fs::write(&unet, "{ \"block_out_channels\": [16, 32,, }").unwrap();
    assert_names(&unet_config_err(&unet), &[&path, "line 1"]);

    // A required field absent.
    std::fs::write(&unet, &orig).unwrap();
    edit_json(&unet, |o| {
        o.remove("cross_attention_dim");
    });
    assert_names(&unet_config_err(&unet), &[&path, "cross_attention_dim"]);

    // Unsupported block type.
    std::fs::write(&unet, &orig).unwrap();
    edit_json(&unet, |o| {
        o["down_block_types"][0] = "SimpleCrossAttnDownBlock2D".into();
    });
    assert_names(
        &unet_config_err(&unet),
        &[&path, "down_block_types", "SimpleCrossAttnDownBlock2D"],
    );
    std::fs::write(&unet, &orig).unwrap();
    edit_json(&unet, |o| {
        o["up_block_types"][3] = "AttnUpBlock2D".into();
    });
    assert_names(
        &unet_config_err(&unet),
        &[&path, "up_block_types", "AttnUpBlock2D"],
    );

    // Heads that do not divide the channels (16 channels, 3 heads).
    std::fs::write(&unet, &orig).unwrap();
    edit_json(&unet, |o| {
        o.insert("attention_head_dim".into(), serde_json::json!([3, 2, 2, 2]));
    });
    assert_names(
        &unet_config_err(&unet),
        &[&path, "attention_head_dim", "16", "3"],
    );
    // The correctly named field takes precedence and is checked the same way.
    std::fs::write(&unet, &orig).unwrap();
    edit_json(&unet, |o| {
        o.insert("num_attention_heads".into(), 5.into());
    });
    assert_names(&unet_config_err(&unet), &[&path, "5"]);

    // Groups that do not divide the channels.
    std::fs::write(&unet, &orig).unwrap();
    edit_json(&unet, |o| {
        o.insert("norm_num_groups".into(), 7.into());
    });
    assert_names(&unet_config_err(&unet), &[&path, "norm_num_groups"]);

    // Other unsupported options.
    for (field, value) in [
        ("act_fn", serde_json::json!("gelu")),
        ("transformer_layers_per_block", serde_json::json!(2)),
        ("class_embed_type", serde_json::json!("timestep")),
        ("time_embedding_type", serde_json::json!("fourier")),
        (
            "mid_block_type",
            serde_json::json!("UNetMidBlock2DSimpleCrossAttn"),
        ),
    ] {
        std::fs::write(&unet, &orig).unwrap();
        edit_json(&unet, |o| {
            o.insert(field.into(), value);
        });
        assert_names(&unet_config_err(&unet), &[&path, field]);
    }
    std::fs::write(&unet, &orig).unwrap();
    assert!(UNetConfig::from_file(&unet).is_ok());

    // VAE and text-encoder configs.
    let vae = m.join("vae/config.json");
    edit_json(&vae, |o| {
        o["down_block_types"][1] = "AttnDownEncoderBlock2D".into();
    });
    let msg = VaeConfig::from_file(&vae).unwrap_err().to_string();
    assert_names(
        &msg,
        &[
            &vae.display().to_string(),
            "down_block_types",
            "AttnDownEncoderBlock2D",
        ],
    );
    let te = m.join("text_encoder/config.json");
    edit_json(&te, |o| {
        o.insert("num_attention_heads".into(), 5.into());
    });
    let msg = ClipTextConfig::from_file(&te).unwrap_err().to_string();
    assert_names(
        &msg,
        &[&te.display().to_string(), "num_attention_heads", "5", "32"],
    );

    // The whole-model loader passes the config error through (the text encoder is first).
    let _g = shared();
    assert_names(
        &model_err(&m),
        &[&te.display().to_string(), "num_attention_heads"],
    );
}

/// A field of the wrong JSON type: serde_json alone reports only line and column, so the
/// message must still name the field.
#[test]
fn wrong_type_config_field_is_named() {
    let (_t, m) = copy_model("tiny-eps", Some("unet"), "config-type");
    let unet = m.join("unet/config.json");
    edit_json(&unet, |o| {
        o.insert("layers_per_block".into(), "two".into());
    });
    assert_names(
        &unet_config_err(&unet),
        &[&unet.display().to_string(), "layers_per_block"],
    );
}

#[test]
fn incomplete_folder_lists_missing_components() {
    let _g = shared();
    let (_t, m) = copy_model("tiny-eps", None, "nocomp");
    std::fs::remove_dir_all(m.join("vae")).unwrap();
    let msg = model_err(&m);
    assert_names(&msg, &[&m.display().to_string(), "vae/config.json"]);
    assert!(!msg.contains("unet/"), "{msg}");

    std::fs::remove_dir_all(m.join("unet")).unwrap();
    std::fs::remove_file(m.join("scheduler/scheduler_config.json")).unwrap();
    let msg = model_err(&m);
    assert_names(
        &msg,
        &[
            &m.display().to_string(),
            "vae/config.json",
            "unet/config.json",
            "scheduler/scheduler_config.json",
        ],
    );

    // A config without weights.
    let (_t, m) = copy_model("tiny-eps", None, "noweights");
    std::fs::remove_file(m.join("unet").join(UNET_FILE)).unwrap();
    let msg = model_err(&m);
    assert_names(
        &msg,
        &[
            &m.join("unet").display().to_string(),
            "diffusion_pytorch_model.safetensors",
            "diffusion_pytorch_model.fp16.safetensors",
        ],
    );

    // Not a folder at all.
    let msg = model_err(&m.join("model_index.json"));
    assert_names(&msg, &["model_index.json"]);
}

#[test]
fn pickle_only_component_is_refused() {
    let _g = shared();
    let (_t, m) = copy_model("tiny-eps", Some("unet"), "pickle");
    let unet = m.join("unet");
    std::fs::rename(
        unet.join(UNET_FILE),
        unet.join("diffusion_pytorch_model.bin"),
    )
    .unwrap();
    let msg = unet_err(&unet);
    assert_names(
        &msg,
        &[
            &unet.display().to_string(),
            "diffusion_pytorch_model.bin",
            "pickles are not read",
        ],
    );
    let msg = sd::model::component_weights(&unet, "diffusion_pytorch_model")
        .unwrap_err()
        .to_string();
    assert_names(&msg, &["pickles are not read"]);
}

#[test]
fn both_key_layouts_load() {
    let _g = shared();
    // tiny-eps: f32, `text_model.` prefix, new VAE attention keys; with --verify (no published
    // entry for these sizes: a warning, not an error).
    let eps = StableDiffusion::load(&case("tiny-eps"), device(), Precision::F32, true)
        .unwrap_or_else(|e| panic!("tiny-eps: {e}"));
    assert_eq!(eps.text_encoder.config.hidden_size, 32);
    assert_eq!(eps.unet.arch.config.block_out_channels, [16, 32, 32, 32]);
    assert_eq!(eps.unet.arch.heads, [1, 2, 2, 2]);
    assert_eq!(eps.vae.downscale(), 8);
    assert_eq!(eps.default_size(), 16 * 8);
    // tiny-v: only fp16 files, no prefix, legacy VAE keys, position_ids buffer.
    let v = StableDiffusion::load(&case("tiny-v"), device(), Precision::F32, false)
        .unwrap_or_else(|e| panic!("tiny-v: {e}"));
    assert_eq!(v.text_encoder.config.hidden_size, 48);
    assert_eq!(v.unet.arch.config.block_out_channels, [24, 48, 48, 48]);
    assert!(v.unet.arch.config.upcast_attention);
    assert_eq!(v.vae.scaling_factor(), 0.18215);
    // The text encoders run and give [B, 77, D].
    let ids = vec![{
        let mut ids = vec![0u32; 77];
        ids[0] = 49406;
        ids[1] = 320;
        ids[2] = 49407;
        ids
    }];
    let h = v.text_encoder.forward(&ids).unwrap();
    assert_eq!(h.dims(), [1, 77, 48]);
    let e = eps.text_encoder.forward(&ids).unwrap();
    assert_eq!(e.dims(), [1, 77, 32]);
    assert!(testkit::host(&e).unwrap().iter().all(|x| x.is_finite()));
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let man = (bits & 0x3ff) as f32;
    sign * match exp {
        0 => man * 2f32.powi(-24),
        31 if man == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + man / 1024.0) * 2f32.powi(e - 15),
    }
}

#[test]
fn f16_and_bf16_files_widen_exactly_to_f32() {
    let _g = shared();
    let file = case("tiny-v/unet/diffusion_pytorch_model.fp16.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let w = WeightFile::open(&file, device(), Precision::F32).unwrap();
    assert_eq!(w.precision(), Precision::F32);
    for (name, n) in [("conv_in.bias", 24), ("conv_out.bias", 4)] {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F16);
        assert_eq!(t.shape(), [n]);
        let want: Vec<f32> = t
            .data()
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        let got = w.tensor(name, [n]).unwrap();
        assert_eq!(got.dtype(), DType::F32);
        let got = testkit::host(&got).unwrap();
        assert_eq!(got, want, "{name}");
        assert!(want.iter().any(|x| *x != 0.0));
    }
    // A Linear weight is transposed to [in, out] on upload.
    let name = "time_embedding.linear_1.weight";
    let t = st.tensor(name).unwrap();
    let [o, i] = [t.shape()[0], t.shape()[1]];
    let raw: Vec<f32> = t
        .data()
        .chunks_exact(2)
        .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
        .collect();
    let lin = w.linear("time_embedding.linear_1", i, o, true).unwrap();
    let got = testkit::host(&lin.weight).unwrap();
    assert_eq!(lin.weight.dims(), [i, o]);
    for r in 0..o {
        for c in 0..i {
            assert_eq!(got[c * o + r], raw[r * i + c]);
        }
    }

    // BF16: the top half of each f32 of tiny-eps's conv_in.bias, widened back exactly.
    let src = case("tiny-eps/unet").join(UNET_FILE);
    let bytes = std::fs::read(&src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("conv_in.bias").unwrap();
    let bf: Vec<u8> = t
        .data()
        .chunks_exact(4)
        .flat_map(|b| [b[2], b[3]])
        .collect();
    let want: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([0, 0, b[2], b[3]]))
        .collect();
    let dir = scratch("bf16");
    let out = dir.join("bf16.safetensors");
    let view = TensorView::new(Dtype::BF16, vec![16], &bf).unwrap();
    std::fs::write(
        &out,
        safetensors::serialize([("conv_in.bias", view)], None).unwrap(),
    )
    .unwrap();
    let w = WeightFile::open(&out, device(), Precision::F32).unwrap();
    let got = testkit::host(&w.tensor("conv_in.bias", [16]).unwrap()).unwrap();
    assert_eq!(got, want);
}

#[test]
fn sha256_and_published_hashes() {
    let dir = scratch("sha");
    let abc = dir.join("abc.txt");
    std::fs::write(&abc, b"abc").unwrap();
    // FIPS 180-2 test vectors.
    assert_eq!(
        sd::model::sha256_file(&abc).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        sd::model::sha256_file(&empty).unwrap(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let million = dir.join("million");
    std::fs::write(&million, vec![b'a'; 1_000_000]).unwrap();
    assert_eq!(
        sd::model::sha256_file(&million).unwrap(),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    );
    // More than one 1 MiB read (Python: hashlib.sha256(b"a" * 2_000_000).hexdigest()).
    let two = dir.join("two");
    std::fs::write(&two, vec![b'a'; 2_000_000]).unwrap();
    assert_eq!(
        sd::model::sha256_file(&two).unwrap(),
        "bcf7f9d1b4311c3352e60502255ce09a6744df84e8f2c89f79c4b5d74933a95a"
    );
    let nope = dir.join("nope");
    let msg = sd::model::sha256_file(&nope).unwrap_err().to_string();
    assert_names(&msg, &[&nope.display().to_string()]);

    // No published entry for these names/sizes.
    assert_eq!(sd::model::verify_published(&abc).unwrap(), None);
    let unet = case("tiny-eps/unet").join(UNET_FILE);
    assert_eq!(sd::model::verify_published(&unet).unwrap(), None);
    assert!(sd::model::verify_published(&nope).is_err());

    // The shipped table parses: 64-hex hashes, non-zero sizes, both repositories.
    let table = sd::model::published_hashes();
    assert!(!table.is_empty());
    for (p, h, n) in &table {
        assert!(
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{p}: {h}"
        );
        assert!(*n > 0, "{p}");
    }
    assert!(
        table
            .iter()
            .any(|(p, _, _)| p.ends_with("base/unet/diffusion_pytorch_model.safetensors"))
    );
}

/// Every check that mutates the process environment lives here (see [`ENV_LOCK`]).
#[test]
fn resolve_in_hf_cache() {
    let _g = ENV_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let tmp = scratch("hub");
    let hub = tmp.join("hub");
    let repo = hub.join("models--org--name");
    let rev = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(rev);
    copy_model_into(&case("tiny-eps"), &snap);
    // An older snapshot that sorts first: refs/main must win over it.
    let old = repo.join("snapshots/0000000000000000000000000000000000000000");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::copy(
        case("tiny-eps/model_index.json"),
        old.join("model_index.json"),
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{rev}\n")).unwrap();
    // A repository with a snapshot but no refs/main.
    let other = hub.join("models--org--norefs/snapshots/abc");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(
        case("tiny-eps/model_index.json"),
        other.join("model_index.json"),
    )
    .unwrap();

    let saved: Vec<_> = ["HF_HUB_CACHE", "HF_HOME"]
        .iter()
        .map(|k| (*k, std::env::var_os(k)))
        .collect();
    // SAFETY: this test holds ENV_LOCK for writing, so no other test of this binary runs
    // (every other test that calls into the GPU stack holds it for reading, and the rest
    // touch no environment), and nothing else reads or writes the environment meanwhile.
    unsafe {
        std::env::set_var("HF_HUB_CACHE", &hub);
        std::env::remove_var("HF_HOME");
    }
    let result = std::panic::catch_unwind(|| {
        assert_eq!(sd::model::hf_hub_cache().as_deref(), Some(hub.as_path()));
        let got = sd::model::resolve("org/name").unwrap();
        assert_eq!(got, snap);
        let got = sd::model::resolve("org/norefs").unwrap();
        assert_eq!(got, other);

        let msg = sd::model::resolve("org/missing").unwrap_err().to_string();
        assert_names(
            &msg,
            &[
                "org/missing",
                "Hugging Face cache",
                &hub.join("models--org--missing").display().to_string(),
            ],
        );
        let msg = sd::model::resolve("not-a-path").unwrap_err().to_string();
        assert_names(&msg, &["not-a-path", "no such directory", "org/name"]);
        let msg = sd::model::resolve("a/b/c").unwrap_err().to_string();
        assert_names(&msg, &["a/b/c", "org/name"]);
        let file = case("tiny-eps/model_index.json");
        let msg = sd::model::resolve(file.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert_names(&msg, &["is a file"]);
        // A folder is used as is, whatever the cache holds.
        assert_eq!(
            sd::model::resolve(case("tiny-v").to_str().unwrap()).unwrap(),
            case("tiny-v")
        );

        // HF_HOME/hub when HF_HUB_CACHE is unset.
        // SAFETY: as above.
        unsafe {
            std::env::remove_var("HF_HUB_CACHE");
            std::env::set_var("HF_HOME", &*tmp);
        }
        assert_eq!(sd::model::hf_hub_cache(), Some(hub.clone()));
        assert_eq!(sd::model::resolve("org/name").unwrap(), snap);
    });
    // SAFETY: as above.
    unsafe {
        for (k, v) in saved {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// The snapshot as the HF cache lays it out: a symlink per file where the platform has them.
fn copy_model_into(from: &Path, to: &Path) {
    #[cfg(unix)]
    {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(from.canonicalize().unwrap(), to).unwrap();
    }
    #[cfg(not(unix))]
    copy_dir(from, to);
}
