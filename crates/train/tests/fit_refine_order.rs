//! Where `fit` evaluates against where it densifies (issue 26, "fit's last steps"): an
//! evaluation due on a refinement step measures the model before that step's clones and
//! splits, and the run's last step does not densify, so the outputs are the model evaluated.
//! On Spot the cow an evaluation right after a refinement read 4–5 dB below its neighbours
//! (docs/quality.md, session 28); this pins the order, not the PSNR.

mod common;

use optim::densify::{DefaultStrategy, Strategy};
use train::fit::fit;

#[test]
fn evaluations_see_the_model_before_the_refinement_of_their_step() {
    let ctx = testkit::gpu();
    let (mut cfg, dataset, out) = common::spot_cow_fit("refine-order");
    cfg.init.random_points = 2_000;
    cfg.train.steps = 40;
    cfg.train.log_every = 1;
    cfg.eval.every = 10;
    cfg.eval.max_views = 1;
    // Refine every 10 steps from step 10 on, past the run's end (as fit.toml's stop = 15,000
    // does in a short run), every splat above the threshold.
    cfg.densify = Strategy::Default(DefaultStrategy {
        start: 5,
        stop: 1_000,
        every: 10,
        reset_every: 0,
        grow_grad2d: 0.0,
        ..Default::default()
    });
    let control = live::control::Control::new();
    let report = fit(&dataset, &cfg, &ctx.burn, None, &control, &mut |_| {}).expect("fit");
    let _ = std::fs::remove_dir_all(&out);
    let splats_at = |step: u64| {
        report
            .steps
            .iter()
            .find(|s| s.step == step)
            .map(|s| s.splats)
            .unwrap_or_else(|| panic!("step {step} not logged"))
    };
    let refined: Vec<u64> = report.densify.iter().map(|d| d.step).collect();
    println!("refinements at {refined:?}");
    // Steps 10, 20, 30 refine; 40 (the last) does not: a stop past the end leaves one interval.
    assert_eq!(refined, vec![10, 20, 30]);
    for d in &report.densify {
        let before = splats_at(d.step - 1);
        assert!(
            d.splats > before,
            "step {}: the refinement added nothing",
            d.step
        );
        assert_eq!(splats_at(d.step + 1), d.splats);
    }
    let evals: Vec<(u64, usize)> = report.evals.iter().map(|e| (e.step, e.splats)).collect();
    println!("evaluations (step, splats): {evals:?}");
    assert_eq!(
        evals.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![0, 10, 20, 30, 40]
    );
    // No refinement between step k − 1 and the evaluation at k: it saw step k − 1's count,
    // not the refined one (which steps 11, 21, 31 have).
    for &(step, splats) in &evals[1..] {
        assert_eq!(
            splats,
            splats_at(step - 1),
            "the evaluation at step {step} saw the refined splats"
        );
    }
}
