//! Gaussian splat scenes: [`SplatData`] on the host (I/O, initialisation) and [`Splats`] as
//! burn tensors on the device (rendering, training).

use burn::tensor::{Device, Tensor, TensorData};

/// A scene on the host. Per splat `i`:
/// - `means[3i..3i+3]`: world position;
/// - `quats[4i..4i+4]`: rotation quaternion **wxyz**, not necessarily normalised;
/// - `log_scales[3i..3i+3]`: natural log of the per-axis standard deviations;
/// - `opacity_logits[i]`: opacity = sigmoid(logit);
/// - `sh[i * K * 3 + 3k + c]`: SH coefficient `k` of colour channel `c`, `K = (sh_degree+1)²`
///   (coefficient 0 is the DC term; colour = max(Σ_k b_k(dir)·sh_k + 0.5, 0)).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplatData {
    /// Means, `[N, 3]` flattened.
    pub means: Vec<f32>,
    /// Quaternions (wxyz), `[N, 4]` flattened.
    pub quats: Vec<f32>,
    /// Log scales, `[N, 3]` flattened.
    pub log_scales: Vec<f32>,
    /// Opacity logits, `[N]`.
    pub opacity_logits: Vec<f32>,
    /// SH coefficients, `[N, K, 3]` flattened.
    pub sh: Vec<f32>,
    /// SH degree (0–3).
    pub sh_degree: u32,
}

/// Number of SH coefficients at a degree, `(d + 1)²`.
pub fn sh_coeffs(degree: u32) -> usize {
    ((degree + 1) * (degree + 1)) as usize
}

impl SplatData {
    /// An empty scene of SH degree `sh_degree` with room for `n` splats.
    #[must_use]
    pub fn with_capacity(n: usize, sh_degree: u32) -> Self {
        Self {
            means: Vec::with_capacity(3 * n),
            quats: Vec::with_capacity(4 * n),
            log_scales: Vec::with_capacity(3 * n),
            opacity_logits: Vec::with_capacity(n),
            sh: Vec::with_capacity(3 * sh_coeffs(sh_degree) * n),
            sh_degree,
        }
    }

    /// Number of splats.
    pub fn len(&self) -> usize {
        self.opacity_logits.len()
    }

    /// Whether there are no splats.
    pub fn is_empty(&self) -> bool {
        self.opacity_logits.is_empty()
    }

    /// Axis-aligned bounds of the means (min, max); zeros for an empty scene.
    pub fn bounds(&self) -> (glam::Vec3, glam::Vec3) {
        let mut lo = glam::Vec3::splat(f32::INFINITY);
        let mut hi = glam::Vec3::splat(f32::NEG_INFINITY);
        for m in self.means.chunks_exact(3) {
            let p = glam::Vec3::new(m[0], m[1], m[2]);
            if p.is_finite() {
                lo = lo.min(p);
                hi = hi.max(p);
            }
        }
        if lo.x > hi.x {
            (glam::Vec3::ZERO, glam::Vec3::ZERO)
        } else {
            (lo, hi)
        }
    }

    /// Upload to `device` as tensors (f32).
    pub fn to_splats(&self, device: &Device) -> Splats {
        let n = self.len();
        let k = sh_coeffs(self.sh_degree);
        Splats {
            means: Tensor::from_data(TensorData::new(self.means.clone(), [n, 3]), device),
            quats: Tensor::from_data(TensorData::new(self.quats.clone(), [n, 4]), device),
            log_scales: Tensor::from_data(TensorData::new(self.log_scales.clone(), [n, 3]), device),
            opacity_logits: Tensor::from_data(
                TensorData::new(self.opacity_logits.clone(), [n]),
                device,
            ),
            sh: Tensor::from_data(TensorData::new(self.sh.clone(), [n, k, 3]), device),
            sh_degree: self.sh_degree,
        }
    }
}

/// A scene on the device, as burn tensors (shapes for `N` splats, `K = (sh_degree+1)²`):
/// `means [N,3]`, `quats [N,4]` (wxyz), `log_scales [N,3]`, `opacity_logits [N]`,
/// `sh [N,K,3]`. On an autodiff device mark them `require_grad()` to train them.
#[derive(Clone, Debug)]
pub struct Splats {
    /// `[N, 3]` world positions.
    pub means: Tensor<2>,
    /// `[N, 4]` rotations, wxyz, unnormalised.
    pub quats: Tensor<2>,
    /// `[N, 3]` log standard deviations.
    pub log_scales: Tensor<2>,
    /// `[N]` opacity logits.
    pub opacity_logits: Tensor<1>,
    /// `[N, K, 3]` SH coefficients.
    pub sh: Tensor<3>,
    /// SH degree the coefficients hold.
    pub sh_degree: u32,
}

impl Splats {
    /// Number of splats.
    pub fn len(&self) -> usize {
        self.means.dims()[0]
    }

    /// Whether there are no splats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mark every parameter tensor as a leaf that tracks gradients (on an autodiff device).
    pub fn require_grad(self) -> Self {
        Self {
            means: self.means.require_grad(),
            quats: self.quats.require_grad(),
            log_scales: self.log_scales.require_grad(),
            opacity_logits: self.opacity_logits.require_grad(),
            sh: self.sh.require_grad(),
            sh_degree: self.sh_degree,
        }
    }

    /// Download to the host.
    ///
    /// # Errors
    /// [`gpu::ReadError`] if a read fails.
    pub fn to_data(&self) -> Result<SplatData, gpu::ReadError> {
        Ok(SplatData {
            means: host(&self.means)?,
            quats: host(&self.quats)?,
            log_scales: host(&self.log_scales)?,
            opacity_logits: host(&self.opacity_logits)?,
            sh: host(&self.sh)?,
            sh_degree: self.sh_degree,
        })
    }
}

pub use gpu::{ReadError, host};
