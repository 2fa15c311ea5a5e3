//! Photometric losses and image metrics on the device: L1, SSIM, the 3DGS training loss
//! L = (1−λ)·L1 + λ·(1 − SSIM), and PSNR. Images are `[C, H, W, 3]` (the rasterizer's layout).

use burn::tensor::{Device, Tensor, TensorData, module::conv2d, ops::ConvOptions};

/// Side of the Gaussian SSIM window (Wang et al. 2004; 3DGS `ssim()` uses 11, σ = 1.5).
pub const SSIM_WINDOW: usize = 11;
/// σ of the Gaussian SSIM window in pixels.
pub const SSIM_SIGMA: f64 = 1.5;
/// SSIM stabilisers C₁ = (0.01·L)², C₂ = (0.03·L)² with dynamic range L = 1.
const C1: f64 = 0.01 * 0.01;
const C2: f64 = 0.03 * 0.03;

/// The normalised 1-D Gaussian window.
fn gaussian_window() -> Vec<f32> {
    let half = (SSIM_WINDOW / 2) as f64;
    let w: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

/// The depthwise `[ch, 1, 1, 11]` and `[ch, 1, 11, 1]` Gaussian kernels for `device`, built
/// once per (device, channel count) and reused: a training step then uploads nothing for SSIM.
fn windows(ch: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    type Cache = Vec<(Device, usize, Tensor<4>, Tensor<4>)>;
    static CACHE: std::sync::Mutex<Cache> = std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, kx, ky)) = cache.iter().find(|(d, c, _, _)| d == device && *c == ch) {
        return (kx.clone(), ky.clone());
    }
    let w = gaussian_window();
    let mut wx = Vec::with_capacity(ch * SSIM_WINDOW);
    for _ in 0..ch {
        wx.extend_from_slice(&w);
    }
    let kx = Tensor::<4>::from_data(TensorData::new(wx.clone(), [ch, 1, 1, SSIM_WINDOW]), device);
    let ky = Tensor::<4>::from_data(TensorData::new(wx, [ch, 1, SSIM_WINDOW, 1]), device);
    cache.push((device.clone(), ch, kx.clone(), ky.clone()));
    (kx, ky)
}

/// Depthwise separable Gaussian blur with zero padding ("same" size), `[B, ch, H, W]`.
fn blur(x: Tensor<4>, device: &Device) -> Tensor<4> {
    let ch = x.dims()[1];
    let (kx, ky) = windows(ch, device);
    let pad = SSIM_WINDOW / 2;
    let x = conv2d(x, kx, None, ConvOptions::new([1, 1], [0, pad], [1, 1], ch));
    conv2d(x, ky, None, ConvOptions::new([1, 1], [pad, 0], [1, 1], ch))
}

/// Per-image mean SSIM of `a` against `b` (`[C, H, W, 3]`, values in [0, 1]) with an 11×11
/// Gaussian window (σ = 1.5) and zero padding, as 3DGS's `ssim()` computes it; `[C]`.
/// Differentiable in both arguments.
pub fn ssim(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    let [c, h, w, _] = a.dims();
    let device = a.device();
    let a = a.permute([0, 3, 1, 2]);
    let b = b.permute([0, 3, 1, 2]);
    // One blur over [a, b, a², b², ab] stacked on channels.
    let stack = Tensor::cat(
        vec![
            a.clone(),
            b.clone(),
            a.clone().square(),
            b.clone().square(),
            a * b,
        ],
        1,
    );
    let s = blur(stack, &device);
    let part = |i: usize| s.clone().slice([0..c, 3 * i..3 * i + 3, 0..h, 0..w]);
    let (mu_a, mu_b) = (part(0), part(1));
    let mu_aa = mu_a.clone().square();
    let mu_bb = mu_b.clone().square();
    let mu_ab = mu_a * mu_b;
    let var_a = part(2) - mu_aa.clone();
    let var_b = part(3) - mu_bb.clone();
    let cov = part(4) - mu_ab.clone();
    let num = (mu_ab * 2.0 + C1) * (cov * 2.0 + C2);
    let den = (mu_aa + mu_bb + C1) * (var_a + var_b + C2);
    (num / den).reshape([c, 3 * h * w]).mean_dim(1).reshape([c])
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
