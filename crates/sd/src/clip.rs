//! The CLIP text encoder of SD 2.x: OpenCLIP ViT-H/14's text tower as diffusers stores it
//! (transformers `CLIPTextModel`, 23 of the 24 layers, erf-GELU, causal mask, final layer norm).
//!
//! Output: `last_hidden_state [B, 77, D]`, the `encoder_hidden_states` the U-Net
//! cross-attends to. Only the causal mask is applied (no padding mask), as in diffusers'
//! `StableDiffusionPipeline.encode_prompt`.
//!
//! The token-embedding table (49408 × 1024 f32 = 202 MB, past lavapipe's 128 MiB binding
//! limit) stays on the host; the 77 rows of each prompt are gathered there and uploaded.

use std::path::Path;

use burn::tensor::{Device, FloatDType, Tensor, TensorData, activation::sigmoid};

use crate::config::ClipTextConfig;
use crate::nn::{LayerNorm, Linear, attention, causal_mask, gelu_exact};
use crate::weights::{WeightError, WeightFile};

/// One pre-norm transformer layer.
#[derive(Clone, Debug)]
struct Layer {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The text encoder with its weights on the device.
#[derive(Clone, Debug)]
pub struct TextEncoder {
    /// The config it was built from.
    pub config: ClipTextConfig,
    /// `[vocab, D]` row-major token embeddings on the host.
    token_embedding: Vec<f32>,
    /// `[77, D]`.
    position_embedding: Tensor<2>,
    layers: Vec<Layer>,
    final_ln: LayerNorm,
    mask: Tensor<2>,
    quick_gelu: bool,
    device: Device,
}

impl TextEncoder {
    /// Build from a config and a weight file. Keys are accepted with or without the
    /// `text_model.` prefix; an `embeddings.position_ids` buffer is ignored.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming the file and tensor.
    pub fn load(config: ClipTextConfig, w: &WeightFile) -> Result<Self, WeightError> {
        let probe = "embeddings.token_embedding.weight";
        let prefix = if w.contains(&format!("text_model.{probe}")) || !w.contains(probe) {
            "text_model."
        } else {
            ""
        };
        let key = |k: &str| format!("{prefix}{k}");
        let d = config.hidden_size;
        let eps = config.layer_norm_eps;
        let token_embedding = w.host_f32(&key(probe), &[config.vocab_size, d])?;
        let position_embedding = w.tensor(
            &key("embeddings.position_embedding.weight"),
            [config.max_position_embeddings, d],
        )?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = key(&format!("encoder.layers.{i}"));
            layers.push(Layer {
                ln1: w.layer_norm(&format!("{p}.layer_norm1"), d, eps)?,
                q: w.linear(&format!("{p}.self_attn.q_proj"), d, d, true)?,
                k: w.linear(&format!("{p}.self_attn.k_proj"), d, d, true)?,
                v: w.linear(&format!("{p}.self_attn.v_proj"), d, d, true)?,
                out: w.linear(&format!("{p}.self_attn.out_proj"), d, d, true)?,
                ln2: w.layer_norm(&format!("{p}.layer_norm2"), d, eps)?,
                fc1: w.linear(&format!("{p}.mlp.fc1"), d, config.intermediate_size, true)?,
                fc2: w.linear(&format!("{p}.mlp.fc2"), config.intermediate_size, d, true)?,
            });
        }
        let final_ln = w.layer_norm(&key("final_layer_norm"), d, eps)?;
        let device = w.device().clone();
        Ok(Self {
            mask: causal_mask(config.max_position_embeddings, &device),
            quick_gelu: config.hidden_act == "quick_gelu",
            config,
            token_embedding,
            position_embedding,
            layers,
            final_ln,
            device,
        })
    }

    /// Load `text_encoder/` of a diffusers folder (see [`crate::model::component_weights`]).
    ///
    /// # Errors
    /// Config and weight errors naming the file.
    pub fn from_dir(
        dir: &Path,
        device: &Device,
        precision: crate::Precision,
    ) -> Result<Self, crate::SdError> {
        let config = ClipTextConfig::from_file(&dir.join("config.json"))?;
        let file = crate::model::component_weights(dir, "model")?;
        let w = WeightFile::open(&file, device, precision)?;
        Ok(Self::load(config, &w)?)
    }

    /// Encode token ids (each `[77]`, from [`crate::tokenizer`]) to `[B, 77, D]` f32.
    ///
    /// # Errors
    /// [`crate::SdError::TokenIds`] when a sequence is not `max_position_embeddings` long or
    /// an id is outside the vocabulary.
    pub fn forward(&self, ids: &[Vec<u32>]) -> Result<Tensor<3>, crate::SdError> {
        let n = self.config.max_position_embeddings;
        let d = self.config.hidden_size;
        let b = ids.len();
        let mut emb = Vec::with_capacity(b * n * d);
        for (s, seq) in ids.iter().enumerate() {
            if seq.len() != n {
                return Err(crate::SdError::TokenIds(format!(
                    "prompt {s}: {} token ids, expected {n}",
                    seq.len()
                )));
            }
            for &id in seq {
                let id = id as usize;
                if id >= self.config.vocab_size {
                    return Err(crate::SdError::TokenIds(format!(
                        "prompt {s}: token id {id} is outside the vocabulary of {}",
                        self.config.vocab_size
                    )));
                }
                emb.extend_from_slice(&self.token_embedding[id * d..(id + 1) * d]);
            }
        }
        let dtype = self.position_embedding.dtype();
        let x = Tensor::<3>::from_data(TensorData::new(emb, [b, n, d]), &self.device).cast(dtype);
        let mut x = x + self.position_embedding.clone().unsqueeze::<3>();
        let heads = self.config.num_attention_heads;
        for l in &self.layers {
            let h = l.ln1.forward(x.clone());
            let a = attention(
                l.q.forward(h.clone()),
                l.k.forward(h.clone()),
                l.v.forward(h),
                heads,
                Some(self.mask.clone()),
                true,
            );
            x = x + l.out.forward(a);
            let h = l.fc1.forward(l.ln2.forward(x.clone()));
            let h = if self.quick_gelu {
                h.clone() * sigmoid(h * 1.702)
            } else {
                gelu_exact(h)
            };
            x = x + l.fc2.forward(h);
        }
        Ok(self.final_ln.forward(x).cast(FloatDType::F32))
    }
}
