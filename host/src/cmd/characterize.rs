//! `faultloop characterize`: find a chip's permanent faults over the wire
//! and write them as a fault map.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use faultloop_characterize::{characterize, Options};
use faultloop_device::client::Device;
use faultloop_device::open::OpenOptions;

use super::DeviceArg;
use crate::output::{note, print_json};
use crate::progress::Bar;

#[derive(Args)]
pub struct CharacterizeArgs {
    #[command(flatten)]
    pub dev: DeviceArg,
    /// Where to write the discovered fault map (JSON, docs/protocol.md §7).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Runs of every test MATMUL; above 1, a per-bit majority out-votes soft
    /// errors the chip makes itself (which SET_SEU cannot switch off).
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Give up when discovery takes longer than this many seconds (the
    /// functional check stops early instead).
    #[arg(long)]
    pub budget_s: Option<f64>,
    /// Random workloads in the functional check of the discovered map.
    #[arg(long, default_value_t = 24)]
    pub verify: usize,
    /// Seed of the functional check's workloads.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: CharacterizeArgs, open: &OpenOptions) -> Result<()> {
    let spec = a.dev.spec()?;
    let mut dev = Device::open_with(&spec, open)?;
    let opts = Options {
        repeats: a.repeats,
        budget: a.budget_s.map(Duration::from_secs_f64),
        verify_workloads: a.verify,
        seed: a.seed,
    };
    let mut bar = Bar::new("characterize", 1);
    let report = characterize(&mut dev, &opts, &mut |p| {
        bar.total = p.total;
        bar.set(p.done, p.phase.to_string());
    })
    .with_context(|| format!("characterising {spec}"))?;
    bar.finish();
    report.map.save(&a.output)?;
    if a.json {
        print_json(&report);
    } else {
        let v = &report.verification;
        note(format!(
            "{}: {}x{}, {} faulty PEs ({:.2} %), {} fault entries -> {}",
            report.device,
            report.rows,
            report.cols,
            report.faulty_pes,
            100.0 * report.fault_rate,
            report.faults_found,
            a.output.display()
        ));
        note(format!(
            "  {} patterns, {} MATMULs, {} configurations, {} requests in {:.1} s",
            report.patterns, report.matmuls, report.configurations, report.requests, report.seconds
        ));
        note(format!("  transients: {}", report.transients));
        let open: usize = report.unobservable.len();
        note(format!(
            "  unobservable: {open} registers (act registers of the last column and any bits \
             no workload drove; listed with --json)"
        ));
        note(format!(
            "  functional check: {} of {} random workloads agree bit for bit with the model{}",
            v.agreed,
            v.workloads,
            if v.ok { "" } else { "  <-- MISMATCH" }
        ));
        if !report.inconsistent.is_empty() {
            note(format!("  inconsistent PEs (try --repeats): {:?}", report.inconsistent));
        }
    }
    if !report.verification.ok {
        anyhow::bail!(
            "{}: the discovered map does not reproduce the chip ({} of {} workloads agree); \
             map written to {} anyway",
            report.device,
            report.verification.agreed,
            report.verification.workloads,
            a.output.display()
        );
    }
    Ok(())
}
