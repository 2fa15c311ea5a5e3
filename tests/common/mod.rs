//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gpu::{GpuContext, GpuOptions};

mod manifest;
pub mod tiny_sd;
pub use manifest::assert_manifest;
use safetensors::{Dtype, SafeTensors};

/// One GPU context per test process (lavapipe in CI), with garbage-filled fresh buffers.
pub fn gpu() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        gpu::alloc::set_garbage_fill(true);

        GpuContext::new(&GpuOptions::default()).unwrap_or_else(|e| panic!("no GPU device: {e}"))
    })
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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
