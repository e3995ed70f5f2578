//! `faultloop`: drive a faulty DLA, characterise it, retrain models on it.
//!
//! Thin by design: clap parses (here and in [`cmd`]), the libraries
//! (faultloop-device, `trainer`) do the work, [`output`] and [`progress`] print.
//! Every failure prints its whole cause chain and exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use faultloop_device::handshake::Token;
use faultloop_device::open::OpenOptions;
use faultloop_device::trace::{Trace, TraceWindow};

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
    /// Record an FST waveform of every sim device the command opens (the
    /// second and later ones as FILE.1.fst, ...; default $FAULTLOOP_TRACE).
    #[arg(long, global = true, value_name = "FILE.fst")]
    trace: Option<PathBuf>,
    /// Clock cycles the waveform records, START:END, either may be empty
    /// (default $FAULTLOOP_TRACE_WINDOW, else all).
    #[arg(long, global = true, value_name = "START:END")]
    trace_window: Option<TraceWindow>,
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
    /// The main job: a chip with permanent faults (characterise, compare mitigations,
    /// deploy the cheapest) and one with soft errors (TMR and retraining).
    Demo(cmd::demo::DemoArgs),
    /// Write a checkpoint as safetensors for PyTorch (docs/pytorch.md).
    Export(cmd::export::ExportArgs),
    /// Read a PyTorch model (safetensors) into a checkpoint, calibrating its scales.
    Import(cmd::import::ImportArgs),
    /// Virtual board: the Verilated UART top behind a pseudo-terminal (prints its path).
    Board(cmd::board::BoardArgs),
    /// RTL against the golden model on random request programs, byte for byte (CI regression).
    Verify(cmd::verify::VerifyArgs),
    /// Charts from other commands' JSON output (SVG or PNG).
    #[command(subcommand)]
    Plot(cmd::plot::PlotCmd),
}

/// Whether the command line asks for `--json` at any subcommand depth (then
/// no progress bars: the output is for a program).
fn wants_json(m: &ArgMatches) -> bool {
    matches!(m.try_get_one::<bool>("json"), Ok(Some(true)))
        || m.subcommand().is_some_and(|(_, sub)| wants_json(sub))
}

/// A reader that stops early (`faultloop faults random ... | head`) closes
/// the pipe; Rust ignores SIGPIPE, so the next print to stdout panics. Exit
/// quietly with the status of a Unix tool stopped by SIGPIPE (141) instead
/// of a panic message. Only stdout: a closed socket or serial port is still
/// an error the commands report.
fn quiet_exit_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_exit_on_closed_stdout();
    let matches = Cli::command().get_matches();
    progress::init(wants_json(&matches));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match run(cli) {
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
    // One trace for the whole process: devices are opened deep inside
    // library code (fleets, resilience maps) too.
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let trace = cli.trace.clone().or_else(|| env("FAULTLOOP_TRACE").map(PathBuf::from));
    let trace_window = match (cli.trace_window, env("FAULTLOOP_TRACE_WINDOW")) {
        (Some(w), _) => Some(w),
        (None, Some(v)) => Some(
            v.to_string_lossy()
                .parse::<TraceWindow>()
                .map_err(|e| anyhow::anyhow!("FAULTLOOP_TRACE_WINDOW: {e}"))?,
        ),
        (None, None) => None,
    };
    if let Some(path) = &trace {
        if matches!(cli.cmd, Cmd::Verify(_)) {
            anyhow::bail!(
                "--trace {}: verify writes the failing case's waveform into --trace-dir instead",
                path.display()
            );
        }
        let window = trace_window.unwrap_or_default();
        faultloop_device::trace::set_process_trace(Some(Trace { path: path.clone(), window }));
    } else if trace_window.is_some() {
        anyhow::bail!("--trace-window needs --trace FILE.fst");
    }
    let result = dispatch(cli.cmd, &open, cli.token_file.as_deref());
    for w in faultloop_device::trace::written() {
        eprintln!("waveform {}", w.display());
    }
    result
}

fn dispatch(cmd: Cmd, open: &OpenOptions, token_file: Option<&std::path::Path>) -> Result<()> {
    let open = open.clone();
    match cmd {
        Cmd::Info(a) => cmd::info::run(a, &open),
        Cmd::Characterize(a) => cmd::characterize::run(a, &open),
        Cmd::Faults(c) => cmd::faults::run(c),
        Cmd::Matmul(a) => cmd::matmul::run(a, &open),
        Cmd::Bench(a) => cmd::bench::run(a),
        Cmd::Serve(a) => cmd::serve::run(a, token_file),
        Cmd::Pretrain(a) => cmd::pretrain::run(a),
        Cmd::Eval(a) => cmd::eval::run(a, &open),
        Cmd::Retrain(a) => cmd::retrain::run(a, &open),
        Cmd::Fleet(a) => cmd::fleet::run(a, &open),
        Cmd::Resilience(c) => cmd::resilience::run(c),
        Cmd::Demo(a) => cmd::demo::run(a, &open),
        Cmd::Board(a) => cmd::board::run(a),
        Cmd::Verify(a) => cmd::verify::run(a, &open),
        Cmd::Plot(c) => cmd::plot::run(c),
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
