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
//! [`VirtualBoard`] puts any device link (normally
//! [`crate::model_link::ModelLink`]) behind the master side of a
//! pseudo-terminal pair, with the board's frame receiver rules (including the
//! idle timeout of rule 4, which the golden model lacks). A test then opens
//! `serial:<slave path>` — the very code path a real board uses.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serialport::{ClearBuffer, SerialPort, TTYPort};

use crate::bridge::{Answer, Forwarder, GateEvent, RequestGate};
use crate::client::{ClientOptions, Device};
use crate::link::Link;
use crate::proto::encode_reply;

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
    /// Creating a pseudo-terminal (virtual board) failed.
    #[error("cannot create a pseudo-terminal: {0}")]
    Pty(#[source] serialport::Error),
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

// ---------------------------------------------------------------------------
// A virtual board on a pseudo-terminal

/// Settings of a [`VirtualBoard`].
#[derive(Clone, Debug)]
pub struct BoardOptions {
    /// Rule 4 of the receiver: a partial frame followed by this much silence
    /// is dropped (default 100 ms).
    pub idle_timeout: Duration,
    /// How long the board waits for its device's reply (default: the client's
    /// formula, [`ClientOptions::default`]).
    pub device_timeouts: ClientOptions,
}

impl Default for BoardOptions {
    fn default() -> Self {
        BoardOptions {
            idle_timeout: Duration::from_millis(100),
            device_timeouts: ClientOptions::default(),
        }
    }
}

/// A device behind a pseudo-terminal: open [`VirtualBoard::device_string`]
/// (`serial:/dev/pts/N`) to talk to it like to a board on a UART.
pub struct VirtualBoard {
    path: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Box<dyn Link>>>,
    /// The pair's own slave end, kept open so the master never sees a
    /// hang-up between client sessions.
    slave: Option<TTYPort>,
}

impl VirtualBoard {
    /// Start a board around `device` with default options.
    pub fn spawn(device: Box<dyn Link>) -> Result<VirtualBoard, SerialError> {
        VirtualBoard::spawn_with(device, BoardOptions::default())
    }

    /// Start a board around `device`. Its INFO is read first (for the
    /// receiver's buffer size).
    pub fn spawn_with(
        device: Box<dyn Link>,
        opts: BoardOptions,
    ) -> Result<VirtualBoard, SerialError> {
        let (mut master, slave) = TTYPort::pair().map_err(SerialError::Pty)?;
        let path = slave
            .name()
            .ok_or_else(|| {
                SerialError::Pty(serialport::Error::new(
                    serialport::ErrorKind::Unknown,
                    "the pseudo-terminal has no name",
                ))
            })?
            .to_string();
        let mut probe = Device::with_options(device, opts.device_timeouts.clone());
        let info = probe.info().map_err(|e| {
            SerialError::Pty(serialport::Error::new(
                serialport::ErrorKind::Unknown,
                format!("the board's device does not answer INFO: {e}"),
            ))
        })?;
        let device = probe.into_link();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name(format!("virtual-board {path}"))
            .spawn(move || {
                let mut fwd =
                    Forwarder::new(device, info.max_reply_len(), opts.device_timeouts.clone());
                let mut gate = RequestGate::new(info.buf_bytes, opts.idle_timeout);
                let poll = Duration::from_millis(10).min(opts.idle_timeout);
                let _ = master.set_timeout(poll);
                let mut buf = vec![0u8; 1 << 16];
                while !stop2.load(Ordering::SeqCst) {
                    match master.read(&mut buf) {
                        Ok(n) => gate.push(&buf[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::TimedOut
                                    | io::ErrorKind::WouldBlock
                                    | io::ErrorKind::Interrupted
                            ) =>
                        {
                            gate.expire(std::time::Instant::now());
                        }
                        Err(e) => {
                            log::debug!("virtual board: master read: {e}");
                            thread::sleep(poll);
                        }
                    }
                    while let Some(ev) = gate.next_event() {
                        let reply = match ev {
                            GateEvent::Refuse { status, seq } => encode_reply(status, seq, &[]),
                            GateEvent::Request(f) => match fwd.forward(&f, false) {
                                Ok(Answer::Bytes(b)) => b,
                                Ok(Answer::Nothing) => continue,
                                Err(e) => {
                                    log::error!("virtual board: device failed: {e}");
                                    return fwd.link;
                                }
                            },
                        };
                        let _ = master.set_timeout(Duration::from_secs(5));
                        if let Err(e) = master.write_all(&reply) {
                            log::debug!("virtual board: reply lost: {e}");
                        }
                        let _ = master.set_timeout(poll);
                    }
                }
                fwd.link
            })
            .map_err(|e| {
                SerialError::Pty(serialport::Error::new(
                    serialport::ErrorKind::Unknown,
                    e.to_string(),
                ))
            })?;
        Ok(VirtualBoard { path, stop, thread: Some(thread), slave: Some(slave) })
    }

    /// The pseudo-terminal path a client opens.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `serial:PATH`, the device string of this board.
    pub fn device_string(&self) -> String {
        format!("serial:{}", self.path)
    }

    /// Stop the board and close the pseudo-terminal: the port disappears, as
    /// when a USB cable is pulled. Returns the device link.
    pub fn unplug(mut self) -> Option<Box<dyn Link>> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Option<Box<dyn Link>> {
        self.stop.store(true, Ordering::SeqCst);
        let link = self.thread.take().and_then(|t| t.join().ok());
        self.slave.take();
        link
    }
}

impl Drop for VirtualBoard {
    fn drop(&mut self) {
        self.stop_thread();
    }
}
