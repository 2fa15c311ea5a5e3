//! Stable Diffusion 2.1 on burn's wgpu backend: the diffusion prior every distillation method
//! needs, on the same device as the splat rasterizer.
//!
//! - [`tokenizer`]: CLIP BPE (SD 2.x tokenizer) through the `tokenizers` crate.
//! - [`scheduler`]: `alphas_cumprod`, DDIM step and inversion, DDPM posterior variance,
//!   ε ↔ v ↔ x₀ conversions, classifier-free guidance.
//!
//! Knows nothing of splats. See `docs/architecture.md` for the crate seams.

pub mod scheduler;
pub mod tokenizer;
