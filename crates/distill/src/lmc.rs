//! **LMC-SDS**: score distillation with a learned manifold corrective (Alldieck, Kolotouros,
//! Sminchisescu 2024, "Score Distillation Sampling with Learned Manifold Corrective" \[S2\];
//! docs/methods.md §3 and §6.3 items 7–8).
//!
//! SDS splits into a prompt term and a "projection" term (methods.md §3.1):
//! `ε̂_cfg − ε = ω(ε̂_y − ε̂_∅) + (ε̂_∅ − ε)`, where `ε̂_∅ − ε ∝ z − ẑ_t` pulls the render towards
//! the unconditional one-step denoised estimate `ẑ_t`, a *blurred* version of `z` — which is
//! what erases detail at low ω. LMC-SDS replaces `z` in that term by `b̃(z, t)`, a learned model
//! of the denoiser's blur applied to `z`, so only the genuine "towards the manifold" part stays.
//!
//! # The gradient (methods.md §3.1, §3.5; \[S2\] Eq. 9–10, "scaled by 1/ω", w(t) = 1)
//!
//! ```text
//! z_t  = α_t z + σ_t ε                                  (α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t))
//! z^c_t = z_t, or α_t z + σ_t ε_fix in fixed-ε mode (ε_fix drawn once per run)
//! ε_y = ε̂_φ(z^c_t; y, t),  ε_∅ = ε̂_φ(z^c_t; ∅, t)          (U-Net, no gradient, ε units)
//! ẑ_t = (z_t − σ_t ε̂_φ(z_t; ∅, t)) / α_t                (reuses ε_∅ when z^c_t = z_t)
//! b   = b̂ψ(z, t)                                        (frozen [`BlurNet`], no gradient)
//! b̃   = σ(ẑ_t)/σ(b) · (b − μ(b)) + μ(b)                 (per image, per channel; [`renormalise`])
//! g   = scale · (1/ω) · [ ω (ε_y − ε_∅) + (b̃ − ẑ_t) ]
//! ```
//!
//! `g` is injected into the latents with the SDS pseudo-loss ([`crate::inject`]): the gradient
//! is taken with respect to `z`, not `z_t` (no `α_t` factor, methods.md §6.3 item 8), the
//! `√ᾱ_t/√(1−ᾱ_t)` factor of `L_proj` is dropped as in \[S2\], and the Jacobians of the U-Net
//! and of b̂ψ are omitted. The two summands have different units (ε vs latent), as in \[S2\].
//! `ε_y`, `ε_∅` come from one batched U-Net call of 2B ([`Prior::eps_cfg`]); fixed-ε mode adds
//! one unconditional call at `z_t` (3 U-Net evaluations per sample instead of 2).
//! `∅` is whatever [`GuidanceInput::uncond`] holds, i.e. the run's negative prompt: \[S2\]'s
//! `ε_∅` and `ẑ_t` are *unconditional* (empty prompt), so set `negative_prompt = ""` (as
//! `configs/lmc.toml` does; b̂ψ is trained against the empty prompt too).
//!
//! # The blur model b̂ψ ([`BlurNet`], methods.md §3.2)
//!
//! A plain U-Net in SD **latent** space (\[REC\], §6.3 item 7: \[S2\] used a 128² pixel model that
//! is not public): input `[B, 4 + 10, h, w]` = the scaled latent and the 10-channel frequency
//! encoding of t ([`time_encoding`]) broadcast to every pixel; `levels` encoder levels of
//! two Conv3×3+ReLU then MaxPool2 with widths `base_width·2^i`; a bottleneck of two Conv3×3+ReLU
//! at `2·base_width·2^(levels−1)`; decoder levels of nearest ×2 upsampling, concatenation with
//! the skip and two Conv3×3+ReLU halving the width; a final Conv1×1 to 4 channels. Defaults
//! (levels 4, base width 32 → 32-64-128-256, bottleneck 512) follow \[S2\] plus §6.3 item 8.
//! **No tanh** on the output (\[REC\]): \[S2\]'s images were bounded in [−1, 1], SD latents are
//! not (scaled latents reach |z| ≈ 4–5), and the renormalisation below makes the loss invariant
//! to the output's per-channel contrast anyway.
//!
//! It is **pre-trained once and frozen** ([`BlurTrainer`], `splatdream lmc-train`) on triplets
//! `(z, ẑ_t, t)`: `z` the scaled VAE latents of natural images, `t ~ U{20, …, 980}`
//! (\[S2\]: U(0.02, 0.98)), fresh `ε`, `ẑ_t` the frozen U-Net's **unconditional** x₀ prediction
//! (empty-prompt embedding), with the normalised loss `L_k = mean‖ẑ_t − b̃‖²` ([`blur_loss`]),
//! Adam at lr 1e-4 decayed ×0.9 every 100K steps (\[S2\]). b̂ψ mimics *one* diffusion model's blur:
//! retrain it for another model. The file records the model it was trained for.
//!
//! # Choices that are ours (\[REC\])
//! - latent space, 4 + 10 input channels, no tanh (above);
//! - μ/σ per image and per channel, σ the **biased** (population) standard deviation, with
//!   [`VAR_EPS`] added to the variance so a constant `b` cannot divide by zero;
//! - ẑ_t unconditional (it comes from `L_proj`); the same t for both terms in fixed-ε mode;
//! - ε_fix is one `[1, 4, h, w]` draw shared by every sample of a batch, from
//!   `guidance.lmc.fixed_eps_seed`, kept in [`Guidance::state`] so a resumed run continues with
//!   the same ε_fix;
//! - the blur-net training batch defaults to 8 (paper: 128) because every sample costs one U-Net
//!   forward; inputs whose sides are not multiples of `2^levels` are zero-padded at the
//!   bottom/right and the output cropped back (the time channels are padded with zeros too).
//!
//! # The file format
//! safetensors, every float parameter as F32 under its module path with the prefix `blur.`
//! (e.g. `blur.enc.0.conv1.weight`), and string metadata `splatdream.lmc.<field>` for every
//! field of [`BlurMeta`] (format tag, levels, base width, model, steps, …). [`BlurNet::load`] rejects a
//! missing, unexpected, mis-shaped or non-F32 tensor and missing or bad metadata with an error
//! naming the file and the tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use sd::nn::upsample_nearest2x;
use sd::pipeline::gaussian;

use crate::state::{Entry, load_module_state, module_state};
use crate::{DistillError, Guidance, GuidanceInput, GuidanceOutput, Prior, Stat, check_input};

/// Latent channels of SD 2.x (input and output of b̂ψ besides the time encoding).
pub const LATENT_CHANNELS: usize = 4;
/// Sin/cos pairs of the timestep encoding (\[S2\]: a 10-dimensional encoding).
pub const TIME_FREQUENCIES: usize = 5;
/// Channels of the timestep encoding (`2 ·` [`TIME_FREQUENCIES`]).
pub const TIME_CHANNELS: usize = 2 * TIME_FREQUENCIES;
/// The timestep scale: the encoding sees `τ = t / 1000` (SD's 1000 training timesteps), so
/// `τ ∈ [0, 1)`, matching \[S2\]'s continuous `t ∈ [0, 1]`.
pub const TIME_SCALE: f64 = 1000.0;
/// The most encoder levels [`BlurNetConfig::levels`] accepts.
pub const MAX_LEVELS: usize = 6;
/// Added to the per-channel variances in [`renormalise`] (guards a constant `b`).
pub const VAR_EPS: f64 = 1e-12;
/// The prefix of a blur-model file's safetensors metadata keys (`splatdream.lmc.levels`, …).
pub const META_KEY: &str = "splatdream.lmc";
/// The format tag in [`BlurMeta::format`].
pub const FORMAT: &str = "splatdream-lmc-blur-v1";
/// The tensor-name prefix in a blur-model file.
const PREFIX: &str = "blur";

/// The 10-channel timestep encoding of \[S2\] ("t as a 10-dimensional frequency encoding"):
/// with `τ = t / 1000`, channel `2k` is `sin(2^k·π·τ)` and channel `2k + 1` is
/// `cos(2^k·π·τ)`, for `k = 0, …, 4` (frequencies π, 2π, 4π, 8π, 16π). The lowest
/// frequency's cosine alone is one-to-one on `τ ∈ [0, 1]`; the higher ones resolve detail.
pub fn time_encoding(t: usize) -> [f32; TIME_CHANNELS] {
    let tau = t as f64 / TIME_SCALE;
    std::array::from_fn(|c| {
        let a = (1u32 << (c / 2)) as f64 * std::f64::consts::PI * tau;
        (if c % 2 == 0 { a.sin() } else { a.cos() }) as f32
    })
}

/// Shape of b̂ψ (`[guidance.lmc]` does not set it: it comes from the model file's metadata).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlurNetConfig {
    /// Encoder levels L (1..=[`MAX_LEVELS`]; \[S2\]: 4). Sides that are not multiples of `2^L`
    /// are zero-padded inside the network.
    pub levels: usize,
    /// Width of the first level (\[S2\]: 32); level i has `base_width·2^i`, the bottleneck twice
    /// the last level's.
    pub base_width: usize,
}

impl Default for BlurNetConfig {
    fn default() -> Self {
        Self {
            levels: 4,
            base_width: 32,
        }
    }
}

impl BlurNetConfig {
    /// Check the ranges.
    ///
    /// # Errors
    /// A message naming `levels` or `base_width`.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_LEVELS).contains(&self.levels) {
            return Err(format!(
                "levels = {} is outside 1..={MAX_LEVELS}",
                self.levels
            ));
        }
        if !(1..=4096).contains(&self.base_width) {
            return Err(format!(
                "base_width = {} is outside 1..=4096",
                self.base_width
            ));
        }
        Ok(())
    }

    /// Width of encoder level `i` (`base_width·2^i`).
    pub fn width(&self, i: usize) -> usize {
        self.base_width << i
    }
}

/// 3×3 convolution `cin → cout` with bias and "same" zero padding.
fn conv3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// Two Conv3×3 + ReLU.
#[derive(Module, Debug)]
pub struct DoubleConv {
    /// `cin → cout`.
    pub conv1: Conv2d,
    /// `cout → cout`.
    pub conv2: Conv2d,
}

impl DoubleConv {
    /// New block `cin → cout`.
    pub fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            conv1: conv3(cin, cout, device),
            conv2: conv3(cout, cout, device),
        }
    }

    /// `[B, cin, H, W] → [B, cout, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.conv2.forward(relu(self.conv1.forward(x))))
    }
}

/// b̂ψ(z, t), the learned model of the diffusion model's time-dependent blur (module docs):
/// `z [B, 4, h, w]` (scaled latents) and per-sample `t` → `[B, 4, h, w]`.
///
/// Parameters are initialised with burn-nn's defaults (PyTorch's: Kaiming-uniform with
/// a = √5, biases U(±1/√fan_in)); seed the device first for reproducible weights.
#[derive(Module, Debug)]
pub struct BlurNet {
    /// Encoder levels, outermost first: level i maps `in → base_width·2^i` (in = 4 + 10 at 0).
    pub enc: Vec<DoubleConv>,
    /// 2×2 max pooling, stride 2, after each encoder level.
    pub pool: MaxPool2d,
    /// Bottleneck `base_width·2^(L−1) → base_width·2^L`.
    pub mid: DoubleConv,
    /// Decoder levels, innermost first: level i maps `2·w_i + w_i → w_i` (upsampled input
    /// concatenated with the skip), `w_i = base_width·2^i`.
    pub dec: Vec<DoubleConv>,
    /// 1×1 head `base_width → 4`, linear (no tanh).
    pub head: Conv2d,
}

impl BlurNet {
    /// A freshly initialised network on `device` (its autodiff side to train it).
    ///
    /// # Errors
    /// The message of [`BlurNetConfig::validate`].
    pub fn new(config: &BlurNetConfig, device: &Device) -> Result<Self, String> {
        config.validate()?;
        let l = config.levels;
        let enc = (0..l)
            .map(|i| {
                let cin = if i == 0 {
                    LATENT_CHANNELS + TIME_CHANNELS
                } else {
                    config.width(i - 1)
                };
                DoubleConv::new(cin, config.width(i), device)
            })
            .collect();
        let dec = (0..l)
            .rev()
            .map(|i| DoubleConv::new(3 * config.width(i), config.width(i), device))
            .collect();
        Ok(Self {
            enc,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            mid: DoubleConv::new(config.width(l - 1), config.width(l), device),
            dec,
            head: Conv2dConfig::new([config.base_width, LATENT_CHANNELS], [1, 1]).init(device),
        })
    }

    /// A network initialised from `seed` by a host RNG, so the same seed gives the same
    /// weights on every device and whatever else uses the device RNG: every weight and bias of
    /// a convolution with fan-in `n` is drawn from U(−1/√n, 1/√n), which is PyTorch's default
    /// for `Conv2d` (Kaiming-uniform with a = √5 for the weight, the same bound for the bias).
    ///
    /// # Errors
    /// The message of [`BlurNetConfig::validate`].
    pub fn seeded(config: &BlurNetConfig, seed: u64, device: &Device) -> Result<Self, String> {
        let mut net = Self::new(config, device)?;
        let mut k = 0u64;
        let mut init = |c: &mut Conv2d| {
            let [o, i, kh, kw] = c.weight.dims();
            let bound = 1.0 / ((i * kh * kw) as f64).sqrt();
            c.weight =
                Param::from_tensor(host_uniform([o, i, kh, kw], bound, mix(seed, k, 5), device));
            c.bias = Some(Param::from_tensor(host_uniform(
                [o],
                bound,
                mix(seed, k, 6),
                device,
            )));
            k += 1;
        };
        for blk in net
            .enc
            .iter_mut()
            .chain(std::iter::once(&mut net.mid))
            .chain(net.dec.iter_mut())
        {
            init(&mut blk.conv1);
            init(&mut blk.conv2);
        }
        init(&mut net.head);
        Ok(net)
    }

    /// The shape settings (read from the layers).
    pub fn config(&self) -> BlurNetConfig {
        BlurNetConfig {
            levels: self.enc.len(),
            base_width: self.head.weight.dims()[1],
        }
    }

    /// `z [B, 4, h, w]` with per-sample integer timesteps `t` (length B, or 1 for all) →
    /// `[B, 4, h, w]`. Works on plain tensors (frozen use) and on autodiff ones (training; the
    /// network must then live on the autodiff device). Sides that are not multiples of
    /// `2^levels` are zero-padded at the bottom/right and the output is cropped back.
    ///
    /// # Panics
    /// When `z` does not have 4 channels or `t` has neither B entries nor 1.
    pub fn forward(&self, z: Tensor<4>, t: &[usize]) -> Tensor<4> {
        let [b, c, h, w] = z.dims();
        assert_eq!(
            c, LATENT_CHANNELS,
            "b̂ψ takes {LATENT_CHANNELS}-channel latents"
        );
        assert!(
            t.len() == b || t.len() == 1,
            "{} timesteps for a batch of {b}",
            t.len()
        );
        let device = z.device();
        let enc: Vec<f32> = (0..b)
            .flat_map(|i| time_encoding(t[if t.len() == 1 { 0 } else { i }]))
            .collect();
        let te = Tensor::<4>::from_data(TensorData::new(enc, [b, TIME_CHANNELS, 1, 1]), &device)
            .expand([b, TIME_CHANNELS, h, w]);
        let x = Tensor::cat(vec![z, te], 1);
        let m = 1usize << self.enc.len();
        let (hp, wp) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
        let cin = LATENT_CHANNELS + TIME_CHANNELS;
        let mut x = if (hp, wp) != (h, w) {
            Tensor::zeros([b, cin, hp, wp], &device).slice_assign([0..b, 0..cin, 0..h, 0..w], x)
        } else {
            x
        };
        let mut skips = Vec::with_capacity(self.enc.len());
        for e in &self.enc {
            let s = e.forward(x);
            x = self.pool.forward(s.clone());
            skips.push(s);
        }
        x = self.mid.forward(x);
        for d in &self.dec {
            let skip = skips.pop().expect("one skip per level");
            x = d.forward(Tensor::cat(vec![upsample_nearest2x(x), skip], 1));
        }
        let y = self.head.forward(x);
        if (hp, wp) != (h, w) {
            y.slice([0..b, 0..LATENT_CHANNELS, 0..h, 0..w])
        } else {
            y
        }
    }

    /// Number of parameters (weights and biases).
    pub fn num_parameters(&self) -> usize {
        self.num_params()
    }

    /// The file's bytes: safetensors with every parameter as F32 under `blur.<path>` and
    /// `meta` (whose `levels`/`base_width` are overwritten with the network's) as
    /// `splatdream.lmc.*` metadata ([`BlurMeta::to_map`]). Reads the weights back from the device.
    ///
    /// # Errors
    /// [`DistillError::Input`] if serialisation fails.
    pub fn to_safetensors(&self, meta: &BlurMeta) -> Result<Vec<u8>, DistillError> {
        let cfg = self.config();
        let meta = BlurMeta {
            format: FORMAT.into(),
            levels: cfg.levels,
            base_width: cfg.base_width,
            ..meta.clone()
        };
        let entries = module_state(PREFIX, self);
        let bytes: Vec<Vec<u8>> = entries
            .iter()
            .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let views = entries
            .iter()
            .zip(&bytes)
            .map(|((n, s, _), b)| {
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| DistillError::Input(format!("tensor `{n}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::tensor::serialize(views, Some(meta.to_map()))
            .map_err(|e| DistillError::Input(format!("serialising the blur model: {e}")))
    }

    /// Write [`BlurNet::to_safetensors`] to `path` atomically (a temporary file in the same
    /// folder, then a rename).
    ///
    /// # Errors
    /// [`DistillError::File`] naming `path`.
    pub fn save(&self, path: &Path, meta: &BlurMeta) -> Result<(), DistillError> {
        let bytes = self.to_safetensors(meta)?;
        let fail = |detail: String| DistillError::File {
            path: path.to_path_buf(),
            detail,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| fail("not a file name".into()))?;
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        if let Err(e) = std::fs::write(&tmp, &bytes) {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(format!("writing: {e}")));
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(format!("renaming the temporary file: {e}"))
        })
    }

    /// Read a blur model written by [`BlurNet::save`] onto `device` (plain, frozen use).
    /// Returns the network and its metadata.
    ///
    /// # Errors
    /// [`DistillError::File`] naming `path` when it cannot be read, is not safetensors, lacks
    /// the `splatdream.lmc.*` metadata or has bad values in it, or has a missing, unexpected,
    /// mis-shaped or non-F32 tensor (named).
    pub fn load(path: &Path, device: &Device) -> Result<(Self, BlurMeta), DistillError> {
        let bad = |detail: String| DistillError::File {
            path: path.to_path_buf(),
            detail,
        };
        let data = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&data)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let map = header.metadata().clone().unwrap_or_default();
        if !map.keys().any(|k| k.starts_with(META_KEY)) {
            return Err(bad(format!(
                "no `{META_KEY}.*` metadata: not an LMC blur model (write one with `splatdream lmc-train`)"
            )));
        }
        let meta = BlurMeta::from_map(&map).map_err(bad)?;
        let cfg = meta.config();
        let net = Self::new(&cfg, device).map_err(|e| bad(format!("metadata: {e}")))?;
        let st = SafeTensors::deserialize(&data).map_err(|e| bad(e.to_string()))?;
        let want: BTreeMap<String, Vec<usize>> = module_state(PREFIX, &net)
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect();
        let mut entries: Vec<Entry> = Vec::with_capacity(want.len());
        for (name, view) in st.tensors() {
            let Some(shape) = want.get(&name) else {
                return Err(bad(format!(
                    "unexpected tensor `{name}` for a network of levels {}, base width {}",
                    cfg.levels, cfg.base_width
                )));
            };
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!(
                    "tensor `{name}` is {:?}, expected F32",
                    view.dtype()
                )));
            }
            if view.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "tensor `{name}` has shape {:?}; levels {}, base width {} (the metadata) need {shape:?}",
                    view.shape(),
                    cfg.levels,
                    cfg.base_width
                )));
            }
            let v: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "tensor `{name}` has a non-finite value at {i}"
                )));
            }
            entries.push((name, shape.clone(), v));
        }
        if let Some((name, shape)) = want
            .iter()
            .find(|(n, _)| !entries.iter().any(|(e, _, _)| e == *n))
        {
            return Err(bad(format!("missing tensor `{name}` (shape {shape:?})")));
        }
        let what = path.display().to_string();
        let net =
            load_module_state(PREFIX, &what, net, &entries).map_err(|e| bad(e.to_string()))?;
        Ok((net, meta))
    }
}

/// What a blur-model file records besides the weights: string entries of the safetensors
/// metadata, each under `splatdream.lmc.<field>` (e.g. `splatdream.lmc.levels = "4"`).
#[derive(Clone, Debug, PartialEq)]
pub struct BlurMeta {
    /// [`FORMAT`].
    pub format: String,
    /// [`BlurNetConfig::levels`].
    pub levels: usize,
    /// [`BlurNetConfig::base_width`].
    pub base_width: usize,
    /// The diffusion model b̂ψ was trained for (as given to `lmc-train --model`).
    pub model: String,
    /// Training steps done.
    pub steps: u64,
    /// Training image side in pixels (0 when unknown; optional in the file).
    pub resolution: usize,
    /// Training batch size (0 when unknown; optional in the file).
    pub batch: usize,
    /// Mean `L_k` over the last logged steps (optional in the file).
    pub loss: Option<f64>,
}

impl BlurMeta {
    /// Metadata for a network of `config` trained for `model` over `steps` steps.
    pub fn new(config: &BlurNetConfig, model: &str, steps: u64) -> Self {
        Self {
            format: FORMAT.into(),
            levels: config.levels,
            base_width: config.base_width,
            model: model.to_string(),
            steps,
            resolution: 0,
            batch: 0,
            loss: None,
        }
    }

    /// The network shape it records.
    pub fn config(&self) -> BlurNetConfig {
        BlurNetConfig {
            levels: self.levels,
            base_width: self.base_width,
        }
    }

    /// As safetensors metadata entries.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(format!("{META_KEY}.{k}"), v);
        };
        put("format", self.format.clone());
        put("levels", self.levels.to_string());
        put("base_width", self.base_width.to_string());
        put("model", self.model.clone());
        put("steps", self.steps.to_string());
        put("resolution", self.resolution.to_string());
        put("batch", self.batch.to_string());
        if let Some(l) = self.loss {
            put("loss", l.to_string());
        }
        m
    }

    /// From safetensors metadata entries.
    ///
    /// # Errors
    /// A message naming the missing or unparsable key.
    pub fn from_map(m: &HashMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| m.get(&format!("{META_KEY}.{k}"));
        let need =
            |k: &str| get(k).ok_or_else(|| format!("metadata key `{META_KEY}.{k}` is missing"));
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("metadata key `{META_KEY}.{k}` = {v:?} is not a number"))
        }
        let format = need("format")?.clone();
        if format != FORMAT {
            return Err(format!(
                "metadata key `{META_KEY}.format` = {format:?}, expected {FORMAT:?}"
            ));
        }
        Ok(Self {
            format,
            levels: num("levels", need("levels")?)?,
            base_width: num("base_width", need("base_width")?)?,
            model: need("model")?.clone(),
            steps: num("steps", need("steps")?)?,
            resolution: get("resolution").map_or(Ok(0), |v| num("resolution", v))?,
            batch: get("batch").map_or(Ok(0), |v| num("batch", v))?,
            loss: get("loss").map(|v| num("loss", v)).transpose()?,
        })
    }
}

/// Per image and channel mean and (biased) standard deviation of `x [B, C, h, w]`, each
/// `[B, C, 1, 1]`; [`VAR_EPS`] is added to the variance.
fn channel_stats(x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [b, c, h, w] = x.dims();
    let (var, mean) = x.reshape([b, c, h * w]).var_mean_bias(2);
    (
        mean.reshape([b, c, 1, 1]),
        (var + VAR_EPS).sqrt().reshape([b, c, 1, 1]),
    )
}

/// \[S2\]'s renormalisation (methods.md §3.1, Eq. 10): `b̃ = σ(r)/σ(b)·(b − μ(b)) + μ(b)` with
/// μ, σ the mean and biased standard deviation per image and channel (σ² + [`VAR_EPS`]),
/// i.e. `b` rescaled to the contrast of `reference` (ẑ_t) around its own mean. Shapes
/// `[B, C, h, w]`, equal. Differentiable in `b` (and `reference`).
pub fn renormalise(b: Tensor<4>, reference: Tensor<4>) -> Tensor<4> {
    let (mu_b, sd_b) = channel_stats(b.clone());
    let (_, sd_r) = channel_stats(reference);
    (b - mu_b.clone()) * (sd_r / sd_b) + mu_b
}

/// The blur model's training loss (methods.md §3.2): `L_k = mean‖ẑ_t − b̃‖²` with
/// `b̃ = renormalise(b, ẑ_t)`, the mean over all elements. `z_hat` is treated as a constant.
/// Returns `[1]`.
pub fn blur_loss(b: Tensor<4>, z_hat: Tensor<4>) -> Tensor<1> {
    let z_hat = z_hat.detach();
    let bt = renormalise(b, z_hat.clone());
    (z_hat - bt).square().mean().reshape([1])
}

/// The frozen U-Net's unconditional ε-prediction at `z_t` (one U-Net call of B; v converted
/// to ε). `uncond [B, 77, D]` or `[1, 77, D]` (repeated). Plain tensors.
pub fn eps_uncond(prior: &Prior<'_>, z_t: Tensor<4>, t: &[usize], uncond: Tensor<3>) -> Tensor<4> {
    let b = z_t.dims()[0];
    let z_t = z_t.detach();
    let uncond = if uncond.dims()[0] == 1 && b > 1 {
        uncond.repeat_dim(0, b)
    } else {
        uncond
    };
    let tf: Vec<f64> = t.iter().map(|&x| x as f64).collect();
    let out = prior.unet.forward(z_t.clone(), &tf, uncond).detach();
    prior.schedule.to_epsilon(out, z_t, t)
}

/// `shape` values uniform in `[−bound, bound)` from a seeded host RNG (splitmix64).
fn host_uniform<const D: usize>(
    shape: [usize; D],
    bound: f64,
    seed: u64,
    device: &Device,
) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut state = seed;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let u = (mix(state, 0, 0) >> 11) as f64 / (1u64 << 53) as f64;
            ((2.0 * u - 1.0) * bound) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// splitmix64 of `(seed, step, stream)`: independent seeds per step and purpose.
fn mix(seed: u64, step: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(step.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Settings of [`BlurTrainer`] (the `lmc-train` options). Defaults: \[S2\] except `batch`.
#[derive(Clone, Debug, PartialEq)]
pub struct BlurTrainerConfig {
    /// Adam learning rate (\[S2\]: 1e-4).
    pub lr: f64,
    /// Staircase decay factor (\[S2\]: 0.9) …
    pub lr_decay: f64,
    /// … applied every this many steps (\[S2\]: 100,000; 0 = no decay).
    pub lr_decay_every: u64,
    /// Triplets per step (\[S2\]: 128; default 8 \[REC\]: each costs one U-Net forward).
    pub batch: usize,
    /// Lowest t (inclusive; \[S2\]: 0.02 → 20).
    pub t_min: usize,
    /// Highest t (inclusive; \[S2\]: 0.98 → 980).
    pub t_max: usize,
    /// Seed of the initial weights, the batch/t draws and the noise.
    pub seed: u64,
}

impl Default for BlurTrainerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            lr_decay: 0.9,
            lr_decay_every: 100_000,
            batch: 8,
            t_min: 20,
            t_max: 980,
            seed: 0,
        }
    }
}

impl BlurTrainerConfig {
    /// Check the ranges against a schedule of `num_train_timesteps`.
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the field (`lr`, `lr_decay`, `batch`, `t_min`/`t_max`).
    pub fn validate(&self, num_train_timesteps: usize) -> Result<(), DistillError> {
        let bad = |name: &str, detail: String| DistillError::Setting {
            name: name.into(),
            detail,
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", format!("{} is not a positive number", self.lr)));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0) {
            return Err(bad(
                "lr_decay",
                format!("{} is not a positive number", self.lr_decay),
            ));
        }
        if self.batch == 0 {
            return Err(bad("batch", "must be at least 1".into()));
        }
        if self.t_min > self.t_max || self.t_max >= num_train_timesteps {
            return Err(bad(
                "t_min/t_max",
                format!(
                    "[{}, {}] is not a range inside 0..{num_train_timesteps}",
                    self.t_min, self.t_max
                ),
            ));
        }
        Ok(())
    }

    /// The learning rate of step `k` (0-based): `lr · lr_decay^⌊k / lr_decay_every⌋`.
    pub fn lr_at(&self, k: u64) -> f64 {
        if self.lr_decay_every == 0 {
            return self.lr;
        }
        self.lr
            * self
                .lr_decay
                .powi((k / self.lr_decay_every).min(i32::MAX as u64) as i32)
    }
}

/// One training batch of triplets (plain tensors).
#[derive(Clone, Debug)]
pub struct Triplets {
    /// `z [B, 4, h, w]`, clean scaled latents.
    pub z: Tensor<4>,
    /// `ẑ_t [B, 4, h, w]`, the unconditional x₀ prediction at `z_t = α_t z + σ_t ε`.
    pub z_hat: Tensor<4>,
    /// Per-sample t.
    pub t: Vec<usize>,
}

/// The pre-training loop of b̂ψ (methods.md §3.2): per step, draw `batch` latents uniformly
/// (with replacement) from the data set, `t ~ U{t_min, …, t_max}` and fresh `ε`, form
/// `ẑ_t = (z_t − σ_t ε̂_φ(z_t; ∅, t))/α_t` with the frozen U-Net (no gradient), and take one
/// Adam step on `L_k` ([`blur_loss`]). Deterministic for a seed on one device: the initial
/// weights ([`BlurNet::seeded`]) and all draws come from host RNGs.
pub struct BlurTrainer {
    /// Settings.
    pub config: BlurTrainerConfig,
    /// b̂ψ on the autodiff side of the device.
    net: BlurNet,
    /// Adam (β = (0.9, 0.999), ε = 1e-8).
    optim: ModuleOptimizer,
    /// Batch and timestep draws.
    rng: StdRng,
    /// Steps done.
    steps: u64,
}

impl std::fmt::Debug for BlurTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlurTrainer")
            .field("config", &self.config)
            .field("net", &self.net.config())
            .field("steps", &self.steps)
            .finish()
    }
}

impl BlurTrainer {
    /// A trainer with a fresh b̂ψ of `net` ([`BlurNet::seeded`] from `config.seed`) on the
    /// autodiff side of `device`.
    ///
    /// # Errors
    /// [`DistillError::Setting`] for a bad network shape or training setting.
    pub fn new(
        net: &BlurNetConfig,
        config: BlurTrainerConfig,
        device: &Device,
    ) -> Result<Self, DistillError> {
        config.validate(usize::MAX)?;
        let dev = device.clone().autodiff();
        let net = BlurNet::seeded(net, mix(config.seed, 0, 1), &dev).map_err(|detail| {
            DistillError::Setting {
                name: "blur network".into(),
                detail,
            }
        })?;
        let optim = AdamConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .init();
        let rng = StdRng::seed_from_u64(mix(config.seed, 0, 2));
        Ok(Self {
            config,
            net,
            optim,
            rng,
            steps: 0,
        })
    }

    /// Steps done.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The current network as a plain (non-autodiff) module, for evaluation and saving.
    pub fn net(&self) -> BlurNet {
        self.net.valid()
    }

    /// Draw the next step's triplets from `data [N, 4, h, w]` (scaled latents) with the
    /// unconditional embedding `uncond [1, 77, D]` (one U-Net call of `batch`). Advances the
    /// trainer's random streams (not the step count).
    ///
    /// # Errors
    /// [`DistillError::Input`] for empty data, wrong channel count, or a bad `t` range for the
    /// prior's schedule.
    pub fn sample(
        &mut self,
        prior: &Prior<'_>,
        data: &Tensor<4>,
        uncond: &Tensor<3>,
    ) -> Result<Triplets, DistillError> {
        let [n, c, h, w] = data.dims();
        if n == 0 || c != LATENT_CHANNELS {
            return Err(DistillError::Input(format!(
                "training latents have shape {:?}; expected [N ≥ 1, {LATENT_CHANNELS}, h, w]",
                data.dims()
            )));
        }
        if uncond.dims()[0] != 1 {
            return Err(DistillError::Input(format!(
                "the unconditional embedding has batch {}, expected 1",
                uncond.dims()[0]
            )));
        }
        self.config.validate(prior.schedule.num_train_timesteps())?;
        let b = self.config.batch;
        let idx: Vec<i32> = (0..b).map(|_| self.rng.random_range(0..n) as i32).collect();
        let t: Vec<usize> = (0..b)
            .map(|_| self.rng.random_range(self.config.t_min..=self.config.t_max))
            .collect();
        let device = data.device();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &device);
        let z = data.clone().detach().select(0, idx);
        let eps = gaussian([b, c, h, w], mix(self.config.seed, self.steps, 3), &device);
        let z_t = prior.schedule.add_noise(z.clone(), eps, &t);
        let e = eps_uncond(prior, z_t.clone(), &t, uncond.clone());
        let z_hat = prior.schedule.eps_to_x0(e, z_t, &t).detach();
        Ok(Triplets { z, z_hat, t })
    }

    /// One Adam step on `L_k` for `triplets`, at the learning rate of the current step.
    /// Returns `L_k` before the step as a `[1]` device tensor (not read back).
    pub fn train_on(&mut self, triplets: &Triplets) -> Tensor<1> {
        let z = triplets.z.clone().detach().inner().autodiff();
        let b = self.net.forward(z, &triplets.t);
        let loss = blur_loss(b, triplets.z_hat.clone().inner().autodiff());
        let grads = loss.backward();
        let value = loss.detach().inner();
        let grads = GradientsParams::from_grads(grads, &self.net);
        let lr = self.config.lr_at(self.steps);
        self.net = self.optim.step(lr, self.net.clone(), grads);
        self.steps += 1;
        value
    }

    /// [`BlurTrainer::sample`] then [`BlurTrainer::train_on`]: one training step.
    ///
    /// # Errors
    /// See [`BlurTrainer::sample`].
    pub fn step(
        &mut self,
        prior: &Prior<'_>,
        data: &Tensor<4>,
        uncond: &Tensor<3>,
    ) -> Result<Tensor<1>, DistillError> {
        let tr = self.sample(prior, data, uncond)?;
        Ok(self.train_on(&tr))
    }
}

/// Settings of [`Lmc`] (`[guidance.lmc]` in the generate config). Defaults follow
/// methods.md §3 and §6.3 item 8 (3D: ω = 20, w(t) = 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmcConfig {
    /// The pre-trained b̂ψ (`splatdream lmc-train --out …`); required by [`Lmc::new`].
    pub blur_model: Option<PathBuf>,
    /// ω, the CFG scale of `L_cond` (form A; \[S2\] 3D comparisons: 20, "often" 10). The total
    /// is scaled by 1/ω (\[S2\]).
    pub cfg_scale: f64,
    /// Fixed-ε diversity option (\[S2\]): `L_cond` uses one ε_fix per run, `L_lmc` fresh ε.
    pub fixed_eps: bool,
    /// Seed of ε_fix (\[REC\]; ε_fix is then kept in the checkpoint state).
    pub fixed_eps_seed: u64,
    /// Overall multiplier of the gradient (1).
    pub scale: f64,
}

impl Default for LmcConfig {
    fn default() -> Self {
        Self {
            blur_model: None,
            cfg_scale: 20.0,
            fixed_eps: false,
            fixed_eps_seed: 0,
            scale: 1.0,
        }
    }
}

impl LmcConfig {
    /// Check the numeric settings (the blur model is checked by [`Lmc::new`]).
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the `guidance.lmc.*` setting.
    pub fn validate(&self) -> Result<(), DistillError> {
        if !(self.cfg_scale.is_finite() && self.cfg_scale > 0.0) {
            return Err(DistillError::Setting {
                name: "guidance.lmc.cfg_scale".into(),
                detail: format!(
                    "{} is not a positive number (the gradient is scaled by 1/ω)",
                    self.cfg_scale
                ),
            });
        }
        if !self.scale.is_finite() {
            return Err(DistillError::Setting {
                name: "guidance.lmc.scale".into(),
                detail: format!("{} is not finite", self.scale),
            });
        }
        Ok(())
    }
}

/// LMC-SDS guidance (module docs): `g = scale·(1/ω)[ω(ε_y − ε_∅) + (b̃ − ẑ_t)]` with a frozen,
/// pre-trained b̂ψ.
pub struct Lmc {
    /// Settings.
    pub config: LmcConfig,
    /// b̂ψ, frozen, on the plain device.
    blur: BlurNet,
    /// The blur model file's metadata.
    meta: BlurMeta,
    /// ε_fix `[1, 4, h, w]` once drawn (fixed-ε mode) or restored from a checkpoint.
    eps_fix: Option<Tensor<4>>,
}

impl std::fmt::Debug for Lmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lmc")
            .field("config", &self.config)
            .field("blur", &self.meta)
            .field("eps_fix", &self.eps_fix.as_ref().map(|e| e.dims()))
            .finish()
    }
}

/// The name of ε_fix in [`Guidance::state`].
pub const EPS_FIX_STATE: &str = "lmc.eps_fix";

impl Lmc {
    /// Load b̂ψ from `config.blur_model` onto `device` (plain side; frozen).
    ///
    /// # Errors
    /// [`DistillError::Setting`] `guidance.lmc.blur_model` when it is unset or the file cannot
    /// be loaded (the message names the file and the cause); other settings from
    /// [`LmcConfig::validate`].
    pub fn new(config: LmcConfig, device: &Device) -> Result<Self, DistillError> {
        config.validate()?;
        let setting = |detail: String| DistillError::Setting {
            name: "guidance.lmc.blur_model".into(),
            detail,
        };
        let path = config.blur_model.clone().ok_or_else(|| {
            setting(
                "not set: LMC-SDS needs a pre-trained blur model b̂ψ; train one with \
                 `splatdream lmc-train --model … --images … --out blur.safetensors` and pass \
                 `--set guidance.lmc.blur_model=\"blur.safetensors\"`"
                    .into(),
            )
        })?;
        let (blur, meta) =
            BlurNet::load(&path, &device.clone().inner()).map_err(|e| setting(e.to_string()))?;
        tracing::info!(
            "LMC blur model {}: levels {}, base width {}, trained for `{}` over {} steps",
            path.display(),
            meta.levels,
            meta.base_width,
            meta.model,
            meta.steps
        );
        Ok(Self::with_net(config, blur, meta))
    }

    /// An LMC guidance around an already loaded b̂ψ (plain tensors; tests and tools).
    pub fn with_net(config: LmcConfig, blur: BlurNet, meta: BlurMeta) -> Self {
        Self {
            config,
            blur,
            meta,
            eps_fix: None,
        }
    }

    /// The frozen b̂ψ.
    pub fn blur_net(&self) -> &BlurNet {
        &self.blur
    }

    /// The blur model file's metadata.
    pub fn meta(&self) -> &BlurMeta {
        &self.meta
    }

    /// ε_fix `[1, 4, h, w]` for latents `like [B, 4, h, w]`: the restored or earlier draw, or a
    /// new one from `fixed_eps_seed`.
    ///
    /// # Errors
    /// [`DistillError::Input`] when a restored ε_fix does not match the latents' shape.
    pub fn eps_fix(&mut self, like: &Tensor<4>) -> Result<Tensor<4>, DistillError> {
        let [_, c, h, w] = like.dims();
        if let Some(e) = &self.eps_fix {
            if e.dims() != [1, c, h, w] {
                return Err(DistillError::Input(format!(
                    "ε_fix has shape {:?}, the latents need [1, {c}, {h}, {w}] (resolution changed since the checkpoint?)",
                    e.dims()
                )));
            }
            return Ok(e.clone());
        }
        let e = gaussian(
            [1, c, h, w],
            mix(self.config.fixed_eps_seed, 0, 4),
            &like.device(),
        );
        self.eps_fix = Some(e.clone());
        Ok(e)
    }
}

/// Root mean square of `x` as a `[1]` tensor.
fn rms(x: Tensor<4>) -> Tensor<1> {
    x.square().mean().sqrt().reshape([1])
}

impl Guidance for Lmc {
    fn name(&self) -> &'static str {
        "lmc"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.cfg_scale
    }

    /// The LMC-SDS gradient (module docs). Stats (device): `cond_rms` = rms of
    /// `ω(ε_y − ε_∅)`, `lmc_rms` = rms of `b̃ − ẑ_t` (the two summands before the 1/ω).
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        check_input(input)?;
        let omega = self.config.cfg_scale;
        let t = &input.timesteps;
        let z = input.latents.clone().detach().inner();
        let b = z.dims()[0];
        let z_t = input.noisy(prior.schedule).inner();
        let zc_t = if self.config.fixed_eps {
            let e = self.eps_fix(&z)?.expand(z.dims());
            prior.schedule.add_noise(z.clone(), e, t)
        } else {
            z_t.clone()
        };
        let (_, e_y, e_u) = prior.eps_cfg(zc_t, t, input.cond.clone(), input.uncond.clone(), omega);
        let e_u_zt = if self.config.fixed_eps {
            eps_uncond(prior, z_t.clone(), t, input.uncond.clone())
        } else {
            e_u.clone()
        };
        let z_hat = prior.schedule.eps_to_x0(e_u_zt, z_t, t);
        let blur = self.blur.forward(z, t).detach();
        let bt = renormalise(blur, z_hat.clone());
        let cond = (e_y - e_u) * omega;
        let lmc = bt - z_hat;
        debug_assert_eq!(cond.dims()[0], b);
        let grad = (cond.clone() + lmc.clone()) * (self.config.scale / omega);
        Ok(GuidanceOutput {
            grad,
            stats: vec![
                ("cond_rms", Stat::Device(rms(cond))),
                ("lmc_rms", Stat::Device(rms(lmc))),
            ],
        })
    }

    /// ε_fix (`lmc.eps_fix`, `[1, 4, h, w]`) once drawn; nothing otherwise (b̂ψ is frozen and
    /// lives in its own file).
    fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let Some(e) = &self.eps_fix else {
            return vec![];
        };
        let values = e
            .clone()
            .inner()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        vec![(EPS_FIX_STATE.to_string(), e.dims().to_vec(), values)]
    }

    /// Restore ε_fix from [`Guidance::state`]'s entry (absent: drawn afresh when needed).
    fn load_state(&mut self, state: &[(String, Vec<usize>, Vec<f32>)]) -> Result<(), DistillError> {
        for (name, shape, values) in state {
            if name != EPS_FIX_STATE {
                return Err(DistillError::Input(format!(
                    "lmc state: unknown entry `{name}`"
                )));
            }
            let ok = shape.len() == 4
                && shape[0] == 1
                && shape[1] == LATENT_CHANNELS
                && shape.iter().product::<usize>() == values.len();
            if !ok {
                return Err(DistillError::Input(format!(
                    "lmc state: `{name}` has shape {shape:?} ({} values), expected [1, {LATENT_CHANNELS}, h, w]",
                    values.len()
                )));
            }
            let dev = self.blur.head.weight.val().device();
            self.eps_fix = Some(Tensor::from_data(
                TensorData::new(values.clone(), [shape[0], shape[1], shape[2], shape[3]]),
                &dev,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_is_documented_form() {
        let e = time_encoding(250);
        let tau = 0.25f64;
        for k in 0..TIME_FREQUENCIES {
            let a = (1u32 << k) as f64 * std::f64::consts::PI * tau;
            assert!((e[2 * k] as f64 - a.sin()).abs() < 1e-6);
            assert!((e[2 * k + 1] as f64 - a.cos()).abs() < 1e-6);
        }
        assert_eq!(time_encoding(0)[0], 0.0);
        assert_eq!(time_encoding(0)[1], 1.0);
    }

    #[test]
    fn lr_decays_in_stairs() {
        let c = BlurTrainerConfig {
            lr_decay_every: 10,
            ..BlurTrainerConfig::default()
        };
        assert_eq!(c.lr_at(0), 1e-4);
        assert_eq!(c.lr_at(9), 1e-4);
        assert!((c.lr_at(10) - 0.9e-4).abs() < 1e-18);
        assert!((c.lr_at(25) - 0.81e-4).abs() < 1e-18);
    }

    #[test]
    fn config_defaults_and_validation() {
        assert_eq!(
            BlurNetConfig::default(),
            BlurNetConfig {
                levels: 4,
                base_width: 32
            }
        );
        assert!(
            BlurNetConfig {
                levels: 0,
                base_width: 8
            }
            .validate()
            .is_err()
        );
        let c = LmcConfig::default();
        assert_eq!(c.cfg_scale, 20.0);
        assert!(!c.fixed_eps && c.blur_model.is_none() && c.scale == 1.0);
        assert!(
            LmcConfig {
                cfg_scale: 0.0,
                ..LmcConfig::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn lmc_is_send() {
        fn send<T: Send>() {}
        send::<Lmc>();
        send::<BlurTrainer>();
    }
}
