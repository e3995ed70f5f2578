//! `faultloop board --pty`: the virtual board. The Verilated `dla_uart_top`
//! runs behind a pseudo-terminal, bit by bit through its RX/TX pins; the
//! terminal's path is the first line on stdout, then it serves until killed.
//!
//! ```text
//! $ faultloop board --pty --array 8x8 --faults chip.json &
//! /dev/pts/7
//! $ faultloop info --device serial:/dev/pts/7
//! ```
//!
//! `--faults` are the chip's own defects, written through the top's hidden
//! defect port: CLEAR_FAULTS and RESET do not remove them, nothing on the
//! wire reports them, and they combine with what the host injects.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use faultloop_device::serve::pty::{PtyOptions, PtyServer};
use faultloop_proto::faultmap::FaultMap;
use faultloop_verilated::uart::{self as board, BitPeriod, UartSim, DEFAULT_CLOCKS_PER_BIT};

#[derive(Args)]
pub struct BoardArgs {
    /// Serve the board on a new pseudo-terminal (the only transport so far).
    #[arg(long)]
    pub pty: bool,
    /// Array size `RxC` (built board sizes: FAULTLOOP_BOARD_SIZES, default 4x4,8x8).
    #[arg(long, default_value = "8x8")]
    pub array: String,
    /// Hidden defects (a fault map with stuck-at entries only).
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// UART bit period in board clock cycles, to an eighth (104 = 115200 baud at
    /// 12 MHz, as the iCEBreaker bitstream; 8.375 = the ULX3S's 3 Mbaud at 25 MHz;
    /// the pty has no baud rate, smaller is faster).
    #[arg(long, default_value_t = BitPeriod::cycles_whole(DEFAULT_CLOCKS_PER_BIT))]
    pub clocks_per_bit: BitPeriod,
}

/// Build the board and serve it until the process is killed or the
/// pseudo-terminal fails.
pub fn run(a: BoardArgs) -> Result<()> {
    if !a.pty {
        bail!("faultloop board needs --pty (serve the virtual board on a pseudo-terminal)");
    }
    let (rows, cols) = super::parse_array(&a.array)?;
    let mut sim = UartSim::open(rows, cols, a.clocks_per_bit)?;
    if let Some(path) = &a.faults {
        let map = FaultMap::load(path)?;
        sim.apply_hidden(&map)
            .with_context(|| format!("loading hidden defects from {}", path.display()))?;
    }
    let hidden = sim.hidden().len();
    let cpb = sim.clocks_per_bit();
    let pty = PtyServer::spawn(sim, PtyOptions::default())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", pty.path())?;
        out.flush()?;
    }
    eprintln!(
        "faultloop board: dla_uart_top {rows}x{cols}, {cpb} clocks/bit ({:.0} baud at {} MHz), \
         {hidden} hidden defect entries; use --device {} (Ctrl-C to stop)",
        board::baud_of(cpb),
        board::BOARD_CLOCK_HZ / 1_000_000,
        pty.device_string()
    );
    pty.wait().context("virtual board stopped")?;
    Ok(())
}
