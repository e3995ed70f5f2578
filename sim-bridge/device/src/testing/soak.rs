//! Soak: random requests (INFO, WRITE/PATCH, SET_FAULT/BYPASS, CLEAR_FAULTS,
//! RESET, MATMUL, COUNTERS) to a device under test, each result checked
//! against a reference device (the golden model): every request must either
//! return the reference's answer or fail with an error; a different answer is
//! counted as *wrong*. A test harness shared by tests, examples and the
//! hardware test; it panics when the *reference* fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use faultloop_proto::{Rng, Site};

use crate::client::{ClientOptions, Device, DeviceError};

/// Client options for a link that corrupts, drops and delays bytes: more
/// retries and short timeouts, so a lost frame costs little (what the soak
/// tests and the link-fault survey run with).
pub fn noisy_link_client() -> ClientOptions {
    ClientOptions {
        retries: 6,
        timeout_base: Duration::from_millis(300),
        timeout_per_byte: Duration::from_micros(2),
        ..ClientOptions::default()
    }
}

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
fn resync(dut: &mut Device, m: &Mirror) -> Result<(), DeviceError> {
    fn retry(
        dut: &mut Device,
        mut f: impl FnMut(&mut Device) -> Result<(), DeviceError>,
    ) -> Result<(), DeviceError> {
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
