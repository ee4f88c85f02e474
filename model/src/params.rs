//! A model's parameters as one flat vector, the form the swarm model's outer loop works on: a peer's
//! update is its flat parameters minus those of the swarm version it started from, and a new
//! version is written back into a model with [`load_flat`].
//!
//! The order is burn's visiting order (the order checkpoints number parameters by position), which
//! depends only on the model config, so every party that builds the same config agrees on it.

use std::collections::VecDeque;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use crate::{Model, ModelError};

/// Every parameter of `model`, flattened and concatenated in visiting order. Reads each tensor back
/// with `into_data_async`, so it never blocks a browser worker.
pub async fn flatten(model: &Model) -> Result<Vec<f32>, ModelError> {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().reshape([-1]));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    let mut flat = Vec::with_capacity(parameter_count(model));
    for tensor in collect.0 {
        tabswarm_kernels::work::note_readback();
        let data = tensor.into_data_async().await.map_err(|e| ModelError::Readback(format!("{e:?}")))?;
        flat.extend(data.iter::<f32>());
    }
    Ok(flat)
}

/// How many scalars [`flatten`] returns for `model`.
pub fn parameter_count(model: &Model) -> usize {
    model.num_params()
}

/// `model` with its parameters replaced by `flat` (as [`flatten`] lays them out), on the device each
/// parameter was on. Parameter ids and whether each takes gradients are kept, so an optimiser's
/// state keyed by those ids stays attached (DiLoCo keeps the inner optimiser across outer steps).
/// A vector of any other length is refused, naming both lengths, and nothing is changed.
pub fn load_flat(model: Model, flat: &[f32]) -> Result<Model, ModelError> {
    let expected = parameter_count(&model);
    if flat.len() != expected {
        return Err(ModelError::InvalidBatch(format!(
            "a flat parameter vector of {} values does not fit a model of {expected} parameters",
            flat.len()
        )));
    }
    struct Fill<'a> {
        rest: &'a [f32],
        chunks: VecDeque<usize>,
    }
    impl ModuleMapper for Fill<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let len = self.chunks.pop_front().expect("one length per parameter");
            let (values, rest) = self.rest.split_at(len);
            self.rest = rest;
            param.map(|tensor| {
                let dims = tensor.dims();
                let require_grad = tensor.is_require_grad();
                let device = tensor.device();
                tabswarm_kernels::work::note_upload();
                Tensor::<1>::from_data(TensorData::new(values.to_vec(), [len]), &device)
                    .reshape(dims)
                    .set_require_grad(require_grad)
            })
        }
    }
    struct Lengths(VecDeque<usize>);
    impl ModuleVisitor for Lengths {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push_back(param.lazy_shape().num_elements());
        }
    }
    let mut lengths = Lengths(VecDeque::new());
    model.visit(&mut lengths);
    Ok(model.map(&mut Fill { rest: flat, chunks: lengths.0 }))
}
