//! Lens undistortion (OpenCV radial-tangential model) and the area downscale used on load.
//!
//! Pixel convention throughout: the centre of pixel `(i, j)` (row `i`, column `j`) lies at
//! `(u, v) = (j + 0.5, i + 0.5)` in continuous image coordinates, the convention of
//! [`splat::Camera`] and of COLMAP. Intrinsics `fx, fy, cx, cy` are in those coordinates.

use image::RgbaImage;

/// Pinhole intrinsics in pixels (see the module docs for the pixel convention).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pinhole {
    /// Focal length along x.
    pub fx: f64,
    /// Focal length along y.
    pub fy: f64,
    /// Principal point x.
    pub cx: f64,
    /// Principal point y.
    pub cy: f64,
}

impl Pinhole {
    /// Normalized camera coordinates `((u − cx)/fx, (v − cy)/fy)` of image point `(u, v)`.
    pub fn normalize(&self, u: f64, v: f64) -> (f64, f64) {
        ((u - self.cx) / self.fx, (v - self.cy) / self.fy)
    }

    /// Image point `(fx·x + cx, fy·y + cy)` of normalized coordinates `(x, y)`.
    pub fn project(&self, x: f64, y: f64) -> (f64, f64) {
        (self.fx * x + self.cx, self.fy * y + self.cy)
    }
}

/// Brown–Conrady radial-tangential lens distortion with OpenCV's coefficient names
/// (`cv::projectPoints`, "Camera Calibration and 3D Reconstruction" in the OpenCV docs):
/// for normalized undistorted coordinates `(x, y)` and `r² = x² + y²`,
///
/// ```text
/// x_d = x·(1 + k1·r² + k2·r⁴ + k3·r⁶) + 2·p1·x·y + p2·(r² + 2·x²)
/// y_d = y·(1 + k1·r² + k2·r⁴ + k3·r⁶) + p1·(r² + 2·y²) + 2·p2·x·y
/// ```
///
/// COLMAP's SIMPLE_RADIAL (`k`), RADIAL (`k1, k2`) and OPENCV (`k1, k2, p1, p2`) camera models
/// and instant-ngp's `k1, k2, p1, p2` are all special cases.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Distortion {
    /// Radial r² coefficient.
    pub k1: f64,
    /// Radial r⁴ coefficient.
    pub k2: f64,
    /// Radial r⁶ coefficient.
    pub k3: f64,
    /// Tangential coefficient p1.
    pub p1: f64,
    /// Tangential coefficient p2.
    pub p2: f64,
}

impl Distortion {
    /// Whether every coefficient is zero (a plain pinhole camera).
    pub fn is_zero(&self) -> bool {
        self.k1 == 0.0 && self.k2 == 0.0 && self.k3 == 0.0 && self.p1 == 0.0 && self.p2 == 0.0
    }

    /// Whether every coefficient is finite.
    pub fn is_finite(&self) -> bool {
        [self.k1, self.k2, self.k3, self.p1, self.p2]
            .iter()
            .all(|c| c.is_finite())
    }

    /// Apply the distortion model (see the type docs) to normalized coordinates `(x, y)`.
    pub fn distort(&self, x: f64, y: f64) -> (f64, f64) {
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (self.k1 + r2 * (self.k2 + r2 * self.k3));
        let xy = x * y;
        (
            x * radial + 2.0 * self.p1 * xy + self.p2 * (r2 + 2.0 * x * x),
            y * radial + self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * xy,
        )
    }

    /// Invert [`Distortion::distort`] by fixed-point iteration (as `cv::undistortPoints` does),
    /// 20 iterations from `(x_d, y_d)`. Accurate to well below a pixel for the moderate
    /// distortion of ordinary (non-fisheye) lenses.
    pub fn undistort(&self, xd: f64, yd: f64) -> (f64, f64) {
        let (mut x, mut y) = (xd, yd);
        for _ in 0..20 {
            let r2 = x * x + y * y;
            let radial = 1.0 + r2 * (self.k1 + r2 * (self.k2 + r2 * self.k3));
            let dx = 2.0 * self.p1 * x * y + self.p2 * (r2 + 2.0 * x * x);
            let dy = self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * x * y;
            x = (xd - dx) / radial;
            y = (yd - dy) / radial;
        }
        (x, y)
    }
}

/// Undistort `src`, an image taken through a lens with intrinsics `k` and distortion `dist`,
/// into a pinhole image of the same size and the same intrinsics `k`.
///
/// For every output pixel centre `(u, v)` the normalized coordinates `(x, y) = k⁻¹·(u, v)` are
/// distorted with [`Distortion::distort`] and projected with `k` to the source position, which
/// is sampled bilinearly (in straight, non-premultiplied sRGB values).
///
/// Output pixels whose source lies outside the source image: the colour is taken from the
/// nearest edge pixels (clamped), while the alpha of every bilinear tap that falls outside the
/// image counts as 0 — so a pixel entirely outside the source gets alpha 0 and the edge colour,
/// and a pixel straddling the border gets fractional alpha. A trainer that uses alpha as a
/// validity mask skips them; one that ignores alpha sees smeared edges instead of black.
///
/// Cost: one distortion evaluation and one bilinear sample per pixel, single-threaded (the
/// dataset loader decodes and undistorts several images in parallel instead).
pub fn undistort_image(src: &RgbaImage, k: &Pinhole, dist: &Distortion) -> RgbaImage {
    let (w, h) = src.dimensions();
    let mut out = RgbaImage::new(w, h);
    if w == 0 || h == 0 {
        return out;
    }
    let src_raw = src.as_raw();
    let stride = w as usize * 4;
    let Distortion { k1, k2, k3, p1, p2 } = *dist;
    let (inv_fx, inv_fy) = (1.0 / k.fx, 1.0 / k.fy);
    for (i, row) in out.chunks_exact_mut(stride).enumerate() {
        let y = (i as f64 + 0.5 - k.cy) * inv_fy;
        let yy = y * y;
        for (j, px) in row.chunks_exact_mut(4).enumerate() {
            let x = (j as f64 + 0.5 - k.cx) * inv_fx;
            // Distortion::distort, written out: this loop is the hot path of loading.
            let r2 = x * x + yy;
            let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
            let xy2 = 2.0 * x * y;
            let xd = x * radial + p1 * xy2 + p2 * (r2 + 2.0 * x * x);
            let yd = y * radial + p1 * (r2 + 2.0 * yy) + p2 * xy2;
            // Continuous index space: pixel (i, j) has its centre at (j, i).
            let sx = k.fx * xd + k.cx - 0.5;
            let sy = k.fy * yd + k.cy - 0.5;
            // Truncation is floor for the non-negative positions of the fast path (and avoids
            // a libm `floor` call per pixel on baseline x86-64).
            if sx >= 0.0 && sy >= 0.0 && sx < (w - 1) as f64 && sy < (h - 1) as f64 {
                // All four taps inside: the common case.
                let (j0, i0) = (sx as usize, sy as usize);
                let tx = (sx - j0 as f64) as f32;
                let ty = (sy - i0 as f64) as f32;
                let o = i0 * stride + j0 * 4;
                let a = &src_raw[o..o + 8];
                let b = &src_raw[o + stride..o + stride + 8];
                for c in 0..4 {
                    let top = a[c] as f32 + tx * (a[c + 4] as f32 - a[c] as f32);
                    let bot = b[c] as f32 + tx * (b[c + 4] as f32 - b[c] as f32);
                    px[c] = (top + ty * (bot - top) + 0.5) as u8;
                }
            } else {
                sample_bilinear(src_raw, w, h, sx, sy, px);
            }
        }
    }
    out
}

/// Bilinear sample at index-space position `(fx, fy)` (pixel centres at integers) into `out`;
/// colour clamps to the edge, alpha is zero outside (see [`undistort_image`]).
fn sample_bilinear(src: &[u8], w: u32, h: u32, fx: f64, fy: f64, out: &mut [u8]) {
    if !(fx.is_finite() && fy.is_finite()) {
        out.copy_from_slice(&[0, 0, 0, 0]);
        return;
    }
    // Far outside: avoid float→int overflow and needless work.
    if fx < -2.0 || fy < -2.0 || fx > w as f64 + 1.0 || fy > h as f64 + 1.0 {
        let cj = fx.clamp(0.0, (w - 1) as f64) as usize;
        let ci = fy.clamp(0.0, (h - 1) as f64) as usize;
        let o = (ci * w as usize + cj) * 4;
        out[..3].copy_from_slice(&src[o..o + 3]);
        out[3] = 0;
        return;
    }
    let j0 = fx.floor();
    let i0 = fy.floor();
    let tx = (fx - j0) as f32;
    let ty = (fy - i0) as f32;
    let (j0, i0) = (j0 as i64, i0 as i64);
    let mut acc = [0f32; 4];
    for (di, wy) in [(0i64, 1.0 - ty), (1, ty)] {
        for (dj, wx) in [(0i64, 1.0 - tx), (1, tx)] {
            let wgt = wx * wy;
            if wgt == 0.0 {
                continue;
            }
            let (ii, jj) = (i0 + di, j0 + dj);
            let inside = ii >= 0 && jj >= 0 && ii < h as i64 && jj < w as i64;
            let ci = ii.clamp(0, h as i64 - 1) as usize;
            let cj = jj.clamp(0, w as i64 - 1) as usize;
            let o = (ci * w as usize + cj) * 4;
            for c in 0..3 {
                acc[c] += wgt * src[o + c] as f32;
            }
            if inside {
                acc[3] += wgt * src[o + 3] as f32;
            }
        }
    }
    for c in 0..4 {
        out[c] = acc[c].round().clamp(0.0, 255.0) as u8;
    }
}

/// Output size of a `1/downscale` resize: `max(1, round(size / downscale))` per axis.
pub fn downscaled_size(width: u32, height: u32, downscale: u32) -> (u32, u32) {
    let d = downscale.max(1) as f64;
    let f = |s: u32| ((s as f64 / d).round() as u32).max(1);
    (f(width), f(height))
}

/// Resize `src` to `new_w × new_h` by area averaging (each output pixel is the coverage-weighted
/// mean of the source pixels under it, like OpenCV's `INTER_AREA` that gsplat uses), with
/// alpha-premultiplied averaging so the colour of fully transparent pixels (e.g. NeRF-synthetic
/// backgrounds) does not bleed into the edges. The output is straight (non-premultiplied)
/// RGBA8; opaque images are averaged exactly as without premultiplication. Intended for
/// shrinking; an equal size returns a copy.
pub fn resize_area(src: &RgbaImage, new_w: u32, new_h: u32) -> RgbaImage {
    let (w, h) = src.dimensions();
    if (w, h) == (new_w, new_h) {
        return src.clone();
    }
    let mut out = RgbaImage::new(new_w, new_h);
    if w == 0 || h == 0 || new_w == 0 || new_h == 0 {
        return out;
    }
    let wx = area_weights(w, new_w);
    let wy = area_weights(h, new_h);
    let raw = src.as_raw();
    // Horizontal pass: premultiplied [r·a, g·a, b·a, a] (a in 0..1), new_w × h.
    let mut tmp = vec![[0f32; 4]; new_w as usize * h as usize];
    for i in 0..h as usize {
        let row = &raw[i * w as usize * 4..(i + 1) * w as usize * 4];
        for (oj, taps) in wx.iter().enumerate() {
            let mut acc = [0f32; 4];
            for &(j, wgt) in taps {
                let p = &row[j * 4..j * 4 + 4];
                let a = p[3] as f32 / 255.0;
                let wa = wgt * a;
                acc[0] += wa * p[0] as f32;
                acc[1] += wa * p[1] as f32;
                acc[2] += wa * p[2] as f32;
                acc[3] += wa;
            }
            tmp[i * new_w as usize + oj] = acc;
        }
    }
    // Vertical pass and un-premultiplication.
    let out_raw: &mut [u8] = &mut out;
    for (oi, taps) in wy.iter().enumerate() {
        for oj in 0..new_w as usize {
            let mut acc = [0f32; 4];
            for &(i, wgt) in taps {
                let t = tmp[i * new_w as usize + oj];
                for c in 0..4 {
                    acc[c] += wgt * t[c];
                }
            }
            let o = (oi * new_w as usize + oj) * 4;
            let px = &mut out_raw[o..o + 4];
            if acc[3] > 0.0 {
                for c in 0..3 {
                    px[c] = (acc[c] / acc[3]).round().clamp(0.0, 255.0) as u8;
                }
            }
            px[3] = (acc[3] * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// For each output index, the source indices it covers with normalized weights (overlap of
/// `[o·s, (o+1)·s)` with each source pixel, `s = src/dst`).
fn area_weights(src: u32, dst: u32) -> Vec<Vec<(usize, f32)>> {
    let s = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let a = o as f64 * s;
            let b = ((o + 1) as f64 * s).min(src as f64);
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).min(src as usize).max(first + 1);
            let mut taps: Vec<(usize, f32)> = (first..last)
                .filter_map(|k| {
                    let overlap = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
                    (overlap > 1e-12).then_some((k, overlap as f32))
                })
                .collect();
            if taps.is_empty() {
                taps.push((first.min(src as usize - 1), 1.0));
            }
            let total: f32 = taps.iter().map(|t| t.1).sum();
            for t in &mut taps {
                t.1 /= total;
            }
            taps
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Pinhole = Pinhole {
        fx: 70.0,
        fy: 72.0,
        cx: 49.3,
        cy: 31.8,
    };
    const DIST: Distortion = Distortion {
        k1: -0.25,
        k2: 0.08,
        k3: 0.0,
        p1: 0.004,
        p2: -0.003,
    };

    #[test]
    fn distort_then_undistort_point_round_trips() {
        for &(x, y) in &[(0.0, 0.0), (0.3, -0.2), (-0.6, 0.4), (0.5, 0.5)] {
            let (xd, yd) = DIST.distort(x, y);
            let (xu, yu) = DIST.undistort(xd, yd);
            assert!((xu - x).abs() < 1e-9 && (yu - y).abs() < 1e-9, "{x},{y}");
        }
        // Pincushion/barrel sanity: k1 < 0 pulls points towards the centre.
        let (xd, _) = DIST.distort(0.5, 0.0);
        assert!(xd < 0.5);
    }

    /// Render Gaussian dots at the *distorted* positions of known ideal points (forward map),
    /// undistort the image, and find the dots back at the ideal positions.
    #[test]
    fn undistortion_moves_dots_back() {
        let (w, h) = (100u32, 64u32);
        let ideal: Vec<(f64, f64)> = vec![
            (49.5, 31.5),
            (12.5, 9.5),
            (86.0, 10.0),
            (15.2, 52.7),
            (84.6, 54.3),
            (30.0, 30.0),
        ];
        let sigma = 1.3f64;
        let distorted: Vec<(f64, f64)> = ideal
            .iter()
            .map(|&(u, v)| {
                let (x, y) = K.normalize(u, v);
                let (xd, yd) = DIST.distort(x, y);
                K.project(xd, yd)
            })
            .collect();
        // The distortion is strong enough to matter: several pixels at the corners.
        let shift = ideal
            .iter()
            .zip(&distorted)
            .map(|(a, b)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt())
            .fold(0.0, f64::max);
        assert!(shift > 3.0, "max shift {shift}");
        let raw = RgbaImage::from_fn(w, h, |j, i| {
            let (u, v) = (j as f64 + 0.5, i as f64 + 0.5);
            let val: f64 = distorted
                .iter()
                .map(|&(du, dv)| {
                    (-((u - du).powi(2) + (v - dv).powi(2)) / (2.0 * sigma * sigma)).exp()
                })
                .sum();
            let g = (255.0 * val.min(1.0)).round() as u8;
            image::Rgba([g, g, g, 255])
        });
        let und = undistort_image(&raw, &K, &DIST);
        for &(u, v) in &ideal {
            // Intensity-weighted centroid in a 9×9 window around the ideal position.
            let (mut s, mut su, mut sv) = (0.0, 0.0, 0.0);
            let (cj, ci) = (u.floor() as i64, v.floor() as i64);
            for i in ci - 4..=ci + 4 {
                for j in cj - 4..=cj + 4 {
                    if i < 0 || j < 0 || i >= h as i64 || j >= w as i64 {
                        continue;
                    }
                    let g = und.get_pixel(j as u32, i as u32)[0] as f64;
                    s += g;
                    su += g * (j as f64 + 0.5);
                    sv += g * (i as f64 + 0.5);
                }
            }
            assert!(s > 200.0, "dot at ({u},{v}) not found");
            let (mu, mv) = (su / s, sv / s);
            let err = ((mu - u).powi(2) + (mv - v).powi(2)).sqrt();
            assert!(err < 0.25, "dot at ({u},{v}) found at ({mu},{mv})");
        }
    }

    #[test]
    fn zero_distortion_is_identity() {
        let img = RgbaImage::from_fn(37, 23, |j, i| {
            image::Rgba([(j * 7) as u8, (i * 11) as u8, ((i * j) % 256) as u8, 200])
        });
        let out = undistort_image(&img, &K, &Distortion::default());
        assert_eq!(out, img);
    }

    #[test]
    fn outside_source_gets_zero_alpha() {
        // Strong pincushion: the output corners sample outside the source.
        let dist = Distortion {
            k1: 0.5,
            ..Default::default()
        };
        let img = RgbaImage::from_pixel(40, 30, image::Rgba([10, 20, 30, 255]));
        let out = undistort_image(&img, &K, &dist);
        assert_eq!(out.get_pixel(0, 0).0, [10, 20, 30, 0]);
        assert_eq!(out.get_pixel(20, 15)[3], 255);
    }

    #[test]
    fn extreme_coefficients_do_not_panic() {
        let img = RgbaImage::from_pixel(9, 7, image::Rgba([1, 2, 3, 255]));
        for k1 in [1e30, -1e30, f64::NAN] {
            let d = Distortion {
                k1,
                ..Default::default()
            };
            let out = undistort_image(&img, &K, &d);
            assert_eq!(out.dimensions(), (9, 7));
        }
        let one = RgbaImage::from_pixel(1, 1, image::Rgba([5, 6, 7, 255]));
        assert_eq!(undistort_image(&one, &K, &DIST).dimensions(), (1, 1));
    }

    #[test]
    fn area_resize_averages_and_ignores_transparent_colour() {
        let img = RgbaImage::from_fn(4, 2, |j, _| {
            if j < 2 {
                image::Rgba([100, 50, 0, 255])
            } else if j == 2 {
                image::Rgba([200, 0, 0, 255])
            } else {
                image::Rgba([0, 255, 0, 0]) // transparent green must not leak
            }
        });
        let out = resize_area(&img, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0, [100, 50, 0, 255]);
        assert_eq!(out.get_pixel(1, 0).0, [200, 0, 0, 128]);
        assert_eq!(downscaled_size(1080, 1920, 8), (135, 240));
        assert_eq!(downscaled_size(401, 3, 2), (201, 2));
        // Non-integer ratio keeps a constant image constant.
        let flat = RgbaImage::from_pixel(7, 5, image::Rgba([9, 99, 199, 255]));
        let r = resize_area(&flat, 3, 2);
        assert!(r.pixels().all(|p| p.0 == [9, 99, 199, 255]));
    }
}
