//! Stable Diffusion 2.1 on burn's wgpu backend: the diffusion prior every distillation method
//! needs, on the same device as the splat rasterizer.
//!
//! - [`tokenizer`]: CLIP BPE (SD 2.x tokenizer) through the `tokenizers` crate.
//! - [`clip`]: the OpenCLIP ViT-H text tower (`[B, 77] ids → [B, 77, 1024]`).
//! - [`unet`]: the denoising U-Net (`UNet2DConditionModel` semantics); its transformer blocks
//!   (`Transformer2DModel`) are the private module `transformer`.
//! - [`lora`]: trainable LoRA adapters on the U-Net's attention and an additive conditioning
//!   embedding (ProlificDreamer's camera condition), as burn modules.
//! - [`vae`]: the `AutoencoderKL` encoder (to the posterior) and decoder.
//! - [`scheduler`]: `alphas_cumprod`, DDIM step and inversion, DDPM posterior variance,
//!   ε ↔ v ↔ x₀ conversions, classifier-free guidance.
//! - [`model`]: diffusers folders and the Hugging Face cache; [`weights`]: memory-mapped
//!   safetensors with errors naming file and tensor; [`config`]: the published configs.
//! - [`nn`], [`blocks`]: layers and blocks shared by the models, including attention computed
//!   in query blocks under the device's storage-binding limit.
//!
//! Every model is built from its `config.json` (no hard-coded shapes), so the same code runs
//! SD 2.1-base (512², ε-prediction) and SD 2.1 (768², v-prediction). Knows nothing of splats.

pub mod blocks;
pub mod clip;
pub mod config;
pub mod download;
pub mod lora;
pub mod model;
pub mod nn;
pub mod pipeline;
pub mod presets;
pub mod scheduler;
pub mod tokenizer;
mod transformer;
pub mod unet;
pub mod vae;
pub mod weights;

pub use clip::TextEncoder;
pub use lora::UNetLora;
pub use unet::{UNet, UNetExtras};
pub use vae::Vae;
pub use weights::Precision;

/// Any error loading or running a model. Messages name the file and field/tensor involved.
#[derive(Debug, thiserror::Error)]
pub enum SdError {
    /// A config file is unreadable, malformed or asks for something unsupported.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A weight file is unreadable or inconsistent with its config.
    #[error(transparent)]
    Weights(#[from] weights::WeightError),
    /// The tokenizer vocabulary could not be read or built.
    #[error(transparent)]
    Tokenizer(#[from] tokenizer::TokenizerError),
    /// The scheduler config is unreadable or unsupported.
    #[error(transparent)]
    Scheduler(#[from] scheduler::SchedulerError),
    /// The model folder or id could not be resolved, or a component is missing.
    #[error("{0}")]
    Model(String),
    /// Token ids the text encoder cannot take (wrong length, or outside the vocabulary).
    #[error("text encoder input: {0}")]
    TokenIds(String),
    /// A prompt has more tokens than the CLIP text encoder's window (it is refused rather than
    /// silently cut).
    #[error(
        "the prompt is {tokens} tokens long; the CLIP text encoder takes at most {max} \
         ({window} with its start and end tokens): \"{prompt}\""
    )]
    PromptTooLong {
        /// The prompt (shortened for the message).
        prompt: String,
        /// Its token count, without the start and end tokens.
        tokens: usize,
        /// The most tokens a prompt may have (75).
        max: usize,
        /// The encoder's window (77).
        window: usize,
    },
}
