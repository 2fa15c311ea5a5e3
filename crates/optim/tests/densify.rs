//! Densification keeps parameters and Adam moments consistent through every row operation
//! (clone, split, prune, relocation, growth), on the device.

use burn::tensor::{Tensor, TensorData};
use optim::densify::{DefaultStrategy, Densifier, McmcStrategy, Reduction, Strategy};
use optim::params::{Gaussians, LOG_SCALES, MEANS, OPACITY, host};
use splat::SplatData;

fn scene(n: usize, opacity: impl Fn(usize) -> f32, log_scale: impl Fn(usize) -> f32) -> SplatData {
    let mut d = SplatData {
        sh_degree: 1,
        ..Default::default()
    };
    for i in 0..n {
        d.means.extend_from_slice(&[i as f32, 0.0, 0.0]);
        d.quats.extend_from_slice(&[1.0, 0.0, 0.0, 0.0]);
        let s = log_scale(i);
        d.log_scales.extend_from_slice(&[s, s, s]);
        let o = opacity(i);
        d.opacity_logits.push((o / (1.0 - o)).ln());
        d.sh.extend((0..12).map(|k| (i * 12 + k) as f32 * 0.01));
    }
    d
}

/// Give every group's moments a recognisable per-row value (row index + 1) so we can tell which
/// rows they followed.
fn tag_moments(g: &mut Gaussians) {
    let n = g.len();
    for p in &mut g.groups {
        let c = p.value.dims()[1];
        let v: Vec<f32> = (0..n)
            .flat_map(|i| std::iter::repeat_n(i as f32 + 1.0, c))
            .collect();
        let t = Tensor::<2>::from_data(TensorData::new(v, [n, c]), &p.value.device());
        p.moments.m = t.clone();
        p.moments.v = t;
    }
}

fn rows_of(t: &Tensor<2>) -> Vec<f32> {
    let c = t.dims()[1];
    host(t).unwrap().chunks(c).map(|r| r[0]).collect()
}

#[test]
fn default_strategy_clones_splits_prunes_with_consistent_moments() {
    let device = testkit::gpu().burn.clone();
    // 6 splats: 0–1 small with high gradient (clone), 2–3 large with high gradient (split),
    // 4 transparent (prune), 5 untouched.
    let data = scene(
        6,
        |i| if i == 4 { 0.001 } else { 0.5 },
        |i| if (2..4).contains(&i) { 0.0 } else { -5.0 },
    );
    let mut g = Gaussians::from_data(&data, 1, &device);
    tag_moments(&mut g);
    let mut d = Densifier::new(
        Strategy::Default(DefaultStrategy {
            start: 0,
            every: 1,
            reset_every: 0,
            ..Default::default()
        }),
        10.0, // scene scale: grow_scale3d·10 = 0.1 separates e⁻⁵ from e⁰
        0,
        1000,
    );
    // Screen gradient: large for splats 0–3, tiny for 4–5 (1 camera, 100×100 image).
    let grad: Vec<f32> = (0..6)
        .flat_map(|i| if i < 4 { [0.01f32, 0.0] } else { [1e-9, 0.0] })
        .collect();
    d.observe(
        Tensor::<3>::from_data(TensorData::new(grad, [1, 6, 2]), &device),
        100,
        100,
        Reduction::Mean,
    );
    let r = d.after_step(1, &mut g, 1e-3).unwrap().expect("refined");
    assert_eq!((r.cloned, r.split, r.pruned), (2, 2, 1), "{r:?}");
    // Kept: 0, 1, 5 (originals); new: clones of 0, 1; two samples each of 2, 3.
    assert_eq!(g.len(), 3 + 2 + 4);
    for p in &g.groups {
        assert_eq!(p.moments.m.dims(), p.value.dims());
        assert_eq!(
            rows_of(&p.moments.m),
            vec![1.0, 2.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            rows_of(&p.moments.v),
            vec![1.0, 2.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }
    let means = rows_of(&g.groups[MEANS].value);
    assert_eq!(&means[..5], &[0.0, 1.0, 5.0, 0.0, 1.0]);
    // Split samples lie near their parents (σ = 1) and are 1.6× smaller.
    let ls = rows_of(&g.groups[LOG_SCALES].value);
    for k in 5..9 {
        assert!((ls[k] + 1.6f32.ln()).abs() < 1e-5, "{ls:?}");
    }
    assert!((means[5] - 2.0).abs() < 6.0 && (means[6] - 3.0).abs() < 6.0);
}

/// Big splats (max scale > `prune_scale3d`·scene scale) are pruned from
/// `prune_scale3d_after` on even without opacity resets (LODS's `densify_and_prune` after step
/// 300); with the default 0 they wait for the first reset, so a run without resets keeps them.
#[test]
fn big_splats_are_pruned_after_their_start() {
    let device = testkit::gpu().burn.clone();
    // Splat 0 small (e⁻⁵), splat 1 big (e⁰ = 1 > 0.1 × scene scale 1), both opaque, no gradient.
    let data = scene(2, |_| 0.5, |i| if i == 1 { 0.0 } else { -5.0 });
    let pruned = |after: u64, step: u64| {
        let mut g = Gaussians::from_data(&data, 1, &device);
        let mut d = Densifier::new(
            Strategy::Default(DefaultStrategy {
                start: 0,
                every: 1,
                reset_every: 0,
                prune_scale3d_after: after,
                ..Default::default()
            }),
            1.0,
            0,
            2000, // refinement stops at half the run: 1,000
        );
        let r = d.after_step(step, &mut g, 1e-3).unwrap().expect("refined");
        assert_eq!(g.len(), 2 - r.pruned);
        r.pruned
    };
    assert_eq!(pruned(300, 300), 0, "pruned at the start step itself");
    assert_eq!(
        pruned(300, 301),
        1,
        "the big splat survived after the start"
    );
    assert_eq!(pruned(0, 900), 0, "pruned without any opacity reset");
}

#[test]
fn opacity_reset_clamps_and_forgets_moments() {
    let device = testkit::gpu().burn.clone();
    let data = scene(3, |i| [0.9, 0.005, 0.5][i], |_| -3.0);
    let mut g = Gaussians::from_data(&data, 1, &device);
    tag_moments(&mut g);
    let mut d = Densifier::new(
        Strategy::Default(DefaultStrategy {
            start: 1000,
            reset_every: 10,
            ..Default::default()
        }),
        1.0,
        0,
        1000,
    );
    let r = d.after_step(10, &mut g, 1e-3).unwrap().unwrap();
    assert!(r.opacity_reset);
    let o: Vec<f32> = host(&g.groups[OPACITY].value)
        .unwrap()
        .iter()
        .map(|x| 1.0 / (1.0 + (-x).exp()))
        .collect();
    assert!(
        (o[0] - 0.01).abs() < 1e-5 && (o[1] - 0.005).abs() < 1e-5 && (o[2] - 0.01).abs() < 1e-5,
        "{o:?}"
    );
    assert!(
        host(&g.groups[OPACITY].moments.m)
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
    assert_eq!(
        rows_of(&g.groups[MEANS].moments.m),
        vec![1.0, 2.0, 3.0],
        "other groups keep theirs"
    );
}

#[test]
fn mcmc_relocates_dead_grows_five_percent_and_respects_the_cap() {
    let device = testkit::gpu().burn.clone();
    // 40 splats, every 4th dead.
    let data = scene(40, |i| if i % 4 == 0 { 0.001 } else { 0.6 }, |_| -3.0);
    let mut g = Gaussians::from_data(&data, 1, &device);
    tag_moments(&mut g);
    let s = McmcStrategy {
        start: 0,
        every: 1,
        cap_max: 41,
        noise_lr: 0.0,
        ..Default::default()
    };
    let mut d = Densifier::new(Strategy::Mcmc(s), 1.0, 3, 1000);
    let r = d.after_step(1, &mut g, 1e-3).unwrap().unwrap();
    assert_eq!(r.relocated, 10);
    assert_eq!(r.added, 1, "5 % of 40 is 2, capped at 41");
    assert_eq!(g.len(), 41);
    let o: Vec<f32> = host(&g.groups[OPACITY].value)
        .unwrap()
        .iter()
        .map(|x| 1.0 / (1.0 + (-x).exp()))
        .collect();
    assert!(o.iter().all(|&v| v > 0.005), "no dead splat left: {o:?}");
    // Relocated rows sit on live splats' positions (x = a live index, not a multiple of 4).
    let means = rows_of(&g.groups[MEANS].value);
    for i in (0..40).step_by(4) {
        assert!(
            !(means[i] as usize).is_multiple_of(4),
            "row {i} still at {}",
            means[i]
        );
    }
    // Moments of relocated rows and of the new row are zero; untouched live rows keep theirs.
    let m = rows_of(&g.groups[MEANS].moments.m);
    for i in (0..40).step_by(4) {
        assert_eq!(m[i], 0.0);
    }
    assert_eq!(m[40], 0.0);
    let untouched = (0..40).filter(|&i| i % 4 != 0 && m[i] != 0.0).count();
    assert!(
        untouched >= 20,
        "most live rows keep their moments ({untouched})"
    );
    for p in &g.groups {
        assert_eq!(p.moments.m.dims(), p.value.dims());
    }
}

/// The screen-space statistic per camera is the gradient of that camera's own image loss in NDC
/// units: a batch-mean loss's gradient is scaled by the camera count C (gsplat), a loss summed
/// over cameras (generate's `inject`) is not (issue 26).
#[test]
fn screen_gradient_statistic_follows_the_loss_reduction() {
    let device = testkit::gpu().burn.clone();
    // 2 cameras, 3 splats; splat 2 invisible in camera 1 (zero gradient). 100×50 images.
    let grad = vec![
        0.01f32, 0.0, 0.0, 0.02, 0.003, 0.004, // camera 0
        0.02, 0.0, 0.0, 0.0, 0.0, 0.0, // camera 1
    ];
    let stats = |reduction| {
        let mut d = Densifier::new(Strategy::default(), 1.0, 0, 1000);
        let g = Tensor::<3>::from_data(TensorData::new(grad.clone(), [2, 3, 2]), &device);
        d.observe(g, 100, 50, reduction);
        let (sum, count) = d.accumulators().expect("accumulated");
        (
            host(&sum.reshape([3, 1])).unwrap(),
            host(&count.reshape([3, 1])).unwrap(),
        )
    };
    // NDC scale: x × 50, y × 25.
    let want_sum = [
        0.01 * 50.0 + 0.02 * 50.0,
        0.02 * 25.0,
        ((0.003f64 * 50.0).powi(2) + (0.004f64 * 25.0).powi(2)).sqrt(),
    ];
    let (sum, count) = stats(Reduction::Sum);
    let (mean_sum, mean_count) = stats(Reduction::Mean);
    assert_eq!(count, vec![2.0, 1.0, 1.0]);
    assert_eq!(mean_count, count);
    for i in 0..3 {
        assert!(
            (sum[i] as f64 - want_sum[i]).abs() < 1e-5,
            "sum reduction, splat {i}: {} vs {}",
            sum[i],
            want_sum[i]
        );
        assert!(
            (mean_sum[i] as f64 - 2.0 * want_sum[i]).abs() < 1e-5,
            "mean reduction, splat {i}: {} vs {}",
            mean_sum[i],
            2.0 * want_sum[i]
        );
    }
}
