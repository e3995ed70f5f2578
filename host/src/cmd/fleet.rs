//! `faultloop fleet`: plan the retraining of a fleet of chips in groups
//! that share a model (docs/fleet.md); `fleet merge` combines shards.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use faultloop_device::open::OpenOptions;
use serde::Serialize;
use trainer::fleet::{self, FleetPlan, JobContext, Shard, ShardReport};
use trainer::mitigate::Mitigation;
use trainer::resilience::ResilienceMap;
use trainer::retrain::RetrainConfig;

use super::{open_exec, DataArg};
use crate::output::print_json;
use crate::progress::Bar;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub cmd: Option<FleetCmd>,
    #[command(flatten)]
    pub data: DataArg,
    /// Pretrained checkpoint every group is retrained from.
    #[arg(long, required = true)]
    pub model: Option<PathBuf>,
    /// Directory of fault maps, one per chip: NAME.json (the chip's name is the stem).
    #[arg(long, required = true)]
    pub chips: Option<PathBuf>,
    /// Resilience map (resilience.json of `faultloop resilience`).
    #[arg(long, required = true)]
    pub resilience: Option<PathBuf>,
    /// Accuracy floor every chip must meet, absolute (0-1).
    #[arg(long, required = true)]
    pub accuracy: Option<f64>,
    /// Device the groups are retrained and the chips verified on (default:
    /// the resilience map's, e.g. model:16x16).
    #[arg(long, short = 'd')]
    pub device: Option<String>,
    /// Test images each chip is verified on (the first N).
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// Learning rate (Adam, cosine over the epochs of one retraining).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Batch size (an amount of A sample-steps is about A / batch steps).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Seed of every random draw (same seed, same plan).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run only the retraining jobs of shard I of N (job k where k % N == I);
    /// then `fleet merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Plan directory: plan.json, grouping.json, jobs/, checkpoints, plots.
    #[arg(long, short = 'o', required = true)]
    pub output: Option<PathBuf>,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum FleetCmd {
    /// Combine the shards' job results in a plan directory into plan.json.
    Merge(MergeArgs),
}

#[derive(Args)]
pub struct MergeArgs {
    /// Plan directory every shard wrote into.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `--json`.
#[derive(Serialize)]
struct FleetOut<'a> {
    output: String,
    shard: Option<String>,
    ran: &'a [String],
    skipped: &'a [String],
    /// Absent for a shard of several (run `fleet merge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a FleetPlan>,
    seconds: f64,
}

fn summary(p: &FleetPlan) {
    println!(
        "{} chips in {} groups; {} of {} meet the floor {:.2} %",
        p.chips.len(),
        p.groups.len(),
        p.chips_meeting_floor,
        p.chips.len(),
        100.0 * p.floor
    );
    println!(
        "retraining: {} sample-steps grouped, {} per chip ({:.2}x less)",
        p.grouped_cost,
        p.per_chip_cost,
        p.per_chip_cost as f64 / p.grouped_cost.max(1) as f64
    );
}

pub fn run(a: FleetArgs, open: &OpenOptions) -> Result<()> {
    if let Some(FleetCmd::Merge(m)) = a.cmd {
        let p = fleet::merge(&m.output)?;
        if m.json {
            print_json(&p);
        } else {
            summary(&p);
        }
        return Ok(());
    }
    trainer::init_threads();
    let t0 = Instant::now();
    // clap enforces these without a subcommand.
    let (Some(model), Some(chips_dir), Some(res_path), Some(floor), Some(output)) =
        (a.model, a.chips, a.resilience, a.accuracy, a.output)
    else {
        anyhow::bail!("--model, --chips, --resilience, --accuracy and -o are required");
    };
    if !(0.0..=1.0).contains(&floor) {
        anyhow::bail!("--accuracy {floor}: the floor is an absolute accuracy in 0-1");
    }
    let text = std::fs::read(&res_path)
        .with_context(|| format!("reading resilience map {}", res_path.display()))?;
    let res: ResilienceMap = serde_json::from_slice(&text)
        .with_context(|| format!("resilience map {}", res_path.display()))?;
    let device = a.device.unwrap_or_else(|| res.device.clone());
    let (rows, cols) = {
        let e = open_exec(&device, open, None)?;
        (e.info().rows, e.info().cols)
    };
    let chips = fleet::load_chips(&chips_dir, Some((rows, cols)))
        .with_context(|| format!("the chips for {device} ({rows}x{cols})"))?;
    let grouping = fleet::plan(&chips, &res, floor);
    let test = a.data.test(Some(a.limit))?;
    let train = a.data.train()?;
    // Retrain as the resilience map was measured (fat, fap or auto).
    let mitigation: Mitigation =
        res.mitigation.parse().with_context(|| format!("resilience map {}", res_path.display()))?;
    let config = RetrainConfig {
        mitigation,
        batch_size: a.batch,
        lr: a.lr,
        seed: a.seed,
        checkpoint_every: 0,
        ..Default::default()
    };
    let ctx = JobContext { model: &model, device: &device, train: &train, test: &test, config };
    let shard = a.shard.unwrap_or(Shard::ALL);
    let mut bar = Bar::new("fleet", 1);
    let rep: ShardReport =
        fleet::run_shard(&ctx, &grouping, &output, shard, &mut |id, n, total| {
            bar.total = total;
            bar.set(n, format!("group {id}"));
        })?;
    bar.finish();
    let plan = if shard.count == 1 { Some(fleet::merge(&output)?) } else { None };
    let out = FleetOut {
        output: output.display().to_string(),
        shard: a.shard.map(|s| format!("{}/{}", s.index, s.count)),
        ran: &rep.ran,
        skipped: &rep.skipped,
        plan: plan.as_ref(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    if a.json {
        print_json(&out);
    } else {
        match &plan {
            Some(p) => summary(p),
            None => println!(
                "shard {}/{}: ran {:?}, skipped {:?}; then `faultloop fleet merge -o {}`",
                shard.index,
                shard.count,
                rep.ran,
                rep.skipped,
                output.display()
            ),
        }
        println!("{:.1} s", out.seconds);
    }
    Ok(())
}
