//! Building blocks shared by the U-Net and the VAE (diffusers `ResnetBlock2D`, `Downsample2D`,
//! `Upsample2D`, and the VAE's single-head spatial self-attention).

use burn::tensor::Tensor;

use crate::nn::{
    Conv2d, GroupNorm, Linear, attention, from_tokens, swish, to_tokens, upsample_nearest2x,
};
use crate::weights::{WeightError, WeightFile};

/// diffusers `ResnetBlock2D` with `time_embedding_norm="default"`:
/// `h = conv1(silu(norm1(x))) [+ time_emb_proj(silu(temb))]; h = conv2(silu(norm2(h)));
/// out = (shortcut(x) + h) / output_scale_factor`.
#[derive(Clone, Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

/// Shape parameters of a [`ResnetBlock`].
#[derive(Clone, Copy, Debug)]
pub struct ResnetSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Time-embedding width, when the block is time-conditioned (U-Net).
    pub temb: Option<usize>,
    /// GroupNorm groups.
    pub groups: usize,
    /// GroupNorm ε.
    pub eps: f64,
    /// Divisor of the output.
    pub output_scale_factor: f64,
}

impl ResnetBlock {
    /// Load from `{prefix}.norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut`.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming the file and tensor.
    pub fn load(w: &WeightFile, prefix: &str, s: ResnetSpec) -> Result<Self, WeightError> {
        Ok(Self {
            norm1: w.group_norm(&format!("{prefix}.norm1"), s.groups, s.c_in, s.eps)?,
            conv1: w.conv2d(&format!("{prefix}.conv1"), s.c_in, s.c_out, 3, 1, 1)?,
            time_emb_proj: match s.temb {
                Some(t) => Some(w.linear(&format!("{prefix}.time_emb_proj"), t, s.c_out, true)?),
                None => None,
            },
            norm2: w.group_norm(&format!("{prefix}.norm2"), s.groups, s.c_out, s.eps)?,
            conv2: w.conv2d(&format!("{prefix}.conv2"), s.c_out, s.c_out, 3, 1, 1)?,
            shortcut: if s.c_in != s.c_out {
                Some(w.conv2d(&format!("{prefix}.conv_shortcut"), s.c_in, s.c_out, 1, 1, 0)?)
            } else {
                None
            },
            output_scale_factor: s.output_scale_factor,
        })
    }

    /// `x [B, C_in, H, W]`, `temb_act [B, T]` = silu(time embedding) → `[B, C_out, H, W]`.
    pub fn forward(&self, x: Tensor<4>, temb_act: Option<&Tensor<2>>) -> Tensor<4> {
        let mut h = self.conv1.forward(swish(self.norm1.forward(x.clone())));
        if let (Some(p), Some(t)) = (&self.time_emb_proj, temb_act) {
            let [b, c] = [h.dims()[0], h.dims()[1]];
            h = h + p.forward(t.clone()).reshape([b, c, 1, 1]);
        }
        let h = self.conv2.forward(swish(self.norm2.forward(h)));
        let x = match &self.shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        let out = x + h;
        if self.output_scale_factor == 1.0 {
            out
        } else {
            out / self.output_scale_factor
        }
    }
}

/// diffusers `Downsample2D(use_conv=True)`: a stride-2 3×3 convolution. With `padding = 0`
/// (the VAE) the input is first padded by one pixel on the right and bottom only.
#[derive(Clone, Debug)]
pub struct Downsample {
    conv: Conv2d,
    asymmetric: bool,
}

impl Downsample {
    /// Load `{prefix}.conv`.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming the file and tensor.
    pub fn load(
        w: &WeightFile,
        prefix: &str,
        channels: usize,
        padding: usize,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            conv: w.conv2d(&format!("{prefix}.conv"), channels, channels, 3, 2, padding)?,
            asymmetric: padding == 0,
        })
    }

    /// `[B, C, H, W] → [B, C, ⌈H/2⌉, ⌈W/2⌉]` (for even sides: H/2, W/2).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.asymmetric {
            x.pad([(0, 1), (0, 1)], burn::tensor::ops::PadMode::Constant(0.0))
        } else {
            x
        };
        self.conv.forward(x)
    }
}

/// diffusers `Upsample2D(use_conv=True)`: nearest ×2 (or to an explicit size) then 3×3 conv.
#[derive(Clone, Debug)]
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    /// Load `{prefix}.conv`.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming the file and tensor.
    pub fn load(w: &WeightFile, prefix: &str, channels: usize) -> Result<Self, WeightError> {
        Ok(Self {
            conv: w.conv2d(&format!("{prefix}.conv"), channels, channels, 3, 1, 1)?,
        })
    }

    /// `[B, C, H, W] → [B, C, size]`, `size` defaulting to `[2H, 2W]` (the U-Net passes the
    /// skip connection's size when a side was odd, as diffusers' `forward_upsample_size`).
    pub fn forward(&self, x: Tensor<4>, size: Option<[usize; 2]>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let x = match size {
            Some(s) if s != [2 * h, 2 * w] => burn::tensor::module::interpolate(
                x,
                burn::tensor::ops::InterpolateOptions::new(
                    burn::tensor::ops::InterpolateMode::Nearest,
                )
                .with_output_size(s)
                .with_align_corners(false),
            ),
            _ => upsample_nearest2x(x),
        };
        self.conv.forward(x)
    }
}

/// The VAE's middle-block self-attention: GroupNorm, one head over all channels
/// (diffusers `Attention` with `heads = C / attention_head_dim = 1`), output projection,
/// residual. Keys `to_q/to_k/to_v/to_out.0` (current diffusers) or the legacy
/// `query/key/value/proj_attn` of the published SD 2.1 files.
#[derive(Clone, Debug)]
pub struct SpatialAttention {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl SpatialAttention {
    /// Load `{prefix}.group_norm` and the projections in either key layout.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming the file and tensor.
    pub fn load(
        w: &WeightFile,
        prefix: &str,
        channels: usize,
        groups: usize,
        eps: f64,
    ) -> Result<Self, WeightError> {
        let pick = |new: &str, old: &str| -> Result<String, WeightError> {
            let a = format!("{prefix}.{new}.weight");
            let b = format!("{prefix}.{old}.weight");
            let found = w.resolve(&[&a, &b])?;
            Ok(found.trim_end_matches(".weight").to_string())
        };
        let lin = |name: String| w.linear(&name, channels, channels, true);
        Ok(Self {
            norm: w.group_norm(&format!("{prefix}.group_norm"), groups, channels, eps)?,
            q: lin(pick("to_q", "query")?)?,
            k: lin(pick("to_k", "key")?)?,
            v: lin(pick("to_v", "value")?)?,
            out: lin(pick("to_out.0", "proj_attn")?)?,
        })
    }

    /// `[B, C, H, W] → [B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, wd] = x.dims();
        let t = to_tokens(self.norm.forward(x.clone()));
        let a = attention(
            self.q.forward(t.clone()),
            self.k.forward(t.clone()),
            self.v.forward(t),
            1,
            None,
            true,
        );
        let o = from_tokens(self.out.forward(a), h, wd);
        x + o
    }
}
