//! `faultloop demo`: the main job. Pretrain the int8 MLP (or reuse it),
//! measure it on the fault-free device, find a fault rate that costs at
//! least `--min-loss` points (or take `--rate`), retrain with the faulty
//! device in the loop, plot accuracy per epoch.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use faultloop_device::open::{DeviceSpec, OpenOptions};
use serde::Serialize;
use trainer::device::{Compress, UpdateBudget};
use trainer::experiment::{self, RateScan, ScanPoint, DEFAULT_SCAN_RATES};
use trainer::retrain::{self, RetrainConfig, RetrainEpoch, RetrainRun};
use trainer::train::TrainConfig;
use trainer::{checkpoint, eval, ModelSpec};

use super::pretrain::pretrain_with_bar;
use super::{loading, open_exec, DataArg, DeviceArg, LinkArg};
use crate::output::{note, print_json_sorted};
use crate::progress::Bar;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub data: DataArg,
    #[command(flatten)]
    pub dev: DeviceArg,
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
    /// Learning rate (Adam; cosine schedule per epoch when retraining).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Weight-update bytes per retraining step at most: bytes (4096), or a
    /// share of a dense rewrite (10% or 0.1).
    #[arg(long, value_name = "B")]
    pub update_budget: Option<UpdateBudget>,
    #[command(flatten)]
    pub link: LinkArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Batch size of the demo's evaluations (clean and scan).
const EVAL_BATCH: usize = 500;

/// `--json` (printed with sorted keys).
#[derive(Serialize)]
struct DemoOut {
    array: String,
    bytes_per_step_dense: f64,
    bytes_per_step_max: u64,
    bytes_per_step_sent: f64,
    checkpoint: String,
    clean_accuracy: f64,
    clean_eval_seconds: f64,
    device: String,
    epochs: usize,
    fault_map: String,
    fault_rate: f64,
    faulty_accuracy: f64,
    faulty_pes: usize,
    history: Vec<RetrainEpoch>,
    link_bps: f64,
    link_seconds: f64,
    plot: String,
    pretrained_full_test_accuracy: Option<f64>,
    pretrained_now: bool,
    retrain_seconds_per_epoch: f64,
    retrained_accuracy: f64,
    scan: Vec<ScanPoint>,
    seconds: f64,
    seed: u64,
    steps: usize,
    test_samples: usize,
    train_samples_per_epoch: usize,
    update_budget_bytes: Option<u64>,
}

pub fn run(a: DemoArgs, open: &OpenOptions) -> Result<()> {
    trainer::init_threads();
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    // 1. The model: cached, or pretrained now (8 epochs, ~1 min).
    let cache = a.out_dir.join("mlp.ckpt");
    let pretrained_now = if checkpoint::read_meta(&cache).is_ok() {
        note(format!("model: reusing {}", cache.display()));
        false
    } else {
        note(format!("model: pretraining the int8 MLP on the host -> {}", cache.display()));
        let cfg = TrainConfig { epochs: 8, seed: 1, ..Default::default() };
        pretrain_with_bar(&a.data, &ModelSpec::mlp_default(), &cfg, None, &cache)?;
        true
    };
    let (mut vs, model, meta) = checkpoint::load(&cache).with_context(|| loading(&cache))?;
    let full_test_acc = meta.info.get("test_accuracy_int8").and_then(|v| v.as_f64());
    let test = a.data.test(Some(a.test_samples))?;
    let train = a.data.train()?;

    // 2. Clean accuracy on the device.
    let device = &a.dev.device;
    let mut exec = open_exec(device, open, None)?;
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    note(format!(
        "device: {} ({rows}x{cols}); test subset: first {} images; retraining: {} epochs x {} \
         images (seed {})",
        exec.device_name(),
        test.len(),
        a.epochs,
        a.train_samples,
        a.seed
    ));
    exec.install_model(&model)?;
    let tc = Instant::now();
    let mut bar = Bar::new("clean eval", test.len());
    let clean = eval::accuracy(&model, &test, EVAL_BATCH, &mut exec, |p| bar.eval(p))?;
    bar.finish();
    let clean_eval_seconds = tc.elapsed().as_secs_f64();

    // 3. Fault rate: the first scanned rate (fixed seed) that costs >= min_loss points.
    let mut scan = Vec::new();
    let rate = match a.rate {
        Some(r) => r,
        None => {
            // The device that gives the same results fastest (`model:RxC` for `sim:RxC`).
            let twin = device.parse::<DeviceSpec>()?.fast_twin().to_string();
            note(format!(
                "scanning fault rates on {twin} (same results as {device}) for a loss >= {} points",
                a.min_loss
            ));
            let mut sx = open_exec(&twin, open, None)?;
            let plan = RateScan {
                rates: DEFAULT_SCAN_RATES,
                seed: a.seed,
                clean_accuracy: clean,
                min_loss_points: a.min_loss,
                batch: EVAL_BATCH,
            };
            let found = experiment::find_harmful_rate(&model, &test, &mut sx, &plan, |p| {
                note(format!(
                    "  rate {:.3}: {:>3} faulty PEs, accuracy {:.2} %",
                    p.rate,
                    p.faulty_pes,
                    100.0 * p.accuracy
                ))
            })?;
            scan = found.points;
            found.rate.with_context(|| {
                format!(
                    "no scanned rate up to {} costs {} points",
                    DEFAULT_SCAN_RATES.last().expect("rates"),
                    a.min_loss
                )
            })?
        }
    };
    let map = experiment::random_fault_map(rows, cols, rate, a.seed)?;
    let map_path = a.out_dir.join("faults.json");
    map.save(&map_path)?;
    exec.set_faults(Some(&map))?;

    // 4. Retrain with the faulty device in the loop (evaluates before and after each epoch).
    let out_ckpt = a.out_dir.join("retrained.ckpt");
    let _ = std::fs::remove_dir_all(&out_ckpt);
    let config = RetrainConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        train_samples: a.train_samples,
        seed: a.seed,
        compress: Compress::Sparse,
        threshold: 1,
        update_budget: a.update_budget,
        checkpoint_every: 0,
        ..Default::default()
    };
    let mut bar = Bar::new("retrain", 1);
    let run = RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: &train,
        test: &test,
        config,
        checkpoint: Some(&out_ckpt),
        resume: false,
    };
    let r = retrain::retrain(run, &mut |p| bar.retrain(p))?;
    bar.finish();
    let (faulty, retrained) = (r.accuracy_before, r.accuracy_after);

    // 5. Plot.
    let svg = experiment::retrain_chart(exec.device_name(), map.fault_rate(), clean, &r);
    let plot_path = a.out_dir.join("accuracy.svg");
    trainer::fleetjob::write_atomic(&plot_path, svg.as_bytes())
        .with_context(|| format!("writing {}", plot_path.display()))?;
    let seconds = t0.elapsed().as_secs_f64();
    let bps = a.link.link_bps;
    let out = DemoOut {
        array: format!("{rows}x{cols}"),
        bytes_per_step_dense: r.bytes_per_step_dense,
        bytes_per_step_max: r.bytes_per_step_max,
        bytes_per_step_sent: r.bytes_per_step_sent,
        checkpoint: out_ckpt.display().to_string(),
        clean_accuracy: clean,
        clean_eval_seconds,
        device: exec.device_name().to_string(),
        epochs: r.history.len(),
        fault_map: map_path.display().to_string(),
        fault_rate: map.fault_rate(),
        faulty_accuracy: faulty,
        faulty_pes: map.faulty_pes(),
        history: r.history.clone(),
        link_bps: bps,
        link_seconds: r.link_seconds(bps),
        plot: plot_path.display().to_string(),
        pretrained_full_test_accuracy: full_test_acc,
        pretrained_now,
        retrain_seconds_per_epoch: r.seconds_per_epoch(),
        retrained_accuracy: retrained,
        scan,
        seconds,
        seed: a.seed,
        steps: r.totals.steps,
        test_samples: test.len(),
        train_samples_per_epoch: r.samples_per_epoch,
        update_budget_bytes: r.update_budget_bytes,
    };
    if a.json {
        print_json_sorted(&out);
    } else {
        print_table(&out, &a, rows * cols);
    }
    Ok(())
}

/// The human report; `pes` = rows × cols.
fn print_table(out: &DemoOut, a: &DemoArgs, pes: usize) {
    println!();
    println!("faultloop demo: int8 MLP 784-256-128-10 on {} ({})", out.device, out.array);
    println!(
        "fault map     {} faulty PEs of {} ({:.1} %), seed {}, stuck-at psum/act/weight -> {}",
        out.faulty_pes,
        pes,
        100.0 * out.fault_rate,
        out.seed,
        out.fault_map
    );
    println!(
        "test subset   first {} test images; retraining {} epochs x {} images, batch {}, Adam lr {}",
        out.test_samples, out.epochs, out.train_samples_per_epoch, a.batch, a.lr
    );
    println!();
    println!("                          accuracy");
    let clean = out.clean_accuracy;
    println!("fault-free device         {:>6.2} %", 100.0 * clean);
    println!(
        "faulty device             {:>6.2} %   ({:+.2} points)",
        100.0 * out.faulty_accuracy,
        100.0 * (out.faulty_accuracy - clean)
    );
    for h in &out.history {
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
        100.0 * out.retrained_accuracy,
        100.0 * (out.retrained_accuracy - clean)
    );
    println!();
    let budget = out.update_budget_bytes.map_or(String::new(), |b| format!(", budget {b} B"));
    println!(
        "weight updates  {:.0} B/step sent (sparse{budget}, at most {} B) vs {:.0} B/step dense",
        out.bytes_per_step_sent, out.bytes_per_step_max, out.bytes_per_step_dense
    );
    println!(
        "time            {:.1} s total; {:.1} s/epoch retraining; link model {:.1} s at {:.0} bit/s",
        out.seconds, out.retrain_seconds_per_epoch, out.link_seconds, out.link_bps
    );
    println!("plot            {}", out.plot);
    println!("checkpoint      {}", out.checkpoint);
}
