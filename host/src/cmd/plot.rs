//! `faultloop plot tmr`: charts drawn from other commands' `--json` output.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use trainer::plot::{self, LineChart, TmrPoint};

#[derive(Subcommand)]
pub enum PlotCmd {
    /// TMR accuracy against budget, from `eval --json` outputs: one line per
    /// fault map over the runs' --tmr-budget (0 without), fault-free runs as a level.
    Tmr {
        /// `eval --json` output files.
        #[arg(required = true)]
        evals: Vec<PathBuf>,
        /// Output image: SVG or PNG, by the name's extension (.svg, .png).
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}

pub fn run(c: PlotCmd) -> Result<()> {
    match c {
        PlotCmd::Tmr { evals, output } => {
            let mut points = Vec::new();
            for f in &evals {
                let text = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                let v: serde_json::Value = serde_json::from_slice(&text)
                    .with_context(|| format!("{}: not JSON", f.display()))?;
                let accuracy = v["accuracy"].as_f64().with_context(|| {
                    format!(
                        "{}: no `accuracy` (is it `faultloop eval --json` output?)",
                        f.display()
                    )
                })?;
                points.push(TmrPoint {
                    faults: v["faults"].as_str().map(String::from),
                    budget_pct: v["tmr"]["budget_pct"].as_f64().unwrap_or(0.0),
                    accuracy,
                });
            }
            let series = plot::tmr_series(&points);
            let chart = LineChart {
                title: "Partial TMR: accuracy against budget",
                x_label: "TMR budget (% extra MACs)",
                y_label: "test accuracy (%)",
                series: &series,
                y_percent: true,
            };
            plot::save(&chart, &output).context("the TMR chart")?;
            eprintln!("wrote {}", output.display());
        }
    }
    Ok(())
}
