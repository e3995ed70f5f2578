//! `faultloop resilience`: the eFAT resilience map (fault rate × retraining
//! amount → accuracy over random chips) on the fast twin, sharded with
//! `--shard i/n`, and `faultloop resilience merge` to combine the shards.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use trainer::fleetjob::{self, JobEvent, ResilienceSpec, RunData, Shard};
use trainer::mitigate::Mitigation;
use trainer::resilience::{Least, ResilienceMap};
use trainer::retrain::RetrainConfig;

use super::DataArg;
use crate::output::print_json;
use crate::progress::Bar;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ResilienceCmd {
    #[command(subcommand)]
    pub sub: Option<ResilienceSub>,
    #[command(flatten)]
    pub run: ResilienceArgs,
}

#[derive(Subcommand)]
pub enum ResilienceSub {
    /// Combine shard files (or directories of shard or job files) into one map.
    Merge(MergeArgs),
}

#[derive(Args)]
pub struct ResilienceArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Checkpoint to measure.
    #[arg(long, required = true)]
    pub model: Option<PathBuf>,
    /// Device the chips are drawn for; sim:RxC runs on its fast twin model:RxC.
    #[arg(long, short = 'd', default_value = "model:16x16")]
    pub device: String,
    /// Fault rates (share of faulty PEs), comma-separated, ascending: 0.01,0.02,0.05.
    #[arg(long, required = true)]
    pub rates: Option<String>,
    /// Retraining amounts in epochs (0,0.25,0.5,1,2,4), or sample-steps with an
    /// `s` suffix (500s); 0 is the chip before retraining.
    #[arg(long, default_value = "0,0.25,0.5,1,2,4")]
    pub amounts: String,
    /// Random chips per rate.
    #[arg(long, default_value_t = 8)]
    pub chips_per_rate: usize,
    /// The accuracy floor, absolute (0-1): 0.8 is 80 %.
    #[arg(long, required = true)]
    pub accuracy: Option<f64>,
    /// The percentile (0-100) of each cell's chips that must meet the floor.
    #[arg(long, default_value_t = 10.0)]
    pub percentile: f64,
    /// Mitigation the chips are retrained with: fat, fap or auto.
    #[arg(long, default_value = "fat")]
    pub mitigate: Mitigation,
    /// Training examples per epoch (0 = the whole training set); an epoch of
    /// --amounts is this many sample-steps.
    #[arg(long, default_value_t = 4000)]
    pub train_samples: usize,
    /// Test images each chip is evaluated on (the first N).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Learning rate (Adam, constant: every amount is a prefix of one run).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Seed of every chip's fault map and training order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run only shard I of N (0-based, e.g. 0/4) and write a shard file to -o.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Where each finished chip's job file goes (default: OUTPUT's stem + .work).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Output: the map (resilience.json), or with --shard the shard file.
    #[arg(long, short = 'o', required = true)]
    pub output: Option<PathBuf>,
    /// Heatmap of the map: SVG or PNG, by the name's extension (.svg, .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print a JSON summary instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Shard files, job files, or directories of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output map (resilience.json).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// The accuracy floor (0-1) instead of the files' (the least amounts
    /// are recomputed; the samples stay).
    #[arg(long)]
    pub accuracy: Option<f64>,
    /// The percentile (0-100) instead of the files'.
    #[arg(long)]
    pub percentile: Option<f64>,
    /// Heatmap of the map: SVG or PNG, by the name's extension (.svg, .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print a JSON summary instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--json`.
#[derive(Serialize)]
struct Summary {
    output: String,
    shard: Option<String>,
    plot: Option<String>,
    jobs: usize,
    ran: usize,
    seconds: f64,
    clean_accuracy: f64,
    /// Absent for a shard (it has no map).
    least: Option<Vec<Least>>,
}

pub fn run(c: ResilienceCmd) -> Result<()> {
    match c.sub {
        Some(ResilienceSub::Merge(m)) => merge(m),
        None => measure(c.run),
    }
}

fn measure(a: ResilienceArgs) -> Result<()> {
    trainer::init_threads();
    let t0 = Instant::now();
    // clap enforces these (they are Options only so `merge` need not give them).
    let (model, rates, accuracy, output) = match (&a.model, &a.rates, a.accuracy, &a.output) {
        (Some(m), Some(r), Some(acc), Some(o)) => (m, r, acc, o),
        _ => anyhow::bail!("--model, --rates, --accuracy and -o are required"),
    };
    if !model.is_dir() {
        anyhow::bail!("--model {}: no checkpoint directory there", model.display());
    }
    let rates = fleetjob::parse_rates(rates)?;
    let amounts = fleetjob::parse_amounts(&a.amounts)?;
    let train = a.data.train()?;
    let test = a.data.test(Some(a.limit))?;
    let retrain = RetrainConfig {
        batch_size: a.batch,
        lr: a.lr,
        train_samples: a.train_samples,
        seed: a.seed,
        mitigation: a.mitigate,
        ..Default::default()
    };
    let epoch_samples = retrain.samples_per_epoch(train.len()) as u64;
    let mut amounts: Vec<u64> = amounts.iter().map(|x| x.samples(epoch_samples)).collect();
    amounts.sort_unstable();
    amounts.dedup();
    let spec = ResilienceSpec {
        model: model.display().to_string(),
        device: fleetjob::twin_device(&a.device)?,
        mitigation: a.mitigate,
        rates,
        amounts,
        chips_per_rate: a.chips_per_rate,
        accuracy,
        percentile: a.percentile,
        epoch_samples,
        seed: a.seed,
        test_samples: test.len(),
        retrain,
    };
    let work = a.work_dir.clone().unwrap_or_else(|| fleetjob::work_dir_for(output));
    let mut bar = Bar::new("resilience", 1);
    let mut done = 0;
    let out =
        fleetjob::run(&spec, &RunData { train: &train, test: &test }, a.shard, &work, &mut |e| {
            match e {
                JobEvent::Start { total, done: d } => {
                    bar.total = total;
                    done = d;
                    bar.set(done, format!("{d} from {}", work.display()));
                }
                JobEvent::Job { result, skipped } => {
                    if !skipped {
                        done += 1;
                    }
                    log::info!("job {:?}", result);
                    bar.set(
                        done,
                        format!(
                            "rate {} chip {}: {:.1} s",
                            result.rate, result.chip, result.seconds
                        ),
                    );
                }
                JobEvent::Step => {
                    let d = done;
                    bar.set(d, String::new());
                }
            }
        })?;
    bar.finish();
    let (least, plot) = match a.shard {
        Some(shard) => {
            fleetjob::write_shard(output, &fleetjob::shard_file(&spec, shard, &out))?;
            (None, None)
        }
        None => {
            let map = fleetjob::assemble(&spec, out.clean_accuracy, &out.jobs)?;
            fleetjob::write_map(output, &map)?;
            let plot = a.plot.as_deref().map(|p| write_plot(p, &map)).transpose()?;
            if !a.json {
                print_map(&map);
            }
            (Some(map.least), plot)
        }
    };
    let summary = Summary {
        output: output.display().to_string(),
        shard: a.shard.map(|s| s.to_string()),
        plot,
        jobs: out.jobs.len(),
        ran: out.ran,
        seconds: t0.elapsed().as_secs_f64(),
        clean_accuracy: out.clean_accuracy,
        least,
    };
    finish(&summary, a.json);
    Ok(())
}

fn merge(m: MergeArgs) -> Result<()> {
    let t0 = Instant::now();
    let floor = fleetjob::FloorOverride { accuracy: m.accuracy, percentile: m.percentile };
    let map = fleetjob::merge(&m.inputs, floor)?;
    fleetjob::write_map(&m.output, &map)?;
    let plot = m.plot.as_deref().map(|p| write_plot(p, &map)).transpose()?;
    if !m.json {
        print_map(&map);
    }
    let summary = Summary {
        output: m.output.display().to_string(),
        shard: None,
        plot,
        jobs: map.rates.len() * map.cells.first().map_or(0, |c| c.samples.len()),
        ran: 0,
        seconds: t0.elapsed().as_secs_f64(),
        clean_accuracy: map.clean_accuracy,
        least: Some(map.least),
    };
    finish(&summary, m.json);
    Ok(())
}

fn finish(s: &Summary, json: bool) {
    if json {
        print_json(s);
    } else {
        println!(
            "jobs         {} ({} run now) in {:.1} s; wrote {}{}",
            s.jobs,
            s.ran,
            s.seconds,
            s.output,
            s.plot.as_ref().map(|p| format!(" and {p}")).unwrap_or_default()
        );
    }
}

/// Write the heatmap, SVG or PNG by the name's extension. Returns the path written.
fn write_plot(path: &Path, map: &ResilienceMap) -> Result<String> {
    map.save_heatmap(path).with_context(|| format!("the heatmap {}", path.display()))?;
    Ok(path.display().to_string())
}

fn print_map(map: &ResilienceMap) {
    let epochs = |a: u64| a as f64 / map.epoch_samples.max(1) as f64;
    println!(
        "device       {} ({}), clean accuracy {:.2} %, floor {:.2} % at the {}th percentile",
        map.device,
        map.mitigation,
        100.0 * map.clean_accuracy,
        100.0 * map.accuracy,
        map.percentile
    );
    let head: Vec<String> = map.amounts.iter().map(|&a| format!("{:>7.3}", epochs(a))).collect();
    println!("rate \\ epochs {}   least", head.join(" "));
    for (&rate, l) in map.rates.iter().zip(&map.least) {
        let row: Vec<String> = map
            .amounts
            .iter()
            .map(|&a| {
                map.cell(rate, a).map_or("      -".into(), |c| {
                    format!(
                        "{:>7.2}",
                        100.0 * trainer::resilience::percentile(&c.samples, map.percentile)
                    )
                })
            })
            .collect();
        let least = l.amount.map_or("none".into(), |a| format!("{} ({a} samples)", epochs(a)));
        println!("{:>11.2} % {}   {least}", 100.0 * rate, row.join(" "));
    }
}
