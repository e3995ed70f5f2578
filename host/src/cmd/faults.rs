//! `faultloop faults random | check | plot`: make, check and draw fault maps.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use faultloop_proto::faultmap::{FaultMap, Polarity, RandomOptions};
use faultloop_proto::Site;
use serde::Serialize;

use crate::output::print_json_sorted;

#[derive(Subcommand)]
pub enum FaultsCmd {
    /// A reproducible random fault map.
    Random {
        /// Array rows of the map.
        #[arg(long, default_value_t = 16)]
        rows: usize,
        /// Array columns of the map.
        #[arg(long, default_value_t = 16)]
        cols: usize,
        /// Fraction of faulty PEs, 0..1.
        #[arg(long)]
        rate: f64,
        /// Seed of the map (same seed, same map).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sites a fault may hit (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "psum,act,weight")]
        sites: Vec<Site>,
        /// Stuck-at polarity of the random faults.
        #[arg(long, value_enum, default_value_t = PolarityArg::Both)]
        polarity: PolarityArg,
        /// Transient single-bit flip probability per MAC (0 = none).
        #[arg(long, default_value_t = 0.0)]
        seu_rate: f64,
        /// Seed of the transient-flip hash (with --seu-rate).
        #[arg(long, default_value_t = 1)]
        seu_seed: u32,
        /// Stuck bits per faulty PE, LO-HI (e.g. 1-3); absent: one bit, the
        /// original draw (docs/protocol.md §7.5).
        #[arg(long, value_parser = parse_bits)]
        bits: Option<(u32, u32)>,
        /// Output file (stdout when absent).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Validate a fault map and summarise it.
    Check {
        /// The fault map (JSON) to check.
        map: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Draw a fault map as a heatmap of the array: each faulty PE coloured
    /// by site and labelled with its stuck bits, bypassed PEs crossed out.
    Plot {
        /// The fault map (JSON) to draw.
        map: PathBuf,
        /// Output image: SVG or PNG, by the name's extension (.svg, .png).
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// More bypassed PEs to mark, from a JSON file: a list of [row, col],
        /// or an object with a `bypass` list (a fault map, `eval --json`).
        /// Repeatable.
        #[arg(long)]
        bypass: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PolarityArg {
    Both,
    Sa0,
    Sa1,
}

impl From<PolarityArg> for Polarity {
    fn from(p: PolarityArg) -> Polarity {
        match p {
            PolarityArg::Both => Polarity::Both,
            PolarityArg::Sa0 => Polarity::Sa0,
            PolarityArg::Sa1 => Polarity::Sa1,
        }
    }
}

/// `LO-HI` or `N` (= `N-N`).
fn parse_bits(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("stuck bits `{s}`: expected LO-HI (e.g. 1-3) or N");
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let lo = lo.trim().parse().map_err(|_| bad())?;
    let hi = hi.trim().parse().map_err(|_| bad())?;
    Ok((lo, hi))
}

pub fn run(c: FaultsCmd) -> Result<()> {
    match c {
        FaultsCmd::Random {
            rows,
            cols,
            rate,
            seed,
            sites,
            polarity,
            seu_rate,
            seu_seed,
            bits,
            output,
        } => {
            let opts = RandomOptions { sites, polarity: polarity.into(), seu_rate, seu_seed, bits };
            let map = FaultMap::random(rows, cols, rate, seed, &opts)?;
            match output {
                Some(path) => {
                    map.save(&path)?;
                    eprintln!(
                        "wrote {}: {} faulty PEs of {} ({:.1} %)",
                        path.display(),
                        map.faulty_pes(),
                        rows * cols,
                        100.0 * map.fault_rate()
                    );
                }
                None => println!("{}", map.to_json_string()),
            }
        }
        FaultsCmd::Check { map, json } => {
            let m = FaultMap::load(&map)?;
            m.validate()?;
            print_check(&map, &m, json);
        }
        FaultsCmd::Plot { map, output, bypass } => {
            let m = FaultMap::load(&map)?;
            m.validate()?;
            let mut extra = Vec::new();
            for f in &bypass {
                let list = load_bypass(f)?;
                if let Some([r, c]) =
                    list.iter().find(|[r, c]| *r >= m.array.rows || *c >= m.array.cols)
                {
                    anyhow::bail!(
                        "--bypass {}: PE [{r}, {c}] is outside the {}x{} array of {}",
                        f.display(),
                        m.array.rows,
                        m.array.cols,
                        map.display()
                    );
                }
                extra.extend(list);
            }
            let title = format!("Fault map {}", map.display());
            let plot = trainer::plot::FaultMapPlot { map: &m, bypass: &extra, title: &title };
            trainer::plot::save(&plot, &output)
                .with_context(|| format!("plotting {}", map.display()))?;
            eprintln!("wrote {}", output.display());
        }
    }
    Ok(())
}

/// The `[row, col]` list of a `--bypass` file: a bare list, or an object's
/// `bypass` field.
fn load_bypass(path: &Path) -> Result<Vec<[usize; 2]>> {
    let text = std::fs::read(path).with_context(|| format!("--bypass {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("--bypass {}: not JSON", path.display()))?;
    let list = if v.is_array() { v } else { v.get("bypass").cloned().unwrap_or_default() };
    serde_json::from_value(list).with_context(|| {
        format!(
            "--bypass {}: expected a list of [row, col] or an object with one as `bypass`",
            path.display()
        )
    })
}

/// `check --json` (printed with sorted keys).
#[derive(Serialize)]
struct CheckOut {
    act: usize,
    bypass: usize,
    cols: usize,
    fault_rate: f64,
    faulty_pes: usize,
    file: String,
    psum: usize,
    rows: usize,
    seu_rate: f64,
    weight: usize,
}

fn print_check(path: &Path, map: &FaultMap, json: bool) {
    let (mut psum, mut act, mut weight) = (0, 0, 0);
    for f in &map.faults {
        match f.site {
            Site::Psum => psum += 1,
            Site::Act => act += 1,
            Site::Weight => weight += 1,
        }
    }
    let seu_rate = map.seu.map(|s| s.rate).unwrap_or(0.0);
    if json {
        print_json_sorted(&CheckOut {
            act,
            bypass: map.bypass.len(),
            cols: map.array.cols,
            fault_rate: map.fault_rate(),
            faulty_pes: map.faulty_pes(),
            file: path.display().to_string(),
            psum,
            rows: map.array.rows,
            seu_rate,
            weight,
        });
    } else {
        println!(
            "{}: valid, {}x{} array, {} faulty PEs ({:.1} %): {psum} psum, {act} act, {weight} weight; {} bypassed; SEU rate {}",
            path.display(),
            map.array.rows,
            map.array.cols,
            map.faulty_pes(),
            100.0 * map.fault_rate(),
            map.bypass.len(),
            seu_rate
        );
    }
}
