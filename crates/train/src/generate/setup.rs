//! What a `generate` run is set up from: the model, the initial splats, the prompt embeddings
//! (encoded once), and the cameras of the outputs.

use burn::tensor::{Device, Tensor, TensorData};
use sd::pipeline::StableDiffusion;
use splat::Camera;

use datasets::init::{from_points, sphere_points};
use datasets::mesh::{Mesh, normalise, read_point_cloud, y_up_to_z_up};

use super::config::*;

/// Resolve `model` (a diffusers folder or Hugging Face id) and load it in precision `dtype`
/// (`f32`/`f16`) with its tokenizer behind `tokenizer` (the config's `tokenizer`); the errors
/// name the folder and the missing files.
///
/// # Errors
/// [`GenerateError::Config`] for a bad `dtype`; [`GenerateError::Sd`] from
/// `sd::model::resolve` / `StableDiffusion::load`.
pub fn load_model(
    model: &str,
    dtype: &str,
    tokenizer: sd::tokenizer::TextPipeline,
    device: &Device,
) -> Result<StableDiffusion, GenerateError> {
    let precision: sd::Precision = dtype.parse().map_err(|e: String| config_err("dtype", e))?;
    let dir = sd::model::resolve(model)?;
    let mut sd = StableDiffusion::load(&dir, device, precision, false)?;
    sd.set_text_pipeline(tokenizer)?;
    Ok(sd)
}

/// The initial splats (SH degree 0).
///
/// # Errors
/// Missing or unreadable files, with their names.
pub fn initial_splats(cfg: &InitConfig, seed: u64) -> Result<splat::SplatData, GenerateError> {
    let path = || {
        cfg.path
            .clone()
            .ok_or_else(|| config_err("init.path", "missing"))
    };
    let (mut pos, mut col) = match cfg.kind {
        InitKind::Sphere => sphere_points(cfg.count, cfg.radius, cfg.colour, seed),
        InitKind::Ply => {
            let mut data = splat::formats::read_scene(&path()?)?;
            if data.sh_degree > 0 {
                // Keep the DC term only (generation runs at SH degree 0).
                let k = splat::scene::sh_coeffs(data.sh_degree);
                data.sh = data
                    .sh
                    .chunks_exact(3 * k)
                    .flat_map(|c| c[..3].to_vec())
                    .collect();
                data.sh_degree = 0;
            }
            return Ok(data);
        }
        InitKind::Coarse => {
            return Err(config_err(
                "init.kind",
                "\"coarse\" is run by GenerateTrainer::new (it needs the model)",
            ));
        }
        InitKind::Points => read_point_cloud(&path()?)?,
        InitKind::Mesh => Mesh::load(&path()?)?.sample_surface(cfg.count, seed),
    };
    if pos.is_empty() {
        return Err(config_err("init", "no initial points"));
    }
    if cfg.kind != InitKind::Sphere {
        if cfg.y_up {
            y_up_to_z_up(&mut pos);
        }
        normalise(&mut pos, cfg.radius);
        if let Some(c) = cfg.colour {
            col.iter_mut().for_each(|x| *x = c);
        }
    }
    Ok(from_points(&pos, &col, cfg.opacity, cfg.scale_factor))
}

/// `[B, 16]` camera-to-world matrices (row-major, OpenCV axes) of `cams`, for
/// [`GuidanceInput::c2w`].
pub fn c2w_tensor(cams: &[Camera], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = cams
        .iter()
        .flat_map(|c| c.view_matrix().inverse().transpose().to_cols_array())
        .collect();
    Tensor::from_data(TensorData::new(v, [cams.len(), 16]), device)
}

/// The scene scale the densifier's size thresholds are fractions of: 1.1 × the largest camera
/// distance, as 3DGS defines it for its training cameras ([REC]).
pub(crate) fn scene_scale(cfg: &GenerateConfig) -> f64 {
    1.1 * cfg.cameras.radius[1] as f64
}

/// The timesteps of step `step` from the run's schedule
/// ([`GenerateConfig::timestep_schedule`]), one per view of the batch: drawn independently per
/// view (LucidDreamer), or one draw repeated for every view when `cfg.shared_timestep`
/// (DreamMapping's Algorithm 1). `num_t` is the scheduler's number of training timesteps.
///
/// # Errors
/// [`super::GenerateError::Config`] `guidance.method` for an unknown method.
pub fn draw_timesteps(
    cfg: &GenerateConfig,
    step: u64,
    num_t: usize,
    rng: &mut impl rand::Rng,
) -> Result<Vec<usize>, super::GenerateError> {
    let schedule = cfg.timestep_schedule()?;
    Ok(if cfg.shared_timestep {
        let one = schedule.sample(step as usize, 1, num_t, rng);
        vec![one[0]; cfg.batch]
    } else {
        schedule.sample(step as usize, cfg.batch, num_t, rng)
    })
}

/// The config of `cfg`'s coarse initialisation stage (`init.kind = "coarse"`): SDS with the
/// run's `[guidance.sds]`, `init.coarse_steps` steps at `init.coarse_resolution` (0 = half the
/// run's resolution; rounded down to a multiple of `8 · downscale`, at least that, so that the
/// latents are a multiple of 8 for the U-Net's down-sampling), the
/// sphere of `[init]`, every step count rescaled to the stage ([`super::rescale_steps`]), no
/// outputs. `downscale` is the VAE's (8 for SD 2.1, 4 for the toy prior).
pub fn coarse_config(cfg: &GenerateConfig, downscale: u32) -> GenerateConfig {
    let mut c = super::rescale_steps(cfg, cfg.init.coarse_steps.max(1));
    c.guidance.method = "sds".into();
    c.init.kind = InitKind::Sphere;
    let res = match cfg.init.coarse_resolution {
        0 => cfg.resolution / 2,
        r => r,
    };
    let step = 8 * downscale.max(1);
    c.resolution = (res / step * step).max(step);
    c.output.checkpoint_every = 0;
    c.output.ply_every = 0;
    c
}

#[cfg(test)]
mod timestep_tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Shared: every view of a step gets the same t, and the draws still cover the range;
    /// per view: a batch of 4 gets different t's on most steps.
    #[test]
    fn shared_timestep_repeats_one_draw_per_step() {
        let mut cfg = GenerateConfig {
            batch: 4,
            timesteps: Some(distill::timesteps::TimestepSchedule::Uniform {
                t_min: 0,
                t_max: 999,
            }),
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(7);
        cfg.shared_timestep = true;
        let mut seen = std::collections::BTreeSet::new();
        for step in 0..200 {
            let t = draw_timesteps(&cfg, step, 1000, &mut rng).unwrap();
            assert_eq!(t.len(), 4);
            assert!(t.iter().all(|&x| x == t[0]), "step {step}: {t:?}");
            seen.insert(t[0] / 100);
        }
        assert_eq!(seen.len(), 10, "shared draws cover 0..999: {seen:?}");
        cfg.shared_timestep = false;
        let mixed = (0..50)
            .filter(|&step| {
                let t = draw_timesteps(&cfg, step, 1000, &mut rng).unwrap();
                t.iter().any(|&x| x != t[0])
            })
            .count();
        assert!(mixed >= 45, "per-view draws differ on {mixed} of 50 steps");
    }
}
