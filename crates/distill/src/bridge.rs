//! **SDS-Bridge** (McAllister, Ge, Huang, Jacobs, Efros, Holynski, Kanazawa 2024, "Rethinking
//! Score Distillation as a Bridge Between Image Distributions"; docs/methods.md §4).
//!
//! Score distillation read as a one-step Schrödinger bridge from the distribution of the
//! current renders (described by a *source prompt* listing SDS's artefacts) to the target
//! distribution (the prompt). Two stages (§4.3):
//!
//! 1. steps `< stage_two_start`: plain SDS, `g = w₁(t)·(ε̂_∅ + s(ε̂_tgt − ε̂_∅) − ε)` with
//!    `s = stage_one_cfg` (3D: 100) and `w₁ = 1 − ᾱ_t` (official code);
//! 2. from `stage_two_start`: `g = w·w₂(t)·(ε̂(z_t; y_tgt, t) − ε̂(z_t; y_src, t))`, both
//!    predictions on the **same** `z_t`, no `−ε` term (the sampled noise cancels), `w = 1`
//!    and `w₂ = 1` (uniform) in 3D, `w = 25`, `w₂ = 1 − ᾱ_t` in 2D.
//!
//! Prompts (§4.1, §6.3 item 5): `y_tgt` is the view prompt; `y_src` is the prompt with the
//! high-quality descriptors removed plus the artefact suffix (", oversaturated, smooth,
//! pixelated, cartoon, foggy, hazy, blurry, bad structure, noisy, malformed"), with the same
//! view suffix as `y_tgt`. For image editing (painting → real) set `source_prompt` (e.g. the
//! prompt + ", painting") and `stage_two_start = 0`.
//!
//! Injection is the usual sum-reduction pseudo-loss (official code), so `g` is what reaches the
//! latents.

use crate::timesteps::TimestepSchedule;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::{
    DistillError, ExtraPrompt, Guidance, GuidanceInput, GuidanceOutput, Prior, Stat, Weighting,
};

/// The artefact suffix of the calibrated source prompt ([S3] §4.1).
pub const SOURCE_SUFFIX: &str = "oversaturated, smooth, pixelated, cartoon, foggy, hazy, blurry, bad structure, noisy, malformed";

/// Settings of [`Bridge`] (`[guidance.bridge]`). Defaults: the paper's 3D setting (§4.3/§4.4,
/// §6.3 items 4–6) with the switch scaled to a 5,000-step 3DGS run ([REC]: the paper's NeRF
/// run switches at 20,000 of 25,000 steps; the same 80 % is step 4,000 of 5,000).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// First step of stage 2 (0 = no SDS stage, as for editing).
    pub stage_two_start: usize,
    /// Stage-1 SDS CFG scale, form A (3D: 100; 2D: 40).
    pub stage_one_cfg: f64,
    /// Stage-1 weighting (official code: 1 − ᾱ_t).
    pub stage_one_weighting: Weighting,
    /// Stage-2 multiplier w (3D: 1; 2D: 25).
    pub stage_two_weight: f64,
    /// Stage-2 timestep weighting (3D code: uniform; 2D code: 1 − ᾱ_t).
    pub stage_two_weighting: Weighting,
    /// Appended to the stripped prompt to form `y_src` (after ", ").
    pub source_suffix: String,
    /// Descriptors removed from the prompt before the suffix is appended (case-insensitive,
    /// whole comma-separated phrases or words).
    pub strip_descriptors: Vec<String>,
    /// A literal source prompt instead of the derived one (editing: "<prompt>, painting").
    pub source_prompt: Option<String>,
    /// Timestep schedule (the official 3D config, threestudio's `max_step_percent [5000, 0.98, 0.5,
    /// 5001]`: U{20, …, 980}, upper bound 500 from step 5,001; docs/methods.md §4.3 "Code
    /// timesteps").
    pub timesteps: TimestepSchedule,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            stage_two_start: 4_000,
            stage_one_cfg: 100.0,
            stage_one_weighting: Weighting::Sigma2,
            stage_two_weight: 1.0,
            stage_two_weighting: Weighting::Uniform,
            source_suffix: SOURCE_SUFFIX.into(),
            strip_descriptors: [
                "highly detailed",
                "detailed",
                "high resolution",
                "high-resolution",
                "high quality",
                "best quality",
                "sharp",
                "8k",
                "4k",
                "hd",
                "uhd",
                "dslr",
                "masterpiece",
                "photorealistic",
            ]
            .map(String::from)
            .to_vec(),
            source_prompt: None,
            timesteps: TimestepSchedule::stepped(5001, 500),
        }
    }
}

impl BridgeConfig {
    /// Check the settings.
    ///
    /// # Errors
    /// [`DistillError::Setting`] naming the `guidance.bridge.*` setting.
    pub fn validate(&self) -> Result<(), DistillError> {
        for (name, v) in [
            ("stage_one_cfg", self.stage_one_cfg),
            ("stage_two_weight", self.stage_two_weight),
        ] {
            if !v.is_finite() {
                return Err(DistillError::Setting {
                    name: format!("guidance.bridge.{name}"),
                    detail: format!("{v} is not finite"),
                });
            }
        }
        Ok(())
    }

    /// The source prompt `y_src` for `prompt` (without view suffix): `source_prompt` if set,
    /// else the prompt with [`BridgeConfig::strip_descriptors`] removed, then ", " and the
    /// suffix.
    pub fn source_for(&self, prompt: &str) -> String {
        if let Some(p) = &self.source_prompt {
            return p.clone();
        }
        let stripped = strip(prompt, &self.strip_descriptors);
        if self.source_suffix.is_empty() {
            stripped
        } else if stripped.is_empty() {
            self.source_suffix.clone()
        } else {
            format!("{stripped}, {}", self.source_suffix)
        }
    }
}

/// `prompt` without the descriptors: each comma-separated phrase loses every descriptor that
/// occurs in it as whole words (case-insensitive); phrases left empty are dropped.
fn strip(prompt: &str, descriptors: &[String]) -> String {
    let mut sorted: Vec<Vec<String>> = descriptors
        .iter()
        .map(|d| d.split_whitespace().map(str::to_lowercase).collect())
        .filter(|d: &Vec<String>| !d.is_empty())
        .collect();
    // Longest first, so "highly detailed" goes before "detailed".
    sorted.sort_by_key(|d| std::cmp::Reverse(d.len()));
    prompt
        .split(',')
        .filter_map(|phrase| {
            let mut words: Vec<&str> = phrase.split_whitespace().collect();
            for d in &sorted {
                let mut i = 0;
                while i + d.len() <= words.len() {
                    let hit = words[i..i + d.len()]
                        .iter()
                        .zip(d)
                        .all(|(w, d)| w.to_lowercase() == *d);
                    if hit {
                        words.drain(i..i + d.len());
                    } else {
                        i += 1;
                    }
                }
            }
            (!words.is_empty()).then(|| words.join(" "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// SDS-Bridge guidance (two stages; module docs).
#[derive(Clone, Debug)]
pub struct Bridge {
    /// Settings.
    pub config: BridgeConfig,
}

impl Bridge {
    /// New SDS-Bridge guidance.
    ///
    /// # Errors
    /// [`DistillError::Setting`] when [`BridgeConfig::validate`] fails.
    pub fn new(config: BridgeConfig) -> Result<Self, DistillError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Whether `step` is in stage 2.
    pub fn stage_two(&self, step: usize) -> bool {
        step >= self.config.stage_two_start
    }
}

impl Guidance for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn cfg_scale(&self) -> f64 {
        self.config.stage_one_cfg
    }

    /// `y_src`, view-dependent like the prompt.
    fn extra_prompts(&self, prompt: &str) -> Vec<ExtraPrompt> {
        vec![ExtraPrompt {
            text: self.config.source_for(prompt),
            view_dependent: true,
        }]
    }

    /// Stage 1: SDS; stage 2: `w·w₂(t)(ε̂_tgt − ε̂_src)` (module docs). Stat `stage` (1 or 2).
    fn gradient(
        &mut self,
        prior: &Prior<'_>,
        input: &GuidanceInput,
    ) -> Result<GuidanceOutput, DistillError> {
        let c = &self.config;
        if !self.stage_two(input.step) {
            let (_, eps_hat) = input.guided_eps(prior, c.stage_one_cfg)?;
            let w = c
                .stage_one_weighting
                .tensor(prior.schedule, &input.timesteps, &eps_hat);
            return Ok(GuidanceOutput {
                grad: (eps_hat - input.noise.clone()) * w,
                stats: vec![("stage", Stat::Host(1.0))],
            });
        }
        crate::check_input(input)?;
        let src: Tensor<3> = input.extra.first().cloned().ok_or_else(|| {
            DistillError::Input("SDS-Bridge needs the source prompt's embeddings".into())
        })?;
        let z_t = input.noisy(prior.schedule);
        // One batched forward of [src; tgt]: eps_cfg puts its `uncond` argument first.
        let (_, eps_tgt, eps_src) =
            prior.eps_cfg(z_t, &input.timesteps, input.cond.clone(), src, 1.0);
        let w = c
            .stage_two_weighting
            .tensor(prior.schedule, &input.timesteps, &eps_tgt);
        Ok(GuidanceOutput {
            grad: (eps_tgt - eps_src) * w * c.stage_two_weight,
            stats: vec![("stage", Stat::Host(2.0))],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_prompt_strips_quality_descriptors() {
        let c = BridgeConfig::default();
        assert_eq!(
            c.source_for("a DSLR photo of a corgi, highly detailed, 8K"),
            format!("a photo of a corgi, {SOURCE_SUFFIX}")
        );
        // Whole words only, case-insensitive, phrase by phrase; "sharpen" is not "sharp".
        assert_eq!(
            c.source_for("a sharp, High Quality image of a fox sharpening a pencil"),
            format!("a, image of a fox sharpening a pencil, {SOURCE_SUFFIX}")
        );
        assert_eq!(c.source_for("highly detailed"), SOURCE_SUFFIX);
        let edit = BridgeConfig {
            source_prompt: Some("a cat, painting".into()),
            ..Default::default()
        };
        assert_eq!(edit.source_for("a cat"), "a cat, painting");
    }
}
