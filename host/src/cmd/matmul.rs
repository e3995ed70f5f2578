//! `faultloop matmul`: one random int8 matmul on a device, its SHA-256.
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use faultloop_device::client::Device;
use faultloop_device::open::{DeviceSpec, OpenOptions};
use faultloop_proto::faultmap::FaultMap;
use faultloop_proto::rng::Rng;
use faultloop_proto::Counters;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{DeviceArg, FaultsArg};
use crate::output::print_json;

#[derive(Args)]
pub struct MatmulArgs {
    #[command(flatten)]
    pub dev: DeviceArg,
    #[command(flatten)]
    pub faults: FaultsArg,
    /// Tile rotation `r,c` (partial TMR runs a layer on rotated PEs).
    #[arg(long, value_parser = parse_pair)]
    pub rotate: Option<(u8, u8)>,
    /// Rows of the activation matrix (M of M x K x N).
    #[arg(long)]
    pub m: usize,
    /// Inner dimension (K of M x K x N).
    #[arg(long)]
    pub k: usize,
    /// Output columns (N of M x K x N).
    #[arg(long)]
    pub n: usize,
    /// Seed of the random A (m x k) and W (k x n), the same generator on every device.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_pair(s: &str) -> Result<(u8, u8), String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("`{s}`: expected `r,c`"))?;
    let p = |x: &str| x.trim().parse::<u8>().map_err(|e| format!("`{s}`: {e}"));
    Ok((p(a)?, p(b)?))
}

pub fn run(a: MatmulArgs, open: &OpenOptions) -> Result<()> {
    let faults = a.faults.load()?;
    let job =
        MatmulJob { m: a.m, k: a.k, n: a.n, seed: a.seed, rotate: a.rotate.unwrap_or((0, 0)) };
    let spec = a.dev.spec()?;
    let out =
        matmul(&spec, open, faults.as_ref(), &job).with_context(|| format!("matmul on {spec}"))?;
    print(&out, a.json);
    Ok(())
}

/// Open the device and [`run_matmul`].
fn matmul(
    spec: &DeviceSpec,
    open: &OpenOptions,
    faults: Option<&FaultMap>,
    job: &MatmulJob,
) -> Result<MatmulOutcome> {
    if job.m == 0 || job.k == 0 || job.n == 0 {
        bail!("--m, --k and --n must be at least 1 (got {}x{}x{})", job.m, job.k, job.n);
    }
    let mut dev = Device::open_with(spec, open)?;
    run_matmul(&mut dev, faults, job)
}

/// A random int8 matmul: A (m x k) then W (k x n) drawn from one [`Rng`] seeded
/// with `seed`, so every device sees the same operands.
pub struct MatmulJob {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub seed: u64,
    pub rotate: (u8, u8),
}

#[derive(Serialize)]
pub struct MatmulOutcome {
    pub device: String,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub seed: u64,
    pub rotate: [u8; 2],
    /// SHA-256 of the int32 results, row-major, little-endian.
    pub sha256: String,
    /// Wall time of the MATMUL request(s) alone.
    pub seconds: f64,
    /// Useful MACs (m*k*n).
    pub macs: u64,
    pub macs_per_s: f64,
    /// Device counters after the run (cycles: array-busy cycles).
    pub device_cycles: u64,
    pub flips: u64,
    pub bytes_to_device: u64,
    pub bytes_from_device: u64,
    /// Simulated clock cycles the MATMUL took (Verilated devices only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_cycles: Option<u64>,
}

/// The operands of a [`MatmulJob`].
fn operands(job: &MatmulJob) -> (Vec<i8>, Vec<i8>) {
    let mut rng = Rng::new(job.seed);
    let mut a = vec![0i8; job.m * job.k];
    let mut w = vec![0i8; job.k * job.n];
    rng.fill_i8(&mut a);
    rng.fill_i8(&mut w);
    (a, w)
}

/// SHA-256 of int32 results as row-major little-endian bytes, in hex.
fn sha256_i32(y: &[i32]) -> String {
    let mut h = Sha256::new();
    for v in y {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reset the device, load W at address 0, apply the fault map, run.
pub fn run_matmul(
    dev: &mut Device,
    faults: Option<&FaultMap>,
    job: &MatmulJob,
) -> Result<MatmulOutcome> {
    let (a, w) = operands(job);
    dev.reset()?;
    dev.load_matrix(0, job.k, job.n, &w)?;
    match faults {
        Some(map) => dev.apply_fault_map(map)?,
        None => dev.clear_faults()?,
    }
    let before: Counters = dev.counters()?;
    let (sent0, recv0) = (dev.bytes_sent(), dev.bytes_received());
    let c0 = dev.link_mut().sim_cycles();
    let t = Instant::now();
    let y = dev.matmul(0, job.m, job.k, job.n, job.rotate, &a)?;
    let seconds = t.elapsed().as_secs_f64();
    let link_cycles = dev.link_mut().sim_cycles().zip(c0).map(|(c1, c0)| c1 - c0);
    let (sent, recv) = (dev.bytes_sent() - sent0, dev.bytes_received() - recv0);
    let after = dev.counters()?.since(&before);
    let macs = (job.m * job.k * job.n) as u64;
    Ok(MatmulOutcome {
        device: dev.name().to_string(),
        m: job.m,
        k: job.k,
        n: job.n,
        seed: job.seed,
        rotate: [job.rotate.0, job.rotate.1],
        sha256: sha256_i32(&y),
        seconds,
        macs,
        macs_per_s: macs as f64 / seconds.max(1e-12),
        device_cycles: after.cycles,
        flips: after.flips,
        bytes_to_device: sent,
        bytes_from_device: recv,
        link_cycles,
    })
}

fn print(o: &MatmulOutcome, json: bool) {
    if json {
        print_json(o);
    } else {
        println!("device     {}", o.device);
        println!("dims       {}x{}x{} (rotation {},{})", o.m, o.k, o.n, o.rotate[0], o.rotate[1]);
        println!("sha256     {}", o.sha256);
        println!("time       {:.3} s, {:.3e} MAC/s", o.seconds, o.macs_per_s);
        println!("device     {} busy cycles, {} transient flips", o.device_cycles, o.flips);
        println!(
            "link       {} bytes to, {} bytes from the device",
            o.bytes_to_device, o.bytes_from_device
        );
    }
}
