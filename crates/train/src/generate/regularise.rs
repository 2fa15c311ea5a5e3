//! LucidDreamer's losses beside the guidance (`train.py`: `loss + lambda_tv·(tv(image) +
//! tv(depth)) + lambda_scale·mean(scales)`), which DreamMapping inherits (issue 26).

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use splat::Camera;

/// `[regularisers]`: weights of the extra losses (0 = off, the default; LucidDreamer's
/// `arguments/__init__.py`: `lambda_tv = 1.0`, `lambda_scale = 1.0`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegulariserConfig {
    /// Total variation of the rendered colour ([`tv_loss`] of `rgb`), LucidDreamer `lambda_tv`.
    pub tv_image: f64,
    /// Total variation of the normalised disparity ([`lucid_disparity`]), the same
    /// `lambda_tv` in LucidDreamer.
    pub tv_depth: f64,
    /// Mean of the splats' scales (`exp(log_scales)`, world units), LucidDreamer
    /// `lambda_scale`.
    pub mean_scale: f64,
}

impl RegulariserConfig {
    /// Whether any weight is non-zero.
    pub fn any(&self) -> bool {
        self.tv_image != 0.0 || self.tv_depth != 0.0 || self.mean_scale != 0.0
    }
}

/// LucidDreamer `utils/loss_utils.py::tv_loss` of `x [B, H, W, C]`: `2·(mean((x[:, 1:] −
/// x[:, :−1])²) + mean((x[:, :, 1:] − x[:, :, :−1])²))`, the means over all elements (the
/// reference sums and divides by `C·(H−1)·W`, `C·H·(W−1)` and the batch). Shape `[1]`.
pub fn tv_loss(x: Tensor<4>) -> Tensor<1> {
    let [b, h, w, c] = x.dims();
    let dh =
        x.clone().slice([0..b, 1..h, 0..w, 0..c]) - x.clone().slice([0..b, 0..h - 1, 0..w, 0..c]);
    let dw = x.clone().slice([0..b, 0..h, 1..w, 0..c]) - x.slice([0..b, 0..h, 0..w - 1, 0..c]);
    (dh.square().mean() + dw.square().mean()) * 2.0
}

/// LucidDreamer's rendered "depth" (`gaussian_renderer/__init__.py::render`): the disparity
/// `f / (d + 10·α + 1e−5)` with `f = 1 / (2·tan(FoVx / 2)) = fx / W`, `d = Σ zᵢαᵢTᵢ`
/// (`depth [B, H, W]`, the rasterizer's depth numerator) and `α [B, H, W]` the accumulated
/// opacity, normalised per view to `[0, 1]` between its minimum over background pixels
/// (`α ≤ 0.1`; over all pixels when there are none) and its maximum. `[B, H, W, 1]`.
pub fn lucid_disparity(
    depth: Tensor<3>,
    alpha: Tensor<3>,
    cams: &[Camera],
    device: &Device,
) -> Tensor<4> {
    let [b, h, w] = depth.dims();
    let focal: Vec<f32> = cams.iter().map(|c| c.k[0][0] / c.width as f32).collect();
    let focal = Tensor::<3>::from_data(TensorData::new(focal, [b, 1, 1]), device);
    let disp = (focal / (depth + alpha.clone() * 10.0 + 1e-5)).reshape([b, h * w]);
    let background = alpha.reshape([b, h * w]).lower_equal_elem(0.1);
    let min_all = disp.clone().min_dim(1);
    let min_bg = disp
        .clone()
        .mask_fill(background.bool_not(), f32::INFINITY)
        .min_dim(1);
    let min_d = min_bg.clone().mask_where(min_bg.is_inf(), min_all);
    let max_d = disp.clone().max_dim(1);
    let range = (max_d - min_d.clone()).clamp_min(1e-12);
    ((disp - min_d) / range)
        .clamp(0.0, 1.0)
        .reshape([b, h, w, 1])
}

/// The weighted sum of the enabled regularisers for one step's render: `rgb [B, H, W, 3]`,
/// `depth`, `alpha [B, H, W]` at `cams`, and the splats' `log_scales [N, 3]`. Shape `[1]`;
/// `None` when every weight is 0.
pub fn regularisers(
    cfg: &RegulariserConfig,
    rgb: Tensor<4>,
    depth: Tensor<3>,
    alpha: Tensor<3>,
    log_scales: Tensor<2>,
    cams: &[Camera],
    device: &Device,
) -> Option<Tensor<1>> {
    let mut terms: Vec<Tensor<1>> = vec![];
    if cfg.tv_image != 0.0 {
        terms.push(tv_loss(rgb) * cfg.tv_image);
    }
    if cfg.tv_depth != 0.0 {
        terms.push(tv_loss(lucid_disparity(depth, alpha, cams, device)) * cfg.tv_depth);
    }
    if cfg.mean_scale != 0.0 {
        terms.push(log_scales.exp().mean() * cfg.mean_scale);
    }
    terms.into_iter().reduce(|a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t4(v: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    // Expected values worked by hand from LucidDreamer's `tv_loss` formula.
    #[test]
    fn tv_loss_matches_the_reference_formula() {
        let device = &testkit::gpu().burn;
        // One 2×3 single-channel image: vertical diffs (3, 3, 3), horizontal (1, 1, 1, 1).
        let x = t4(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [1, 2, 3, 1], device);
        assert!((scalar(tv_loss(x)) - 2.0 * (9.0 + 1.0)).abs() < 1e-5);
        // A constant image has none; the batch mean does not grow with the batch.
        let flat = t4(vec![0.7; 2 * 4 * 4 * 3], [2, 4, 4, 3], device);
        assert!(scalar(tv_loss(flat)).abs() < 1e-9);
    }

    #[test]
    fn disparity_is_zero_to_one_per_view() {
        let device = &testkit::gpu().burn;
        let cam = Camera {
            viewmat: [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0; 4],
            ],
            k: [[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 1.0]],
            width: 2,
            height: 2,
        };
        // An opaque pixel at depth 2, a faint one (α = 0.05 at depth 5: d = 0.25), two empty.
        let depth = Tensor::<3>::from_data(
            TensorData::new(vec![2.0f32, 0.25, 0.0, 0.0], [1, 2, 2]),
            device,
        );
        let alpha = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.05, 0.0, 0.0], [1, 2, 2]),
            device,
        );
        let d = lucid_disparity(depth, alpha, &[cam], device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // f = fx / W = 1: opaque 1/12, faint 1/0.75 (the background minimum), empty 1e5 (the
        // maximum): opaque clamps to 0, faint is 0, empty 1.
        assert_eq!(d, vec![0.0, 0.0, 1.0, 1.0]);
    }
}
