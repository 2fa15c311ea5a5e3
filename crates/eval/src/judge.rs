//! The toy world's judge: a small CNN naming the category and the colour of a 64×64 image,
//! trained by `tools/toyworld/train_judge.py` (PyTorch) on toy-world instances the prior never
//! saw; this is its forward pass on burn, checked against PyTorch's logits in
//! `crates/eval/tests/judge_reference.rs`.
//!
//! Architecture (tensor names of the safetensors file in brackets):
//! `x` `[B, 3, 64, 64]` RGB in [0, 1] over white → `(x − 0.5)/0.25` → five 3×3 convolutions
//! with ReLU (`conv0` stride 1, `conv1`…`conv4` stride 2, padding 1; widths 32, 48, 64, 96, 128)
//! → mean over H, W → two linear heads (`category` `[16, 128]`, `colour` `[6, 128]`) giving
//! logits. The file's metadata lists the category and colour names in head order.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData, activation::relu};
use sd::nn::{Conv2d, Linear};
use sd::weights::{Precision, WeightFile};

use crate::EvalError;

/// Widths of the judge's feature maps, input first.
pub const WIDTHS: [usize; 6] = [3, 32, 48, 64, 96, 128];
/// Input side in pixels.
pub const INPUT_SIZE: usize = 64;

/// The loaded judge.
#[derive(Clone, Debug)]
pub struct Judge {
    convs: Vec<Conv2d>,
    category: Linear,
    colour: Linear,
    /// Category names in the order of the category logits.
    pub categories: Vec<String>,
    /// Colour names in the order of the colour logits.
    pub colours: Vec<String>,
    /// The weight file.
    pub path: PathBuf,
    device: Device,
}

/// Labels of a batch of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Arg-max category per image.
    pub category: Vec<usize>,
    /// Arg-max colour per image.
    pub colour: Vec<usize>,
}

fn meta_list(
    path: &Path,
    meta: &std::collections::HashMap<String, String>,
    key: &str,
) -> Result<Vec<String>, EvalError> {
    let raw = meta
        .get(key)
        .ok_or_else(|| EvalError::format(path, format!("metadata.{key}"), "missing"))?;
    serde_json::from_str(raw).map_err(|e| {
        EvalError::format(
            path,
            format!("metadata.{key}"),
            format!("not a JSON list of names: {e}"),
        )
    })
}

impl Judge {
    /// Load the judge from its safetensors file onto `device` (plain, non-autodiff).
    ///
    /// # Errors
    /// [`EvalError::Io`] when the file cannot be read; [`EvalError::Format`] when its header or
    /// metadata is corrupt; [`EvalError::Judge`] naming the tensor when one is missing or of
    /// the wrong shape.
    pub fn load(path: &Path, device: &Device) -> Result<Self, EvalError> {
        let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
            EvalError::format(path, "header", format!("not a safetensors file: {e}"))
        })?;
        let meta = header.metadata().clone().unwrap_or_default();
        let categories = meta_list(path, &meta, "categories")?;
        let colours = meta_list(path, &meta, "colours")?;
        let w =
            WeightFile::open(path, device, Precision::F32).map_err(|source| EvalError::Judge {
                path: path.to_path_buf(),
                source,
            })?;
        let je = |source| EvalError::Judge {
            path: path.to_path_buf(),
            source,
        };
        let mut convs = vec![];
        for i in 0..5 {
            let stride = if i == 0 { 1 } else { 2 };
            convs.push(
                w.conv2d(&format!("conv{i}"), WIDTHS[i], WIDTHS[i + 1], 3, stride, 1)
                    .map_err(je)?,
            );
        }
        let category = w
            .linear("category", WIDTHS[5], categories.len(), true)
            .map_err(je)?;
        let colour = w
            .linear("colour", WIDTHS[5], colours.len(), true)
            .map_err(je)?;
        Ok(Self {
            convs,
            category,
            colour,
            categories,
            colours,
            path: path.to_path_buf(),
            device: device.clone(),
        })
    }

    /// Category and colour logits of `x` `[B, 3, 64, 64]` (RGB in [0, 1] over white):
    /// `([B, categories], [B, colours])`.
    pub fn logits(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut h = (x - 0.5) * 4.0;
        for c in &self.convs {
            h = relu(c.forward(h));
        }
        let [b, ch, _, _] = h.dims();
        let pooled = h.mean_dim(3).mean_dim(2).reshape([b, ch]);
        (
            self.category.forward(pooled.clone()),
            self.colour.forward(pooled),
        )
    }

    /// Labels of host images: each `[64·64·3]` RGB over white, row-major (HWC).
    ///
    /// # Errors
    /// [`EvalError::Readback`] when the device read fails; [`EvalError::Format`] for an image
    /// of the wrong size.
    pub fn classify(&self, images: &[Vec<f32>]) -> Result<Verdict, EvalError> {
        let n = INPUT_SIZE * INPUT_SIZE * 3;
        if let Some(bad) = images.iter().position(|im| im.len() != n) {
            return Err(EvalError::format(
                &self.path,
                format!("input image {bad}"),
                format!(
                    "has {} values; the judge takes 64×64 RGB ({n})",
                    images[bad].len()
                ),
            ));
        }
        let flat: Vec<f32> = images.iter().flatten().copied().collect();
        let x: Tensor<4> = Tensor::from_data(
            TensorData::new(flat, [images.len(), INPUT_SIZE, INPUT_SIZE, 3]),
            &self.device,
        )
        .permute([0, 3, 1, 2]);
        let (a, b) = self.logits(x);
        Ok(Verdict {
            category: argmax_rows(&a)?,
            colour: argmax_rows(&b)?,
        })
    }
}

fn argmax_rows(t: &Tensor<2>) -> Result<Vec<usize>, EvalError> {
    let [_, k] = t.dims();
    let v = splat::scene::host(t).map_err(EvalError::Readback)?;
    Ok(v.chunks_exact(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, x)| {
                    if *x > best.1 { (i, *x) } else { best }
                })
                .0
        })
        .collect())
}
