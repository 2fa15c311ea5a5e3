//! Trainable additions to the frozen U-Net: LoRA adapters on every attention projection and an
//! additive conditioning embedding on the time embedding. Both are burn [`Module`]s with
//! [`Param`] tensors, so burn-optim can train them when they live on the autodiff side of the
//! device; the U-Net's own weights stay plain constants.
//!
//! **LoRA** (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") with the
//! semantics of diffusers' `LoRALinearLayer` as used by its `LoRAAttnProcessor` (the processor
//! ProlificDreamer/threestudio VSD and LODS install on all attention layers of the SD U-Net):
//! for a projection `y = x·W + b`,
//!
//! `y = x·W + b + scale · (x·down)·up`,  `down [in, r]` ~ N(0, (1/r)²), `up [r, out]` = 0,
//!
//! on `to_q`, `to_k`, `to_v` and `to_out.0` of both `attn1` (self-attention) and `attn2`
//! (cross-attention; its `to_k`/`to_v` read the text context, so their `in` is the context
//! width) of every `BasicTransformerBlock`. With `up = 0` the adapted U-Net equals the base one;
//! the scale is a runtime argument (diffusers' `cross_attention_kwargs={"scale": …}`), 0 meaning
//! the pretrained model.
//!
//! **Conditioning embedding** (diffusers `UNet2DConditionModel.class_embedding`): ProlificDreamer
//! (Wang et al. 2023, §4 "camera condition"; threestudio `stable_diffusion_vsd_guidance.py`)
//! conditions its LoRA U-Net on the camera by setting `class_embedding` to a
//! `TimestepEmbedding(16, temb)`: `Linear(16 → temb) · SiLU · Linear(temb → temb)` applied to the
//! flattened 4×4 camera-to-world matrix. Its output `[B, temb]` is **added to the time
//! embedding** before the resnets' SiLU (diffusers: `emb = emb + class_emb` with
//! `class_embed_type = None`, so the labels skip the sinusoidal projection). See
//! [`crate::unet::UNetExtras`].
//!
//! Precision: adapters are f32; when the U-Net runs in f16 the adapter path casts its input to
//! f32 and its output back to the activation dtype.

use burn::module::{Module, Param};
use burn::nn::{Linear as NnLinear, LinearConfig};
use burn::tensor::{Device, Distribution, FloatDType, Tensor, activation::silu};

/// One attention projection's width, `in → out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjShape {
    /// Input features.
    pub d_in: usize,
    /// Output features.
    pub d_out: usize,
}

/// A low-rank adapter `Δ(x) = (x·down)·up` for one linear projection (diffusers
/// `LoRALinearLayer` without `network_alpha`).
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// `[in, r]`, initialised N(0, (1/r)²) (diffusers: `nn.init.normal_(down.weight, std=1/rank)`).
    pub down: Param<Tensor<2>>,
    /// `[r, out]`, initialised to zeros (so the adapter starts as the identity).
    pub up: Param<Tensor<2>>,
}

impl LoraLinear {
    /// A fresh adapter for a projection `in → out` with rank `rank` on `device` (use the
    /// autodiff side of the device to train it). Draws `down` from the device RNG.
    ///
    /// # Panics
    /// When `rank` is 0 (validate settings first).
    pub fn new(shape: ProjShape, rank: usize, device: &Device) -> Self {
        assert!(rank > 0, "LoRA rank must be at least 1");
        let std = 1.0 / rank as f64;
        Self {
            down: Param::from_tensor(Tensor::random(
                [shape.d_in, rank],
                Distribution::Normal(0.0, std),
                device,
            )),
            up: Param::from_tensor(Tensor::zeros([rank, shape.d_out], device)),
        }
    }

    /// `scale · (x·down)·up` for `x [B, N, in]` → `[B, N, out]`, computed in f32 and returned
    /// in `x`'s dtype.
    pub fn delta(&self, x: Tensor<3>, scale: f64) -> Tensor<3> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let h = burn::tensor::module::linear(x, self.down.val(), None);
        let y = burn::tensor::module::linear(h, self.up.val(), None) * scale;
        y.cast(dtype)
    }

    /// Rank r.
    pub fn rank(&self) -> usize {
        self.down.dims()[1]
    }
}

/// Adapters of one attention layer (diffusers `LoRAAttnProcessor`: `to_q_lora`, `to_k_lora`,
/// `to_v_lora`, `to_out_lora`).
#[derive(Module, Debug)]
pub struct LoraAttention {
    /// On `to_q` (`dim → dim`).
    pub to_q: LoraLinear,
    /// On `to_k` (`ctx → dim`; ctx = dim for self-attention).
    pub to_k: LoraLinear,
    /// On `to_v` (`ctx → dim`).
    pub to_v: LoraLinear,
    /// On `to_out.0` (`dim → dim`).
    pub to_out: LoraLinear,
}

impl LoraAttention {
    /// Adapters for an attention layer of width `dim` attending to a context of width `ctx`.
    pub fn new(dim: usize, ctx: usize, rank: usize, device: &Device) -> Self {
        let p = |d_in, d_out| LoraLinear::new(ProjShape { d_in, d_out }, rank, device);
        Self {
            to_q: p(dim, dim),
            to_k: p(ctx, dim),
            to_v: p(ctx, dim),
            to_out: p(dim, dim),
        }
    }
}

/// Adapters of one `BasicTransformerBlock`.
#[derive(Module, Debug)]
pub struct LoraTransformer {
    /// Self-attention.
    pub attn1: LoraAttention,
    /// Cross-attention to the text context.
    pub attn2: LoraAttention,
}

/// Shape of one transformer block of a U-Net, as the LoRA set needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformerShape {
    /// The diffusers key prefix of the block, e.g.
    /// `down_blocks.0.attentions.0.transformer_blocks.0`.
    pub prefix: String,
    /// Channel width of the block.
    pub dim: usize,
    /// Width of the text context (`cross_attention_dim`).
    pub ctx_dim: usize,
}

/// The LoRA adapter set of a whole U-Net: one [`LoraTransformer`] per transformer block, in the
/// U-Net's forward order (down blocks, middle block, up blocks), i.e. the order of
/// [`crate::UNet::transformer_shapes`].
#[derive(Module, Debug)]
pub struct UNetLora {
    /// Per transformer block, forward order.
    pub blocks: Vec<LoraTransformer>,
}

impl UNetLora {
    /// A fresh adapter set of rank `rank` for transformer blocks of `shapes` on `device` (the
    /// autodiff side of the device to train it): `down` ~ N(0, (1/r)²) from the device RNG,
    /// `up` = 0.
    ///
    /// # Panics
    /// When `rank` is 0.
    pub fn new(shapes: &[TransformerShape], rank: usize, device: &Device) -> Self {
        Self {
            blocks: shapes
                .iter()
                .map(|s| LoraTransformer {
                    attn1: LoraAttention::new(s.dim, s.dim, rank, device),
                    attn2: LoraAttention::new(s.dim, s.ctx_dim, rank, device),
                })
                .collect(),
        }
    }

    /// A fresh adapter set for every transformer block of `unet` (see [`Self::new`]).
    pub fn for_unet(unet: &crate::UNet, rank: usize, device: &Device) -> Self {
        Self::new(&unet.transformer_shapes(), rank, device)
    }

    /// Rank r (0 for an empty set).
    pub fn rank(&self) -> usize {
        self.blocks.first().map_or(0, |b| b.attn1.to_q.rank())
    }
}

/// An additive embedding of a conditioning vector on the U-Net's time embedding (diffusers
/// `TimestepEmbedding(in, temb)` used as `class_embedding`, ProlificDreamer's camera condition):
/// `[B, in] → Linear(in → temb) → SiLU → Linear(temb → temb) → [B, temb]`. PyTorch-default
/// initialisation (Kaiming-uniform, biases U(±1/√fan_in)).
#[derive(Module, Debug)]
pub struct ConditionEmbedding {
    /// `in → temb`.
    pub linear_1: NnLinear,
    /// `temb → temb`.
    pub linear_2: NnLinear,
}

impl ConditionEmbedding {
    /// A fresh embedding `d_in → temb` on `device` (draws from the device RNG).
    pub fn new(d_in: usize, temb: usize, device: &Device) -> Self {
        Self {
            linear_1: LinearConfig::new(d_in, temb).init(device),
            linear_2: LinearConfig::new(temb, temb).init(device),
        }
    }

    /// `c [B, in] → [B, temb]`.
    pub fn forward(&self, c: Tensor<2>) -> Tensor<2> {
        self.linear_2.forward(silu(self.linear_1.forward(c)))
    }
}
