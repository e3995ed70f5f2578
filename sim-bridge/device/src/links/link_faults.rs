//! Link faults: corrupt, drop and delay bytes at set rates, reproducibly.
//!
//! * [`LinkFaultRates`] — per-byte probabilities of a bit flip, a lost byte and a
//!   stall (of up to [`LinkFaultRates::max_delay`]; a stall holds back that byte
//!   and every byte after it, as on a real stream).
//! * [`Injector`] — applies the rates to a byte stream with a seeded
//!   [`Rng`]; events are drawn with geometric gaps, so clean stretches cost a
//!   memcpy.
//! * [`FaultyLink`] — a [`Link`] wrapper with one injector per direction
//!   (host → device and device → host).
//! * `serve::fault_proxy::FaultProxy` (feature `serve`) — a TCP proxy
//!   (between a `tcp://` client and a bridge server) with one injector per
//!   connection and direction.
//! * `testing::soak` (feature `testkit`) — random requests checked against
//!   a reference device.
//!
//! These are faults of the *link* (the wire between host and device), not
//! the PE faults of a fault map.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use faultloop_proto::{Link, Rng};

/// Per-byte fault probabilities.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LinkFaultRates {
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

impl Default for LinkFaultRates {
    fn default() -> Self {
        LinkFaultRates::none()
    }
}

impl LinkFaultRates {
    /// A clean link.
    pub fn none() -> LinkFaultRates {
        LinkFaultRates { corrupt: 0.0, drop: 0.0, delay: 0.0, max_delay: Duration::ZERO }
    }

    /// Only bit flips.
    pub fn corrupt(p: f64) -> LinkFaultRates {
        LinkFaultRates { corrupt: p, ..LinkFaultRates::none() }
    }

    /// Only lost bytes.
    pub fn drop(p: f64) -> LinkFaultRates {
        LinkFaultRates { drop: p, ..LinkFaultRates::none() }
    }

    /// Only stalls of up to `max`.
    pub fn delay(p: f64, max: Duration) -> LinkFaultRates {
        LinkFaultRates { delay: p, max_delay: max, ..LinkFaultRates::none() }
    }

    /// Whether any fault can happen.
    pub fn is_clean(&self) -> bool {
        self.corrupt <= 0.0 && self.drop <= 0.0 && (self.delay <= 0.0 || self.max_delay.is_zero())
    }
}

/// What an injector did.
#[derive(Debug, Default)]
pub struct LinkFaultStats {
    pub bytes: AtomicU64,
    pub corrupted: AtomicU64,
    pub dropped: AtomicU64,
    pub delays: AtomicU64,
}

/// A snapshot of [`LinkFaultStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkFaultCounts {
    pub bytes: u64,
    pub corrupted: u64,
    pub dropped: u64,
    pub delays: u64,
}

impl LinkFaultStats {
    /// Read the counters.
    pub fn snapshot(&self) -> LinkFaultCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkFaultCounts {
            bytes: g(&self.bytes),
            corrupted: g(&self.corrupted),
            dropped: g(&self.dropped),
            delays: g(&self.delays),
        }
    }
}

impl std::ops::Add for LinkFaultCounts {
    type Output = LinkFaultCounts;
    fn add(self, o: LinkFaultCounts) -> LinkFaultCounts {
        LinkFaultCounts {
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

/// Applies [`LinkFaultRates`] to one direction of a byte stream.
pub struct Injector {
    rates: LinkFaultRates,
    rng: Rng,
    corrupt: Countdown,
    drop: Countdown,
    delay: Countdown,
    stats: Arc<LinkFaultStats>,
}

impl Injector {
    /// An injector with its own seed.
    pub fn new(rates: LinkFaultRates, seed: u64) -> Injector {
        let mut rng = Rng::new(seed);
        let corrupt = Countdown::new(rates.corrupt, &mut rng);
        let drop = Countdown::new(rates.drop, &mut rng);
        let delay_p = if rates.max_delay.is_zero() { 0.0 } else { rates.delay };
        let delay = Countdown::new(delay_p, &mut rng);
        Injector { rates, rng, corrupt, drop, delay, stats: Arc::new(LinkFaultStats::default()) }
    }

    /// The counters (shared, live).
    pub fn stats(&self) -> Arc<LinkFaultStats> {
        self.stats.clone()
    }

    /// Count into `stats` (shared, e.g. by every connection of a proxy).
    pub fn with_stats(mut self, stats: Arc<LinkFaultStats>) -> Injector {
        self.stats = stats;
        self
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
    pub fn new(
        inner: Box<dyn Link>,
        up: LinkFaultRates,
        down: LinkFaultRates,
        seed: u64,
    ) -> FaultyLink {
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
    pub fn symmetric(inner: Box<dyn Link>, rates: LinkFaultRates, seed: u64) -> FaultyLink {
        FaultyLink::new(inner, rates, rates, seed)
    }

    /// Faults injected host → device and device → host.
    pub fn counts(&self) -> (LinkFaultCounts, LinkFaultCounts) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_injector_is_identity() {
        let mut inj = Injector::new(LinkFaultRates::none(), 1);
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(inj.apply(&data), vec![(Duration::ZERO, data.clone())]);
    }

    #[test]
    fn rates_are_roughly_right_and_seeded() {
        let rates = LinkFaultRates {
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
