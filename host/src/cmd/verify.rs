//! `faultloop verify`: the RTL-vs-model differential regression (random
//! request programs, byte-for-byte replies; shrink, replay file, waveform
//! and the first differing field on a mismatch; JUnit XML for CI).
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use faultloop_device::open::{DeviceSpec, OpenOptions};
use faultloop_device::shard::Shard;
use faultloop_device::verify::{self, junit::junit_xml, VerifyConfig};

use crate::output::print_json;

#[derive(Args)]
pub struct VerifyArgs {
    #[arg(
        long,
        short = 'd',
        help = "Device under test: sim | sim:RxC (any device string works; default sim, \
                with --replay the case file's)"
    )]
    pub device: Option<String>,
    /// Reference device (default: the device's golden-model twin, model:RxC).
    #[arg(long)]
    pub against: Option<String>,
    /// Cases of the whole run (all shards together).
    #[arg(long, default_value_t = 200)]
    pub cases: usize,
    /// Seed of the run; case k's program comes from (seed, k).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run only cases k with k mod n = i (CI runners, Slurm array tasks).
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Write a JUnit XML report here (one testcase per case).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Directory for the failing case's replay file.
    #[arg(long, default_value = "verify-failures")]
    pub case_dir: PathBuf,
    /// Directory for the failing case's FST waveform (default: --case-dir).
    #[arg(long)]
    pub trace_dir: Option<PathBuf>,
    /// Replay a case file instead of a random run (--device/--against override its devices).
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

fn spec(s: &str) -> Result<DeviceSpec> {
    s.parse::<DeviceSpec>().map_err(anyhow::Error::from)
}

pub fn run(a: VerifyArgs, open: &OpenOptions) -> Result<()> {
    if let Some(case) = &a.replay {
        return replay(&a, case, open);
    }
    let device = spec(a.device.as_deref().unwrap_or("sim"))?;
    let against = match &a.against {
        Some(s) => spec(s)?,
        None => device.fast_twin(),
    };
    let cfg = VerifyConfig {
        device,
        against,
        cases: a.cases,
        seed: a.seed,
        shard: a.shard.unwrap_or(Shard::ALL),
        case_dir: a.case_dir.clone(),
        trace_dir: a.trace_dir.clone(),
    };
    let rep = verify::run(&cfg, open, &mut |c| {
        log::debug!("case {}: {:?} ({} requests)", c.case, c.status, c.requests)
    })?;
    if let Some(p) = &a.junit {
        std::fs::write(p, junit_xml(&rep)).with_context(|| format!("writing {}", p.display()))?;
    }
    if a.json {
        print_json(&rep);
    } else {
        let run = rep.cases.iter().filter(|c| c.requests > 0).count();
        println!(
            "verify {} against {}: {run} cases (shard {} of {} in all, seed {}), {} requests, {:.2} s, {:.1} cases/s",
            rep.device, rep.against, rep.shard, rep.cases_total, rep.seed, rep.requests, rep.seconds,
            rep.cases_per_s
        );
        if rep.passed {
            println!("all replies byte-identical");
        }
    }
    if let Some(f) = &rep.failure {
        eprint!("{}", f.details());
        bail!("{}", f.message);
    }
    Ok(())
}

fn replay(a: &VerifyArgs, case: &std::path::Path, open: &OpenOptions) -> Result<()> {
    let device = a.device.as_deref().map(spec).transpose()?;
    let against = a.against.as_deref().map(spec).transpose()?;
    let trace = a.trace_dir.as_ref().map(|d| {
        let stem = case.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        d.join(format!("{stem}.replay.fst"))
    });
    if let Some(d) = &a.trace_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let rep = verify::replay(case, device, against, trace, open)?;
    if a.json {
        print_json(&rep);
    } else {
        println!(
            "replay {}: {} requests on {} against {}",
            rep.case_file.display(),
            rep.requests,
            rep.device,
            rep.against
        );
        if let Some(w) = &rep.waveform {
            println!("waveform {}", w.display());
        }
        if rep.passed {
            println!("all replies byte-identical");
        }
    }
    match &rep.mismatch {
        Some(m) => bail!("{m}"),
        None => Ok(()),
    }
}
