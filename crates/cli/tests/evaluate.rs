//! `splatdream evaluate` proves its metrics on ground truth: splats `fit` to the red chair's own
//! ground-truth renders (`assets/toyworld/gt/red-chair`, 32 training views) must score
//! IoU ≥ 0.9 and judge R-precision 1.0 against "a red chair", while the same splats scored as
//! another object ("a blue car") or in another colour ("a blue chair") must score low on what
//! differs. Bad input: a prompt outside the toy world and an unknown built-in model fail naming
//! them. End to end: `generate --model toyworld` must move the splats towards the prompt.

mod common;

use common::{bin, run, text, tmp};
use serde_json::Value;

fn evaluate(run_dir: &std::path::Path, prompt: &str) -> Value {
    let out = run(bin()
        .arg("evaluate")
        .arg(run_dir)
        .args(["--prompt", prompt, "--json", "--out"])
        .arg(run_dir.join(format!("{}.json", prompt.replace(' ', "-")))));
    let json = &out[out.find('{').expect("a JSON report")..];
    let end = json.rfind('}').unwrap();
    serde_json::from_str(&json[..=end]).unwrap_or_else(|e| panic!("{e}:\n{out}"))
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

#[test]
fn a_fit_of_the_ground_truth_scores_high_and_other_objects_low() {
    let dir = tmp("evaluate", "chair");
    let fit = dir.join("fit");
    run(bin()
        .args([
            "fit",
            "assets/toyworld/gt/red-chair",
            "--steps",
            "700",
            "--out",
        ])
        .arg(&fit)
        .args(["--set", "data.background=\"white\""])
        .args([
            "--set",
            "init.kind=\"random\"",
            "--set",
            "init.random_points=4000",
        ])
        .args([
            "--set",
            "init.random_extent=0.15",
            "--set",
            "train.sh_degree=0",
        ])
        .args([
            "--set",
            "eval.every=700",
            "--set",
            "output.turntable_frames=4",
        ])
        .args(["--set", "densify.start=100", "--set", "densify.stop=500"])
        .args([
            "--set",
            "densify.every=100",
            "--set",
            "densify.reset_every=0",
        ]));

    let own = evaluate(&fit, "a red chair");
    eprintln!("own: {own}");
    assert!(f(&own, "iou") >= 0.9, "own IoU too low: {own}");
    assert_eq!(f(&own, "r_precision"), 1.0, "{own}");
    assert!(f(&own, "colour_error") < 0.15, "{own}");
    assert!(f(&own, "masked_psnr_db") > 20.0, "{own}");

    let car = evaluate(&fit, "a blue car");
    // Silhouettes of different objects overlap after the alignment search (a chair as a car:
    // IoU ≈ 0.51), so IoU separates by a margin and the judge names the difference.
    assert!(f(&car, "iou") < 0.7, "a chair scored as a car: {car}");
    assert!(f(&own, "iou") - f(&car, "iou") > 0.25, "{own} vs {car}");
    assert_eq!(f(&car, "r_precision_category"), 0.0, "{car}");
    assert_eq!(f(&car, "r_precision"), 0.0, "{car}");

    let blue = evaluate(&fit, "a blue chair");
    // the blue chair's instance 0 has its own proportions: a similar, not the same, shape
    assert!(f(&blue, "iou") >= 0.6, "same category: {blue}");
    assert_eq!(f(&blue, "r_precision_colour"), 0.0, "{blue}");
    assert!(f(&blue, "colour_error") > 0.3, "{blue}");
    assert!(
        f(&blue, "masked_psnr_db") < f(&own, "masked_psnr_db") - 6.0,
        "{blue} vs {own}"
    );
}

#[test]
fn prompts_outside_the_toy_world_and_unknown_models_are_named() {
    let out = bin()
        .args([
            "evaluate",
            "assets/donut.ply",
            "--prompt",
            "a photo of a corgi",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("a photo of a corgi") && t.contains("names no toy-world object"),
        "{t}"
    );
    assert!(!t.contains("panicked"), "{t}");

    let out = bin()
        .args([
            "evaluate",
            "assets/donut.ply",
            "--prompt",
            "a red chair",
            "--model",
            "toyword",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("toyword") && t.contains("unknown built-in model"),
        "{t}"
    );
    assert!(!t.contains("panicked"), "{t}");
}

/// `--model toyworld` without `--config` starts from configs/toyworld.toml (the prior's
/// resolution, white background, empty negative prompt).
#[test]
fn model_toyworld_starts_from_its_config() {
    let t = run(bin().args([
        "generate",
        "--model",
        "toyworld",
        "--prompt",
        "a red chair",
        "--print-config",
    ]));
    for want in [
        "model = \"toyworld\"",
        "resolution = 64",
        "negative_prompt = \"\"",
        "random_ratio = 0.0",
    ] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
    // an explicit --config still wins
    let t = run(bin()
        .args([
            "generate",
            "--model",
            "toyworld",
            "--config",
            "configs/sdi.toml",
        ])
        .args(["--prompt", "a red chair", "--print-config"]));
    assert!(
        t.contains("model = \"toyworld\"") && t.contains("method = \"sdi\""),
        "{t}"
    );
}

/// Steps of the end-to-end generation test (batch 1; everything else from
/// configs/toyworld.toml, whose schedule is laid out for 200 steps).
const E2E_STEPS: u64 = 100;
/// Thresholds of the end-to-end generation test, set from the 100-step runs of session 18
/// (docs/quality.md): "a red chair" reaches colour R-precision 1.0, colour error 0.40 and IoU
/// 0.54; with the guidance's sign flipped (`--set guidance.sds.scale=-1`) colour R-precision
/// 0, colour error 0.91; with zero guidance 0 and 0.62; "a blue car" scored as "a red chair"
/// 0 and 0.65. The shape is not recovered yet (a red blob; IoU 0.51–0.54 in all four), so
/// IoU separates nothing and its bound only catches an empty or exploded scene; the colour
/// terms carry the test.
const E2E_MIN_IOU: f64 = 0.45;
const E2E_MIN_R_COLOUR: f64 = 0.75;
const E2E_MAX_COLOUR_ERROR: f64 = 0.5;

/// Text-to-3D on the shipped toy-world prior moves the splats towards what the prompt names: a
/// short `generate --model toyworld` run scored by its own end-of-run evaluation must reach the
/// thresholds above. Measured by hand (docs/quality.md, session 18): the same run with the
/// guidance's sign flipped, with zero guidance or from another prompt ("a blue car", scored as
/// "a red chair") does not.
#[test]
fn generate_on_the_toy_prior_moves_towards_the_prompt() {
    let dir = tmp("evaluate", "generate");
    let out = dir.join("run");
    let log = run(bin()
        .args(["generate", "--model", "toyworld", "--prompt", "a red chair"])
        .args(["--steps", &E2E_STEPS.to_string(), "--batch", "1", "--out"])
        .arg(&out)
        .args(["--set", "output.turntable_frames=0"]));
    let text = std::fs::read_to_string(out.join("evaluation.json"))
        .unwrap_or_else(|e| panic!("no evaluation.json ({e}):\n{log}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    eprintln!("generated: {v}");
    assert!(f(&v, "iou") >= E2E_MIN_IOU, "IoU below {E2E_MIN_IOU}: {v}");
    assert!(
        f(&v, "r_precision_colour") >= E2E_MIN_R_COLOUR,
        "the judge sees no red: {v}"
    );
    assert!(
        f(&v, "colour_error") <= E2E_MAX_COLOUR_ERROR,
        "the colour is off: {v}"
    );
}
