//! `faultloop import`: a safetensors file (a PyTorch-trained model, or a
//! `faultloop export`) into a checkpoint (`trainer::interop`, docs/pytorch.md).
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use trainer::data::{Dataset, Split};
use trainer::interop::{self, ImportOptions};
use trainer::ModelSpec;

use super::DataArg;
use crate::output::print_json;

#[derive(Args)]
pub struct ImportArgs {
    /// safetensors file with `<layer>.weight` and `<layer>.bias` (float32, PyTorch layouts).
    #[arg(long)]
    pub from: PathBuf,
    /// Architecture: mlp, mlp:784-256-128-10 (any widths) or cnn; optional for a faultloop export.
    #[arg(long)]
    pub spec: Option<ModelSpec>,
    /// Output checkpoint directory.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Recalibrate the scales even if the file carries them (after changing the weights).
    #[arg(long)]
    pub calibrate: bool,
    /// Training images the activation scales are calibrated on (seeded draw).
    #[arg(long, default_value_t = ImportOptions::default().calib_samples)]
    pub calib_samples: usize,
    /// Images per calibration batch.
    #[arg(long, default_value_t = ImportOptions::default().calib_batch)]
    pub calib_batch: usize,
    /// Seed of the calibration draw.
    #[arg(long, default_value_t = ImportOptions::default().seed)]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ImportArgs) -> Result<()> {
    trainer::init_threads();
    let opts = ImportOptions {
        calibrate: a.calibrate,
        calib_samples: a.calib_samples,
        calib_batch: a.calib_batch,
        seed: a.seed,
    };
    let dir = a.data.data_dir.clone();
    let s = interop::import_to_checkpoint(
        &a.from,
        a.spec.as_ref(),
        // Loaded only when the scales are calibrated.
        move || Dataset::load(&dir, Split::Train),
        &opts,
        &a.output,
    )
    .with_context(|| format!("importing {}", a.from.display()))?;
    if a.json {
        print_json(&s);
    } else {
        println!("wrote {} from {}", a.output.display(), s.from.display());
        for l in &s.layers {
            println!(
                "  {:<6} in_scale {:.6e}  w_scale {:.6e}  ({:?})",
                l.name, l.in_scale, l.w_scale, l.scales
            );
        }
        if s.calib_samples > 0 {
            println!("  activation scales calibrated on {} training images", s.calib_samples);
        }
    }
    Ok(())
}
