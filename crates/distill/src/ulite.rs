//! U-Lite (Dinh, Nguyen, Tran, Pham 2023, "1M parameters are enough? A lightweight CNN-based
//! model for medical image segmentation"; official code `duong-db/U-Lite`), used by
//! DreamMapping (Cai et al. 2024, §4.2) as its degradation network ℳψ: a U-Net of axial
//! depthwise convolutions with ≈ 0.9 M parameters (docs/methods.md §5.2).
//!
//! Layout, for `levels` = L (default 5, the published network) and width `16·2^i` at level i:
//! - stem: 7×7 conv `in → 16` ("same" padding);
//! - L encoder blocks `c → 2c`: [`AxialDw`] 7×7 → BatchNorm (its output is the skip) → 1×1 conv
//!   → 2×2 max-pool → GELU;
//! - bottleneck at `C = 16·2^L`: 1×1 conv `C → C/4`; concatenate `[x, AxialDW₃ₓ₃(x; d=1),
//!   AxialDW₃ₓ₃(x; d=2), AxialDW₃ₓ₃(x; d=3)]` → BatchNorm → 1×1 conv `→ C` → GELU;
//! - L decoder blocks `2c → c`: nearest ×2 upsampling → concatenate the skip → 1×1 conv
//!   `(2c + c) → c` → BatchNorm → [`AxialDw`] 7×7 → 1×1 conv → GELU;
//! - head: 1×1 conv `16 → out`.
//!
//! With 4 input and 4 output channels (SD latents) and L = 5 it has 879,252 parameters (the
//! official 3 → 1 network: 878,417, the "878K" of its README; see the `parameter_count` test).
//!
//! **Input size.** Each level halves the side, so the network natively needs sides divisible
//! by `2^L` (32 for the default; SD 2.1-base's 64×64 latents qualify). Any other size is
//! **zero-padded** at the bottom/right to the next multiple of `2^L` and the output cropped back
//! (the tiny test models' 8×8 or 16×8 latents become 32×32 inside the network). The padded zeros
//! then take part in the BatchNorm batch statistics; to avoid padding for small latents, lower
//! `levels` (e.g. 3 for 8×8) — that also shrinks the network (the bottleneck is `16·2^L` wide).
//!
//! **BatchNorm** always normalises with the statistics of the current batch (PyTorch training
//! mode, which is how DreamMapping trains ℳψ online, one step per iteration) — also when the
//! network is merely evaluated ([`ULite::forward`] on plain tensors). No running statistics are
//! used or updated (burn-nn's running buffers stay at their initial values).
//!
//! GELU is the exact (erf) form through [`sd::nn::gelu_exact`], because burn's fused `gelu`
//! differentiates the tanh approximation.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use sd::nn::{gelu_exact, upsample_nearest2x};

use crate::state::is_running_stat;

/// The most levels [`ULiteConfig::levels`] accepts (5 is the published network; 6 would need
/// 64-divisible sides and a 1024-wide bottleneck).
pub const MAX_LEVELS: usize = 6;

/// Settings of [`ULite`] (`[guidance.vdm.ulite]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ULiteConfig {
    /// Number of encoder/decoder levels L (1..=[`MAX_LEVELS`]; U-Lite: 5). Inputs whose sides
    /// are not multiples of `2^L` are zero-padded and cropped back (module docs).
    pub levels: usize,
    /// Initialise the 1×1 head to zero, so ℳψ starts at 0 and the first VDM gradients are pure
    /// mode-seeking ω(t)·ε̂ (docs/methods.md §6.3 item 9, optional). Default off: the paper
    /// states no initialisation, and U-Lite uses PyTorch's default init everywhere.
    pub zero_init_head: bool,
}

impl Default for ULiteConfig {
    fn default() -> Self {
        Self {
            levels: 5,
            zero_init_head: false,
        }
    }
}

/// 1×1 convolution `cin → cout` with bias.
fn pointwise(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [1, 1]).init(device)
}

/// Depthwise `kh×kw` convolution with dilation `d` and explicit "same" padding `d·(k−1)/2`
/// (burn's `PaddingConfig2d::Same` ignores dilation, so it is not used here).
fn depthwise(c: usize, kh: usize, kw: usize, d: usize, device: &Device) -> Conv2d {
    let (ph, pw) = (d * (kh - 1) / 2, d * (kw - 1) / 2);
    Conv2dConfig::new([c, c], [kh, kw])
        .with_groups(c)
        .with_dilation([d, d])
        .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
        .init(device)
}

/// BatchNorm with batch statistics (PyTorch training mode), always: `(x − μ_B)/√(σ²_B + ε)·γ + β`
/// with the biased batch variance per channel. Uses burn-nn's [`BatchNorm`] parameters only.
fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    burn::tensor::module::batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon).output
}

/// Axial depthwise block `AxialDW(C, k, d)(x) = x + DW_{k×1}(x) + DW_{1×k}(x)` (U-Lite's
/// "axial depthwise convolution", both convolutions depthwise with bias, "same" padding,
/// dilation `d`).
#[derive(Module, Debug)]
pub struct AxialDw {
    /// The `k×1` (vertical) depthwise convolution.
    pub dw_h: Conv2d,
    /// The `1×k` (horizontal) depthwise convolution.
    pub dw_w: Conv2d,
}

impl AxialDw {
    /// `AxialDW(channels, k×k, dilation)`.
    pub fn new(channels: usize, k: usize, dilation: usize, device: &Device) -> Self {
        Self {
            dw_h: depthwise(channels, k, 1, dilation, device),
            dw_w: depthwise(channels, 1, k, dilation, device),
        }
    }

    /// `x + DW_{k×1}(x) + DW_{1×k}(x)`, shape-preserving.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        x.clone() + self.dw_h.forward(x.clone()) + self.dw_w.forward(x)
    }
}

/// U-Lite encoder block `cin → cout`: `skip = BN(AxialDW₇ₓ₇(x))`,
/// `out = GELU(MaxPool₂(PW(skip)))`.
#[derive(Module, Debug)]
pub struct EncoderBlock {
    /// Axial depthwise mixer (7×7).
    pub dw: AxialDw,
    /// BatchNorm on `cin` channels.
    pub bn: BatchNorm,
    /// 1×1 conv `cin → cout`.
    pub pw: Conv2d,
    /// 2×2 max pooling, stride 2.
    pub down: MaxPool2d,
}

impl EncoderBlock {
    /// New block `cin → cout`.
    pub fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            dw: AxialDw::new(cin, 7, 1, device),
            bn: BatchNormConfig::new(cin).init(device),
            pw: pointwise(cin, cout, device),
            down: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    /// `(out [B, cout, H/2, W/2], skip [B, cin, H, W])`.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let skip = batch_norm(&self.bn, self.dw.forward(x));
        let out = gelu_exact(self.down.forward(self.pw.forward(skip.clone())));
        (out, skip)
    }
}

/// U-Lite bottleneck at width `C`: `x = PW₁(x)` (C → C/4);
/// `GELU(PW₂(BN([x, AxialDW₃ₓ₃(x; 1), AxialDW₃ₓ₃(x; 2), AxialDW₃ₓ₃(x; 3)])))`.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 conv `C → C/4`.
    pub pw1: Conv2d,
    /// AxialDW 3×3, dilation 1.
    pub dw1: AxialDw,
    /// AxialDW 3×3, dilation 2.
    pub dw2: AxialDw,
    /// AxialDW 3×3, dilation 3.
    pub dw3: AxialDw,
    /// BatchNorm on the concatenation (4·C/4 channels).
    pub bn: BatchNorm,
    /// 1×1 conv `4·C/4 → C`.
    pub pw2: Conv2d,
}

impl Bottleneck {
    /// New bottleneck of width `dim` (a multiple of 4).
    pub fn new(dim: usize, device: &Device) -> Self {
        let gc = dim / 4;
        Self {
            pw1: pointwise(dim, gc, device),
            dw1: AxialDw::new(gc, 3, 1, device),
            dw2: AxialDw::new(gc, 3, 2, device),
            dw3: AxialDw::new(gc, 3, 3, device),
            bn: BatchNormConfig::new(4 * gc).init(device),
            pw2: pointwise(4 * gc, dim, device),
        }
    }

    /// Shape-preserving.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pw1.forward(x);
        let cat = Tensor::cat(
            vec![
                x.clone(),
                self.dw1.forward(x.clone()),
                self.dw2.forward(x.clone()),
                self.dw3.forward(x),
            ],
            1,
        );
        gelu_exact(self.pw2.forward(batch_norm(&self.bn, cat)))
    }
}

/// U-Lite decoder block `cin → cout`:
/// `GELU(PW₂(AxialDW₇ₓ₇(BN(PW₁([Up₂(x), skip])))))`.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    /// 1×1 conv `cin + cout → cout`.
    pub pw: Conv2d,
    /// BatchNorm on `cout` channels.
    pub bn: BatchNorm,
    /// Axial depthwise mixer (7×7).
    pub dw: AxialDw,
    /// 1×1 conv `cout → cout`.
    pub pw2: Conv2d,
}

impl DecoderBlock {
    /// New block `cin → cout` (the skip has `cout` channels).
    pub fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            pw: pointwise(cin + cout, cout, device),
            bn: BatchNormConfig::new(cout).init(device),
            dw: AxialDw::new(cout, 7, 1, device),
            pw2: pointwise(cout, cout, device),
        }
    }

    /// `x [B, cin, h, w]`, `skip [B, cout, 2h, 2w]` → `[B, cout, 2h, 2w]`.
    pub fn forward(&self, x: Tensor<4>, skip: Tensor<4>) -> Tensor<4> {
        let x = Tensor::cat(vec![upsample_nearest2x(x), skip], 1);
        let x = batch_norm(&self.bn, self.pw.forward(x));
        gelu_exact(self.pw2.forward(self.dw.forward(x)))
    }
}

/// The U-Lite network (module docs): `[B, in, H, W] → [B, out, H, W]` for any `H, W ≥ 1`.
/// DreamMapping's ℳψ is `ULite::new(4, 4, …)` on SD latents.
#[derive(Module, Debug)]
pub struct ULite {
    /// 7×7 stem conv `in → 16`.
    pub conv_in: Conv2d,
    /// Encoder blocks, outermost first (`16 → 32 → … → 16·2^L`).
    pub enc: Vec<EncoderBlock>,
    /// Bottleneck at `16·2^L`.
    pub mid: Bottleneck,
    /// Decoder blocks, innermost first (`16·2^L → … → 16`).
    pub dec: Vec<DecoderBlock>,
    /// 1×1 head `16 → out`.
    pub conv_out: Conv2d,
}

impl ULite {
    /// A U-Lite with `in_channels` inputs and `out_channels` outputs on `device` (use the
    /// autodiff side of the device to train it). PyTorch-default initialisation (Kaiming-uniform
    /// with a = √5, biases U(±1/√fan_in); BatchNorm γ = 1, β = 0); the head is zero when
    /// `config.zero_init_head`.
    ///
    /// # Panics
    /// When `config.levels` is outside `1..=MAX_LEVELS` (validate configs first).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        config: &ULiteConfig,
        device: &Device,
    ) -> Self {
        let levels = config.levels;
        assert!(
            (1..=MAX_LEVELS).contains(&levels),
            "U-Lite levels {levels} outside 1..={MAX_LEVELS}"
        );
        let width = |i: usize| 16usize << i;
        let enc = (0..levels)
            .map(|i| EncoderBlock::new(width(i), width(i + 1), device))
            .collect();
        let dec = (0..levels)
            .rev()
            .map(|i| DecoderBlock::new(width(i + 1), width(i), device))
            .collect();
        let mut conv_out = pointwise(16, out_channels, device);
        if config.zero_init_head {
            conv_out.weight = Param::from_tensor(Tensor::zeros([out_channels, 16, 1, 1], device));
            conv_out.bias = Some(Param::from_tensor(Tensor::zeros([out_channels], device)));
        }
        Self {
            conv_in: Conv2dConfig::new([in_channels, 16], [7, 7])
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .init(device),
            enc,
            mid: Bottleneck::new(width(levels), device),
            dec,
            conv_out,
        }
    }

    /// Number of learnable parameters (weights, biases, BatchNorm γ/β). burn's
    /// `Module::num_params` also counts burn-nn BatchNorm's running-statistics buffers
    /// (2 per BatchNorm channel), which U-Lite never uses.
    pub fn num_learnable(&self) -> usize {
        let mut c = LearnableCounter { path: vec![], n: 0 };
        self.visit(&mut c);
        c.n
    }

    /// Number of encoder/decoder levels L.
    pub fn levels(&self) -> usize {
        self.enc.len()
    }

    /// `x [B, in, H, W] → [B, out, H, W]`. Sides that are not multiples of `2^L` are zero-padded
    /// (bottom/right) to the next multiple and the output is cropped back. Works on plain and on
    /// autodiff tensors (BatchNorm uses batch statistics either way).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let m = 1usize << self.levels();
        let (hp, wp) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
        let x = if (hp, wp) != (h, w) {
            let canvas = Tensor::zeros([b, c, hp, wp], &x.device());
            canvas.slice_assign([0..b, 0..c, 0..h, 0..w], x)
        } else {
            x
        };
        let mut x = self.conv_in.forward(x);
        let mut skips = Vec::with_capacity(self.enc.len());
        for e in &self.enc {
            let (out, skip) = e.forward(x);
            skips.push(skip);
            x = out;
        }
        x = self.mid.forward(x);
        for d in &self.dec {
            let skip = skips.pop().expect("one skip per level");
            x = d.forward(x, skip);
        }
        let y = self.conv_out.forward(x);
        if (hp, wp) != (h, w) {
            let o = y.dims()[1];
            y.slice([0..b, 0..o, 0..h, 0..w])
        } else {
            y
        }
    }
}

/// Counts float parameters outside BatchNorm's running-statistics buffers.
struct LearnableCounter {
    path: Vec<String>,
    n: usize,
}

impl ModuleVisitor for LearnableCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !is_running_stat(self.path.last()) {
            self.n += param.lazy_shape().num_elements();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn device() -> &'static Device {
        static CTX: OnceLock<gpu::GpuContext> = OnceLock::new();
        &CTX.get_or_init(|| {
            gpu::GpuContext::new(&gpu::GpuOptions::default())
                .unwrap_or_else(|e| panic!("no GPU device: {e}"))
        })
        .burn
    }

    #[test]
    fn parameter_count() {
        let dev = device().clone().autodiff();
        let net = ULite::new(4, 4, &ULiteConfig::default(), &dev);
        let n = net.num_learnable();
        println!("U-Lite 4→4, 5 levels: {n} parameters");
        assert_eq!(n, 879_252);
        // burn counts the 2 running-statistics buffers of every BatchNorm channel too.
        let bn_channels = (16 + 32 + 64 + 128 + 256) * 2 + 512;
        assert_eq!(net.num_params(), n + 2 * bn_channels);
        // The official 3 → 1 network.
        let official = ULite::new(3, 1, &ULiteConfig::default(), &dev).num_learnable();
        println!("U-Lite 3→1, 5 levels: {official} parameters");
        assert_eq!(official, 878_417);
    }

    #[test]
    fn output_shape_equals_input_shape() {
        let dev = device().clone();
        for (levels, h, w) in [(5, 8, 8), (5, 16, 8), (5, 64, 64), (3, 8, 8), (3, 12, 5)] {
            let cfg = ULiteConfig {
                levels,
                zero_init_head: false,
            };
            let net = ULite::new(4, 4, &cfg, &dev);
            let x = sd::pipeline::gaussian([2, 4, h, w], 7, &dev);
            let y = net.forward(x);
            assert_eq!(y.dims(), [2, 4, h, w], "levels {levels}, {h}×{w}");
            let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "levels {levels}, {h}×{w}");
        }
    }

    #[test]
    fn zero_init_head_outputs_zero() {
        let dev = device().clone().autodiff();
        let cfg = ULiteConfig {
            levels: 3,
            zero_init_head: true,
        };
        let net = ULite::new(4, 4, &cfg, &dev);
        let y = net.forward(sd::pipeline::gaussian([2, 4, 8, 8], 1, &dev));
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|&x| x == 0.0));
    }
}
