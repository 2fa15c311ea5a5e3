//! The SD 2.1 VAE (diffusers `AutoencoderKL`): encoder to the diagonal-Gaussian posterior
//! (`quant_conv` applied, log-variance clamped to [−30, 20]) and decoder (`post_quant_conv`
//! first). Images are `[B, 3, H, W]` in [−1, 1]; latents `[B, 4, H/8, W/8]` (for 4 levels),
//! **unscaled**: pipelines multiply encoder samples by [`Vae::scaling_factor`] (0.18215) and
//! divide before decoding.
//!
//! Differentiable end to end: with an autodiff input, `encode(..).mean` backpropagates to the
//! image, which is the score-distillation path (render → VAE encoder → latents).

use std::path::Path;

use burn::tensor::{Device, FloatDType, Tensor};

use crate::blocks::{Downsample, ResnetBlock, ResnetSpec, SpatialAttention, Upsample};
use crate::config::VaeConfig;
use crate::nn::{Conv2d, GroupNorm, swish};
use crate::weights::{WeightError, WeightFile};

/// GroupNorm ε inside the VAE (diffusers uses 1e-6 throughout `Encoder`/`Decoder`).
const VAE_EPS: f64 = 1e-6;

#[derive(Clone, Debug)]
struct Mid {
    res0: ResnetBlock,
    attn: Option<SpatialAttention>,
    res1: ResnetBlock,
}

impl Mid {
    fn load(
        w: &WeightFile,
        prefix: &str,
        c: usize,
        groups: usize,
        attn: bool,
    ) -> Result<Self, WeightError> {
        let spec = ResnetSpec {
            c_in: c,
            c_out: c,
            temb: None,
            groups,
            eps: VAE_EPS,
            output_scale_factor: 1.0,
        };
        Ok(Self {
            res0: ResnetBlock::load(w, &format!("{prefix}.resnets.0"), spec)?,
            attn: if attn {
                Some(SpatialAttention::load(
                    w,
                    &format!("{prefix}.attentions.0"),
                    c,
                    groups,
                    VAE_EPS,
                )?)
            } else {
                None
            },
            res1: ResnetBlock::load(w, &format!("{prefix}.resnets.1"), spec)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.res0.forward(x, None);
        let x = match &self.attn {
            Some(a) => a.forward(x),
            None => x,
        };
        self.res1.forward(x, None)
    }
}

#[derive(Clone, Debug)]
struct Level {
    resnets: Vec<ResnetBlock>,
    down: Option<Downsample>,
    up: Option<Upsample>,
}

/// The posterior q(z | image): `[B, 4, h, w]` each.
#[derive(Clone, Debug)]
pub struct Posterior {
    /// Mean.
    pub mean: Tensor<4>,
    /// Log-variance, clamped to [−30, 20].
    pub logvar: Tensor<4>,
    /// exp(logvar / 2).
    pub std: Tensor<4>,
}

impl Posterior {
    /// `mean + std·noise` with `noise [B, 4, h, w]` ~ N(0, I) (diffusers
    /// `DiagonalGaussianDistribution.sample`).
    pub fn sample(&self, noise: Tensor<4>) -> Tensor<4> {
        self.mean.clone() + self.std.clone() * noise
    }
}

/// The VAE with its weights on the device.
#[derive(Clone, Debug)]
pub struct Vae {
    /// The config it was built from.
    pub config: VaeConfig,
    enc_conv_in: Conv2d,
    enc_levels: Vec<Level>,
    enc_mid: Mid,
    enc_norm_out: GroupNorm,
    enc_conv_out: Conv2d,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    dec_conv_in: Conv2d,
    dec_mid: Mid,
    dec_levels: Vec<Level>,
    dec_norm_out: GroupNorm,
    dec_conv_out: Conv2d,
    dtype: burn::tensor::DType,
}

impl Vae {
    /// Build from a config and a weight file (both attention key layouts accepted).
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming the file and tensor.
    pub fn load(config: VaeConfig, w: &WeightFile) -> Result<Self, WeightError> {
        let ch = &config.block_out_channels;
        let n = ch.len();
        let g = config.norm_num_groups;
        let lat = config.latent_channels;
        let spec = |c_in, c_out| ResnetSpec {
            c_in,
            c_out,
            temb: None,
            groups: g,
            eps: VAE_EPS,
            output_scale_factor: 1.0,
        };
        let enc_conv_in = w.conv2d("encoder.conv_in", config.in_channels, ch[0], 3, 1, 1)?;
        let mut enc_levels = Vec::with_capacity(n);
        for i in 0..n {
            let c_prev = if i == 0 { ch[0] } else { ch[i - 1] };
            let mut resnets = vec![];
            for j in 0..config.layers_per_block {
                let c_in = if j == 0 { c_prev } else { ch[i] };
                resnets.push(ResnetBlock::load(
                    w,
                    &format!("encoder.down_blocks.{i}.resnets.{j}"),
                    spec(c_in, ch[i]),
                )?);
            }
            let down = if i + 1 < n {
                Some(Downsample::load(
                    w,
                    &format!("encoder.down_blocks.{i}.downsamplers.0"),
                    ch[i],
                    0,
                )?)
            } else {
                None
            };
            enc_levels.push(Level {
                resnets,
                down,
                up: None,
            });
        }
        let top = ch[n - 1];
        let attn = config.mid_block_add_attention;
        let enc_mid = Mid::load(w, "encoder.mid_block", top, g, attn)?;
        let enc_norm_out = w.group_norm("encoder.conv_norm_out", g, top, VAE_EPS)?;
        let enc_conv_out = w.conv2d("encoder.conv_out", top, 2 * lat, 3, 1, 1)?;
        let quant_conv = if config.use_quant_conv {
            Some(w.conv2d("quant_conv", 2 * lat, 2 * lat, 1, 1, 0)?)
        } else {
            None
        };
        let post_quant_conv = if config.use_post_quant_conv {
            Some(w.conv2d("post_quant_conv", lat, lat, 1, 1, 0)?)
        } else {
            None
        };
        let dec_conv_in = w.conv2d("decoder.conv_in", lat, top, 3, 1, 1)?;
        let dec_mid = Mid::load(w, "decoder.mid_block", top, g, attn)?;
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut dec_levels = Vec::with_capacity(n);
        for i in 0..n {
            let c_prev = if i == 0 { rev[0] } else { rev[i - 1] };
            let mut resnets = vec![];
            for j in 0..=config.layers_per_block {
                let c_in = if j == 0 { c_prev } else { rev[i] };
                resnets.push(ResnetBlock::load(
                    w,
                    &format!("decoder.up_blocks.{i}.resnets.{j}"),
                    spec(c_in, rev[i]),
                )?);
            }
            let up = if i + 1 < n {
                Some(Upsample::load(
                    w,
                    &format!("decoder.up_blocks.{i}.upsamplers.0"),
                    rev[i],
                )?)
            } else {
                None
            };
            dec_levels.push(Level {
                resnets,
                down: None,
                up,
            });
        }
        let dec_norm_out = w.group_norm("decoder.conv_norm_out", g, rev[n - 1], VAE_EPS)?;
        let dec_conv_out =
            w.conv2d("decoder.conv_out", rev[n - 1], config.out_channels, 3, 1, 1)?;
        Ok(Self {
            dtype: enc_conv_in.weight.dtype(),
            config,
            enc_conv_in,
            enc_levels,
            enc_mid,
            enc_norm_out,
            enc_conv_out,
            quant_conv,
            post_quant_conv,
            dec_conv_in,
            dec_mid,
            dec_levels,
            dec_norm_out,
            dec_conv_out,
        })
    }

    /// Load `vae/` of a diffusers folder, its convolutions computed by `conv`.
    ///
    /// # Errors
    /// Config and weight errors naming the file.
    pub fn from_dir(
        dir: &Path,
        device: &Device,
        precision: crate::Precision,
        conv: crate::nn::ConvAlgorithm,
    ) -> Result<Self, crate::SdError> {
        let config = VaeConfig::from_file(&dir.join("config.json"))?;
        let file = crate::model::component_weights(dir, "diffusion_pytorch_model")?;
        let w = WeightFile::open(&file, device, precision)?.with_conv(conv);
        Ok(Self::load(config, &w)?)
    }

    /// The latent scaling factor from the config (0.18215 for SD 2.1).
    pub fn scaling_factor(&self) -> f64 {
        self.config.scaling_factor
    }

    /// Downsampling factor image → latent (8 for SD 2.1).
    pub fn downscale(&self) -> usize {
        1 << (self.config.block_out_channels.len() - 1)
    }

    /// Encode `image [B, 3, H, W]` in [−1, 1] (H, W multiples of [`Vae::downscale`]) to the
    /// posterior over unscaled latents `[B, 4, H/8, W/8]` (f32).
    pub fn encode(&self, image: Tensor<4>) -> Posterior {
        let mut x = self.enc_conv_in.forward(image.cast(self.dtype));
        for level in &self.enc_levels {
            for r in &level.resnets {
                x = r.forward(x, None);
            }
            if let Some(d) = &level.down {
                x = d.forward(x);
            }
        }
        let x = self.enc_mid.forward(x);
        let x = self
            .enc_conv_out
            .forward(swish(self.enc_norm_out.forward(x)));
        let x = match &self.quant_conv {
            Some(q) => q.forward(x),
            None => x,
        };
        let x = x.cast(FloatDType::F32);
        let [b, c, h, w] = x.dims();
        let lat = c / 2;
        let mean = x.clone().narrow(1, 0, lat);
        let logvar = x.narrow(1, lat, lat).clamp(-30.0, 20.0);
        let std = (logvar.clone() * 0.5).exp();
        debug_assert_eq!([b, lat, h, w], mean.dims());
        Posterior { mean, logvar, std }
    }

    /// Decode unscaled latents `z [B, 4, h, w]` to an image `[B, 3, 8h, 8w]` (f32, nominally
    /// in [−1, 1]; not clamped).
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let z = z.cast(self.dtype);
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(z),
            None => z,
        };
        let mut x = self.dec_mid.forward(self.dec_conv_in.forward(z));
        for level in &self.dec_levels {
            for r in &level.resnets {
                x = r.forward(x, None);
            }
            if let Some(u) = &level.up {
                x = u.forward(x, None);
            }
        }
        self.dec_conv_out
            .forward(swish(self.dec_norm_out.forward(x)))
            .cast(FloatDType::F32)
    }
}
