//! The virtual board: the Verilated `dla_uart_top` (rtl/), driven bit by bit
//! through its RX/TX pins, behind a pseudo-terminal.
//!
//! * [`UartSim`] is the board itself, in process: host bytes are serialised
//!   onto the RX pin at [`UartSim::clocks_per_bit`] (a [`BitPeriod`], in
//!   eighths of a cycle like the RTL's: the ULX3S's 3 Mbaud is 8 3/8) and the TX pin is
//!   deserialised back into bytes by the C++ shim (`csrc/uart_shim.cpp`), so
//!   the per-bit loop never crosses the FFI. It is a [`Link`] too
//!   (`board:RxC`), which lets tests run the UART path without a terminal.
//! * Hidden defects ([`UartSim::apply_hidden`]): the chip's own stuck-at
//!   defects, written through the top's defect port, which no frame reaches.
//!   RESET and CLEAR_FAULTS leave them in place, nothing on the wire reports
//!   them (INFO only sets feature bit 4, "has a defect port"), and they
//!   combine with what the host injects with SET_FAULT: the effective masks
//!   are `sa0 = injected.sa0 | hidden.sa0`, `sa1 = injected.sa1 | hidden.sa1`
//!   with `sa0` winning where both are set.
//! * faultloop-device's `serve::pty` serves a [`UartSim`] on a
//!   pseudo-terminal, so `serial:<path>` works for every command through
//!   exactly the code a board on a USB UART uses (`faultloop board --pty`).
//!
//! Time: the simulated clock runs only while the board has work (bytes on
//! the line, a computation, a reply); while it waits for the host, simulated
//! time stands still. So rule 4 (a partial frame followed by silence is
//! dropped) is applied in wall time by whoever serves the board: after a
//! silence it clocks [`IDLE_TIMEOUT_CYCLES`] idle cycles
//! ([`UartSim::idle`]), which makes the RTL drop any partial frame.
//!
//! The models are built by `build.rs` for `FAULTLOOP_BOARD_SIZES` (default
//! `4x4,8x8`) with the sim top's memory sizes, so a board's INFO equals
//! `model:RxC`'s except feature bit 4.

use std::io;
use std::time::{Duration, Instant};

use faultloop_proto::faultmap::{Fault, FaultMap};
use faultloop_proto::Link;

use crate::ffi::{self, Model};

/// Clock of the modelled board (the iCEBreaker's 12 MHz oscillator).
pub const BOARD_CLOCK_HZ: u64 = 12_000_000;
/// The bit period of a board at the protocol's default 115200 baud:
/// 12 MHz / 115200 = 104 clock cycles per bit (the iCEBreaker bitstream).
pub const CLOCKS_PER_BIT_115200: u32 = 104;
/// Default bit period of the virtual board: 16 cycles (750 kbaud at 12 MHz).
/// A pseudo-terminal has no baud rate, so this only sets how many simulated
/// cycles a byte costs; at 16 the simulation moves bytes faster than the
/// client's timeouts assume of any link (10 kB/s), at 104 it is about 6x
/// slower than that.
pub const DEFAULT_CLOCKS_PER_BIT: u32 = 16;
/// Shortest bit period the UART RTL supports.
pub const MIN_CLOCKS_PER_BIT: u32 = 4;
/// Longest bit period the built models support (their idle timeout must
/// exceed two byte times).
pub const MAX_CLOCKS_PER_BIT: u32 = 3000;
/// The models' idle timeout (rule 4) in clock cycles (`build.rs`).
pub const IDLE_TIMEOUT_CYCLES: u64 = 1 << 16;

/// Cycles per FFI call while the board has work: about 1000 bytes on the
/// line at the default bit period, so replies stream out as they are sent.
const CHUNK_CYCLES: u64 = 1 << 20;

/// The board array sizes (rows, cols) compiled into this build
/// (`FAULTLOOP_BOARD_SIZES` at build time).
pub fn built_sizes() -> Vec<(usize, usize)> {
    ffi::UART.built_sizes()
}

/// Baud rate of a bit period at [`BOARD_CLOCK_HZ`].
pub fn baud_of(period: BitPeriod) -> f64 {
    BOARD_CLOCK_HZ as f64 / period.cycles()
}

/// A UART bit period in clock cycles, to an eighth of a cycle: what
/// `dla_uart_top` counts (`ClocksPerBit + ClocksPerBitFrac / 8`; each bit
/// lasts the whole part or one cycle more, so the average is exact).
/// Written and parsed as a decimal number of cycles ("16", "8.375").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitPeriod {
    eighths: u32,
}

impl BitPeriod {
    /// A whole number of cycles.
    pub const fn cycles_whole(cycles: u32) -> BitPeriod {
        BitPeriod { eighths: cycles.saturating_mul(8) }
    }

    /// `eighths` / 8 cycles.
    pub const fn from_eighths(eighths: u32) -> BitPeriod {
        BitPeriod { eighths }
    }

    /// The period in eighths of a cycle.
    pub fn eighths(self) -> u32 {
        self.eighths
    }

    /// The period in cycles.
    pub fn cycles(self) -> f64 {
        self.eighths as f64 / 8.0
    }
}

impl From<u32> for BitPeriod {
    fn from(cycles: u32) -> BitPeriod {
        BitPeriod::cycles_whole(cycles)
    }
}

impl std::fmt::Display for BitPeriod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cycles())
    }
}

/// A bit period that is not a number of cycles in eighths.
#[derive(Debug, thiserror::Error)]
#[error("clocks per bit {0:?}: not a number of clock cycles in eighths (like 16 or 8.375)")]
pub struct BitPeriodError(String);

impl std::str::FromStr for BitPeriod {
    type Err = BitPeriodError;

    fn from_str(s: &str) -> Result<BitPeriod, BitPeriodError> {
        let bad = || BitPeriodError(s.to_string());
        let (whole, frac) = match s.trim().split_once('.') {
            Some((_, "")) => return Err(bad()),
            Some(parts) => parts,
            None => (s.trim(), ""),
        };
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // thousandths -> eighths: exact only for multiples of 125.
        let milli: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
        if milli % 125 != 0 {
            return Err(bad());
        }
        Ok(BitPeriod { eighths: whole.checked_mul(8).ok_or_else(bad)? + milli / 125 })
    }
}

/// Errors of the virtual board.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// No board model of that size was compiled into this build.
    #[error("no virtual board of size {rows}x{cols} in this build (built: {built}; set FAULTLOOP_BOARD_SIZES at build time)")]
    NotBuilt { rows: usize, cols: usize, built: String },
    /// The bit period is outside what the RTL and the models support.
    #[error("clocks per bit {0} is outside {MIN_CLOCKS_PER_BIT}..={MAX_CLOCKS_PER_BIT}")]
    ClocksPerBit(BitPeriod),
    /// A hidden-defect map the defect port cannot express.
    #[error("hidden defects {file}: {problem}")]
    Defects { file: String, problem: String },
}

/// The Verilated `dla_uart_top`, in process.
pub struct UartSim {
    model: Model,
    name: String,
    rows: usize,
    cols: usize,
    cpb: BitPeriod,
    hidden: Vec<Fault>,
}

impl UartSim {
    /// A fresh, reset `rows`x`cols` board with `clocks_per_bit` clock cycles
    /// per UART bit (whole cycles, or a [`BitPeriod`] in eighths; no hidden
    /// defects).
    pub fn open(
        rows: usize,
        cols: usize,
        clocks_per_bit: impl Into<BitPeriod>,
    ) -> Result<UartSim, BoardError> {
        let clocks_per_bit = clocks_per_bit.into();
        let range = BitPeriod::cycles_whole(MIN_CLOCKS_PER_BIT)
            ..=BitPeriod::cycles_whole(MAX_CLOCKS_PER_BIT);
        if !range.contains(&clocks_per_bit) {
            return Err(BoardError::ClocksPerBit(clocks_per_bit));
        }
        let not_built =
            || BoardError::NotBuilt { rows, cols, built: ffi::sizes_text(&built_sizes()) };
        let (r, c) = match (u32::try_from(rows), u32::try_from(cols)) {
            (Ok(r), Ok(c)) => (r, c),
            _ => return Err(not_built()),
        };
        match Model::uart(r, c, clocks_per_bit.eighths()) {
            Some(model) => Ok(UartSim {
                model,
                name: format!("board:{rows}x{cols}"),
                rows,
                cols,
                cpb: clocks_per_bit,
                hidden: Vec::new(),
            }),
            None => Err(not_built()),
        }
    }

    /// Array rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Array columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Clock cycles per UART bit.
    pub fn clocks_per_bit(&self) -> BitPeriod {
        self.cpb
    }

    /// The hidden defects written so far (in order).
    pub fn hidden(&self) -> &[Fault] {
        &self.hidden
    }

    /// Write one hidden defect through the defect port (replaces that PE
    /// site's hidden masks). Checked like SET_FAULT: PE inside the array,
    /// masks within the site's width, no bit in both masks.
    pub fn add_defect(&mut self, f: &Fault) -> Result<(), BoardError> {
        let width = f.site.bits();
        let limit = if width == 32 { u64::from(u32::MAX) } else { (1u64 << width) - 1 };
        let problem = if f.row >= self.rows || f.col >= self.cols {
            Some(format!(
                "PE ({}, {}) is outside the {}x{} array",
                f.row, f.col, self.rows, self.cols
            ))
        } else if f.stuck_at_0 > limit || f.stuck_at_1 > limit {
            Some(format!("{f}: a mask is wider than the {width}-bit site"))
        } else if f.stuck_at_0 & f.stuck_at_1 != 0 {
            Some(format!("{f}: a bit is in both stuck_at_0 and stuck_at_1"))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(BoardError::Defects { file: "(entry)".into(), problem });
        }
        // Values range-checked above.
        self.model.uart_defect(
            f.row as u8,
            f.col as u8,
            f.site.code(),
            f.stuck_at_0 as u32,
            f.stuck_at_1 as u32,
        );
        self.hidden.push(*f);
        Ok(())
    }

    /// Write every stuck-at entry of `map` as a hidden defect. The map must
    /// be valid, for this array size, and hold only stuck-at faults (bypass
    /// is a host mitigation and SEU a run setting, not a chip defect).
    pub fn apply_hidden(&mut self, map: &FaultMap) -> Result<(), BoardError> {
        let file = map.file();
        let err = |problem: String| BoardError::Defects { file: file.clone(), problem };
        map.validate().map_err(|e| err(e.to_string()))?;
        if (map.array.rows, map.array.cols) != (self.rows, self.cols) {
            return Err(err(format!(
                "the map is for a {}x{} array, the board is {}x{}",
                map.array.rows, map.array.cols, self.rows, self.cols
            )));
        }
        if !map.bypass.is_empty() || map.seu.is_some() {
            return Err(err(
                "hidden defects are stuck-at faults only: remove 'bypass' and 'seu' (the host sets those)"
                    .into(),
            ));
        }
        for f in &map.faults {
            self.add_defect(f).map_err(|e| match e {
                BoardError::Defects { problem, .. } => err(problem),
                other => other,
            })?;
        }
        Ok(())
    }

    /// Queue host bytes for the RX pin.
    pub fn write(&mut self, bytes: &[u8]) {
        self.model.write(bytes)
    }

    /// Clock until the board is idle with every queued byte sent, or
    /// `max_cycles`; returns the cycles run.
    pub fn run(&mut self, max_cycles: u64) -> u64 {
        self.model.run(0, max_cycles)
    }

    /// Clock exactly `cycles` cycles (queued bytes are still sent), e.g. to
    /// let the idle timeout drop a partial frame.
    pub fn idle(&mut self, cycles: u64) {
        self.model.idle(cycles)
    }

    /// Bytes received from the TX pin and not yet read.
    pub fn pending(&self) -> usize {
        self.model.pending()
    }

    /// Read received bytes into `buf`; returns the count.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        self.model.read(buf)
    }

    /// Nothing happens until the next input byte.
    pub fn quiescent(&self) -> bool {
        self.model.quiescent()
    }

    /// Clock cycles simulated since the board was opened.
    pub fn total_cycles(&self) -> u64 {
        self.model.total_cycles()
    }

    /// Bytes from the TX pin whose stop bit read 0 (0 for a correct RTL).
    pub fn framing_errors(&self) -> u64 {
        self.model.uart_framing_errors()
    }
}

impl Link for UartSim {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes);
        Ok(())
    }

    /// Runs the board until bytes come out of TX (or it is idle with nothing
    /// left to send, or `timeout` of wall time passes).
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = Instant::now();
        loop {
            if self.pending() > 0 {
                return Ok(self.read(buf));
            }
            if self.quiescent() || start.elapsed() >= timeout {
                return Ok(0);
            }
            self.run(CHUNK_CYCLES);
        }
    }

    fn sim_cycles(&self) -> Option<u64> {
        Some(self.total_cycles())
    }
}

#[cfg(test)]
mod bit_period_tests {
    use super::BitPeriod;

    #[test]
    fn bit_periods_parse_in_eighths_and_print_back() {
        for (text, eighths) in
            [("16", 128), ("8.375", 67), ("8.5", 68), ("104", 832), ("4.125", 33)]
        {
            let p: BitPeriod = text.parse().unwrap();
            assert_eq!(p.eighths(), eighths, "{text}");
            assert_eq!(p.to_string(), text);
        }
        for bad in ["", "8.3", "8.33", "8.3750", "x", "-1", "8.", "1e3"] {
            let e = bad.parse::<BitPeriod>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
