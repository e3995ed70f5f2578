//! In-process Verilated `dla_sim_top` as a [`Link`](crate::link::Link).
//!
//! `build.rs` verilates the RTL (`rtl/`) once per size in
//! `FAULTLOOP_SIM_SIZES` (default `4x4,8x8,16x16`) and links the models with
//! the C shim `csrc/shim.cpp`. The clock loop runs on the C++ side: `send`
//! queues bytes, `recv` lets the model run in chunks of cycles until reply
//! bytes come out, so no byte crosses the FFI on its own.

use std::io;
use std::os::raw::c_void;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

mod ffi {
    use std::os::raw::c_void;
    extern "C" {
        pub fn dla_sizes(rows: *mut u32, cols: *mut u32, max: usize) -> usize;
        pub fn dla_new(rows: u32, cols: u32) -> *mut c_void;
        pub fn dla_new_ice40() -> *mut c_void;
        pub fn dla_free(h: *mut c_void);
        pub fn dla_write(h: *mut c_void, bytes: *const u8, n: usize);
        pub fn dla_run(h: *mut c_void, want_out_bytes: usize, max_cycles: u64) -> u64;
        pub fn dla_idle(h: *mut c_void, cycles: u64);
        pub fn dla_pending(h: *mut c_void) -> usize;
        pub fn dla_read(h: *mut c_void, buf: *mut u8, n: usize) -> usize;
        pub fn dla_quiescent(h: *mut c_void) -> i32;
        pub fn dla_total_cycles(h: *mut c_void) -> u64;
    }
}

/// Cycles per FFI call while waiting for a reply (well above the RTL's
/// IdleTimeout of 4096 cycles, so a partial frame is dropped within one chunk).
const CHUNK_CYCLES: u64 = 1 << 18;

/// Errors opening the Verilated model.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No model of that array size was compiled into this build.
    #[error("no Verilated model of size {rows}x{cols} in this build (built: {built})")]
    NotBuilt { rows: usize, cols: usize, built: String },
}

/// The array sizes (rows, cols) compiled into this build
/// (`FAULTLOOP_SIM_SIZES` at build time).
pub fn built_sizes() -> Vec<(usize, usize)> {
    let mut rows = [0u32; 64];
    let mut cols = [0u32; 64];
    // SAFETY: both buffers hold 64 entries, the shim writes at most `max`.
    let n = unsafe { ffi::dla_sizes(rows.as_mut_ptr(), cols.as_mut_ptr(), 64) }.min(64);
    (0..n).map(|i| (rows[i] as usize, cols[i] as usize)).collect()
}

/// The Verilated DLA.
pub struct SimLink {
    h: NonNull<c_void>,
    name: String,
}

// SAFETY: the model is owned exclusively by this value; the shim keeps no
// thread-local state, so it may move between threads (it is not Sync).
unsafe impl Send for SimLink {}

impl SimLink {
    /// Open a fresh, reset instance of the `rows`x`cols` model.
    pub fn open(rows: usize, cols: usize) -> Result<SimLink, SimError> {
        let not_built = || SimError::NotBuilt {
            rows,
            cols,
            built: built_sizes()
                .iter()
                .map(|(r, c)| format!("{r}x{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let (r, c) = match (u32::try_from(rows), u32::try_from(cols)) {
            (Ok(r), Ok(c)) => (r, c),
            _ => return Err(not_built()),
        };
        // SAFETY: plain FFI call; NULL means "not built".
        let h = unsafe { ffi::dla_new(r, c) };
        match NonNull::new(h) {
            Some(h) => Ok(SimLink { h, name: format!("sim:{rows}x{cols}") }),
            None => Err(not_built()),
        }
    }

    /// Open a fresh, reset instance of the iCE40 bitstream's core
    /// configuration ([`DeviceConfig::ice40`](crate::model::DeviceConfig::ice40):
    /// 2x2, no SEU hash, no simulation shortcut, the board's memory sizes),
    /// behind the same 8-byte stream port as the other sim models.
    pub fn open_ice40() -> SimLink {
        // SAFETY: plain FFI call; this model is always built.
        let h = unsafe { ffi::dla_new_ice40() };
        SimLink { h: NonNull::new(h).expect("dla_new_ice40"), name: "sim:ice40-2x2".into() }
    }

    /// Clock the model `cycles` cycles without new input (bytes already
    /// sent are still delivered); e.g. to let the idle timeout drop a
    /// partial frame. Reply bytes produced meanwhile are kept for `recv`.
    pub fn idle(&mut self, cycles: u64) {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_idle(self.h.as_ptr(), cycles) }
    }

    /// Clock cycles simulated since the model was opened.
    pub fn total_cycles(&self) -> u64 {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_total_cycles(self.h.as_ptr()) }
    }

    fn read_pending(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: valid handle; buf is writable for buf.len() bytes.
        unsafe { ffi::dla_read(self.h.as_ptr(), buf.as_mut_ptr(), buf.len()) }
    }

    fn pending(&self) -> usize {
        // SAFETY: valid handle owned by self.
        unsafe { ffi::dla_pending(self.h.as_ptr()) }
    }
}

impl Drop for SimLink {
    fn drop(&mut self) {
        // SAFETY: the handle came from dla_new and is freed exactly once.
        unsafe { ffi::dla_free(self.h.as_ptr()) }
    }
}

impl crate::link::Link for SimLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn sim_cycles(&self) -> Option<u64> {
        Some(self.total_cycles())
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: valid handle; bytes readable for bytes.len().
        unsafe { ffi::dla_write(self.h.as_ptr(), bytes.as_ptr(), bytes.len()) };
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
            if self.pending() == 0 {
                // SAFETY: valid handle owned by self.
                unsafe { ffi::dla_run(self.h.as_ptr(), buf.len(), CHUNK_CYCLES) };
            }
            if self.pending() > 0 {
                return Ok(self.read_pending(buf));
            }
            // A whole chunk (> IdleTimeout) ran without output.
            // SAFETY: valid handle owned by self.
            if unsafe { ffi::dla_quiescent(self.h.as_ptr()) } != 0 || start.elapsed() >= timeout {
                return Ok(0);
            }
        }
    }
}
