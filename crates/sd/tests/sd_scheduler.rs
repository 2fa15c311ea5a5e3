//! Parity of `sd::scheduler` with diffusers 0.42.1 for the real SD 2.1 scheduler configs.
//!
//! Cases: `tests/cases/scheduler/{base,768v}.safetensors`, written by
//! `tools/gen_scheduler_cases.py` (each file embeds its `scheduler_config.json` text and a JSON
//! manifest of the cases in its metadata). Extra files: `$SPLATDREAM_SCHEDULER_CASES`.
//!
//! Tolerances:
//! - tensor ops (f32 on the device): `1e-4·max|ref| + 1e-5` (`testkit::compare`);
//! - ᾱ_t and β_t (host f64): 1e-6 relative. diffusers computes them in float32; we replicate
//!   the float32 pipeline except that torch's CPU linspace kernel is off by ≤ 1 ulp from the
//!   correctly rounded linspace we use, which moves ᾱ_t by ≤ 3.8e-7 relative (measured) and β_t
//!   by ≤ 2 ulp ≈ 2.4e-7 relative;
//! - DDPM / DDIM variances (host f64, reference from diffusers' own code run on float64 copies
//!   of its float32 ᾱ): 1e-5 relative; measured ≤ 8.5e-7 at the sampled timesteps. They contain
//!   1 − ᾱ_t/ᾱ_prev ≈ β_t ≥ 8.5e-4, so a timestep where torch's float32 α = 1 − β and ours differ
//!   by 1 ulp (6e-8) would be off by up to ~7e-5; the sampled timesteps have none. Formula
//!   errors are O(1);
//! - timestep lists: exact.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;
use sd::scheduler::{
    Ddim, DdimInverse, NoiseSchedule, PredictionType, SchedulerConfig, TimestepSpacing, cfg,
};
use serde_json::Value;
use testkit::{compare, f32s, f64s};

struct Case<'a> {
    file: String,
    st: SafeTensors<'a>,
    config_text: String,
    manifest: Value,
    schedule: NoiseSchedule,
    device: Device,
    errors: Vec<String>,
}

impl Case<'_> {
    fn tensor(&self, name: &str) -> Tensor<4> {
        let (v, shape) = f64s(&self.st, name).unwrap_or_else(|e| panic!("{}: {e}", self.file));
        let dims: [usize; 4] = shape.try_into().expect("rank-4 input");
        let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
        Tensor::<4>::from_data(TensorData::new(v, dims), &self.device)
    }

    fn ints(&self, name: &str) -> Vec<usize> {
        f64s(&self.st, name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.file))
            .0
            .into_iter()
            .map(|x| x as usize)
            .collect()
    }

    /// Compares a device tensor with reference `name` (tensor tolerance).
    fn check(&mut self, name: &str, got: Tensor<4>) {
        let got = testkit::host(&got).unwrap_or_else(|e| panic!("read back: {e}"));
        let r = f64s(&self.st, name).and_then(|(want, _)| compare(name, &got, &want));
        if let Err(e) = r {
            self.errors.push(format!("{}: {e}", self.file));
        }
    }

    /// Compares host values with reference `name` under relative tolerance `rel`.
    fn check_host(&mut self, name: &str, got: &[f64], rel: f64) {
        let want = match f64s(&self.st, name) {
            Ok((w, _)) => w,
            Err(e) => return self.errors.push(format!("{}: {e}", self.file)),
        };
        if got.len() != want.len() {
            return self.errors.push(format!(
                "{}: {name}: {} values, reference has {}",
                self.file,
                got.len(),
                want.len()
            ));
        }
        let mut worst = (0, 0.0f64);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let r = (g - w).abs() / w.abs().max(1e-30);
            if r > worst.1 || r.is_nan() {
                worst = (i, r);
            }
        }
        if worst.1.is_nan() || worst.1 > rel {
            self.errors.push(format!(
                "{}: {name}: worst element {} got {:e} want {:e} (rel err {:.3e} > {rel:e})",
                self.file, worst.0, got[worst.0], want[worst.0], worst.1
            ));
        }
    }

    fn variant(&self, edit: impl FnOnce(&mut SchedulerConfig)) -> NoiseSchedule {
        let mut c = self.schedule.config().clone();
        edit(&mut c);
        NoiseSchedule::new(c).unwrap_or_else(|e| panic!("{}: {e}", self.file))
    }

    fn finish(self) -> Result<(), String> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors.join("\n"))
        }
    }
}

fn for_each_case(f: impl Fn(&mut Case)) {
    let dir = testkit::root().join("tests/cases/scheduler");
    let files = testkit::case_files(&dir, "SPLATDREAM_SCHEDULER_CASES");
    let mut failures = vec![];
    for path in files {
        if let Err(e) = run_file(&path, &f) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn run_file(path: &Path, f: &impl Fn(&mut Case)) -> Result<(), String> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("{file}: {e}"))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| format!("{file}: {e}"))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let config_text = meta
        .get("config")
        .ok_or(format!("{file}: no `config` metadata"))?;
    let manifest: Value = serde_json::from_str(
        meta.get("manifest")
            .ok_or(format!("{file}: no `manifest` metadata"))?,
    )
    .map_err(|e| format!("{file}: manifest: {e}"))?;
    let config = SchedulerConfig::from_json_str(config_text, &format!("{file} (config)"))
        .map_err(|e| e.to_string())?;
    let schedule = NoiseSchedule::new(config).map_err(|e| e.to_string())?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format!("{file}: {e}"))?;
    let mut case = Case {
        file,
        st,
        config_text: config_text.clone(),
        manifest,
        schedule,
        device: testkit::gpu().burn.clone(),
        errors: vec![],
    };
    f(&mut case);
    case.finish()
}

#[test]
fn real_configs_load() {
    for_each_case(|c| {
        let direct: Value = serde_json::from_str(&c.config_text).unwrap();
        let want = match direct["prediction_type"].as_str() {
            Some("v_prediction") => PredictionType::VPrediction,
            _ => PredictionType::Epsilon,
        };
        let cfg = c.schedule.config();
        assert_eq!(cfg.prediction_type, want, "{}", c.file);
        assert!(!cfg.set_alpha_to_one && cfg.steps_offset == 1 && !cfg.clip_sample);
        assert_eq!(cfg.timestep_spacing, TimestepSpacing::Leading);
    });
    // The shared model folders, when present on this machine.
    for name in ["base", "768v"] {
        let p = format!("/work/shared/data/sd21/{name}/scheduler/scheduler_config.json");
        if Path::new(&p).exists() {
            NoiseSchedule::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn schedule_values() {
    for_each_case(|c| {
        let s = c.schedule.clone();
        c.check_host("alphas_cumprod", s.alphas_cumprod(), 1e-6);
        c.check_host("betas", s.betas(), 1e-6);
        c.check_host("final_alpha_cumprod", &[s.final_alpha_cumprod()], 1e-6);
        let vt = c.ints("ddpm_variance_t");
        let got: Vec<f64> = vt.iter().map(|&t| s.ddpm_posterior_variance(t)).collect();
        c.check_host("ddpm_variance", &got, 1e-5);
        let pairs = c.ints_signed("ddim_variance_pairs");
        let got: Vec<f64> = pairs
            .chunks(2)
            .map(|p| s.ddim_variance(p[0] as usize, p[1]))
            .collect();
        c.check_host("ddim_variance", &got, 1e-5);
    });
}

impl Case<'_> {
    fn ints_signed(&self, name: &str) -> Vec<i64> {
        f64s(&self.st, name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.file))
            .0
            .into_iter()
            .map(|x| x as i64)
            .collect()
    }
}

#[test]
fn ddim_timesteps() {
    for_each_case(|c| {
        for (spacing, name) in [
            (TimestepSpacing::Leading, "leading"),
            (TimestepSpacing::Trailing, "trailing"),
            (TimestepSpacing::Linspace, "linspace"),
        ] {
            let s = c.variant(|cfg| cfg.timestep_spacing = spacing);
            for n in [10, 30, 50] {
                let key = format!("ts/ddim/{name}/{n}");
                let want = c.ints(&key);
                let got = Ddim::new(&s, n).unwrap().timesteps().to_vec();
                if got != want {
                    c.errors
                        .push(format!("{}: {key}: got {got:?}, want {want:?}", c.file));
                }
                let key = format!("ts/inv/{name}/{n}");
                let got = DdimInverse::new(&s, n).map(|d| d.timesteps().to_vec());
                match (spacing, got) {
                    (TimestepSpacing::Linspace, Err(_)) => {}
                    (TimestepSpacing::Linspace, Ok(_)) => c
                        .errors
                        .push(format!("{}: {key}: linspace inversion accepted", c.file)),
                    (_, got) => {
                        let want = c.ints(&key);
                        let got = got.unwrap();
                        if got != want {
                            c.errors
                                .push(format!("{}: {key}: got {got:?}, want {want:?}", c.file));
                        }
                    }
                }
            }
        }
    });
}

fn pred_type(s: &str) -> PredictionType {
    match s {
        "epsilon" => PredictionType::Epsilon,
        "v_prediction" => PredictionType::VPrediction,
        "sample" => PredictionType::Sample,
        _ => panic!("prediction type {s}"),
    }
}

#[test]
fn ddim_step() {
    for_each_case(|c| {
        let (mo, x, noise) = (
            c.tensor("in/model_output"),
            c.tensor("in/sample"),
            c.tensor("in/noise"),
        );
        let steps = c.manifest["ddim"].as_array().unwrap().clone();
        assert!(steps.len() >= 12, "{}: too few ddim cases", c.file);
        for m in steps {
            let key = m["key"].as_str().unwrap();
            let n = m["n"].as_u64().unwrap() as usize;
            let t = m["t"].as_u64().unwrap() as usize;
            let eta = m["eta"].as_f64().unwrap();
            let pred = pred_type(m["prediction_type"].as_str().unwrap());
            let s = c.variant(|cfg| cfg.prediction_type = pred);
            let ddim = Ddim::new(&s, n).unwrap();
            let vn = (eta > 0.0).then(|| noise.clone());
            let (prev, x0) = ddim.step(mo.clone(), t, x.clone(), eta, vn);
            c.check(&format!("ddim/{key}/prev"), prev);
            c.check(&format!("ddim/{key}/x0"), x0);
        }
    });
}

#[test]
fn ddim_inversion() {
    for_each_case(|c| {
        let (mo, x, noise) = (
            c.tensor("in/model_output"),
            c.tensor("in/sample"),
            c.tensor("in/noise"),
        );
        for m in c.manifest["inv"].as_array().unwrap().clone() {
            let key = m["key"].as_str().unwrap();
            let n = m["n"].as_u64().unwrap() as usize;
            let t = m["t"].as_u64().unwrap() as usize;
            let t_from = m["t_from"].as_i64().unwrap();
            let inv = DdimInverse::new(&c.schedule, n).unwrap();
            let (next, x0) = inv.step(mo.clone(), t, x.clone());
            c.check(&format!("inv/{key}/next"), next);
            c.check(&format!("inv/{key}/x0"), x0);
            // The general form with the same levels (source clamped to T−1 as diffusers).
            let src = t_from.min(c.schedule.num_train_timesteps() as i64 - 1);
            assert_eq!(inv.source_timestep(t), src);
            let (next, _) = c.schedule.ddim_invert_step(mo.clone(), src, t, x.clone());
            c.check(&format!("inv/{key}/next"), next);
        }
        for m in c.manifest["sdi"].as_array().unwrap().clone() {
            let key = m["key"].as_str().unwrap();
            let t_from = m["t_from"].as_i64().unwrap();
            let t_to = m["t_to"].as_u64().unwrap() as usize;
            let eta = m["eta"].as_f64().unwrap();
            let (next, _) = c.schedule.ddim_invert_step_eta(
                mo.clone(),
                t_from,
                t_to,
                x.clone(),
                eta,
                Some(noise.clone()),
            );
            c.check(&format!("sdi/{key}/next"), next);
        }
    });
}

#[test]
fn noising_and_conversions() {
    for_each_case(|c| {
        let t = c.ints("in/t");
        let (x0, eps, mo, x) = (
            c.tensor("in/x0"),
            c.tensor("in/eps"),
            c.tensor("in/model_output"),
            c.tensor("in/sample"),
        );
        let s = c.schedule.clone();
        c.check("add_noise", s.add_noise(x0.clone(), eps.clone(), &t));
        c.check("velocity", s.get_velocity(x0.clone(), eps.clone(), &t));
        c.check("conv/x0_from_eps", s.eps_to_x0(mo.clone(), x.clone(), &t));
        c.check("conv/eps_from_x0", s.x0_to_eps(mo.clone(), x.clone(), &t));
        c.check("conv/x0_from_v", s.v_to_x0(mo.clone(), x.clone(), &t));
        c.check("conv/eps_from_v", s.v_to_eps(mo.clone(), x.clone(), &t));
        // to_epsilon / to_x0 dispatch on the config's prediction type.
        let (eps_key, x0_key) = match s.config().prediction_type {
            PredictionType::Epsilon => ("in/model_output", "conv/x0_from_eps"),
            PredictionType::VPrediction => ("conv/eps_from_v", "conv/x0_from_v"),
            PredictionType::Sample => ("conv/eps_from_x0", "in/model_output"),
        };
        c.check(eps_key, s.to_epsilon(mo.clone(), x.clone(), &t));
        c.check(x0_key, s.to_x0(mo.clone(), x.clone(), &t));
    });
}

/// Device roundtrips and CFG, plus the whole API on autodiff tensors with a backward pass.
#[test]
fn roundtrips_cfg_and_autodiff() {
    for_each_case(|c| {
        let t = c.ints("in/t");
        let s = c.schedule.clone();
        let (x0, eps) = (c.tensor("in/x0"), c.tensor("in/eps"));
        let xt = s.add_noise(x0.clone(), eps.clone(), &t);
        let v = s.get_velocity(x0.clone(), eps.clone(), &t);
        let want_x0: Vec<f64> = f32s(&c.st, "in/x0")
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let want_eps: Vec<f64> = f32s(&c.st, "in/eps")
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        for (name, got, want) in [
            (
                "roundtrip eps->x0",
                s.eps_to_x0(eps.clone(), xt.clone(), &t),
                &want_x0,
            ),
            (
                "roundtrip x0->eps",
                s.x0_to_eps(x0.clone(), xt.clone(), &t),
                &want_eps,
            ),
            (
                "roundtrip v->eps",
                s.v_to_eps(v.clone(), xt.clone(), &t),
                &want_eps,
            ),
            (
                "roundtrip v->x0",
                s.v_to_x0(v.clone(), xt.clone(), &t),
                &want_x0,
            ),
        ] {
            let got = testkit::host(&got).unwrap();
            // eps->x0 divides by α_t; at t = 861 α ≈ 0.13 amplifies f32 rounding ~8×.
            let tol_scale = if name.contains("->x0") { 10.0 } else { 1.0 };
            let got_scaled: Vec<f32> = got.iter().map(|g| *g / tol_scale as f32).collect();
            let want_scaled: Vec<f64> = want.iter().map(|w| w / tol_scale).collect();
            if let Err(e) = compare(name, &got_scaled, &want_scaled) {
                c.errors.push(format!("{}: {e}", c.file));
            }
        }
        // CFG form A: scale 1 gives cond, scale 0 gives uncond, linear in the scale.
        let g = cfg(x0.clone(), eps.clone(), 7.5);
        let manual = x0.clone() * (1.0 - 7.5) + eps.clone() * 7.5;
        let manual_h: Vec<f64> = testkit::host(&manual)
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let g_h = testkit::host(&g).unwrap();
        if let Err(e) = compare("cfg 7.5", &g_h, &manual_h) {
            c.errors.push(format!("{}: {e}", c.file));
        }
        let one = testkit::host(&cfg(x0.clone(), eps.clone(), 1.0)).unwrap();
        if let Err(e) = compare("cfg 1.0", &one, &want_eps) {
            c.errors.push(format!("{}: {e}", c.file));
        }

        // Autodiff: d/dx0 Σ add_noise(x0, ε, t) = √ᾱ_t per sample; every op runs on autodiff.
        let ad = c.device.clone().autodiff();
        let x0a = Tensor::<4>::from_data(splat_data(&x0), &ad).require_grad();
        let epsa = Tensor::<4>::from_data(splat_data(&eps), &ad);
        let xta = s.add_noise(x0a.clone(), epsa.clone(), &t);
        let va = s.get_velocity(x0a.clone(), epsa.clone(), &t);
        let e1 = s.to_epsilon(va.clone(), xta.clone(), &t);
        let e2 = s.x0_to_eps(s.v_to_x0(va.clone(), xta.clone(), &t), xta.clone(), &t);
        let e3 = s.v_to_eps(va.clone(), xta.clone(), &t);
        let x0b = s.eps_to_x0(e3.clone(), xta.clone(), &t);
        let g = cfg(e1, e2, 2.0);
        let ddim = Ddim::new(&s, 50).unwrap();
        let (p, _) = ddim.step(g.clone(), 501, xta.clone(), 0.3, Some(epsa.clone()));
        let (q, _) = s.ddim_invert_step_eta(g, 100, 350, xta.clone(), 0.3, None);
        let loss = (p.sum() + q.sum()) * 0.0 + xta.sum() + x0b.sum() * 0.0;
        let grads = loss.backward();
        let gx = testkit::host(&x0a.grad(&grads).expect("no gradient")).unwrap();
        let per = gx.len() / t.len();
        let want: Vec<f64> = (0..gx.len())
            .map(|i| s.sqrt_alpha_cumprod(t[i / per]))
            .collect();
        if let Err(e) = compare("autodiff d add_noise / d x0", &gx, &want) {
            c.errors.push(format!("{}: {e}", c.file));
        }
    });
}

fn splat_data(t: &Tensor<4>) -> TensorData {
    TensorData::new(testkit::host(t).unwrap(), t.dims())
}
