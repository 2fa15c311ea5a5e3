//! Writing a [`TriMesh`]: binary glTF 2.0 (GLB) and Wavefront OBJ with vertex colours, both
//! atomically.
//!
//! GLB: one buffer holding `POSITION` (float VEC3, with the min/max glTF requires), `NORMAL`
//! (float VEC3, unit), `COLOR_0` (float VEC3, linear: glTF vertex colours are linear, ours are
//! sRGB and are converted) and `u32` indices, one mesh, one node, one scene; the JSON chunk is
//! padded with spaces and the binary chunk with zeros to 4 bytes (glTF 2.0 §4.4). OBJ: `v x y
//! z r g b` (sRGB, the common extension Blender and MeshLab read), `vn`, `f a//a b//b c//c`.

use std::io::Write;
use std::path::Path;

use super::TriMesh;

/// sRGB to linear (IEC 61966-2-1).
fn linear(c: f32) -> f32 {
    if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// The GLB bytes of `mesh`.
///
/// # Panics
/// Never for meshes under 4 GiB of vertex data (sizes are u32 in the container).
#[must_use]
pub fn glb_bytes(mesh: &TriMesh) -> Vec<u8> {
    let n = mesh.positions.len();
    let mut bin: Vec<u8> = Vec::with_capacity(n * 36 + mesh.indices.len() * 4);
    let mut views = vec![];
    let mut push = |bin: &mut Vec<u8>, data: &[u8], target: u32| {
        let offset = bin.len();
        bin.extend_from_slice(data);
        while !bin.len().is_multiple_of(4) {
            bin.push(0);
        }
        views.push(serde_json::json!({
            "buffer": 0, "byteOffset": offset, "byteLength": data.len(), "target": target
        }));
    };
    let colors: Vec<[f32; 3]> = mesh.colors.iter().map(|c| c.map(linear)).collect();
    push(&mut bin, bytemuck::cast_slice(&mesh.positions), 34962);
    push(&mut bin, bytemuck::cast_slice(&mesh.normals), 34962);
    push(&mut bin, bytemuck::cast_slice(&colors), 34962);
    push(&mut bin, bytemuck::cast_slice(&mesh.indices), 34963);
    let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for p in &mesh.positions {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let json = serde_json::json!({
        "asset": { "version": "2.0", "generator": "splatdream" },
        "scene": 0,
        "scenes": [{ "nodes": [0] }],
        "nodes": [{ "mesh": 0, "name": "splats" }],
        "meshes": [{ "primitives": [{
            "attributes": { "POSITION": 0, "NORMAL": 1, "COLOR_0": 2 },
            "indices": 3,
            "mode": 4
        }] }],
        "buffers": [{ "byteLength": bin.len() }],
        "bufferViews": views,
        "accessors": [
            { "bufferView": 0, "componentType": 5126, "count": n, "type": "VEC3",
              "min": lo, "max": hi },
            { "bufferView": 1, "componentType": 5126, "count": n, "type": "VEC3" },
            { "bufferView": 2, "componentType": 5126, "count": n, "type": "VEC3" },
            { "bufferView": 3, "componentType": 5125, "count": mesh.indices.len(),
              "type": "SCALAR" }
        ]
    });
    let mut text = json.to_string().into_bytes();
    while !text.len().is_multiple_of(4) {
        text.push(b' ');
    }
    let total = 12 + 8 + text.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&text);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(&bin);
    out
}

/// Write `mesh` to `path` as GLB (`.glb`) or OBJ (`.obj`), by extension.
///
/// # Errors
/// [`MeshWriteError::Format`] for another extension; [`MeshWriteError::Write`] naming the file.
pub fn write_mesh(path: &Path, mesh: &TriMesh) -> Result<(), MeshWriteError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("glb") => files::write_bytes(path, &glb_bytes(mesh))?,
        Some("obj") => files::write_atomic(path, |w| {
            writeln!(w, "# written by splatdream: {} triangles", mesh.triangles())?;
            for (p, c) in mesh.positions.iter().zip(&mesh.colors) {
                writeln!(
                    w,
                    "v {} {} {} {:.4} {:.4} {:.4}",
                    p[0], p[1], p[2], c[0], c[1], c[2]
                )?;
            }
            for n in &mesh.normals {
                writeln!(w, "vn {} {} {}", n[0], n[1], n[2])?;
            }
            for t in mesh.indices.chunks_exact(3) {
                let [a, b, c] = [t[0] + 1, t[1] + 1, t[2] + 1];
                writeln!(w, "f {a}//{a} {b}//{b} {c}//{c}")?;
            }
            Ok(())
        })?,
        _ => {
            return Err(MeshWriteError::Format {
                path: path.display().to_string(),
            });
        }
    }
    Ok(())
}

/// Errors of [`write_mesh`].
#[derive(Debug, thiserror::Error)]
pub enum MeshWriteError {
    /// The extension names no mesh format we write.
    #[error("{path}: unknown mesh format (use .glb or .obj)")]
    Format {
        /// File.
        path: String,
    },
    /// The atomic write failed.
    #[error(transparent)]
    Write(#[from] files::WriteError),
}
