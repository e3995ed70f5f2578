//! The work behind each command, separate from argument parsing and printing.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use faultloop_device::client::Device;
use faultloop_device::open::DeviceSpec;
use faultloop_proto::faultmap::{FaultMap, RandomOptions};
use faultloop_proto::rng::Rng;
use faultloop_proto::{Counters, Info};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// INFO of a device.
pub fn info(spec: &DeviceSpec) -> Result<(String, Info)> {
    let mut dev = Device::open_spec(spec)?;
    let info = dev.info()?;
    Ok((dev.name().to_string(), info))
}

/// Parse `RxC`.
pub fn parse_array(s: &str) -> Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("array size `{s}`: expected ROWSxCOLS, e.g. 16x16");
    let (r, c) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let r: usize = r.parse().map_err(|_| bad())?;
    let c: usize = c.parse().map_err(|_| bad())?;
    if r == 0 || c == 0 {
        return Err(bad());
    }
    Ok((r, c))
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
pub fn operands(job: &MatmulJob) -> (Vec<i8>, Vec<i8>) {
    let mut rng = Rng::new(job.seed);
    let mut a = vec![0i8; job.m * job.k];
    let mut w = vec![0i8; job.k * job.n];
    rng.fill_i8(&mut a);
    rng.fill_i8(&mut w);
    (a, w)
}

/// SHA-256 of int32 results as row-major little-endian bytes, in hex.
pub fn sha256_i32(y: &[i32]) -> String {
    let mut h = Sha256::new();
    for v in y {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Open the device, reset it, load W at address 0, apply the fault map, run.
pub fn matmul(
    spec: &DeviceSpec,
    faults: Option<&FaultMap>,
    job: &MatmulJob,
) -> Result<MatmulOutcome> {
    if job.m == 0 || job.k == 0 || job.n == 0 {
        bail!("--m, --k and --n must be at least 1 (got {}x{}x{})", job.m, job.k, job.n);
    }
    let mut dev = Device::open_spec(spec)?;
    run_matmul(&mut dev, faults, job)
}

/// [`matmul`] on an open device.
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

/// `sim` and `model` on the same operands and fault map, in one process.
pub fn bench(
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

    let mut sim = Device::open_spec(&DeviceSpec::Sim { rows, cols })?;
    let s = run_matmul(&mut sim, Some(&map), &job).context("bench on sim")?;
    let sim_cycles_per_s = s.link_cycles.map_or(f64::NAN, |c| c as f64 / s.seconds.max(1e-12));

    let mut model = Device::open_spec(&DeviceSpec::Model { rows, cols })?;
    let md = run_matmul(&mut model, Some(&map), &job).context("bench on model")?;

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
