//! The trainable Gaussian parameters on the device, with their Adam moments, and the row
//! operations densification needs (keep, append, reset), which keep parameters and moments
//! consistent.
//!
//! Every parameter is a 2-D `[N, C]` row-per-splat tensor so that one code path selects,
//! appends and resets rows of all of them:
//!
//! | group | shape | meaning |
//! |---|---|---|
//! | `means` | `[N, 3]` | world positions |
//! | `quats` | `[N, 4]` | rotations, wxyz, unnormalised |
//! | `log_scales` | `[N, 3]` | natural log of the standard deviations |
//! | `opacity_logits` | `[N, 1]` | opacity = sigmoid(logit) |
//! | `sh_dc` | `[N, 3]` | SH coefficient 0 (RGB) |
//! | `sh_rest` | `[N, 3·(K−1)]` | SH coefficients 1..K, `[N, K−1, 3]` flattened, `K = (d+1)²` |

use burn::tensor::{Device, Int, Tensor, TensorData};
use splat::{SplatData, Splats, scene::sh_coeffs};

use crate::adam::{Adam, Moments};

/// The parameter groups, in the order of [`Gaussians::groups`].
pub const GROUPS: [&str; 6] = [
    "means",
    "quats",
    "log_scales",
    "opacity_logits",
    "sh_dc",
    "sh_rest",
];

/// Index of the `means` group.
pub const MEANS: usize = 0;
/// Index of the `quats` group.
pub const QUATS: usize = 1;
/// Index of the `log_scales` group.
pub const LOG_SCALES: usize = 2;
/// Index of the `opacity_logits` group.
pub const OPACITY: usize = 3;
/// Index of the `sh_dc` group.
pub const SH_DC: usize = 4;
/// Index of the `sh_rest` group.
pub const SH_REST: usize = 5;

/// One parameter tensor `[N, C]` and its Adam moments (same shape).
#[derive(Clone, Debug)]
pub struct Param {
    /// The value, `[N, C]`, on the plain (non-autodiff) device.
    pub value: Tensor<2>,
    /// Adam first and second moments.
    pub moments: Moments,
}

/// All trainable parameters of a splat scene on the device (see the module docs for shapes).
#[derive(Clone, Debug)]
pub struct Gaussians {
    /// The six groups, indexed by [`MEANS`] … [`SH_REST`].
    pub groups: [Param; 6],
    /// The SH degree the coefficients can hold (`sh_rest` has `3·((d+1)²−1)` columns).
    pub max_sh_degree: u32,
}

/// The trainable leaves of one step: the autodiff tensors the rasterizer reads and the leaves
/// whose gradients the optimizer needs.
pub struct Leaves {
    /// The scene, built from the leaves (reshapes and a concatenation), for [`splat::render`].
    pub splats: Splats,
    /// The six leaves, `[N, C]` each, in [`GROUPS`] order.
    pub leaves: [Tensor<2>; 6],
}

impl Gaussians {
    /// Upload a host scene, padding (or truncating) its SH coefficients to `max_sh_degree`.
    /// Moments start at zero.
    pub fn from_data(data: &SplatData, max_sh_degree: u32, device: &Device) -> Self {
        let n = data.len();
        let k_in = sh_coeffs(data.sh_degree);
        let k = sh_coeffs(max_sh_degree);
        let mut dc = Vec::with_capacity(n * 3);
        let mut rest = vec![0.0f32; n * 3 * (k - 1)];
        for i in 0..n {
            let src = &data.sh[i * k_in * 3..(i + 1) * k_in * 3];
            dc.extend_from_slice(&src[..3]);
            let m = (k.min(k_in) - 1) * 3;
            rest[i * 3 * (k - 1)..i * 3 * (k - 1) + m].copy_from_slice(&src[3..3 + m]);
        }
        let t = |v: Vec<f32>, c: usize| {
            let value = Tensor::<2>::from_data(TensorData::new(v, [n, c]), device);
            Param {
                moments: Moments::zeros_like(&value),
                value,
            }
        };
        Self {
            groups: [
                t(data.means.clone(), 3),
                t(data.quats.clone(), 4),
                t(data.log_scales.clone(), 3),
                t(data.opacity_logits.clone(), 1),
                t(dc, 3),
                t(rest, 3 * (k - 1)),
            ],
            max_sh_degree,
        }
    }

    /// Number of splats.
    pub fn len(&self) -> usize {
        self.groups[MEANS].value.dims()[0]
    }

    /// Whether there are no splats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.groups[MEANS].value.device()
    }

    /// The current values as a rasterizer scene on the plain device (no gradients).
    pub fn splats(&self) -> Splats {
        let v: [Tensor<2>; 6] = std::array::from_fn(|g| self.groups[g].value.clone());
        self.assemble(v)
    }

    /// Fresh autodiff leaves for one training step (the values are shared, not copied).
    pub fn leaves(&self) -> Leaves {
        let leaves: [Tensor<2>; 6] =
            std::array::from_fn(|g| self.groups[g].value.clone().autodiff().require_grad());
        Leaves {
            splats: self.assemble(leaves.clone()),
            leaves,
        }
    }

    fn assemble(&self, [means, quats, log_scales, opacity, dc, rest]: [Tensor<2>; 6]) -> Splats {
        let n = self.len();
        let k = sh_coeffs(self.max_sh_degree);
        let sh = if k == 1 {
            dc.reshape([n, 1, 3])
        } else {
            Tensor::cat(vec![dc.reshape([n, 1, 3]), rest.reshape([n, k - 1, 3])], 1)
        };
        Splats {
            means,
            quats,
            log_scales,
            opacity_logits: opacity.reshape([n]),
            sh,
            sh_degree: self.max_sh_degree,
        }
    }

    /// Download to the host (SH at `max_sh_degree`).
    ///
    /// # Errors
    /// [`gpu::ReadError`] if a read fails.
    pub fn to_data(&self) -> Result<SplatData, gpu::ReadError> {
        self.splats().to_data()
    }

    /// One Adam step on every group that has a gradient (a group without one is skipped, as
    /// torch's Adam skips parameters whose `.grad` is `None`). `lrs` are the per-group
    /// learning rates, `step` the 1-based optimizer step.
    pub fn adam_step(
        &mut self,
        adam: &Adam,
        step: u64,
        grads: &[Option<Tensor<2>>; 6],
        lrs: &[f64; 6],
    ) {
        for (g, grad) in grads.iter().enumerate() {
            if let Some(grad) = grad {
                let p = &mut self.groups[g];
                p.value = adam.update(p.value.clone(), grad.clone(), &mut p.moments, step, lrs[g]);
            }
        }
    }

    /// [`Gaussians::adam_step`] that leaves every value and moment unchanged when `bad`
    /// (`[1]`, from [`crate::guard::StepGuard::check`]) is non-zero: a step with a NaN or
    /// infinite loss or gradient never reaches the parameters. Decided on the device (no
    /// read-back).
    pub fn adam_step_guarded(
        &mut self,
        adam: &Adam,
        step: u64,
        grads: &[Option<Tensor<2>>; 6],
        lrs: &[f64; 6],
        bad: &Tensor<1>,
    ) {
        for (g, grad) in grads.iter().enumerate() {
            if let Some(grad) = grad {
                let p = &mut self.groups[g];
                p.value = adam.update_guarded(
                    p.value.clone(),
                    grad.clone(),
                    &mut p.moments,
                    step,
                    lrs[g],
                    bad,
                );
            }
        }
    }

    /// Keep only the rows at `keep` (indices `[M]`, any order) in every group and its moments.
    pub fn select(&mut self, keep: &Tensor<1, Int>) {
        for p in &mut self.groups {
            p.value = p.value.clone().select(0, keep.clone());
            p.moments = p.moments.select(keep);
        }
    }

    /// Append rows: `new[g]` is `[M, C_g]` for each group; their moments start at zero (as in
    /// gsplat's `duplicate`/`split`).
    pub fn append(&mut self, new: [Tensor<2>; 6]) {
        for (p, v) in self.groups.iter_mut().zip(new) {
            p.moments = p.moments.append_zeros(v.dims()[0]);
            p.value = Tensor::cat(vec![p.value.clone(), v], 0);
        }
    }

    /// Zero the moments of the rows at `rows` in every group (MCMC relocation).
    pub fn reset_moments_rows(&mut self, rows: &Tensor<1, Int>) {
        for p in &mut self.groups {
            p.moments = p.moments.zero_rows(rows);
        }
    }

    /// Overwrite rows `rows` of group `g` with `values` (`[M, C_g]`), leaving moments alone.
    pub fn assign_rows(&mut self, g: usize, rows: &Tensor<1, Int>, values: Tensor<2>) {
        let p = &mut self.groups[g];
        p.value = p.value.clone().select_assign(
            0,
            rows.clone(),
            values,
            burn::tensor::IndexingUpdateOp::Assign,
        );
    }
}

/// Row indices as an int tensor on `device`.
pub fn indices(rows: &[u32], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [rows.len()]), device)
}

pub use splat::scene::host;
