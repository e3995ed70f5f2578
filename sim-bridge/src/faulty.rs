//! Link faults: corrupt, drop and delay bytes at set rates, reproducibly.
//!
//! * [`FaultRates`] — per-byte probabilities of a bit flip, a lost byte and a
//!   stall (of up to [`FaultRates::max_delay`]; a stall holds back that byte
//!   and every byte after it, as on a real stream).
//! * [`Injector`] — applies the rates to a byte stream with a seeded
//!   [`Rng`]; events are drawn with geometric gaps, so clean stretches cost a
//!   memcpy.
//! * [`FaultyLink`] — a [`Link`] wrapper with one injector per direction
//!   (host → device and device → host).
//! * [`FaultProxy`] — a TCP proxy (between a `tcp://` client and a bridge
//!   server) with one injector per connection and direction.
//! * [`soak`] — random requests (INFO, WRITE/PATCH, SET_FAULT/BYPASS,
//!   CLEAR_FAULTS, RESET, MATMUL, COUNTERS) to a device under test, each
//!   result checked against a reference device (the golden model): every
//!   request must either return the reference's answer or fail with an error;
//!   a different answer is counted as *wrong*.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::client::Device;
use crate::link::Link;
use crate::proto::Site;
use crate::rng::Rng;

/// Per-byte fault probabilities.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FaultRates {
    /// Probability that a byte gets one random bit flipped.
    pub corrupt: f64,
    /// Probability that a byte is lost.
    pub drop: f64,
    /// Probability that the stream stalls before a byte.
    pub delay: f64,
    /// Longest stall (each stall is uniform in 0..=max_delay).
    #[serde(serialize_with = "ser_duration_ms")]
    pub max_delay: Duration,
}

fn ser_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates::none()
    }
}

impl FaultRates {
    /// A clean link.
    pub fn none() -> FaultRates {
        FaultRates { corrupt: 0.0, drop: 0.0, delay: 0.0, max_delay: Duration::ZERO }
    }

    /// Only bit flips.
    pub fn corrupt(p: f64) -> FaultRates {
        FaultRates { corrupt: p, ..FaultRates::none() }
    }

    /// Only lost bytes.
    pub fn drop(p: f64) -> FaultRates {
        FaultRates { drop: p, ..FaultRates::none() }
    }

    /// Only stalls of up to `max`.
    pub fn delay(p: f64, max: Duration) -> FaultRates {
        FaultRates { delay: p, max_delay: max, ..FaultRates::none() }
    }

    /// Whether any fault can happen.
    pub fn is_clean(&self) -> bool {
        self.corrupt <= 0.0 && self.drop <= 0.0 && (self.delay <= 0.0 || self.max_delay.is_zero())
    }
}

/// What an injector did.
#[derive(Debug, Default)]
pub struct FaultStats {
    pub bytes: AtomicU64,
    pub corrupted: AtomicU64,
    pub dropped: AtomicU64,
    pub delays: AtomicU64,
}

/// A snapshot of [`FaultStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounts {
    pub bytes: u64,
    pub corrupted: u64,
    pub dropped: u64,
    pub delays: u64,
}

impl FaultStats {
    /// Read the counters.
    pub fn snapshot(&self) -> FaultCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            bytes: g(&self.bytes),
            corrupted: g(&self.corrupted),
            dropped: g(&self.dropped),
            delays: g(&self.delays),
        }
    }
}

impl std::ops::Add for FaultCounts {
    type Output = FaultCounts;
    fn add(self, o: FaultCounts) -> FaultCounts {
        FaultCounts {
            bytes: self.bytes + o.bytes,
            corrupted: self.corrupted + o.corrupted,
            dropped: self.dropped + o.dropped,
            delays: self.delays + o.delays,
        }
    }
}

/// Bytes until the next event of probability `p` per byte.
struct Countdown {
    p: f64,
    left: u64,
}

impl Countdown {
    fn new(p: f64, rng: &mut Rng) -> Countdown {
        let mut c = Countdown { p, left: 0 };
        c.left = c.gap(rng);
        c
    }

    fn gap(&self, rng: &mut Rng) -> u64 {
        if self.p <= 0.0 {
            return u64::MAX;
        }
        if self.p >= 1.0 {
            return 0;
        }
        let u = rng.f64(); // [0, 1)
        let g = (1.0 - u).ln() / (1.0 - self.p).ln();
        if g.is_finite() && g < 1e18 {
            g.floor() as u64
        } else {
            u64::MAX
        }
    }

    /// One event byte: fires (and redraws) when the countdown is at 0.
    fn tick(&mut self, rng: &mut Rng) -> bool {
        if self.left == 0 {
            self.left = self.gap(rng);
            true
        } else {
            self.left -= 1;
            false
        }
    }

    fn skip(&mut self, n: u64) {
        if self.left != u64::MAX {
            self.left -= n;
        }
    }
}

/// Applies [`FaultRates`] to one direction of a byte stream.
pub struct Injector {
    rates: FaultRates,
    rng: Rng,
    corrupt: Countdown,
    drop: Countdown,
    delay: Countdown,
    stats: Arc<FaultStats>,
}

impl Injector {
    /// An injector with its own seed.
    pub fn new(rates: FaultRates, seed: u64) -> Injector {
        let mut rng = Rng::new(seed);
        let corrupt = Countdown::new(rates.corrupt, &mut rng);
        let drop = Countdown::new(rates.drop, &mut rng);
        let delay_p = if rates.max_delay.is_zero() { 0.0 } else { rates.delay };
        let delay = Countdown::new(delay_p, &mut rng);
        Injector { rates, rng, corrupt, drop, delay, stats: Arc::new(FaultStats::default()) }
    }

    /// The counters (shared, live).
    pub fn stats(&self) -> Arc<FaultStats> {
        self.stats.clone()
    }

    /// Apply the faults to `input`: a list of segments, each to be delivered
    /// after waiting its delay (the first one usually with no delay).
    pub fn apply(&mut self, input: &[u8]) -> Vec<(Duration, Vec<u8>)> {
        self.stats.bytes.fetch_add(input.len() as u64, Ordering::Relaxed);
        let mut out: Vec<(Duration, Vec<u8>)> =
            vec![(Duration::ZERO, Vec::with_capacity(input.len()))];
        let mut i = 0;
        while i < input.len() {
            let next = self.corrupt.left.min(self.drop.left).min(self.delay.left);
            let step = (next.min((input.len() - i) as u64)) as usize;
            out.last_mut().unwrap().1.extend_from_slice(&input[i..i + step]);
            self.corrupt.skip(step as u64);
            self.drop.skip(step as u64);
            self.delay.skip(step as u64);
            i += step;
            if i == input.len() {
                break;
            }
            let mut b = input[i];
            i += 1;
            if self.delay.tick(&mut self.rng) {
                let ns = self.rng.below(self.rates.max_delay.as_nanos() as u64 + 1);
                out.push((Duration::from_nanos(ns), Vec::new()));
                self.stats.delays.fetch_add(1, Ordering::Relaxed);
            }
            let flip = self.corrupt.tick(&mut self.rng);
            if self.drop.tick(&mut self.rng) {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if flip {
                b ^= 1 << self.rng.below(8);
                self.stats.corrupted.fetch_add(1, Ordering::Relaxed);
            }
            out.last_mut().unwrap().1.push(b);
        }
        out.retain(|(d, s)| !s.is_empty() || !d.is_zero());
        out
    }
}

// ---------------------------------------------------------------------------
// As a Link wrapper

/// A [`Link`] that corrupts, drops and delays the bytes of another link in
/// both directions. Named `faulty(<inner name>)`.
pub struct FaultyLink {
    inner: Box<dyn Link>,
    name: String,
    up: Injector,
    down: Injector,
    out_q: VecDeque<(Instant, Vec<u8>)>,
    in_q: VecDeque<(Instant, Vec<u8>)>,
    tmp: Vec<u8>,
}

impl FaultyLink {
    /// Wrap `inner`; `up` applies to host → device bytes, `down` to device →
    /// host bytes; the two injectors get seeds derived from `seed`.
    pub fn new(inner: Box<dyn Link>, up: FaultRates, down: FaultRates, seed: u64) -> FaultyLink {
        let name = format!("faulty({})", inner.name());
        FaultyLink {
            inner,
            name,
            up: Injector::new(up, seed ^ 0x5550_0000_0000_0001),
            down: Injector::new(down, seed ^ 0x444F_0000_0000_0002),
            out_q: VecDeque::new(),
            in_q: VecDeque::new(),
            tmp: vec![0; 1 << 16],
        }
    }

    /// The same rates both ways.
    pub fn symmetric(inner: Box<dyn Link>, rates: FaultRates, seed: u64) -> FaultyLink {
        FaultyLink::new(inner, rates, rates, seed)
    }

    /// Faults injected host → device and device → host.
    pub fn counts(&self) -> (FaultCounts, FaultCounts) {
        (self.up.stats.snapshot(), self.down.stats.snapshot())
    }

    fn schedule(q: &mut VecDeque<(Instant, Vec<u8>)>, segs: Vec<(Duration, Vec<u8>)>) {
        let now = Instant::now();
        let mut t = q.back().map_or(now, |(t, _)| (*t).max(now));
        for (d, bytes) in segs {
            t += d;
            if !bytes.is_empty() {
                q.push_back((t, bytes));
            }
        }
    }

    fn flush_out(&mut self) -> io::Result<()> {
        let now = Instant::now();
        while self.out_q.front().is_some_and(|(t, _)| *t <= now) {
            let (_, b) = self.out_q.pop_front().unwrap();
            self.inner.send(&b)?;
        }
        Ok(())
    }
}

impl Link for FaultyLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let segs = self.up.apply(bytes);
        FaultyLink::schedule(&mut self.out_q, segs);
        self.flush_out()
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            self.flush_out()?;
            let now = Instant::now();
            if let Some((t, bytes)) = self.in_q.front_mut() {
                if *t <= now {
                    let n = buf.len().min(bytes.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    bytes.drain(..n);
                    if bytes.is_empty() {
                        self.in_q.pop_front();
                    }
                    return Ok(n);
                }
            }
            let next_release = [self.out_q.front(), self.in_q.front()]
                .into_iter()
                .flatten()
                .map(|(t, _)| *t)
                .min();
            let until = next_release.map_or(deadline, |t| t.min(deadline));
            let wait = until.saturating_duration_since(now);
            let n = self.inner.recv(&mut self.tmp, wait)?;
            if n > 0 {
                let segs = self.down.apply(&self.tmp[..n]);
                FaultyLink::schedule(&mut self.in_q, segs);
                continue;
            }
            if Instant::now() >= deadline {
                return Ok(0);
            }
            match next_release {
                // The inner link returned early with nothing: if nothing is
                // scheduled, let the caller decide how to wait.
                None => return Ok(0),
                Some(t) => {
                    let d = t.min(deadline).saturating_duration_since(Instant::now());
                    thread::sleep(d.min(Duration::from_millis(1)));
                }
            }
        }
    }

    fn sim_cycles(&self) -> Option<u64> {
        self.inner.sim_cycles()
    }
}

// ---------------------------------------------------------------------------
// As a TCP proxy

/// Settings of a [`FaultProxy`].
#[derive(Clone, Copy, Debug)]
pub struct ProxyOptions {
    /// Faults on client → server bytes.
    pub up: FaultRates,
    /// Faults on server → client bytes.
    pub down: FaultRates,
    pub seed: u64,
    /// Pass each direction clean up to its first `\n` (the bridge's
    /// handshake line), faulting only the frames (default true).
    pub protect_handshake: bool,
}

impl ProxyOptions {
    /// The same rates both ways, handshake protected.
    pub fn symmetric(rates: FaultRates, seed: u64) -> ProxyOptions {
        ProxyOptions { up: rates, down: rates, seed, protect_handshake: true }
    }
}

/// A TCP proxy that injects faults between a client and `upstream`.
pub struct FaultProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    up: Arc<FaultStats>,
    down: Arc<FaultStats>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward every connection to `upstream`.
    pub fn spawn(upstream: SocketAddr, opts: ProxyOptions) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let up = Arc::new(FaultStats::default());
        let down = Arc::new(FaultStats::default());
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
                                let mut inj = Injector::new(
                                    rates,
                                    opts.seed ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ dir,
                                );
                                inj.stats = stats;
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
    pub fn counts(&self) -> (FaultCounts, FaultCounts) {
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

// ---------------------------------------------------------------------------
// Soak: random requests checked against a reference

/// Settings of [`soak`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakOptions {
    /// Requests to make (resync traffic not counted).
    pub requests: usize,
    pub seed: u64,
    /// Bytes of weight memory used from address 0 (default 4096).
    pub window: usize,
    /// Largest M of a MATMUL (default 8).
    pub max_m: usize,
    /// Largest WRITE_WEIGHTS (default 512 bytes).
    pub max_write: usize,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions { requests: 500, seed: 1, window: 4096, max_m: 8, max_write: 512 }
    }
}

/// What [`soak`] saw.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SoakReport {
    pub requests: u64,
    /// Requests that returned the reference's answer.
    pub ok: u64,
    /// Requests that failed with an error.
    pub errors: u64,
    /// Requests that returned something other than the reference's answer.
    pub wrong: u64,
    /// Times the device's state had to be rewritten after a failed write.
    pub resyncs: u64,
    /// Requests per kind: (ok, errors, wrong).
    pub by_kind: BTreeMap<String, (u64, u64, u64)>,
    /// The first few error messages.
    pub sample_errors: Vec<String>,
    /// The first few wrong answers, described.
    pub sample_wrong: Vec<String>,
    /// Client attempts repeated (BAD_CRC, timeouts, garbled replies).
    pub client_retries: u64,
    pub seconds: f64,
}

impl SoakReport {
    /// ok / requests.
    pub fn success_rate(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            self.ok as f64 / self.requests as f64
        }
    }
}

#[derive(Default)]
struct Mirror {
    wmem: Vec<u8>,
    faults: BTreeMap<(usize, usize, u8), (Site, u32, u32)>,
    bypass: BTreeSet<(usize, usize)>,
}

/// Run random requests on `dut`, each also on `reference` (normally the
/// golden model of the same array size), and compare. A write-like request
/// that fails on `dut` leaves its state unknown; the state is then rewritten
/// from a mirror (CLEAR_FAULTS, the whole window, every fault and bypass)
/// before going on, in small steps each retried (if that still fails the
/// soak stops early: `requests` then falls short of the requested count).
///
/// SEU stays off, so a MATMUL repeated after a lost reply gives the same
/// result (only the pass counter and counters advance); COUNTERS is checked
/// for succeeding, not for its values.
pub fn soak(dut: &mut Device, reference: &mut Device, opts: &SoakOptions) -> SoakReport {
    let t0 = Instant::now();
    let retries0 = dut.stats().retries;
    let mut rep = SoakReport::default();
    let mut rng = Rng::new(opts.seed);
    let rinfo = reference.info().expect("reference INFO");
    let (rows, cols) = (rinfo.rows, rinfo.cols);
    let window = opts.window.max(rows * cols);
    let mut mirror = Mirror { wmem: vec![0; window], ..Default::default() };
    let mut dut_info = None;
    // Start from a known state.
    let mut dirty = true;
    let note = |rep: &mut SoakReport, kind: &str, outcome: u8, msg: Option<String>| {
        rep.requests += 1;
        let e = rep.by_kind.entry(kind.to_string()).or_default();
        match outcome {
            0 => {
                rep.ok += 1;
                e.0 += 1
            }
            1 => {
                rep.errors += 1;
                e.1 += 1;
                if rep.sample_errors.len() < 5 {
                    rep.sample_errors.extend(msg);
                }
            }
            _ => {
                rep.wrong += 1;
                e.2 += 1;
                if rep.sample_wrong.len() < 5 {
                    rep.sample_wrong.extend(msg);
                }
            }
        }
    };
    // Reference setup: the same window contents.
    reference.reset().expect("reference RESET");
    reference.write_weights(0, &mirror.wmem).expect("reference WRITE");
    while rep.requests < opts.requests as u64 {
        if dirty {
            let mut tries = 0;
            loop {
                tries += 1;
                if resync(dut, &mirror).is_ok() {
                    break;
                }
                if tries >= 5 {
                    rep.sample_errors.push("could not restore the device state".into());
                    rep.seconds = t0.elapsed().as_secs_f64();
                    rep.client_retries = dut.stats().retries - retries0;
                    return rep;
                }
            }
            rep.resyncs += 1;
            dirty = false;
        }
        let pick = rng.below(100);
        match pick {
            0..=9 => {
                let r = dut.refresh_info();
                match r {
                    Ok(i) => {
                        let good = match &dut_info {
                            None => i.rows == rows && i.cols == cols,
                            Some(first) => &i == first,
                        };
                        if good {
                            dut_info.get_or_insert(i);
                            note(&mut rep, "INFO", 0, None);
                        } else {
                            note(&mut rep, "INFO", 2, Some(format!("INFO {i}")));
                        }
                    }
                    Err(e) => note(&mut rep, "INFO", 1, Some(e.to_string())),
                }
            }
            10..=29 => {
                let len = 1 + rng.index(opts.max_write.min(window));
                let addr = rng.index(window - len + 1);
                let data: Vec<u8> = rng.vec_i8(len).into_iter().map(|v| v as u8).collect();
                mirror.wmem[addr..addr + len].copy_from_slice(&data);
                reference.write_weights(addr as u32, &data).expect("reference WRITE");
                match dut.write_weights(addr as u32, &data) {
                    Ok(()) => note(&mut rep, "WRITE_WEIGHTS", 0, None),
                    Err(e) => {
                        dirty = true;
                        note(&mut rep, "WRITE_WEIGHTS", 1, Some(e.to_string()))
                    }
                }
            }
            30..=39 => {
                let n = 1 + rng.index(32);
                let entries: Vec<(u32, i8)> =
                    (0..n).map(|_| (rng.index(window) as u32, rng.range_i8(-128, 127))).collect();
                for &(a, v) in &entries {
                    mirror.wmem[a as usize] = v as u8;
                }
                reference.patch_weights(&entries).expect("reference PATCH");
                match dut.patch_weights(&entries) {
                    Ok(()) => note(&mut rep, "PATCH_WEIGHTS", 0, None),
                    Err(e) => {
                        dirty = true;
                        note(&mut rep, "PATCH_WEIGHTS", 1, Some(e.to_string()))
                    }
                }
            }
            40..=46 => {
                let (r, c) = (rng.index(rows), rng.index(cols));
                let site = Site::ALL[rng.index(3)];
                let bit = 1u32 << rng.below(site.bits() as u64);
                let (sa0, sa1) = if rng.chance(0.5) { (bit, 0) } else { (0, bit) };
                mirror.faults.insert((r, c, site.code()), (site, sa0, sa1));
                reference.set_fault(r, c, site, sa0, sa1).expect("reference SET_FAULT");
                match dut.set_fault(r, c, site, sa0, sa1) {
                    Ok(()) => note(&mut rep, "SET_FAULT", 0, None),
                    Err(e) => {
                        dirty = true;
                        note(&mut rep, "SET_FAULT", 1, Some(e.to_string()))
                    }
                }
            }
            47..=49 => {
                let (r, c) = (rng.index(rows), rng.index(cols));
                let on = rng.chance(0.7);
                if on {
                    mirror.bypass.insert((r, c));
                } else {
                    mirror.bypass.remove(&(r, c));
                }
                reference.set_bypass(r, c, on).expect("reference SET_BYPASS");
                match dut.set_bypass(r, c, on) {
                    Ok(()) => note(&mut rep, "SET_BYPASS", 0, None),
                    Err(e) => {
                        dirty = true;
                        note(&mut rep, "SET_BYPASS", 1, Some(e.to_string()))
                    }
                }
            }
            50..=52 => {
                let reset = rng.chance(0.5);
                mirror.faults.clear();
                mirror.bypass.clear();
                let kind = if reset { "RESET" } else { "CLEAR_FAULTS" };
                if reset {
                    reference.reset().expect("reference RESET");
                } else {
                    reference.clear_faults().expect("reference CLEAR_FAULTS");
                }
                let r = if reset { dut.reset() } else { dut.clear_faults() };
                match r {
                    Ok(()) => note(&mut rep, kind, 0, None),
                    Err(e) => {
                        dirty = true;
                        note(&mut rep, kind, 1, Some(e.to_string()))
                    }
                }
            }
            53..=57 => match dut.counters() {
                Ok(_) => note(&mut rep, "COUNTERS", 0, None),
                Err(e) => note(&mut rep, "COUNTERS", 1, Some(e.to_string())),
            },
            _ => {
                // A K×N matrix at base 0 that fits the window.
                let tiles = window / (rows * cols);
                let kt = 1 + rng.index(tiles.clamp(1, 4));
                let nt = 1 + rng.index((tiles / kt).clamp(1, 4));
                let k = (kt - 1) * rows + 1 + rng.index(rows);
                let n = (nt - 1) * cols + 1 + rng.index(cols);
                let m = 1 + rng.index(opts.max_m);
                let rot = (rng.index(rows) as u8, rng.index(cols) as u8);
                let a = rng.vec_i8(m * k);
                let want = reference.matmul(0, m, k, n, rot, &a).expect("reference MATMUL");
                match dut.matmul(0, m, k, n, rot, &a) {
                    Ok(y) if y == want => note(&mut rep, "MATMUL", 0, None),
                    Ok(y) => {
                        let diff = y.iter().zip(&want).filter(|(a, b)| a != b).count();
                        note(
                            &mut rep,
                            "MATMUL",
                            2,
                            Some(format!("MATMUL {m}x{k}x{n} rot {rot:?}: {diff} values differ")),
                        )
                    }
                    Err(e) => note(&mut rep, "MATMUL", 1, Some(e.to_string())),
                }
            }
        }
    }
    rep.client_retries = dut.stats().retries - retries0;
    rep.seconds = t0.elapsed().as_secs_f64();
    rep
}

/// Rewrite the device state from the mirror in small steps, each retried up
/// to 20 times (a whole-window frame would rarely cross a bad link intact).
fn resync(dut: &mut Device, m: &Mirror) -> Result<(), crate::client::DeviceError> {
    fn retry(
        dut: &mut Device,
        mut f: impl FnMut(&mut Device) -> Result<(), crate::client::DeviceError>,
    ) -> Result<(), crate::client::DeviceError> {
        let mut last = None;
        for _ in 0..20 {
            match f(dut) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }
    retry(dut, |d| d.clear_faults())?;
    for (i, chunk) in m.wmem.chunks(128).enumerate() {
        retry(dut, |d| d.write_weights((i * 128) as u32, chunk))?;
    }
    for (&(r, c, _), &(site, sa0, sa1)) in &m.faults {
        retry(dut, |d| d.set_fault(r, c, site, sa0, sa1))?;
    }
    for &(r, c) in &m.bypass {
        retry(dut, |d| d.set_bypass(r, c, true))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_injector_is_identity() {
        let mut inj = Injector::new(FaultRates::none(), 1);
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(inj.apply(&data), vec![(Duration::ZERO, data.clone())]);
    }

    #[test]
    fn rates_are_roughly_right_and_seeded() {
        let rates = FaultRates {
            corrupt: 0.01,
            drop: 0.005,
            delay: 0.001,
            max_delay: Duration::from_micros(10),
        };
        let data = vec![0u8; 1_000_000];
        let mut a = Injector::new(rates, 7);
        let out_a = a.apply(&data);
        let s = a.stats.snapshot();
        assert!((9_000..11_000).contains(&s.corrupted), "{s:?}");
        assert!((4_300..5_700).contains(&s.dropped), "{s:?}");
        assert!((800..1_200).contains(&s.delays), "{s:?}");
        let total: usize = out_a.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(total as u64, 1_000_000 - s.dropped);
        let flipped: u64 =
            out_a.iter().flat_map(|(_, b)| b.iter()).map(|&b| (b.count_ones() == 1) as u64).sum();
        assert!(flipped <= s.corrupted);
        // Same seed, same faults; in pieces too.
        let mut b = Injector::new(rates, 7);
        let mut out_b: Vec<u8> = Vec::new();
        for piece in data.chunks(777) {
            for (_, seg) in b.apply(piece) {
                out_b.extend(seg);
            }
        }
        let flat_a: Vec<u8> = out_a.into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(flat_a, out_b);
    }
}
