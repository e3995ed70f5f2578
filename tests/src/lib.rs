//! Shared helpers for the cross-crate tests: frame round trips on raw links,
//! random request generators, and expected-vs-got diffs.

use std::time::{Duration, Instant};

use faultloop_proto::rng::Rng;
use faultloop_proto::Link;
use faultloop_proto::{decode, Decoded, Request, Site, REPLY_SYNC};

/// How long any test waits for one reply before calling the device hung.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Send raw bytes and collect exactly one reply frame, returned as raw bytes
/// (garbage before the reply sync byte is an error: devices never send any).
pub fn roundtrip(link: &mut dyn Link, request: &[u8]) -> Result<Vec<u8>, String> {
    link.send(request).map_err(|e| format!("{}: send: {e}", link.name()))?;
    read_reply(link, REPLY_TIMEOUT)
}

/// Read one whole reply frame (raw bytes) within `timeout` (garbage
/// before the reply sync byte or bytes after it are an error: devices never
/// send any). The reader is faultloop-device's, the one `faultloop verify` uses.
pub fn read_reply(link: &mut dyn Link, timeout: Duration) -> Result<Vec<u8>, String> {
    let name = link.name().to_string();
    let buf = faultloop_device::verify::diff::read_reply(link, timeout)
        .map_err(|e| format!("{name}: {e}"))?;
    match decode(&buf, REPLY_SYNC, usize::MAX / 2) {
        Decoded::Frame { consumed, .. } if consumed == buf.len() => Ok(buf),
        Decoded::Frame { consumed, .. } => {
            Err(format!("{name}: {} unexpected bytes after the reply", buf.len() - consumed))
        }
        Decoded::Skip { reason, .. } => {
            Err(format!("{name}: bad reply bytes ({reason:?}): {:02x?}", head(&buf)))
        }
        Decoded::Incomplete => Err(format!("{name}: incomplete reply {:02x?}", head(&buf))),
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

pub use faultloop_device::verify::program::{random_bytes, random_masks};

/// Array sizes of the in-process Verilated models built into this binary.
pub fn sim_sizes() -> Vec<(usize, usize)> {
    faultloop_verilated::sim_sizes()
}

/// The small job inputs the fleet-scale CLI tests share: a synthetic
/// 300/60-image data set in `dir` and an MLP pretrained on it by `bin`
/// (2 epochs, lr 1e-2, seed 3) at `dir/m.ckpt`. Returns (data dir, checkpoint).
pub fn tiny_pretrained(bin: &str, dir: &std::path::Path) -> (String, String) {
    write_synthetic_split(dir, "train", 300, 1);
    write_synthetic_split(dir, "t10k", 60, 2);
    let data = dir.to_str().unwrap().to_string();
    let ck = dir.join("m.ckpt").to_str().unwrap().to_string();
    let args = ["pretrain", "--data-dir", &data, "--model", "mlp", "--epochs", "2"];
    run_json(bin, &[&args[..], &["--lr", "1e-2", "--seed", "3", "-o", &ck, "--json"]].concat());
    (data, ck)
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

/// One random request program (RESET first), as requests: weights, faults,
/// bypass, maybe SEU, MATMULs with and without rotation, a patch, one refused
/// or clearing request, COUNTERS.
pub fn random_program(rng: &mut Rng, rows: usize, cols: usize) -> Vec<Request> {
    let mut p = vec![Request::Reset];
    let m = 1 + rng.index(6);
    let k = 1 + rng.index(2 * rows + 2);
    let n = 1 + rng.index(2 * cols + 2);
    let region = k.div_ceil(rows) * n.div_ceil(cols) * rows * cols;
    let base = cols * rng.index(16);
    p.push(Request::WriteWeights { addr: base as u32, data: random_bytes(rng, region) });
    let rate = rng.f64() * 0.4;
    for r in 0..rows {
        for c in 0..cols {
            if rng.f64() < rate {
                let site = Site::ALL[rng.index(3)];
                let (sa0, sa1) = random_masks(rng, site.bits(), 2);
                p.push(Request::SetFault { row: r as u8, col: c as u8, site, sa0, sa1 });
            }
            if rng.f64() < rate / 4.0 {
                p.push(Request::SetBypass { row: r as u8, col: c as u8, on: true });
            }
        }
    }
    if rng.below(3) == 0 {
        p.push(Request::SetSeu {
            rate: [1000u32, 1 << 20, 1 << 27][rng.index(3)],
            seed: rng.next_u32(),
        });
    }
    let mut a = vec![0i8; m * k];
    rng.fill_i8(&mut a);
    let rot =
        if rng.below(2) == 0 { (0, 0) } else { (rng.index(rows) as u8, rng.index(cols) as u8) };
    p.push(Request::Matmul {
        base: base as u32,
        m: m as u16,
        k: k as u16,
        n: n as u16,
        rot,
        a: a.clone(),
    });
    let patch = (0..1 + rng.index(6))
        .map(|_| ((base + rng.index(region)) as u32, rng.next_u32() as i8))
        .collect();
    p.push(Request::PatchWeights(patch));
    p.push(Request::Matmul {
        base: base as u32,
        m: m as u16,
        k: k as u16,
        n: n as u16,
        rot: (0, 0),
        a,
    });
    match rng.below(3) {
        0 => {
            p.push(Request::SetFault { row: rows as u8, col: 0, site: Site::Psum, sa0: 1, sa1: 0 })
        }
        1 => p.push(Request::Matmul { base: 0, m: 0, k: 1, n: 1, rot: (0, 0), a: vec![] }),
        _ => p.push(Request::ClearFaults),
    }
    p.push(Request::Counters);
    p
}

/// INFO replies differ in feature bit 4 (the board has a defect port):
/// clear it (and re-encode the CRC) before comparing.
pub fn without_defect_feature(reply: &[u8]) -> Vec<u8> {
    let f = faultloop_proto::decode(reply, faultloop_proto::REPLY_SYNC, usize::MAX / 2);
    match f {
        faultloop_proto::Decoded::Frame { frame, .. } if frame.payload.len() == 20 => {
            let mut p = frame.payload.clone();
            p[16] &= !0x10;
            faultloop_proto::encode_reply(frame.code, frame.seq, &p)
        }
        _ => reply.to_vec(),
    }
}

/// A random chip: `round(rate · R·C)` distinct faulty PEs, each with one to
/// three sites of 1..=3 stuck bits of either polarity (a multi-bit,
/// all-site map, as characterisation must find).
pub fn random_chip_map(
    rng: &mut Rng,
    rows: usize,
    cols: usize,
    rate: f64,
) -> faultloop_proto::faultmap::FaultMap {
    use faultloop_proto::faultmap::{Fault, FaultMap};
    let mut map = FaultMap::empty(rows, cols);
    let mut pes: Vec<usize> = (0..rows * cols).collect();
    let count = ((rate * (rows * cols) as f64).round() as usize).min(rows * cols);
    for i in 0..count {
        let j = i + rng.index(rows * cols - i);
        pes.swap(i, j);
        let (r, c) = (pes[i] / cols, pes[i] % cols);
        let mut sites = Site::ALL.to_vec();
        let most = if rng.below(3) == 0 { 3 } else { 1 };
        for s in 0..1 + rng.index(most) {
            let k = s + rng.index(3 - s);
            sites.swap(s, k);
            let site = sites[s];
            let (sa0, sa1) = random_masks(rng, site.bits(), 3);
            map.faults.push(Fault {
                row: r,
                col: c,
                site,
                stuck_at_0: sa0 as u64,
                stuck_at_1: sa1 as u64,
            });
        }
    }
    map.faults.sort_by_key(|f| (f.row, f.col, f.site.code()));
    map
}

/// Judge a discovered map functionally: `workloads` random MATMULs (random
/// shapes, bypass sets and rotations) on `chip` and on the golden model
/// loaded with `found` must agree bit for bit. With `repeats > 1` the chip's
/// per-bit majority is compared. Returns a description of the first
/// mismatch.
pub fn judge_map(
    chip: &mut faultloop_device::client::Device,
    found: &faultloop_proto::faultmap::FaultMap,
    workloads: usize,
    repeats: usize,
    seed: u64,
) -> Result<(), String> {
    use faultloop_device::client::Device;
    use faultloop_proto::faultmap::FaultMap;
    let info = chip.refresh_info().map_err(|e| e.to_string())?;
    let (rows, cols) = (info.rows, info.cols);
    let mut model = Device::new(Box::new(faultloop_model::ModelLink::new(info.clone())));
    let mut rng = Rng::new(seed);
    for i in 0..workloads {
        let m = 1 + rng.index(6);
        let k = 1 + rng.index(2 * rows + 2);
        let n = 1 + rng.index(2 * cols + 2);
        let w = rng.vec_i8(k * n);
        let a = rng.vec_i8(m * k);
        let rot = (rng.index(rows) as u8, rng.index(cols) as u8);
        let mut bypass = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                if rng.below(4) == 0 {
                    bypass.push([r, c]);
                }
            }
        }
        let mut with = found.clone();
        with.bypass = bypass.clone();
        let mut bare = FaultMap::empty(rows, cols);
        bare.bypass = bypass;
        let e = |e: &dyn std::fmt::Display| format!("workload {i}: {e}");
        model.apply_fault_map(&with).map_err(|x| e(&x))?;
        chip.apply_fault_map(&bare).map_err(|x| e(&x))?;
        let lm = model.load_matrix(0, k, n, &w).map_err(|x| e(&x))?;
        let want = model.matmul(lm.base as u32, m, k, n, rot, &a).map_err(|x| e(&x))?;
        let lc = chip.load_matrix(0, k, n, &w).map_err(|x| e(&x))?;
        let mut runs = Vec::new();
        for _ in 0..repeats {
            runs.push(chip.matmul(lc.base as u32, m, k, n, rot, &a).map_err(|x| e(&x))?);
        }
        let got = faultloop_characterize::bist::majority(&runs);
        if let Some(j) = (0..want.len()).find(|&j| want[j] != got[j]) {
            return Err(format!(
                "workload {i} ({m}x{k}x{n}, rotation {rot:?}, {} bypassed): output [{}][{}] \
                 model {:#010x} chip {:#010x}",
                with.bypass.len(),
                j / n,
                j % n,
                want[j],
                got[j]
            ));
        }
    }
    Ok(())
}
