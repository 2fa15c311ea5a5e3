//! The layers the SD 2.1 models are built of, as plain weight holders with forward functions
//! over burn tensors. Weights live on the plain (non-autodiff) device; inputs may be autodiff
//! tensors, in which case the weights act as constants and gradients flow to the inputs only
//! (what score distillation needs).
//!
//! Shapes follow PyTorch: images `[B, C, H, W]`, token sequences `[B, N, C]`.

use burn::tensor::{
    FloatDType, Tensor, TensorData,
    activation::{silu, softmax},
    module::conv2d,
    ops::ConvOptions,
};

/// `y = x·W + b` over the last axis (PyTorch `nn.Linear`; weight stored `[in, out]`).
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    /// `[…, in] → […, out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::linear(x, self.weight.clone(), self.bias.clone())
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// How [`Conv2d`] computes a stride-1 convolution. Both give the same result (PyTorch
/// `nn.Conv2d`'s); they differ in which GPU kernels do the work.
///
/// Measured on an H200 (docs/perf.md, session 21): with burn's `autotune` feature off, as in
/// this build, burn runs every convolution as its direct kernel, which took 77 % of the SD 2.1
/// U-Net's kernel time. `Im2col` moves that work onto the matrix multiply instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// burn's `conv2d` (its direct kernel in this build).
    #[default]
    Direct,
    /// Lowered to a matrix multiply: the k² shifted copies of the zero-padded input are
    /// concatenated along channels (`[B, in·k², H·W]`, in row chunks of at most
    /// [`IM2COL_CHUNK_ELEMENTS`]) and multiplied by the weight as `[out, in·k²]`. Strided
    /// convolutions (the downsamplers) stay direct.
    Im2col,
}

impl std::str::FromStr for ConvAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "direct" => Ok(Self::Direct),
            "im2col" => Ok(Self::Im2col),
            other => Err(format!(
                "unknown convolution `{other}`: expected direct or im2col"
            )),
        }
    }
}

impl std::fmt::Display for ConvAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Im2col => "im2col",
        })
    }
}

/// The most elements one im2col patch matrix holds (16 Mi: 64 MiB in f32, under lavapipe's
/// 128 MiB storage-binding limit); larger convolutions run in bands of output rows.
pub const IM2COL_CHUNK_ELEMENTS: usize = 16 << 20;

/// 2-D convolution with square kernel, equal stride and zero padding on both axes
/// (PyTorch `nn.Conv2d`; weight `[out, in, k, k]`).
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`.
    pub weight: Tensor<4>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on all four sides.
    pub padding: usize,
    /// Which kernels compute it.
    pub algorithm: ConvAlgorithm,
}

impl Conv2d {
    /// `[B, in, H, W] → [B, out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.algorithm == ConvAlgorithm::Im2col && self.stride == 1 {
            return self.forward_im2col(x);
        }
        conv2d(
            x,
            self.weight.clone(),
            self.bias.clone(),
            ConvOptions::new(
                [self.stride, self.stride],
                [self.padding, self.padding],
                [1, 1],
                1,
            ),
        )
    }

    /// [`conv2d_im2col`] with this layer's weights (stride 1 only).
    fn forward_im2col(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d_im2col(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.padding,
            IM2COL_CHUNK_ELEMENTS,
        )
    }
}

/// A stride-1 convolution as a matrix multiply (PyTorch `nn.Conv2d` with `stride=1`,
/// `dilation=1`, `groups=1`, zero padding `padding` on all sides): `x [B, in, H, W]`, `weight
/// [out, in, k, k]`, `bias [out]` → `[B, out, H + 2p − k + 1, W + 2p − k + 1]`, computed as
/// `y[b, o, q] = Σ_j W[o, j] · P[b, j, q] + bias[o]` with the patch matrix
/// `P[b, (c, dy, dx), (y, x)] = x_pad[b, c, y + dy, x + dx]` (the order of the weight's
/// `[out, in, k, k]` flattened). `P` is built from k² slices of the padded input, in bands of
/// output rows whose patch matrix holds at most `chunk_elements` elements (at least one row).
/// Differentiable in `x` through burn's autodiff.
pub fn conv2d_im2col(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    padding: usize,
    chunk_elements: usize,
) -> Tensor<4> {
    let [b, c_in, h, w] = x.dims();
    let [c_out, _, k, _] = weight.dims();
    let p = padding;
    let x = if p > 0 {
        x.pad((p, p, p, p), burn::tensor::ops::PadMode::Constant(0.0))
    } else {
        x
    };
    let (h_out, w_out) = (h + 2 * p + 1 - k, w + 2 * p + 1 - k);
    let weight = weight.clone().reshape([1, c_out, c_in * k * k]);
    let rows_per_band = (chunk_elements / (b * c_in * k * k * w_out).max(1)).max(1);
    let mut bands = Vec::new();
    let mut y0 = 0;
    while y0 < h_out {
        let rows = rows_per_band.min(h_out - y0);
        let mut shifts = Vec::with_capacity(k * k);
        for dy in 0..k {
            for dx in 0..k {
                shifts.push(
                    x.clone()
                        .slice([0..b, 0..c_in, y0 + dy..y0 + dy + rows, dx..dx + w_out])
                        .reshape([b, c_in, 1, rows * w_out]),
                );
            }
        }
        let patches = Tensor::cat(shifts, 2).reshape([b, c_in * k * k, rows * w_out]);
        bands.push(
            weight
                .clone()
                .matmul(patches)
                .reshape([b, c_out, rows, w_out]),
        );
        y0 += rows;
    }
    let y = if bands.len() == 1 {
        bands.pop().expect("one band")
    } else {
        Tensor::cat(bands, 2)
    };
    match bias {
        Some(bias) => y + bias.clone().reshape([1, c_out, 1, 1]),
        None => y,
    }
}

/// Group normalisation (Wu & He 2018; PyTorch `nn.GroupNorm`), statistics in f32 whatever the
/// activation dtype.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    /// Number of channel groups.
    pub groups: usize,
    /// ε added to the variance.
    pub eps: f64,
    /// `[C]` scale (f32).
    pub gamma: Tensor<1>,
    /// `[C]` shift (f32).
    pub beta: Tensor<1>,
}

impl GroupNorm {
    /// `[B, C, H, W] → [B, C, H, W]`: per sample and group, subtract the mean and divide by
    /// √(biased variance + ε) over the group's channels and all pixels; then scale and shift.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype();
        let [b, c, h, w] = x.dims();
        let x = x
            .cast(FloatDType::F32)
            .reshape([b, self.groups, (c / self.groups) * h * w]);
        let (var, mean) = x.clone().var_mean_bias(2);
        let x = (x - mean) / (var + self.eps).sqrt();
        let x = x.reshape([b, c, h, w]);
        let g = self.gamma.clone().reshape([1, c, 1, 1]);
        let s = self.beta.clone().reshape([1, c, 1, 1]);
        (x * g + s).cast(dtype)
    }
}

/// Layer normalisation over the last axis (PyTorch `nn.LayerNorm`), statistics in f32.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// ε added to the variance.
    pub eps: f64,
    /// `[C]` scale (f32).
    pub gamma: Tensor<1>,
    /// `[C]` shift (f32).
    pub beta: Tensor<1>,
}

impl LayerNorm {
    /// `[B, N, C] → [B, N, C]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let dtype = x.dtype();
        let c = x.dims()[2];
        let x = x.cast(FloatDType::F32);
        let (var, mean) = x.clone().var_mean_bias(2);
        let x = (x - mean) / (var + self.eps).sqrt();
        let g = self.gamma.clone().reshape([1, 1, c]);
        let s = self.beta.clone().reshape([1, 1, c]);
        (x * g + s).cast(dtype)
    }
}

/// SiLU / swish, `x·σ(x)`.
pub fn swish<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    silu(x)
}

/// Exact (erf) GELU, `x·Φ(x) = x·½(1 + erf(x/√2))` (PyTorch `F.gelu`, approximate="none").
///
/// burn's fused `gelu` computes the exact forward, but its backward is the derivative of the
/// tanh approximation (burn-backend 0.22 `gelu_backward`), which is off by up to ~1e-3 and
/// breaks gradient parity with PyTorch. On autodiff tensors this function therefore builds
/// GELU from `erf`, whose derivative 2/√π·e^(−x²) burn differentiates exactly; plain tensors
/// take the fused kernel.
pub fn gelu_exact<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.is_autodiff() {
        x.clone() * ((x * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5
    } else {
        burn::tensor::activation::gelu(x)
    }
}

/// Feature map to token sequence: `[B, C, H, W] → [B, H·W, C]` (row-major pixels).
pub fn to_tokens(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).swap_dims(1, 2)
}

/// The inverse of [`to_tokens`]: `[B, H·W, C] → [B, C, H, W]`.
pub fn from_tokens(t: Tensor<3>, h: usize, w: usize) -> Tensor<4> {
    let [b, _, c] = t.dims();
    t.swap_dims(1, 2).reshape([b, c, h, w])
}

/// Nearest-neighbour upsampling by 2 on both axes (PyTorch
/// `F.interpolate(scale_factor=2, mode="nearest")`), `[B, C, H, W] → [B, C, 2H, 2W]`.
pub fn upsample_nearest2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

/// The attention score budget in bytes: a quarter of the device's storage-binding limit
/// (`gpu::alloc::max_binding_size`, recorded when the device opens; lavapipe: 128 MiB →
/// 32 MiB), at most 512 MiB. A quarter because softmax and its backward keep a few
/// score-sized temporaries alive at once. [`attention`] uses it; [`attention_in_blocks`] takes
/// a budget of its own.
pub fn attention_budget() -> u64 {
    (gpu::alloc::max_binding_size() / 4).clamp(1 << 20, 512 << 20)
}

/// Multi-head scaled dot-product attention, softmax(q·kᵀ/√d + bias)·v, computed in query
/// blocks so the score matrix of one block stays under [`attention_budget`]. Exact (no
/// approximation): each query row's softmax sees every key.
///
/// - `q`: `[B, N_q, heads·d]`, `k`: `[B, N_k, heads·d]`, `v`: `[B, N_k, heads·d_v]`
/// - `bias`: optional additive `[N_q, N_k]` (e.g. CLIP's causal mask with −∞ above the diagonal)
/// - `upcast`: compute scores and softmax in f32 even for f16 activations (diffusers'
///   `upcast_attention`).
///
/// Returns `[B, N_q, heads·d_v]`. Follows `torch.nn.functional.scaled_dot_product_attention`
/// with heads split as diffusers' `Attention.head_to_batch_dim`.
pub fn attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    bias: Option<Tensor<2>>,
    upcast: bool,
) -> Tensor<3> {
    attention_in_blocks(q, k, v, heads, bias, upcast, attention_budget())
}

/// [`attention`] with the score matrix of one query block `[B, heads, q_block, N_k]` held
/// under `budget` bytes (at least one query row per block).
#[allow(clippy::too_many_arguments)]
pub fn attention_in_blocks(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    bias: Option<Tensor<2>>,
    upcast: bool,
    budget: u64,
) -> Tensor<3> {
    let [b, nq, c] = q.dims();
    let nk = k.dims()[1];
    let cv = v.dims()[2];
    let (d, dv) = (c / heads, cv / heads);
    let dtype = q.dtype();
    let score_dtype = if upcast {
        FloatDType::F32
    } else {
        dtype.into()
    };
    let split = |t: Tensor<3>, n: usize, d: usize| t.reshape([b, n, heads, d]).swap_dims(1, 2);
    let scale = 1.0 / (d as f64).sqrt();
    let q = split(q, nq, d).cast(score_dtype) * scale;
    let kt = split(k, nk, d).cast(score_dtype).swap_dims(2, 3);
    let v = split(v, nk, dv);
    let elem = if score_dtype == FloatDType::F32 { 4 } else { 2 };
    let per_row = (b * heads * nk * elem) as u64;
    let block = ((budget / per_row.max(1)) as usize).clamp(1, nq);
    let mut outs = Vec::with_capacity(nq.div_ceil(block));
    let mut start = 0;
    while start < nq {
        let len = block.min(nq - start);
        let qb = if len == nq {
            q.clone()
        } else {
            q.clone().narrow(2, start, len)
        };
        let mut s = qb.matmul(kt.clone());
        if let Some(bias) = &bias {
            let bb = bias.clone().narrow(0, start, len).cast(score_dtype);
            s = s + bb.reshape([1, 1, len, nk]);
        }
        let p = softmax(s, 3).cast(v.dtype());
        outs.push(p.matmul(v.clone()));
        start += len;
    }
    let o = if outs.len() == 1 {
        outs.pop().expect("one block")
    } else {
        Tensor::cat(outs, 2)
    };
    o.swap_dims(1, 2).reshape([b, nq, cv]).cast(dtype)
}

/// A causal mask `[n, n]`: 0 on and below the diagonal, −∞ above (CLIP's text attention).
pub fn causal_mask(n: usize, device: &burn::tensor::Device) -> Tensor<2> {
    let mut m = vec![0.0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            m[i * n + j] = f32::NEG_INFINITY;
        }
    }
    Tensor::from_data(TensorData::new(m, [n, n]), device)
}
