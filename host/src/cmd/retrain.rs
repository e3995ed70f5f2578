//! `faultloop retrain`: hardware-in-the-loop retraining of a checkpoint on a
//! (faulty) device, with checkpoints and `--resume`.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use faultloop_device::open::OpenOptions;
use faultloop_proto::faultmap::FaultMap;
use serde::Serialize;
use trainer::checkpoint;
use trainer::device::{Compress, UpdateBudget};
use trainer::experiment;
use trainer::mitigate::{Mitigation, Triage};
use trainer::retrain::{RetrainConfig, RetrainEpoch, RetrainRun, Selection};
use trainer::tmr::Protection;

use super::{loading, open_exec, open_twin, DataArg, DeviceRunArgs, LinkArg};
use crate::output::{device_line, names, print_json, sorted};
use crate::progress::Bar;

#[derive(Args)]
pub struct RetrainArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Checkpoint to start from.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub run: DeviceRunArgs,
    /// Training epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Test images evaluated before and after each epoch (the first N; default 2000).
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// Training examples per epoch, a fresh seeded draw each epoch (0 = all 60 000).
    #[arg(long, default_value_t = 4000)]
    pub train_samples: usize,
    /// Weight updates: sparse PATCH increments or a dense rewrite every step.
    #[arg(long, default_value = "sparse")]
    pub compress: Compress,
    /// Sparse: send a weight only once it moved by at least this many int8
    /// steps (the rest stays in a host-side residual).
    #[arg(long, default_value_t = 1)]
    pub threshold: u8,
    /// Sparse: weight-update bytes per step at most: bytes (4096), or a share
    /// of a dense rewrite (10% or 0.1); the largest changes go first, the
    /// rest waits in the residual.
    #[arg(long, value_name = "B")]
    pub update_budget: Option<UpdateBudget>,
    /// Learning rate (Adam; cosine schedule per epoch when retraining).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Seed of every random draw (same seed, same result).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Checkpoint to the output directory every N steps (and at each epoch end).
    #[arg(long, default_value_t = 20)]
    pub checkpoint_every: usize,
    /// Continue the run checkpointed in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Mitigation: fat (faults in the loop), fap (bypass every faulty PE,
    /// prune and freeze its weights) or auto (per-PE triage); see
    /// docs/training.md.
    #[arg(long, default_value = "fat")]
    pub mitigate: Mitigation,
    /// auto: epochs of FAT before the triage (counted in --epochs; 0: triage first).
    #[arg(long, default_value_t = 0.0)]
    pub triage_epochs: f64,
    /// auto: held-out training images the triage measures each PE on.
    #[arg(long, default_value_t = 1000)]
    pub triage_samples: usize,
    /// auto: held-out training images the final choice among the triaged
    /// start, the retrained end and their blend is measured on (0: as
    /// --triage-samples).
    #[arg(long, default_value_t = 5000)]
    pub selection_samples: usize,
    /// auto: bypass a PE whose fault costs more mean cross-entropy than this.
    #[arg(long, default_value_t = trainer::mitigate::DEFAULT_TOLERANCE)]
    pub triage_tolerance: f64,
    /// auto: keep every layer at rotation (0, 0) instead of choosing the
    /// rotation that puts the least-needed weights on the bypassed PEs.
    #[arg(long)]
    pub no_triage_rotation: bool,
    #[command(flatten)]
    pub link: LinkArg,
    /// Output checkpoint directory (also holds the resume state).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--json`.
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
    update_budget: Option<UpdateBudget>,
    update_budget_bytes: Option<u64>,
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
    bytes_per_step_max: u64,
    bytes_saved_pct: f64,
    macs: u64,
    resumed_at_step: Option<usize>,
    mitigation: Mitigation,
    /// PEs bypassed on top of the fault map, as `[row, col]`.
    bypass: Vec<[usize; 2]>,
    /// `[dr, dc]` of each layer's runs (empty: all (0, 0)).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rotations: Vec<[u8; 2]>,
    pruned_weights: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    triage: Option<Triage>,
    /// auto: the weights kept among the triaged start and each epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    selection: Option<Selection>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "sorted")]
    tmr: Option<Protection>,
    history: Vec<RetrainEpoch>,
}

pub fn run(a: RetrainArgs, open: &OpenOptions) -> Result<()> {
    trainer::init_threads();
    let (mut vs, model, meta) = checkpoint::load(&a.model).with_context(|| loading(&a.model))?;
    let test = a.data.test(Some(a.limit))?;
    let train = a.data.train()?;
    let faults = a.run.faults.load()?;
    let mut exec = open_exec(&a.run.dev.device, open, faults.as_ref())?;
    // The bypass list the input checkpoint was retrained for stays applied.
    if let Some(rec) = &meta.mitigation {
        rec.apply(&mut exec)?;
    }
    let mut twin = match a.mitigate {
        Mitigation::Auto => open_twin(&a.run.dev, open, faults.as_ref())?,
        _ => None,
    };
    let config = RetrainConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        train_samples: a.train_samples,
        seed: a.seed,
        compress: a.compress,
        threshold: a.threshold,
        update_budget: a.update_budget,
        checkpoint_every: a.checkpoint_every,
        mitigation: a.mitigate,
        triage_epochs: a.triage_epochs,
        triage_samples: a.triage_samples,
        selection_samples: a.selection_samples,
        triage_tolerance: a.triage_tolerance,
        triage_rotations: !a.no_triage_rotation,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut bar = Bar::new("retrain", 1);
    let run = RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: &train,
        test: &test,
        config,
        checkpoint: Some(&a.output),
        resume: a.resume,
    };
    let (protection, r) =
        experiment::retrain_on_device_with(run, a.run.tmr_budget, twin.as_mut(), &mut |p| {
            bar.retrain(p)
        })?;
    bar.finish();
    let seconds = t0.elapsed().as_secs_f64();
    let t = &r.totals;
    let bps = a.link.link_bps;
    let out = RetrainOut {
        model: a.model.display().to_string(),
        output: a.output.display().to_string(),
        device: exec.device_name().to_string(),
        faults: a.run.faults.display(),
        fault_rate: faults.as_ref().map_or(0.0, FaultMap::fault_rate),
        accuracy_before: r.accuracy_before,
        accuracy_after: r.accuracy_after,
        epochs: r.history.len(),
        steps: t.steps,
        samples_per_epoch: r.samples_per_epoch,
        test_samples: r.test_samples,
        compress: r.config.compress,
        threshold: r.config.threshold,
        update_budget: r.config.update_budget,
        update_budget_bytes: r.update_budget_bytes,
        seconds,
        train_seconds: t.train_seconds,
        seconds_per_epoch: r.seconds_per_epoch(),
        link_bps: bps,
        link_seconds: r.link_seconds(bps),
        link_seconds_weight_updates: r.link_seconds_weight_updates(bps),
        bytes_to_device: t.bytes_to_device,
        bytes_from_device: t.bytes_from_device,
        bytes_per_step_dense: r.bytes_per_step_dense,
        bytes_per_step_sent: r.bytes_per_step_sent,
        bytes_per_step_max: r.bytes_per_step_max,
        bytes_saved_pct: r.bytes_saved_pct(),
        macs: t.device_macs,
        resumed_at_step: r.resumed_at_step,
        mitigation: r.mitigation,
        bypass: r.bypass.clone(),
        rotations: r.rotations.clone(),
        pruned_weights: r.pruned_weights,
        triage: r.triage.clone(),
        selection: r.selection.clone(),
        tmr: protection,
        history: r.history.clone(),
    };
    if a.json {
        print_json(&out);
    } else {
        print_table(&out);
    }
    Ok(())
}

fn print_table(out: &RetrainOut) {
    println!("{}", device_line(&out.device, out.faults.as_deref(), out.fault_rate));
    println!("epoch   lr        loss    train acc  test acc   bytes/step dense  sent      train s");
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
    println!(
        "updates      {} ({}, threshold {}): {:.0} B/step sent vs {:.0} B/step dense \
         ({:.1} % saved)",
        out.steps,
        out.compress,
        out.threshold,
        out.bytes_per_step_sent,
        out.bytes_per_step_dense,
        out.bytes_saved_pct
    );
    if let (Some(b), Some(bytes)) = (out.update_budget, out.update_budget_bytes) {
        println!(
            "budget       {b} = {bytes} B/step; most sent in a step {} B",
            out.bytes_per_step_max
        );
    } else {
        println!("most sent    {} B in one step", out.bytes_per_step_max);
    }
    println!(
        "time         {:.1} s wall ({:.1} s/epoch training); link model {:.1} s at {:.0} bit/s \
         ({:.1} s of it weight updates)",
        out.seconds,
        out.seconds_per_epoch,
        out.link_seconds,
        out.link_bps,
        out.link_seconds_weight_updates
    );
    if let Some(t) = &out.tmr {
        println!("TMR          {} ({:.1} % extra MACs)", names(&t.protected), t.extra_macs_pct);
    }
    println!("{}", mitigation_line(out.mitigation, &out.bypass, Some(out.pruned_weights)));
    if let Some(r) = rotations_line(&out.rotations) {
        println!("{r}");
    }
    if let Some(t) = &out.triage {
        print_triage(t);
    }
    println!("checkpoint   {}", out.output);
}

/// The layers' tile rotations, in one line (none when all are (0, 0)).
pub fn rotations_line(rotations: &[[u8; 2]]) -> Option<String> {
    if rotations.is_empty() {
        return None;
    }
    let l: Vec<String> = rotations
        .iter()
        .enumerate()
        .map(|(i, r)| format!("layer {i} ({},{})", r[0], r[1]))
        .collect();
    Some(format!("rotations    {}", l.join(", ")))
}

/// The mitigation, the bypassed PEs and the pruned weights, in one line.
pub fn mitigation_line(m: Mitigation, bypass: &[[usize; 2]], pruned: Option<usize>) -> String {
    let pes: Vec<String> = bypass.iter().map(|[r, c]| format!("({r},{c})")).collect();
    let list = if pes.is_empty() { "none".to_string() } else { pes.join(" ") };
    let pruned = pruned.map(|p| format!(", {p} weights pruned")).unwrap_or_default();
    format!("mitigation   {m}: {} PEs bypassed ({list}){pruned}", bypass.len())
}

/// One line per triaged PE.
pub fn print_triage(t: &Triage) {
    println!(
        "triage       on {} ({} calibration images{})",
        t.device,
        t.calibration_samples,
        t.at_step.map(|s| format!(", after step {s}")).unwrap_or_default()
    );
    for p in &t.pes {
        let sites: Vec<String> = p
            .faults
            .iter()
            .map(|f| format!("{} sa0 {:#x} sa1 {:#x}", f.site, f.stuck_at_0, f.stuck_at_1))
            .collect();
        println!(
            "  PE ({:>2},{:>2}) {:<40} loss healthy {:.4}, faulty {:.4} (fault costs {:+.4}): {}",
            p.row,
            p.col,
            sites.join("; "),
            p.loss_healthy,
            p.loss_kept,
            p.fault_cost,
            if p.bypass { "bypass" } else { "keep" }
        );
    }
    if let Some(c) = &t.rotations {
        for l in &c.layers {
            println!(
                "  {:<8} rotation ({},{}): {:.1} % of its weight energy on bypassed PEs (was \
                 {:.1} %), loss {:.4} (was {:.4}; {} rotations measured)",
                l.name,
                l.rotation[0],
                l.rotation[1],
                100.0 * l.pruned_energy,
                100.0 * l.pruned_energy_start,
                l.loss,
                l.loss_start,
                l.measured
            );
        }
    }
}
