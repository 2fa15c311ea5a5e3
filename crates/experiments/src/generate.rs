//! Runs of `generate`: the base settings of a prior, run-folder names, the expansion of a
//! prompt file into one run per prompt (sharded over processes), and the driver that runs
//! them in turn, skipping finished runs, continuing interrupted ones and taking a lock on
//! each folder so that several jobs can share a batch.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gpu::GpuContext;
use train::generate::{GenerateConfig, generate};

use crate::lock::{Acquired, RunLock};
use crate::progress::GenerateProgress;
use crate::shard::Shard;
use crate::toy::evaluate_if_toy;
use crate::with_resume_hint;

/// `configs/toyworld.toml`: the base settings of `--model toyworld` without `--config`.
const TOYWORLD_CONFIG: &str = include_str!("../../../configs/toyworld.toml");

/// Whether `--model` names the built-in toy-world prior.
pub fn is_toyworld_name(model: &str) -> bool {
    model == "toyworld"
}

/// The base settings before options: the `--config` file, else `configs/toyworld.toml` for
/// `--model toyworld`, else the defaults.
///
/// # Errors
/// The file cannot be read or does not parse as generate settings (the error names it).
pub fn base_table(config: Option<&Path>, model: Option<&str>) -> Result<toml::Table> {
    Ok(match config {
        Some(path) => train::settings::read_settings::<GenerateConfig>(path)?,
        None if model.is_some_and(is_toyworld_name) => train::settings::parse_settings::<
            GenerateConfig,
        >(
            TOYWORLD_CONFIG, "configs/toyworld.toml"
        )?,
        None => toml::Table::try_from(GenerateConfig::default())?,
    })
}

/// One run per prompt of `file` (one prompt per non-empty line, `#` starts a comment): `base`
/// with its prompt, in `<base.output.dir>/<index>-<slug>/`, restricted to the shard `shard`
/// (`I/N`, else a Slurm array task's, else all). Returns the runs and, for each, where its
/// prompt came from (`file: line k`, for error messages).
///
/// # Errors
/// The file cannot be read, holds no prompts, or the shard holds none of them.
pub fn runs_from_file(
    base: &GenerateConfig,
    file: &Path,
    shard: Option<&str>,
) -> Result<(Vec<GenerateConfig>, Vec<String>)> {
    let mut labels = vec![];
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let prompts: Vec<(usize, &str)> = text
        .lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if prompts.is_empty() {
        bail!("{}: no prompts (one per non-empty line)", file.display());
    }
    let shard = Shard::resolve(shard, |k| std::env::var(k).ok())?;
    let mine: Vec<(usize, &(usize, &str))> = prompts
        .iter()
        .enumerate()
        .filter(|(k, _)| shard.takes(*k))
        .collect();
    if mine.is_empty() {
        bail!(
            "{}: shard {}/{} holds none of its {} prompts",
            file.display(),
            shard.index,
            shard.count,
            prompts.len()
        );
    }
    let runs = mine
        .into_iter()
        .map(|(k, (line, p))| {
            let mut c = base.clone();
            c.prompt = p.to_string();
            c.output.dir = base.output.dir.join(format!("{k:03}-{}", slug(p)));
            labels.push(format!("{}: line {}", file.display(), line + 1));
            c
        })
        .collect();
    Ok((runs, labels))
}

/// A folder-name slug of a prompt: lowercase ASCII alphanumerics joined by `-`, ≤ 40 chars.
pub fn slug(prompt: &str) -> String {
    let mut out = String::new();
    for c in prompt.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "prompt".into() } else { out }
}

/// Whether a run's folder holds everything a finished run writes: the checkpoint of its last
/// step, then `point_cloud.ply`, then the turntable and views it is configured to write (in
/// the order `train::generate::generate` writes them).
pub fn run_is_finished(cfg: &GenerateConfig) -> bool {
    let dir = &cfg.output.dir;
    let last = dir
        .join("checkpoints")
        .join(train::checkpoint::file_name(cfg.steps));
    last.is_file()
        && dir.join("point_cloud.ply").is_file()
        && (cfg.output.turntable_frames == 0
            || dir.join(cfg.output.turntable.file_name()).is_file())
        && (cfg.output.views == 0 || dir.join("views.png").is_file())
}

/// Run every prompt's config in turn (progress bar, summary line, the toy-world evaluation
/// where the prior is one). With `batch`, finished runs are skipped, interrupted ones continue
/// from their checkpoint, and a folder another live job holds is left to it.
///
/// # Errors
/// The first run that fails (with a hint to resume it when the device failed).
pub fn generate_all(
    ctx: &GpuContext,
    model: &sd::pipeline::StableDiffusion,
    runs: &[GenerateConfig],
    resume: Option<&std::path::Path>,
    batch: bool,
    control: &live::control::Control,
) -> Result<()> {
    for cfg in runs {
        // A batch (--prompts) skips finished runs and continues interrupted ones, so a
        // requeued or restarted job picks up where it stopped.
        let dir = cfg.output.dir.as_path();
        if batch && run_is_finished(cfg) {
            eprintln!(
                "\"{}\": finished before in {} (skipped)",
                cfg.prompt,
                dir.display()
            );
            continue;
        }
        let _lock = if batch {
            match RunLock::acquire(dir)? {
                Acquired::Held(lock) => Some(lock),
                Acquired::Busy(who) => {
                    eprintln!(
                        "\"{}\": {} is locked by a live job ({who}; skipped)",
                        cfg.prompt,
                        dir.display()
                    );
                    continue;
                }
            }
        } else {
            None
        };
        let continued = batch && train::checkpoint::resolve(dir).is_ok();
        let resume = if continued { Some(dir) } else { resume };
        eprintln!(
            "generating \"{}\" → {}",
            cfg.prompt,
            cfg.output.dir.display()
        );
        let mut progress = GenerateProgress::new(cfg.steps, control);
        let report = generate(cfg, model, &ctx.burn, resume, control, &mut |e| {
            progress.on_event(e)
        })
        .map_err(|e| with_resume_hint(e.into(), &cfg.output.dir))?;
        progress.bar.finish_and_clear();
        println!(
            "generated {} splats in {} steps ({} this run, {:.1} s); outputs in {}",
            report.splats,
            report.steps,
            report.steps - report.start_step,
            report.train_seconds,
            cfg.output.dir.display()
        );
        evaluate_if_toy(ctx, &model.dir, cfg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_folder_safe() {
        assert_eq!(slug("A DSLR photo of a corgi!"), "a-dslr-photo-of-a-corgi");
        assert_eq!(slug("???"), "prompt");
    }
}
