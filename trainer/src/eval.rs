//! Accuracy of a model, evaluated once for every caller: host pretraining
//! ([`crate::train::evaluate`]), device evaluation, vulnerability analysis
//! ([`crate::tmr`]) and retraining ([`crate::retrain`]).
//!
//! [`accuracy`] uses the weights already installed on the executor (no
//! `Model::sync_weights`, so no weight-update traffic is counted) and reports
//! each batch to a callback, e.g. for a progress bar.
use tch::Kind;

use crate::data::Dataset;
use crate::error::Result;
use crate::exec::Int8Matmul;
use crate::model::Model;

/// Where an evaluation stands after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalProgress {
    /// Examples evaluated so far.
    pub done: usize,
    /// Examples in the data set.
    pub total: usize,
    /// Of `done`, how many were classified correctly.
    pub correct: usize,
}

impl EvalProgress {
    /// Accuracy over the examples evaluated so far.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.done.max(1) as f64
    }
}

/// Accuracy of `model` on `data` with every matmul on `exec`, whose weights
/// must be installed (`Model::sync_weights`, `DeviceMatmul::install_model`).
/// `on_batch` sees the running count after every batch of `batch` examples.
pub fn accuracy(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut dyn Int8Matmul,
    on_batch: impl FnMut(&EvalProgress),
) -> Result<f64> {
    accuracy_of(model, data, batch, Some(exec), on_batch)
}

/// [`accuracy`] on either path: `exec = None` is the fake-quant float path.
pub(crate) fn accuracy_of(
    model: &Model,
    data: &Dataset,
    batch: usize,
    mut exec: Option<&mut dyn Int8Matmul>,
    mut on_batch: impl FnMut(&EvalProgress),
) -> Result<f64> {
    let mut p = EvalProgress { done: 0, total: data.len(), correct: 0 };
    tch::no_grad(|| -> Result<()> {
        for (xs, ys) in data.batches(batch.max(1), false) {
            let e: Option<&mut dyn Int8Matmul> = match &mut exec {
                Some(e) => Some(&mut **e),
                None => None,
            };
            let pred = model.forward_exec(&xs, false, e)?.argmax(-1, false);
            p.correct += pred.eq_tensor(&ys).sum(Kind::Int64).int64_value(&[]) as usize;
            p.done += ys.size()[0] as usize;
            on_batch(&p);
        }
        Ok(())
    })?;
    Ok(p.correct as f64 / data.len().max(1) as f64)
}
