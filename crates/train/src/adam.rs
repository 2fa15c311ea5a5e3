//! Adam (Kingma & Ba 2015, Algorithm 1) on burn tensors, with a per-call learning rate so each
//! parameter group has its own, and the exponential learning-rate decay 3DGS uses for the
//! means.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Adam hyper-parameters shared by all groups (torch's `Adam` defaults except `eps`, which is
/// 1e-15 as in 3DGS and gsplat's simple trainer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adam {
    /// β₁, decay of the first moment.
    pub beta1: f64,
    /// β₂, decay of the second moment.
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
}

impl Default for Adam {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-15,
        }
    }
}

/// First and second moments of one parameter tensor `[N, C]`.
#[derive(Clone, Debug)]
pub struct Moments {
    /// m, `[N, C]`.
    pub m: Tensor<2>,
    /// v, `[N, C]`.
    pub v: Tensor<2>,
}

impl Moments {
    /// Zero moments shaped like `value`.
    pub fn zeros_like(value: &Tensor<2>) -> Self {
        Self {
            m: value.zeros_like(),
            v: value.zeros_like(),
        }
    }

    /// Rows `rows` only.
    pub fn select(&self, rows: &Tensor<1, Int>) -> Self {
        Self {
            m: self.m.clone().select(0, rows.clone()),
            v: self.v.clone().select(0, rows.clone()),
        }
    }

    /// `count` zero rows appended.
    pub fn append_zeros(&self, count: usize) -> Self {
        let c = self.m.dims()[1];
        let z = Tensor::<2>::zeros([count, c], &self.m.device());
        Self {
            m: Tensor::cat(vec![self.m.clone(), z.clone()], 0),
            v: Tensor::cat(vec![self.v.clone(), z], 0),
        }
    }

    /// The rows `rows` (unique) set to zero.
    pub fn zero_rows(&self, rows: &Tensor<1, Int>) -> Self {
        let n = rows.dims()[0];
        let c = self.m.dims()[1];
        let z = Tensor::<2>::zeros([n, c], &self.m.device());
        let zero = |t: &Tensor<2>| {
            t.clone().select_assign(
                0,
                rows.clone(),
                z.clone(),
                burn::tensor::IndexingUpdateOp::Assign,
            )
        };
        Self {
            m: zero(&self.m),
            v: zero(&self.v),
        }
    }
}

impl Adam {
    /// One Adam update of `value` with `grad` at 1-based `step` and learning rate `lr`:
    /// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr·m̂/(√v̂ + ε) with bias-corrected
    /// m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) (Kingma & Ba, Algorithm 1; torch.optim.Adam).
    pub fn update(
        &self,
        value: Tensor<2>,
        grad: Tensor<2>,
        moments: &mut Moments,
        step: u64,
        lr: f64,
    ) -> Tensor<2> {
        let t = step.max(1) as i32;
        moments.m = moments.m.clone() * self.beta1 + grad.clone() * (1.0 - self.beta1);
        moments.v = moments.v.clone() * self.beta2 + grad.square() * (1.0 - self.beta2);
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        // θ − lr/bc1 · m / (√v/√bc2 + ε)
        let denom = (moments.v.clone() / bc2).sqrt() + self.eps;
        value - moments.m.clone() / denom * (lr / bc1)
    }
}

/// 3DGS's exponential learning-rate schedule (`get_expon_lr_func` without delay):
/// log-linear interpolation from `lr_init` at step 0 to `lr_final` at `max_steps`, held after.
pub fn exp_decay(lr_init: f64, lr_final: f64, step: u64, max_steps: u64) -> f64 {
    let t = (step as f64 / max_steps.max(1) as f64).clamp(0.0, 1.0);
    (lr_init.ln() * (1.0 - t) + lr_final.ln() * t).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_decay_endpoints_and_midpoint() {
        assert!((exp_decay(1e-2, 1e-4, 0, 100) - 1e-2).abs() < 1e-12);
        assert!((exp_decay(1e-2, 1e-4, 100, 100) - 1e-4).abs() < 1e-12);
        assert!((exp_decay(1e-2, 1e-4, 50, 100) - 1e-3).abs() < 1e-12);
        assert!((exp_decay(1e-2, 1e-4, 500, 100) - 1e-4).abs() < 1e-12);
    }
}
