//! `splatdream export`: a checkpoint (or a run folder's latest) as a splat file, on the host.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

/// `splatdream export <checkpoint|run dir> --out x.ply|x.compressed.ply|x.spz`.
#[derive(Args)]
pub struct ExportArgs {
    /// A `fit` or `generate` checkpoint (`checkpoints/step-*.safetensors`), or a run folder
    /// (its latest checkpoint by step).
    pub checkpoint: PathBuf,
    /// Output splat file: `.ply` (INRIA 3DGS layout, float32), `.compressed.ply` (PlayCanvas)
    /// or `.spz` (Niantic SPZ version 4).
    #[arg(long)]
    pub out: PathBuf,
    /// Up axis of a `generate` checkpoint's file (`z`, `y`, `-y`); default: the run's
    /// `output.up` from its `config.toml` (`-y` when there is none), as its own
    /// `point_cloud.ply`. A `fit` checkpoint is written in its dataset's frame.
    #[arg(long, allow_hyphen_values = true)]
    pub up: Option<splat::transform::UpAxis>,
}

/// The up axis a `generate` run folder's `config.toml` names in `output.up` (the default,
/// `-y`, when the file or the key is absent). `checkpoint` is a file in `<run>/checkpoints/`.
fn run_up_axis(checkpoint: &std::path::Path) -> Result<splat::transform::UpAxis> {
    let Some(config) = checkpoint
        .parent()
        .and_then(|d| d.parent())
        .map(|run| run.join("config.toml"))
        .filter(|c| c.is_file())
    else {
        return Ok(splat::transform::UpAxis::default());
    };
    let text = std::fs::read_to_string(&config)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", config.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not TOML: {e}", config.display()))?;
    match table.get("output").and_then(|o| o.get("up")) {
        None => Ok(splat::transform::UpAxis::default()),
        Some(v) => v
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{}: output.up: not a string", config.display()))?
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{}: output.up: {e}", config.display())),
    }
}

/// Read the checkpoint's parameter groups (no GPU) and write them as the run's own
/// `point_cloud.ply` would be at that step.
///
/// # Errors
/// The checkpoint is missing, unreadable or mis-shaped (named), the output's extension is not
/// a format we write, or the write fails (named; nothing half-written).
pub fn cmd_export(a: ExportArgs) -> Result<()> {
    if splat::formats::SceneFormat::for_output(&a.out).is_none() {
        bail!(
            "--out {}: unsupported format; expected .ply, .compressed.ply or .spz",
            a.out.display()
        );
    }
    experiments::check_out_file("--out", &a.out)?;
    let path = train::checkpoint::resolve(&a.checkpoint)?;
    let ck = train::checkpoint::Checkpoint::load(&path)?;
    let data = ck.splat_data(&path)?;
    let up = match (a.up, ck.meta.method.as_str()) {
        (Some(up), _) => Some(up),
        (None, "fit") => None,
        (None, _) => Some(run_up_axis(&path)?),
    };
    match (up, splat::formats::SceneFormat::for_output(&a.out)) {
        (Some(up), Some(format)) => splat::formats::write_scene_up(&a.out, &data, format, up)?,
        _ => splat::formats::write_scene(&a.out, &data)?,
    }
    println!(
        "{} splats (SH degree {}) at step {} of {} → {}",
        data.len(),
        data.sh_degree,
        ck.meta.step,
        path.display(),
        a.out.display()
    );
    Ok(())
}
