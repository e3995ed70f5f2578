//! The virtual board: the Verilated `dla_uart_top` (rtl/), driven bit by bit
//! through its RX/TX pins, behind a pseudo-terminal.
//!
//! * [`UartSim`] is the board itself, in process: host bytes are serialised
//!   onto the RX pin at [`UartSim::clocks_per_bit`] and the TX pin is
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
//! * [`PtyBoard`] serves a [`UartSim`] on the master side of a
//!   pseudo-terminal pair; `serial:<PtyBoard::path>` then works for every
//!   command, through exactly the code a board on a USB UART uses
//!   (`faultloop board --pty`).
//!
//! Time: the simulated clock runs only while the board has work (bytes on
//! the line, a computation, a reply); while it waits for the host, simulated
//! time stands still. So rule 4 (a partial frame followed by silence is
//! dropped) is applied in wall time: after [`PtyOptions::idle_flush`] of
//! silence the board clocks [`IDLE_TIMEOUT_CYCLES`] idle cycles, which makes
//! the RTL drop any partial frame.
//!
//! The models are built by `build.rs` for `FAULTLOOP_BOARD_SIZES` (default
//! `4x4,8x8`) with the sim top's memory sizes, so a board's INFO equals
//! `model:RxC`'s except feature bit 4.

use std::io::{self, Read, Write};
use std::os::raw::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

use crate::faultmap::{Fault, FaultMap};
use crate::link::Link;

mod ffi {
    use std::os::raw::c_void;
    extern "C" {
        pub fn dla_uart_sizes(rows: *mut u32, cols: *mut u32, max: usize) -> usize;
        pub fn dla_uart_new(rows: u32, cols: u32, cpb: u32) -> *mut c_void;
        pub fn dla_uart_free(h: *mut c_void);
        pub fn dla_uart_write(h: *mut c_void, bytes: *const u8, n: usize);
        pub fn dla_uart_run(h: *mut c_void, max_cycles: u64) -> u64;
        pub fn dla_uart_idle(h: *mut c_void, cycles: u64);
        pub fn dla_uart_pending(h: *mut c_void) -> usize;
        pub fn dla_uart_read(h: *mut c_void, buf: *mut u8, n: usize) -> usize;
        pub fn dla_uart_quiescent(h: *mut c_void) -> i32;
        pub fn dla_uart_defect(h: *mut c_void, row: u8, col: u8, site: u8, sa0: u32, sa1: u32);
        pub fn dla_uart_total_cycles(h: *mut c_void) -> u64;
        pub fn dla_uart_framing_errors(h: *mut c_void) -> u64;
    }
}

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

/// The board array sizes (rows, cols) compiled into this build.
pub fn built_sizes() -> Vec<(usize, usize)> {
    let mut rows = [0u32; 64];
    let mut cols = [0u32; 64];
    // SAFETY: both buffers hold 64 entries, the shim writes at most `max`.
    let n = unsafe { ffi::dla_uart_sizes(rows.as_mut_ptr(), cols.as_mut_ptr(), 64) }.min(64);
    (0..n).map(|i| (rows[i] as usize, cols[i] as usize)).collect()
}

/// Baud rate of a bit period at [`BOARD_CLOCK_HZ`].
pub fn baud_of(clocks_per_bit: u32) -> f64 {
    BOARD_CLOCK_HZ as f64 / clocks_per_bit.max(1) as f64
}

/// Errors of the virtual board.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// No board model of that size was compiled into this build.
    #[error("no virtual board of size {rows}x{cols} in this build (built: {built}; set FAULTLOOP_BOARD_SIZES at build time)")]
    NotBuilt { rows: usize, cols: usize, built: String },
    /// The bit period is outside what the RTL and the models support.
    #[error("clocks per bit {0} is outside {MIN_CLOCKS_PER_BIT}..={MAX_CLOCKS_PER_BIT}")]
    ClocksPerBit(u32),
    /// A hidden-defect map the defect port cannot express.
    #[error("hidden defects {file}: {problem}")]
    Defects { file: String, problem: String },
    /// Creating or serving the pseudo-terminal failed.
    #[error("virtual board pseudo-terminal: {0}")]
    Pty(String),
}

/// The Verilated `dla_uart_top`, in process.
pub struct UartSim {
    h: NonNull<c_void>,
    name: String,
    rows: usize,
    cols: usize,
    cpb: u32,
    hidden: Vec<Fault>,
}

// SAFETY: the model is owned exclusively by this value; the shim keeps no
// thread-local state, so it may move between threads (it is not Sync).
unsafe impl Send for UartSim {}

impl std::fmt::Debug for UartSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UartSim").field("name", &self.name).field("cpb", &self.cpb).finish()
    }
}

impl UartSim {
    /// A fresh, reset `rows`x`cols` board with `clocks_per_bit` clock cycles
    /// per UART bit (no hidden defects).
    pub fn open(rows: usize, cols: usize, clocks_per_bit: u32) -> Result<UartSim, BoardError> {
        if !(MIN_CLOCKS_PER_BIT..=MAX_CLOCKS_PER_BIT).contains(&clocks_per_bit) {
            return Err(BoardError::ClocksPerBit(clocks_per_bit));
        }
        let not_built = || BoardError::NotBuilt {
            rows,
            cols,
            built: {
                let b: Vec<String> =
                    built_sizes().iter().map(|(r, c)| format!("{r}x{c}")).collect();
                if b.is_empty() {
                    "none".into()
                } else {
                    b.join(", ")
                }
            },
        };
        let (r, c) = match (u32::try_from(rows), u32::try_from(cols)) {
            (Ok(r), Ok(c)) => (r, c),
            _ => return Err(not_built()),
        };
        // SAFETY: plain FFI call; NULL means "not built" (cpb checked above).
        let h = unsafe { ffi::dla_uart_new(r, c, clocks_per_bit) };
        match NonNull::new(h) {
            Some(h) => Ok(UartSim {
                h,
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
    pub fn clocks_per_bit(&self) -> u32 {
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
        // SAFETY: valid handle owned by self; values range-checked above.
        unsafe {
            ffi::dla_uart_defect(
                self.h.as_ptr(),
                f.row as u8,
                f.col as u8,
                f.site.code(),
                f.stuck_at_0 as u32,
                f.stuck_at_1 as u32,
            )
        };
        self.hidden.push(*f);
        Ok(())
    }

    /// Write every stuck-at entry of `map` as a hidden defect. The map must
    /// be valid, for this array size, and hold only stuck-at faults (bypass
    /// is a host mitigation and SEU a run setting, not a chip defect).
    pub fn apply_hidden(&mut self, map: &FaultMap) -> Result<(), BoardError> {
        let file =
            map.source.clone().map_or_else(|| "(in memory)".to_string(), |s| format!("'{s}'"));
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
        // SAFETY: valid handle; bytes readable for bytes.len().
        unsafe { ffi::dla_uart_write(self.h.as_ptr(), bytes.as_ptr(), bytes.len()) }
    }

    /// Clock until the board is idle with every queued byte sent, or
    /// `max_cycles`; returns the cycles run.
    pub fn run(&mut self, max_cycles: u64) -> u64 {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_uart_run(self.h.as_ptr(), max_cycles) }
    }

    /// Clock exactly `cycles` cycles (queued bytes are still sent), e.g. to
    /// let the idle timeout drop a partial frame.
    pub fn idle(&mut self, cycles: u64) {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_uart_idle(self.h.as_ptr(), cycles) }
    }

    /// Bytes received from the TX pin and not yet read.
    pub fn pending(&self) -> usize {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_uart_pending(self.h.as_ptr()) }
    }

    /// Read received bytes into `buf`; returns the count.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: valid handle; buf is writable for buf.len() bytes.
        unsafe { ffi::dla_uart_read(self.h.as_ptr(), buf.as_mut_ptr(), buf.len()) }
    }

    /// Nothing happens until the next input byte.
    pub fn quiescent(&self) -> bool {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_uart_quiescent(self.h.as_ptr()) != 0 }
    }

    /// Clock cycles simulated since the board was opened.
    pub fn total_cycles(&self) -> u64 {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_uart_total_cycles(self.h.as_ptr()) }
    }

    /// Bytes from the TX pin whose stop bit read 0 (0 for a correct RTL).
    pub fn framing_errors(&self) -> u64 {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_uart_framing_errors(self.h.as_ptr()) }
    }
}

impl Drop for UartSim {
    fn drop(&mut self) {
        // SAFETY: the handle came from dla_uart_new and is freed exactly once.
        unsafe { ffi::dla_uart_free(self.h.as_ptr()) }
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

// ---------------------------------------------------------------------------
// Serving a board on a pseudo-terminal

/// Settings of a [`PtyBoard`].
#[derive(Clone, Debug)]
pub struct PtyOptions {
    /// Wall-clock silence after which the board clocks its idle timeout, so
    /// a partial frame is dropped (rule 4; default 100 ms).
    pub idle_flush: Duration,
}

impl Default for PtyOptions {
    fn default() -> Self {
        PtyOptions { idle_flush: Duration::from_millis(100) }
    }
}

/// Counters of a running [`PtyBoard`].
#[derive(Debug, Default)]
pub struct PtyStats {
    /// Bytes the host sent.
    pub bytes_in: AtomicU64,
    /// Bytes the board sent.
    pub bytes_out: AtomicU64,
    /// Simulated clock cycles.
    pub cycles: AtomicU64,
}

/// A [`UartSim`] behind a pseudo-terminal: open [`PtyBoard::device_string`]
/// (`serial:/dev/pts/N`) to talk to it like to a board on a USB UART.
pub struct PtyBoard {
    path: String,
    stop: Arc<AtomicBool>,
    stats: Arc<PtyStats>,
    thread: Option<JoinHandle<Result<UartSim, String>>>,
    /// The pair's own slave end, kept open so the master never sees a
    /// hang-up between client sessions.
    slave: Option<TTYPort>,
}

impl PtyBoard {
    /// Serve `board` on a new pseudo-terminal.
    pub fn spawn(board: UartSim, opts: PtyOptions) -> Result<PtyBoard, BoardError> {
        let (mut master, slave) = TTYPort::pair().map_err(|e| BoardError::Pty(e.to_string()))?;
        let path = slave
            .name()
            .ok_or_else(|| BoardError::Pty("the pseudo-terminal has no name".into()))?
            .to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PtyStats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let thread = thread::Builder::new()
            .name(format!("pty-board {path}"))
            .spawn(move || serve(board, &mut master, &stop2, &stats2, &opts))
            .map_err(|e| BoardError::Pty(e.to_string()))?;
        Ok(PtyBoard { path, stop, stats, thread: Some(thread), slave: Some(slave) })
    }

    /// The pseudo-terminal path a client opens.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `serial:PATH`, the device string of this board.
    pub fn device_string(&self) -> String {
        format!("serial:{}", self.path)
    }

    /// Live counters.
    pub fn stats(&self) -> &PtyStats {
        &self.stats
    }

    /// True while the serving thread runs (it ends on a pseudo-terminal
    /// error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Block until the serving thread ends (it serves until stopped, or
    /// until the pseudo-terminal fails: that error is returned).
    pub fn wait(mut self) -> Result<UartSim, BoardError> {
        let t = self.thread.take().expect("thread present until stopped");
        let r = t.join().map_err(|_| BoardError::Pty("the board thread panicked".into()))?;
        r.map_err(BoardError::Pty)
    }

    /// Stop serving and close the pseudo-terminal. Returns the board.
    pub fn stop(mut self) -> Result<UartSim, BoardError> {
        self.stop_thread().unwrap_or_else(|| Err(BoardError::Pty("already stopped".into())))
    }

    fn stop_thread(&mut self) -> Option<Result<UartSim, BoardError>> {
        self.stop.store(true, Ordering::SeqCst);
        let r = self.thread.take().map(|t| {
            t.join()
                .map_err(|_| BoardError::Pty("the board thread panicked".into()))
                .and_then(|r| r.map_err(BoardError::Pty))
        });
        self.slave.take();
        r
    }
}

impl Drop for PtyBoard {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The serving loop: host bytes → RX pin, TX pin → host, until `stop`.
fn serve(
    mut board: UartSim,
    master: &mut TTYPort,
    stop: &AtomicBool,
    stats: &PtyStats,
    opts: &PtyOptions,
) -> Result<UartSim, String> {
    let poll = Duration::from_millis(10).min(opts.idle_flush);
    let mut timeout = Duration::ZERO;
    let mut buf = vec![0u8; 1 << 16];
    let mut last_input = Instant::now();
    let mut flush_due = false;
    let mut errors = 0u32;
    while !stop.load(Ordering::SeqCst) {
        // Wait for the host only when the board has nothing to do.
        let want = if board.quiescent() { poll } else { Duration::ZERO };
        if want != timeout {
            master.set_timeout(want).map_err(|e| format!("set timeout: {e}"))?;
            timeout = want;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => {
                board.write(&buf[..n]);
                stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                last_input = Instant::now();
                flush_due = true;
                errors = 0;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                // EIO while no slave is open cannot happen (we hold one);
                // anything else persistent is fatal.
                errors += 1;
                if errors > 100 {
                    return Err(format!("reading the pseudo-terminal: {e}"));
                }
                thread::sleep(poll);
            }
        }
        if !board.quiescent() {
            board.run(CHUNK_CYCLES);
        } else if flush_due && last_input.elapsed() >= opts.idle_flush {
            board.idle(IDLE_TIMEOUT_CYCLES + 16);
            flush_due = false;
        }
        stats.cycles.store(board.total_cycles(), Ordering::Relaxed);
        while board.pending() > 0 {
            let n = board.read(&mut buf);
            master.set_timeout(Duration::from_secs(5)).map_err(|e| format!("set timeout: {e}"))?;
            timeout = Duration::from_secs(5);
            if let Err(e) = master.write_all(&buf[..n]) {
                log::debug!("pty board: reply bytes lost: {e}");
            }
            stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    Ok(board)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Device;
    use crate::model_link::ModelLink;
    use crate::proto::Site;
    use crate::rng::Rng;

    fn any_size() -> Option<(usize, usize)> {
        built_sizes().first().copied()
    }

    #[test]
    fn info_over_the_uart_reports_the_defect_port() {
        let Some((r, c)) = any_size() else { return };
        let mut dev = Device::new(Box::new(UartSim::open(r, c, 8).unwrap()));
        let info = dev.info().unwrap();
        assert_eq!((info.rows, info.cols), (r, c));
        assert_eq!(info.features & 0x10, 0x10);
    }

    #[test]
    fn bad_clocks_per_bit_and_sizes_are_refused() {
        assert!(matches!(UartSim::open(4, 4, 3), Err(BoardError::ClocksPerBit(3))));
        assert!(matches!(UartSim::open(3, 5, 16), Err(BoardError::NotBuilt { .. })));
    }

    #[test]
    fn hidden_defects_survive_clear_faults_and_match_the_model_with_them_injected() {
        let Some((r, c)) = any_size() else { return };
        let mut board = UartSim::open(r, c, 8).unwrap();
        let f = Fault { row: 0, col: 0, site: Site::Weight, stuck_at_0: 0, stuck_at_1: 0x40 };
        board.add_defect(&f).unwrap();
        assert!(board.add_defect(&Fault { row: r, ..f }).is_err());
        assert!(board.add_defect(&Fault { stuck_at_0: 0x40, ..f }).is_err());
        assert!(board.add_defect(&Fault { stuck_at_1: 0x100, ..f }).is_err());
        assert_eq!(board.hidden(), &[f]);

        let mut dev = Device::new(Box::new(board));
        let mut model = Device::new(Box::new(ModelLink::sim(r, c)));
        let mut clean = Device::new(Box::new(ModelLink::sim(r, c)));
        model.set_fault(0, 0, Site::Weight, 0, 0x40).unwrap();
        let (m, k, n) = (3, r + 1, c + 1);
        let mut rng = Rng::new(5);
        let w = rng.vec_i8(k * n);
        let a = rng.vec_i8(m * k);
        for d in [&mut dev, &mut model, &mut clean] {
            d.load_matrix(0, k, n, &w).unwrap();
        }
        dev.clear_faults().unwrap();
        dev.reset().unwrap();
        let y = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
        assert_eq!(y, model.matmul(0, m, k, n, (0, 0), &a).unwrap());
        assert_ne!(y, clean.matmul(0, m, k, n, (0, 0), &a).unwrap());
    }
}
