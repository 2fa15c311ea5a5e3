//! Memory-mapped safetensors weights, uploaded tensor by tensor.
//!
//! A [`WeightFile`] maps the file and parses only its JSON header; each tensor is converted from
//! the mapped bytes (f32, f16 or bf16) straight into the upload buffer, so no second copy of the
//! whole file is ever held in RAM. Every lookup checks the name, shape and dtype and fails with
//! an error that names the file and the tensor.
//!
//! Layout conventions: PyTorch `nn.Linear` stores `[out, in]`; burn's `linear` wants `[in, out]`,
//! so [`WeightFile::linear`] transposes on the host while converting. Convolutions keep
//! PyTorch's `[out, in, kh, kw]`, which burn's `conv2d` shares.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor, TensorData};
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::nn::{Conv2d, ConvAlgorithm, GroupNorm, LayerNorm, Linear};

/// The floating-point type weights are uploaded in (and the model computes in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit floats everywhere (the reference precision).
    #[default]
    F32,
    /// 16-bit floats for weights and activations; normalisations and attention softmax still
    /// accumulate in f32. Needs the adapter's `SHADER_F16` feature.
    F16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Self::F16),
            other => Err(format!("unknown dtype `{other}`: expected f32 or f16")),
        }
    }
}

/// Why a compute precision cannot be used on a device.
#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    /// Not a precision name ([`Precision`]'s `FromStr` message).
    #[error("{0}")]
    Unknown(String),
    /// f16 asked for on an adapter without `SHADER_F16` (its name).
    #[error("f16: adapter `{0}` lacks SHADER_F16; use f32")]
    NoF16(String),
}

impl Precision {
    /// `dtype` (`f32`/`fp32`/`float32` or `f16`/`fp16`/`float16`/`half`) checked against
    /// what the device of `ctx` can compute in.
    ///
    /// # Errors
    /// [`PrecisionError`]: an unknown name, or f16 without `SHADER_F16`.
    pub fn for_device(dtype: &str, ctx: &gpu::GpuContext) -> Result<Self, PrecisionError> {
        let p: Self = dtype.parse().map_err(PrecisionError::Unknown)?;
        if p == Self::F16 && !ctx.shader_f16() {
            return Err(PrecisionError::NoF16(ctx.adapter.get_info().name));
        }
        Ok(p)
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        })
    }
}

/// Errors reading weights. Every variant names the file; tensor-level ones name the tensor.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The file could not be opened or mapped.
    #[error("{file}: {source}")]
    Io {
        /// The weight file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The safetensors header is malformed or the file is truncated.
    #[error("{file}: not a valid safetensors file: {detail}")]
    Header {
        /// The weight file.
        file: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{file}: missing tensor `{tensor}`{hint}")]
    Missing {
        /// The weight file.
        file: PathBuf,
        /// The name looked for (the first candidate when several layouts were tried).
        tensor: String,
        /// Extra context (other names tried).
        hint: String,
    },
    /// A tensor has a shape other than the config implies.
    #[error("{file}: tensor `{tensor}` has shape {found:?}, the config implies {expected:?}")]
    Shape {
        /// The weight file.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape stored.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype that is not a float type splatdream reads.
    #[error("{file}: tensor `{tensor}` has dtype {found}, expected F32, F16 or BF16")]
    Dtype {
        /// The weight file.
        file: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype stored.
        found: String,
    },
}

/// Where tensor values come from.
enum Source {
    /// A memory-mapped safetensors file.
    Mapped(Mmap),
    /// Deterministic random values from this seed (see [`WeightFile::random`]).
    Random(u64),
}

/// A safetensors header as [`parse_header`] returns it: tensor name → (dtype, shape, byte
/// range of its data in the whole file). Every range lies inside the file and holds exactly the
/// bytes its dtype and shape imply.
pub type TensorIndex = HashMap<String, (Dtype, Vec<usize>, std::ops::Range<usize>)>;

/// One memory-mapped `.safetensors` file.
pub struct WeightFile {
    path: PathBuf,
    source: Source,
    /// name → (dtype, shape, byte range in the whole file).
    index: TensorIndex,
    device: Device,
    precision: Precision,
    conv: ConvAlgorithm,
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("tensors", &self.index.len())
            .field("precision", &self.precision)
            .finish()
    }
}

impl WeightFile {
    /// Map `path` and parse its header; tensors are uploaded to `device` in `precision`.
    ///
    /// # Errors
    /// [`WeightError::Io`] when the file cannot be opened, [`WeightError::Header`] when the
    /// header is malformed or a tensor's byte range lies outside the file.
    pub fn open(path: &Path, device: &Device, precision: Precision) -> Result<Self, WeightError> {
        let io = |source| WeightError::Io {
            file: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process; the weight files are not
        // modified while splatdream runs (a concurrent writer could change the bytes we read,
        // which would give wrong weights, not memory unsafety beyond what the OS allows).
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let index = parse_header(&mmap, path)?;
        Ok(Self {
            path: path.to_path_buf(),
            source: Source::Mapped(mmap),
            index,
            device: device.clone(),
            precision,
            conv: ConvAlgorithm::Direct,
        })
    }

    /// A source that answers every tensor request with deterministic random values of the
    /// requested shape: weights uniform with standard deviation 1/√fan_in, biases ±0.02·√3
    /// uniform, normalisation scales 1 and shifts 0. Used to instantiate the full-size
    /// architecture from a config alone (benchmarks, tests) when real weights are absent.
    pub fn random(device: &Device, precision: Precision, seed: u64) -> Self {
        Self {
            path: PathBuf::from(format!("<random weights, seed {seed}>")),
            source: Source::Random(seed),
            index: HashMap::new(),
            device: device.clone(),
            precision,
            conv: ConvAlgorithm::Direct,
        }
    }

    /// The same source, building its convolutions with `conv` (default
    /// [`ConvAlgorithm::Direct`]).
    pub fn with_conv(mut self, conv: ConvAlgorithm) -> Self {
        self.conv = conv;
        self
    }

    /// Random values for `name` (see [`WeightFile::random`]).
    fn random_values(seed: u64, name: &str, shape: &[usize]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let is_norm = ["norm", "ln_", "layer_norm"]
            .iter()
            .any(|k| name.contains(k));
        if is_norm && shape.len() == 1 {
            return vec![if name.ends_with(".weight") { 1.0 } else { 0.0 }; n];
        }
        let std = if name.ends_with(".bias") {
            0.02
        } else {
            let fan_in = (n / shape.first().copied().unwrap_or(1).max(1)).max(1);
            1.0 / (fan_in as f64).sqrt()
        };
        let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let amp = (std * 3f64.sqrt()) as f32;
        (0..n as u64)
            .map(|i| {
                // splitmix64 of (name hash, index) → uniform in [−1, 1).
                let mut z = h.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * amp
            })
            .collect()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device tensors are uploaded to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The upload precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        matches!(self.source, Source::Random(_)) || self.index.contains_key(name)
    }

    /// All tensor names (unordered).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The first of `candidates` present in the file.
    ///
    /// # Errors
    /// [`WeightError::Missing`] naming the first candidate and listing the others.
    pub fn resolve<'a>(&self, candidates: &[&'a str]) -> Result<&'a str, WeightError> {
        candidates
            .iter()
            .copied()
            .find(|c| self.contains(c))
            .ok_or_else(|| WeightError::Missing {
                file: self.path.clone(),
                tensor: candidates[0].to_string(),
                hint: if candidates.len() > 1 {
                    format!(" (also tried {})", candidates[1..].join(", "))
                } else {
                    String::new()
                },
            })
    }

    /// The values of `name` as f32 on the host, checked against `shape` (exact dims; with
    /// `one_by_one` a `shape ++ [1, 1]` 1×1-convolution weight is accepted too).
    fn host(&self, name: &str, shape: &[usize], one_by_one: bool) -> Result<Vec<f32>, WeightError> {
        let mmap = match &self.source {
            Source::Random(seed) => return Ok(Self::random_values(*seed, name, shape)),
            Source::Mapped(m) => m,
        };
        tensor_values(mmap, &self.index, &self.path, name, shape, one_by_one)
    }

    /// Upload host values in this file's precision.
    fn upload<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        match self.precision {
            Precision::F32 => Tensor::from_data(TensorData::new(values, shape), &self.device),
            // The dtype must be given at creation: burn converts data to the device's default
            // float type (f32) otherwise.
            Precision::F16 => Tensor::from_data(
                TensorData::new(
                    values.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
                    shape,
                ),
                (&self.device, DType::F16),
            ),
        }
    }

    /// Tensor `name` with exactly `shape`, uploaded.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming this file and the tensor.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, WeightError> {
        let v = self.host(name, &shape, false)?;
        Ok(self.upload(v, shape))
    }

    /// Tensor `name` as f32 host values with exactly `shape` (for weights used on the CPU,
    /// such as the token-embedding table).
    ///
    /// # Errors
    /// As [`WeightFile::tensor`].
    pub fn host_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightError> {
        self.host(name, shape, false)
    }

    /// A PyTorch `nn.Linear` under `prefix` (`{prefix}.weight` `[out, in]`, optional
    /// `{prefix}.bias` `[out]`). A `[out, in, 1, 1]` 1×1-convolution weight is accepted too
    /// (original LDM checkpoints store some projections that way).
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming this file and the tensor.
    pub fn linear(
        &self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear, WeightError> {
        let w = self.host(&format!("{prefix}.weight"), &[d_out, d_in], true)?;
        // [out, in] → [in, out]
        let mut t = vec![0.0f32; w.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = w[o * d_in + i];
            }
        }
        let bias = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), [d_out])?)
        } else {
            None
        };
        Ok(Linear {
            weight: self.upload(t, [d_in, d_out]),
            bias,
        })
    }

    /// A PyTorch `nn.Conv2d` under `prefix` (`weight [out, in, k, k]`, `bias [out]`).
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming this file and the tensor.
    pub fn conv2d(
        &self,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Conv2d, WeightError> {
        Ok(Conv2d {
            weight: self.tensor(&format!("{prefix}.weight"), [c_out, c_in, kernel, kernel])?,
            bias: Some(self.tensor(&format!("{prefix}.bias"), [c_out])?),
            stride,
            padding,
            algorithm: self.conv,
        })
    }

    /// A PyTorch `nn.GroupNorm` under `prefix` (`weight`, `bias` `[channels]`), kept in f32.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming this file and the tensor.
    pub fn group_norm(
        &self,
        prefix: &str,
        groups: usize,
        channels: usize,
        eps: f64,
    ) -> Result<GroupNorm, WeightError> {
        let g = self.host(&format!("{prefix}.weight"), &[channels], false)?;
        let b = self.host(&format!("{prefix}.bias"), &[channels], false)?;
        Ok(GroupNorm {
            groups,
            eps,
            gamma: Tensor::from_data(TensorData::new(g, [channels]), &self.device),
            beta: Tensor::from_data(TensorData::new(b, [channels]), &self.device),
        })
    }

    /// A PyTorch `nn.LayerNorm` under `prefix` (`weight`, `bias` `[dim]`), kept in f32.
    ///
    /// # Errors
    /// Missing, shape or dtype errors naming this file and the tensor.
    pub fn layer_norm(&self, prefix: &str, dim: usize, eps: f64) -> Result<LayerNorm, WeightError> {
        let g = self.host(&format!("{prefix}.weight"), &[dim], false)?;
        let b = self.host(&format!("{prefix}.bias"), &[dim], false)?;
        Ok(LayerNorm {
            eps,
            gamma: Tensor::from_data(TensorData::new(g, [dim]), &self.device),
            beta: Tensor::from_data(TensorData::new(b, [dim]), &self.device),
        })
    }
}

/// Parse and validate the safetensors header of a whole file's `bytes` (8-byte little-endian
/// header length, JSON header, then the data); `path` only names the file in errors.
///
/// # Errors
/// [`WeightError::Header`] when the header length, the JSON, a dtype or shape is malformed, or
/// the tensors' byte ranges do not tile the data exactly (out of the file, overlapping, gaps,
/// a size other than the dtype and shape imply).
pub fn parse_header(bytes: &[u8], path: &Path) -> Result<TensorIndex, WeightError> {
    let header = |detail: String| WeightError::Header {
        file: path.to_path_buf(),
        detail,
    };
    let st = SafeTensors::deserialize(bytes).map_err(|e| header(e.to_string()))?;
    let base = bytes.as_ptr() as usize;
    let mut index = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let start = data.as_ptr() as usize - base;
        index.insert(
            name,
            (
                view.dtype(),
                view.shape().to_vec(),
                start..start + data.len(),
            ),
        );
    }
    Ok(index)
}

/// The values of tensor `name` of `index` (parsed from these `bytes` by [`parse_header`]) as
/// f32, converted from F32, F16 or BF16 (little-endian), checked against `shape`: exact dims,
/// or with `one_by_one` also `shape ++ [1, 1]` (a 1×1-convolution weight). The result has
/// `shape`'s element count. `path` only names the file in errors.
///
/// # Errors
/// [`WeightError::Missing`], [`WeightError::Shape`] or [`WeightError::Dtype`] naming the
/// tensor; [`WeightError::Header`] when its byte range is not inside `bytes` or does not hold
/// exactly the bytes its shape needs.
pub fn tensor_values(
    bytes: &[u8],
    index: &TensorIndex,
    path: &Path,
    name: &str,
    shape: &[usize],
    one_by_one: bool,
) -> Result<Vec<f32>, WeightError> {
    let (dtype, found, range) = index.get(name).ok_or_else(|| WeightError::Missing {
        file: path.to_path_buf(),
        tensor: name.to_string(),
        hint: String::new(),
    })?;
    let ok = found.as_slice() == shape
        || (one_by_one
            && found.len() == shape.len() + 2
            && found[..shape.len()] == *shape
            && found[shape.len()..] == [1, 1]);
    if !ok {
        return Err(WeightError::Shape {
            file: path.to_path_buf(),
            tensor: name.to_string(),
            expected: shape.to_vec(),
            found: found.clone(),
        });
    }
    let bytes = bytes
        .get(range.clone())
        .ok_or_else(|| WeightError::Header {
            file: path.to_path_buf(),
            detail: format!("tensor `{name}`: byte range {range:?} lies outside the file"),
        })?;
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        _ => 0, // refused below
    };
    let numel = found.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if width > 0 && numel.and_then(|n| n.checked_mul(width)) != Some(bytes.len()) {
        return Err(WeightError::Header {
            file: path.to_path_buf(),
            detail: format!(
                "tensor `{name}`: {} bytes do not hold a {dtype:?} tensor of shape {found:?}",
                bytes.len()
            ),
        });
    }
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(WeightError::Dtype {
                file: path.to_path_buf(),
                tensor: name.to_string(),
                found: format!("{other:?}"),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file in memory: an F16 `[2]`, a BF16 `[1, 1, 1, 1]` and an I32 `[1]`.
    fn file() -> Vec<u8> {
        let header = br#"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"c":{"dtype":"BF16","shape":[1,1,1,1],"data_offsets":[4,6]},"b":{"dtype":"I32","shape":[1],"data_offsets":[6,10]}}"#;
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend(header);
        f.extend(f16::from_f32(1.0).to_le_bytes());
        f.extend(f16::from_f32(-2.0).to_le_bytes());
        f.extend(bf16::from_f32(0.5).to_le_bytes());
        f.extend(7i32.to_le_bytes());
        f
    }

    #[test]
    fn header_and_values_from_bytes() {
        let path = Path::new("w.safetensors");
        let f = file();
        let index = parse_header(&f, path).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(
            tensor_values(&f, &index, path, "a", &[2], false).unwrap(),
            [1.0, -2.0]
        );
        assert_eq!(
            tensor_values(&f, &index, path, "c", &[1, 1], true).unwrap(),
            [0.5]
        );
        let e = |name: &str, shape: &[usize], index: &TensorIndex| {
            tensor_values(&f, index, path, name, shape, false)
                .unwrap_err()
                .to_string()
        };
        assert!(e("b", &[1], &index).contains("has dtype I32"));
        assert!(e("a", &[3], &index).contains("has shape [2]"));
        assert!(e("z", &[1], &index).contains("missing tensor `z`"));
        // An index that does not match the bytes is refused, not trusted.
        let mut bad = index.clone();
        bad.get_mut("a").unwrap().2 = f.len() - 2..f.len() + 2;
        assert!(e("a", &[2], &bad).contains("lies outside the file"));
        bad.get_mut("a").unwrap().2 = 0..6;
        assert!(e("a", &[2], &bad).contains("do not hold"));
        // Truncated files and garbage are header errors naming the file.
        for bytes in [&f[..f.len() - 1], &f[..7], b"not safetensors".as_slice()] {
            let e = parse_header(bytes, path).unwrap_err().to_string();
            assert!(
                e.starts_with("w.safetensors: not a valid safetensors file"),
                "{e}"
            );
        }
    }
}
