//! `splatdream mesh`: a coloured triangle mesh (GLB or OBJ) from a splat scene, on the host.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use splat::extract::{MeshOptions, extract_mesh, write::write_mesh};

/// `splatdream mesh <scene|run dir> --out model.glb|model.obj`.
#[derive(Args)]
pub struct MeshArgs {
    /// A scene file (any format `render` reads) or a run folder (its `point_cloud.ply`).
    pub scene: PathBuf,
    /// Output mesh: `.glb` (binary glTF 2.0) or `.obj` (with vertex colours).
    #[arg(long)]
    pub out: PathBuf,
    /// Grid cells along the scene box's longest side.
    #[arg(long, default_value_t = 128)]
    pub resolution: u32,
    /// Density level of the surface (one opaque splat reaches 1 at its centre).
    #[arg(long, default_value_t = 0.5)]
    pub iso: f32,
    /// Leave out splats less opaque than this.
    #[arg(long, default_value_t = 0.05)]
    pub min_opacity: f32,
    /// Keep this fraction of the triangles (meshoptimizer), e.g. 0.25.
    #[arg(long)]
    pub decimate: Option<f32>,
    /// The scene's up axis: `y` writes it as it is; `z` (generate's world) turns it to glTF's
    /// y-up.
    #[arg(long, default_value = "y")]
    pub up: String,
}

/// Read the scene, extract the mesh, write it.
///
/// # Errors
/// An unreadable scene (named), a bad option (named), a grid too large for memory, no
/// surface at the iso level, a failed write (nothing half-written).
pub fn cmd_mesh(a: MeshArgs) -> Result<()> {
    let z_up = match a.up.as_str() {
        "y" => false,
        "z" => true,
        other => anyhow::bail!("--up {other}: expected y or z"),
    };
    let ext = a
        .out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if !matches!(ext.as_deref(), Some("glb" | "obj")) {
        anyhow::bail!(
            "--out {}: unknown mesh format (use .glb or .obj)",
            a.out.display()
        );
    }
    experiments::check_out_file("--out", &a.out)?;
    let path = if a.scene.is_dir() {
        a.scene.join("point_cloud.ply")
    } else {
        a.scene.clone()
    };
    let data = splat::formats::read_scene(&path)?;
    let opts = MeshOptions {
        resolution: a.resolution,
        iso: a.iso,
        min_opacity: a.min_opacity,
        decimate: a.decimate,
    };
    let t0 = std::time::Instant::now();
    let mut mesh = extract_mesh(&data, &opts).with_context(|| {
        format!(
            "{}: meshing (--resolution, --iso, --decimate)",
            path.display()
        )
    })?;
    if z_up {
        mesh.z_up_to_y_up();
    }
    write_mesh(&a.out, &mesh)?;
    println!(
        "{} splats → {} vertices, {} triangles in {:.1} s → {}",
        data.len(),
        mesh.positions.len(),
        mesh.triangles(),
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
