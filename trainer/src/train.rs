//! Quantization-aware pretraining on the host and evaluation on the int8 path.
//!
//! [`pretrain`] trains a model you built; [`pretrain_to_checkpoint`] is the
//! whole job (load the data set, seed, build, pretrain, save a checkpoint),
//! as `faultloop pretrain` and the `pretrain` example run it.
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::checkpoint;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::eval;
use crate::exec::{HostMatmul, Int8Matmul};
use crate::model::{Model, ModelSpec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Sgd { momentum: f64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    /// Cosine decay of the learning rate over the epochs (per epoch, to 0 at the end).
    pub cosine: bool,
    /// Seeds libtorch (`tch::manual_seed`) before shuffling; seed it yourself
    /// before building the model for a reproducible initialization.
    pub seed: i64,
    /// Batch size of evaluation.
    pub eval_batch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 8,
            batch_size: 128,
            lr: 2e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            cosine: true,
            seed: 1,
            eval_batch: 1000,
        }
    }
}

impl TrainConfig {
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if !self.cosine || self.epochs == 0 {
            return self.lr;
        }
        // Epoch e trains at the mean of the cosine over [e, e+1)/epochs, never 0.
        let t = (epoch as f64 + 0.5) / self.epochs as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }

    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.eval_batch == 0 || !self.lr.is_finite() || self.lr <= 0.0 {
            return Err(Error::Config(format!("{self:?}: batch sizes and lr must be > 0")));
        }
        Ok(())
    }
}

pub fn build_optimizer(vs: &nn::VarStore, cfg: &TrainConfig) -> Result<nn::Optimizer> {
    Ok(match cfg.optimizer {
        OptimizerKind::Adam => {
            nn::Adam { wd: cfg.weight_decay, ..Default::default() }.build(vs, cfg.lr)?
        }
        OptimizerKind::Sgd { momentum } => {
            nn::Sgd { momentum, wd: cfg.weight_decay, ..Default::default() }.build(vs, cfg.lr)?
        }
    })
}

/// Loss and accuracy over one epoch of training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    pub loss: f64,
    pub accuracy: f64,
    pub examples: usize,
}

/// One epoch of minibatch training (shuffled). `exec = None`: the
/// quantization-aware float path; `Some(e)`: forward on `e`, straight-through
/// backward, weights re-installed on `e` after every step.
pub fn train_epoch(
    model: &Model,
    opt: &mut nn::Optimizer,
    data: &Dataset,
    batch_size: usize,
    mut exec: Option<&mut dyn Int8Matmul>,
) -> Result<TrainStats> {
    let (mut loss_sum, mut correct, mut seen) = (0f64, 0i64, 0usize);
    if let Some(e) = exec.as_deref_mut() {
        model.sync_weights(e)?;
    }
    for (xs, ys) in data.batches(batch_size, true) {
        let e: Option<&mut dyn Int8Matmul> = match &mut exec {
            Some(e) => Some(&mut **e),
            None => None,
        };
        let logits = model.forward_exec(&xs, true, e)?;
        let loss = logits.cross_entropy_for_logits(&ys);
        opt.backward_step(&loss);
        if let Some(e) = exec.as_deref_mut() {
            model.sync_weights(e)?;
        }
        let b = ys.size()[0];
        loss_sum += loss.double_value(&[]) * b as f64;
        correct +=
            logits.detach().argmax(-1, false).eq_tensor(&ys).sum(Kind::Int64).int64_value(&[]);
        seen += b as usize;
    }
    Ok(TrainStats {
        loss: loss_sum / seen.max(1) as f64,
        accuracy: correct as f64 / seen.max(1) as f64,
        examples: seen,
    })
}

/// Predicted classes for all of `data` in order. `exec = None` is the
/// fake-quant float path; `Some(e)` runs every matmul as int8 on `e` (weights
/// installed first).
pub fn predict(
    model: &Model,
    data: &Dataset,
    batch_size: usize,
    mut exec: Option<&mut dyn Int8Matmul>,
) -> Result<Tensor> {
    if let Some(e) = exec.as_deref_mut() {
        model.sync_weights(e)?;
    }
    let mut out = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for (xs, _) in data.batches(batch_size, false) {
            let e: Option<&mut dyn Int8Matmul> = match &mut exec {
                Some(e) => Some(&mut **e),
                None => None,
            };
            out.push(model.forward_exec(&xs, false, e)?.argmax(-1, false));
        }
        Ok(())
    })?;
    Ok(if out.is_empty() {
        Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu))
    } else {
        Tensor::cat(&out, 0)
    })
}

/// Accuracy on `data`, see [`predict`] for `exec` (its weights are
/// installed first; [`eval::accuracy`] is the same without that).
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    batch_size: usize,
    mut exec: Option<&mut dyn Int8Matmul>,
) -> Result<f64> {
    if let Some(e) = exec.as_deref_mut() {
        model.sync_weights(e)?;
    }
    eval::accuracy_of(model, data, batch_size, exec, |_| {})
}

/// One epoch of host pretraining (the hardware-in-the-loop counterpart,
/// with device traffic, is [`crate::retrain::RetrainEpoch`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainEpoch {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    /// Accuracy of the training minibatches on the fake-quant float path.
    pub train_accuracy: f64,
    /// Test accuracy on the int8 integer path (the evaluation executor).
    pub test_accuracy_int8: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

/// Quantization-aware pretraining on the host: `cfg.epochs` epochs of the
/// fake-quant float path, each followed by an int8 evaluation of `test` on
/// `eval_exec` (e.g. [`crate::exec::HostMatmul`]). `on_epoch` sees each
/// epoch's stats as they come.
pub fn pretrain(
    model: &Model,
    vs: &nn::VarStore,
    train: &Dataset,
    test: &Dataset,
    cfg: &TrainConfig,
    eval_exec: &mut dyn Int8Matmul,
    mut on_epoch: impl FnMut(&PretrainEpoch),
) -> Result<Vec<PretrainEpoch>> {
    cfg.validate()?;
    tch::manual_seed(cfg.seed);
    let mut opt = build_optimizer(vs, cfg)?;
    model.set_observe(true);
    let mut stats = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        let lr = cfg.lr_at(epoch);
        opt.set_lr(lr);
        let t0 = Instant::now();
        let tr = train_epoch(model, &mut opt, train, cfg.batch_size, None)?;
        let t1 = Instant::now();
        let acc = evaluate(model, test, cfg.eval_batch, Some(eval_exec))?;
        let s = PretrainEpoch {
            epoch: epoch + 1,
            lr,
            train_loss: tr.loss,
            train_accuracy: tr.accuracy,
            test_accuracy_int8: acc,
            train_seconds: (t1 - t0).as_secs_f64(),
            eval_seconds: t1.elapsed().as_secs_f64(),
        };
        log::info!("{s:?}");
        on_epoch(&s);
        stats.push(s);
    }
    Ok(stats)
}

/// A model pretrained by [`pretrain_from_dir`] or [`pretrain_to_checkpoint`].
pub struct Pretrained {
    pub vs: nn::VarStore,
    pub model: Model,
    pub config: TrainConfig,
    pub data_dir: PathBuf,
    pub history: Vec<PretrainEpoch>,
    pub train_samples: usize,
    pub test_samples: usize,
    /// int8 test accuracy after the last epoch (0 without epochs).
    pub accuracy: f64,
    /// Wall seconds from the start of training to the end of the job.
    pub seconds: f64,
}

impl std::fmt::Debug for Pretrained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pretrained")
            .field("config", &self.config)
            .field("data_dir", &self.data_dir)
            .field("accuracy", &self.accuracy)
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

impl Pretrained {
    /// Save as a checkpoint directory; its `info` records the configuration,
    /// the training examples, the data directory and the int8 test accuracy.
    pub fn save(&self, out: &Path) -> Result<()> {
        let info = serde_json::json!({
            "config": self.config, "train_examples": self.train_samples,
            "data_dir": self.data_dir, "test_accuracy_int8": self.accuracy,
        });
        checkpoint::save(out, &self.vs, &self.model, info)
    }
}

/// Pretrain a `spec` model on the MNIST-format data in `data_dir` (the first
/// `limit` training examples, or all; the whole test split evaluated on the
/// host's int8 path after each epoch), seeded with `cfg.seed` before the
/// model is built so the run is reproducible.
pub fn pretrain_from_dir(
    data_dir: &Path,
    spec: &ModelSpec,
    cfg: &TrainConfig,
    limit: Option<usize>,
    on_epoch: impl FnMut(&PretrainEpoch),
) -> Result<Pretrained> {
    let mut train_set = Dataset::load(data_dir, Split::Train)?;
    if let Some(n) = limit {
        train_set = train_set.take(n);
    }
    let test_set = Dataset::load(data_dir, Split::Test)?;
    tch::manual_seed(cfg.seed);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), spec)?;
    let mut host = HostMatmul::new();
    let t0 = Instant::now();
    let history = pretrain(&model, &vs, &train_set, &test_set, cfg, &mut host, on_epoch)?;
    Ok(Pretrained {
        accuracy: history.last().map_or(0.0, |s| s.test_accuracy_int8),
        vs,
        model,
        config: cfg.clone(),
        data_dir: data_dir.to_path_buf(),
        history,
        train_samples: train_set.len(),
        test_samples: test_set.len(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// [`pretrain_from_dir`], then [`Pretrained::save`] to `out`.
pub fn pretrain_to_checkpoint(
    data_dir: &Path,
    spec: &ModelSpec,
    cfg: &TrainConfig,
    limit: Option<usize>,
    out: &Path,
    on_epoch: impl FnMut(&PretrainEpoch),
) -> Result<Pretrained> {
    let mut p = pretrain_from_dir(data_dir, spec, cfg, limit, on_epoch)?;
    let t0 = Instant::now();
    p.save(out)?;
    p.seconds += t0.elapsed().as_secs_f64();
    Ok(p)
}
