//! Quantization-aware pretraining on the host, int8 evaluation, checkpoint
//! and device export.
//!
//!   cargo run --release -p trainer --example pretrain -- \
//!       --model mlp --epochs 8 --out out/mlp.ckpt --export out/mlp.export.json
//!
//! Options: --model mlp|cnn  --epochs N  --batch N  --lr F  --sgd MOMENTUM
//!          --seed N  --data DIR  --limit N (first N training examples)
//!          --threads N (libtorch threads, default 1)  --out DIR.ckpt  --export FILE.json
//! Prints one JSON object per epoch and a final summary on stdout.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use trainer::data::{Dataset, Split, DEFAULT_DIR};
use trainer::train::{self, OptimizerKind, PretrainEpoch, TrainConfig};
use trainer::{checkpoint, reference, HostMatmul, ModelSpec};

fn main() -> Result<()> {
    let mut cfg = TrainConfig::default();
    let mut model_kind = "mlp".to_string();
    let mut data_dir = PathBuf::from(DEFAULT_DIR);
    let mut limit = None;
    let mut out = None;
    let mut export = None;
    let mut threads = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model_kind = val()?,
            "--epochs" => cfg.epochs = val()?.parse()?,
            "--batch" => cfg.batch_size = val()?.parse()?,
            "--lr" => cfg.lr = val()?.parse()?,
            "--sgd" => cfg.optimizer = OptimizerKind::Sgd { momentum: val()?.parse()? },
            "--seed" => cfg.seed = val()?.parse()?,
            "--data" => data_dir = val()?.into(),
            "--limit" => limit = Some(val()?.parse::<usize>()?),
            "--threads" => threads = Some(val()?.parse::<i32>()?),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--export" => export = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!("see the header of trainer/examples/pretrain.rs");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    // One libtorch thread by default: on the shared 2-core machines the
    // OpenMP pool's spin-waiting makes 2 threads 3-8x slower as soon as
    // anything else runs (measured); pass --threads 2 on an idle machine.
    tch::set_num_threads(threads.unwrap_or(1));
    let spec: ModelSpec = model_kind.parse()?;
    eprintln!("{model_kind}: {} torch threads, {cfg:?}", tch::get_num_threads());

    // Pretrain (and save, with --out) exactly as `faultloop pretrain` does.
    let print_epoch = |s: &PretrainEpoch| println!("{}", serde_json::to_string(s).unwrap());
    let p = match &out {
        Some(dir) => {
            train::pretrain_to_checkpoint(&data_dir, &spec, &cfg, limit, dir, print_epoch)?
        }
        None => train::pretrain_from_dir(&data_dir, &spec, &cfg, limit, print_epoch)?,
    };
    let (model, stats, total) = (&p.model, &p.history, p.seconds);
    eprintln!("{model_kind}: {} train / {} test examples", p.train_samples, p.test_samples);
    let test_set = Dataset::load(&data_dir, Split::Test)?;
    let mut host = HostMatmul::new();

    // Cross-check: the plain-Rust reference on the export agrees with the
    // tensor int8 path on the whole test set.
    let exp = model.export();
    let t1 = Instant::now();
    let input = Vec::<f32>::try_from(&test_set.images.view([-1]))?;
    let ref_pred = reference::predict(&exp, &input, test_set.len())?;
    let ref_secs = t1.elapsed().as_secs_f64();
    let labels = Vec::<i64>::try_from(&test_set.labels)?;
    let ref_acc = ref_pred.iter().zip(&labels).filter(|(p, l)| **p as i64 == **l).count() as f64
        / labels.len() as f64;
    let tensor_pred =
        Vec::<i64>::try_from(&train::predict(model, &test_set, cfg.eval_batch, Some(&mut host))?)?;
    let agree = ref_pred.iter().zip(&tensor_pred).all(|(a, b)| *a as i64 == *b);
    let float_acc = train::evaluate(model, &test_set, cfg.eval_batch, None)?;

    let last = stats.last().cloned();
    if let Some(dir) = &out {
        let (_, loaded, _) = checkpoint::load(dir)?;
        if loaded.export() != exp {
            bail!("checkpoint {} does not load back to the same int8 model", dir.display());
        }
        eprintln!("checkpoint: {}", dir.display());
    }
    if let Some(p) = &export {
        exp.save_json(p)?;
        eprintln!("export: {}", p.display());
    }
    let summary = serde_json::json!({
        "model": model_kind, "spec": spec, "epochs": cfg.epochs, "threads": tch::get_num_threads(),
        "total_seconds": total,
        "mean_train_seconds_per_epoch": stats.iter().map(|s| s.train_seconds).sum::<f64>() / stats.len().max(1) as f64,
        "mean_eval_seconds_int8": stats.iter().map(|s| s.eval_seconds).sum::<f64>() / stats.len().max(1) as f64,
        "test_accuracy_int8": last.map(|s| s.test_accuracy_int8),
        "test_accuracy_int8_reference": ref_acc, "reference_seconds": ref_secs,
        "reference_agrees_with_tensor_path": agree,
        "test_accuracy_fake_quant_float": float_acc,
    });
    println!("{summary}");
    if !agree {
        bail!("plain-Rust reference and tensor int8 path disagree");
    }
    Ok(())
}
