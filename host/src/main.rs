//! `faultloop`: drive a faulty DLA, characterise it, retrain models on it.
//!
//! Thin by design: clap parses (here and in [`cmd`]), the libraries
//! (faultloop-device, `trainer`) do the work, [`output`] and [`progress`] print.
//! Every failure prints its whole cause chain and exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use faultloop_device::handshake::Token;
use faultloop_device::open::OpenOptions;

mod cmd;
mod output;
mod progress;

#[derive(Parser)]
#[command(name = "faultloop", version, about = "A faulty DNN accelerator in the training loop")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Bridge token file: what `tcp://` devices present (overrides $FAULTLOOP_TOKEN),
    /// and for `serve` the token clients must present.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Array size, memories, protocol and RTL versions, features of a device.
    Info(cmd::info::InfoArgs),
    /// Find a chip's permanent faults over the protocol alone; write its fault map.
    Characterize(cmd::characterize::CharacterizeArgs),
    /// Make and check fault maps.
    #[command(subcommand)]
    Faults(cmd::faults::FaultsCmd),
    /// One random int8 matmul on a device; prints the SHA-256 of the int32 results.
    Matmul(cmd::matmul::MatmulArgs),
    /// Useful MAC/s of `sim` and `model` (16x16, 256x512x512, 5 % faults) in one run.
    Bench(cmd::bench::BenchArgs),
    /// Expose a device over TCP (one client at a time; needs --token-file).
    Serve(cmd::serve::ServeArgs),
    /// Pretrain an int8 model on the host (quantization-aware) and save a checkpoint.
    Pretrain(cmd::pretrain::PretrainArgs),
    /// Accuracy of a checkpoint with every matmul on a device (optionally faulty).
    Eval(cmd::eval::EvalArgs),
    /// Retrain a checkpoint with the (faulty) device in the loop.
    Retrain(cmd::retrain::RetrainArgs),
    /// Plan a fleet's retraining: group chips, retrain once per group, verify each chip.
    Fleet(cmd::fleet::FleetArgs),
    /// Fault rate x retraining amount -> accuracy over random chips, and the
    /// least amount per rate for an accuracy floor (`merge` combines shards).
    Resilience(cmd::resilience::ResilienceCmd),
    /// The main job: pretrain or reuse, find a harmful fault rate, retrain on the device, plot.
    Demo(cmd::demo::DemoArgs),
    /// Write a checkpoint as safetensors for PyTorch (docs/pytorch.md).
    Export(cmd::export::ExportArgs),
    /// Read a PyTorch model (safetensors) into a checkpoint, calibrating its scales.
    Import(cmd::import::ImportArgs),
    /// Virtual board: the Verilated UART top behind a pseudo-terminal (prints its path).
    Board(cmd::board::BoardArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // Library errors often repeat their source in their own message;
            // print each cause only when it adds something.
            let mut last = e.to_string();
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !last.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                last = text;
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // The global --token-file is what every `tcp://` device opened here
    // presents (read once, up front); `serve` takes it as the token its
    // clients must present instead.
    let mut open = OpenOptions::default();
    if let (Some(f), false) = (&cli.token_file, matches!(cli.cmd, Cmd::Serve(_))) {
        open.token = Some(Token::from_file(f)?);
    }
    match cli.cmd {
        Cmd::Info(a) => cmd::info::run(a, &open),
        Cmd::Characterize(a) => cmd::characterize::run(a, &open),
        Cmd::Faults(c) => cmd::faults::run(c),
        Cmd::Matmul(a) => cmd::matmul::run(a, &open),
        Cmd::Bench(a) => cmd::bench::run(a),
        Cmd::Serve(a) => cmd::serve::run(a, cli.token_file.as_deref()),
        Cmd::Pretrain(a) => cmd::pretrain::run(a),
        Cmd::Eval(a) => cmd::eval::run(a, &open),
        Cmd::Retrain(a) => cmd::retrain::run(a, &open),
        Cmd::Fleet(a) => cmd::fleet::run(a, &open),
        Cmd::Resilience(c) => cmd::resilience::run(c),
        Cmd::Demo(a) => cmd::demo::run(a, &open),
        Cmd::Board(a) => cmd::board::run(a),
        Cmd::Export(a) => cmd::export::run(a),
        Cmd::Import(a) => cmd::import::run(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option of every command says what it does in `--help`.
    #[test]
    fn every_option_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "faultloop", &mut missing);
        assert!(missing.is_empty(), "options without a help line:\n{}", missing.join("\n"));
    }
}
