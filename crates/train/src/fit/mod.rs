//! `fit`: optimise Gaussian splats to posed photographs (3DGS, Kerbl et al. 2023), on the
//! device: render a batch of training views, L = (1−λ)·L1 + λ·(1 − SSIM) against the photos,
//! backpropagate through the rasterizer, Adam with per-group learning rates, densify, and
//! evaluate PSNR/SSIM on held-out views. Defaults follow gsplat's `simple_trainer.py`.
//!
//! Settings and errors are in `config.rs`, what a run reports in `record.rs`, one step in
//! `trainer.rs` ([`FitTrainer`]); the driver around it (resume, evaluation, logging,
//! checkpoints, outputs) is here. The turntable's framing is `splat::framing`.

mod config;
mod record;
mod trainer;

pub use config::*;
pub use record::*;
pub use splat::framing::{Framing, TurntablePath, covered_arc, turntable_cameras};
pub use trainer::{FitStep, FitTrainer, initial_splats};

pub use crate::background::{Background, NamedBackground};

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use splat::{Camera, RasterizeMode, RenderOptions, render};

use crate::checkpoint::{Checkpoint, CheckpointError, Meta};
use crate::output::{OutputError, to_rgb8, write_png, write_scene_outputs, write_text};
use crate::video::write_turntable;
use datasets::Dataset;
use live::control::Control;
use live::stop::Interrupted;
use optim::densify::Densifier;
use optim::guard::StepGuard;
use optim::loss::{psnr, ssim};
use optim::params::{Gaussians, host};
use optim::rng::step_seed;
use trainer::{Photo, ViewOrder, raster_mode, upload};

/// The state a fit checkpoint holds besides the splats: where the loop is.
struct LoopState<'a> {
    step: u64,
    order: &'a ViewOrder,
    train_seconds: f64,
    skipped: u64,
}

impl<'a> LoopState<'a> {
    /// The loop's state after `step`, reading the guard's skipped count from the device.
    fn now(
        step: u64,
        order: &'a ViewOrder,
        train_seconds: f64,
        guard: &StepGuard,
    ) -> Result<Self, FitError> {
        Ok(Self {
            step,
            order,
            train_seconds,
            skipped: guard.skipped_now().map_err(FitError::Device)?,
        })
    }
}

/// [`save_fit_checkpoint`], then `metrics.json` brought up to the same training time (the
/// periodic and the stop-signal saves). Returns the checkpoint's path.
fn save_progress(
    cfg: &FitConfig,
    hash: &str,
    gaussians: &Gaussians,
    densifier: &Densifier,
    state: LoopState,
    report: &mut FitReport,
) -> Result<PathBuf, FitError> {
    let train_seconds = state.train_seconds;
    let path = save_fit_checkpoint(cfg, hash, gaussians, densifier, state)?;
    report.train_seconds = train_seconds;
    write_metrics(&cfg.output.dir.join("metrics.json"), report)?;
    Ok(path)
}

/// Save a fit checkpoint of the completed `state.step` into `<out>/checkpoints/`, then prune
/// old ones.
fn save_fit_checkpoint(
    cfg: &FitConfig,
    hash: &str,
    gaussians: &Gaussians,
    densifier: &Densifier,
    state: LoopState,
) -> Result<PathBuf, FitError> {
    let mut tensors = crate::checkpoint::training_entries(gaussians, densifier)?;
    if !state.order.left.is_empty() {
        let left: Vec<f32> = state.order.left.iter().map(|&i| i as f32).collect();
        tensors.push(("fit.order".into(), vec![left.len()], left));
    }
    tensors.push((
        "fit.state".into(),
        vec![3],
        vec![
            state.order.epoch as f32,
            state.train_seconds as f32,
            state.skipped as f32,
        ],
    ));
    let ck = Checkpoint {
        meta: Meta {
            step: state.step,
            seed: cfg.train.seed,
            config_hash: hash.to_string(),
            splats: gaussians.len(),
            method: "fit".into(),
            sh_degree: gaussians.max_sh_degree,
        },
        tensors,
    };
    let dir = cfg.output.dir.join("checkpoints");
    std::fs::create_dir_all(&dir).map_err(|source| FitError::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(crate::checkpoint::file_name(state.step));
    ck.save(&path)?;
    crate::checkpoint::prune(&dir, cfg.output.keep_checkpoints);
    Ok(path)
}

/// Run `fit` on a loaded dataset. Writes `config.toml` (resolved settings), `metrics.json`
/// (after every evaluation; the first evaluation, step 0, is of the initial splats),
/// `checkpoints/step-*.safetensors` every `output.checkpoint_every` steps and on a stop
/// request (through `control`, [`Control`]), `point_cloud.ply`, `renders/*.png` + `*.camera.json` and
/// `turntable.gif` into `cfg.output.dir`, and calls `on_event` as it goes.
///
/// With `resume` (a checkpoint file or a run folder), the splats, their Adam moments, the
/// densifier's accumulators, the view order and the counters are restored and the run
/// continues after the saved step (`metrics.json` keeps the history before it).
///
/// A step whose loss or gradients hold a NaN or an infinity is skipped (parameters and moments
/// unchanged) and counted ([`optim::guard`]).
///
/// # Errors
/// [`FitError`] for bad settings, an unreadable checkpoint, a failing device read, a diverged
/// run ([`FitError::Diverged`]), a stop request ([`FitError::Interrupted`], after the
/// checkpoint is written) or an output that cannot be written (outputs written before the
/// failure are kept).
pub fn fit(
    dataset: &Dataset,
    cfg: &FitConfig,
    device: &Device,
    resume: Option<&Path>,
    control: &Control,
    on_event: &mut dyn FnMut(Event),
) -> Result<FitReport, FitError> {
    validate(cfg)?;
    if dataset.train.is_empty() {
        return Err(config_err(
            "data.path",
            format!("{}: no training views", dataset.root.display()),
        ));
    }
    check_photo_sizes(dataset)?;
    // Read the checkpoint before writing anything, so a bad one changes nothing.
    let resumed = crate::checkpoint::load_resume(resume)?;
    let out_dir = &cfg.output.dir;
    std::fs::create_dir_all(out_dir).map_err(|source| FitError::Io {
        path: out_dir.clone(),
        source,
    })?;
    let config_text =
        toml::to_string_pretty(cfg).map_err(|e| config_err("<all>", e.to_string()))?;
    write_text(&out_dir.join("config.toml"), &config_text)?;
    let hash = config_hash(cfg);
    let metrics_path = out_dir.join("metrics.json");

    let seed = cfg.train.seed;
    let scene_scale = dataset.scene_extent().max(1e-6);
    let mut report = FitReport {
        dataset: dataset.root.clone(),
        views: (dataset.train.len(), dataset.eval.len()),
        scene_scale,
        ..Default::default()
    };
    let mut densifier = Densifier::new(
        cfg.densify.clone(),
        scene_scale as f64,
        seed,
        cfg.train.steps,
    );
    let mut order = ViewOrder {
        epoch: 0,
        left: vec![],
    };
    let mut train_time = 0.0f64;
    let gaussians;
    let start: u64;
    match resumed {
        Some((path, ck)) => {
            let bad = |message: String| CheckpointError::Read {
                path: path.clone(),
                message,
            };
            if ck.meta.method != "fit" {
                return Err(bad(format!(
                    "a `{}` checkpoint, not a fit checkpoint",
                    ck.meta.method
                ))
                .into());
            }
            if ck.meta.config_hash != hash {
                on_event(Event::Message(
                    "note: settings differ from the checkpointed run's (beyond steps, eval and output)"
                        .into(),
                ));
            }
            gaussians = ck.gaussians(device, &path)?;
            if gaussians.max_sh_degree != cfg.train.sh_degree {
                return Err(bad(format!(
                    "SH degree {} but train.sh_degree is {}",
                    gaussians.max_sh_degree, cfg.train.sh_degree
                ))
                .into());
            }
            start = ck.meta.step;
            ck.restore_densifier(&mut densifier, device);
            let state = ck
                .get("fit.state")
                .filter(|e| e.2.len() == 3)
                .ok_or_else(|| bad("tensor `fit.state` is missing or not [3]".into()))?;
            order.epoch = state.2[0] as u64;
            train_time = state.2[1] as f64;
            report.skipped_steps = state.2[2] as u64;
            let n = dataset.train.len();
            if let Some(e) = ck.get("fit.order") {
                order.left = e.2.iter().map(|&i| i as usize).collect();
                if order.left.iter().any(|&i| i >= n) {
                    return Err(bad(format!(
                        "tensor `fit.order` names views beyond the dataset's {n}; is this the same dataset?"
                    ))
                    .into());
                }
            }
            // The history before the checkpoint.
            if let Some(old) = std::fs::read_to_string(&metrics_path)
                .ok()
                .and_then(|t| serde_json::from_str::<FitReport>(&t).ok())
            {
                report.evals = old.evals.into_iter().filter(|e| e.step <= start).collect();
                report.steps = old.steps.into_iter().filter(|e| e.step <= start).collect();
                report.densify = old
                    .densify
                    .into_iter()
                    .filter(|e| e.step <= start)
                    .collect();
                report.initial_splats = old.initial_splats;
            }
            on_event(Event::Message(format!(
                "resumed {} at step {start} ({} splats)",
                path.display(),
                gaussians.len()
            )));
        }
        None => {
            let init = initial_splats(dataset, &cfg.init, seed)?;
            report.initial_splats = init.len();
            gaussians = Gaussians::from_data(&init, cfg.train.sh_degree, device);
            start = 0;
        }
    }
    report.start_step = start;
    device.seed(step_seed(seed, start, 8));
    on_event(Event::Message(format!(
        "{} training / {} evaluation views, scene scale {scene_scale:.3}, {} splats",
        dataset.train.len(),
        dataset.eval.len(),
        gaussians.len()
    )));

    let composite = dataset.kind == datasets::DatasetKind::NerfSynthetic;
    let eval_views = datasets::limit(
        dataset.eval.clone(),
        (cfg.eval.max_views > 0).then_some(cfg.eval.max_views),
    );
    let eval_photos: Vec<Photo> = eval_views
        .iter()
        .map(|v| upload(v, composite, device))
        .collect();

    let mode = raster_mode(cfg);
    let steps = cfg.train.steps;
    let guard = StepGuard::new(device, cfg.train.max_bad_steps).with_skipped(report.skipped_steps);
    let mut trainer = FitTrainer::new(cfg, dataset, device, gaussians, densifier, guard, order);
    // The starting point, so a run shows how far it came (once: a run resumed from its step-0
    // checkpoint already has it in its metrics).
    if start == 0 && !eval_photos.is_empty() && report.evals.is_empty() {
        let record = evaluate(&trainer.gaussians, &eval_photos, cfg, mode, 0, 0.0)?;
        on_event(Event::Eval(&record));
        report.evals.push(record);
    }
    if let Some(live) = control.live() {
        live.set_cameras(dataset.train.iter().map(|v| v.camera).collect());
    }
    let mut eval_due = false;
    let mut ply_due = false;
    for step in start + 1..=steps {
        control.pause_point();
        if control.stop_requested() {
            let done = step - 1;
            let state = LoopState::now(done, &trainer.order, train_time, &trainer.guard)?;
            let checkpoint = save_progress(
                cfg,
                &hash,
                &trainer.gaussians,
                &trainer.densifier,
                state,
                &mut report,
            )?;
            return Err(Interrupted {
                step: done,
                checkpoint,
                run: out_dir.clone(),
            }
            .into());
        }
        let t0 = Instant::now();
        let FitStep {
            loss,
            l1,
            ssim: ssim_v,
            sh_degree,
        } = trainer.step(step)?;
        let logged = step % cfg.train.log_every.max(1) == 0 || step == start + 1 || step == steps;
        let mut loss_value = None;
        if logged {
            let [skipped, run] = trainer.guard.device_parts();
            let vals = host(&Tensor::cat(vec![loss, l1, ssim_v, skipped, run], 0).reshape([1, 5]))
                .map_err(FitError::Device)?;
            if let Some(w) = trainer.guard.after_read(vals[3], vals[4], step)? {
                on_event(Event::Message(w));
            }
            report.skipped_steps = trainer.guard.skipped();
            report.steps.push(StepRecord {
                step,
                loss: vals[0],
                l1: vals[1],
                ssim: vals[2],
                splats: trainer.gaussians.len(),
                sh_degree,
            });
            loss_value = Some(vals[0]).filter(|v| v.is_finite());
        }
        train_time += t0.elapsed().as_secs_f64();
        on_event(Event::Step {
            step,
            total: steps,
            loss: loss_value,
            splats: trainer.gaussians.len(),
        });
        // An evaluation due inside an opacity reset's recovery window waits until it has
        // passed (the run's last step is never inside one).
        eval_due |= cfg.eval.every > 0 && step % cfg.eval.every == 0;
        let eval_now = step == steps || (eval_due && !trainer.densifier.recovering(step));
        if eval_now && !eval_photos.is_empty() {
            eval_due = false;
            let record = evaluate(
                &trainer.gaussians,
                &eval_photos,
                cfg,
                mode,
                step,
                train_time,
            )?;
            on_event(Event::Eval(&record));
            report.evals.push(record);
            report.train_seconds = train_time;
            write_metrics(&metrics_path, &report)?;
        }
        let ply_every = cfg.output.ply_every;
        ply_due |= ply_every > 0 && step % ply_every == 0 && step != steps;
        if ply_due && !trainer.densifier.recovering(step) {
            ply_due = false;
            let data = trainer.gaussians.to_data().map_err(FitError::Device)?;
            let path = out_dir.join(crate::output::snapshot_name(step));
            splat::ply::write_ply(&path, &data)?;
        }
        // Densify after the evaluation and snapshot of this step, never before them: a
        // refinement's transient is not the model (FitTrainer::refine). Checkpoints follow it,
        // so a resumed run continues from the refined splats.
        // The last step does not densify at all: the outputs are the model just evaluated.
        if step < steps {
            let t1 = Instant::now();
            if let Some(r) = trainer.refine(step)? {
                report.densify.push(r);
            }
            train_time += t1.elapsed().as_secs_f64();
        }
        control.offer_scene(step, steps, sh_degree, || trainer.gaussians.splats());
        let every = cfg.output.checkpoint_every;
        let periodic = every > 0 && step % every == 0 && step != steps;
        // A save asked for from the viewer joins the periodic checkpoints.
        if periodic || (control.take_save_request() && step != steps) {
            let state = LoopState::now(step, &trainer.order, train_time, &trainer.guard)?;
            save_progress(
                cfg,
                &hash,
                &trainer.gaussians,
                &trainer.densifier,
                state,
                &mut report,
            )?;
        }
    }
    report.train_seconds = train_time;
    let state = LoopState::now(steps.max(start), &trainer.order, train_time, &trainer.guard)?;
    let final_ck = save_fit_checkpoint(cfg, &hash, &trainer.gaussians, &trainer.densifier, state)?;
    report.outputs.push(final_ck);
    if start >= steps {
        on_event(Event::Message(format!(
            "the checkpoint is at step {start}, train.steps is {steps}: nothing left to train; writing the outputs"
        )));
        // A run stopped between evaluations and finished where it stopped: evaluate the
        // splats the outputs are made of, so the reported PSNR is theirs.
        if !eval_photos.is_empty() && report.evals.last().is_none_or(|e| e.step < start) {
            let record = evaluate(
                &trainer.gaussians,
                &eval_photos,
                cfg,
                mode,
                start,
                train_time,
            )?;
            on_event(Event::Eval(&record));
            report.evals.push(record);
        }
    }

    // Outputs.
    let data = trainer.gaussians.to_data().map_err(FitError::Device)?;
    let (formats, mesh) = (&cfg.output.formats, cfg.output.mesh);
    let written = write_scene_outputs::<FitError>(out_dir, &data, formats, mesh, None)?;
    report.outputs.extend(written);
    let bg = cfg.data.background.eval();
    let final_opts = RenderOptions {
        background: bg,
        mode,
        ..Default::default()
    };
    if cfg.eval.save_renders && !eval_photos.is_empty() {
        let dir = out_dir.join("renders");
        std::fs::create_dir_all(&dir).map_err(|source| FitError::Io {
            path: dir.clone(),
            source,
        })?;
        let splats = trainer.gaussians.splats();
        for (view, photo) in eval_views.iter().zip(&eval_photos) {
            let out = render(&splats, std::slice::from_ref(&photo.camera), &final_opts)?;
            let [_, h, w, _] = out.rgb.dims();
            let side = Tensor::cat(vec![out.rgb.reshape([h, w, 3]), photo.target(bg)], 1);
            let name = Path::new(&view.name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("view")
                .to_string();
            let path = dir.join(format!("{name}.png"));
            write_png(&path, &to_rgb8(side)?)?;
            report.outputs.push(path);
            // The camera, for `splatdream render --camera` (reproduces the left half).
            let cam_path = dir.join(format!("{name}.camera.json"));
            let json =
                serde_json::to_string_pretty(&photo.camera).map_err(|e| OutputError::Write {
                    path: cam_path.clone(),
                    message: e.to_string(),
                })?;
            write_text(&cam_path, &json)?;
            report.outputs.push(cam_path);
        }
    }
    if cfg.output.turntable_frames > 0 {
        let cams: Vec<Camera> = dataset.train.iter().map(|v| v.camera).collect();
        let orbit = turntable_cameras(
            &cams,
            cfg.output.turntable_frames,
            cfg.output.turntable_size,
            cfg.output.turntable_path,
        );
        let frames =
            crate::output::render_frames(&trainer.gaussians.splats(), &orbit, &final_opts)?;
        let path = write_turntable(out_dir, &frames, cfg.output.turntable)?;
        report.outputs.push(path);
    }
    write_metrics(&metrics_path, &report)?;
    report.outputs.push(metrics_path);
    Ok(report)
}

fn evaluate(
    gaussians: &Gaussians,
    photos: &[Photo],
    cfg: &FitConfig,
    mode: RasterizeMode,
    step: u64,
    train_seconds: f64,
) -> Result<EvalRecord, FitError> {
    let bg = cfg.data.background.eval();
    let splats = gaussians.splats();
    let opts = RenderOptions {
        background: bg,
        mode,
        ..Default::default()
    };
    let mut psnrs = vec![];
    let mut ssims = vec![];
    for photo in photos {
        let out = render(&splats, std::slice::from_ref(&photo.camera), &opts)?;
        let target = photo.target(bg).unsqueeze::<4>();
        let rgb = out.rgb.clamp(0.0, 1.0);
        let p = psnr(rgb.clone(), target.clone());
        let s = ssim(rgb, target);
        let v = host(&Tensor::cat(vec![p, s], 0).reshape([1, 2])).map_err(FitError::Device)?;
        psnrs.push(v[0] as f64);
        ssims.push(v[1] as f64);
    }
    let n = photos.len().max(1) as f64;
    Ok(EvalRecord {
        step,
        psnr: psnrs.iter().sum::<f64>() / n,
        ssim: ssims.iter().sum::<f64>() / n,
        views: photos.len(),
        splats: gaussians.len(),
        train_seconds,
    })
}

fn write_metrics(path: &Path, report: &FitReport) -> Result<(), FitError> {
    let text = serde_json::to_string_pretty(report).map_err(|e| OutputError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_text(path, &text)?;
    Ok(())
}
