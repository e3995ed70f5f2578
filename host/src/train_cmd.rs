//! `faultloop pretrain | eval | retrain | demo`: the training side (issue 3).
//!
//! Argument structs live here so `main.rs` only names them. Every command
//! prints a human table, or JSON with `--json`; long work shows a progress
//! line on stderr when stderr is a terminal; `RUST_LOG=info` logs details.
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use sim_bridge::faultmap::{FaultMap, RandomOptions};
use sim_bridge::link::DeviceSpec;
use tch::nn;
use trainer::data::{Dataset, Split, DEFAULT_DIR};
use trainer::device::{Compress, DeviceMatmul, LayerMode};
use trainer::link_model::{link_seconds, DEFAULT_LINK_BPS};
use trainer::plot::{self, Series};
use trainer::retrain::{self, Progress, RetrainConfig, RetrainReport, RetrainRun};
use trainer::tmr::{self, BudgetRow, Vulnerability};
use trainer::train::{self, TrainConfig};
use trainer::{checkpoint, eval, HostMatmul, Model, ModelSpec};

// ---------------------------------------------------------------- progress

/// A one-line progress display on stderr (only when it is a terminal).
struct Bar {
    label: String,
    total: usize,
    done: usize,
    t0: Instant,
    on: bool,
    extra: String,
}

impl Bar {
    fn new(label: &str, total: usize) -> Bar {
        Bar {
            label: label.into(),
            total,
            done: 0,
            t0: Instant::now(),
            on: std::io::stderr().is_terminal(),
            extra: String::new(),
        }
    }

    fn set(&mut self, done: usize, extra: String) {
        self.done = done;
        self.extra = extra;
        if !self.on {
            return;
        }
        let el = self.t0.elapsed().as_secs_f64();
        let frac = self.done as f64 / self.total.max(1) as f64;
        let eta = if frac > 0.0 { el / frac - el } else { f64::NAN };
        let w = 28;
        let filled = ((frac * w as f64) as usize).min(w);
        eprint!(
            "\r{:<14} [{}{}] {}/{} {:>5.0}s eta {:>4.0}s {}   ",
            self.label,
            "#".repeat(filled),
            "-".repeat(w - filled),
            self.done,
            self.total,
            el,
            eta,
            self.extra
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&mut self) {
        if self.on {
            eprintln!();
        }
    }
}

/// Status lines (stderr) unless JSON output is asked for... they go to stderr
/// either way, so stdout stays clean JSON.
fn note(msg: impl AsRef<str>) {
    eprintln!("{}", msg.as_ref());
}

fn print_json(v: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
}

// ---------------------------------------------------------------- shared

/// One libtorch thread (FAULTLOOP_TORCH_THREADS overrides): on the shared
/// 2-core machines libtorch's spin-waiting OpenMP pool made 2 threads 3-8x
/// slower (docs/training.md).
fn init_torch() {
    let n = std::env::var("FAULTLOOP_TORCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    tch::set_num_threads(n);
}

#[derive(Args, Clone)]
pub struct DataArg {
    /// MNIST-format data directory (Fashion-MNIST by default).
    #[arg(long, default_value = DEFAULT_DIR)]
    pub data_dir: PathBuf,
}

fn load_test(dir: &Path, limit: Option<usize>) -> Result<Dataset> {
    let t = Dataset::load(dir, Split::Test)
        .with_context(|| format!("test data in {}", dir.display()))?;
    Ok(match limit {
        Some(n) if n > 0 => t.take(n),
        _ => t,
    })
}

fn load_faults(path: Option<&Path>) -> Result<Option<FaultMap>> {
    path.map(|p| FaultMap::load(p).with_context(|| format!("fault map {}", p.display())))
        .transpose()
}

fn open_exec(device: &str, faults: Option<&FaultMap>) -> Result<DeviceMatmul> {
    DeviceMatmul::open(device, faults)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("opening device {device}"))
}

fn load_model(path: &Path) -> Result<(nn::VarStore, Model, checkpoint::CheckpointMeta)> {
    checkpoint::load(path).with_context(|| format!("loading checkpoint {}", path.display()))
}

/// Evaluate `model` (weights installed) on `exec` with a progress bar.
fn eval_with_bar(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
    label: &str,
) -> Result<f64> {
    let mut bar = Bar::new(label, data.len());
    let acc = eval::accuracy(model, data, batch, exec, |p| {
        bar.set(p.done, format!("acc {:.2} %", 100.0 * p.accuracy()))
    })?;
    bar.finish();
    Ok(acc)
}

fn retrain_with_bar(run: RetrainRun<'_>) -> Result<RetrainReport> {
    let mut bar = Bar::new("retrain", 1);
    let mut cb = |p: Progress| match p {
        Progress::Start { steps_total, steps_done } => {
            bar.total = steps_total;
            bar.set(steps_done, String::new());
        }
        Progress::Step { epoch, loss, .. } => {
            let d = bar.done + 1;
            bar.set(d, format!("epoch {epoch} loss {loss:.3}"));
        }
        Progress::Eval { what } => {
            let d = bar.done;
            bar.set(d, format!("evaluating ({what})"));
        }
        Progress::Epoch(r) => {
            let d = bar.done;
            bar.set(d, format!("epoch {} test {:.2} %", r.epoch, 100.0 * r.test_accuracy));
            log::info!("epoch {}: {:?}", r.epoch, r);
        }
        Progress::Checkpoint { steps_done } => log::info!("checkpoint at step {steps_done}"),
    };
    let r = retrain::retrain(run, &mut cb)?;
    bar.finish();
    Ok(r)
}

// ---------------------------------------------------------------- pretrain

#[derive(Args)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// mlp (784-256-128-10) or cnn (conv 1→8, 8→16, fc 784→10).
    #[arg(long, default_value = "mlp")]
    pub model: String,
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: i64,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Use only the first N training examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output checkpoint directory.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

fn spec_of(name: &str) -> Result<ModelSpec> {
    Ok(match name {
        "mlp" => ModelSpec::mlp_default(),
        "cnn" => ModelSpec::cnn_default(),
        m => bail!("unknown model `{m}` (mlp or cnn)"),
    })
}

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
    history: Vec<train::PretrainEpoch>,
}

/// Pretrain on the host (quantization-aware) and save a checkpoint. Returns
/// the int8 test accuracy.
fn pretrain_to(
    data_dir: &Path,
    model_name: &str,
    cfg: &TrainConfig,
    limit: Option<usize>,
    out: &Path,
) -> Result<PretrainOut> {
    let spec = spec_of(model_name)?;
    let mut train_set = Dataset::load(data_dir, Split::Train)
        .with_context(|| format!("training data in {}", data_dir.display()))?;
    if let Some(n) = limit {
        train_set = train_set.take(n);
    }
    let test_set = load_test(data_dir, None)?;
    tch::manual_seed(cfg.seed);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = Model::new(&vs.root(), &spec)?;
    let mut host = HostMatmul::new();
    let t0 = Instant::now();
    let mut bar = Bar::new("pretrain", cfg.epochs);
    let stats = train::pretrain(&model, &vs, &train_set, &test_set, cfg, &mut host, |s| {
        bar.set(s.epoch, format!("int8 test {:.2} %", 100.0 * s.test_accuracy_int8));
    })?;
    bar.finish();
    let acc = stats.last().map_or(0.0, |s| s.test_accuracy_int8);
    let info = json!({"config": cfg, "train_examples": train_set.len(), "data_dir": data_dir, "test_accuracy_int8": acc});
    checkpoint::save(out, &vs, &model, info)?;
    Ok(PretrainOut {
        model: model_name.into(),
        output: out.display().to_string(),
        epochs: cfg.epochs,
        seed: cfg.seed,
        train_samples: train_set.len(),
        test_samples: test_set.len(),
        accuracy: acc,
        seconds: t0.elapsed().as_secs_f64(),
        history: stats,
    })
}

pub fn pretrain(a: PretrainArgs) -> Result<()> {
    init_torch();
    let cfg = TrainConfig {
        epochs: a.epochs,
        seed: a.seed,
        lr: a.lr,
        batch_size: a.batch,
        ..Default::default()
    };
    let out = pretrain_to(&a.data.data_dir, &a.model, &cfg, a.limit, &a.output)?;
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

// ---------------------------------------------------------------- eval

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// sim | sim:RxC | model | model:RxC | serial:PORT[@baud] | tcp://host:port | host
    #[arg(long, short = 'd', default_value = "sim")]
    pub device: String,
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Evaluate the first N test images (default all 10 000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Protect layers with partial TMR under this budget (% extra MACs).
    #[arg(long)]
    pub tmr_budget: Option<f64>,
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Link speed of the bandwidth model (bits/s, 8N1).
    #[arg(long, default_value_t = DEFAULT_LINK_BPS)]
    pub link_bps: f64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EvalOut {
    model: String,
    device: String,
    faults: Option<String>,
    fault_rate: f64,
    accuracy: f64,
    samples: usize,
    macs: u64,
    seconds: f64,
    bytes_to_device: u64,
    bytes_from_device: u64,
    link_bps: f64,
    link_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tmr: Option<serde_json::Value>,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    init_torch();
    let (_vs, model, _) = load_model(&a.model)?;
    let test = load_test(&a.data.data_dir, a.limit)?;
    let faults = load_faults(a.faults.as_deref())?;
    let t0 = Instant::now();
    let mut exec = open_exec(&a.device, faults.as_ref())?;
    exec.install_model(&model)?;
    let mut tmr_info = None;
    if let Some(budget) = a.tmr_budget {
        let vuln = tmr::analyze(&model, &test, a.batch, &mut exec)?;
        let set = vuln.select(budget);
        for &i in &set {
            exec.set_mode(i, LayerMode::Tmr);
        }
        tmr_info = Some(
            json!({"budget_pct": budget, "protected": set.iter().map(|&i| vuln.layers[i].name.clone()).collect::<Vec<_>>(), "extra_macs_pct": vuln.cost_pct(&set), "vulnerability": vuln}),
        );
    }
    let (to0, from0) = (exec.bytes_to_device(), exec.bytes_from_device());
    exec.reset_macs();
    let t1 = Instant::now();
    let acc = eval_with_bar(&model, &test, a.batch, &mut exec, "eval")?;
    let seconds = t1.elapsed().as_secs_f64();
    let (to, from) = (exec.bytes_to_device() - to0, exec.bytes_from_device() - from0);
    let out = EvalOut {
        model: a.model.display().to_string(),
        device: exec.device_name().to_string(),
        faults: a.faults.as_ref().map(|p| p.display().to_string()),
        fault_rate: faults.as_ref().map_or(0.0, FaultMap::fault_rate),
        accuracy: acc,
        samples: test.len(),
        macs: exec.device_macs(),
        seconds,
        bytes_to_device: to,
        bytes_from_device: from,
        link_bps: a.link_bps,
        link_seconds: link_seconds(to + from, a.link_bps),
        tmr: tmr_info,
    };
    log::info!("eval total {:.1} s (with device setup)", t0.elapsed().as_secs_f64());
    if a.json {
        print_json(&out);
    } else {
        println!("model        {}", out.model);
        println!(
            "device       {}{}",
            out.device,
            out.faults
                .as_ref()
                .map(|f| format!(" with faults {f} ({:.1} % of PEs)", 100.0 * out.fault_rate))
                .unwrap_or_default()
        );
        println!("accuracy     {:.2} % of {} test images", 100.0 * out.accuracy, out.samples);
        println!("MACs         {:.3e} on the device", out.macs as f64);
        println!(
            "time         {:.2} s wall; link model {:.1} s at {:.0} bit/s",
            out.seconds, out.link_seconds, out.link_bps
        );
        println!(
            "bytes        {} to, {} from the device",
            out.bytes_to_device, out.bytes_from_device
        );
        if let Some(t) = &out.tmr {
            println!("TMR          {}", t["protected"]);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- retrain

#[derive(Args)]
pub struct RetrainArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Checkpoint to start from.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, short = 'd', default_value = "sim")]
    pub device: String,
    #[arg(long)]
    pub faults: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Test images evaluated before and after each epoch (the first N; default 2000).
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// Training examples per epoch, a fresh seeded draw each epoch (0 = all 60 000).
    #[arg(long, default_value_t = 4000)]
    pub train_samples: usize,
    #[arg(long, value_parser = parse_compress, default_value = "sparse")]
    pub compress: Compress,
    /// Sparse: send a weight only once it moved by at least this many int8
    /// steps (the rest stays in a host-side residual).
    #[arg(long, default_value_t = 1)]
    pub threshold: u8,
    /// Protect the most vulnerable layers with partial TMR under this budget (% extra MACs).
    #[arg(long)]
    pub tmr_budget: Option<f64>,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Checkpoint to the output directory every N steps (and at each epoch end).
    #[arg(long, default_value_t = 20)]
    pub checkpoint_every: usize,
    /// Continue the run checkpointed in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Link speed of the bandwidth model (bits/s, 8N1).
    #[arg(long, default_value_t = DEFAULT_LINK_BPS)]
    pub link_bps: f64,
    /// Output checkpoint directory (also holds the resume state).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

fn parse_compress(s: &str) -> Result<Compress, String> {
    s.parse().map_err(|e: trainer::device::ParseCompressError| e.to_string())
}

#[derive(Serialize)]
struct RetrainOut {
    model: String,
    output: String,
    device: String,
    faults: Option<String>,
    fault_rate: f64,
    accuracy_before: f64,
    accuracy_after: f64,
    epochs: usize,
    steps: usize,
    samples_per_epoch: usize,
    test_samples: usize,
    compress: Compress,
    threshold: u8,
    seconds: f64,
    train_seconds: f64,
    seconds_per_epoch: f64,
    link_bps: f64,
    link_seconds: f64,
    link_seconds_weight_updates: f64,
    bytes_to_device: u64,
    bytes_from_device: u64,
    bytes_per_step_dense: f64,
    bytes_per_step_sent: f64,
    bytes_saved_pct: f64,
    macs: u64,
    resumed_at_step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tmr: Option<serde_json::Value>,
    history: Vec<retrain::RetrainEpoch>,
}

pub fn retrain(a: RetrainArgs) -> Result<()> {
    init_torch();
    let (mut vs, model, _) = load_model(&a.model)?;
    let test = load_test(&a.data.data_dir, Some(a.limit))?;
    let train_set = Dataset::load(&a.data.data_dir, Split::Train)?;
    let faults = load_faults(a.faults.as_deref())?;
    let mut exec = open_exec(&a.device, faults.as_ref())?;
    let cfg = RetrainConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        train_samples: a.train_samples,
        seed: a.seed,
        compress: a.compress,
        threshold: a.threshold,
        checkpoint_every: a.checkpoint_every,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut tmr_info = None;
    if let Some(budget) = a.tmr_budget {
        exec.install_model(&model)?;
        let vuln = tmr::analyze(&model, &test, cfg.eval_batch, &mut exec)?;
        let set = vuln.select(budget);
        for &i in &set {
            exec.set_mode(i, LayerMode::Tmr);
        }
        tmr_info = Some(
            json!({"budget_pct": budget, "protected": set.iter().map(|&i| vuln.layers[i].name.clone()).collect::<Vec<_>>(), "extra_macs_pct": vuln.cost_pct(&set), "vulnerability": vuln}),
        );
    }
    let r = retrain_with_bar(RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: &train_set,
        test: &test,
        config: cfg.clone(),
        checkpoint: Some(&a.output),
        resume: a.resume,
    })?;
    let seconds = t0.elapsed().as_secs_f64();
    let t = &r.totals;
    let out = RetrainOut {
        model: a.model.display().to_string(),
        output: a.output.display().to_string(),
        device: exec.device_name().to_string(),
        faults: a.faults.as_ref().map(|p| p.display().to_string()),
        fault_rate: faults.as_ref().map_or(0.0, FaultMap::fault_rate),
        accuracy_before: r.accuracy_before,
        accuracy_after: r.accuracy_after,
        epochs: r.history.len(),
        steps: t.steps,
        samples_per_epoch: r.samples_per_epoch,
        test_samples: r.test_samples,
        compress: cfg.compress,
        threshold: cfg.threshold,
        seconds,
        train_seconds: t.train_seconds,
        seconds_per_epoch: r.seconds_per_epoch(),
        link_bps: a.link_bps,
        link_seconds: r.link_seconds(a.link_bps),
        link_seconds_weight_updates: r.link_seconds_weight_updates(a.link_bps),
        bytes_to_device: t.bytes_to_device,
        bytes_from_device: t.bytes_from_device,
        bytes_per_step_dense: r.bytes_per_step_dense,
        bytes_per_step_sent: r.bytes_per_step_sent,
        bytes_saved_pct: r.bytes_saved_pct(),
        macs: t.device_macs,
        resumed_at_step: r.resumed_at_step,
        tmr: tmr_info,
        history: r.history.clone(),
    };
    if a.json {
        print_json(&out);
    } else {
        println!(
            "device       {}{}",
            out.device,
            out.faults
                .as_ref()
                .map(|f| format!(" with faults {f} ({:.1} % of PEs)", 100.0 * out.fault_rate))
                .unwrap_or_default()
        );
        println!(
            "epoch   lr        loss    train acc  test acc   bytes/step dense  sent      train s"
        );
        for h in &out.history {
            println!(
                "{:>5}  {:.2e}  {:.4}  {:>7.2} %  {:>7.2} %  {:>16.0}  {:>8.0}  {:>7.1}",
                h.epoch,
                h.lr,
                h.train_loss,
                100.0 * h.train_accuracy,
                100.0 * h.test_accuracy,
                h.bytes_dense as f64 / h.steps.max(1) as f64,
                h.bytes_sent as f64 / h.steps.max(1) as f64,
                h.train_seconds
            );
        }
        println!(
            "accuracy     {:.2} % -> {:.2} % ({} test images)",
            100.0 * out.accuracy_before,
            100.0 * out.accuracy_after,
            out.test_samples
        );
        println!("updates      {} ({}, threshold {}): {:.0} B/step sent vs {:.0} B/step dense ({:.1} % saved)", out.steps, serde_json::to_value(out.compress)?.as_str().unwrap_or(""), out.threshold, out.bytes_per_step_sent, out.bytes_per_step_dense, out.bytes_saved_pct);
        println!("time         {:.1} s wall ({:.1} s/epoch training); link model {:.1} s at {:.0} bit/s ({:.1} s of it weight updates)", out.seconds, out.seconds_per_epoch, out.link_seconds, out.link_bps, out.link_seconds_weight_updates);
        if let Some(t) = &out.tmr {
            println!(
                "TMR          {} ({:.1} % extra MACs)",
                t["protected"],
                t["extra_macs_pct"].as_f64().unwrap_or(0.0)
            );
        }
        println!("checkpoint   {}", out.output);
    }
    Ok(())
}

// ---------------------------------------------------------------- demo

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub data: DataArg,
    #[arg(long, short = 'd', default_value = "sim")]
    pub device: String,
    /// Where the cached model, fault map, retrained checkpoint and plot go.
    #[arg(long, default_value = "out/demo")]
    pub out_dir: PathBuf,
    /// Retraining epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Training examples per retraining epoch.
    #[arg(long, default_value_t = 4000)]
    pub train_samples: usize,
    /// Fixed test subset (the first N test images).
    #[arg(long, default_value_t = 2000)]
    pub test_samples: usize,
    /// Fault rate; found by a scan when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seed of the fault map and of the retraining data order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Minimum accuracy loss (points) the scan looks for.
    #[arg(long, default_value_t = 10.0)]
    pub min_loss: f64,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = DEFAULT_LINK_BPS)]
    pub link_bps: f64,
    #[arg(long)]
    pub json: bool,
}

/// Fault rates the demo tries in order (fixed seed); fine steps at the low
/// end because one stuck high psum bit can already cost most of the accuracy.
const SCAN_RATES: &[f64] = &[
    0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.08, 0.10, 0.15, 0.20,
    0.30,
];

#[derive(Serialize)]
struct ScanPoint {
    rate: f64,
    faulty_pes: usize,
    accuracy: f64,
}

/// The device that gives the same results fastest: `model:RxC` for `sim:RxC`.
fn fast_twin(device: &str) -> String {
    match device.parse::<DeviceSpec>() {
        Ok(DeviceSpec::Sim { rows, cols }) => format!("model:{rows}x{cols}"),
        _ => device.to_string(),
    }
}

pub fn demo(a: DemoArgs) -> Result<()> {
    init_torch();
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    // 1. The model: cached, or pretrained now (8 epochs, ~1 min).
    let cache = a.out_dir.join("mlp.ckpt");
    let pretrained = if checkpoint::read_meta(&cache).is_ok() {
        note(format!("model: reusing {}", cache.display()));
        false
    } else {
        note(format!("model: pretraining the int8 MLP on the host -> {}", cache.display()));
        let cfg = TrainConfig { epochs: 8, seed: 1, ..Default::default() };
        pretrain_to(&a.data.data_dir, "mlp", &cfg, None, &cache)?;
        true
    };
    let (mut vs, model, meta) = load_model(&cache)?;
    let full_test_acc = meta.info.get("test_accuracy_int8").and_then(|v| v.as_f64());
    let test = load_test(&a.data.data_dir, Some(a.test_samples))?;
    let train_set = Dataset::load(&a.data.data_dir, Split::Train)?;

    // 2. Clean accuracy on the device.
    let mut exec = open_exec(&a.device, None)?;
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    note(format!("device: {} ({rows}x{cols}); test subset: first {} images; retraining: {} epochs x {} images (seed {})", exec.device_name(), test.len(), a.epochs, a.train_samples, a.seed));
    exec.install_model(&model)?;
    let tc = Instant::now();
    let clean = eval_with_bar(&model, &test, 500, &mut exec, "clean eval")?;
    let clean_eval_seconds = tc.elapsed().as_secs_f64();

    // 3. Fault rate: the first scanned rate (fixed seed) that costs >= min_loss points.
    let opts = RandomOptions::default();
    let mut scan = Vec::new();
    let rate = match a.rate {
        Some(r) => r,
        None => {
            let twin = fast_twin(&a.device);
            note(format!(
                "scanning fault rates on {twin} (same results as {}) for a loss >= {} points",
                a.device, a.min_loss
            ));
            let mut sx = open_exec(&twin, None)?;
            sx.install_model(&model)?;
            let mut found = None;
            for &r in SCAN_RATES {
                let map = FaultMap::random(rows, cols, r, a.seed, &opts)?;
                sx.set_faults(Some(&map)).map_err(|e| anyhow::anyhow!("{e}"))?;
                let acc = eval::accuracy(&model, &test, 500, &mut sx, |_| {})?;
                note(format!(
                    "  rate {:.3}: {:>3} faulty PEs, accuracy {:.2} %",
                    r,
                    map.faulty_pes(),
                    100.0 * acc
                ));
                scan.push(ScanPoint { rate: r, faulty_pes: map.faulty_pes(), accuracy: acc });
                if 100.0 * (clean - acc) >= a.min_loss {
                    found = Some(r);
                    break;
                }
            }
            found.with_context(|| {
                format!(
                    "no scanned rate up to {} costs {} points",
                    SCAN_RATES.last().unwrap(),
                    a.min_loss
                )
            })?
        }
    };
    let map = FaultMap::random(rows, cols, rate, a.seed, &opts)?;
    let map_path = a.out_dir.join("faults.json");
    map.save(&map_path)?;
    exec.set_faults(Some(&map)).map_err(|e| anyhow::anyhow!("{e}"))?;

    // 4. Retrain with the faulty device in the loop (evaluates before and after each epoch).
    let out_ckpt = a.out_dir.join("retrained.ckpt");
    let _ = std::fs::remove_dir_all(&out_ckpt);
    let cfg = RetrainConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        train_samples: a.train_samples,
        seed: a.seed,
        compress: Compress::Sparse,
        threshold: 1,
        checkpoint_every: 0,
        ..Default::default()
    };
    let r = retrain_with_bar(RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: &train_set,
        test: &test,
        config: cfg,
        checkpoint: Some(&out_ckpt),
        resume: false,
    })?;
    let faulty = r.accuracy_before;
    let retrained = r.accuracy_after;

    // 5. Plot.
    let e = r.history.len() as f64;
    let mut pts = vec![(0.0, faulty)];
    pts.extend(r.history.iter().map(|h| (h.epoch as f64, h.test_accuracy)));
    let svg = plot::line_chart(
        &format!(
            "HIL retraining on {} ({:.0} % faulty PEs)",
            exec.device_name(),
            100.0 * map.fault_rate()
        ),
        "retraining epoch",
        "test accuracy (%)",
        &[
            Series::level("fault-free", "#2a8a2a", clean, 0.0, e.max(1.0)),
            Series::level("faulty, not retrained", "#c0392b", faulty, 0.0, e.max(1.0)),
            Series::new("retrained on the faulty device", "#1f5fbf", pts),
        ],
        true,
    );
    let plot_path = a.out_dir.join("accuracy.svg");
    std::fs::write(&plot_path, svg).with_context(|| format!("writing {}", plot_path.display()))?;
    let seconds = t0.elapsed().as_secs_f64();
    let t = &r.totals;
    let out = json!({
        "clean_accuracy": clean,
        "faulty_accuracy": faulty,
        "retrained_accuracy": retrained,
        "fault_rate": map.fault_rate(),
        "faulty_pes": map.faulty_pes(),
        "seconds": seconds,
        "device": exec.device_name(),
        "array": format!("{rows}x{cols}"),
        "seed": a.seed,
        "test_samples": test.len(),
        "train_samples_per_epoch": r.samples_per_epoch,
        "epochs": r.history.len(),
        "steps": t.steps,
        "pretrained_now": pretrained,
        "pretrained_full_test_accuracy": full_test_acc,
        "clean_eval_seconds": clean_eval_seconds,
        "retrain_seconds_per_epoch": r.seconds_per_epoch(),
        "bytes_per_step_dense": r.bytes_per_step_dense,
        "bytes_per_step_sent": r.bytes_per_step_sent,
        "link_bps": a.link_bps,
        "link_seconds": r.link_seconds(a.link_bps),
        "scan": scan,
        "history": r.history,
        "fault_map": map_path.display().to_string(),
        "checkpoint": out_ckpt.display().to_string(),
        "plot": plot_path.display().to_string(),
    });
    if a.json {
        print_json(&out);
    } else {
        println!();
        println!(
            "faultloop demo: int8 MLP 784-256-128-10 on {} ({rows}x{cols})",
            exec.device_name()
        );
        println!(
            "fault map     {} faulty PEs of {} ({:.1} %), seed {}, stuck-at psum/act/weight -> {}",
            map.faulty_pes(),
            rows * cols,
            100.0 * map.fault_rate(),
            a.seed,
            map_path.display()
        );
        println!("test subset   first {} test images; retraining {} epochs x {} images, batch {}, Adam lr {}", test.len(), r.history.len(), r.samples_per_epoch, a.batch, a.lr);
        println!();
        println!("                          accuracy");
        println!("fault-free device         {:>6.2} %", 100.0 * clean);
        println!(
            "faulty device             {:>6.2} %   ({:+.2} points)",
            100.0 * faulty,
            100.0 * (faulty - clean)
        );
        for h in &r.history {
            println!(
                "  retrained, epoch {:<2}     {:>6.2} %   ({:+.2} points)  {:.1} s",
                h.epoch,
                100.0 * h.test_accuracy,
                100.0 * (h.test_accuracy - clean),
                h.train_seconds
            );
        }
        println!(
            "retrained                 {:>6.2} %   ({:+.2} points vs fault-free)",
            100.0 * retrained,
            100.0 * (retrained - clean)
        );
        println!();
        println!(
            "weight updates  {:.0} B/step sent (sparse) vs {:.0} B/step dense",
            r.bytes_per_step_sent, r.bytes_per_step_dense
        );
        println!("time            {:.1} s total; {:.1} s/epoch retraining; link model {:.1} s at {:.0} bit/s", seconds, r.seconds_per_epoch(), r.link_seconds(a.link_bps), a.link_bps);
        println!("plot            {}", plot_path.display());
        println!("checkpoint      {}", out_ckpt.display());
    }
    Ok(())
}

/// Accuracy against TMR budget, used by `retrain --tmr-budget` JSON and tests.
#[allow(dead_code)]
pub fn tmr_table(
    model: &Model,
    data: &Dataset,
    exec: &mut DeviceMatmul,
    budgets: &[f64],
) -> Result<(Vulnerability, Vec<BudgetRow>)> {
    let v = tmr::analyze(model, data, 500, exec)?;
    let rows = tmr::budget_table(model, data, 500, exec, &v, budgets)?;
    Ok((v, rows))
}
