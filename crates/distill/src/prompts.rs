//! View-dependent prompting (DreamFusion §3.2; threestudio's `PromptProcessor`): append a view
//! description chosen from the camera's azimuth and elevation, so the prior is asked for the
//! side of the object the camera sees. Azimuth 0° is the object's front (camera on +x), the
//! world is z-up. [`PromptProcessor`] owns a run's view prompts and their embeddings.

use burn::tensor::{Device, Int, Tensor, TensorData};
use sd::pipeline::StableDiffusion;
use serde::{Deserialize, Serialize};

/// Which way the camera looks at the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// |azimuth| < `front_deg`.
    Front,
    /// Between front and back.
    Side,
    /// |azimuth| > 180° − `back_deg`.
    Back,
    /// Elevation above `overhead_deg`.
    Overhead,
}

impl View {
    /// Every view, in a fixed order (the order of [`ViewPrompts::all`]).
    pub const ALL: [View; 4] = [View::Front, View::Side, View::Back, View::Overhead];
}

/// Suffixes and thresholds (threestudio defaults: front 45°, back 45°, overhead 60°).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViewPromptConfig {
    /// Whether to append view suffixes at all.
    pub enabled: bool,
    /// Half-width of the front sector in degrees.
    pub front_deg: f64,
    /// Half-width of the back sector in degrees.
    pub back_deg: f64,
    /// Elevation above which the view is "overhead", degrees.
    pub overhead_deg: f64,
    /// Suffixes for front, side, back, overhead.
    pub suffixes: [String; 4],
}

impl Default for ViewPromptConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            front_deg: 45.0,
            back_deg: 45.0,
            overhead_deg: 60.0,
            suffixes: [
                ", front view".into(),
                ", side view".into(),
                ", back view".into(),
                ", overhead view".into(),
            ],
        }
    }
}

/// The prompts of one run: the base prompt with each view's suffix.
#[derive(Clone, Debug)]
pub struct ViewPrompts {
    /// Settings.
    pub config: ViewPromptConfig,
    /// The user's prompt.
    pub base: String,
}

impl ViewPrompts {
    /// Prompts for `base`.
    pub fn new(base: &str, config: ViewPromptConfig) -> Self {
        Self {
            config,
            base: base.to_string(),
        }
    }

    /// The view for a camera at `azimuth_deg` (any range; wrapped to (−180°, 180°]) and
    /// `elevation_deg`.
    pub fn view(&self, azimuth_deg: f64, elevation_deg: f64) -> View {
        let c = &self.config;
        let az = wrap_deg(azimuth_deg).abs();
        if elevation_deg > c.overhead_deg {
            View::Overhead
        } else if az < c.front_deg {
            View::Front
        } else if az > 180.0 - c.back_deg {
            View::Back
        } else {
            View::Side
        }
    }

    /// The prompt text for a view (the base prompt when suffixes are disabled).
    pub fn text(&self, view: View) -> String {
        if !self.config.enabled {
            return self.base.clone();
        }
        let i = View::ALL.iter().position(|v| *v == view).unwrap_or(0);
        format!("{}{}", self.base, self.config.suffixes[i])
    }

    /// The four prompt texts in [`View::ALL`] order (encode once, index per camera).
    pub fn all(&self) -> [String; 4] {
        View::ALL.map(|v| self.text(v))
    }

    /// LucidDreamer's interpolation of the front/side/back embeddings by azimuth (docs/methods.md
    /// §5.4): weights `(front, side, back)` summing to 1 — front↔side linearly for |az| < 90°,
    /// side↔back beyond.
    pub fn interpolation(azimuth_deg: f64) -> [f64; 3] {
        let az = wrap_deg(azimuth_deg).abs();
        if az < 90.0 {
            let r = az / 90.0;
            [1.0 - r, r, 0.0]
        } else {
            let r = (az - 90.0) / 90.0;
            [0.0, 1.0 - r, r]
        }
    }
}

/// Wrap degrees to (−180, 180].
pub fn wrap_deg(a: f64) -> f64 {
    let mut a = a % 360.0;
    if a > 180.0 {
        a -= 360.0;
    }
    if a <= -180.0 {
        a += 360.0;
    }
    a
}

/// A run's prompts and their text embeddings, encoded once (threestudio's `PromptProcessor`):
/// the view prompts of the base prompt ([`ViewPrompts`]: per view — front, side, back,
/// overhead — the prompt with its suffix), every view-dependent extra prompt a method asks for
/// ([`crate::Guidance::extra_prompts`]) with the same suffixes, the negative prompt and the
/// fixed extra prompts once. A step asks it for the view of each camera and the embeddings of
/// a batch ([`PromptProcessor::select`]).
pub struct PromptProcessor {
    /// The base prompt's view prompts.
    prompts: ViewPrompts,
    /// `[4, 77, D]` the view prompts.
    views: Tensor<3>,
    /// `[1, 77, D]`.
    negative: Tensor<3>,
    /// Per extra prompt: `[4, 77, D]` (view-dependent) or `[1, 77, D]`.
    extra: Vec<Tensor<3>>,
}

impl PromptProcessor {
    /// Encode the four view prompts of `prompt` (suffixes and thresholds from `config`),
    /// `negative` and `extra` (view-dependent ones with the same view suffixes) in one
    /// text-encoder batch of `model`.
    ///
    /// # Errors
    /// [`crate::DistillError::Sd`]: the tokenizer's or text encoder's error (a prompt longer
    /// than CLIP's window is refused, not cut).
    pub fn encode(
        model: &StableDiffusion,
        prompt: &str,
        config: &ViewPromptConfig,
        negative: &str,
        extra: &[crate::ExtraPrompt],
    ) -> Result<Self, crate::DistillError> {
        let views = ViewPrompts::new(prompt, config.clone());
        let mut texts: Vec<String> = views.all().to_vec();
        texts.push(negative.to_string());
        let mut counts = vec![];
        for e in extra {
            if e.view_dependent {
                texts.extend(ViewPrompts::new(&e.text, config.clone()).all());
                counts.push(4);
            } else {
                texts.push(e.text.clone());
                counts.push(1);
            }
        }
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let all = model.encode_prompts(&refs)?.detach();
        let mut at = 5;
        let extra = counts
            .into_iter()
            .map(|n| {
                let e = all.clone().narrow(0, at, n);
                at += n;
                e
            })
            .collect();
        Ok(Self {
            prompts: views,
            views: all.clone().narrow(0, 0, 4),
            negative: all.narrow(0, 4, 1),
            extra,
        })
    }

    /// The view a camera at `azimuth_deg`, `elevation_deg` sees ([`ViewPrompts::view`]).
    pub fn view(&self, azimuth_deg: f64, elevation_deg: f64) -> View {
        self.prompts.view(azimuth_deg, elevation_deg)
    }

    /// The base prompt's view prompts.
    pub fn prompts(&self) -> &ViewPrompts {
        &self.prompts
    }

    /// `(cond, uncond, extra)` for a batch whose samples see `views`: each `[B, 77, D]`.
    pub fn select(
        &self,
        views: &[View],
        device: &Device,
    ) -> (Tensor<3>, Tensor<3>, Vec<Tensor<3>>) {
        let b = views.len();
        let idx: Vec<i32> = views
            .iter()
            .map(|v| View::ALL.iter().position(|x| x == v).unwrap_or(0) as i32)
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), device);
        let pick = |t: &Tensor<3>| {
            if t.dims()[0] == 1 {
                t.clone().repeat_dim(0, b)
            } else {
                t.clone().select(0, idx.clone())
            }
        };
        (
            pick(&self.views),
            pick(&self.negative),
            self.extra.iter().map(pick).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_follow_threestudio_thresholds() {
        let p = ViewPrompts::new("a corgi", ViewPromptConfig::default());
        assert_eq!(p.view(0.0, 10.0), View::Front);
        assert_eq!(p.view(44.0, 10.0), View::Front);
        assert_eq!(p.view(-90.0, 10.0), View::Side);
        assert_eq!(p.view(180.0, 10.0), View::Back);
        assert_eq!(p.view(-150.0, 0.0), View::Back);
        assert_eq!(p.view(370.0, 0.0), View::Front);
        assert_eq!(p.view(0.0, 75.0), View::Overhead);
        assert_eq!(p.text(View::Back), "a corgi, back view");
        assert_eq!(ViewPrompts::interpolation(45.0), [0.5, 0.5, 0.0]);
        assert_eq!(ViewPrompts::interpolation(-135.0), [0.0, 0.5, 0.5]);
    }
}
