//! The MCMC strategy's position noise (Kheradmand et al. 2024, "3D Gaussian Splatting as Markov
//! Chain Monte Carlo", eq. 9; gsplat's `inject_noise_to_position`) as one fused WGSL kernel
//! (`shaders/mcmc_noise.wgsl`, a burn backend extension): one pass over the splats instead of
//! the ~80 element-wise burn ops the 3×3 covariance products take.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::wgpu::{CubeBackend, CubeTensor, into_contiguous};
use burn::backend::{Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Tensor};
use gpu::alloc;
use gpu::launch::{grid_1d, launch};

use crate::kernels::{self as k, NoiseParams};

/// Steepness k of gsplat's opacity gate `op_sigmoid(1 − o) = σ(k·(1 − o − x0))`.
pub const GATE_STEEPNESS: f32 = 100.0;
/// Centre x0 of that gate: splats with opacity o below ≈ 0.005 get the full noise, opaque ones
/// almost none.
pub const GATE_CENTRE: f32 = 0.995;

/// `means + scale · σ(k·(1 − o − x0)) · R S² Rᵀ ε` for every splat (gsplat's
/// `inject_noise_to_position` with the noise `ε` given): R from the normalised `quats` (wxyz),
/// S = diag(exp(`log_scales`)), o = sigmoid(`opacity_logits`), k = [`GATE_STEEPNESS`],
/// x0 = [`GATE_CENTRE`]; `scale` is the means' learning rate × the strategy's `noise_lr`.
///
/// Shapes: `means` `[N, 3]` (world units), `quats` `[N, 4]`, `log_scales` `[N, 3]`,
/// `opacity_logits` `[N, 1]`, `eps` `[N, 3]` (standard normal); returns the new means `[N, 3]`.
/// Not differentiable (an update between optimizer steps).
pub fn inject_position_noise(
    means: Tensor<2>,
    quats: Tensor<2>,
    log_scales: Tensor<2>,
    opacity_logits: Tensor<2>,
    eps: Tensor<2>,
    scale: f64,
) -> Tensor<2> {
    let params = NoiseParams {
        scale: scale as f32,
        steepness: GATE_STEEPNESS,
        centre: GATE_CENTRE,
        ..Default::default()
    };
    Tensor::from_dispatch(<Dispatch as McmcNoiseBackend>::mcmc_noise(
        means.into_dispatch(),
        quats.into_dispatch(),
        log_scales.into_dispatch(),
        opacity_logits.into_dispatch(),
        eps.into_dispatch(),
        params,
    ))
}

/// The fused position noise as a burn backend extension.
#[backend_extension(Cube, Autodiff)]
pub trait McmcNoiseBackend: burn::backend::Backend {
    /// [`inject_position_noise`] on primitives; `params.count` is filled in.
    fn mcmc_noise(
        means: FloatTensor<Self>,
        quats: FloatTensor<Self>,
        log_scales: FloatTensor<Self>,
        opacity_logits: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        params: NoiseParams,
    ) -> FloatTensor<Self>;
}

impl McmcNoiseBackend for CubeBackend {
    fn mcmc_noise(
        means: CubeTensor,
        quats: CubeTensor,
        log_scales: CubeTensor,
        opacity_logits: CubeTensor,
        eps: CubeTensor,
        params: NoiseParams,
    ) -> CubeTensor {
        let [means, quats, log_scales, opacity_logits, eps] =
            [means, quats, log_scales, opacity_logits, eps].map(into_contiguous);
        let client = means.client.clone();
        let shape = means.meta.shape().clone();
        let n = shape.num_elements() / 3;
        let out = alloc::empty(&client, n * 3 * 4);
        let params = NoiseParams {
            count: n as u32,
            ..params
        };
        // SAFETY: one thread per splat, bounds-checked against params.count = N; the inputs are
        // contiguous [N, 3], [N, 4], [N, 3], [N, 1], [N, 3] (the caller's shapes) and the
        // output [N, 3], so every index 3i + 2 and 4i + 3 is inside its buffer.
        launch(
            &client,
            k::MCMC_NOISE.main,
            grid_1d((n as u32).div_ceil(256)),
            vec![
                alloc::upload(&client, &[params]),
                means.handle.clone(),
                quats.handle.clone(),
                log_scales.handle.clone(),
                opacity_logits.handle.clone(),
                eps.handle.clone(),
                out.clone(),
            ],
        );
        CubeTensor::new_contiguous(client, means.device.clone(), shape, out, DType::F32)
    }
}

impl<B: McmcNoiseBackend, C: CheckpointStrategy> McmcNoiseBackend for Autodiff<B, C> {
    fn mcmc_noise(
        means: FloatTensor<Self>,
        quats: FloatTensor<Self>,
        log_scales: FloatTensor<Self>,
        opacity_logits: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        params: NoiseParams,
    ) -> FloatTensor<Self> {
        // Untracked: the noise is applied between optimizer steps.
        FloatTensor::<Self>::new(B::mcmc_noise(
            means.into_primitive(),
            quats.into_primitive(),
            log_scales.into_primitive(),
            opacity_logits.into_primitive(),
            eps.into_primitive(),
            params,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::host;
    use burn::tensor::TensorData;

    /// gsplat's `inject_noise_to_position` written out on the host for one splat: quaternion →
    /// rotation (`quat_scale_to_covar_preci` after F.normalize: the densifier's host
    /// [`crate::densify::rotation`]), Σ = R S² Rᵀ, the `op_sigmoid(1 − o)` gate, and
    /// `Σ · (ε · gate · scale)` in f64.
    fn reference(m: &[f64], q: &[f64], ls: &[f64], logit: f64, e: &[f64], scale: f64) -> [f64; 3] {
        let q32: Vec<f32> = q.iter().map(|&v| v as f32).collect();
        let r = crate::densify::rotation(&q32).map(|row| row.map(f64::from));
        let s2: Vec<f64> = ls.iter().map(|v| (2.0 * v).exp()).collect();
        let cov = |a: usize, b: usize| (0..3).map(|k| r[a][k] * s2[k] * r[b][k]).sum::<f64>();
        let o = 1.0 / (1.0 + (-logit).exp());
        let gate = 1.0 / (1.0 + (-100.0 * ((1.0 - o) - 0.995)).exp());
        let noise: Vec<f64> = e.iter().map(|v| v * gate * scale).collect();
        std::array::from_fn(|a| m[a] + (0..3).map(|b| cov(a, b) * noise[b]).sum::<f64>())
    }

    /// The kernel against [`reference`] on 300 splats (more than one workgroup), with
    /// unnormalised and near-zero quaternions, anisotropic scales and opacities on both sides of
    /// the gate, in buffers filled with garbage.
    #[test]
    fn matches_gsplat_inject_noise_to_position() {
        let dev = crate::test_device().clone();
        let n = 300;
        // A small deterministic generator (no RNG crate needed for fixed inputs).
        let mut state = 0x2545_f491_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let mut col = |c: usize, f: &mut dyn FnMut(usize, f64) -> f64| -> Vec<f64> {
            (0..n * c).map(|i| f(i / c, next())).collect()
        };
        let means = col(3, &mut |_, r| 2.0 * r);
        let quats = col(4, &mut |i, r| if i == 7 { 1e-14 * r } else { 1.5 * r });
        let log_scales = col(3, &mut |_, r| -3.0 + 1.5 * r);
        // Logits from −9 (o ≈ 1e-4, full noise) to 9 (opaque, gated off), through the gate's
        // steep part near o = 0.005 (logit ≈ −5.3).
        let logits = col(1, &mut |i, r| {
            if i % 3 == 0 { -5.3 + 0.5 * r } else { 9.0 * r }
        });
        let eps = col(3, &mut |_, r| 3.0 * r);
        let scale = 0.8;
        let t = |v: &[f64], c: usize| {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::<2>::from_data(TensorData::new(v, [n, c]), &dev)
        };
        let out = inject_position_noise(
            t(&means, 3),
            t(&quats, 4),
            t(&log_scales, 3),
            t(&logits, 1),
            t(&eps, 3),
            scale,
        );
        let got = host(&out).unwrap();
        let mut moved = 0;
        for i in 0..n {
            let f32s = |v: &[f64], c: usize| -> Vec<f64> {
                v[i * c..(i + 1) * c]
                    .iter()
                    .map(|&x| x as f32 as f64)
                    .collect()
            };
            let want = reference(
                &f32s(&means, 3),
                &f32s(&quats, 4),
                &f32s(&log_scales, 3),
                logits[i] as f32 as f64,
                &f32s(&eps, 3),
                scale,
            );
            for a in 0..3 {
                let g = got[3 * i + a] as f64;
                let step = (want[a] - means[3 * i + a] as f32 as f64).abs();
                assert!(
                    (g - want[a]).abs() <= 1e-6 + 1e-4 * step + 1e-6 * want[a].abs(),
                    "splat {i}, axis {a}: kernel {g}, gsplat formula {}",
                    want[a]
                );
                if step > 1e-3 {
                    moved += 1;
                }
            }
        }
        // The case exercises the noise, not only the identity of gated-off splats.
        assert!(
            moved > n / 4,
            "only {moved} coordinates moved by more than 1e-3"
        );
    }
}
