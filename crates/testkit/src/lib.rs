//! Test support shared by every crate's tests (a dev-dependency only): the one GPU fixture,
//! the workspace root, the reference cases under `tests/cases/` (with their `MANIFEST` and the
//! extra-case environment variables), and comparison against reference tensors.

use std::path::{Path, PathBuf};

use gpu::GpuContext;
use safetensors::{Dtype, SafeTensors};

mod manifest;
pub use manifest::{assert_manifest, manifest};

/// One GPU context per test process (lavapipe in CI), with garbage-filled fresh buffers
/// (`gpu::test_support::shared_context`).
pub fn gpu() -> &'static GpuContext {
    gpu::test_support::shared_context()
}

/// The workspace root (where `tests/cases/`, `assets/` and `configs/` are).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A device tensor's values read back to the host as f32 (`gpu::host`).
pub use gpu::host;

/// The committed case files in `dir` (exactly those its `MANIFEST` lists) plus every
/// `*.safetensors` in the directory named by `var`.
pub fn case_files(dir: &Path, var: &str) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(extra) = std::env::var(var) {
        let extra = PathBuf::from(extra);
        assert!(
            extra.is_dir(),
            "${var} = {} is not a directory",
            extra.display()
        );
        dirs.push(extra);
    }
    let mut files = vec![];
    for (i, d) in dirs.into_iter().enumerate() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        v.sort();
        if i == 0 {
            let names: Vec<String> = v
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            assert_manifest(&d, &names);
        }
        files.extend(v);
    }
    files
}

/// Worst absolute error of `got` against `want` under tolerance `1e-4·max|want| + 1e-5`.
/// Returns Err with the worst element's index and values when out of tolerance.
pub fn compare(name: &str, got: &[f32], want: &[f64]) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{name}: {} values, reference has {}",
            got.len(),
            want.len()
        ));
    }
    let max_ref = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = 1e-4 * max_ref + 1e-5;
    let mut worst = (0usize, 0.0f64);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = if g.is_finite() {
            (*g as f64 - w).abs()
        } else {
            f64::INFINITY
        };
        if err > worst.1 {
            worst = (i, err);
        }
    }
    if worst.1 > tol {
        return Err(format!(
            "{name}: worst element {} got {} want {} (|err| {:.3e} > tol {:.3e}, max|ref| {:.3e})",
            worst.0, got[worst.0], want[worst.0], worst.1, tol, max_ref
        ));
    }
    Ok(worst.1 / tol)
}

/// A tensor of a safetensors case as f64 values (F64, F32 or I64 files) and its shape.
pub fn f64s(st: &SafeTensors, name: &str) -> Result<(Vec<f64>, Vec<usize>), String> {
    let t = st
        .tensor(name)
        .map_err(|e| format!("tensor `{name}`: {e}"))?;
    let v: Vec<f64> = match t.dtype() {
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        d => return Err(format!("tensor `{name}`: unsupported dtype {d:?}")),
    };
    Ok((v, t.shape().to_vec()))
}

/// A tensor of a safetensors case as f32 values.
pub fn f32s(st: &SafeTensors, name: &str) -> Result<Vec<f32>, String> {
    Ok(f64s(st, name)?.0.into_iter().map(|x| x as f32).collect())
}
