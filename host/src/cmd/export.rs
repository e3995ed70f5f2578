//! `faultloop export`: a checkpoint as a safetensors file for PyTorch
//! (`trainer::interop`, docs/pytorch.md).
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use trainer::interop;

use super::loading;
use crate::output::print_json;

#[derive(Args)]
pub struct ExportArgs {
    /// Checkpoint directory to export.
    #[arg(long)]
    pub model: PathBuf,
    /// Output safetensors file (float and int8 weights, biases, scales).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let s = interop::export_checkpoint(&a.model, &a.output)
        .with_context(|| format!("exporting {}", loading(&a.model)))?;
    if a.json {
        print_json(&s);
    } else {
        println!("wrote {} ({} tensors, {} bytes)", s.path.display(), s.tensors, s.bytes);
        for l in &s.layers {
            println!(
                "  {:<6} {:<6} K {:>5} N {:>4}  in_scale {:.6e}  w_scale {:.6e}",
                l.name, l.kind, l.k, l.n, l.in_scale, l.w_scale
            );
        }
    }
    Ok(())
}
