//! `faultloop eval`: accuracy of a checkpoint with every matmul on a device,
//! optionally faulty and partially TMR-protected.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use faultloop_device::open::OpenOptions;
use faultloop_proto::faultmap::FaultMap;
use serde::Serialize;
use trainer::checkpoint;
use trainer::experiment;
use trainer::link_model::link_seconds;
use trainer::mitigate::{self, Mitigation, Triage};
use trainer::tmr::Protection;

use super::retrain::{mitigation_line, print_triage, rotations_line};
use super::{loading, open_exec, open_twin, DataArg, DeviceRunArgs, LinkArg};
use crate::output::{device_line, names, print_json, sorted};
use crate::progress::Bar;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub run: DeviceRunArgs,
    /// Evaluate the first N test images (default all 10 000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images per evaluation batch.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Bypass applied (no retraining): none (faults as they are), fat (the
    /// checkpoint's bypass list), fap (plus every faulty PE), auto (plus the
    /// PEs a per-PE triage picks); default: as the checkpoint records.
    #[arg(long)]
    pub mitigate: Option<Mitigation>,
    /// auto: training images the triage measures each PE on (seeded draw).
    #[arg(long, default_value_t = 1000)]
    pub triage_samples: usize,
    /// auto: seed of the calibration draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// auto: keep every layer at rotation (0, 0) instead of choosing the
    /// rotation that puts the least-needed weights on the bypassed PEs.
    #[arg(long)]
    pub no_triage_rotation: bool,
    #[command(flatten)]
    pub link: LinkArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--json`.
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
    mitigation: Mitigation,
    /// PEs bypassed on top of the fault map, as `[row, col]`.
    bypass: Vec<[usize; 2]>,
    /// `[dr, dc]` of each layer's runs (empty: all (0, 0)).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rotations: Vec<[u8; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    triage: Option<Triage>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "sorted")]
    tmr: Option<Protection>,
}

pub fn run(a: EvalArgs, open: &OpenOptions) -> Result<()> {
    trainer::init_threads();
    let (_vs, model, meta) = checkpoint::load(&a.model).with_context(|| loading(&a.model))?;
    let test = a.data.test(a.limit)?;
    let faults = a.run.faults.load()?;
    let t0 = Instant::now();
    let mut exec = open_exec(&a.run.dev.device, open, faults.as_ref())?;
    let auto = a.mitigate == Some(Mitigation::Auto);
    let calib = if auto {
        Some(mitigate::calibration_subset(&a.data.train()?, &[], a.triage_samples, a.seed))
    } else {
        None
    };
    let mut twin = if auto { open_twin(&a.run.dev, open, faults.as_ref())? } else { None };
    exec.install_model(&model)?;
    let auto_opts = calib.as_ref().map(|calib| mitigate::AutoOptions {
        calib,
        batch: a.batch,
        rotations: !a.no_triage_rotation,
    });
    let mit = mitigate::for_eval(
        &model,
        a.mitigate,
        meta.mitigation.as_ref(),
        &mut exec,
        twin.as_mut(),
        auto_opts,
    )?;
    let mut bar = Bar::new("eval", test.len());
    let r =
        experiment::evaluate_on_device(&model, &test, a.batch, &mut exec, a.run.tmr_budget, |p| {
            bar.eval(p)
        })?;
    bar.finish();
    let out = EvalOut {
        model: a.model.display().to_string(),
        device: exec.device_name().to_string(),
        faults: a.run.faults.display(),
        fault_rate: faults.as_ref().map_or(0.0, FaultMap::fault_rate),
        accuracy: r.accuracy,
        samples: r.samples,
        macs: r.usage.device_macs,
        seconds: r.seconds,
        bytes_to_device: r.usage.bytes_to_device,
        bytes_from_device: r.usage.bytes_from_device,
        link_bps: a.link.link_bps,
        link_seconds: link_seconds(
            r.usage.bytes_to_device + r.usage.bytes_from_device,
            a.link.link_bps,
        ),
        mitigation: mit.mitigation,
        bypass: mit.bypass,
        rotations: mit.rotations,
        triage: mit.triage,
        tmr: r.protection,
    };
    log::info!("eval total {:.1} s (with device setup)", t0.elapsed().as_secs_f64());
    if a.json {
        print_json(&out);
    } else {
        println!("model        {}", out.model);
        println!("{}", device_line(&out.device, out.faults.as_deref(), out.fault_rate));
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
            println!("TMR          {}", names(&t.protected));
        }
        println!("{}", mitigation_line(out.mitigation, &out.bypass, None));
        if let Some(r) = rotations_line(&out.rotations) {
            println!("{r}");
        }
        if let Some(t) = &out.triage {
            print_triage(t);
        }
    }
    Ok(())
}
