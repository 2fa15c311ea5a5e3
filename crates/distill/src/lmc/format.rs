//! The metadata of an LMC blur-model file (`splatdream.lmc.*` keys of the safetensors header):
//! what was trained, on which prior, and how.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::DistillError;
use crate::state::{Entry, load_module_state, module_state};

use super::net::{BlurNet, BlurNetConfig};

/// The prefix of a blur-model file's safetensors metadata keys (`splatdream.lmc.levels`, …).
pub const META_KEY: &str = "splatdream.lmc";

/// The format tag in [`BlurMeta::format`].
pub const FORMAT: &str = "splatdream-lmc-blur-v1";

/// The tensor-name prefix in a blur-model file.
pub(crate) const PREFIX: &str = "blur";

/// What a blur-model file records besides the weights: string entries of the safetensors
/// metadata, each under `splatdream.lmc.<field>` (e.g. `splatdream.lmc.levels = "4"`).
#[derive(Clone, Debug, PartialEq)]
pub struct BlurMeta {
    /// [`FORMAT`].
    pub format: String,
    /// [`BlurNetConfig::levels`].
    pub levels: usize,
    /// [`BlurNetConfig::base_width`].
    pub base_width: usize,
    /// The diffusion model b̂ψ was trained for (as given to `lmc-train --model`).
    pub model: String,
    /// Training steps done.
    pub steps: u64,
    /// Training image side in pixels (0 when unknown; optional in the file).
    pub resolution: usize,
    /// Training batch size (0 when unknown; optional in the file).
    pub batch: usize,
    /// Mean `L_k` over the last logged steps (optional in the file).
    pub loss: Option<f64>,
}

/// A key of an LMC blur model's safetensors metadata is missing or malformed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("metadata key `{key}` {detail}")]
pub struct MetadataError {
    /// The full key (`splatdream.lmc.levels`, …).
    pub key: String,
    /// What is wrong with it.
    pub detail: String,
}

impl BlurMeta {
    /// Metadata for a network of `config` trained for `model` over `steps` steps.
    pub fn new(config: &BlurNetConfig, model: &str, steps: u64) -> Self {
        Self {
            format: FORMAT.into(),
            levels: config.levels,
            base_width: config.base_width,
            model: model.to_string(),
            steps,
            resolution: 0,
            batch: 0,
            loss: None,
        }
    }

    /// The network shape it records.
    pub fn config(&self) -> BlurNetConfig {
        BlurNetConfig {
            levels: self.levels,
            base_width: self.base_width,
        }
    }

    /// As safetensors metadata entries.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(format!("{META_KEY}.{k}"), v);
        };
        put("format", self.format.clone());
        put("levels", self.levels.to_string());
        put("base_width", self.base_width.to_string());
        put("model", self.model.clone());
        put("steps", self.steps.to_string());
        put("resolution", self.resolution.to_string());
        put("batch", self.batch.to_string());
        if let Some(l) = self.loss {
            put("loss", l.to_string());
        }
        m
    }

    /// From safetensors metadata entries.
    ///
    /// # Errors
    /// [`MetadataError`] naming the missing or unparsable key.
    pub fn from_map(m: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let get = |k: &str| m.get(&format!("{META_KEY}.{k}"));
        let need = |k: &str| {
            get(k).ok_or_else(|| MetadataError {
                key: format!("{META_KEY}.{k}"),
                detail: "is missing".into(),
            })
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, MetadataError> {
            v.trim().parse().map_err(|_| MetadataError {
                key: format!("{META_KEY}.{k}"),
                detail: format!("= {v:?} is not a number"),
            })
        }
        let format = need("format")?.clone();
        if format != FORMAT {
            return Err(MetadataError {
                key: format!("{META_KEY}.format"),
                detail: format!("= {format:?}, expected {FORMAT:?}"),
            });
        }
        Ok(Self {
            format,
            levels: num("levels", need("levels")?)?,
            base_width: num("base_width", need("base_width")?)?,
            model: need("model")?.clone(),
            steps: num("steps", need("steps")?)?,
            resolution: get("resolution").map_or(Ok(0), |v| num("resolution", v))?,
            batch: get("batch").map_or(Ok(0), |v| num("batch", v))?,
            loss: get("loss").map(|v| num("loss", v)).transpose()?,
        })
    }
}

impl BlurNet {
    /// The file's bytes: safetensors with every parameter as F32 under `blur.<path>` and
    /// `meta` (whose `levels`/`base_width` are overwritten with the network's) as
    /// `splatdream.lmc.*` metadata ([`BlurMeta::to_map`]). Reads the weights back from the device.
    ///
    /// # Errors
    /// [`DistillError::Input`] if serialisation fails.
    pub fn to_safetensors(&self, meta: &BlurMeta) -> Result<Vec<u8>, DistillError> {
        let cfg = self.config();
        let meta = BlurMeta {
            format: FORMAT.into(),
            levels: cfg.levels,
            base_width: cfg.base_width,
            ..meta.clone()
        };
        let entries = module_state(PREFIX, self);
        let bytes: Vec<Vec<u8>> = entries
            .iter()
            .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let views = entries
            .iter()
            .zip(&bytes)
            .map(|((n, s, _), b)| {
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| DistillError::Input(format!("tensor `{n}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::tensor::serialize(views, Some(meta.to_map()))
            .map_err(|e| DistillError::Input(format!("serialising the blur model: {e}")))
    }

    /// Write [`BlurNet::to_safetensors`] to `path` atomically (a temporary file in the same
    /// folder, then a rename).
    ///
    /// # Errors
    /// [`DistillError::File`] naming `path`.
    pub fn save(&self, path: &Path, meta: &BlurMeta) -> Result<(), DistillError> {
        let bytes = self.to_safetensors(meta)?;
        let fail = |detail: String| DistillError::File {
            path: path.to_path_buf(),
            detail,
        };
        files::write_bytes(path, &bytes).map_err(|e| fail(format!("{}: {}", e.stage, e.source)))
    }

    /// Read a blur model written by [`BlurNet::save`] onto `device` (plain, frozen use).
    /// Returns the network and its metadata.
    ///
    /// # Errors
    /// [`DistillError::File`] naming `path` when it cannot be read, is not safetensors, lacks
    /// the `splatdream.lmc.*` metadata or has bad values in it, or has a missing, unexpected,
    /// mis-shaped or non-F32 tensor (named).
    pub fn load(path: &Path, device: &Device) -> Result<(Self, BlurMeta), DistillError> {
        let bad = |detail: String| DistillError::File {
            path: path.to_path_buf(),
            detail,
        };
        let data = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&data)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let map = header.metadata().clone().unwrap_or_default();
        if !map.keys().any(|k| k.starts_with(META_KEY)) {
            return Err(bad(format!(
                "no `{META_KEY}.*` metadata: not an LMC blur model (write one with `splatdream lmc-train`)"
            )));
        }
        let meta = BlurMeta::from_map(&map).map_err(|e| bad(e.to_string()))?;
        let cfg = meta.config();
        let net = Self::new(&cfg, device).map_err(|e| bad(format!("metadata: {e}")))?;
        let st = SafeTensors::deserialize(&data).map_err(|e| bad(e.to_string()))?;
        let want: BTreeMap<String, Vec<usize>> = module_state(PREFIX, &net)
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect();
        let mut entries: Vec<Entry> = Vec::with_capacity(want.len());
        for (name, view) in st.tensors() {
            let Some(shape) = want.get(&name) else {
                return Err(bad(format!(
                    "unexpected tensor `{name}` for a network of levels {}, base width {}",
                    cfg.levels, cfg.base_width
                )));
            };
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!(
                    "tensor `{name}` is {:?}, expected F32",
                    view.dtype()
                )));
            }
            if view.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "tensor `{name}` has shape {:?}; levels {}, base width {} (the metadata) need {shape:?}",
                    view.shape(),
                    cfg.levels,
                    cfg.base_width
                )));
            }
            let v: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "tensor `{name}` has a non-finite value at {i}"
                )));
            }
            entries.push((name, shape.clone(), v));
        }
        if let Some((name, shape)) = want
            .iter()
            .find(|(n, _)| !entries.iter().any(|(e, _, _)| e == *n))
        {
            return Err(bad(format!("missing tensor `{name}` (shape {shape:?})")));
        }
        let what = path.display().to_string();
        let net =
            load_module_state(PREFIX, &what, net, &entries).map_err(|e| bad(e.to_string()))?;
        Ok((net, meta))
    }
}
