//! Photometric losses and image metrics on the device: L1, SSIM, the 3DGS training loss
//! L = (1−λ)·L1 + λ·(1 − SSIM), and PSNR. Images are `[C, H, W, 3]` (the rasterizer's layout).

use burn::backend::Dispatch;
use burn::tensor::Tensor;

use crate::fused_ssim::SsimBackend;

pub use crate::fused_ssim::{SSIM_SIGMA, SSIM_WINDOW};

/// Per-image mean SSIM of `a` against `b` (`[C, H, W, 3]`, values in [0, 1]) with an 11×11
/// Gaussian window (σ = 1.5) and zero padding, as 3DGS's `ssim()` computes it; `[C]`.
/// Runs the fused kernels of [`crate::fused_ssim`]; differentiable in `a` (the render) only:
/// `b` is a constant (the photograph).
pub fn ssim(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    let c = a.dims()[0];
    let map: Tensor<4> = Tensor::from_dispatch(<Dispatch as SsimBackend>::ssim_map(
        a.into_dispatch(),
        b.into_dispatch(),
    ));
    map.reshape([c as i32, -1]).mean_dim(1).reshape([c])
}

/// Mean absolute error per image, `[C]`.
pub fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    let c = a.dims()[0];
    (a - b)
        .abs()
        .reshape([c as i32, -1])
        .mean_dim(1)
        .reshape([c])
}

/// The 3DGS photometric loss (Kerbl et al. 2023, Eq. 7), averaged over the batch:
/// (1−λ)·L1 + λ·(1 − SSIM). Returns (loss `[1]`, L1 `[1]`, SSIM `[1]`).
pub fn photometric(render: Tensor<4>, target: Tensor<4>, lambda: f64) -> [Tensor<1>; 3] {
    let l1 = l1(render.clone(), target.clone()).mean();
    let ssim = ssim(render, target).mean();
    let loss = l1.clone() * (1.0 - lambda) + (ssim.clone().neg() + 1.0) * lambda;
    [loss, l1, ssim]
}

/// PSNR in dB of `a` against `b` (`[C, H, W, 3]`, range 1) per image: −10·log₁₀(MSE); `a` is
/// clamped to [0, 1] first, as evaluation scripts do with saved 8-bit images.
pub fn psnr(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    let c = a.dims()[0];
    let mse = (a.clamp(0.0, 1.0) - b)
        .square()
        .reshape([c as i32, -1])
        .mean_dim(1)
        .reshape([c]);
    mse.log() * (-10.0 / std::f64::consts::LN_10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::host;
    use burn::tensor::TensorData;

    /// PSNR and SSIM at evaluation sizes (two 400×400 images: 480,000 values per image) against
    /// their closed forms: MSE 0.25 → 10·log₁₀(4) dB; SSIM of an image with itself is 1. Sums
    /// this long are where Mesa 22.3's lavapipe returns wrong values
    /// (`gpu::device::known_driver_defect`), so this fails on such a driver.
    #[test]
    fn psnr_and_ssim_of_full_size_images_match_their_closed_forms() {
        let dev = crate::test_device().clone();
        let (h, w) = (400, 400);
        let zeros = Tensor::<4>::zeros([2, h, w, 3], &dev);
        let half = Tensor::<4>::ones([2, h, w, 3], &dev) * 0.5;
        let p = host(&psnr(zeros, half.clone())).unwrap();
        let expected = 10.0 * 4f32.log10();
        for v in &p {
            assert!(
                (v - expected).abs() < 1e-3,
                "PSNR {p:?}, expected {expected} dB for both"
            );
        }
        let n = h * w * 3;
        let values: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
        let ramp = Tensor::<4>::from_data(TensorData::new(values, [1, h, w, 3]), &dev);
        let s = host(&ssim(ramp.clone(), ramp)).unwrap();
        assert!(
            (s[0] - 1.0).abs() < 1e-4,
            "SSIM of an image with itself: {s:?}"
        );
        // A column sum over many rows, the shape of a bias gradient over many splats.
        let col = host(
            &Tensor::<2>::ones([100_000, 4], &dev)
                .sum_dim(0)
                .reshape([4]),
        )
        .unwrap();
        assert_eq!(col, vec![100_000.0; 4], "column sums over 100,000 rows");
    }
}
