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
    splat::formats::write_scene(&a.out, &data)?;
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
