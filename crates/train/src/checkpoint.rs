//! Checkpoints of a `fit` or `generate` run: one safetensors file per checkpoint holding every splat
//! parameter group with its Adam moments, the densifier's gradient accumulators and the
//! guidance's learnable state, with the step, seed and config hash in the safetensors header
//! metadata (and a readable JSON sidecar next to it).
//!
//! Tensor names: `params.<group>`, `adam_m.<group>`, `adam_v.<group>` for the six groups of
//! [`GROUPS`]; `densify.grad2d`, `densify.count` when the densifier has accumulated anything;
//! `guidance.<name>` for each entry of `Guidance::state` (generate); `fit.order` (the views left
//! in the current epoch) and `fit.state` (epoch, training seconds, skipped steps) (fit). All
//! f32.
//!
//! The run's randomness is derived from `(seed, step)` (see `generate`), so the step is all
//! the RNG state a resumed run needs. Files are written atomically (temporary file, rename).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::output::{OutputError, write_text};
use optim::adam::Moments;
use optim::densify::Densifier;
use optim::params::{GROUPS, Gaussians, Param, host};

/// A named host tensor: name, shape, values (row-major).
pub type Entry = (String, Vec<usize>, Vec<f32>);

/// Errors saving or loading a checkpoint; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or parsing failed.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] OutputError),
    /// A device read failed.
    #[error(transparent)]
    Device(#[from] gpu::ReadError),
}

/// What a checkpoint records besides tensors (the safetensors header metadata and the JSON
/// sidecar).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Completed optimisation steps; a resumed run's first step has this 0-based index.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// sha256 of the resolved config (TOML) at save time, hex.
    pub config_hash: String,
    /// Splat count.
    pub splats: usize,
    /// The guidance method.
    pub method: String,
    /// SH degree of the parameters.
    pub sh_degree: u32,
}

/// A checkpoint in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Metadata.
    pub meta: Meta,
    /// Every tensor.
    pub tensors: Vec<Entry>,
}

/// sha256 of `text`, hex.
pub fn hash_text(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Download a `[N, C]` tensor (empty tensors without a device read).
fn download(t: &Tensor<2>) -> Result<Vec<f32>, CheckpointError> {
    let [n, c] = t.dims();
    if n * c == 0 {
        return Ok(vec![]);
    }
    host(t).map_err(CheckpointError::Device)
}

/// The parameter and moment entries of `g` (`params.*`, `adam_m.*`, `adam_v.*`).
///
/// # Errors
/// [`CheckpointError::Device`] if a read fails.
pub fn gaussian_entries(g: &Gaussians) -> Result<Vec<Entry>, CheckpointError> {
    let mut out = vec![];
    for (name, p) in GROUPS.iter().zip(&g.groups) {
        let shape = p.value.dims().to_vec();
        out.push((format!("params.{name}"), shape.clone(), download(&p.value)?));
        out.push((
            format!("adam_m.{name}"),
            shape.clone(),
            download(&p.moments.m)?,
        ));
        out.push((format!("adam_v.{name}"), shape, download(&p.moments.v)?));
    }
    Ok(out)
}

/// Everything a training loop checkpoints about its splats: [`gaussian_entries`] plus the
/// densifier's gradient accumulators (`densify.grad2d`, `densify.count`, `[N]`) when it has
/// any.
///
/// # Errors
/// [`CheckpointError::Device`] if a read fails.
pub fn training_entries(
    g: &Gaussians,
    densifier: &Densifier,
) -> Result<Vec<Entry>, CheckpointError> {
    let mut out = gaussian_entries(g)?;
    if let Some((grad2d, count)) = densifier.accumulators() {
        let n = grad2d.dims()[0];
        if n > 0 {
            for (name, t) in [("densify.grad2d", grad2d), ("densify.count", count)] {
                let v = host(&t).map_err(CheckpointError::Device)?;
                out.push((name.to_string(), vec![n], v));
            }
        }
    }
    Ok(out)
}

/// Delete all but the newest `keep` checkpoints (`step-*.safetensors` and their JSON
/// sidecars) in `dir`; `keep = 0` keeps all. Failures to delete are ignored (an old
/// checkpoint left behind loses nothing).
pub fn prune(dir: &Path, keep: usize) {
    if keep == 0 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut steps: Vec<(u64, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let step = step_of(&p)?;
            Some((step, p))
        })
        .collect();
    steps.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
    for (_, p) in steps.into_iter().skip(keep) {
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(p.with_extension("json"));
    }
}

/// The step of a checkpoint file name `step-<n>.safetensors`.
fn step_of(p: &Path) -> Option<u64> {
    p.file_name()?
        .to_str()?
        .strip_prefix("step-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

impl Checkpoint {
    /// Look up an entry by name.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.tensors.iter().find(|e| e.0 == name)
    }

    /// Entries whose names start with `prefix`, with the prefix removed.
    pub fn with_prefix(&self, prefix: &str) -> Vec<Entry> {
        self.tensors
            .iter()
            .filter_map(|(n, s, v)| {
                n.strip_prefix(prefix)
                    .map(|rest| (rest.to_string(), s.clone(), v.clone()))
            })
            .collect()
    }

    /// The splats of this checkpoint on the host, as a PLY holds them (the parameter groups
    /// `params.*` only; no device needed): means `[N, 3]`, quats wxyz `[N, 4]`, log_scales
    /// `[N, 3]`, opacity logits `[N]`, SH `[N, K, 3]` from `sh_dc` `[N, 3]` and `sh_rest`
    /// `[N, 3(K−1)]` at the checkpoint's SH degree.
    ///
    /// # Errors
    /// [`CheckpointError::Read`] (with `path` for the message) when a group is missing,
    /// mis-shaped, or holds a non-finite value.
    pub fn splat_data(&self, path: &Path) -> Result<splat::SplatData, CheckpointError> {
        let bad = |message: String| CheckpointError::Read {
            path: path.to_path_buf(),
            message,
        };
        let k = splat::scene::sh_coeffs(self.meta.sh_degree);
        let widths = [3, 4, 3, 1, 3, 3 * (k - 1)];
        let mut n = None;
        let mut groups: Vec<&[f32]> = vec![];
        for (name, width) in GROUPS.iter().zip(widths) {
            let key = format!("params.{name}");
            let (_, shape, v) = self
                .get(&key)
                .ok_or_else(|| bad(format!("tensor `{key}` is missing")))?;
            let rows = shape.first().copied().unwrap_or(0);
            let cols: usize = shape.iter().skip(1).product();
            if shape.len() != 2 || n.is_some_and(|n| n != rows) || (cols != width && rows > 0) {
                return Err(bad(format!(
                    "tensor `{key}` has shape {shape:?}; expected [{}, {width}] at SH degree {}",
                    n.map_or("N".to_string(), |n: usize| n.to_string()),
                    self.meta.sh_degree
                )));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "tensor `{key}`: splat {}: value {} is not finite",
                    i / width.max(1),
                    v[i]
                )));
            }
            n = Some(rows);
            groups.push(v);
        }
        let n = n.unwrap_or(0);
        let mut sh = Vec::with_capacity(n * 3 * k);
        for i in 0..n {
            sh.extend_from_slice(&groups[4][3 * i..3 * i + 3]);
            sh.extend_from_slice(&groups[5][3 * (k - 1) * i..3 * (k - 1) * (i + 1)]);
        }
        Ok(splat::SplatData {
            means: groups[0].to_vec(),
            quats: groups[1].to_vec(),
            log_scales: groups[2].to_vec(),
            opacity_logits: groups[3].to_vec(),
            sh,
            sh_degree: self.meta.sh_degree,
        })
    }

    /// Rebuild the splat parameters and their moments on `device`.
    ///
    /// # Errors
    /// [`CheckpointError::Read`] (with `path` for the message) when a group is missing or
    /// mis-shaped.
    pub fn gaussians(&self, device: &Device, path: &Path) -> Result<Gaussians, CheckpointError> {
        let bad = |message: String| CheckpointError::Read {
            path: path.to_path_buf(),
            message,
        };
        let tensor = |name: String, n: Option<usize>| -> Result<Tensor<2>, CheckpointError> {
            let (_, shape, v) = self
                .get(&name)
                .ok_or_else(|| bad(format!("tensor `{name}` is missing")))?;
            if shape.len() != 2 || n.is_some_and(|n| n != shape[0]) {
                return Err(bad(format!("tensor `{name}` has shape {shape:?}")));
            }
            Ok(Tensor::from_data(
                TensorData::new(v.clone(), [shape[0], shape[1]]),
                device,
            ))
        };
        let mut n = None;
        let mut groups = vec![];
        for name in GROUPS {
            let value = tensor(format!("params.{name}"), n)?;
            n = Some(value.dims()[0]);
            let m = tensor(format!("adam_m.{name}"), n)?;
            let v = tensor(format!("adam_v.{name}"), n)?;
            groups.push(Param {
                value,
                moments: Moments { m, v },
            });
        }
        let groups: [Param; 6] = groups
            .try_into()
            .map_err(|_| bad("parameter groups".into()))?;
        Ok(Gaussians {
            groups,
            max_sh_degree: self.meta.sh_degree,
        })
    }

    /// Restore the densifier's accumulators saved by [`training_entries`] (a checkpoint
    /// without them leaves the densifier empty).
    pub fn restore_densifier(&self, densifier: &mut Densifier, device: &Device) {
        if let (Some(g), Some(c)) = (self.get("densify.grad2d"), self.get("densify.count")) {
            let t = |e: &Entry| {
                Tensor::<1>::from_data(TensorData::new(e.2.clone(), [e.2.len()]), device)
            };
            densifier.set_accumulators(Some((t(g), t(c))));
        }
    }

    /// Write to `path` (atomically) and a JSON sidecar `path.json`-style next to it
    /// (`<stem>.json`).
    ///
    /// # Errors
    /// [`CheckpointError::Write`] naming the file.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes: Vec<Vec<u8>> = self
            .tensors
            .iter()
            .map(|(_, _, v)| bytemuck_f32(v))
            .collect();
        let views: Vec<(String, TensorView)> = self
            .tensors
            .iter()
            .zip(&bytes)
            .map(|((n, s, _), b)| {
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| OutputError::Write {
                        path: path.to_path_buf(),
                        message: format!("tensor `{n}`: {e}"),
                    })
            })
            .collect::<Result<_, _>>()?;
        let meta_json = serde_json::to_string(&self.meta).map_err(|e| OutputError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let info = HashMap::from([("splatdream".to_string(), meta_json.clone())]);
        let data =
            safetensors::tensor::serialize(views, Some(info)).map_err(|e| OutputError::Write {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        files::write_bytes(path, &data).map_err(OutputError::File)?;
        let pretty = serde_json::to_string_pretty(&self.meta).unwrap_or(meta_json);
        write_text(&path.with_extension("json"), &pretty)?;
        Ok(())
    }

    /// Read a checkpoint file.
    ///
    /// # Errors
    /// [`CheckpointError::Read`] naming the file.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bad = |message: String| CheckpointError::Read {
            path: path.to_path_buf(),
            message,
        };
        let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(&data)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta_json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("splatdream"))
            .ok_or_else(|| bad("no splatdream metadata; not a splatdream checkpoint".into()))?;
        let meta: Meta =
            serde_json::from_str(meta_json).map_err(|e| bad(format!("metadata: {e}")))?;
        let st = SafeTensors::deserialize(&data).map_err(|e| bad(e.to_string()))?;
        let mut tensors: Vec<Entry> = vec![];
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!(
                    "tensor `{name}` is {:?}, not F32",
                    view.dtype()
                )));
            }
            let v: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.push((name, view.shape().to_vec(), v));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { meta, tensors })
    }
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The checkpoint file name for `step`.
pub fn file_name(step: u64) -> String {
    format!("step-{step:07}.safetensors")
}

/// Resolve and read `--resume` ([`resolve`], then [`Checkpoint::load`]) when given: the
/// loops call it before writing anything, so a bad checkpoint changes nothing.
///
/// # Errors
/// [`CheckpointError::Read`] naming the file or folder.
pub fn load_resume(
    resume: Option<&Path>,
) -> Result<Option<(PathBuf, Checkpoint)>, CheckpointError> {
    resume
        .map(|r| {
            let path = resolve(r)?;
            let ck = Checkpoint::load(&path)?;
            Ok((path, ck))
        })
        .transpose()
}

/// Resolve `--resume`: a checkpoint file as is; a run folder (or its `checkpoints/` folder) to
/// its latest checkpoint by step.
///
/// # Errors
/// [`CheckpointError::Read`] when nothing usable is there.
pub fn resolve(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let dir = if path.join("checkpoints").is_dir() {
        path.join("checkpoints")
    } else {
        path.to_path_buf()
    };
    let rd = std::fs::read_dir(&dir).map_err(|e| CheckpointError::Read {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    let mut best: Option<(u64, PathBuf)> = None;
    for e in rd.flatten() {
        let p = e.path();
        if let Some(step) = step_of(&p)
            && best.as_ref().is_none_or(|(b, _)| step > *b)
        {
            best = Some((step, p));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| CheckpointError::Read {
        path: dir,
        message: "no checkpoints (step-*.safetensors) found".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::init::{from_points, sphere_points};

    #[test]
    fn round_trip_keeps_tensors_and_moments() {
        let device = crate::test_device().clone();
        let (p, c) = sphere_points(50, 1.0, None, 1);
        let data = from_points(&p, &c, 0.1, 1.0);
        let mut g = Gaussians::from_data(&data, 1, &device);
        // Non-trivial moments.
        for (k, p) in g.groups.iter_mut().enumerate() {
            p.moments.m = p.value.clone() * (0.5 + k as f64);
            p.moments.v = p.value.clone().square() + 0.25;
        }
        let mut tensors = gaussian_entries(&g).unwrap();
        tensors.push((
            "guidance.net.w".into(),
            vec![2, 3],
            vec![1., 2., 3., 4., 5., 6.],
        ));
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let ck = Checkpoint {
            meta: Meta {
                step: 12,
                seed: 7,
                config_hash: hash_text("x"),
                splats: 50,
                method: "sds".into(),
                sh_degree: 1,
            },
            tensors,
        };
        let dir = std::env::temp_dir().join(format!("splatdream-ck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name(12));
        ck.save(&path).unwrap();
        assert!(path.with_extension("json").is_file());
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back, ck);
        assert_eq!(resolve(&dir).unwrap(), path);
        let g2 = back.gaussians(&device, &path).unwrap();
        assert_eq!(
            gaussian_entries(&g2).unwrap(),
            gaussian_entries(&g).unwrap()
        );
        assert_eq!(back.with_prefix("guidance.")[0].0, "net.w");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The host read of a checkpoint's splats gives back, at every SH degree, the scene the
    /// parameters were made from (`from_data` splits SH into `sh_dc` and `sh_rest`; the
    /// export must join them in the PLY's order), and a mis-shaped group is named.
    #[test]
    fn splat_data_is_the_scene_the_groups_hold() {
        let device = crate::test_device().clone();
        for deg in 0..=3 {
            let k = splat::scene::sh_coeffs(deg);
            let n = 7;
            let f = |len: usize, a: f32| (0..len).map(|i| (i as f32 * a).sin()).collect::<Vec<_>>();
            let data = splat::SplatData {
                means: f(3 * n, 0.3),
                quats: f(4 * n, 0.7).iter().map(|x| x + 1.5).collect(),
                log_scales: f(3 * n, 1.1),
                opacity_logits: f(n, 1.3),
                sh: f(3 * k * n, 0.9),
                sh_degree: deg,
            };
            let g = Gaussians::from_data(&data, deg, &device);
            let ck = Checkpoint {
                meta: Meta {
                    step: 3,
                    seed: 1,
                    config_hash: hash_text("x"),
                    splats: n,
                    method: "sds".into(),
                    sh_degree: deg,
                },
                tensors: gaussian_entries(&g).unwrap(),
            };
            assert_eq!(ck.splat_data(Path::new("c")).unwrap(), data, "degree {deg}");
            assert_eq!(ck.splat_data(Path::new("c")).unwrap(), g.to_data().unwrap());
            let mut broken = ck.clone();
            broken.tensors.retain(|e| e.0 != "params.quats");
            let e = broken
                .splat_data(Path::new("c.safetensors"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("c.safetensors") && e.contains("params.quats"),
                "{e}"
            );
        }
    }
}
