//! `splatdream convert`: a scene file from any format we read to any we write, on the host.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use splat::formats::{SceneFormat, SpzVersion, read_scene, write_scene_as};
use splat::transform::UpAxis;

/// `splatdream convert <in> <out> [--spz-version 2|3|4] [--up z|y|-y]`.
#[derive(Args)]
pub struct ConvertArgs {
    /// Input scene: INRIA PLY, PlayCanvas compressed PLY, SPZ (versions 2–4) or `.splat`.
    pub input: PathBuf,
    /// Output scene, format by name: `.ply`, `.compressed.ply` or `.spz`.
    pub out: PathBuf,
    /// SPZ version to write (2 and 3 are gzip-wrapped; 4 is what splat-transform writes).
    #[arg(long, default_value_t = 4)]
    pub spz_version: u32,
    /// Up axis of the output, for a z-up scene (`generate`'s world): `-y` (SuperSplat,
    /// PlayCanvas: the COLMAP frame), `y` (three.js-style viewers) or `z` (unchanged). Default: the axis
    /// the input PLY's header declares (`generate` writes `-y`), else the scene as it is.
    #[arg(long, allow_hyphen_values = true)]
    pub up: Option<UpAxis>,
}

/// Read `input` and write it to `out`.
///
/// # Errors
/// An unreadable or invalid input (named with the field), an output name of no format we
/// write, an SPZ version other than 2–4, a failed write (nothing half-written).
pub fn cmd_convert(a: ConvertArgs) -> Result<()> {
    let mut format = match SceneFormat::for_output(&a.out) {
        Some(f) => f,
        None => bail!(
            "{}: cannot tell the output format from the name (use .ply, .compressed.ply or .spz)",
            a.out.display()
        ),
    };
    if let SceneFormat::Spz(_) = format {
        format = SceneFormat::Spz(match a.spz_version {
            2 => SpzVersion::V2,
            3 => SpzVersion::V3,
            4 => SpzVersion::V4,
            v => bail!("--spz-version {v}: we write SPZ versions 2, 3 and 4"),
        });
    }
    experiments::check_out_file("out", &a.out)?;
    // A PLY that declares an up axis reads back as the z-up scene; keep its axis unless told.
    let declared = match SceneFormat::for_output(&a.input) {
        Some(SceneFormat::Ply) => splat::ply::declared_up(&a.input)?,
        _ => None,
    };
    let data = read_scene(&a.input)?;
    match a.up.or(declared) {
        Some(up) => splat::formats::write_scene_up(&a.out, &data, format, up)?,
        None => write_scene_as(&a.out, &data, format)?,
    }
    println!(
        "{} splats (SH degree {}) {} → {}",
        data.len(),
        data.sh_degree,
        a.input.display(),
        a.out.display()
    );
    Ok(())
}
