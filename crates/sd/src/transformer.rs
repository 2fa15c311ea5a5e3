//! The U-Net's transformer blocks (diffusers `Transformer2DModel` with its
//! `BasicTransformerBlock`s): GroupNorm, linear or 1×1-conv projection in, self-attention,
//! cross-attention to the text embedding, GEGLU feed-forward, projection out, residual. The
//! attention projections take optional LoRA adapters ([`crate::lora`]).

use burn::tensor::Tensor;

use crate::config::UNetArch;
use crate::lora::{LoraAttention, LoraTransformer, TransformerShape};
use crate::nn::{GroupNorm, LayerNorm, Linear, attention, from_tokens, gelu_exact, to_tokens};
use crate::weights::{WeightError, WeightFile};

/// GroupNorm ε of `Transformer2DModel` (diffusers fixes it at 1e-6).
const TRANSFORMER_GN_EPS: f64 = 1e-6;
/// LayerNorm ε of `BasicTransformerBlock`.
const TRANSFORMER_LN_EPS: f64 = 1e-5;

/// Attention with q/k/v/out projections (diffusers `Attention`, no q/k/v bias).
#[derive(Clone, Debug)]
struct Attn {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    upcast: bool,
}

impl Attn {
    pub(crate) fn load(
        w: &WeightFile,
        p: &str,
        dim: usize,
        ctx_dim: usize,
        heads: usize,
        upcast: bool,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            q: w.linear(&format!("{p}.to_q"), dim, dim, false)?,
            k: w.linear(&format!("{p}.to_k"), ctx_dim, dim, false)?,
            v: w.linear(&format!("{p}.to_v"), ctx_dim, dim, false)?,
            out: w.linear(&format!("{p}.to_out.0"), dim, dim, true)?,
            heads,
            upcast,
        })
    }

    /// `x [B, N, dim]`, context `[B, M, ctx]` (None: self-attention) → `[B, N, dim]`; with
    /// `lora = Some((adapters, scale))` every projection gets `+ scale·up(down(·))` of its own
    /// input (diffusers `LoRAAttnProcessor`).
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        ctx: Option<&Tensor<3>>,
        lora: Option<(&LoraAttention, f64)>,
    ) -> Tensor<3> {
        let c = ctx.cloned().unwrap_or_else(|| x.clone());
        let Some((l, s)) = lora else {
            let a = attention(
                self.q.forward(x),
                self.k.forward(c.clone()),
                self.v.forward(c),
                self.heads,
                None,
                self.upcast,
            );
            return self.out.forward(a);
        };
        let q = self.q.forward(x.clone()) + l.to_q.delta(x, s);
        let k = self.k.forward(c.clone()) + l.to_k.delta(c.clone(), s);
        let v = self.v.forward(c.clone()) + l.to_v.delta(c, s);
        let a = attention(q, k, v, self.heads, None, self.upcast);
        self.out.forward(a.clone()) + l.to_out.delta(a, s)
    }
}

/// diffusers `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward,
/// each pre-LayerNorm with a residual.
#[derive(Clone, Debug)]
struct TransformerBlock {
    norm1: LayerNorm,
    attn1: Attn,
    norm2: LayerNorm,
    attn2: Attn,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
}

/// diffusers `Transformer2DModel` with one `BasicTransformerBlock`.
#[derive(Clone, Debug)]
pub(crate) struct Transformer2D {
    /// The diffusers prefix and widths of the block (for LoRA sets).
    pub(crate) shape: TransformerShape,
    norm: GroupNorm,
    proj_in: Linear,
    block: TransformerBlock,
    proj_out: Linear,
}

impl Transformer2D {
    pub(crate) fn load(
        w: &WeightFile,
        p: &str,
        c: usize,
        heads: usize,
        arch: &UNetArch,
    ) -> Result<Self, WeightError> {
        let cfg = &arch.config;
        let ctx = cfg.cross_attention_dim;
        let up = cfg.upcast_attention;
        let b = format!("{p}.transformer_blocks.0");
        let ln = |n: &str| w.layer_norm(&format!("{b}.{n}"), c, TRANSFORMER_LN_EPS);
        let ff = 4 * c;
        // 1×1 convolutions (use_linear_projection = false) are read as linear layers:
        // WeightFile::linear accepts [out, in, 1, 1].
        Ok(Self {
            shape: TransformerShape {
                prefix: b.clone(),
                dim: c,
                ctx_dim: ctx,
            },
            norm: w.group_norm(
                &format!("{p}.norm"),
                cfg.norm_num_groups,
                c,
                TRANSFORMER_GN_EPS,
            )?,
            proj_in: w.linear(&format!("{p}.proj_in"), c, c, true)?,
            block: TransformerBlock {
                norm1: ln("norm1")?,
                attn1: Attn::load(w, &format!("{b}.attn1"), c, c, heads, up)?,
                norm2: ln("norm2")?,
                attn2: Attn::load(w, &format!("{b}.attn2"), c, ctx, heads, up)?,
                norm3: ln("norm3")?,
                ff_in: w.linear(&format!("{b}.ff.net.0.proj"), c, 2 * ff, true)?,
                ff_out: w.linear(&format!("{b}.ff.net.2"), ff, c, true)?,
            },
            proj_out: w.linear(&format!("{p}.proj_out"), c, c, true)?,
        })
    }

    /// `x [B, C, H, W]`, `ctx [B, 77, D]` → `[B, C, H, W]`, optionally with the block's LoRA
    /// adapters at a scale.
    pub(crate) fn forward(
        &self,
        x: Tensor<4>,
        ctx: &Tensor<3>,
        lora: Option<(&LoraTransformer, f64)>,
    ) -> Tensor<4> {
        let [_, _, h, wd] = x.dims();
        // Linear and 1×1-conv projections commute with the reshape, so one path serves both.
        let mut t = self
            .proj_in
            .forward(to_tokens(self.norm.forward(x.clone())));
        let blk = &self.block;
        let l1 = lora.map(|(l, s)| (&l.attn1, s));
        let l2 = lora.map(|(l, s)| (&l.attn2, s));
        t = t.clone() + blk.attn1.forward(blk.norm1.forward(t), None, l1);
        t = t.clone() + blk.attn2.forward(blk.norm2.forward(t), Some(ctx), l2);
        let g = blk.ff_in.forward(blk.norm3.forward(t.clone()));
        let half = g.dims()[2] / 2;
        let (hidden, gate) = (g.clone().narrow(2, 0, half), g.narrow(2, half, half));
        t = t + blk.ff_out.forward(hidden * gelu_exact(gate));
        x + from_tokens(self.proj_out.forward(t), h, wd)
    }
}
