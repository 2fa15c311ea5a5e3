//! Rasterizer invariants that hold for *any* input, complementing the numerical parity of
//! `raster_reference.rs` (which only covers well-formed scenes):
//!
//! - [`fuzz_bad_values_no_panic_finite_outputs`]: random scenes salted with NaN, ±Inf,
//!   denormals and degenerate geometry render and backpropagate without panics or device
//!   errors; images are finite with alpha in [0, 1]; every splat whose own inputs are finite
//!   gets finite gradients (bad splats must not poison their neighbours).
//! - [`camera_batch_matches_single_renders`]: a batch of cameras renders exactly like one call
//!   per camera, and the batch gradient is the sum of the per-camera gradients.
//! - [`many_splats_many_tiles`]: the 2-D workgroup grid helper past 65,535 workgroups, and a
//!   ~100k-splat forward render.
//! - [`empty_and_degenerate_scenes`]: zero splats, fully culled scenes (exact background, zero
//!   alpha, zero gradients), a single splat, an image smaller than one tile.
//! - [`intersection_cap_reports_overflow`]: a call that needs more tile intersections than
//!   its cap returns `TooManyIntersections` (with the true count) instead of a partial image,
//!   and leaves the next render unharmed; at exactly the count it renders unchanged.
//! - [`radix_sort_is_stable`]: the GPU radix sort behind the depth and tile sorts equals a
//!   stable host sort, for lengths around its block sizes and for 4 to 32 key bits.
//! - [`garbage_fill_is_on`]: the tests really run with garbage-filled fresh buffers, so a
//!   kernel that reads memory it never wrote shows up as NaN/garbage here.
//!
//! Everything is deterministic (a fixed-seed LCG); a failure message names the scene seed.

use std::time::Instant;

use splat::{Camera, RasterizeMode, RenderError, RenderOptions, SplatData, render};

mod raster_support;
use raster_support::*;

/// 20 scenes × 200 splats, 64×48, SH degree 0 and 3 and plain RGB colours, classic and
/// antialiased, 1 or 2 cameras, both backward variants (subgroups / per-pixel atomics) where the
/// device has subgroups.
/// About a third of the splats get one or two injected [`Bad`] inputs.
#[test]
fn fuzz_bad_values_no_panic_finite_outputs() {
    const SCENES: u64 = 20;
    const N: usize = 200;
    const W: u32 = 64;
    const H: u32 = 48;
    let (_lock, ctx) = exclusive_gpu();
    let device = ctx.burn.clone().autodiff();
    let started = Instant::now();
    let mut failures = vec![];
    for seed in 0..SCENES {
        let mut rng = Lcg::new(1000 + seed);
        let sh_degree = if seed % 2 == 0 { 0 } else { 3 };
        let mode = if seed % 4 >= 2 {
            RasterizeMode::Antialiased
        } else {
            RasterizeMode::Classic
        };
        let num_cams = if seed % 3 == 2 { 2 } else { 1 };
        let subgroups = ctx.subgroups && (seed / 4) % 2 == 0;
        // Some degree-0 scenes use the coefficients as plain RGB (the RGB kernel variants).
        let rgb_colors = sh_degree == 0 && matches!(seed % 8, 0 | 6);
        let cameras: Vec<Camera> = (0..num_cams)
            .map(|_| random_camera(&mut rng, 4.0, W, H))
            .collect();
        let (eye, axes) = camera_frame(&cameras[0]);
        let mut scene = random_scene(&mut rng, N, sh_degree);
        let mut injected = vec![vec![]; N];
        for (i, inj) in injected.iter_mut().enumerate() {
            if rng.below(3) != 0 {
                continue;
            }
            for _ in 0..1 + rng.below(2) {
                let bad = BAD_KINDS[rng.below(BAD_KINDS.len())];
                inject(&mut rng, &mut scene, i, bad, eye, axes);
                inj.push(bad);
            }
        }
        let finite: Vec<bool> = (0..N).map(|i| splat_finite(&scene, i)).collect();
        let background = [rng.uniform(), rng.uniform(), rng.uniform()];
        let cot = Cotangents::random(&mut rng, num_cams, H as usize, W as usize);

        let colors = if rgb_colors {
            "rgb".to_string()
        } else {
            format!("sh {sh_degree}")
        };
        let tag = format!(
            "scene seed {seed} ({colors}, {mode:?}, {num_cams} camera(s), subgroups {subgroups})"
        );
        let splats = upload(&scene, &device, true);
        let opts = RenderOptions {
            background,
            mode,
            rgb_colors,
            means2d_grad: true,
            subgroups,
            ..Default::default()
        };
        let out = render(&splats, &cameras, &opts)
            .unwrap_or_else(|e| panic!("{tag}: render failed: {e}"));
        let grads = cot.loss(&out, 0..num_cams, &device).backward();

        // Images: finite, alpha a probability, depth a non-negative sum.
        let (rgb, alpha, depth) = images(&out);
        for (name, v) in [("rgb", &rgb), ("alpha", &alpha), ("depth", &depth)] {
            if let Some((i, x)) = first_non_finite(v) {
                failures.push(format!("{tag}: {name}[{i}] = {x}"));
            }
        }
        if let Some((i, a)) = alpha
            .iter()
            .enumerate()
            .find(|(_, a)| !(**a >= 0.0 && **a <= 1.0))
        {
            failures.push(format!("{tag}: alpha[{i}] = {a} outside [0, 1]"));
        }
        if let Some((i, d)) = depth.iter().enumerate().find(|(_, d)| **d < 0.0) {
            failures.push(format!("{tag}: depth[{i}] = {d} < 0"));
        }
        // The scene must actually be seen, or the test checks nothing.
        let max_alpha = alpha.iter().fold(0.0f32, |m, a| m.max(*a));
        if max_alpha < 0.5 {
            failures.push(format!(
                "{tag}: max alpha {max_alpha}: the scene is not visible, test is vacuous"
            ));
        }

        // Gradients: all readable (host() panics otherwise); finite for every finite splat.
        let g = gradients(&splats, &out, &grads);
        let k3 = scene.sh.len() / N;
        let per_splat = [3, 4, 3, 1, k3];
        for (t, name) in GRAD_NAMES.iter().enumerate() {
            let want_len = if t == 5 {
                num_cams * N * 2
            } else {
                per_splat[t] * N
            };
            if g[t].len() != want_len {
                failures.push(format!(
                    "{tag}: grad.{name} has {} values, want {want_len}",
                    g[t].len()
                ));
                continue;
            }
            for (e, v) in g[t].iter().enumerate() {
                // means2d is [C, N, 2]; the others [N, ...].
                let i = if t == 5 {
                    (e / 2) % N
                } else {
                    e / per_splat[t]
                };
                if finite[i] && !v.is_finite() {
                    failures.push(format!(
                        "{tag}: grad.{name}[{e}] = {v} for splat {i}, whose inputs are finite (injected: {:?})",
                        injected[i]
                    ));
                    break;
                }
            }
        }
        let bad = injected.iter().filter(|v| !v.is_empty()).count();
        let non_finite = finite.iter().filter(|f| !**f).count();
        eprintln!(
            "{tag}: {bad} splats injected, {non_finite} with non-finite inputs, max alpha {max_alpha:.3}"
        );
    }
    eprintln!("fuzz: {SCENES} scenes in {:.1?}", started.elapsed());
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------------------------
// 2. Camera batches
// ---------------------------------------------------------------------------------------------

/// Three cameras around one scene in one call must give exactly the images of three separate
/// calls, and the gradient of a loss summed over the batch must be the sum of the per-camera
/// gradients (the projection backward sums a splat's cameras; `means2d` is `[C, N, 2]` and
/// must hold each camera's own slice). Runs both backward variants where subgroups exist.
#[test]
fn camera_batch_matches_single_renders() {
    const N: usize = 300;
    const W: u32 = 64;
    const H: u32 = 48;
    const C: usize = 3;
    let (_lock, ctx) = exclusive_gpu();
    let device = ctx.burn.clone().autodiff();
    let started = Instant::now();
    let mut rng = Lcg::new(77);
    // SH degree 3: colours depend on each camera's position, so a batch that mixed up
    // cameras would show in the images and in the SH / means gradients.
    let scene = random_scene(&mut rng, N, 3);
    let cameras: Vec<Camera> = (0..C).map(|_| random_camera(&mut rng, 3.5, W, H)).collect();
    let cot = Cotangents::random(&mut rng, C, H as usize, W as usize);
    let (px, modes): (usize, &[bool]) = (
        (W * H) as usize,
        if ctx.subgroups {
            &[true, false]
        } else {
            &[false]
        },
    );

    for &subgroups in modes {
        let opts = RenderOptions {
            background: [0.2, 0.4, 0.6],
            means2d_grad: true,
            subgroups,
            ..Default::default()
        };
        let splats = upload(&scene, &device, true);

        // The batch.
        let out = render(&splats, &cameras, &opts).expect("batch render");
        let grads = cot.loss(&out, 0..C, &device).backward();
        let (rgb_b, alpha_b, depth_b) = images(&out);
        let grad_b = gradients(&splats, &out, &grads);

        // One call per camera; the per-splat gradients are summed, means2d concatenated.
        let (mut rgb_s, mut alpha_s, mut depth_s) = (vec![], vec![], vec![]);
        let mut grad_s: [Vec<f64>; 6] = Default::default();
        for c in 0..C {
            let out = render(&splats, &cameras[c..c + 1], &opts).expect("single render");
            let grads = cot.loss(&out, c..c + 1, &device).backward();
            let (r, a, d) = images(&out);
            rgb_s.extend(r);
            alpha_s.extend(a);
            depth_s.extend(d);
            for (t, g) in gradients(&splats, &out, &grads).into_iter().enumerate() {
                if t == 5 {
                    grad_s[t].extend(g.iter().map(|x| *x as f64));
                } else if c == 0 {
                    grad_s[t] = g.iter().map(|x| *x as f64).collect();
                } else {
                    for (acc, x) in grad_s[t].iter_mut().zip(&g) {
                        *acc += *x as f64;
                    }
                }
            }
        }

        // The test is only meaningful if every camera sees the scene and sees it differently.
        for c in 0..C {
            let a = &alpha_s[c * px..(c + 1) * px];
            assert!(
                a.iter().any(|x| *x > 0.5),
                "camera {c} barely sees the scene"
            );
            if c > 0 {
                assert!(
                    rgb_s[c * px * 3..(c + 1) * px * 3] != rgb_s[..px * 3],
                    "camera {c} renders like camera 0"
                );
            }
        }

        // Images: the forward is deterministic (same sort order per camera), so 1e-5 absolute
        // (relative for the depth sum, which is in scene units).
        let close = |name: &str, got: &[f32], want: &[f32], rel: bool| {
            assert_eq!(got.len(), want.len(), "{name}: length");
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let tol = if rel { 1e-5 * w.abs().max(1.0) } else { 1e-5 };
                assert!(
                    (g - w).abs() <= tol,
                    "{name}[{i}] (camera {}): batch {g}, single {w} (subgroups {subgroups})",
                    i / (px * if name == "rgb" { 3 } else { 1 })
                );
            }
        };
        close("rgb", &rgb_b, &rgb_s, false);
        close("alpha", &alpha_b, &alpha_s, false);
        close("depth", &depth_b, &depth_s, true);

        // Gradients: atomics add in a different order, so the standard tolerance
        // 1e-4·max + 1e-5 of the reference tests.
        let mut failures = vec![];
        for (t, name) in GRAD_NAMES.iter().enumerate() {
            if let Err(e) = testkit::compare(
                &format!("grad.{name} (subgroups {subgroups})"),
                &grad_b[t],
                &grad_s[t],
            ) {
                failures.push(e);
            }
            assert!(
                grad_s[t].iter().any(|x| *x != 0.0),
                "grad.{name} is all zero: vacuous comparison"
            );
        }
        assert!(
            failures.is_empty(),
            "batch gradients differ from the summed single-camera gradients:\n  {}",
            failures.join("\n  ")
        );
    }
    eprintln!("camera batch: {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// 3. Large dispatches
// ---------------------------------------------------------------------------------------------

/// The 2-D workgroup grid of `gpu::launch::grid_1d`, parsed from its `Debug` form `(x, y, z)`
/// (the test crate cannot name cubecl's `CubeCount`).
fn grid_of(groups: u32) -> [u64; 3] {
    let s = format!("{:?}", gpu::launch::grid_1d(groups));
    let nums: Vec<u64> = s
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|e| panic!("grid_1d({groups}) = {s}: {e}"))
        })
        .collect();
    nums.try_into()
        .unwrap_or_else(|_| panic!("grid_1d({groups}) = {s}: not (x, y, z)"))
}

/// `grid_1d` covers any workgroup count within the 65,535-per-dimension limit; then ~100k tiny
/// random splats render into a 256×256 image (many splats per tile, several 256-splat staging
/// batches per tile, multi-block scans and sorts).
#[test]
fn many_splats_many_tiles() {
    let max = gpu::launch::MAX_WORKGROUPS_PER_DIM as u64;
    assert_eq!(max, 65_535);
    for groups in [
        0u32,
        1,
        255,
        65_535,
        65_536,
        70_000,
        131_071,
        1 << 24,
        65_535 * 65_535,
    ] {
        let [x, y, z] = grid_of(groups);
        let want = (groups as u64).max(1);
        assert!(
            x * y * z >= want,
            "grid_1d({groups}) = ({x}, {y}, {z}) covers fewer groups"
        );
        assert!(
            (1..=max).contains(&x) && (1..=max).contains(&y) && z == 1,
            "grid_1d({groups}) = ({x}, {y}, {z}) exceeds the per-dimension limit"
        );
        // Kernels bounds-check the linear index; the documented waste is under one row.
        assert!(
            x * y - want < x,
            "grid_1d({groups}) = ({x}, {y}, {z}) wastes a whole row or more"
        );
    }
    let [x, y, _] = grid_of(70_000);
    assert!(
        y >= 2,
        "70,000 workgroups need a second grid dimension, got ({x}, {y})"
    );

    const N: usize = 100_000;
    const SIZE: u32 = 256;
    let (_lock, ctx) = exclusive_gpu();
    let mut rng = Lcg::new(4242);
    let mut scene = random_scene(&mut rng, N, 0);
    // World σ 0.001–0.004 at distance ~4 with fx ≈ 234 px: 0.06–0.25 px, sub-pixel (the 0.3
    // px² blur then dominates, so every splat spans 1–4 tiles).
    for s in &mut scene.log_scales {
        *s = rng.range(-6.9, -5.5);
    }
    for m in &mut scene.means {
        *m *= 1.5;
    }
    let camera = Camera::look_at(
        [4.0, 3.0, 2.0].into(),
        [0.0; 3].into(),
        [0.0, 0.0, 1.0].into(),
        1.0,
        SIZE,
        SIZE,
    );
    let splats = upload(&scene, &ctx.burn, false);
    let started = Instant::now();
    let out = render(&splats, &[camera], &RenderOptions::default()).expect("render");
    let (rgb, alpha, depth) = images(&out);
    let elapsed = started.elapsed();
    for (name, v) in [("rgb", &rgb), ("alpha", &alpha), ("depth", &depth)] {
        assert_eq!(
            v.len(),
            (SIZE * SIZE) as usize * if name == "rgb" { 3 } else { 1 }
        );
        if let Some((i, x)) = first_non_finite(v) {
            panic!("{name}[{i}] = {x}");
        }
    }
    assert!(
        alpha.iter().all(|a| (0.0..=1.0).contains(a)),
        "alpha outside [0, 1]"
    );
    let covered = alpha.iter().filter(|a| **a > 0.0).count();
    eprintln!(
        "{N} splats, {SIZE}×{SIZE}: forward and read-back in {elapsed:.1?}; {covered} pixels covered"
    );
    assert!(covered > 0, "nothing was drawn");
    // 100k splats in a cube filling most of the view cover most pixels.
    assert!(
        covered > alpha.len() / 4,
        "only {covered} of {} pixels have alpha > 0",
        alpha.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Empty and degenerate scenes
// ---------------------------------------------------------------------------------------------

/// The text of a caught panic.
fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// Host results of a render and its backward: (rgb, alpha, depth, gradients in
/// [`GRAD_NAMES`] order).
type Rendered = (Vec<f32>, Vec<f32>, Vec<f32>, [Vec<f32>; 6]);

/// Render `scene` from `cameras` on the autodiff device with the loss of random cotangents and
/// backpropagate.
fn render_and_backward(
    scene: &SplatData,
    cameras: &[Camera],
    opts: &RenderOptions,
    seed: u64,
) -> Result<Rendered, String> {
    let device = testkit::gpu().burn.clone().autodiff();
    let splats = upload(scene, &device, true);
    let out = render(&splats, cameras, opts).map_err(|e| e.to_string())?;
    let [c, h, w, _] = out.rgb.dims();
    let cot = Cotangents::random(&mut Lcg::new(seed), c, h, w);
    let grads = cot.loss(&out, 0..c, &device).backward();
    let (rgb, alpha, depth) = images(&out);
    Ok((rgb, alpha, depth, gradients(&splats, &out, &grads)))
}

/// Degenerate inputs: every failure is collected, so one bug does not hide the others.
///
/// - Fully culled scenes (behind the camera; past the far plane, beside the view frustum):
///   the image is exactly the background, alpha and depth exactly 0, and every gradient
///   exactly 0. No intersections exist, so this also checks that nothing reads the
///   (garbage-filled) intersection buffers.
/// - One splat (the radix sorts' n ≤ 1 shortcut) and an image smaller than one tile with two
///   cameras (a one-tile grid): finite images that show the splat, finite non-zero gradients.
/// - Zero splats: `render` returns `RenderError::NoSplats` (an error, never a panic), and the
///   shared device keeps working afterwards.
/// - An image too large for one device buffer: `RenderError::ImageTooLarge`, before any
///   allocation.
#[test]
fn empty_and_degenerate_scenes() {
    let (_lock, _ctx) = exclusive_gpu();
    let camera = Camera::look_at(
        [3.0, -2.0, 1.0].into(),
        [0.0; 3].into(),
        [0.0, 0.0, 1.0].into(),
        1.0,
        40,
        24,
    );
    let (eye, [fwd, right, down]) = camera_frame(&camera);
    let background = [0.25, 0.5, 0.75];
    let mut failures: Vec<String> = vec![];

    // --- Fully culled scenes. ---
    let mut rng = Lcg::new(99);
    let n = 64;
    let mut behind = random_scene(&mut rng, n, 3);
    let mut mixed = random_scene(&mut rng, n, 0);
    for i in 0..n {
        let p = comb(&[
            (1.0, eye),
            (-rng.range(0.1, 5.0), fwd),
            (rng.range(-3.0, 3.0), right),
            (rng.range(-3.0, 3.0), down),
        ]);
        behind.means[3 * i..3 * i + 3].copy_from_slice(&p);
        // A third each: behind the camera, past the far plane (20), 90° off to the side.
        let p = match i % 3 {
            0 => comb(&[
                (1.0, eye),
                (-rng.range(0.1, 5.0), fwd),
                (rng.range(-1.0, 1.0), right),
            ]),
            1 => comb(&[
                (1.0, eye),
                (rng.range(25.0, 40.0), fwd),
                (rng.range(-1.0, 1.0), down),
            ]),
            _ => comb(&[
                (1.0, eye),
                (rng.range(0.5, 3.0), fwd),
                (if i % 2 == 0 { 20.0 } else { -20.0 }, right),
            ]),
        };
        mixed.means[3 * i..3 * i + 3].copy_from_slice(&p);
    }
    let culled_cases = [
        (
            "all behind the camera, SH 3, classic",
            &behind,
            RasterizeMode::Classic,
        ),
        (
            "all behind the camera, SH 3, antialiased",
            &behind,
            RasterizeMode::Antialiased,
        ),
        (
            "behind / past far / off to the side, SH 0, classic",
            &mixed,
            RasterizeMode::Classic,
        ),
    ];
    for (name, scene, mode) in culled_cases {
        let opts = RenderOptions {
            background,
            mode,
            far: 20.0,
            means2d_grad: true,
            ..Default::default()
        };
        match render_and_backward(scene, &[camera], &opts, 5) {
            Err(e) => failures.push(format!("{name}: render failed: {e}")),
            Ok((rgb, alpha, depth, grads)) => {
                if let Some((i, v)) = rgb
                    .iter()
                    .enumerate()
                    .find(|(i, v)| **v != background[i % 3])
                {
                    failures.push(format!(
                        "{name}: rgb[{i}] = {v}, want the background {}",
                        background[i % 3]
                    ));
                }
                if let Some((i, v)) = alpha.iter().enumerate().find(|(_, v)| **v != 0.0) {
                    failures.push(format!("{name}: alpha[{i}] = {v}, want 0"));
                }
                if let Some((i, v)) = depth.iter().enumerate().find(|(_, v)| **v != 0.0) {
                    failures.push(format!("{name}: depth[{i}] = {v}, want 0"));
                }
                for (g, gname) in grads.iter().zip(GRAD_NAMES) {
                    if let Some((i, v)) = g.iter().enumerate().find(|(_, v)| **v != 0.0) {
                        failures.push(format!(
                            "{name}: grad.{gname}[{i}] = {v}, want 0 (culled splat)"
                        ));
                    }
                }
            }
        }
    }

    // --- One splat; a one-tile image seen by two cameras. ---
    let mut one = random_scene(&mut Lcg::new(5), 1, 3);
    one.means = vec![0.1, -0.1, 0.05];
    one.log_scales = vec![-1.5; 3];
    one.opacity_logits = vec![2.0];
    let small = Camera::look_at(
        [2.0, 1.0, 1.0].into(),
        [0.0; 3].into(),
        [0.0, 0.0, 1.0].into(),
        1.0,
        5,
        3,
    );
    let small2 = Camera::look_at(
        [-1.0, 2.0, -0.5].into(),
        [0.0; 3].into(),
        [0.0, 0.0, 1.0].into(),
        1.2,
        5,
        3,
    );
    let tiny_cases = [
        ("one splat, 40×24", &one, vec![camera]),
        ("one splat, 5×3 image, 2 cameras", &one, vec![small, small2]),
        (
            "64 splats, 5×3 image, 2 cameras",
            &random_scene(&mut Lcg::new(6), 64, 3),
            vec![small, small2],
        ),
    ];
    for (name, scene, cams) in tiny_cases {
        let opts = RenderOptions {
            background,
            means2d_grad: true,
            ..Default::default()
        };
        match render_and_backward(scene, &cams, &opts, 7) {
            Err(e) => failures.push(format!("{name}: render failed: {e}")),
            Ok((rgb, alpha, depth, grads)) => {
                for (v, vname) in [(&rgb, "rgb"), (&alpha, "alpha"), (&depth, "depth")]
                    .into_iter()
                    .chain(grads.iter().zip(GRAD_NAMES))
                {
                    if let Some((i, x)) = first_non_finite(v) {
                        failures.push(format!("{name}: {vname}[{i}] = {x}"));
                    }
                }
                let px = alpha.len() / cams.len();
                for c in 0..cams.len() {
                    let max = alpha[c * px..(c + 1) * px]
                        .iter()
                        .fold(0.0f32, |m, a| m.max(*a));
                    if !(max > 0.1 && max <= 1.0) {
                        failures.push(format!(
                            "{name}: camera {c}: max alpha {max}, the splat should be visible"
                        ));
                    }
                }
                if grads[0].iter().all(|g| *g == 0.0) {
                    failures.push(format!(
                        "{name}: grad.means is all zero for a visible splat"
                    ));
                }
            }
        }
    }

    // --- Zero splats. ---
    // `render` documents an empty scene as `RenderError::NoSplats` (checked before any GPU
    // work). It once went on to bind 4-byte buffers to kernels whose arrays need 16- or 40-byte
    // elements, and wgpu's validation error surfaced as a panic. Pinned on both devices.
    let empty = SplatData {
        sh_degree: 0,
        ..Default::default()
    };
    let opts = RenderOptions {
        background,
        means2d_grad: true,
        ..Default::default()
    };
    for (device, dname) in [
        (testkit::gpu().burn.clone(), "plain"),
        (testkit::gpu().burn.clone().autodiff(), "autodiff"),
    ] {
        let splats = upload(&empty, &device, dname == "autodiff");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            render(&splats, &[camera], &opts).map(|out| images(&out))
        }));
        match result {
            Err(e) => failures.push(format!("0 splats ({dname} device): render panicked: {}", panic_text(&*e))),
            Ok(Err(RenderError::NoSplats)) => {}
            Ok(Err(e)) => failures.push(format!("0 splats ({dname} device): render returned {e:?}, want RenderError::NoSplats")),
            Ok(Ok((rgb, alpha, _))) => failures.push(format!(
                "0 splats ({dname} device): render returned an image (rgb[..3] = {:?}, alpha[0] = {:?}), want RenderError::NoSplats",
                &rgb[..3.min(rgb.len())],
                alpha.first()
            )),
        }
    }
    // --- An image larger than one device buffer. ---
    // 16384² × 5 f32 channels is 5 GiB of output, above any device's storage-binding limit
    // (at most 4 GiB): `render` must refuse before allocating, naming the size.
    let mut huge = camera;
    (huge.width, huge.height) = (16_384, 16_384);
    let splats = upload(&one, &testkit::gpu().burn, false);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        render(&splats, &[huge], &opts).map(|_| ())
    })) {
        Ok(Err(RenderError::ImageTooLarge {
            width: 16_384,
            height: 16_384,
            bytes,
            ..
        })) if bytes == 16_384 * 16_384 * 20 => {}
        Ok(Err(e)) => failures.push(format!(
            "16384² image: {e:?}, want RenderError::ImageTooLarge"
        )),
        Ok(Ok(())) => {
            failures.push("16384² image: rendered, want RenderError::ImageTooLarge".into())
        }
        Err(e) => failures.push(format!(
            "16384² image: render panicked: {}",
            panic_text(&*e)
        )),
    }
    // Whatever happened above, the shared device must still work: the one-splat render again.
    let again = std::panic::catch_unwind(|| render_and_backward(&one, &[camera], &opts, 7));
    match again {
        Ok(Ok((_, alpha, _, _))) if alpha.iter().any(|a| *a > 0.1) => {}
        Ok(Ok(_)) => {
            failures.push("after the 0-splat render, a visible splat renders nothing".into())
        }
        Ok(Err(e)) => failures.push(format!("after the 0-splat render, rendering fails: {e}")),
        Err(e) => failures.push(format!(
            "after the 0-splat render, rendering panics: {}",
            panic_text(&*e)
        )),
    }

    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------------------------
// 5. Garbage fill
// ---------------------------------------------------------------------------------------------

/// The overflow path of the tile-intersection lists. The real limit (one storage binding,
/// 128 MiB–4 GiB) is out of reach of a test, so the same code path is driven through
/// `RenderOptions::max_intersections`: the forward builds at most that many intersections, the
/// emit kernel drops the rest, and `render` must report the overflow with the true count rather
/// than return the partial image. At exactly the count nothing is dropped.
#[test]
fn intersection_cap_reports_overflow() {
    const W: u32 = 64;
    const H: u32 = 48;
    let (_lock, ctx) = exclusive_gpu();
    let device = ctx.burn.clone();
    let mut rng = Lcg::new(4242);
    let scene = random_scene(&mut rng, 200, 0);
    let cameras: Vec<Camera> = (0..2).map(|_| random_camera(&mut rng, 3.5, W, H)).collect();
    let splats = upload(&scene, &device, false);
    let opts = RenderOptions {
        background: [0.1, 0.2, 0.3],
        ..Default::default()
    };
    let full = render(&splats, &cameras, &opts).expect("uncapped render");
    let needed = full.num_isects;
    assert!(
        needed > 100,
        "scene too small for the test: {needed} intersections"
    );
    let reference = images(&full);

    let capped = |cap: u64| {
        render(
            &splats,
            &cameras,
            &RenderOptions {
                max_intersections: Some(cap),
                ..opts.clone()
            },
        )
    };
    let exact = capped(needed).expect("a cap equal to the count must render");
    assert_eq!(exact.num_isects, needed);
    assert!(
        images(&exact) == reference,
        "a cap equal to the count changed the image"
    );
    for cap in [needed - 1, needed / 3, 1] {
        match capped(cap) {
            Err(RenderError::TooManyIntersections {
                needed: got,
                capacity,
            }) => {
                assert_eq!(got, needed, "cap {cap}: reported count");
                assert_eq!(capacity, cap, "cap {cap}: reported capacity");
            }
            Err(e) => panic!("cap {cap}: wrong error {e}"),
            Ok(out) => panic!(
                "cap {cap}: rendered a partial image ({} intersections) instead of failing",
                out.num_isects
            ),
        }
    }
    // The truncated calls left nothing behind: the next full render is unchanged.
    let again = render(&splats, &cameras, &opts).expect("render after the overflows");
    assert_eq!(again.num_isects, needed);
    assert!(
        images(&again) == reference,
        "an overflowed call changed the next render"
    );
}

/// The rasterizer's radix sort (`splat::sort::sort_pairs`, the code of the depth and tile
/// sorts) against the standard library's stable sort: keys drawn from a narrow range (many
/// ties, so stability shows in the values, which are the input positions), lengths on both
/// sides of every block size the sort could use, key widths from one digit to 32 bits.
#[test]
fn radix_sort_is_stable() {
    let (_lock, ctx) = exclusive_gpu();
    let mut rng = Lcg::new(9);
    let mut failures = vec![];
    for &bits in &[4u32, 10, 13, 32] {
        for &n in &[1usize, 2, 255, 256, 257, 4095, 4096, 4097, 8193, 70_001] {
            // A few hundred distinct keys spread over the whole width: ties in every pass.
            let distinct: Vec<u32> = (0..300)
                .map(|_| {
                    let k = rng.next_u32() ^ (rng.next_u32() << 1);
                    if bits == 32 { k } else { k & ((1 << bits) - 1) }
                })
                .collect();
            let keys: Vec<u32> = (0..n)
                .map(|_| distinct[rng.below(distinct.len())])
                .collect();
            let values: Vec<u32> = (0..n as u32).collect();
            let run = splat::sort::sort_pairs(&ctx.burn, &keys, &values, bits, true)
                .unwrap_or_else(|e| panic!("sort of {n} pairs on {bits} bits: {e}"));
            let mut want: Vec<(u32, u32)> = keys.iter().copied().zip(values).collect();
            want.sort_by_key(|&(k, _)| k);
            let got: Vec<(u32, u32)> = run.keys.into_iter().zip(run.values).collect();
            if got != want {
                let first = got
                    .iter()
                    .zip(&want)
                    .position(|(g, w)| g != w)
                    .unwrap_or(got.len().min(want.len()));
                failures.push(format!(
                    "n = {n}, bits = {bits}: {} of {} pairs back; first difference at {first}: got {:?}, want {:?}",
                    got.len(),
                    want.len(),
                    got.get(first),
                    want.get(first)
                ));
            }
        }
    }
    assert_no_failures(&failures);
}

/// The invariants above are only meaningful if fresh kernel buffers hold garbage (NaN, huge
/// values) rather than zeros: a kernel that forgets to write an output or clear an accumulator
/// then shows up as NaN in the images or gradients instead of passing by luck.
#[test]
fn garbage_fill_is_on() {
    let (_lock, _ctx) = exclusive_gpu();
    assert!(
        gpu::alloc::garbage_fill(),
        "testkit::gpu() must turn on gpu::alloc garbage filling"
    );
}
