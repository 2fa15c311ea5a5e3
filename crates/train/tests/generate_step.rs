//! One `generate` step on the tiny random-weight SD 2.1 model (tests/cases/sd/tiny-eps, 64²),
//! through [`GenerateTrainer::step`], the loop's body (issue 27, item 1):
//!
//! - the step moves the latents against the guidance gradient: with `g` injected as ∂L/∂z, one
//!   small optimiser step changes the splats by Δθ ≈ −η·f(Jᵀg) (Adam's first step: η·sign), so
//!   z(θ₁) − z(θ₀) ≈ JΔθ and ⟨g, z(θ₁) − z(θ₀)⟩ = −η·Σ|Jᵀg| < 0 to first order. A sign flipped in
//!   `distill::inject`, in the backward or in Adam makes it positive;
//! - the prompt reaches the gradient: a different prompt gives a different `g` from the same
//!   seeds, while the same prompt gives the same `g` (so the difference is the prompt's).
//!
//! No trained prior is needed: the identity holds for any `g`. (Whether the gradient points to
//! the *right* object is the toy-world prior's test.)

use burn::tensor::{Tensor, TensorData};
use rand::{SeedableRng, rngs::StdRng};
use splat::{Camera, RenderOptions, render};
use train::generate::{GenerateConfig, load_model, lucid_disparity};
use train::generate::{GenerateTrainer, over_backgrounds};

fn config(prompt: &str) -> GenerateConfig {
    let mut cfg = GenerateConfig {
        model: testkit::root()
            .join("tests/cases/sd/tiny-eps")
            .display()
            .to_string(),
        prompt: prompt.into(),
        seed: 3,
        steps: 100,
        batch: 2,
        resolution: 64,
        ..Default::default()
    };
    cfg.init.count = 2000;
    cfg
}

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

#[test]
fn one_step_moves_the_latents_against_the_guidance_gradient() {
    let device = &testkit::gpu().burn;
    let cfg = config("a corgi");
    let model = load_model(&cfg.model, "f32", cfg.tokenizer, device).unwrap();
    let mut trainer =
        GenerateTrainer::new(&cfg, &model, device, None, "test", &mut |_| {}).unwrap();
    let mut checked = 0;
    for step in 0..2 {
        let o = trainer.step(step).unwrap();
        let cams: Vec<Camera> = o.sampled.iter().map(|s| s.camera).collect();
        let z1 = trainer.latents(&cams, &o.backgrounds).unwrap();
        let g = host(o.guidance.grad.clone());
        let dz = host(z1 - o.latents.clone());
        let (gdz, gg, dd) = (dot(&g, &dz), dot(&g, &g), dot(&dz, &dz));
        let cos = gdz / (gg.sqrt() * dd.sqrt()).max(1e-30);
        println!(
            "step {step}: ⟨g, Δz⟩ = {gdz:.4e}, ‖g‖ = {:.3e}, ‖Δz‖ = {:.3e}, cos = {cos:.4}",
            gg.sqrt(),
            dd.sqrt()
        );
        assert!(
            gg > 0.0 && dd > 0.0,
            "step {step}: no gradient or no change"
        );
        assert!(
            cos < -0.05,
            "step {step}: the latents moved along the guidance gradient, not against it (cos {cos:.4})"
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn the_prompt_reaches_the_guidance_gradient() {
    let device = &testkit::gpu().burn;
    let grad = |prompt: &str| {
        let cfg = config(prompt);
        let model = load_model(&cfg.model, "f32", cfg.tokenizer, device).unwrap();
        let mut trainer =
            GenerateTrainer::new(&cfg, &model, device, None, "test", &mut |_| {}).unwrap();
        host(trainer.step(0).unwrap().guidance.grad)
    };
    let a = grad("a corgi");
    let again = grad("a corgi");
    let b = grad("a red bicycle on a beach");
    let norm = dot(&a, &a).sqrt();
    let diff = |x: &[f32], y: &[f32]| -> f64 {
        x.iter()
            .zip(y)
            .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    println!(
        "‖g‖ = {norm:.4e}, same prompt Δ = {:.3e}, other prompt Δ = {:.3e}",
        diff(&a, &again),
        diff(&a, &b)
    );
    assert!(norm > 0.0);
    assert!(
        diff(&a, &again) <= 1e-4 * norm,
        "the same prompt and seeds gave a different g"
    );
    assert!(
        diff(&a, &b) >= 1e-2 * norm,
        "another prompt left g unchanged: the prompt does not reach the guidance"
    );
}

/// Per-view backgrounds (`background.per_view`, LucidDreamer's per-render draw) are composited
/// after a render over black; that must give the rasterizer's own in-kernel compositing, in
/// value and in the gradient of every splat parameter (the opacities' through `alpha`).
#[test]
fn per_view_backgrounds_composite_as_the_rasterizer_does() {
    let device = &testkit::gpu().burn;
    let cfg = config("a corgi");
    let model = load_model(&cfg.model, "f32", cfg.tokenizer, device).unwrap();
    let trainer = GenerateTrainer::new(&cfg, &model, device, None, "test", &mut |_| {}).unwrap();
    let sampled = cfg.cameras.sample(2, 64, &mut StdRng::seed_from_u64(1));
    let cams: Vec<Camera> = sampled.iter().map(|s| s.camera).collect();
    let bgs = [[0.2f32, 0.5, 0.9], [1.0, 0.0, 0.3]];
    let weights = Tensor::<4>::from_data(
        TensorData::new(
            (0..2 * 64 * 64 * 3)
                .map(|i| ((i * 37 % 101) as f32) / 101.0 - 0.4)
                .collect::<Vec<f32>>(),
            [2, 64, 64, 3],
        ),
        device,
    );
    let run = |composite: bool| {
        let leaves = trainer.gaussians.leaves();
        let mut rgbs = vec![];
        for (i, bg) in bgs.iter().enumerate() {
            let opts = RenderOptions {
                background: if composite { [0.0; 3] } else { *bg },
                sh_degree: Some(0),
                ..Default::default()
            };
            let out = render(&leaves.splats, &cams[i..i + 1], &opts).unwrap();
            rgbs.push(if composite {
                over_backgrounds(out.rgb, out.alpha, &[*bg], device)
            } else {
                out.rgb
            });
        }
        let rgb = Tensor::cat(rgbs, 0);
        let grads = (rgb.clone() * weights.clone()).sum().backward();
        let g: Vec<Vec<f32>> = leaves
            .leaves
            .iter()
            .map(|l| {
                // The SH-rest leaf of a degree-0 scene takes no part (no gradient).
                l.grad(&grads)
                    .map(|g| g.into_data().try_to_vec::<f32>().unwrap())
                    .unwrap_or_default()
            })
            .collect();
        (host(rgb.inner()), g)
    };
    let (rgb_kernel, g_kernel) = run(false);
    let (rgb_comp, g_comp) = run(true);
    let worst = rgb_kernel
        .iter()
        .zip(&rgb_comp)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "composited colours differ by {worst}");
    for (k, (a, b)) in g_kernel.iter().zip(&g_comp).enumerate() {
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        println!("group {k}: ‖g‖ = {norm:.3e}, ‖Δg‖ = {diff:.3e}");
        assert!(norm > 0.0 || k == 5, "group {k}: no gradient");
        // The sphere's splats are isotropic, so the quats' true gradient is 0 and what is
        // there (‖g‖ ≈ 2e-7) is rounding: an absolute floor of 1e-6 for it.
        assert!(
            diff <= 1e-4 * norm + 1e-6,
            "group {k}: gradients differ ({diff:.3e} of {norm:.3e})"
        );
    }
}

/// LucidDreamer's `as_latent` steps (`latents.depth_ratio`, `train.py`'s `as_latent_ratio`):
/// at ratio 1 the step's latents are the VAE encoding of the render's normalised disparity in
/// grey (`encode_imgs(pred_depth.repeat(1, 3, 1, 1))`), not of its colour.
#[test]
fn depth_steps_encode_the_normalised_disparity() {
    let device = &testkit::gpu().burn;
    let mut cfg = config("a corgi");
    cfg.latents.depth_ratio = 1.0;
    let model = load_model(&cfg.model, "f32", cfg.tokenizer, device).unwrap();
    let mut trainer =
        GenerateTrainer::new(&cfg, &model, device, None, "test", &mut |_| {}).unwrap();
    // The same initial splats, not stepped: what the step encoded.
    let fresh = GenerateTrainer::new(&cfg, &model, device, None, "test", &mut |_| {}).unwrap();
    let o = trainer.step(0).unwrap();
    let cams: Vec<Camera> = o.sampled.iter().map(|s| s.camera).collect();
    let out = render(
        &fresh.gaussians.splats(),
        &cams,
        &RenderOptions {
            sh_degree: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    let disparity = lucid_disparity(out.depth.inner(), out.alpha.inner(), &cams, device);
    let image = disparity.repeat_dim(3, 3).permute([0, 3, 1, 2]) * 2.0 - 1.0;
    let expected = host(model.vae.encode(image).mean * model.vae.scaling_factor());
    let colour = host(fresh.latents(&cams, &o.backgrounds).unwrap());
    let got = host(o.latents.clone());
    let dist = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let norm = dot(&expected, &expected).sqrt();
    let (to_depth, to_colour) = (dist(&got, &expected), dist(&got, &colour));
    println!(
        "‖z‖ = {norm:.3e}, ‖z − z(disparity)‖ = {to_depth:.3e}, ‖z − z(colour)‖ = {to_colour:.3e}"
    );
    assert!(norm > 0.0);
    assert!(
        to_depth <= 1e-4 * norm,
        "the depth step did not encode the normalised disparity"
    );
    assert!(
        to_colour >= 1e-2 * norm,
        "the depth step's latents are the colour's"
    );
}

/// The config's `tokenizer` reaches the loaded model: open_clip's pipeline (the default) keeps
/// a CJK run as one word, transformers 4's slow one splits it per character (issue 26), so
/// the ids of the same prompt differ.
#[test]
fn the_tokenizer_setting_reaches_the_model() {
    use sd::tokenizer::TextPipeline;
    let device = &testkit::gpu().burn;
    let ids = |pipeline: TextPipeline| {
        let mut cfg = config("東京の夜景");
        cfg.tokenizer = pipeline;
        let model = load_model(&cfg.model, "f32", cfg.tokenizer, device).unwrap();
        assert_eq!(model.tokenizer.text_pipeline(), pipeline);
        model.tokenizer.encode(&cfg.prompt).unwrap()
    };
    assert_eq!(GenerateConfig::default().tokenizer, TextPipeline::OpenClip);
    assert_ne!(
        ids(TextPipeline::OpenClip),
        ids(TextPipeline::TransformersSlow)
    );
    let toml = "tokenizer = \"transformers-slow\"\n";
    let cfg: GenerateConfig = toml::from_str(toml).unwrap();
    assert_eq!(cfg.tokenizer, TextPipeline::TransformersSlow);
}
