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

use burn::tensor::Tensor;
use splat::Camera;
use train::generate::GenerateTrainer;
use train::generate::{GenerateConfig, load_model};

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
    let model = load_model(&cfg.model, "f32", device).unwrap();
    let mut trainer =
        GenerateTrainer::new(&cfg, &model, device, None, "test", &mut |_| {}).unwrap();
    let mut checked = 0;
    for step in 0..2 {
        let o = trainer.step(step).unwrap();
        let cams: Vec<Camera> = o.sampled.iter().map(|s| s.camera).collect();
        let z1 = trainer.latents(&cams, o.background).unwrap();
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
        let model = load_model(&cfg.model, "f32", device).unwrap();
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
