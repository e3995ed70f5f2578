//! In-process Verilated `dla_sim_top` as a [`Link`].
//!
//! `build.rs` verilates the RTL (`rtl/`) once per size in
//! `FAULTLOOP_SIM_SIZES` (default `4x4,8x8,16x16`) and links the models with
//! the C shim `csrc/shim.cpp`. The clock loop runs on the C++ side: `send`
//! queues bytes, `recv` lets the model run in chunks of cycles until reply
//! bytes come out, so no byte crosses the FFI on its own.

use std::ffi::CString;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultloop_proto::Link;

use crate::ffi::{self, Model};

/// Cycles per FFI call while waiting for a reply (well above the RTL's
/// IdleTimeout of 4096 cycles, so a partial frame is dropped within one chunk).
const CHUNK_CYCLES: u64 = 1 << 18;

/// Errors opening the Verilated model.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No model of that array size was compiled into this build.
    #[error("no Verilated model of size {rows}x{cols} in this build (built: {built})")]
    NotBuilt { rows: usize, cols: usize, built: String },
    /// The waveform file could not be created.
    #[error("waveform {}: {problem}", path.display())]
    Trace { path: PathBuf, problem: String },
}

/// The array sizes (rows, cols) compiled into this build
/// (`FAULTLOOP_SIM_SIZES` at build time).
pub fn built_sizes() -> Vec<(usize, usize)> {
    ffi::SIM.built_sizes()
}

/// The Verilated DLA.
pub struct SimLink {
    model: Model,
    name: String,
}

impl SimLink {
    /// Open a fresh, reset instance of the `rows`x`cols` model.
    pub fn open(rows: usize, cols: usize) -> Result<SimLink, SimError> {
        let not_built =
            || SimError::NotBuilt { rows, cols, built: ffi::sizes_text(&built_sizes()) };
        let (r, c) = match (u32::try_from(rows), u32::try_from(cols)) {
            (Ok(r), Ok(c)) => (r, c),
            _ => return Err(not_built()),
        };
        match Model::sim(r, c) {
            Some(model) => Ok(SimLink { model, name: format!("sim:{rows}x{cols}") }),
            None => Err(not_built()),
        }
    }

    /// [`SimLink::open`] recording an FST waveform of the clock cycles in
    /// `window` (counted like [`SimLink::total_cycles`]: 0 is the first cycle
    /// after reset) into `path` (created or truncated; complete once the link is
    /// dropped). It holds every signal of the design: the top's ports and,
    /// under `dla_core`, the array's PEs with their partial sums. Time is 10
    /// units per clock cycle: cycle n at 10n, its rising edge at 10n + 5.
    pub fn open_traced(
        rows: usize,
        cols: usize,
        path: &Path,
        window: Range<u64>,
    ) -> Result<SimLink, SimError> {
        let mut link = SimLink::open(rows, cols)?;
        link.trace(path, window)?;
        Ok(link)
    }

    fn trace(&mut self, path: &Path, window: Range<u64>) -> Result<(), SimError> {
        let err = |problem: String| SimError::Trace { path: path.to_path_buf(), problem };
        // Create the file here first: the FST writer reports no cause.
        std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| err("the path holds a NUL byte".into()))?;
        if !self.model.sim_trace_open(&c, window.start, window.end) {
            return Err(err("the FST writer could not open it".into()));
        }
        Ok(())
    }

    /// The same link under another name (what messages and reports call
    /// it, e.g. the device string `sim:ulx3s`).
    pub fn with_name(mut self, name: impl Into<String>) -> SimLink {
        self.name = name.into();
        self
    }

    /// Open a fresh, reset instance of the iCE40 bitstream's core
    /// configuration (`Info::ice40()` of faultloop-proto:
    /// 2x2, no SEU hash, no simulation shortcut, the board's memory sizes),
    /// behind the same 8-byte stream port as the other sim models.
    pub fn open_ice40() -> SimLink {
        SimLink { model: Model::sim_ice40(), name: "sim:ice40-2x2".into() }
    }

    /// Open a fresh, reset instance of the ECP5 (ULX3S) bitstream's core
    /// configuration (`Info::ecp5()` of faultloop-proto: 8x8, the full fault
    /// model, no simulation shortcut, the board's memory sizes), behind the
    /// same 8-byte stream port as the other sim models.
    pub fn open_ecp5() -> SimLink {
        SimLink { model: Model::sim_ecp5(), name: "sim:ecp5-8x8".into() }
    }

    /// Clock the model `cycles` cycles without new input (bytes already
    /// sent are still delivered); e.g. to let the idle timeout drop a
    /// partial frame. Reply bytes produced meanwhile are kept for `recv`.
    pub fn idle(&mut self, cycles: u64) {
        self.model.idle(cycles)
    }

    /// Clock cycles simulated since the model was opened.
    pub fn total_cycles(&self) -> u64 {
        self.model.total_cycles()
    }
}

impl Link for SimLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn sim_cycles(&self) -> Option<u64> {
        Some(self.total_cycles())
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.model.write(bytes);
        Ok(())
    }

    /// Runs the model until reply bytes are available (up to `buf.len()`, or
    /// fewer once the device has finished replying), or `timeout` of wall
    /// time passes. Returns `Ok(0)` early when the device is idle waiting
    /// for input with nothing left to send: then nothing can arrive.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = Instant::now();
        loop {
            if self.model.pending() == 0 {
                self.model.run(buf.len(), CHUNK_CYCLES);
            }
            if self.model.pending() > 0 {
                return Ok(self.model.read(buf));
            }
            // A whole chunk (> IdleTimeout) ran without output.
            if self.model.quiescent() || start.elapsed() >= timeout {
                return Ok(0);
            }
        }
    }
}
