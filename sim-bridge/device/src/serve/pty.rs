//! One pseudo-terminal server for every virtual board.
//!
//! [`PtyServer`] owns the master side of a pseudo-terminal pair and serves a
//! [`Backend`] on it; a client opens [`PtyServer::device_string`]
//! (`serial:/dev/pts/N`), the very code path a board on a USB UART uses.
//! Two backends:
//!
//! * [`Gated`] — any device link (normally the golden model) behind the
//!   device's frame receiver rules ([`RequestGate`], including the idle
//!   timeout of rule 4 that the golden model lacks): whole CRC-valid frames
//!   are forwarded, refusals answered as the device would.
//! * [`UartSim`](faultloop_verilated::UartSim) (feature `sim`) — the
//!   Verilated `dla_uart_top` driven bit by bit: raw bytes onto its RX pin,
//!   its TX pin back to the host (`faultloop board --pty`).
//!
//! Time: a simulated board's clock runs only while it has work; while it
//! waits for the host, simulated time stands still. So rule 4 (a partial
//! frame followed by silence is dropped) is applied in wall time: after
//! [`PtyOptions::idle_flush`] of silence the server calls
//! [`Backend::silence`] (the UART board then clocks its idle timeout; the
//! gated backend drops a partial frame).

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

use faultloop_proto::receiver::{GateEvent, RequestGate};
use faultloop_proto::{encode_reply, Link};

use crate::client::{ClientOptions, Device, DeviceError};
use crate::serve::forward::{Answer, Forwarder};

/// What a [`PtyServer`] serves: bytes in from the host, bytes out to it.
pub trait Backend: Send + 'static {
    /// Bytes the host sent.
    fn input(&mut self, bytes: &[u8]);
    /// Whether there is work to do without more input.
    fn busy(&self) -> bool;
    /// Do some of that work. An error ends the server.
    fn step(&mut self) -> Result<(), String>;
    /// Move output bytes for the host into `out` (appending).
    fn output(&mut self, out: &mut Vec<u8>);
    /// The host has been silent for [`PtyOptions::idle_flush`] (rule 4).
    fn silence(&mut self);
    /// Simulated clock cycles so far (0 for backends without a clock).
    fn cycles(&self) -> u64 {
        0
    }
}

/// Settings of a [`PtyServer`].
#[derive(Clone, Debug)]
pub struct PtyOptions {
    /// Wall-clock silence after which a partial frame is dropped (rule 4;
    /// default 100 ms).
    pub idle_flush: Duration,
    /// How long the gated backend waits for its device's reply (default:
    /// the client's formula, [`ClientOptions::default`]).
    pub device_timeouts: ClientOptions,
}

impl Default for PtyOptions {
    fn default() -> Self {
        PtyOptions {
            idle_flush: Duration::from_millis(100),
            device_timeouts: ClientOptions::default(),
        }
    }
}

/// Counters of a running [`PtyServer`].
#[derive(Debug, Default)]
pub struct PtyStats {
    /// Bytes the host sent.
    pub bytes_in: AtomicU64,
    /// Bytes the board sent.
    pub bytes_out: AtomicU64,
    /// Simulated clock cycles (0 for the gated backend).
    pub cycles: AtomicU64,
}

/// Errors of the pseudo-terminal server.
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    /// The pseudo-terminal pair could not be created.
    #[error("cannot create a pseudo-terminal: {0}")]
    Create(#[source] serialport::Error),
    /// The pair's slave side has no path.
    #[error("the pseudo-terminal has no name")]
    NoName,
    /// The gated backend's device does not answer INFO.
    #[error("the board's device does not answer INFO: {0}")]
    Device(#[source] DeviceError),
    /// The serving thread could not be started.
    #[error("cannot start the pseudo-terminal thread: {0}")]
    Spawn(#[source] io::Error),
    /// Serving failed (the pseudo-terminal or the device).
    #[error("virtual board {path}: {problem}")]
    Serve { path: String, problem: String },
    /// The serving thread panicked.
    #[error("virtual board {path}: the serving thread panicked")]
    Panicked { path: String },
    /// `stop` after the server already stopped.
    #[error("virtual board {path}: already stopped")]
    Stopped { path: String },
}

/// A [`Backend`] behind a pseudo-terminal: open [`PtyServer::device_string`]
/// to talk to it like to a board on a USB UART.
pub struct PtyServer<B: Backend> {
    path: String,
    stop: Arc<AtomicBool>,
    stats: Arc<PtyStats>,
    thread: Option<JoinHandle<Result<B, String>>>,
    /// The pair's own slave end, kept open so the master never sees a
    /// hang-up between client sessions.
    slave: Option<TTYPort>,
}

impl PtyServer<Gated> {
    /// Serve a device link behind the receiver rules, with default options.
    pub fn gated(device: Box<dyn Link>) -> Result<PtyServer<Gated>, PtyError> {
        PtyServer::gated_with(device, PtyOptions::default())
    }

    /// Serve a device link behind the receiver rules. Its INFO is read
    /// first (for the receiver's buffer size).
    pub fn gated_with(
        device: Box<dyn Link>,
        opts: PtyOptions,
    ) -> Result<PtyServer<Gated>, PtyError> {
        let backend = Gated::new(device, &opts)?;
        PtyServer::spawn(backend, opts)
    }
}

impl<B: Backend> PtyServer<B> {
    /// Serve `backend` on a new pseudo-terminal.
    pub fn spawn(backend: B, opts: PtyOptions) -> Result<PtyServer<B>, PtyError> {
        let (mut master, slave) = TTYPort::pair().map_err(PtyError::Create)?;
        let path = slave.name().ok_or(PtyError::NoName)?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PtyStats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let thread = thread::Builder::new()
            .name(format!("pty {path}"))
            .spawn(move || serve(backend, &mut master, &stop2, &stats2, &opts))
            .map_err(PtyError::Spawn)?;
        Ok(PtyServer { path, stop, stats, thread: Some(thread), slave: Some(slave) })
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

    /// True while the serving thread runs (it ends on an error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Block until the serving thread ends (it serves until stopped, or
    /// until serving fails: that error is returned).
    pub fn wait(mut self) -> Result<B, PtyError> {
        let t = self.thread.take().expect("thread present until stopped");
        self.join(t)
    }

    /// Stop serving and close the pseudo-terminal: the port disappears, as
    /// when a USB cable is pulled. Returns the backend.
    pub fn stop(mut self) -> Result<B, PtyError> {
        self.stop_thread().unwrap_or_else(|| Err(PtyError::Stopped { path: self.path.clone() }))
    }

    fn join(&self, t: JoinHandle<Result<B, String>>) -> Result<B, PtyError> {
        let path = self.path.clone();
        match t.join() {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(problem)) => Err(PtyError::Serve { path, problem }),
            Err(_) => Err(PtyError::Panicked { path }),
        }
    }

    fn stop_thread(&mut self) -> Option<Result<B, PtyError>> {
        self.stop.store(true, Ordering::SeqCst);
        let r = self.thread.take().map(|t| self.join(t));
        self.slave.take();
        r
    }
}

impl<B: Backend> Drop for PtyServer<B> {
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

/// The serving loop: host bytes → backend, backend → host, until `stop`.
fn serve<B: Backend>(
    mut backend: B,
    master: &mut TTYPort,
    stop: &AtomicBool,
    stats: &PtyStats,
    opts: &PtyOptions,
) -> Result<B, String> {
    let poll = Duration::from_millis(10).min(opts.idle_flush);
    let mut timeout = Duration::ZERO;
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    let mut last_input = Instant::now();
    let mut flush_due = false;
    let mut errors = 0u32;
    while !stop.load(Ordering::SeqCst) {
        // Wait for the host only when the backend has nothing to do.
        let want = if backend.busy() { Duration::ZERO } else { poll };
        if want != timeout {
            master.set_timeout(want).map_err(|e| format!("set timeout: {e}"))?;
            timeout = want;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => {
                backend.input(&buf[..n]);
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
        if backend.busy() {
            backend.step()?;
        } else if flush_due && last_input.elapsed() >= opts.idle_flush {
            backend.silence();
            flush_due = false;
        }
        stats.cycles.store(backend.cycles(), Ordering::Relaxed);
        backend.output(&mut out);
        if !out.is_empty() {
            master.set_timeout(Duration::from_secs(5)).map_err(|e| format!("set timeout: {e}"))?;
            timeout = Duration::from_secs(5);
            if let Err(e) = master.write_all(&out) {
                log::debug!("pty: reply bytes lost: {e}");
            }
            stats.bytes_out.fetch_add(out.len() as u64, Ordering::Relaxed);
            out.clear();
        }
    }
    Ok(backend)
}

/// A device link behind the device's receiver rules.
pub struct Gated {
    gate: RequestGate,
    fwd: Forwarder,
    /// Input arrived since the last step: a frame may be complete.
    dirty: bool,
    out: Vec<u8>,
}

impl Gated {
    fn new(device: Box<dyn Link>, opts: &PtyOptions) -> Result<Gated, PtyError> {
        let mut probe = Device::with_options(device, opts.device_timeouts.clone());
        let info = probe.info().map_err(PtyError::Device)?;
        let fwd =
            Forwarder::new(probe.into_link(), info.max_reply_len(), opts.device_timeouts.clone());
        let gate = RequestGate::new(info.buf_bytes, opts.idle_flush);
        Ok(Gated { gate, fwd, dirty: false, out: Vec::new() })
    }

    /// The device link behind the rules.
    pub fn into_link(self) -> Box<dyn Link> {
        self.fwd.link
    }
}

impl Backend for Gated {
    fn input(&mut self, bytes: &[u8]) {
        self.gate.push(bytes);
        self.dirty = true;
    }

    fn busy(&self) -> bool {
        self.dirty
    }

    fn step(&mut self) -> Result<(), String> {
        self.dirty = false;
        while let Some(ev) = self.gate.next_event() {
            match ev {
                GateEvent::Refuse { status, seq } => {
                    self.out.extend_from_slice(&encode_reply(status, seq, &[]))
                }
                GateEvent::Request(f) => match self.fwd.forward(&f, false) {
                    Ok(Answer::Bytes(b)) => self.out.extend_from_slice(&b),
                    Ok(Answer::Nothing) => {}
                    Err(e) => return Err(format!("device {} failed: {e}", self.fwd.link.name())),
                },
            }
        }
        Ok(())
    }

    fn output(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
    }

    fn silence(&mut self) {
        self.gate.expire(Instant::now());
    }
}

/// The Verilated UART board: raw bytes onto its RX pin.
#[cfg(feature = "sim")]
impl Backend for faultloop_verilated::UartSim {
    fn input(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }

    fn busy(&self) -> bool {
        !self.quiescent()
    }

    fn step(&mut self) -> Result<(), String> {
        // About 1000 bytes on the line at the default bit period per call,
        // so replies stream out as they are sent.
        self.run(1 << 20);
        Ok(())
    }

    fn output(&mut self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 4096];
        while self.pending() > 0 {
            let n = self.read(&mut buf);
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn silence(&mut self) {
        self.idle(faultloop_verilated::uart::IDLE_TIMEOUT_CYCLES + 16);
    }

    fn cycles(&self) -> u64 {
        self.total_cycles()
    }
}
