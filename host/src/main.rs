//! `faultloop`: drive a faulty DLA, characterise it, retrain models on it.
//!
//! Thin by design: clap parses, [`config`] validates, the libraries do the work.
//! Every failure prints its whole cause chain and exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use faultloop_device::open::DeviceSpec;
use faultloop_proto::faultmap::{FaultMap, Polarity, RandomOptions};
use faultloop_proto::Site;

mod board_cmd;
mod jobs;
mod report;
mod serve_cmd;
mod train_cmd;

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
    Info {
        #[command(flatten)]
        dev: DeviceArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make and check fault maps.
    #[command(subcommand)]
    Faults(FaultsCmd),
    /// One random int8 matmul on a device; prints the SHA-256 of the int32 results.
    Matmul(MatmulArgs),
    /// Useful MAC/s of `sim` and `model` (16x16, 256x512x512, 5 % faults) in one run.
    Bench(BenchArgs),
    /// Expose a device over TCP (one client at a time; needs --token-file).
    Serve {
        #[command(flatten)]
        dev: DeviceArg,
        /// Address to listen on; non-loopback needs --allow-remote.
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: String,
        /// Allow a non-loopback listen address (plain TCP: prefer an SSH tunnel).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Pretrain an int8 model on the host (quantization-aware) and save a checkpoint.
    Pretrain(train_cmd::PretrainArgs),
    /// Accuracy of a checkpoint with every matmul on a device (optionally faulty).
    Eval(train_cmd::EvalArgs),
    /// Retrain a checkpoint with the (faulty) device in the loop.
    Retrain(train_cmd::RetrainArgs),
    /// The main job: pretrain or reuse, find a harmful fault rate, retrain on the device, plot.
    Demo(train_cmd::DemoArgs),
    /// Virtual board: the Verilated UART top behind a pseudo-terminal (prints its path).
    Board(board_cmd::BoardArgs),
}

#[derive(Args)]
struct DeviceArg {
    /// sim | sim:RxC | model | model:RxC | serial:/dev/ttyUSB0[@baud] | tcp://host:port
    #[arg(long, short = 'd', default_value = "sim")]
    device: String,
}

impl DeviceArg {
    fn spec(&self) -> Result<DeviceSpec> {
        self.device.parse::<DeviceSpec>().map_err(anyhow::Error::from)
    }
}

#[derive(Subcommand)]
enum FaultsCmd {
    /// A reproducible random fault map.
    Random {
        #[arg(long, default_value_t = 16)]
        rows: usize,
        #[arg(long, default_value_t = 16)]
        cols: usize,
        /// Fraction of faulty PEs, 0..1.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sites a fault may hit (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "psum,act,weight")]
        sites: Vec<Site>,
        #[arg(long, value_enum, default_value_t = PolarityArg::Both)]
        polarity: PolarityArg,
        /// Transient single-bit flip probability per MAC (0 = none).
        #[arg(long, default_value_t = 0.0)]
        seu_rate: f64,
        #[arg(long, default_value_t = 1)]
        seu_seed: u32,
        /// Output file (stdout when absent).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Validate a fault map and summarise it.
    Check {
        map: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PolarityArg {
    Both,
    Sa0,
    Sa1,
}

#[derive(Args)]
struct MatmulArgs {
    #[command(flatten)]
    dev: DeviceArg,
    /// Fault map to apply before running.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Tile rotation `r,c` (partial TMR runs a layer on rotated PEs).
    #[arg(long, value_parser = parse_pair)]
    rotate: Option<(u8, u8)>,
    #[arg(long)]
    m: usize,
    #[arg(long)]
    k: usize,
    #[arg(long)]
    n: usize,
    /// Seed of the random A (m x k) and W (k x n), the same generator on every device.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 256)]
    m: usize,
    #[arg(long, default_value_t = 512)]
    k: usize,
    #[arg(long, default_value_t = 512)]
    n: usize,
    /// Fault rate of the random map.
    #[arg(long, default_value_t = 0.05)]
    rate: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Array size `RxC` of both devices.
    #[arg(long, default_value = "16x16")]
    array: String,
}

fn parse_pair(s: &str) -> Result<(u8, u8), String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("`{s}`: expected `r,c`"))?;
    let p = |x: &str| x.trim().parse::<u8>().map_err(|e| format!("`{s}`: {e}"));
    Ok((p(a)?, p(b)?))
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
    if let (Some(f), false) = (&cli.token_file, matches!(cli.cmd, Cmd::Serve { .. })) {
        serve_cmd::use_token_file(f)?;
    }
    match cli.cmd {
        Cmd::Info { dev, json } => {
            let info = jobs::info(&dev.spec()?)?;
            report::info(&info, json);
        }
        Cmd::Faults(FaultsCmd::Random {
            rows,
            cols,
            rate,
            seed,
            sites,
            polarity,
            seu_rate,
            seu_seed,
            output,
        }) => {
            let polarity = match polarity {
                PolarityArg::Both => Polarity::Both,
                PolarityArg::Sa0 => Polarity::Sa0,
                PolarityArg::Sa1 => Polarity::Sa1,
            };
            let opts = RandomOptions { sites, polarity, seu_rate, seu_seed };
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
        Cmd::Faults(FaultsCmd::Check { map, json }) => {
            let m = FaultMap::load(&map)?;
            m.validate()?;
            report::fault_map(&map, &m, json);
        }
        Cmd::Matmul(a) => {
            let faults = a.faults.as_ref().map(FaultMap::load).transpose()?;
            let job = jobs::MatmulJob {
                m: a.m,
                k: a.k,
                n: a.n,
                seed: a.seed,
                rotate: a.rotate.unwrap_or((0, 0)),
            };
            let spec = a.dev.spec()?;
            let out = jobs::matmul(&spec, faults.as_ref(), &job)
                .with_context(|| format!("matmul on {spec}"))?;
            report::matmul(&out, a.json);
        }
        Cmd::Bench(b) => {
            let (rows, cols) = jobs::parse_array(&b.array)?;
            let out = jobs::bench(rows, cols, b.m, b.k, b.n, b.rate, b.seed)?;
            report::bench(&out, b.json);
        }
        Cmd::Serve { dev, listen, allow_remote } => {
            let token_file = cli
                .token_file
                .ok_or_else(|| anyhow::anyhow!("serve needs --token-file (the shared token)"))?;
            serve_cmd::serve(&dev.device, &listen, &token_file, allow_remote)?;
        }
        Cmd::Pretrain(a) => train_cmd::pretrain(a)?,
        Cmd::Eval(a) => train_cmd::eval(a)?,
        Cmd::Retrain(a) => train_cmd::retrain(a)?,
        Cmd::Demo(a) => train_cmd::demo(a)?,
        Cmd::Board(a) => board_cmd::board(a)?,
    }
    Ok(())
}
