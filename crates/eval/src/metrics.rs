//! Image metrics of the toy-world evaluation, on host images: one view is `H·W` pixels, RGB in
//! [0, 1] composited over white and a coverage (alpha) in [0, 1].
//!
//! A pixel is *inside* a silhouette when its alpha is above [`MASK_THRESHOLD`].

/// Alpha above which a pixel belongs to the silhouette.
pub const MASK_THRESHOLD: f32 = 0.5;

/// One view: RGB over white (`[H·W·3]`) and alpha (`[H·W]`).
#[derive(Clone, Debug)]
pub struct View {
    /// RGB composited over white, row-major, `[H·W·3]` in [0, 1].
    pub rgb: Vec<f32>,
    /// Coverage, `[H·W]` in [0, 1].
    pub alpha: Vec<f32>,
}

impl View {
    /// From a straight-alpha RGBA image (`[H·W·4]`), composited over white.
    pub fn from_rgba(rgba: &[f32]) -> Self {
        let n = rgba.len() / 4;
        let mut rgb = Vec::with_capacity(3 * n);
        let mut alpha = Vec::with_capacity(n);
        for p in rgba.chunks_exact(4) {
            let a = p[3];
            for c in &p[..3] {
                rgb.push(c * a + (1.0 - a));
            }
            alpha.push(a);
        }
        Self { rgb, alpha }
    }
}

/// Pixels inside both silhouettes and inside either, summed over views: IoU = `inter / union`.
pub fn silhouette_counts(pred: &[View], gt: &[View]) -> (u64, u64) {
    let (mut inter, mut union) = (0u64, 0u64);
    for (p, g) in pred.iter().zip(gt) {
        for (a, b) in p.alpha.iter().zip(&g.alpha) {
            let (x, y) = (*a > MASK_THRESHOLD, *b > MASK_THRESHOLD);
            inter += u64::from(x && y);
            union += u64::from(x || y);
        }
    }
    (inter, union)
}

/// Silhouette IoU over all views (1 when both are empty everywhere).
pub fn silhouette_iou(pred: &[View], gt: &[View]) -> f64 {
    let (i, u) = silhouette_counts(pred, gt);
    if u == 0 { 1.0 } else { i as f64 / u as f64 }
}

/// PSNR (dB, peak 1) of the RGB over white on the pixels inside the ground-truth silhouette,
/// all views together; `f64::INFINITY` for identical images, NaN when the mask is empty.
pub fn masked_psnr(pred: &[View], gt: &[View]) -> f64 {
    let (mut se, mut n) = (0.0f64, 0u64);
    for (p, g) in pred.iter().zip(gt) {
        for (i, a) in g.alpha.iter().enumerate() {
            if *a > MASK_THRESHOLD {
                for c in 0..3 {
                    let d = f64::from(p.rgb[3 * i + c] - g.rgb[3 * i + c]);
                    se += d * d;
                }
                n += 3;
            }
        }
    }
    if n == 0 {
        return f64::NAN;
    }
    let mse = se / n as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// Mean RGB inside a view set's own silhouettes (`None` when empty).
pub fn mean_colour(views: &[View]) -> Option<[f64; 3]> {
    let mut s = [0.0f64; 3];
    let mut n = 0u64;
    for v in views {
        for (i, a) in v.alpha.iter().enumerate() {
            if *a > MASK_THRESHOLD {
                for (c, acc) in s.iter_mut().enumerate() {
                    *acc += f64::from(v.rgb[3 * i + c]);
                }
                n += 1;
            }
        }
    }
    (n > 0).then(|| s.map(|x| x / n as f64))
}

/// Mean colour error: the Euclidean distance in RGB ([0, 1] per channel, so at most √3) between
/// the mean colour inside the prediction's silhouettes and the mean colour inside the ground
/// truth's; √3 when the prediction is empty.
pub fn colour_error(pred: &[View], gt: &[View]) -> f64 {
    match (mean_colour(pred), mean_colour(gt)) {
        (Some(p), Some(g)) => p
            .iter()
            .zip(&g)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt(),
        _ => 3f64.sqrt(),
    }
}

/// R-precision with a classifier as the retrieval model: the fraction of `predicted` labels
/// equal to `truth` (top-1 retrieval among all labels of the toy world, R = 1).
pub fn r_precision(predicted: &[usize], truth: usize) -> f64 {
    if predicted.is_empty() {
        return 0.0;
    }
    predicted.iter().filter(|p| **p == truth).count() as f64 / predicted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(alpha: &[f32], rgb: [f32; 3]) -> View {
        View {
            rgb: alpha
                .iter()
                .flat_map(|a| rgb.map(|c| c * a + 1.0 - a))
                .collect(),
            alpha: alpha.to_vec(),
        }
    }

    #[test]
    fn iou_counts_pixels_over_the_threshold() {
        let p = [view(&[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0])];
        let g = [view(&[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0])];
        assert_eq!(silhouette_counts(&p, &g), (1, 3));
        assert!((silhouette_iou(&p, &g) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(silhouette_iou(&g, &g), 1.0);
        // 0.5 itself is outside
        let h = [view(&[0.5, 0.51, 0.0, 0.0], [0.0; 3])];
        assert_eq!(silhouette_counts(&h, &h), (1, 1));
    }

    #[test]
    fn psnr_and_colour_error_by_hand() {
        let g = [view(&[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5])];
        let p = [view(&[1.0, 1.0, 0.0, 0.0], [0.6, 0.5, 0.5])];
        // MSE over 2 pixels × 3 channels: (0.01 + 0 + 0)·2 / 6
        let want = -10.0 * (0.02f64 / 6.0).log10();
        assert!((masked_psnr(&p, &g) - want).abs() < 1e-4);
        assert!((colour_error(&p, &g) - 0.1).abs() < 1e-6);
        assert_eq!(masked_psnr(&g, &g), f64::INFINITY);
        let empty = [view(&[0.0; 4], [0.0; 3])];
        assert!((colour_error(&empty, &g) - 3f64.sqrt()).abs() < 1e-12);
        assert!(masked_psnr(&g, &empty).is_nan());
    }

    #[test]
    fn r_precision_is_the_hit_rate() {
        assert_eq!(r_precision(&[1, 1, 2, 1], 1), 0.75);
        assert_eq!(r_precision(&[], 1), 0.0);
    }

    #[test]
    fn rgba_is_composited_over_white() {
        let v = View::from_rgba(&[1.0, 0.0, 0.0, 0.5]);
        assert_eq!(v.rgb, vec![1.0, 0.5, 0.5]);
        assert_eq!(v.alpha, vec![0.5]);
    }
}
