//! `faultloop bench`: useful MAC/s of `sim` and `model` on one matmul.
use anyhow::{Context, Result};
use clap::Args;
use faultloop_device::client::Device;
use faultloop_device::open::DeviceSpec;
use faultloop_proto::faultmap::{FaultMap, RandomOptions};
use serde::Serialize;

use super::matmul::{run_matmul, MatmulJob};
use super::parse_array;
use crate::output::print_json;
use crate::progress::Bar;

#[derive(Args)]
pub struct BenchArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Rows of the activation matrix (M of M x K x N).
    #[arg(long, default_value_t = 256)]
    pub m: usize,
    /// Inner dimension (K of M x K x N).
    #[arg(long, default_value_t = 512)]
    pub k: usize,
    /// Output columns (N of M x K x N).
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// Fault rate of the random map.
    #[arg(long, default_value_t = 0.05)]
    pub rate: f64,
    /// Seed of the operands and the fault map.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Array size `RxC` of both devices.
    #[arg(long, default_value = "16x16")]
    pub array: String,
}

#[derive(Serialize)]
pub struct BenchOutcome {
    pub array: String,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub fault_rate: f64,
    pub faulty_pes: usize,
    pub sim_macs_per_s: f64,
    pub model_macs_per_s: f64,
    pub model_over_sim: f64,
    /// Simulated clock cycles per wall second during the sim's MATMUL (all of
    /// them: frame I/O, weight loads and compute).
    pub sim_cycles_per_s: f64,
    pub sim_seconds: f64,
    pub model_seconds: f64,
    /// Whether both devices returned the same results (they must).
    pub agree: bool,
    pub sha256: String,
}

pub fn run(b: BenchArgs) -> Result<()> {
    let (rows, cols) = parse_array(&b.array)?;
    let out = bench(rows, cols, b.m, b.k, b.n, b.rate, b.seed)?;
    print(&out, b.json);
    Ok(())
}

/// `sim` and `model` on the same operands and fault map, in one process.
fn bench(
    rows: usize,
    cols: usize,
    m: usize,
    k: usize,
    n: usize,
    rate: f64,
    seed: u64,
) -> Result<BenchOutcome> {
    let map = FaultMap::random(rows, cols, rate, seed, &RandomOptions::default())?;
    let job = MatmulJob { m, k, n, seed, rotate: (0, 0) };

    // Two timed runs: the bar shows which one is under way.
    let mut bar = Bar::new("bench", 2);
    bar.set(0, format!("sim:{rows}x{cols}"));
    let mut sim = Device::open_spec(&DeviceSpec::Sim { rows, cols })?;
    let s = run_matmul(&mut sim, Some(&map), &job).context("bench on sim")?;
    bar.set(1, format!("model:{rows}x{cols}"));
    let sim_cycles_per_s = s.link_cycles.map_or(f64::NAN, |c| c as f64 / s.seconds.max(1e-12));

    let mut model = Device::open_spec(&DeviceSpec::Model { rows, cols })?;
    let md = run_matmul(&mut model, Some(&map), &job).context("bench on model")?;
    bar.set(2, String::new());
    bar.finish();

    Ok(BenchOutcome {
        array: format!("{rows}x{cols}"),
        m,
        k,
        n,
        fault_rate: rate,
        faulty_pes: map.faulty_pes(),
        sim_macs_per_s: s.macs_per_s,
        model_macs_per_s: md.macs_per_s,
        model_over_sim: md.macs_per_s / s.macs_per_s,
        sim_cycles_per_s,
        sim_seconds: s.seconds,
        model_seconds: md.seconds,
        agree: s.sha256 == md.sha256,
        sha256: s.sha256,
    })
}

fn print(o: &BenchOutcome, json: bool) {
    if json {
        print_json(o);
    } else {
        println!(
            "{}x{}x{} on {} with {:.0} % faults ({} PEs)",
            o.m,
            o.k,
            o.n,
            o.array,
            100.0 * o.fault_rate,
            o.faulty_pes
        );
        println!(
            "sim     {:.3e} MAC/s ({:.2} s, {:.3e} cycles/s)",
            o.sim_macs_per_s, o.sim_seconds, o.sim_cycles_per_s
        );
        println!("model   {:.3e} MAC/s ({:.3} s)", o.model_macs_per_s, o.model_seconds);
        println!("ratio   model/sim = {:.1}", o.model_over_sim);
        println!("agree   {}", o.agree);
    }
}
