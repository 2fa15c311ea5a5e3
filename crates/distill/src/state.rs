//! Checkpoint state of a guidance's learnable burn module (ℳψ, b̂ψ, LoRA, embeddings): every
//! float parameter flattened to host f32 under its module path, and the way back.
//!
//! BatchNorm's running-statistics buffers (`running_mean`, `running_var`) are skipped: the
//! networks here always normalise with batch statistics.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use crate::DistillError;

/// One saved tensor: name, shape, row-major f32 values.
pub type Entry = (String, Vec<usize>, Vec<f32>);

/// Whether a parameter's field name is a BatchNorm running statistic.
pub(crate) fn is_running_stat(field: Option<&String>) -> bool {
    field.is_some_and(|f| f == "running_mean" || f == "running_var")
}

/// Every float parameter of `module` as `<prefix>.<module path>` (e.g. `ulite.enc.0.pw.weight`).
/// Reads each parameter back from the device.
pub fn module_state<M: Module>(prefix: &str, module: &M) -> Vec<Entry> {
    let mut v = StateReader {
        prefix: prefix.to_string(),
        path: vec![],
        out: vec![],
    };
    module.visit(&mut v);
    v.out
}

/// `module` with its parameters replaced by the entries of [`module_state`]'s form. Every
/// parameter must be present with its shape and no unknown entry may appear; parameter ids
/// (so optimiser state) and gradient requirements are kept.
///
/// # Errors
/// [`DistillError::Input`] naming the unknown, missing or mis-shaped entry (`what` names the
/// network in the message).
pub fn load_module_state<M: Module>(
    prefix: &str,
    what: &str,
    module: M,
    state: &[Entry],
) -> Result<M, DistillError> {
    let have: HashMap<String, Vec<usize>> = module_state(prefix, &module)
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect();
    let mut given = HashMap::new();
    for (name, shape, values) in state {
        let Some(want) = have.get(name) else {
            return Err(DistillError::Input(format!(
                "{what} state: unknown entry `{name}`"
            )));
        };
        if want != shape || shape.iter().product::<usize>() != values.len() {
            return Err(DistillError::Input(format!(
                "{what} state: `{name}` has shape {shape:?} ({} values), the network expects {want:?}",
                values.len()
            )));
        }
        given.insert(name.clone(), (shape.clone(), values.clone()));
    }
    if let Some(missing) = have.keys().find(|n| !given.contains_key(*n)) {
        return Err(DistillError::Input(format!(
            "{what} state: missing entry `{missing}`"
        )));
    }
    let mut w = StateWriter {
        prefix: prefix.to_string(),
        path: vec![],
        values: given,
    };
    Ok(module.map(&mut w))
}

/// `<prefix>.` + the module path of the current parameter.
fn join(prefix: &str, path: &[String]) -> String {
    let mut s = String::from(prefix);
    for p in path {
        s.push('.');
        s.push_str(p);
    }
    s
}

/// Collects every float parameter with its module path.
struct StateReader {
    prefix: String,
    path: Vec<String>,
    out: Vec<Entry>,
}

impl ModuleVisitor for StateReader {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if is_running_stat(self.path.last()) {
            return;
        }
        let t = param.val();
        let shape = t.dims().to_vec();
        let values: Vec<f32> = t
            .inner()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 parameter data");
        self.out
            .push((join(&self.prefix, &self.path), shape, values));
    }
}

/// Replaces every float parameter by the entry of the same path (validated beforehand).
struct StateWriter {
    prefix: String,
    path: Vec<String>,
    values: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ModuleMapper for StateWriter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((shape, values)) = self.values.remove(&join(&self.prefix, &self.path)) else {
            return param;
        };
        param.map(|old| {
            let rg = old.is_require_grad();
            let shape: [usize; D] = shape.try_into().expect("validated rank");
            Tensor::from_data(TensorData::new(values, shape), &old.device()).set_require_grad(rg)
        })
    }
}
