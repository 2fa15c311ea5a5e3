//! The background splats are composited over while training (`fit`'s photographs with alpha,
//! `generate`'s renders), as a setting.

use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// Background composited behind the photos' alpha and the renders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Background {
    /// `"white"`, `"black"` or `"random"` (a new uniform colour every step, the NeRF-synthetic
    /// trick that stops the splats from painting the background; evaluation uses white).
    Named(NamedBackground),
    /// A fixed RGB colour in [0, 1].
    Rgb([f32; 3]),
}

/// Named backgrounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamedBackground {
    /// (1, 1, 1).
    White,
    /// (0, 0, 0).
    Black,
    /// Uniform random per step.
    Random,
}

impl Background {
    /// The colour for one training step.
    pub fn train(&self, rng: &mut StdRng) -> [f32; 3] {
        match self {
            Self::Named(NamedBackground::Random) => std::array::from_fn(|_| rng.random()),
            other => other.eval(),
        }
    }

    /// The colour for evaluation.
    pub fn eval(&self) -> [f32; 3] {
        match self {
            Self::Named(NamedBackground::White | NamedBackground::Random) => [1.0; 3],
            Self::Named(NamedBackground::Black) => [0.0; 3],
            Self::Rgb(c) => *c,
        }
    }
}
