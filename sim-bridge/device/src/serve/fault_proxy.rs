//! A TCP proxy that injects link faults: between a `tcp://` client and a
//! bridge server, one [`Injector`] per connection and direction.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::links::link_faults::{Injector, LinkFaultCounts, LinkFaultRates, LinkFaultStats};

/// Settings of a [`FaultProxy`].
#[derive(Clone, Copy, Debug)]
pub struct ProxyOptions {
    /// Faults on client → server bytes.
    pub up: LinkFaultRates,
    /// Faults on server → client bytes.
    pub down: LinkFaultRates,
    pub seed: u64,
    /// Pass each direction clean up to its first `\n` (the bridge's
    /// handshake line), faulting only the frames (default true).
    pub protect_handshake: bool,
}

impl ProxyOptions {
    /// The same rates both ways, handshake protected.
    pub fn symmetric(rates: LinkFaultRates, seed: u64) -> ProxyOptions {
        ProxyOptions { up: rates, down: rates, seed, protect_handshake: true }
    }
}

/// A TCP proxy that injects faults between a client and `upstream`.
pub struct FaultProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    up: Arc<LinkFaultStats>,
    down: Arc<LinkFaultStats>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward every connection to `upstream`.
    pub fn spawn(upstream: SocketAddr, opts: ProxyOptions) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let up = Arc::new(LinkFaultStats::default());
        let down = Arc::new(LinkFaultStats::default());
        let (stop2, up2, down2) = (stop.clone(), up.clone(), down.clone());
        let thread =
            thread::Builder::new().name(format!("fault-proxy {addr}")).spawn(move || {
                let mut pumps = Vec::new();
                let mut conn = 0u64;
                while !stop2.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            conn += 1;
                            let server = match TcpStream::connect(upstream) {
                                Ok(s) => s,
                                Err(e) => {
                                    log::warn!("fault proxy: upstream {upstream}: {e}");
                                    continue;
                                }
                            };
                            let _ = client.set_nonblocking(false);
                            for (dir, from, to, rates, stats) in [
                                (0u64, &client, &server, opts.up, up2.clone()),
                                (1u64, &server, &client, opts.down, down2.clone()),
                            ] {
                                let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                                    continue;
                                };
                                let inj = Injector::new(
                                    rates,
                                    opts.seed ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ dir,
                                )
                                .with_stats(stats);
                                let stop = stop2.clone();
                                let protect = opts.protect_handshake;
                                pumps.push(thread::spawn(move || {
                                    pump(from, to, inj, protect, stop)
                                }));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(e) => {
                            log::warn!("fault proxy: accept: {e}");
                            thread::sleep(Duration::from_millis(5))
                        }
                    }
                    pumps.retain(|h: &JoinHandle<()>| !h.is_finished());
                }
                for h in pumps {
                    let _ = h.join();
                }
            })?;
        Ok(FaultProxy { addr, stop, thread: Some(thread), up, down })
    }

    /// Where clients connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `tcp://ADDR`.
    pub fn device_string(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Faults injected client → server and server → client so far.
    pub fn counts(&self) -> (LinkFaultCounts, LinkFaultCounts) {
        (self.up.snapshot(), self.down.snapshot())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    mut inj: Injector,
    protect: bool,
    stop: Arc<AtomicBool>,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = to.set_nodelay(true);
    let mut clean = protect;
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::SeqCst) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        let mut data = &buf[..n];
        if clean {
            let cut = data.iter().position(|&b| b == b'\n').map(|i| i + 1);
            let head = &data[..cut.unwrap_or(n)];
            if to.write_all(head).is_err() {
                break;
            }
            data = &data[head.len()..];
            clean = cut.is_none();
        }
        for (d, seg) in inj.apply(data) {
            if !d.is_zero() {
                thread::sleep(d);
            }
            if !seg.is_empty() && to.write_all(&seg).is_err() {
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
