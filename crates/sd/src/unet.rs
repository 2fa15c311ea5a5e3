//! The SD 2.x denoising U-Net (diffusers `UNet2DConditionModel` semantics): sinusoidal
//! timestep embedding (`flip_sin_to_cos`, `freq_shift`) → 2-layer MLP; down blocks of resnets
//! and `Transformer2DModel`s (GroupNorm, linear or 1×1-conv projections, self-attention,
//! cross-attention to the text embedding, GEGLU feed-forward), a middle block, up blocks with
//! skip connections; all widths, head counts and block types from `unet/config.json`.
//!
//! Input `latents [B, 4, h, w]` (h, w multiples of 2^(levels−1); other sizes follow diffusers'
//! upsample-to-skip-size path), integer `timesteps [B]` (per sample), `encoder_hidden_states
//! [B, 77, D]`. Output `[B, 4, h, w]`: ε or v depending on the scheduler's `prediction_type`.
//! Differentiable with respect to the latents and the text embedding when those are autodiff
//! tensors (weights are constants). [`UNet::forward_with`] adds optional LoRA adapters on every
//! attention projection and an additive time-embedding term ([`UNetExtras`], [`crate::lora`]),
//! both trainable through burn autodiff.

use std::path::Path;

use burn::tensor::{Device, FloatDType, Tensor, TensorData};

use crate::blocks::{Downsample, ResnetBlock, ResnetSpec, Upsample};
use crate::config::{UNetArch, UNetConfig};
use crate::lora::{LoraTransformer, TransformerShape, UNetLora};
use crate::nn::{Conv2d, GroupNorm, Linear, swish};
use crate::transformer::Transformer2D;
use crate::weights::{WeightError, WeightFile};

/// A resnet optionally followed by a transformer (one layer of a down/up block).
#[derive(Clone, Debug)]
struct Layer {
    resnet: ResnetBlock,
    attn: Option<Transformer2D>,
}

impl Layer {
    /// `lora` yields the adapters of the next transformer block (forward order) when the
    /// forward is adapted.
    fn forward(
        &self,
        x: Tensor<4>,
        temb: &Tensor<2>,
        ctx: &Tensor<3>,
        lora: &mut LoraCursor<'_>,
    ) -> Tensor<4> {
        let x = self.resnet.forward(x, Some(temb));
        match &self.attn {
            Some(a) => a.forward(x, ctx, lora.next()),
            None => x,
        }
    }
}

/// Hands out the LoRA adapters of consecutive transformer blocks during one forward.
struct LoraCursor<'a> {
    blocks: Option<(std::slice::Iter<'a, LoraTransformer>, f64)>,
}

impl<'a> LoraCursor<'a> {
    fn next(&mut self) -> Option<(&'a LoraTransformer, f64)> {
        let (it, s) = self.blocks.as_mut()?;
        let s = *s;
        Some((it.next().expect("one LoRA block per transformer block"), s))
    }
}

/// Optional additions to a U-Net forward ([`UNet::forward_with`]): LoRA adapters on the
/// attention projections and an additive embedding on the time embedding.
#[derive(Clone, Debug, Default)]
pub struct UNetExtras<'a> {
    /// LoRA adapters and their scale (diffusers `cross_attention_kwargs={"scale": s}`): every
    /// attention projection `y = x·W + b` becomes `y + s·up(down(x))`. `None` or scale 0: the
    /// pretrained U-Net.
    pub lora: Option<(&'a UNetLora, f64)>,
    /// `[B, temb]` added to the time embedding before the resnets' SiLU (diffusers
    /// `class_embedding` output with `class_embed_type = None`; ProlificDreamer's camera
    /// condition, [`crate::lora::ConditionEmbedding`]). `temb` = [`UNet::temb_dim`].
    pub class_embedding: Option<Tensor<2>>,
}

#[derive(Clone, Debug)]
struct DownBlock {
    layers: Vec<Layer>,
    down: Option<Downsample>,
}

#[derive(Clone, Debug)]
struct UpBlock {
    layers: Vec<Layer>,
    up: Option<Upsample>,
}

/// The U-Net with its weights on the device.
#[derive(Clone, Debug)]
pub struct UNet {
    /// The checked architecture it was built from.
    pub arch: UNetArch,
    time_1: Linear,
    time_2: Linear,
    conv_in: Conv2d,
    down: Vec<DownBlock>,
    mid_res0: ResnetBlock,
    mid_attn: Transformer2D,
    mid_res1: ResnetBlock,
    up: Vec<UpBlock>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    dtype: burn::tensor::DType,
    device: Device,
}

impl UNet {
    /// Build from a checked architecture and a weight file.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming the file and tensor.
    pub fn load(arch: UNetArch, w: &WeightFile) -> Result<Self, WeightError> {
        let cfg = &arch.config;
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let temb_dim = 4 * ch[0];
        let spec = |c_in, c_out, scale| ResnetSpec {
            c_in,
            c_out,
            temb: Some(temb_dim),
            groups: cfg.norm_num_groups,
            eps: cfg.norm_eps,
            output_scale_factor: scale,
        };
        let time_1 = w.linear("time_embedding.linear_1", ch[0], temb_dim, true)?;
        let time_2 = w.linear("time_embedding.linear_2", temb_dim, temb_dim, true)?;
        let conv_in = w.conv2d("conv_in", cfg.in_channels, ch[0], 3, 1, 1)?;
        let mut down = Vec::with_capacity(n);
        for i in 0..n {
            let c_in = if i == 0 { ch[0] } else { ch[i - 1] };
            let mut layers = vec![];
            for j in 0..cfg.layers_per_block {
                let p = format!("down_blocks.{i}");
                layers.push(Layer {
                    resnet: ResnetBlock::load(
                        w,
                        &format!("{p}.resnets.{j}"),
                        spec(if j == 0 { c_in } else { ch[i] }, ch[i], 1.0),
                    )?,
                    attn: if arch.down_attn[i] {
                        Some(Transformer2D::load(
                            w,
                            &format!("{p}.attentions.{j}"),
                            ch[i],
                            arch.heads[i],
                            &arch,
                        )?)
                    } else {
                        None
                    },
                });
            }
            let down_s = if i + 1 < n {
                Some(Downsample::load(
                    w,
                    &format!("down_blocks.{i}.downsamplers.0"),
                    ch[i],
                    cfg.downsample_padding,
                )?)
            } else {
                None
            };
            down.push(DownBlock {
                layers,
                down: down_s,
            });
        }
        let top = ch[n - 1];
        let ms = cfg.mid_block_scale_factor;
        let mid_res0 = ResnetBlock::load(w, "mid_block.resnets.0", spec(top, top, ms))?;
        let mid_attn =
            Transformer2D::load(w, "mid_block.attentions.0", top, arch.heads[n - 1], &arch)?;
        let mid_res1 = ResnetBlock::load(w, "mid_block.resnets.1", spec(top, top, ms))?;
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let rev_heads: Vec<usize> = arch.heads.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(n);
        let mut out_c = rev[0];
        for i in 0..n {
            let prev_c = out_c;
            out_c = rev[i];
            let in_c = rev[(i + 1).min(n - 1)];
            let mut layers = vec![];
            let nl = cfg.layers_per_block + 1;
            for j in 0..nl {
                let skip = if j == nl - 1 { in_c } else { out_c };
                let res_in = if j == 0 { prev_c } else { out_c };
                let p = format!("up_blocks.{i}");
                layers.push(Layer {
                    resnet: ResnetBlock::load(
                        w,
                        &format!("{p}.resnets.{j}"),
                        spec(res_in + skip, out_c, 1.0),
                    )?,
                    attn: if arch.up_attn[i] {
                        Some(Transformer2D::load(
                            w,
                            &format!("{p}.attentions.{j}"),
                            out_c,
                            rev_heads[i],
                            &arch,
                        )?)
                    } else {
                        None
                    },
                });
            }
            let up_s = if i + 1 < n {
                Some(Upsample::load(
                    w,
                    &format!("up_blocks.{i}.upsamplers.0"),
                    out_c,
                )?)
            } else {
                None
            };
            up.push(UpBlock { layers, up: up_s });
        }
        let norm_out = w.group_norm("conv_norm_out", cfg.norm_num_groups, ch[0], cfg.norm_eps)?;
        let conv_out = w.conv2d("conv_out", ch[0], cfg.out_channels, 3, 1, 1)?;
        Ok(Self {
            dtype: conv_in.weight.dtype(),
            device: w.device().clone(),
            arch,
            time_1,
            time_2,
            conv_in,
            down,
            mid_res0,
            mid_attn,
            mid_res1,
            up,
            norm_out,
            conv_out,
        })
    }

    /// Load `unet/` of a diffusers folder, its convolutions computed by `conv`.
    ///
    /// # Errors
    /// Config and weight errors naming the file.
    pub fn from_dir(
        dir: &Path,
        device: &Device,
        precision: crate::Precision,
        conv: crate::nn::ConvAlgorithm,
    ) -> Result<Self, crate::SdError> {
        let arch = UNetConfig::from_file(&dir.join("config.json"))?;
        let file = crate::model::component_weights(dir, "diffusion_pytorch_model")?;
        let w = WeightFile::open(&file, device, precision)?.with_conv(conv);
        Ok(Self::load(arch, &w)?)
    }

    /// The sinusoidal timestep embedding `[B, C₀]` of diffusers' `get_timestep_embedding`,
    /// computed on the host in f32 arithmetic exactly as diffusers does (exponent, product and
    /// the sin/cos argument are f32; the reference casts to the model dtype afterwards).
    pub fn timestep_embedding(&self, timesteps: &[f64]) -> Tensor<2> {
        let cfg = &self.arch.config;
        let dim = cfg.block_out_channels[0];
        let half = dim / 2;
        let shift = cfg.freq_shift as f32;
        let mut out = vec![0.0f32; timesteps.len() * dim];
        let ln = -(10000.0f32).ln();
        for (b, &t) in timesteps.iter().enumerate() {
            let t = t as f32;
            for i in 0..half {
                let e = ((ln * i as f32) / (half as f32 - shift)).exp();
                let arg = t * e;
                let (s, c) = ((arg as f64).sin() as f32, (arg as f64).cos() as f32);
                let row = &mut out[b * dim..(b + 1) * dim];
                if cfg.flip_sin_to_cos {
                    row[i] = c;
                    row[half + i] = s;
                } else {
                    row[i] = s;
                    row[half + i] = c;
                }
            }
        }
        Tensor::from_data(TensorData::new(out, [timesteps.len(), dim]), &self.device)
    }

    /// Denoiser output `[B, 4, h, w]` (f32) for `latents [B, 4, h, w]` at per-sample
    /// `timesteps [B]` with text context `ctx [B, 77, D]`.
    ///
    /// # Panics
    /// When `timesteps.len()` differs from the batch (a programming error).
    pub fn forward(&self, latents: Tensor<4>, timesteps: &[f64], ctx: Tensor<3>) -> Tensor<4> {
        self.forward_with(latents, timesteps, ctx, &UNetExtras::default())
    }

    /// [`Self::forward`] with LoRA adapters and/or an additive time-embedding term
    /// ([`UNetExtras`]). Gradients flow to the adapters and the embedding when they are autodiff
    /// tensors (and, as always, to autodiff latents and context); the U-Net's weights stay
    /// constants. With `extras` empty this is exactly [`Self::forward`].
    ///
    /// # Panics
    /// When `timesteps.len()` differs from the batch, when the LoRA set does not have one block
    /// per transformer block of this U-Net ([`UNetLora::for_unet`] builds a matching one), or
    /// when the class embedding is not `[B, temb]` (programming errors).
    pub fn forward_with(
        &self,
        latents: Tensor<4>,
        timesteps: &[f64],
        ctx: Tensor<3>,
        extras: &UNetExtras<'_>,
    ) -> Tensor<4> {
        let b = latents.dims()[0];
        assert_eq!(timesteps.len(), b, "one timestep per latent");
        let dt = self.dtype;
        let temb = self.timestep_embedding(timesteps).cast(dt);
        let mut temb = self.time_2.forward(swish(self.time_1.forward(temb)));
        if let Some(c) = &extras.class_embedding {
            assert_eq!(
                c.dims(),
                [b, self.temb_dim()],
                "class embedding must be [batch, temb]"
            );
            temb = temb + c.clone().cast(dt);
        }
        let temb_act = swish(temb);
        let lora = extras.lora.filter(|(_, s)| *s != 0.0);
        if let Some((l, _)) = lora {
            assert_eq!(
                l.blocks.len(),
                self.transformer_count(),
                "LoRA set has {} blocks, the U-Net {} transformer blocks",
                l.blocks.len(),
                self.transformer_count()
            );
        }
        let mut cursor = LoraCursor {
            blocks: lora.map(|(l, s)| (l.blocks.iter(), s)),
        };
        let ctx = ctx.cast(dt);
        let mut x = self.conv_in.forward(latents.cast(dt));
        let mut skips = vec![x.clone()];
        for blk in &self.down {
            for l in &blk.layers {
                x = l.forward(x, &temb_act, &ctx, &mut cursor);
                skips.push(x.clone());
            }
            if let Some(d) = &blk.down {
                x = d.forward(x);
                skips.push(x.clone());
            }
        }
        x = self.mid_res0.forward(x, Some(&temb_act));
        x = self.mid_attn.forward(x, &ctx, cursor.next());
        x = self.mid_res1.forward(x, Some(&temb_act));
        for blk in &self.up {
            for l in &blk.layers {
                let s = skips.pop().expect("one skip per up layer");
                x = l.forward(Tensor::cat(vec![x, s], 1), &temb_act, &ctx, &mut cursor);
            }
            if let Some(u) = &blk.up {
                let size = skips.last().map(|s| {
                    let d = s.dims();
                    [d[2], d[3]]
                });
                x = u.forward(x, size);
            }
        }
        self.conv_out
            .forward(swish(self.norm_out.forward(x)))
            .cast(FloatDType::F32)
    }

    /// Every transformer block in forward order (down blocks, middle block, up blocks) with its
    /// diffusers prefix and widths: the layout of a [`UNetLora`] for this U-Net (SD 2.1: 16
    /// blocks).
    pub fn transformer_shapes(&self) -> Vec<TransformerShape> {
        let mut v = vec![];
        let layers = |blocks: &mut dyn Iterator<Item = &Layer>, v: &mut Vec<TransformerShape>| {
            for l in blocks {
                if let Some(a) = &l.attn {
                    v.push(a.shape.clone());
                }
            }
        };
        layers(&mut self.down.iter().flat_map(|b| b.layers.iter()), &mut v);
        v.push(self.mid_attn.shape.clone());
        layers(&mut self.up.iter().flat_map(|b| b.layers.iter()), &mut v);
        v
    }

    /// Number of transformer blocks.
    pub fn transformer_count(&self) -> usize {
        let with_attn = |blocks: &[Layer]| blocks.iter().filter(|l| l.attn.is_some()).count();
        self.down
            .iter()
            .map(|b| with_attn(&b.layers))
            .sum::<usize>()
            + 1
            + self.up.iter().map(|b| with_attn(&b.layers)).sum::<usize>()
    }

    /// Width of the time embedding (`4 × block_out_channels[0]`; 1280 for SD 2.1), the width of
    /// [`UNetExtras::class_embedding`].
    pub fn temb_dim(&self) -> usize {
        self.time_2.d_out()
    }
}
