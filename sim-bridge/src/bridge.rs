//! The remote bridge: `faultloop serve` exposes any device over TCP.
//!
//! ```text
//! client (tcp://host:port) ──TCP──▶ Server ──Link──▶ device (sim, model, serial:…, tcp://…)
//! ```
//!
//! Wire format (docs/protocol.md, "Remote bridge and serial"):
//!
//! 1. Handshake, plain text, before any frame: the client sends
//!    `FAULTLOOP/1 <token>\n`; the server answers `OK <device name>\n` or
//!    `ERR <reason>\n` and closes. Nothing the client sends before a good
//!    handshake is ever parsed as a frame.
//! 2. Then ordinary request frames and reply frames (§1 of the protocol).
//!
//! The server applies the device's receiver rules itself ([`RequestGate`]):
//! garbage is skipped, an impossible length is answered `BAD_LENGTH`, a bad
//! CRC is answered `BAD_CRC` (nothing executed), a partial frame followed by
//! silence is dropped after [`ServeOptions::frame_idle_timeout`]. Only
//! complete, CRC-valid request frames reach the device, each in one
//! [`Link::send`], so a client that drops mid-frame never leaves a partial
//! frame in the device.
//!
//! Sequence numbers are translated: the server sends each request with its
//! own sequence number and maps the reply back, so a late reply meant for a
//! previous client (or a previous, timed-out attempt) can never be taken for
//! the answer to a new request.
//!
//! One client at a time: the first connection that sends a request holds the
//! device until it disconnects (or stays silent for
//! [`ServeOptions::hold_timeout`]). Every request from another connection is
//! answered with a `BUSY` status frame (seq echoed, nothing executed); such a
//! connection may keep trying and takes over once the device is free.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::client::{ClientOptions, Device};
use crate::link::Link;
use crate::proto::{
    self, crc16, decode, encode_reply, encode_request, Decoded, Frame, Opcode, SkipReason, Status,
    CRC_LEN, HEADER_LEN, MATMUL_HEADER_LEN, REPLY_SYNC, REQUEST_SYNC,
};
use crate::tcp::{Token, HANDSHAKE_MAGIC, MAX_HANDSHAKE_LINE};

// ---------------------------------------------------------------------------
// The device's receiver rules, host side

/// What a [`RequestGate`] found in the bytes pushed into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateEvent {
    /// A complete request frame with a good CRC.
    Request(Frame),
    /// A frame the gate answers itself, as the device would: `BAD_LENGTH`
    /// (header claims more than `max_len`) or `BAD_CRC`; nothing is executed.
    Refuse { status: Status, seq: u16 },
}

/// The device's frame receiver rules (docs/protocol.md §1, rules 1–4) on the
/// host side of a link: bytes in, whole CRC-valid request frames out.
#[derive(Debug)]
pub struct RequestGate {
    buf: Vec<u8>,
    head: usize,
    max_len: usize,
    idle_timeout: Duration,
    last_push: Instant,
    dropped_partials: u64,
}

impl RequestGate {
    /// A gate accepting payloads up to `max_len` bytes (the device's
    /// `buf_bytes`) that drops a partial frame after `idle_timeout` without bytes.
    pub fn new(max_len: usize, idle_timeout: Duration) -> RequestGate {
        RequestGate {
            buf: Vec::new(),
            head: 0,
            max_len,
            idle_timeout,
            last_push: Instant::now(),
            dropped_partials: 0,
        }
    }

    /// Feed received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > (1 << 16) && self.head * 2 > self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.last_push = Instant::now();
    }

    /// Bytes of a partial frame waiting for the rest.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Partial frames dropped by the idle timeout so far.
    pub fn dropped_partials(&self) -> u64 {
        self.dropped_partials
    }

    /// Rule 4: drop a partial frame when no byte came for the idle timeout.
    /// Returns whether something was dropped.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.pending() > 0 && now.saturating_duration_since(self.last_push) >= self.idle_timeout
        {
            log::debug!("dropping a partial frame of {} bytes (idle)", self.pending());
            self.buf.clear();
            self.head = 0;
            self.dropped_partials += 1;
            return true;
        }
        false
    }

    /// The next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<GateEvent> {
        loop {
            let live = &self.buf[self.head..];
            // Rule 1: hunt.
            match live.iter().position(|&b| b == REQUEST_SYNC) {
                Some(0) => {}
                Some(i) => {
                    self.head += i;
                    continue;
                }
                None => {
                    self.head = self.buf.len();
                    return None;
                }
            }
            if live.len() < HEADER_LEN {
                return None;
            }
            let code = live[1];
            let seq = u16::from_le_bytes([live[2], live[3]]);
            let len = u32::from_le_bytes([live[4], live[5], live[6], live[7]]) as u64;
            // Rule 2.
            if len > self.max_len as u64 {
                self.head += HEADER_LEN;
                return Some(GateEvent::Refuse { status: Status::BadLength, seq });
            }
            let body_end = HEADER_LEN + len as usize;
            let total = body_end + CRC_LEN;
            if live.len() < total {
                return None;
            }
            // Rule 3 (the CRC part; the device judges everything else).
            let want = crc16(&live[1..body_end]);
            let got = u16::from_le_bytes([live[body_end], live[body_end + 1]]);
            let payload =
                if want == got { Some(live[HEADER_LEN..body_end].to_vec()) } else { None };
            self.head += total;
            return Some(match payload {
                Some(payload) => GateEvent::Request(Frame { code, seq, payload }),
                None => GateEvent::Refuse { status: Status::BadCrc, seq },
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Forwarding whole frames to a device link

/// How the device answered one forwarded frame.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Reply bytes to pass back (a good reply, or a deliberately bad-CRC
    /// marker when the device's reply arrived garbled, so the client retries).
    Bytes(Vec<u8>),
    /// No reply within the timeout: say nothing, the client times out.
    Nothing,
}

/// A device link plus what is needed to exchange whole frames with it.
pub(crate) struct Forwarder {
    pub(crate) link: Box<dyn Link>,
    seq: u16,
    rx: Vec<u8>,
    chunk: Vec<u8>,
    max_reply: usize,
    timeouts: ClientOptions,
    pub(crate) frames: u64,
    pub(crate) timeouts_seen: u64,
    pub(crate) garbled_seen: u64,
}

impl Forwarder {
    pub(crate) fn new(link: Box<dyn Link>, max_reply: usize, timeouts: ClientOptions) -> Forwarder {
        Forwarder {
            link,
            // Start far from the client's sequence numbers (which start at 1),
            // so a stale reply from a probe can never look like a new one.
            seq: 0x8000,
            rx: Vec::new(),
            chunk: vec![0; 1 << 20],
            max_reply,
            timeouts,
            frames: 0,
            timeouts_seen: 0,
            garbled_seen: 0,
        }
    }

    /// Send one request frame and wait for its reply. With `translate`, the
    /// frame goes out with the forwarder's own seq and the reply is mapped
    /// back to `frame.seq`; without, the seq is kept.
    pub(crate) fn forward(&mut self, frame: &Frame, translate: bool) -> io::Result<Answer> {
        let seq = if translate {
            self.seq = self.seq.wrapping_add(1);
            self.seq
        } else {
            frame.seq
        };
        let (macs, reply_bytes) = work_of(frame);
        let timeout = self
            .timeouts
            .timeout_for(frame.payload.len() + reply_bytes + 2 * proto::FRAME_OVERHEAD, macs);
        let bytes = encode_request(frame.code, seq, &frame.payload);
        self.link.send(&bytes)?;
        self.frames += 1;
        let deadline = Instant::now() + timeout;
        let mut idle_spins = 0u32;
        loop {
            let mut at = 0;
            let mut found = None;
            loop {
                match decode(&self.rx[at..], REPLY_SYNC, self.max_reply) {
                    Decoded::Incomplete => break,
                    Decoded::Frame { frame: r, consumed } => {
                        at += consumed;
                        if r.seq == seq {
                            found =
                                Some(Answer::Bytes(encode_reply(r.code, frame.seq, &r.payload)));
                            break;
                        }
                        log::debug!("{}: dropping stale reply seq {}", self.link.name(), r.seq);
                    }
                    Decoded::Skip { n, reason } => {
                        at += n;
                        if let SkipReason::BadCrc { code, seq: s, .. } = reason {
                            if s == seq {
                                self.garbled_seen += 1;
                                found = Some(Answer::Bytes(garbled_marker(code, frame.seq)));
                                break;
                            }
                        }
                    }
                }
            }
            self.rx.drain(..at);
            if let Some(a) = found {
                return Ok(a);
            }
            let now = Instant::now();
            if now >= deadline {
                self.timeouts_seen += 1;
                log::warn!(
                    "{}: no reply to {} within {timeout:.1?}",
                    self.link.name(),
                    Opcode::name_of(frame.code)
                );
                return Ok(Answer::Nothing);
            }
            let n = self.link.recv(&mut self.chunk, deadline - now)?;
            if n == 0 {
                if now.elapsed() < Duration::from_micros(20) {
                    idle_spins += 1;
                    if idle_spins > 100 {
                        thread::sleep(
                            Duration::from_micros(200)
                                .min(deadline.saturating_duration_since(Instant::now())),
                        );
                    } else {
                        thread::yield_now();
                    }
                }
                continue;
            }
            idle_spins = 0;
            self.rx.extend_from_slice(&self.chunk[..n]);
        }
    }
}

/// (MACs, reply bytes) a request implies, for sizing the device timeout.
fn work_of(frame: &Frame) -> (u64, usize) {
    let p = &frame.payload;
    if frame.code == Opcode::Matmul as u8 && p.len() >= MATMUL_HEADER_LEN {
        let dim = |i: usize| u16::from_le_bytes([p[i], p[i + 1]]) as u64;
        let (m, k, n) = (dim(4), dim(6), dim(8));
        (m * k * n, (m * n * 4) as usize)
    } else {
        (0, proto::COUNTERS_LEN.max(proto::INFO_LEN))
    }
}

/// A reply header with `seq` whose CRC is certainly wrong: the client's
/// decoder reports it as a garbled reply to that request and retries.
fn garbled_marker(code: u8, seq: u16) -> Vec<u8> {
    let mut f = encode_reply(code, seq, &[]);
    let at = f.len() - CRC_LEN;
    f[at] ^= 0xFF;
    f
}

// ---------------------------------------------------------------------------
// The server

/// Errors of the bridge server.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The listen address does not parse or resolve.
    #[error("listen address '{addr}': {problem}")]
    BadListen { addr: String, problem: String },
    /// A non-loopback listen address without `allow_remote`.
    #[error(
        "listen address {addr} is not a loopback address; the bridge speaks plain TCP \
         (the token is not encrypted), so listening beyond this machine needs --allow-remote \
         (prefer an SSH tunnel or a VPN)"
    )]
    NotLoopback { addr: SocketAddr },
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The device did not answer INFO when the server started.
    #[error("device {device} does not answer: {source}")]
    Probe {
        device: String,
        #[source]
        source: Box<crate::client::DeviceError>,
    },
    /// The device link failed while serving (port unplugged, ...). The
    /// server stops: nothing more can be served correctly.
    #[error("device {device} failed while serving: {source}")]
    Device {
        device: String,
        #[source]
        source: io::Error,
    },
    /// The token is unusable.
    #[error(transparent)]
    Token(#[from] crate::tcp::TokenError),
    /// Accepting connections failed.
    #[error("accepting connections on {addr}: {source}")]
    Accept {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Allow a listen address that is not loopback (default false).
    pub allow_remote: bool,
    /// Time a new connection has to send its handshake line (default 5 s).
    pub handshake_timeout: Duration,
    /// A partial request frame followed by this much silence is dropped
    /// (device rule 4; default 2 s).
    pub frame_idle_timeout: Duration,
    /// The holder of the device is disconnected after this much silence
    /// (default 10 min), so a vanished client cannot hold the device forever.
    pub hold_timeout: Duration,
    /// Most connections at once (holder and waiting ones; default 16); more
    /// are refused with `ERR`.
    pub max_connections: usize,
    /// How long to wait for the device's reply: the client's timeout formula
    /// (default [`ClientOptions::default`]).
    pub device_timeouts: ClientOptions,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            allow_remote: false,
            handshake_timeout: Duration::from_secs(5),
            frame_idle_timeout: Duration::from_secs(2),
            hold_timeout: Duration::from_secs(600),
            max_connections: 16,
            device_timeouts: ClientOptions::default(),
        }
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Handshakes refused (bad or missing token, bad greeting, too many).
    pub refused: AtomicU64,
    /// Request frames forwarded to the device.
    pub frames: AtomicU64,
    /// Requests answered BUSY.
    pub busy: AtomicU64,
    /// Frames answered by the gate (BAD_CRC, BAD_LENGTH).
    pub gate_refusals: AtomicU64,
    /// Bytes received from clients (after the handshake).
    pub bytes_in: AtomicU64,
    /// Bytes sent to clients (after the handshake).
    pub bytes_out: AtomicU64,
}

/// A snapshot of [`ServeStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServeCounts {
    pub connections: u64,
    pub refused: u64,
    pub frames: u64,
    pub busy: u64,
    pub gate_refusals: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl ServeStats {
    /// Read all counters.
    pub fn snapshot(&self) -> ServeCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServeCounts {
            connections: g(&self.connections),
            refused: g(&self.refused),
            frames: g(&self.frames),
            busy: g(&self.busy),
            gate_refusals: g(&self.gate_refusals),
            bytes_in: g(&self.bytes_in),
            bytes_out: g(&self.bytes_out),
        }
    }
}

struct Shared {
    device_name: String,
    max_len: usize,
    token: Token,
    opts: ServeOptions,
    slot: Mutex<Forwarder>,
    stop: AtomicBool,
    failure: Mutex<Option<io::Error>>,
    active: AtomicUsize,
    stats: ServeStats,
}

/// A bound bridge server; [`Server::run`] serves until stopped.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Stops a server and reads its counters from another thread.
#[derive(Clone)]
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").field("addr", &self.addr).finish()
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Ask the server to stop; [`Server::run`] returns soon after.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Counters so far.
    pub fn stats(&self) -> ServeCounts {
        self.shared.stats.snapshot()
    }

    /// The name of the device being served.
    pub fn device_name(&self) -> &str {
        &self.shared.device_name
    }
}

/// A server running on its own thread (see [`Server::spawn`]); stopped and
/// joined on drop.
pub struct RunningServer {
    handle: ServerHandle,
    thread: Option<JoinHandle<Result<(), BridgeError>>>,
}

impl RunningServer {
    /// The address to connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// `tcp://ADDR`, the device string of this server.
    pub fn device_string(&self) -> String {
        format!("tcp://{}", self.handle.addr)
    }

    /// Stop/stats handle.
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// Stop the server and return what [`Server::run`] returned.
    pub fn stop(mut self) -> Result<(), BridgeError> {
        self.handle.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Ok(()),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Resolve a listen address and check it against the loopback rule.
pub fn resolve_listen(addr: &str, allow_remote: bool) -> Result<SocketAddr, BridgeError> {
    let a = addr
        .to_socket_addrs()
        .map_err(|e| BridgeError::BadListen { addr: addr.into(), problem: e.to_string() })?
        .next()
        .ok_or_else(|| BridgeError::BadListen {
            addr: addr.into(),
            problem: "resolves to no address".into(),
        })?;
    if !a.ip().is_loopback() && !allow_remote {
        return Err(BridgeError::NotLoopback { addr: a });
    }
    Ok(a)
}

impl Server {
    /// Probe the device (INFO), then bind `listen` (`host:port`; port 0 picks
    /// a free one). Non-loopback addresses need [`ServeOptions::allow_remote`].
    pub fn bind(
        device: Box<dyn Link>,
        listen: &str,
        token: Token,
        opts: ServeOptions,
    ) -> Result<Server, BridgeError> {
        let addr = resolve_listen(listen, opts.allow_remote)?;
        let device_name = device.name().to_string();
        let mut probe = Device::with_options(device, opts.device_timeouts.clone());
        let info = probe
            .info()
            .map_err(|e| BridgeError::Probe { device: device_name.clone(), source: Box::new(e) })?;
        let device = probe.into_link();
        let listener =
            TcpListener::bind(addr).map_err(|source| BridgeError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| BridgeError::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| BridgeError::Bind { addr, source })?;
        let fwd = Forwarder::new(device, info.max_reply_len(), opts.device_timeouts.clone());
        log::info!("serving {device_name} ({info}) on {addr}");
        Ok(Server {
            listener,
            addr,
            shared: Arc::new(Shared {
                device_name,
                max_len: info.buf_bytes,
                token,
                opts,
                slot: Mutex::new(fwd),
                stop: AtomicBool::new(false),
                failure: Mutex::new(None),
                active: AtomicUsize::new(0),
                stats: ServeStats::default(),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A stop/stats handle.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { addr: self.addr, shared: self.shared.clone() }
    }

    /// Run on a new thread.
    pub fn spawn(self) -> RunningServer {
        let handle = self.handle();
        let thread = thread::Builder::new()
            .name(format!("faultloop-serve {}", self.addr))
            .spawn(move || self.run())
            .expect("spawn server thread");
        RunningServer { handle, thread: Some(thread) }
    }

    /// Serve until [`ServerHandle::stop`] or until the device fails (then
    /// [`BridgeError::Device`]).
    pub fn run(self) -> Result<(), BridgeError> {
        let mut conns: Vec<JoinHandle<()>> = Vec::new();
        let mut next_id = 0u64;
        let result = loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            conns.retain(|h| !h.is_finished());
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    next_id += 1;
                    self.shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let shared = self.shared.clone();
                    let id = next_id;
                    let h = thread::Builder::new()
                        .name(format!("faultloop-conn {peer}"))
                        .spawn(move || connection(shared, stream, peer, id));
                    match h {
                        Ok(h) => conns.push(h),
                        Err(e) => log::error!("cannot start a thread for {peer}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient_accept_error(&e) => {
                    log::warn!("accept on {}: {e}", self.addr);
                    thread::sleep(Duration::from_millis(50));
                }
                Err(source) => break Err(BridgeError::Accept { addr: self.addr, source }),
            }
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in conns {
            let _ = h.join();
        }
        if let Some(source) = self.shared.failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(BridgeError::Device { device: self.shared.device_name.clone(), source });
        }
        result
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::OutOfMemory
    ) || e.raw_os_error().is_some_and(|c| c == 24 || c == 23) // EMFILE, ENFILE
}

/// Read the handshake line. Returns the line (without `\n`) and any bytes
/// that followed it.
fn read_handshake(stream: &mut TcpStream) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let rest = buf[i + 1..].to_vec();
            buf.truncate(i);
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HANDSHAKE_LINE {
            return Ok(Some((buf, Vec::new())));
        }
    }
}

/// Check a handshake line; `Err(reason)` for the `ERR` answer.
fn check_handshake(line: &[u8], token: &Token) -> Result<(), &'static str> {
    let magic = HANDSHAKE_MAGIC.as_bytes();
    if line.len() > MAX_HANDSHAKE_LINE {
        return Err("handshake line too long");
    }
    if !line.starts_with(magic) {
        return Err("expected 'FAULTLOOP/1 <token>' (a faultloop client, protocol 1)");
    }
    let rest = &line[magic.len()..];
    let candidate = match rest.split_first() {
        Some((b' ', t)) => t,
        None => &[][..],
        Some(_) => return Err("expected 'FAULTLOOP/1 <token>' (a faultloop client, protocol 1)"),
    };
    if candidate.is_empty() {
        return Err("missing token");
    }
    if !token.matches(candidate) {
        return Err("wrong token");
    }
    Ok(())
}

fn write_line(stream: &mut TcpStream, line: &str) {
    let _ = stream.write_all(line.as_bytes());
    let _ = stream.flush();
}

struct ActiveGuard<'a>(&'a AtomicUsize);
impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock_slot(m: &Mutex<Forwarder>) -> Option<MutexGuard<'_, Forwarder>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn connection(shared: Arc<Shared>, mut stream: TcpStream, peer: SocketAddr, id: u64) {
    let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = ActiveGuard(&shared.active);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_read_timeout(Some(shared.opts.handshake_timeout));
    let refuse = |stream: &mut TcpStream, why: &str| {
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        log::warn!("refusing {peer}: {why}");
        write_line(stream, &format!("ERR {why}\n"));
        let _ = stream.shutdown(Shutdown::Both);
    };
    if active > shared.opts.max_connections {
        refuse(&mut stream, "too many connections");
        return;
    }
    let (line, rest) = match read_handshake(&mut stream) {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(e) => {
            let why = if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                "no handshake in time"
            } else {
                "handshake failed"
            };
            refuse(&mut stream, why);
            return;
        }
    };
    if let Err(why) = check_handshake(&line, &shared.token) {
        // Slow down guessing a little.
        thread::sleep(Duration::from_millis(50));
        refuse(&mut stream, why);
        return;
    }
    write_line(&mut stream, &format!("OK {}\n", shared.device_name));
    log::info!("{peer}: connected (connection {id})");
    if let Err(e) = serve_frames(&shared, &mut stream, peer, rest) {
        log::info!("{peer}: connection ends: {e}");
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve_frames(
    shared: &Shared,
    stream: &mut TcpStream,
    peer: SocketAddr,
    first: Vec<u8>,
) -> io::Result<()> {
    let poll = Duration::from_millis(50).min(shared.opts.frame_idle_timeout);
    stream.set_read_timeout(Some(poll))?;
    let mut gate = RequestGate::new(shared.max_len, shared.opts.frame_idle_timeout);
    let mut holder: Option<MutexGuard<'_, Forwarder>> = None;
    let mut buf = vec![0u8; 1 << 18];
    let mut last_rx = Instant::now();
    gate.push(&first);
    shared.stats.bytes_in.fetch_add(first.len() as u64, Ordering::Relaxed);
    loop {
        // Handle every complete frame buffered.
        while let Some(ev) = gate.next_event() {
            let reply = match ev {
                GateEvent::Refuse { status, seq } => {
                    shared.stats.gate_refusals.fetch_add(1, Ordering::Relaxed);
                    Some(encode_reply(status, seq, &[]))
                }
                GateEvent::Request(frame) => {
                    if holder.is_none() {
                        holder = lock_slot(&shared.slot);
                        if holder.is_some() {
                            log::info!("{peer}: holds {}", shared.device_name);
                        }
                    }
                    match holder.as_mut() {
                        None => {
                            shared.stats.busy.fetch_add(1, Ordering::Relaxed);
                            Some(encode_reply(Status::Busy, frame.seq, &[]))
                        }
                        Some(fwd) => {
                            shared.stats.frames.fetch_add(1, Ordering::Relaxed);
                            match fwd.forward(&frame, true) {
                                Ok(Answer::Bytes(b)) => Some(b),
                                Ok(Answer::Nothing) => None,
                                Err(e) => {
                                    log::error!(
                                        "{}: device link failed: {e}; stopping the server",
                                        shared.device_name
                                    );
                                    *shared.failure.lock().unwrap_or_else(|e| e.into_inner()) =
                                        Some(e);
                                    shared.stop.store(true, Ordering::SeqCst);
                                    return Err(io::Error::other("device failed"));
                                }
                            }
                        }
                    }
                }
            };
            if let Some(r) = reply {
                stream.write_all(&r)?;
                shared.stats.bytes_out.fetch_add(r.len() as u64, Ordering::Relaxed);
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("server stopping"));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                shared.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                gate.push(&buf[..n]);
                last_rx = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                let now = Instant::now();
                gate.expire(now);
                if holder.is_some() && now - last_rx > shared.opts.hold_timeout {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "holder silent for the hold timeout",
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Read a token file (see [`Token::from_file`]).
pub fn load_token(path: &Path) -> Result<Token, BridgeError> {
    Ok(Token::from_file(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::encode_request;

    #[test]
    fn gate_passes_good_frames_and_refuses_bad_ones() {
        let mut g = RequestGate::new(100, Duration::from_secs(1));
        let mut bytes = vec![0u8, 0x5A, 7];
        bytes.extend(encode_request(1u8, 3, &[]));
        let mut bad = encode_request(3u8, 4, &[1, 2, 3, 4, 5]);
        bad[9] ^= 1;
        bytes.extend(&bad);
        let mut long = encode_request(3u8, 5, &[0; 101]);
        long.truncate(HEADER_LEN);
        bytes.extend(&long);
        bytes.extend(encode_request(2u8, 6, &[]));
        // Feed one byte at a time.
        let mut evs = Vec::new();
        for b in &bytes {
            g.push(std::slice::from_ref(b));
            while let Some(e) = g.next_event() {
                evs.push(e);
            }
        }
        assert_eq!(
            evs,
            vec![
                GateEvent::Request(Frame { code: 1, seq: 3, payload: vec![] }),
                GateEvent::Refuse { status: Status::BadCrc, seq: 4 },
                GateEvent::Refuse { status: Status::BadLength, seq: 5 },
                GateEvent::Request(Frame { code: 2, seq: 6, payload: vec![] }),
            ]
        );
        assert_eq!(g.pending(), 0);
    }

    #[test]
    fn gate_drops_idle_partial_frames() {
        let mut g = RequestGate::new(100, Duration::from_millis(10));
        let f = encode_request(1u8, 3, &[9; 20]);
        g.push(&f[..10]);
        assert_eq!(g.next_event(), None);
        assert!(!g.expire(Instant::now()));
        thread::sleep(Duration::from_millis(15));
        assert!(g.expire(Instant::now()));
        assert_eq!(g.pending(), 0);
        g.push(&f);
        assert!(matches!(g.next_event(), Some(GateEvent::Request(_))));
    }

    #[test]
    fn handshake_rules() {
        let t = Token::new("s3cret-token").unwrap();
        assert_eq!(check_handshake(b"FAULTLOOP/1 s3cret-token", &t), Ok(()));
        assert_eq!(check_handshake(b"FAULTLOOP/1 s3cret-tokeN", &t), Err("wrong token"));
        assert_eq!(check_handshake(b"FAULTLOOP/1 ", &t), Err("missing token"));
        assert_eq!(check_handshake(b"FAULTLOOP/1", &t), Err("missing token"));
        assert!(check_handshake(b"GET / HTTP/1.1", &t).is_err());
        assert!(check_handshake(b"FAULTLOOP/2 s3cret-token", &t).is_err());
    }

    #[test]
    fn non_loopback_needs_allow_remote() {
        assert!(matches!(resolve_listen("0.0.0.0:0", false), Err(BridgeError::NotLoopback { .. })));
        assert!(resolve_listen("0.0.0.0:0", true).is_ok());
        assert!(resolve_listen("127.0.0.1:0", false).is_ok());
        assert!(resolve_listen("[::1]:0", false).is_ok());
        assert!(matches!(resolve_listen("nonsense", false), Err(BridgeError::BadListen { .. })));
    }

    #[test]
    fn garbled_marker_is_a_bad_crc_frame_with_the_seq() {
        let m = garbled_marker(0, 77);
        match decode(&m, REPLY_SYNC, 16) {
            Decoded::Skip { reason: SkipReason::BadCrc { seq: 77, .. }, .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
