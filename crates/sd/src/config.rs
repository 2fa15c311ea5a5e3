//! The published model configs (`config.json` of a diffusers folder) as typed structs.
//!
//! Field names and defaults follow diffusers' `UNet2DConditionModel` and `AutoencoderKL`
//! constructors and transformers' `CLIPTextConfig`. Options splatdream does not implement are
//! rejected with an error that names the file and the field, never silently ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Errors reading a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The config file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Malformed JSON or a field of the wrong type.
    #[error("{file}: {detail}")]
    Parse {
        /// The config file.
        file: PathBuf,
        /// serde's message (names the field and line).
        detail: String,
    },
    /// A field has a value splatdream does not implement or that is inconsistent.
    #[error("{file}: field `{field}`: {detail}")]
    Unsupported {
        /// The config file.
        file: PathBuf,
        /// The field.
        field: String,
        /// What is wrong.
        detail: String,
    },
}

/// Read and parse a JSON config file.
///
/// # Errors
/// [`ConfigError::Io`] / [`ConfigError::Parse`] naming the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        // serde_json gives line and column only; quote the line so the field is visible.
        let line = text
            .lines()
            .nth(e.line().saturating_sub(1))
            .map(|l| format!(" (`{}`)", l.trim()))
            .unwrap_or_default();
        ConfigError::Parse {
            file: path.to_path_buf(),
            detail: format!("{e}{line}"),
        }
    })
}

/// [`ConfigError::Unsupported`] for `field` of `path`.
fn unsupported(path: &Path, field: &str, detail: String) -> ConfigError {
    ConfigError::Unsupported {
        file: path.to_path_buf(),
        field: field.into(),
        detail,
    }
}

/// An int or a per-block list (diffusers accepts both for head counts).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    /// One value for every block.
    One(usize),
    /// One value per down block.
    Each(Vec<usize>),
}

impl PerBlock {
    /// Expand to `n` blocks.
    fn expand(&self, n: usize) -> Vec<usize> {
        match self {
            Self::One(v) => vec![*v; n],
            Self::Each(v) => v.clone(),
        }
    }
}

fn d_true() -> bool {
    true
}
fn d_eps() -> f64 {
    1e-5
}
fn d_groups() -> usize {
    32
}
fn d_two() -> usize {
    2
}
fn d_one() -> usize {
    1
}
fn d_three() -> usize {
    3
}
fn d_four() -> usize {
    4
}
fn d_scale() -> f64 {
    0.18215
}
fn d_silu() -> String {
    "silu".into()
}
fn d_one_f() -> f64 {
    1.0
}

/// `unet/config.json` (diffusers `UNet2DConditionModel`).
#[derive(Clone, Debug, Deserialize)]
pub struct UNetConfig {
    /// Latent channels in.
    #[serde(default = "d_four")]
    pub in_channels: usize,
    /// Channels out (4: ε, v or x₀ in latent space).
    #[serde(default = "d_four")]
    pub out_channels: usize,
    /// Channel width per resolution level.
    pub block_out_channels: Vec<usize>,
    /// Down block types (`CrossAttnDownBlock2D` / `DownBlock2D`).
    pub down_block_types: Vec<String>,
    /// Up block types (`UpBlock2D` / `CrossAttnUpBlock2D`).
    pub up_block_types: Vec<String>,
    /// Resnets per down block (up blocks have one more).
    #[serde(default = "d_two")]
    pub layers_per_block: usize,
    /// Historic name: the number of attention HEADS per block in diffusers' SD 2.x configs.
    #[serde(default)]
    pub attention_head_dim: Option<PerBlock>,
    /// Newer configs spell the head count correctly; takes precedence when present.
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    /// Text-embedding width (1024 for OpenCLIP ViT-H).
    pub cross_attention_dim: usize,
    /// GroupNorm groups.
    #[serde(default = "d_groups")]
    pub norm_num_groups: usize,
    /// GroupNorm ε of the resnets and the output norm.
    #[serde(default = "d_eps")]
    pub norm_eps: f64,
    /// Transformer projections as linear layers (SD 2.x) rather than 1×1 convolutions.
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Attention scores in f32 under f16 compute (SD 2.1-v).
    #[serde(default)]
    pub upcast_attention: bool,
    /// Timestep embedding order: cos first when true.
    #[serde(default = "d_true")]
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the timestep embedding.
    #[serde(default)]
    pub freq_shift: f64,
    /// Padding of the down-sampling convolutions.
    #[serde(default = "d_one")]
    pub downsample_padding: usize,
    /// Output scale of the middle block's resnets.
    #[serde(default = "d_one_f")]
    pub mid_block_scale_factor: f64,
    /// Activation (only `silu`).
    #[serde(default = "d_silu")]
    pub act_fn: String,
    /// Latent side the model was trained at (64 for 2.1-base, 96 for 2.1).
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Transformer layers per attention block (SD 2.x: 1).
    #[serde(default)]
    pub transformer_layers_per_block: Option<PerBlock>,
    /// Must be false.
    #[serde(default)]
    pub center_input_sample: bool,
    /// Must be false.
    #[serde(default)]
    pub dual_cross_attention: bool,
    /// Must be false.
    #[serde(default)]
    pub only_cross_attention: serde_json::Value,
    /// Must be absent (no class conditioning).
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    /// Must be absent.
    #[serde(default)]
    pub class_embed_type: Option<String>,
    /// Must be absent.
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// `default` only.
    #[serde(default)]
    pub resnet_time_scale_shift: Option<String>,
    /// `UNetMidBlock2DCrossAttn` only.
    #[serde(default)]
    pub mid_block_type: Option<String>,
    /// 3 only.
    #[serde(default = "d_three")]
    pub conv_in_kernel: usize,
    /// 3 only.
    #[serde(default = "d_three")]
    pub conv_out_kernel: usize,
    /// `positional` only.
    #[serde(default)]
    pub time_embedding_type: Option<String>,
}

/// The checked, expanded U-Net architecture.
#[derive(Clone, Debug)]
pub struct UNetArch {
    /// The raw config.
    pub config: UNetConfig,
    /// Heads per down block (up blocks use the reverse).
    pub heads: Vec<usize>,
    /// Whether each down block has cross-attention.
    pub down_attn: Vec<bool>,
    /// Whether each up block has cross-attention.
    pub up_attn: Vec<bool>,
}

impl UNetConfig {
    /// Read `path`.
    ///
    /// # Errors
    /// I/O, parse, and unsupported-option errors naming the file and field.
    pub fn from_file(path: &Path) -> Result<UNetArch, ConfigError> {
        let c: Self = read_json(path)?;
        c.check(path)
    }

    /// Validate and expand.
    ///
    /// # Errors
    /// [`ConfigError::Unsupported`] naming the field.
    pub fn check(self, path: &Path) -> Result<UNetArch, ConfigError> {
        let bad = |field: &str, detail: String| unsupported(path, field, detail);
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(bad("block_out_channels", "empty".into()));
        }
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(bad(
                "down_block_types",
                format!(
                    "{} down and {} up blocks for {n} block_out_channels",
                    self.down_block_types.len(),
                    self.up_block_types.len()
                ),
            ));
        }
        let kind = |field: &str, t: &str, attn: &str, plain: &str| match t {
            x if x == attn => Ok(true),
            x if x == plain => Ok(false),
            other => Err(bad(
                field,
                format!("block type `{other}` is not implemented (expected {attn} or {plain})"),
            )),
        };
        let down_attn = self
            .down_block_types
            .iter()
            .map(|t| kind("down_block_types", t, "CrossAttnDownBlock2D", "DownBlock2D"))
            .collect::<Result<Vec<_>, _>>()?;
        let up_attn = self
            .up_block_types
            .iter()
            .map(|t| kind("up_block_types", t, "CrossAttnUpBlock2D", "UpBlock2D"))
            .collect::<Result<Vec<_>, _>>()?;
        let heads = match (&self.num_attention_heads, &self.attention_head_dim) {
            (Some(h), _) | (None, Some(h)) => h.expand(n),
            (None, None) => vec![8; n],
        };
        if heads.len() != n {
            return Err(bad(
                "attention_head_dim",
                format!("{} entries for {n} blocks", heads.len()),
            ));
        }
        for (i, (&c, &h)) in self.block_out_channels.iter().zip(&heads).enumerate() {
            if h == 0 || c % h != 0 {
                return Err(bad(
                    "attention_head_dim",
                    format!("block {i}: {c} channels do not split into {h} heads"),
                ));
            }
            if c % self.norm_num_groups != 0 {
                return Err(bad(
                    "norm_num_groups",
                    format!(
                        "block {i}: {c} channels do not split into {} groups",
                        self.norm_num_groups
                    ),
                ));
            }
        }
        if let Some(t) = &self.transformer_layers_per_block
            && t.expand(n).iter().any(|&l| l != 1)
        {
            return Err(bad(
                "transformer_layers_per_block",
                "only 1 is implemented".into(),
            ));
        }
        if self.act_fn != "silu" {
            return Err(bad("act_fn", format!("`{}`; only silu", self.act_fn)));
        }
        if self.center_input_sample {
            return Err(bad("center_input_sample", "true is not implemented".into()));
        }
        if self.dual_cross_attention {
            return Err(bad(
                "dual_cross_attention",
                "true is not implemented".into(),
            ));
        }
        let only_cross = match &self.only_cross_attention {
            serde_json::Value::Null | serde_json::Value::Bool(false) => false,
            serde_json::Value::Array(v) => v.iter().any(|b| b.as_bool() == Some(true)),
            _ => true,
        };
        if only_cross {
            return Err(bad(
                "only_cross_attention",
                "true is not implemented".into(),
            ));
        }
        if self.num_class_embeds.is_some() || self.class_embed_type.is_some() {
            return Err(bad(
                "class_embed_type",
                "class conditioning is not implemented".into(),
            ));
        }
        if self.addition_embed_type.is_some() {
            return Err(bad(
                "addition_embed_type",
                "not implemented (SD 2.1 has none)".into(),
            ));
        }
        if let Some(s) = &self.resnet_time_scale_shift
            && s != "default"
        {
            return Err(bad(
                "resnet_time_scale_shift",
                format!("`{s}`; only default"),
            ));
        }
        if let Some(s) = &self.mid_block_type
            && s != "UNetMidBlock2DCrossAttn"
        {
            return Err(bad(
                "mid_block_type",
                format!("`{s}`; only UNetMidBlock2DCrossAttn"),
            ));
        }
        if let Some(s) = &self.time_embedding_type
            && s != "positional"
        {
            return Err(bad(
                "time_embedding_type",
                format!("`{s}`; only positional"),
            ));
        }
        if self.conv_in_kernel != 3 || self.conv_out_kernel != 3 {
            return Err(bad(
                "conv_in_kernel",
                "only 3×3 input/output convolutions".into(),
            ));
        }
        Ok(UNetArch {
            config: self,
            heads,
            down_attn,
            up_attn,
        })
    }
}

/// `vae/config.json` (diffusers `AutoencoderKL`).
#[derive(Clone, Debug, Deserialize)]
pub struct VaeConfig {
    /// Image channels (3).
    #[serde(default = "d_three")]
    pub in_channels: usize,
    /// Decoded channels (3).
    #[serde(default = "d_three")]
    pub out_channels: usize,
    /// Latent channels (4).
    #[serde(default = "d_four")]
    pub latent_channels: usize,
    /// Channel width per level; the encoder downsamples by 2 between levels.
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder block (decoder blocks have one more).
    #[serde(default = "d_two")]
    pub layers_per_block: usize,
    /// GroupNorm groups.
    #[serde(default = "d_groups")]
    pub norm_num_groups: usize,
    /// Latent scaling factor applied by pipelines (0.18215 for SD 2.1).
    #[serde(default = "d_scale")]
    pub scaling_factor: f64,
    /// Activation (only `silu`).
    #[serde(default = "d_silu")]
    pub act_fn: String,
    /// Image side the VAE was trained at.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Self-attention in the middle blocks (default true).
    #[serde(default = "d_true")]
    pub mid_block_add_attention: bool,
    /// Whether `quant_conv` exists (default true).
    #[serde(default = "d_true")]
    pub use_quant_conv: bool,
    /// Whether `post_quant_conv` exists (default true).
    #[serde(default = "d_true")]
    pub use_post_quant_conv: bool,
    /// Encoder block types.
    #[serde(default)]
    pub down_block_types: Vec<String>,
    /// Decoder block types.
    #[serde(default)]
    pub up_block_types: Vec<String>,
}

impl VaeConfig {
    /// Read and validate `path`.
    ///
    /// # Errors
    /// I/O, parse, and unsupported-option errors naming the file and field.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let c: Self = read_json(path)?;
        let bad = |field: &str, detail: String| unsupported(path, field, detail);
        if c.block_out_channels.is_empty() {
            return Err(bad("block_out_channels", "empty".into()));
        }
        if let Some(ch) = c
            .block_out_channels
            .iter()
            .find(|&&ch| ch % c.norm_num_groups != 0)
        {
            return Err(bad(
                "norm_num_groups",
                format!(
                    "{ch} channels do not split into {} groups",
                    c.norm_num_groups
                ),
            ));
        }
        if c.act_fn != "silu" {
            return Err(bad("act_fn", format!("`{}`; only silu", c.act_fn)));
        }
        if let Some(t) = c
            .down_block_types
            .iter()
            .find(|t| *t != "DownEncoderBlock2D")
        {
            return Err(bad("down_block_types", format!("`{t}` is not implemented")));
        }
        if let Some(t) = c.up_block_types.iter().find(|t| *t != "UpDecoderBlock2D") {
            return Err(bad("up_block_types", format!("`{t}` is not implemented")));
        }
        Ok(c)
    }
}

/// `text_encoder/config.json` (transformers `CLIPTextConfig`).
#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    /// Token-embedding rows (49408).
    pub vocab_size: usize,
    /// Model width D (1024 for OpenCLIP ViT-H).
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Transformer layers (23 in SD 2.x: OpenCLIP's penultimate layer).
    pub num_hidden_layers: usize,
    /// Positions (77).
    pub max_position_embeddings: usize,
    /// LayerNorm ε.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// `gelu` (erf, SD 2.x) or `quick_gelu` (SD 1.x).
    #[serde(default = "d_gelu")]
    pub hidden_act: String,
}

fn d_gelu() -> String {
    "gelu".into()
}

impl ClipTextConfig {
    /// Read and validate `path`.
    ///
    /// # Errors
    /// I/O, parse, and unsupported-option errors naming the file and field.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let c: Self = read_json(path)?;
        let bad = |field: &str, detail: String| unsupported(path, field, detail);
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    c.num_attention_heads, c.hidden_size
                ),
            ));
        }
        if c.hidden_act != "gelu" && c.hidden_act != "quick_gelu" {
            return Err(bad(
                "hidden_act",
                format!("`{}`; expected gelu or quick_gelu", c.hidden_act),
            ));
        }
        Ok(c)
    }
}
