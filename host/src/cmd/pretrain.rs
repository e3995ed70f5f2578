//! `faultloop pretrain`: quantization-aware pretraining on the host, saved
//! as a checkpoint.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use trainer::train::{self, PretrainEpoch, TrainConfig};
use trainer::ModelSpec;

use super::DataArg;
use crate::output::print_json;
use crate::progress::Bar;

#[derive(Args)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// mlp (784-256-128-10) or cnn (conv 1→8, 8→16, fc 784→10).
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Training epochs.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Seed of every random draw (same seed, same result).
    #[arg(long, default_value_t = 1)]
    pub seed: i64,
    /// Learning rate (Adam; cosine schedule per epoch when retraining).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Use only the first N training examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output checkpoint directory.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--json`.
#[derive(Serialize)]
struct PretrainOut {
    model: String,
    output: String,
    epochs: usize,
    seed: i64,
    train_samples: usize,
    test_samples: usize,
    accuracy: f64,
    seconds: f64,
    history: Vec<PretrainEpoch>,
}

pub fn run(a: PretrainArgs) -> Result<()> {
    trainer::init_threads();
    let spec: ModelSpec = a.model.parse()?;
    let cfg = TrainConfig {
        epochs: a.epochs,
        seed: a.seed,
        lr: a.lr,
        batch_size: a.batch,
        ..Default::default()
    };
    let p = pretrain_with_bar(&a.data, &spec, &cfg, a.limit, &a.output)?;
    let out = PretrainOut {
        model: a.model,
        output: a.output.display().to_string(),
        epochs: cfg.epochs,
        seed: cfg.seed,
        train_samples: p.train_samples,
        test_samples: p.test_samples,
        accuracy: p.accuracy,
        seconds: p.seconds,
        history: p.history,
    };
    if a.json {
        print_json(&out);
    } else {
        println!("epoch  train loss  int8 test accuracy  seconds");
        for s in &out.history {
            println!(
                "{:>5}  {:>10.4}  {:>17.2} %  {:>7.1}",
                s.epoch,
                s.train_loss,
                100.0 * s.test_accuracy_int8,
                s.train_seconds + s.eval_seconds
            );
        }
        println!(
            "{} -> {}: int8 test accuracy {:.2} % in {:.1} s",
            out.model,
            out.output,
            100.0 * out.accuracy,
            out.seconds
        );
    }
    Ok(())
}

/// [`train::pretrain_to_checkpoint`] with a progress bar (also the demo's).
pub fn pretrain_with_bar(
    data: &DataArg,
    spec: &ModelSpec,
    cfg: &TrainConfig,
    limit: Option<usize>,
    out: &std::path::Path,
) -> Result<train::Pretrained> {
    let mut bar = Bar::new("pretrain", cfg.epochs);
    let p = train::pretrain_to_checkpoint(&data.data_dir, spec, cfg, limit, out, |s| {
        bar.set(s.epoch, format!("int8 test {:.2} %", 100.0 * s.test_accuracy_int8));
    })?;
    bar.finish();
    Ok(p)
}
