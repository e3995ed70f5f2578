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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use faultloop_proto::receiver::{GateEvent, RequestGate};
use faultloop_proto::{encode_reply, Link, Status};

use crate::client::{ClientOptions, Device};
use crate::handshake::{check_handshake, Token, MAX_HANDSHAKE_LINE};
use crate::serve::forward::{Answer, Forwarder};

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
    Token(#[from] crate::handshake::TokenError),
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
    /// Time a new connection has to send its whole handshake line (default
    /// 5 s): a deadline from the accept, not a per-read timeout, so a client
    /// trickling one byte a second (slowloris) is dropped when it passes.
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

/// Read the handshake line before `deadline`. Returns the line (without
/// `\n`) and any bytes that followed it; `TimedOut` once the deadline passes,
/// however the bytes trickle in.
fn read_handshake(
    stream: &mut TcpStream,
    deadline: Instant,
) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no handshake in time"));
        }
        // Each read waits only for what is left of the whole deadline.
        stream.set_read_timeout(Some(left))?;
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
    let deadline = Instant::now() + shared.opts.handshake_timeout;
    let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = ActiveGuard(&shared.active);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
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
    let (line, rest) = match read_handshake(&mut stream, deadline) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_allow_remote() {
        assert!(matches!(resolve_listen("0.0.0.0:0", false), Err(BridgeError::NotLoopback { .. })));
        assert!(resolve_listen("0.0.0.0:0", true).is_ok());
        assert!(resolve_listen("127.0.0.1:0", false).is_ok());
        assert!(resolve_listen("[::1]:0", false).is_ok());
        assert!(matches!(resolve_listen("nonsense", false), Err(BridgeError::BadListen { .. })));
    }
}
