//! Byte-stream links to a DLA and the device-string parser.
//!
//! A [`Link`] moves bytes, like a serial port: framing lives in [`crate::proto`]
//! and request/response logic in [`crate::client`], so every backend (the
//! Verilated RTL, the golden model, a serial port, a TCP bridge) runs the same
//! host code.

use std::io;
use std::time::Duration;

/// A byte stream to one device.
pub trait Link: Send {
    /// Name used in every error message (`sim:16x16`, `model:8x8`, `serial:/dev/ttyUSB0`).
    fn name(&self) -> &str;
    /// Queue or send `bytes` (whole frames or fragments of them).
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Read up to `buf.len()` bytes, blocking at most `timeout`; `Ok(0)` means
    /// nothing arrived in time.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
}
