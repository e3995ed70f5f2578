//! `serial:/dev/ttyUSB0[@baud]`: a board on a serial port (8N1, no flow
//! control), and a virtual board on a pseudo-terminal for hardware-free tests.
//!
//! [`SerialLink`] is a [`Link`] over the `serialport` crate: every write is a
//! `write_all` bounded by [`SerialOptions::write_timeout`]; every read waits at
//! most the timeout the client asks for. Framing, resync, timeouts per
//! request and retries live in [`crate::client::Device`], exactly as for every
//! other backend.
//!
//! Opening fails with an error that names the port and says what is wrong:
//! it does not exist ([`SerialError::NotFound`]), another program holds it
//! ([`SerialError::Busy`]; ports are opened exclusively), or permission is
//! denied. A port that disappears while in use (USB cable pulled) turns the
//! next read or write into an I/O error saying so; the client reports it
//! with the device and the request and stops — nothing is retried on a dead
//! port.
//!
//! Hardware-free tests put a device behind a pseudo-terminal with the
//! `serve::pty` server (feature `serve`) and open `serial:<slave path>` — the
//! very code path a real board uses.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use serialport::{ClearBuffer, SerialPort, TTYPort};

use faultloop_proto::Link;

/// Serial link settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialOptions {
    /// Longest a write may make no progress before the link fails (default 5 s).
    pub write_timeout: Duration,
    /// Open the port exclusively (TIOCEXCL + flock; default true), so a
    /// second program cannot interleave bytes.
    pub exclusive: bool,
}

impl Default for SerialOptions {
    fn default() -> Self {
        SerialOptions { write_timeout: Duration::from_secs(5), exclusive: true }
    }
}

/// Failures opening a serial port.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// The port does not exist.
    #[error("serial port {port} does not exist (is the board plugged in? `ls /dev/ttyUSB* /dev/ttyACM*`)")]
    NotFound { port: String },
    /// Someone else holds the port.
    #[error("serial port {port} is busy: another program has it open (a serial console, another faultloop?)")]
    Busy { port: String },
    /// Permission denied.
    #[error("no permission to open serial port {port} (add your user to the 'dialout' group)")]
    PermissionDenied { port: String },
    /// Anything else the serialport crate reports.
    #[error("cannot open serial port {port}: {source}")]
    Open {
        port: String,
        #[source]
        source: serialport::Error,
    },
}

fn map_open_error(port: &str, e: serialport::Error) -> SerialError {
    let port = port.to_string();
    match e.kind() {
        serialport::ErrorKind::NoDevice => SerialError::Busy { port },
        serialport::ErrorKind::Io(io::ErrorKind::NotFound) => SerialError::NotFound { port },
        serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied) => {
            SerialError::PermissionDenied { port }
        }
        _ if !Path::new(&port).exists() => SerialError::NotFound { port },
        _ => SerialError::Open { port, source: e },
    }
}

/// A board on a serial port.
pub struct SerialLink {
    name: String,
    path: String,
    port: TTYPort,
    opts: SerialOptions,
    timeout: Duration,
}

impl std::fmt::Debug for SerialLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialLink").field("name", &self.name).finish()
    }
}

impl SerialLink {
    /// Open `path` at `baud` 8N1 with default options.
    pub fn open(path: &str, baud: u32) -> Result<SerialLink, SerialError> {
        SerialLink::open_with(path, baud, &SerialOptions::default())
    }

    /// Open `path` at `baud` 8N1. Stale input is discarded. Named
    /// `serial:PATH@BAUD` in errors.
    pub fn open_with(
        path: &str,
        baud: u32,
        opts: &SerialOptions,
    ) -> Result<SerialLink, SerialError> {
        if !Path::new(path).exists() {
            return Err(SerialError::NotFound { port: path.to_string() });
        }
        let mut port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .timeout(opts.write_timeout)
            .open_native()
            .map_err(|e| map_open_error(path, e))?;
        if !opts.exclusive {
            port.set_exclusive(false).map_err(|e| map_open_error(path, e))?;
        }
        let _ = port.clear(ClearBuffer::All);
        Ok(SerialLink {
            name: format!("serial:{path}@{baud}"),
            path: path.to_string(),
            port,
            opts: opts.clone(),
            timeout: opts.write_timeout,
        })
    }

    /// The port path.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        if self.timeout != t {
            self.port.set_timeout(t).map_err(io::Error::from)?;
            self.timeout = t;
        }
        Ok(())
    }

    /// Turn an I/O error into one that says what happened to the port.
    fn port_error(&self, what: &str, e: io::Error) -> io::Error {
        if !Path::new(&self.path).exists() {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("serial port {} disappeared while {what} (unplugged?): {e}", self.path),
            )
        } else if e.kind() == io::ErrorKind::BrokenPipe {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("serial port {} hung up while {what}: {e}", self.path),
            )
        } else {
            io::Error::new(e.kind(), format!("serial port {} failed while {what}: {e}", self.path))
        }
    }
}

impl Link for SerialLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let wt = self.opts.write_timeout;
        self.set_timeout(wt)?;
        let mut at = 0;
        while at < bytes.len() {
            match self.port.write(&bytes[at..]) {
                Ok(0) => return Err(self.port_error("writing", io::ErrorKind::WriteZero.into())),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if !Path::new(&self.path).exists() {
                        return Err(self.port_error("writing", e));
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "serial port {} took no bytes for {wt:?} ({at} of {} written)",
                            self.path,
                            bytes.len()
                        ),
                    ));
                }
                Err(e) => return Err(self.port_error("writing", e)),
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.set_timeout(timeout)?;
        loop {
            return match self.port.read(buf) {
                // poll said readable and read returned nothing: hang-up.
                Ok(0) if !buf.is_empty() => {
                    Err(self.port_error("reading", io::ErrorKind::UnexpectedEof.into()))
                }
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) =>
                {
                    Ok(0)
                }
                Err(e) => Err(self.port_error("reading", e)),
            };
        }
    }
}
