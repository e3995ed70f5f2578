//! Shared helpers for the cross-crate tests: frame round trips on raw links,
//! random request generators, and expected-vs-got diffs.

use std::time::{Duration, Instant};

use faultloop_proto::rng::Rng;
use faultloop_proto::Link;
use faultloop_proto::{decode, Decoded, REPLY_SYNC};

/// How long any test waits for one reply before calling the device hung.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Send raw bytes and collect exactly one reply frame, returned as raw bytes
/// (garbage before the reply sync byte is an error: devices never send any).
pub fn roundtrip(link: &mut dyn Link, request: &[u8]) -> Result<Vec<u8>, String> {
    link.send(request).map_err(|e| format!("{}: send: {e}", link.name()))?;
    read_reply(link, REPLY_TIMEOUT)
}

/// Read one whole reply frame (raw bytes) within `timeout`.
pub fn read_reply(link: &mut dyn Link, timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match decode(&buf, REPLY_SYNC, usize::MAX / 2) {
            Decoded::Frame { consumed, .. } => {
                if consumed != buf.len() {
                    return Err(format!(
                        "{}: {} unexpected bytes after the reply",
                        link.name(),
                        buf.len() - consumed
                    ));
                }
                return Ok(buf);
            }
            Decoded::Skip { reason, .. } => {
                return Err(format!(
                    "{}: bad reply bytes ({reason:?}): {:02x?}",
                    link.name(),
                    head(&buf)
                ))
            }
            Decoded::Incomplete => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "{}: no complete reply within {timeout:?} (got {:02x?})",
                link.name(),
                head(&buf)
            ));
        }
        let n = link
            .recv(&mut chunk, deadline - now)
            .map_err(|e| format!("{}: recv: {e}", link.name()))?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Everything the link sends within `timeout` (for streams that may hold
/// several replies or none).
pub fn drain(link: &mut dyn Link, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match link.recv(&mut chunk, left) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

fn head(b: &[u8]) -> &[u8] {
    &b[..b.len().min(32)]
}

/// A readable diff of two byte strings: the first differing offset and the
/// bytes around it from each side.
pub fn byte_diff(what: &str, expected: &[u8], got: &[u8]) -> String {
    let at =
        expected.iter().zip(got).position(|(a, b)| a != b).unwrap_or(expected.len().min(got.len()));
    let lo = at.saturating_sub(8);
    format!(
        "{what}: differ at byte {at} (lengths: expected {}, got {})\n  expected[{lo}..]: {:02x?}\n  got     [{lo}..]: {:02x?}",
        expected.len(),
        got.len(),
        &expected[lo.min(expected.len())..(lo + 32).min(expected.len())],
        &got[lo.min(got.len())..(lo + 32).min(got.len())],
    )
}

/// Random int8 bytes.
pub fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0i8; n];
    rng.fill_i8(&mut v);
    v.into_iter().map(|x| x as u8).collect()
}

/// Array sizes of the in-process Verilated models built into this binary.
pub fn sim_sizes() -> Vec<(usize, usize)> {
    faultloop_verilated::sim_sizes()
}

/// Random stuck-at masks for a site `width` bits wide: 1..=`max_bits` random
/// bits, each stuck at 0 or 1 (never both).
pub fn random_masks(rng: &mut Rng, width: u32, max_bits: u64) -> (u32, u32) {
    let (mut sa0, mut sa1) = (0u32, 0u32);
    for _ in 0..1 + rng.below(max_bits) {
        let bit = 1u32 << rng.below(width as u64);
        if rng.below(2) == 0 {
            sa0 |= bit;
        } else {
            sa1 |= bit;
        }
    }
    (sa0 & !sa1, sa1)
}

/// An MNIST-layout idx file (unsigned bytes) with the given dims.
pub fn idx_bytes(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// A tiny learnable data set in `dir`: `n` 28×28 images of 4 classes, class
/// c lights quadrant c (plus LCG noise), as `{stem}-images-idx3-ubyte` and
/// `{stem}-labels-idx1-ubyte`.
pub fn write_synthetic_split(dir: &std::path::Path, stem: &str, n: usize, seed: u64) {
    let mut s = seed;
    let mut rnd = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let (mut px, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let c = (rnd() % 4) as usize;
        labels.push(c as u8);
        for y in 0..28 {
            for x in 0..28 {
                let q = (y / 14) * 2 + x / 14;
                px.push(((if q == c { 120 } else { 30 }) + rnd() % 100) as u8);
            }
        }
    }
    let write = |name: String, bytes: Vec<u8>| {
        std::fs::write(dir.join(&name), bytes).unwrap_or_else(|e| panic!("write {name}: {e}"))
    };
    write(format!("{stem}-images-idx3-ubyte"), idx_bytes(&[n, 28, 28], &px));
    write(format!("{stem}-labels-idx1-ubyte"), idx_bytes(&[n], &labels));
}

/// Run `bin` (the `faultloop` binary) with `args`, require success and
/// return its standard output parsed as JSON; failures show stderr.
pub fn run_json(bin: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "faultloop {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("faultloop {args:?}: not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout))
    })
}
