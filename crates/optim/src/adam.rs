//! Adam (Kingma & Ba 2015, Algorithm 1) on burn tensors as one fused WGSL kernel
//! (`shaders/adam.wgsl`, a burn backend extension), with a per-call learning rate so each
//! parameter group has its own, and the exponential learning-rate decay 3DGS uses for the
//! means.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::wgpu::{CubeBackend, CubeTensor, into_contiguous};
use burn::backend::{Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Int, Tensor};
use gpu::alloc;
use gpu::launch::{grid_1d, launch};
use serde::{Deserialize, Serialize};

use crate::kernels::{self as k, AdamParams};

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
    /// m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) (Kingma & Ba, Algorithm 1; torch.optim.Adam). One fused
    /// kernel (`shaders/adam.wgsl`). `value`, `grad` and the moments are float32 `[N, C]`.
    pub fn update(
        &self,
        value: Tensor<2>,
        grad: Tensor<2>,
        moments: &mut Moments,
        step: u64,
        lr: f64,
    ) -> Tensor<2> {
        let bad = Tensor::<1>::zeros([1], &value.device());
        self.update_guarded(value, grad, moments, step, lr, &bad)
    }

    /// [`Adam::update`] that leaves `value` and the moments unchanged when `bad` (`[1]`, from
    /// [`crate::guard::StepGuard::check`]) is > 0, decided on the device in the same kernel.
    pub fn update_guarded(
        &self,
        value: Tensor<2>,
        grad: Tensor<2>,
        moments: &mut Moments,
        step: u64,
        lr: f64,
        bad: &Tensor<1>,
    ) -> Tensor<2> {
        let t = step.max(1) as i32;
        let params = AdamParams {
            lr: lr as f32,
            beta_m: self.beta1 as f32,
            beta_v: self.beta2 as f32,
            eps: self.eps as f32,
            correction_m: (1.0 - self.beta1.powi(t)) as f32,
            correction_v: (1.0 - self.beta2.powi(t)) as f32,
            ..Default::default()
        };
        let (value, m, v) = <Dispatch as AdamBackend>::adam_step(
            value.into_dispatch(),
            grad.into_dispatch(),
            moments.m.clone().into_dispatch(),
            moments.v.clone().into_dispatch(),
            bad.clone().into_dispatch(),
            params,
        );
        moments.m = Tensor::from_dispatch(m);
        moments.v = Tensor::from_dispatch(v);
        Tensor::from_dispatch(value)
    }
}

/// The fused Adam step as a burn backend extension (an optimizer step: not differentiable).
#[backend_extension(Cube, Autodiff)]
pub trait AdamBackend: burn::backend::Backend {
    /// One Adam step over same-shaped float32 tensors: the parameter `value`, its `grad` and
    /// moments `m`, `v`, skipped (everything returned unchanged) when `bad` (`[1]`) is > 0.
    /// `params.count` is filled in. Returns the new (value, m, v).
    fn adam_step(
        value: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bad: FloatTensor<Self>,
        params: AdamParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl AdamBackend for CubeBackend {
    fn adam_step(
        value: CubeTensor,
        grad: CubeTensor,
        m: CubeTensor,
        v: CubeTensor,
        bad: CubeTensor,
        params: AdamParams,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let [value, grad, m, v, bad] = [value, grad, m, v, bad].map(into_contiguous);
        let client = value.client.clone();
        let shape = value.meta.shape().clone();
        let n = shape.num_elements();
        let outs = [0, 1, 2].map(|_| alloc::empty(&client, n * 4));
        let params = AdamParams {
            count: n as u32,
            ..params
        };
        // SAFETY: one thread per element, bounds-checked against params.count = N·C, the
        // length of every buffer but `bad`, of which only element 0 is read.
        launch(
            &client,
            k::ADAM.main,
            grid_1d((n as u32).div_ceil(256)),
            vec![
                alloc::upload(&client, &[params]),
                bad.handle.clone(),
                value.handle.clone(),
                grad.handle.clone(),
                m.handle.clone(),
                v.handle.clone(),
                outs[0].clone(),
                outs[1].clone(),
                outs[2].clone(),
            ],
        );
        let [a, b, c] = outs.map(|h| {
            CubeTensor::new_contiguous(
                client.clone(),
                value.device.clone(),
                shape.clone(),
                h,
                DType::F32,
            )
        });
        (a, b, c)
    }
}

impl<B: AdamBackend, C: CheckpointStrategy> AdamBackend for Autodiff<B, C> {
    fn adam_step(
        value: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bad: FloatTensor<Self>,
        params: AdamParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Untracked: the results start fresh (no gradient flows through an optimizer step).
        let (a, b, c) = B::adam_step(
            value.into_primitive(),
            grad.into_primitive(),
            m.into_primitive(),
            v.into_primitive(),
            bad.into_primitive(),
            params,
        );
        (
            FloatTensor::<Self>::new(a),
            FloatTensor::<Self>::new(b),
            FloatTensor::<Self>::new(c),
        )
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
