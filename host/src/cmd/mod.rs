//! One module per command: its clap arguments and `run` (arguments → one
//! library call → output). The flags several commands share are the
//! `#[command(flatten)]` structs below, with the loaders they need.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use faultloop_device::open::{DeviceSpec, OpenOptions};
use faultloop_proto::faultmap::FaultMap;
use trainer::data::{Dataset, Split, DEFAULT_DIR};
use trainer::link_model::DEFAULT_LINK_BPS;
use trainer::DeviceMatmul;

pub mod bench;
pub mod board;
pub mod characterize;
pub mod demo;
pub mod eval;
pub mod export;
pub mod faults;
pub mod fleet;
pub mod import;
pub mod info;
pub mod matmul;
pub mod plot;
pub mod pretrain;
pub mod resilience;
pub mod retrain;
pub mod serve;
pub mod verify;

/// `--device`.
#[derive(Args, Clone)]
pub struct DeviceArg {
    // `help`, not a doc comment: rustdoc would read `[@baud]` as a link.
    #[arg(
        long,
        short = 'd',
        default_value = "sim",
        help = "sim | sim:RxC | model | model:RxC | serial:/dev/ttyUSB0[@baud] | tcp://host:port; \
                sim/model chips with hidden defects: DEV+defects=FILE[+seu=RATE@SEED]"
    )]
    pub device: String,
}

impl DeviceArg {
    pub fn spec(&self) -> Result<DeviceSpec> {
        self.device.parse::<DeviceSpec>().map_err(anyhow::Error::from)
    }
}

/// `--faults`.
#[derive(Args, Clone)]
pub struct FaultsArg {
    /// Fault map to apply before running.
    #[arg(long)]
    pub faults: Option<PathBuf>,
}

impl FaultsArg {
    pub fn load(&self) -> Result<Option<FaultMap>> {
        // The error names the file.
        Ok(self.faults.as_deref().map(FaultMap::load).transpose()?)
    }

    /// The path as printed in reports.
    pub fn display(&self) -> Option<String> {
        self.faults.as_ref().map(|p| p.display().to_string())
    }
}

/// `--link-bps`.
#[derive(Args, Clone)]
pub struct LinkArg {
    /// Link speed of the bandwidth model (bits/s, 8N1).
    #[arg(long, default_value_t = DEFAULT_LINK_BPS)]
    pub link_bps: f64,
}

/// The device flags of `eval` and `retrain`: which device, which faults,
/// how much TMR.
#[derive(Args, Clone)]
pub struct DeviceRunArgs {
    #[command(flatten)]
    pub dev: DeviceArg,
    #[command(flatten)]
    pub faults: FaultsArg,
    /// Protect the most vulnerable layers with partial TMR under this budget (% extra MACs).
    #[arg(long)]
    pub tmr_budget: Option<f64>,
}

/// `--data-dir`.
#[derive(Args, Clone)]
pub struct DataArg {
    /// MNIST-format data directory (Fashion-MNIST by default).
    #[arg(long, default_value = DEFAULT_DIR)]
    pub data_dir: PathBuf,
}

impl DataArg {
    /// The test split, or its first `limit` images.
    pub fn test(&self, limit: Option<usize>) -> Result<Dataset> {
        let dir = &self.data_dir;
        let t = Dataset::load(dir, Split::Test)
            .with_context(|| format!("test data in {}", dir.display()))?;
        Ok(match limit {
            Some(n) if n > 0 => t.take(n),
            _ => t,
        })
    }

    pub fn train(&self) -> Result<Dataset> {
        let dir = &self.data_dir;
        Dataset::load(dir, Split::Train)
            .with_context(|| format!("training data in {}", dir.display()))
    }
}

/// The DLA-backed executor on `device`, RESET, with `faults` applied.
pub fn open_exec(
    device: &str,
    opts: &OpenOptions,
    faults: Option<&FaultMap>,
) -> Result<DeviceMatmul> {
    DeviceMatmul::open_with(device, opts, faults)
        .with_context(|| format!("opening device {device}"))
}

/// A fast twin of `dev` for measurements (the triage of `--mitigate
/// auto`): `model:RxC` for `sim:RxC`, opened with the same faults; `None`
/// where the twin is the device itself (model, serial, tcp), so the
/// measurements run on the executor.
pub fn open_twin(
    dev: &DeviceArg,
    opts: &OpenOptions,
    faults: Option<&FaultMap>,
) -> Result<Option<DeviceMatmul>> {
    let spec = dev.spec()?;
    let twin = spec.fast_twin();
    if twin == spec {
        return Ok(None);
    }
    open_exec(&twin.to_string(), opts, faults).map(Some)
}

/// The context of a `trainer::checkpoint::load` error.
pub fn loading(path: &Path) -> String {
    format!("loading checkpoint {}", path.display())
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
