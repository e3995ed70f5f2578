//! The byte-stream [`Link`] trait every backend implements.
//!
//! A link moves bytes, like a serial port: framing lives in [`crate::frame`]
//! and request/reply logic in the device client (faultloop-device), so the
//! Verilated RTL, the golden model, a serial port and a TCP bridge all run the
//! same host code. Implementations live in the crates that own them
//! (faultloop-model, faultloop-verilated, faultloop-device); this crate knows
//! none of them.

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
    /// Total clock cycles simulated so far, for links to a cycle-accurate
    /// simulation (`sim`); `None` for everything else.
    fn sim_cycles(&self) -> Option<u64> {
        None
    }
}

impl<L: Link + ?Sized> Link for Box<L> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        (**self).send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        (**self).recv(buf, timeout)
    }
    fn sim_cycles(&self) -> Option<u64> {
        (**self).sim_cycles()
    }
}
