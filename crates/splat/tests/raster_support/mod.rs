//! Scene generators, camera helpers, bad-value injection and read-back helpers of the
//! rasterizer invariant tests (`raster_invariants.rs`).
#![allow(dead_code)]

use burn::tensor::{Device, Gradients, Tensor, TensorData};
use splat::{Camera, RenderOutput, SplatData, Splats};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The shared GPU context, held exclusively for the duration of a test.
///
/// The tests of this file run one at a time on the device: wgpu reports a validation error by
/// panicking in whichever thread next flushes the queue, so with tests interleaved on one
/// device a library bug hit by one test could fail another. Serialising also keeps the timings
/// printed by the tests meaningful (lavapipe already uses every core for one dispatch).
pub fn exclusive_gpu() -> (std::sync::MutexGuard<'static, ()>, &'static gpu::GpuContext) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding the lock poisons it; the next test still runs.
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    (guard, testkit::gpu())
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): tiny, deterministic and
/// plenty random for scene generation.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        let mut r = Self(seed ^ 0x9E37_79B9_7F4A_7C15);
        r.next_u32();
        r
    }

    /// 31 high-quality bits (the high bits of an LCG are the good ones).
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u32() as usize) % n
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    pub fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| scale * self.normal()).collect()
    }
}

/// `Σ wᵢ·vᵢ` of 3-vectors (the test crate does not depend on glam; splat's `glam::Vec3`
/// parameters are passed as `[f32; 3]` with `.into()`).
pub fn comb(terms: &[(f32, [f32; 3])]) -> [f32; 3] {
    let mut out = [0.0f32; 3];
    for (w, v) in terms {
        for (o, x) in out.iter_mut().zip(v) {
            *o += w * x;
        }
    }
    out
}

/// A camera's centre and its OpenCV axes in world space: (eye, [forward, right, down]),
/// read from the world→camera rotation (its rows are the camera axes).
pub fn camera_frame(cam: &Camera) -> ([f32; 3], [[f32; 3]; 3]) {
    let row = |r: usize| [cam.viewmat[r][0], cam.viewmat[r][1], cam.viewmat[r][2]];
    (cam.position().to_array(), [row(2), row(0), row(1)])
}

/// A well-formed random scene of `n` splats in the cube [-1, 1]³: random rotations, world
/// standard deviations 0.03–0.22 (a few pixels at the test cameras), varied opacities, SH
/// coefficients of `sh_degree` with a dominant DC term.
pub fn random_scene(rng: &mut Lcg, n: usize, sh_degree: u32) -> SplatData {
    let k = splat::scene::sh_coeffs(sh_degree);
    let mut sh = Vec::with_capacity(n * k * 3);
    for _ in 0..n {
        for coeff in 0..k {
            let scale = if coeff == 0 { 0.8 } else { 0.25 };
            for _ in 0..3 {
                sh.push(scale * rng.normal());
            }
        }
    }
    SplatData {
        means: (0..3 * n).map(|_| rng.range(-1.0, 1.0)).collect(),
        quats: rng.normals(4 * n, 1.0),
        log_scales: (0..3 * n).map(|_| rng.range(-3.5, -1.5)).collect(),
        opacity_logits: (0..n).map(|_| 0.5 + 1.5 * rng.normal()).collect(),
        sh,
        sh_degree,
    }
}

/// A camera at distance `radius` from the origin in a random direction (kept away from the
/// poles so the world-up `Z` is a valid `look_at` up vector), looking at the origin.
pub fn random_camera(rng: &mut Lcg, radius: f32, width: u32, height: u32) -> Camera {
    let phi = rng.range(0.0, std::f32::consts::TAU);
    let elev = rng.range(-0.8, 0.8);
    let eye = [
        radius * elev.cos() * phi.cos(),
        radius * elev.cos() * phi.sin(),
        radius * elev.sin(),
    ];
    Camera::look_at(
        eye.into(),
        [0.0; 3].into(),
        [0.0, 0.0, 1.0].into(),
        1.0,
        width,
        height,
    )
}

/// Fail the test with every collected failure, one per line.
pub fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Upload a host scene as leaf tensors; with `grad`, mark every tensor `require_grad()`.
pub fn upload(data: &SplatData, device: &Device, grad: bool) -> Splats {
    let s = data.to_splats(device);
    if grad { s.require_grad() } else { s }
}

/// Read a tensor back. Panics (failing the test) when the read reports a device error, which
/// is how failed launches and out-of-memory surface in burn.
pub fn host<const D: usize>(what: &str, t: Tensor<D>) -> Vec<f32> {
    t.try_into_data()
        .unwrap_or_else(|e| panic!("{what}: read back failed: {e:?}"))
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_else(|e| panic!("{what}: not f32: {e:?}"))
}

/// A tensor from host values.
pub fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Cotangents of the test loss `Σ rgb·G + Σ alpha·H + Σ depth·D` for `c` cameras.
pub struct Cotangents {
    pub g: Vec<f32>,
    pub h: Vec<f32>,
    pub d: Vec<f32>,
}

impl Cotangents {
    pub fn random(rng: &mut Lcg, c: usize, h: usize, w: usize) -> Self {
        Self {
            g: rng.normals(c * h * w * 3, 1.0),
            h: rng.normals(c * h * w, 1.0),
            d: rng.normals(c * h * w, 0.1),
        }
    }

    /// The loss of `out` restricted to cameras `cams` of the cotangents (so a single-camera
    /// render can use the slice of a batch's cotangents).
    pub fn loss(
        &self,
        out: &RenderOutput,
        cams: std::ops::Range<usize>,
        device: &Device,
    ) -> Tensor<1> {
        let [c, h, w, _] = out.rgb.dims();
        assert_eq!(c, cams.len());
        let px = h * w;
        let g = tensor(
            self.g[cams.start * px * 3..cams.end * px * 3].to_vec(),
            [c, h, w, 3],
            device,
        );
        let hh = tensor(
            self.h[cams.start * px..cams.end * px].to_vec(),
            [c, h, w],
            device,
        );
        let d = tensor(
            self.d[cams.start * px..cams.end * px].to_vec(),
            [c, h, w],
            device,
        );
        (out.rgb.clone() * g).sum() + (out.alpha.clone() * hh).sum() + (out.depth.clone() * d).sum()
    }
}

/// The gradients [`gradients`] returns, in its order.
pub const GRAD_NAMES: [&str; 6] = [
    "means",
    "quats",
    "log_scales",
    "opacity_logits",
    "sh",
    "means2d",
];

/// All gradients of a render on the host, in [`GRAD_NAMES`] order (`means2d` is `[C, N, 2]`,
/// the others have their tensor's shape). Panics if one is missing or unreadable.
pub fn gradients(splats: &Splats, out: &RenderOutput, grads: &Gradients) -> [Vec<f32>; 6] {
    let need =
        |name: &str, t: Option<Vec<f32>>| t.unwrap_or_else(|| panic!("no gradient for {name}"));
    [
        need(
            "means",
            splats.means.grad(grads).map(|t| host("grad.means", t)),
        ),
        need(
            "quats",
            splats.quats.grad(grads).map(|t| host("grad.quats", t)),
        ),
        need(
            "log_scales",
            splats
                .log_scales
                .grad(grads)
                .map(|t| host("grad.log_scales", t)),
        ),
        need(
            "opacity_logits",
            splats
                .opacity_logits
                .grad(grads)
                .map(|t| host("grad.opacity_logits", t)),
        ),
        need("sh", splats.sh.grad(grads).map(|t| host("grad.sh", t))),
        need(
            "means2d",
            out.means2d.grad(grads).map(|t| host("grad.means2d", t)),
        ),
    ]
}

/// Host copies of a render's images: (rgb [C,H,W,3], alpha [C,H,W], depth [C,H,W]).
pub fn images(out: &RenderOutput) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        host("rgb", out.rgb.clone()),
        host("alpha", out.alpha.clone()),
        host("depth", out.depth.clone()),
    )
}

/// Index and value of the first non-finite element, if any.
pub fn first_non_finite(v: &[f32]) -> Option<(usize, f32)> {
    v.iter().copied().enumerate().find(|(_, x)| !x.is_finite())
}

// ---------------------------------------------------------------------------------------------
// 1. Fuzzing with bad values
// ---------------------------------------------------------------------------------------------

/// Bad or degenerate input injected into one splat. Kinds marked "finite" leave the splat's
/// inputs finite, so its gradients must stay finite too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// NaN, +Inf or −Inf in one random element of one of the five tensors.
    NonFinite,
    /// ±1e-40 (a float32 denormal) in one random element (finite).
    Denormal,
    /// All four quaternion components 0 (finite; the kernels fall back to identity).
    ZeroQuat,
    /// Quaternion components ~1e-20: |q|² underflows (finite).
    TinyQuat,
    /// log_scale = −100 on one or all axes: exp underflows to (denormal) zero (finite).
    ZeroScale,
    /// log_scale = 30 on one or all axes: σ ≈ 1e13, covariances near float32 overflow (finite).
    HugeScale,
    /// Mean at camera 0's centre, as `Camera::position` computes it (finite).
    AtCamera,
    /// Mean behind camera 0 (finite).
    BehindCamera,
    /// Mean just past camera 0's near plane and off to the side: projects far off-screen with
    /// a huge Jacobian (finite).
    NearPlane,
}

pub const BAD_KINDS: [Bad; 9] = [
    Bad::NonFinite,
    Bad::Denormal,
    Bad::ZeroQuat,
    Bad::TinyQuat,
    Bad::ZeroScale,
    Bad::HugeScale,
    Bad::AtCamera,
    Bad::BehindCamera,
    Bad::NearPlane,
];

/// Apply `bad` to splat `i` of `s`; `eye` and `axes` ([forward, right, down]) are camera 0's
/// (see [`camera_frame`]).
pub fn inject(
    rng: &mut Lcg,
    s: &mut SplatData,
    i: usize,
    bad: Bad,
    eye: [f32; 3],
    axes: [[f32; 3]; 3],
) {
    let k3 = s.sh.len() / s.len();
    // (tensor index, element) of a random element of splat i.
    let pick = |rng: &mut Lcg| -> (usize, usize) {
        match rng.below(5) {
            0 => (0, 3 * i + rng.below(3)),
            1 => (1, 4 * i + rng.below(4)),
            2 => (2, 3 * i + rng.below(3)),
            3 => (3, i),
            _ => (4, k3 * i + rng.below(k3)),
        }
    };
    let set = |s: &mut SplatData, (t, e): (usize, usize), v: f32| match t {
        0 => s.means[e] = v,
        1 => s.quats[e] = v,
        2 => s.log_scales[e] = v,
        3 => s.opacity_logits[e] = v,
        _ => s.sh[e] = v,
    };
    let [fwd, right, down] = axes;
    match bad {
        Bad::NonFinite => {
            let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.below(3)];
            let at = pick(rng);
            set(s, at, v);
        }
        Bad::Denormal => {
            let v = if rng.below(2) == 0 { 1e-40 } else { -1e-40 };
            let at = pick(rng);
            set(s, at, v);
        }
        Bad::ZeroQuat => s.quats[4 * i..4 * i + 4].fill(0.0),
        Bad::TinyQuat => {
            for q in &mut s.quats[4 * i..4 * i + 4] {
                *q = rng.range(-1.0, 1.0) * 1e-20;
            }
        }
        Bad::ZeroScale | Bad::HugeScale => {
            let v = if bad == Bad::ZeroScale { -100.0 } else { 30.0 };
            if rng.below(2) == 0 {
                s.log_scales[3 * i..3 * i + 3].fill(v);
            } else {
                s.log_scales[3 * i + rng.below(3)] = v;
            }
        }
        Bad::AtCamera => s.means[3 * i..3 * i + 3].copy_from_slice(&eye),
        Bad::BehindCamera => {
            let p = comb(&[
                (1.0, eye),
                (-rng.range(0.05, 3.0), fwd),
                (rng.range(-1.0, 1.0), right),
                (rng.range(-1.0, 1.0), down),
            ]);
            s.means[3 * i..3 * i + 3].copy_from_slice(&p);
        }
        Bad::NearPlane => {
            let p = comb(&[
                (1.0, eye),
                (rng.range(0.0101, 0.05), fwd),
                (rng.range(-2.0, 2.0), right),
                (rng.range(-2.0, 2.0), down),
            ]);
            s.means[3 * i..3 * i + 3].copy_from_slice(&p);
        }
    }
}

/// Whether every input of splat `i` is finite.
pub fn splat_finite(s: &SplatData, i: usize) -> bool {
    let k3 = s.sh.len() / s.len();
    s.means[3 * i..3 * i + 3].iter().all(|v| v.is_finite())
        && s.quats[4 * i..4 * i + 4].iter().all(|v| v.is_finite())
        && s.log_scales[3 * i..3 * i + 3].iter().all(|v| v.is_finite())
        && s.opacity_logits[i].is_finite()
        && s.sh[k3 * i..k3 * i + k3].iter().all(|v| v.is_finite())
}
