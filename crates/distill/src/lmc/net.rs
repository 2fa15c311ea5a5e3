//! b̂ψ, the blur model of LMC-SDS (\[S2\] §4): a small time-conditioned U-Net on latents
//! ([`BlurNet`]), its time encoding, the per-channel renormalisation b̃, and its safetensors
//! file (`save` / `load`, metadata in [`BlurMeta`]).

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::DistillError;
use sd::nn::upsample_nearest2x;

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
    /// [`DistillError::Setting`] naming `levels` or `base_width`.
    pub fn validate(&self) -> Result<(), DistillError> {
        if !(1..=MAX_LEVELS).contains(&self.levels) {
            return Err(DistillError::Setting {
                name: "levels".into(),
                detail: format!("{} is outside 1..={MAX_LEVELS}", self.levels),
            });
        }
        if !(1..=4096).contains(&self.base_width) {
            return Err(DistillError::Setting {
                name: "base_width".into(),
                detail: format!("{} is outside 1..=4096", self.base_width),
            });
        }
        Ok(())
    }

    /// Width of encoder level `i` (`base_width·2^i`).
    pub fn width(&self, i: usize) -> usize {
        self.base_width << i
    }
}

/// 3×3 convolution `cin → cout` with bias and "same" zero padding.
pub(crate) fn conv3(cin: usize, cout: usize, device: &Device) -> Conv2d {
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
    /// The error of [`BlurNetConfig::validate`].
    pub fn new(config: &BlurNetConfig, device: &Device) -> Result<Self, DistillError> {
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
    /// The error of [`BlurNetConfig::validate`].
    pub fn seeded(
        config: &BlurNetConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self, DistillError> {
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
}

/// Per image and channel mean and (biased) standard deviation of `x [B, C, h, w]`, each
/// `[B, C, 1, 1]`; [`VAR_EPS`] is added to the variance.
pub(crate) fn channel_stats(x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
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

/// `shape` values uniform in `[−bound, bound)` from a seeded host RNG (splitmix64).
pub(crate) fn host_uniform<const D: usize>(
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
pub(crate) fn mix(seed: u64, step: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(step.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
