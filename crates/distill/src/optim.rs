//! Adam and AdamW for the networks some guidances train online (VDM's ℳψ, VSD's LoRA and
//! camera embedding, LODS's y_α or LoRA ψ), with the moments keyed by module path so that
//! they go into checkpoints and a resumed run continues the same optimisation.
//!
//! burn's `ModuleOptimizer` keys its per-parameter state by `ParamId`, which a resumed process
//! draws afresh for every parameter, so its record cannot be matched to the restored network.
//! [`PathAdam`] runs burn's own [`Adam`]/[`AdamW`] update rule ([`Optimizer::step`], so the
//! arithmetic is burn's, which follows PyTorch's `Adam`/`AdamW`) but keeps each parameter's
//! [`AdaptiveMomentumState`] under the parameter's module path.
//!
//! Checkpoint entries ([`PathAdam::state`]), for a parameter at module path `p`:
//! `<prefix>.<p>.moment_1` and `<prefix>.<p>.moment_2` (the parameter's shape; Adam's m and v,
//! not bias-corrected) and `<prefix>.<p>.time` (`[1]`, the number of updates t, as f32; exact
//! below 2²⁴).

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{
    Adam, AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState,
    GradientsParams, Optimizer,
};
use burn::tensor::{Device, Tensor, TensorData};

use crate::DistillError;
use crate::state::Entry;

/// The update rule.
#[derive(Clone)]
enum Rule {
    /// PyTorch `Adam` (no weight decay here).
    Adam(Adam),
    /// PyTorch `AdamW` (decoupled weight decay).
    AdamW(AdamW),
}

/// One parameter's moments, flattened (the parameter's shape is kept beside them).
#[derive(Clone)]
struct Moments {
    /// Updates done (Adam's t).
    time: usize,
    /// Shape of the parameter.
    shape: Vec<usize>,
    /// First moment m, flattened.
    moment_1: Tensor<1>,
    /// Second moment v, flattened.
    moment_2: Tensor<1>,
}

/// Adam(W) over a burn module with checkpointable moments (module docs).
#[derive(Clone)]
pub struct PathAdam {
    rule: Rule,
    prefix: &'static str,
    moments: BTreeMap<String, Moments>,
}

impl std::fmt::Debug for PathAdam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathAdam")
            .field("prefix", &self.prefix)
            .field("parameters", &self.moments.len())
            .finish()
    }
}

impl PathAdam {
    /// PyTorch `Adam(betas, eps)` without weight decay; checkpoint entries start with
    /// `<prefix>.`.
    pub fn adam(prefix: &'static str, betas: [f64; 2], eps: f64) -> Self {
        let rule = AdamConfig::new()
            .with_beta_1(betas[0] as f32)
            .with_beta_2(betas[1] as f32)
            .with_epsilon(eps as f32)
            .build();
        Self {
            rule: Rule::Adam(rule),
            prefix,
            moments: BTreeMap::new(),
        }
    }

    /// PyTorch `AdamW(betas, eps, weight_decay)` (`weight_decay = 0` is plain Adam);
    /// checkpoint entries start with `<prefix>.`.
    pub fn adamw(prefix: &'static str, betas: [f64; 2], eps: f64, weight_decay: f64) -> Self {
        let rule = AdamWConfig::new()
            .with_beta_1(betas[0] as f32)
            .with_beta_2(betas[1] as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(weight_decay as f32)
            .build();
        Self {
            rule: Rule::AdamW(rule),
            prefix,
            moments: BTreeMap::new(),
        }
    }

    /// The prefix of this optimiser's checkpoint entries.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// Split a guidance's checkpoint entries into this optimiser's (`<prefix>.…`, first) and
    /// the rest (the network's).
    pub fn split_state(&self, state: &[Entry]) -> (Vec<Entry>, Vec<Entry>) {
        let head = format!("{}.", self.prefix);
        state.iter().cloned().partition(|e| e.0.starts_with(&head))
    }

    /// One update of every float parameter of `module` that has a gradient in `grads`, at
    /// learning rate `lr`; parameters without one (frozen, BatchNorm statistics) are left as
    /// they are. Gradient requirements and parameter ids are kept.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        let mut mapper = StepMapper {
            rule: &self.rule,
            lr,
            grads: &mut grads,
            moments: &mut self.moments,
            path: vec![],
        };
        module.map(&mut mapper)
    }

    /// The moments as checkpoint entries (module docs), sorted by name; empty before the first
    /// update unless state was loaded. Reads the moments back from the device.
    pub fn state(&self) -> Vec<Entry> {
        let host = |t: &Tensor<1>| -> Vec<f32> {
            t.clone()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default()
        };
        let mut out = vec![];
        for (path, m) in &self.moments {
            let name = |field: &str| format!("{}.{path}.{field}", self.prefix);
            out.push((name("moment_1"), m.shape.clone(), host(&m.moment_1)));
            out.push((name("moment_2"), m.shape.clone(), host(&m.moment_2)));
            out.push((name("time"), vec![1], vec![m.time as f32]));
        }
        out
    }

    /// Replace the moments by [`Self::state`]'s entries (those named `<prefix>.…`; pass only
    /// those). `params` are the network's own checkpoint entries (`<module prefix>.<path>`,
    /// as [`crate::state::module_state`] writes them, already checked against the network or
    /// checked when it is created): every moment must belong to one of them and have its
    /// shape. Moments are uploaded to `device` (its plain, non-autodiff side).
    ///
    /// # Errors
    /// [`DistillError::Input`] naming the entry: an unknown field or parameter, a shape that
    /// differs from the parameter's, a missing `moment_1`/`moment_2`/`time`, or a time that is
    /// not a positive whole number. The moments are then left as they were.
    pub fn load_state(
        &mut self,
        entries: &[Entry],
        module_prefix: &str,
        params: &[Entry],
        device: &Device,
    ) -> Result<(), DistillError> {
        let bad = |name: &str, why: String| {
            DistillError::Input(format!("{} optimiser state `{name}`: {why}", self.prefix))
        };
        let param_shapes: BTreeMap<&str, &Vec<usize>> = params
            .iter()
            .filter_map(|(n, s, _)| {
                n.strip_prefix(module_prefix)
                    .and_then(|p| p.strip_prefix('.'))
                    .map(|p| (p, s))
            })
            .collect();
        type Parts<'a> = (Option<&'a Entry>, Option<&'a Entry>, Option<&'a Entry>);
        let mut parts: BTreeMap<&str, Parts<'_>> = BTreeMap::new();
        for e in entries {
            let name = e.0.as_str();
            let rest = name
                .strip_prefix(self.prefix)
                .and_then(|r| r.strip_prefix('.'))
                .ok_or_else(|| bad(name, format!("not an entry of `{}`", self.prefix)))?;
            let (path, field) = rest
                .rsplit_once('.')
                .ok_or_else(|| bad(name, "no parameter path".into()))?;
            let Some(shape) = param_shapes.get(path) else {
                return Err(bad(
                    name,
                    format!("the network has no parameter `{module_prefix}.{path}`"),
                ));
            };
            let slot = parts.entry(path).or_default();
            let (want, slot) = match field {
                "moment_1" => (shape.as_slice(), &mut slot.0),
                "moment_2" => (shape.as_slice(), &mut slot.1),
                "time" => (&[1usize][..], &mut slot.2),
                other => return Err(bad(name, format!("unknown field `{other}`"))),
            };
            if e.1 != want || e.2.len() != want.iter().product::<usize>() {
                return Err(bad(
                    name,
                    format!(
                        "shape {:?} with {} values, the parameter needs {want:?}",
                        e.1,
                        e.2.len()
                    ),
                ));
            }
            *slot = Some(e);
        }
        let device = device.clone().inner();
        let mut moments = BTreeMap::new();
        for (path, (m1, m2, t)) in parts {
            let missing =
                |field: &str| bad(&format!("{}.{path}.{field}", self.prefix), "missing".into());
            let m1 = m1.ok_or_else(|| missing("moment_1"))?;
            let m2 = m2.ok_or_else(|| missing("moment_2"))?;
            let t = t.ok_or_else(|| missing("time"))?;
            let time = t.2[0];
            if !(time >= 1.0 && time.fract() == 0.0 && time < 16_777_216.0) {
                return Err(bad(&t.0, format!("{time} is not a positive whole number")));
            }
            let upload = |v: &Vec<f32>| {
                Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device)
            };
            moments.insert(
                path.to_string(),
                Moments {
                    time: time as usize,
                    shape: m1.1.clone(),
                    moment_1: upload(&m1.2),
                    moment_2: upload(&m2.2),
                },
            );
        }
        self.moments = moments;
        Ok(())
    }
}

/// Applies the rule to each parameter with a gradient, tracking the module path.
struct StepMapper<'a> {
    rule: &'a Rule,
    lr: f64,
    grads: &'a mut GradientsParams,
    moments: &'a mut BTreeMap<String, Moments>,
    path: Vec<String>,
}

impl ModuleMapper for StepMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let key = self.path.join(".");
        let dims = tensor.dims();
        let require_grad = tensor.is_require_grad();
        // The rule works on plain (non-autodiff) tensors, as the gradients are.
        let value = tensor.inner();
        let device = value.device();
        // Moments whose size does not fit (impossible after `load_state`'s checks) restart.
        let state = self
            .moments
            .remove(&key)
            .filter(|m| m.shape.as_slice() == dims.as_slice())
            .map(|m| {
                AdaptiveMomentumState::new(
                    m.time,
                    m.moment_1.to_device(&device).reshape(dims),
                    m.moment_2.to_device(&device).reshape(dims),
                )
            });
        let (updated, state) = match self.rule {
            Rule::Adam(rule) => {
                let (t, s) = rule.step(self.lr, value, grad, state.map(AdamState::new));
                (t, s.map(|s| s.momentum))
            }
            Rule::AdamW(rule) => {
                let (t, s) = rule.step(self.lr, value, grad, state.map(AdamWState::new));
                (t, s.map(|s| s.momentum))
            }
        };
        if let Some(s) = state {
            let n = dims.iter().product::<usize>();
            self.moments.insert(
                key,
                Moments {
                    time: s.time,
                    shape: dims.to_vec(),
                    moment_1: s.moment_1.reshape([n]),
                    moment_2: s.moment_2.reshape([n]),
                },
            );
        }
        let mut updated = Tensor::from_inner(updated);
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
