//! The self-test itself: configurations, probes and verification.
//!
//! Three phases of configurations, each a bypass set, a weight matrix and a
//! block of activation rows run as one MATMUL (rotation 0, K = rows, N =
//! cols × variants: logical weight `W[r][t*C + c]` sits on physical PE
//! `(r, c)` in weight variant `t`):
//!
//! 1. **isolate** — `max(R, C)` configurations, each with one active PE per
//!    row and per column (all others bypassed), so every PE computes
//!    `P(x · W(w))` alone from `s = 0` for 16 activations × 8 weights;
//! 2. **drive** — each PE below row 0 gets a *driver* above it in its column
//!    whose outputs phase 1 measured, so it sees known partial sums (−1 and
//!    0 where a driver can make them) and every psum bit is driven both ways;
//! 3. **act** — each act register but the last column's is read through an
//!    *observer* to its right whose masks phases 1–2 found, chosen so that it
//!    tells all 256 activations apart.
//!
//! Every PE's masks are then solved ([`crate::solve`]), and the discovered
//! map is checked functionally: random workloads with random bypass sets and
//! rotations run on the chip and on the golden model with the map, and must
//! agree bit for bit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultloop_device::client::{matmul_rows_per_frame, ApplyError, Device, DeviceError};
use faultloop_model::ModelLink;
use faultloop_proto::faultmap::{Fault, FaultMap};
use faultloop_proto::{Info, Rng, Site, FEATURE_BYPASS, FEATURE_ROTATION, FEATURE_SEU};
use serde::Serialize;

use crate::solve::{
    distinct_readings, reads_every_activation, solve_act, solve_pe, Masks, PeSolution, Sample,
};

/// Activations of the isolate phase (every bit both ways, ±1, powers of 2).
const XS: [i8; 16] = [0, 1, -1, 2, -2, 3, 4, 8, 16, 32, 64, -128, 127, 85, -86, 5];
/// Weights of the isolate and drive phases, most telling first.
const WS: [i8; 8] = [1, -1, 0, 85, -86, 127, -128, 2];
/// Largest MATMUL reply the self-test asks for, in bytes.
const REPLY_BYTES: usize = 2048;
/// Activations of the act phase.
const XA: [i8; 12] = [0, -1, 85, -86, 1, 2, 4, 8, 16, 32, 64, -128];

/// How to characterise.
#[derive(Clone, Debug)]
pub struct Options {
    /// Runs of every MATMUL; above 1, the per-bit majority is taken (for
    /// soft errors the device cannot switch off).
    pub repeats: usize,
    /// Give up (an error) if discovery is not done by then; verification
    /// stops early when it runs out.
    pub budget: Option<Duration>,
    /// Random workloads in the functional check.
    pub verify_workloads: usize,
    /// Seed of the functional check's workloads.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { repeats: 1, budget: None, verify_workloads: 24, seed: 1 }
    }
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Isolate,
    Drive,
    Act,
    Verify,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Isolate => "isolate",
            Phase::Drive => "drive",
            Phase::Act => "act",
            Phase::Verify => "verify",
        })
    }
}

/// Progress: `done` of `total` steps (configurations or workloads) overall.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub phase: Phase,
    pub done: usize,
    pub total: usize,
}

/// A register (or some of its bits) that no workload can observe, or that
/// the self-test could not pin down. Nothing is guessed for these bits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unobservable {
    pub row: usize,
    pub col: usize,
    pub site: Site,
    /// The bits concerned.
    pub bits: u32,
    pub reason: String,
}

/// The functional check of the discovered map.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// Random workloads run on both.
    pub workloads: usize,
    /// Workloads where chip and model (with the map) agreed bit for bit.
    pub agreed: usize,
    /// All agreed (and at least one ran).
    pub ok: bool,
}

/// What a run found and what it cost.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub device: String,
    pub rows: usize,
    pub cols: usize,
    /// How transient flips were kept out of the measurements.
    pub transients: String,
    pub repeats: usize,
    /// Test vectors applied (activation rows × weight variants, per run).
    pub patterns: u64,
    /// MATMUL requests (repeats and frame splits included).
    pub matmuls: u64,
    /// Bypass/weight configurations.
    pub configurations: usize,
    /// Requests of every kind.
    pub requests: u64,
    pub seconds: f64,
    /// Fault entries in the discovered map.
    pub faults_found: usize,
    /// PEs with at least one stuck bit.
    pub faulty_pes: usize,
    pub fault_rate: f64,
    pub unobservable: Vec<Unobservable>,
    /// PEs whose measurements no single stuck-at map explains (transients
    /// the repeats did not out-vote, or a fault outside the model).
    pub inconsistent: Vec<[usize; 2]>,
    pub verification: Verification,
    /// Seconds per phase.
    pub phase_seconds: Vec<(Phase, f64)>,
    /// The discovered map (also written as the map file).
    #[serde(skip)]
    pub map: FaultMap,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum CharacterizeError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(
        "{device}: characterisation needs bypass (INFO feature bit 1), which this device lacks"
    )]
    NoBypass { device: String },
    #[error("{device}: the weight memory ({wmem} bytes) cannot hold one {rows}x{cols} tile")]
    TooSmall { device: String, wmem: usize, rows: usize, cols: usize },
    #[error("{device}: --repeats must be at least 1")]
    Repeats { device: String },
    #[error(
        "{device}: time budget of {budget:.0} s spent in the {phase} phase \
         ({done} of {total} steps done); raise --budget-s"
    )]
    Budget { device: String, budget: f64, phase: Phase, done: usize, total: usize },
}

type Result<T> = std::result::Result<T, CharacterizeError>;

/// One configuration: the active (not bypassed) PEs, their weights per
/// variant, and the activation of every row per MATMUL row.
struct Config {
    active: Vec<(usize, usize)>,
    weights: HashMap<(usize, usize), Vec<i8>>,
    /// `acts[m][r]`.
    acts: Vec<Vec<i8>>,
    variants: usize,
}

struct Bist<'a, 'p> {
    dev: &'a mut Device,
    info: Info,
    opts: Options,
    bypass: Vec<bool>,
    patterns: u64,
    configurations: usize,
    matmuls: u64,
    t0: Instant,
    step: usize,
    total: usize,
    progress: &'p mut dyn FnMut(Progress),
}

impl Bist<'_, '_> {
    fn rows(&self) -> usize {
        self.info.rows
    }
    fn cols(&self) -> usize {
        self.info.cols
    }

    fn check_budget(&self, phase: Phase, done: usize, total: usize) -> Result<()> {
        match self.opts.budget {
            Some(b) if self.t0.elapsed() > b => Err(CharacterizeError::Budget {
                device: self.dev.name().to_string(),
                budget: b.as_secs_f64(),
                phase,
                done,
                total,
            }),
            _ => Ok(()),
        }
    }

    fn tick(&mut self, phase: Phase) {
        self.step += 1;
        (self.progress)(Progress { phase, done: self.step, total: self.total });
    }

    fn set_bypass_set(&mut self, active: &[(usize, usize)]) -> Result<()> {
        let (r, c) = (self.rows(), self.cols());
        let mut want = vec![true; r * c];
        for &(pr, pc) in active {
            want[pr * c + pc] = false;
        }
        for (i, &on) in want.iter().enumerate() {
            if on != self.bypass[i] {
                self.dev.set_bypass(i / c, i % c, on)?;
                self.bypass[i] = on;
            }
        }
        Ok(())
    }

    /// Run a configuration; `out[m][t * C + c]`, the per-bit majority over
    /// the repeats.
    fn run(&mut self, cfg: &Config) -> Result<Vec<Vec<i32>>> {
        self.configurations += 1;
        self.set_bypass_set(&cfg.active)?;
        let (r, c, nt) = (self.rows(), self.cols(), cfg.variants);
        let n = c * nt;
        let mut w = vec![0i8; r * n];
        for (&(pr, pc), ws) in &cfg.weights {
            for (t, &v) in ws.iter().enumerate() {
                w[pr * n + t * c + pc] = v;
            }
        }
        self.dev.load_matrix(0, r, n, &w)?;
        let m = cfg.acts.len();
        let a: Vec<i8> = cfg.acts.iter().flatten().copied().collect();
        // Replies of at most REPLY_BYTES: a slow UART (a virtual board at
        // a long bit period) answers each well within the client's timeout.
        let per = (REPLY_BYTES / (4 * n)).max(1);
        let mut runs = Vec::with_capacity(self.opts.repeats);
        for _ in 0..self.opts.repeats {
            let mut y = Vec::with_capacity(m * n);
            for rows in (0..m).step_by(per) {
                let mc = per.min(m - rows);
                y.extend(self.dev.matmul(0, mc, r, n, (0, 0), &a[rows * r..(rows + mc) * r])?);
                self.matmuls += matmul_frames(&self.info, mc, r, n);
            }
            runs.push(y);
            self.patterns += (m * nt) as u64;
        }
        let y = majority(&runs);
        Ok(y.chunks(n).map(<[i32]>::to_vec).collect())
    }
}

/// MATMUL frames the client sends for one M×K×N product (it splits M to
/// fit the device's buffer and accumulators).
fn matmul_frames(info: &Info, m: usize, k: usize, n: usize) -> u64 {
    m.div_ceil(matmul_rows_per_frame(info, k, n).max(1)) as u64
}

/// Per-bit majority of equally long runs (the first run when there is one).
pub fn majority(runs: &[Vec<i32>]) -> Vec<i32> {
    if runs.len() == 1 {
        return runs[0].clone();
    }
    let half = runs.len() / 2;
    (0..runs[0].len())
        .map(|i| {
            let mut v = 0u32;
            for bit in 0..32 {
                let ones = runs.iter().filter(|r| (r[i] as u32 >> bit) & 1 == 1).count();
                if ones > half {
                    v |= 1 << bit;
                }
            }
            v as i32
        })
        .collect()
}

/// The isolate phase's active sets: one PE per row and column each, every PE
/// in exactly one set.
fn isolate_sets(rows: usize, cols: usize) -> Vec<Vec<(usize, usize)>> {
    if rows <= cols {
        (0..cols).map(|d| (0..rows).map(|r| (r, (r + d) % cols)).collect()).collect()
    } else {
        (0..rows).map(|d| (0..cols).map(|c| ((c + d) % rows, c)).collect()).collect()
    }
}

/// Pack tasks, each using some rows and columns, into as few configurations
/// as possible with no row or column used twice in one (first fit).
fn pack<T: Clone>(tasks: &[(Vec<usize>, Vec<usize>, T)], rows: usize, cols: usize) -> Vec<Vec<T>> {
    let mut bins: Vec<(Vec<bool>, Vec<bool>, Vec<T>)> = Vec::new();
    for (rs, cs, t) in tasks {
        let fits = |b: &(Vec<bool>, Vec<bool>, Vec<T>)| {
            rs.iter().all(|&r| !b.0[r]) && cs.iter().all(|&c| !b.1[c])
        };
        let i = match bins.iter().position(fits) {
            Some(i) => i,
            None => {
                bins.push((vec![false; rows], vec![false; cols], Vec::new()));
                bins.len() - 1
            }
        };
        let b = &mut bins[i];
        rs.iter().for_each(|&r| b.0[r] = true);
        cs.iter().for_each(|&c| b.1[c] = true);
        b.2.push(t.clone());
    }
    bins.into_iter().map(|b| b.2).collect()
}

/// Solve many PEs on all cores.
fn solve_all(samples: &[Vec<Sample>]) -> Vec<PeSolution> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(samples.len());
    if threads <= 1 {
        return samples.iter().map(|s| solve_pe(s)).collect();
    }
    let chunk = samples.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let hs: Vec<_> = samples
            .chunks(chunk)
            .map(|c| scope.spawn(move || c.iter().map(|s| solve_pe(s)).collect::<Vec<_>>()))
            .collect();
        hs.into_iter().flat_map(|h| h.join().expect("solver thread")).collect()
    })
}

/// Discover `dev`'s permanent faults over the protocol alone, then check the
/// map functionally. The device is RESET first and left with its injected
/// faults and bypass cleared (its own defects stay, of course).
pub fn characterize(
    dev: &mut Device,
    opts: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report> {
    let t0 = Instant::now();
    let name = dev.name().to_string();
    if opts.repeats == 0 {
        return Err(CharacterizeError::Repeats { device: name });
    }
    let info = dev.refresh_info()?;
    let (rows, cols) = (info.rows, info.cols);
    if info.features & FEATURE_BYPASS == 0 {
        return Err(CharacterizeError::NoBypass { device: name });
    }
    let variants = WS.len().min(info.wmem_bytes / (rows * cols));
    if variants < 3 {
        return Err(CharacterizeError::TooSmall {
            device: name,
            wmem: info.wmem_bytes,
            rows,
            cols,
        });
    }
    let ws = &WS[..variants];
    let sent0 = dev.stats();
    dev.reset()?;
    let transients = match (info.features & FEATURE_SEU != 0, opts.repeats) {
        (true, 1) => "switched off (RESET, SET_SEU 0); soft errors the chip makes itself \
                      cannot be: use --repeats N for a per-bit majority"
            .to_string(),
        (true, n) => format!("switched off (SET_SEU 0), and a per-bit majority of {n} repeats"),
        (false, 1) => "no transient injection on this device; no repeats".to_string(),
        (false, n) => format!("a per-bit majority of {n} repeats"),
    };
    if info.features & FEATURE_SEU != 0 {
        dev.set_seu(0, 0)?;
    }

    let iso = isolate_sets(rows, cols);
    // Drive tasks: every PE below row 0 (one configuration holds a driver
    // and a test PE per column, no row twice).
    let n_drive_est = if rows > 1 { 2 * (rows - 1) * cols / rows.max(2) + 1 } else { 0 };
    let n_act_est = if cols > 1 { 2 * rows * (cols - 1) / cols.max(2) + 1 } else { 0 };
    let mut bist = Bist {
        bypass: vec![false; rows * cols],
        dev,
        info,
        opts: opts.clone(),
        patterns: 0,
        configurations: 0,
        matmuls: 0,
        t0,
        step: 0,
        total: iso.len() + n_drive_est + n_act_est + opts.verify_workloads,
        progress,
    };
    let mut phase_seconds = Vec::new();

    // ---- isolate
    let tp = Instant::now();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); rows * cols];
    // Outputs of each PE alone, for use as a driver: (x, w) -> out.
    let mut alone: Vec<HashMap<(i8, i8), i32>> = vec![HashMap::new(); rows * cols];
    for (i, set) in iso.iter().enumerate() {
        bist.check_budget(Phase::Isolate, i, iso.len())?;
        let cfg = Config {
            active: set.clone(),
            weights: set.iter().map(|&p| (p, ws.to_vec())).collect(),
            acts: XS.iter().map(|&x| vec![x; rows]).collect(),
            variants,
        };
        let y = bist.run(&cfg)?;
        for &(r, c) in set {
            for (m, &x) in XS.iter().enumerate() {
                for (t, &w) in ws.iter().enumerate() {
                    let out = y[m][t * cols + c];
                    samples[r * cols + c].push(Sample { s: 0, x, w, out });
                    alone[r * cols + c].insert((x, w), out);
                }
            }
        }
        bist.tick(Phase::Isolate);
    }
    phase_seconds.push((Phase::Isolate, tp.elapsed().as_secs_f64()));

    // ---- drive
    let tp = Instant::now();
    // A driver's worth: it can send -1 and 0 (every bit both ways), else how
    // many bits its outputs drive both ways.
    let coverage = |d: usize| -> u32 {
        let (mut ones, mut zeros) = (0u32, 0u32);
        for &o in alone[d].values() {
            ones |= o as u32;
            zeros |= !(o as u32);
        }
        (ones & zeros).count_ones()
            + (ones == u32::MAX) as u32
            + (zeros == u32::MAX) as u32
            + 32 * alone[d].values().any(|&o| o == -1) as u32
    };
    let mut tasks = Vec::new();
    for r in 1..rows {
        for c in 0..cols {
            // The best driver above, nearest first among equals.
            let d = (0..r).rev().max_by_key(|&d| (coverage(d * cols + c), d)).expect("r >= 1");
            tasks.push((vec![r, d], vec![c], (r, d, c)));
        }
    }
    let drive = pack(&tasks, rows, cols);
    bist.total = bist.total - n_drive_est + drive.len();
    for (i, group) in drive.iter().enumerate() {
        bist.check_budget(Phase::Drive, i, drive.len())?;
        // Rows 0..16: the driver runs XS, the test PE sees 0 (psum alone);
        // rows 16..32: the driver sees 0, the test PE runs XS.
        let mut acts = vec![vec![0i8; rows]; 2 * XS.len()];
        for &(r, d, _) in group {
            for (m, &x) in XS.iter().enumerate() {
                acts[m][d] = x;
                acts[XS.len() + m][r] = x;
            }
        }
        let mut weights = HashMap::new();
        let mut active = Vec::new();
        for &(r, d, c) in group {
            weights.insert((r, c), ws.to_vec());
            weights.insert((d, c), ws.to_vec());
            active.extend([(r, c), (d, c)]);
        }
        let cfg = Config { active, weights, acts, variants };
        let y = bist.run(&cfg)?;
        for &(r, d, c) in group {
            for (m, row) in y.iter().enumerate() {
                let (xd, xt) = if m < XS.len() { (XS[m], 0) } else { (0, XS[m - XS.len()]) };
                for (t, &w) in ws.iter().enumerate() {
                    let s = alone[d * cols + c][&(xd, w)];
                    samples[r * cols + c].push(Sample { s, x: xt, w, out: row[t * cols + c] });
                }
            }
        }
        bist.tick(Phase::Drive);
    }
    phase_seconds.push((Phase::Drive, tp.elapsed().as_secs_f64()));
    let sols = solve_all(&samples);

    // ---- act
    let tp = Instant::now();
    let mut act_tasks = Vec::new();
    let mut unobservable = Vec::new();
    for r in 0..rows {
        unobservable.push(Unobservable {
            row: r,
            col: cols - 1,
            site: Site::Act,
            bits: 0xFF,
            reason: "act register of the last column feeds no PE".into(),
        });
        for c in 0..cols.saturating_sub(1) {
            // The nearest observer that reads every activation; else the one
            // that tells most apart.
            let mut pick: Option<(usize, i8, usize)> = None;
            'obs: for o in c + 1..cols {
                let m = &sols[r * cols + o].model;
                for &w in ws {
                    if reads_every_activation(m, w) {
                        pick = Some((o, w, 256));
                        break 'obs;
                    }
                    let d = distinct_readings(m, w);
                    if pick.map_or(true, |(_, _, best)| d > best) {
                        pick = Some((o, w, d));
                    }
                }
            }
            match pick {
                Some((o, w, d)) if d > 1 => act_tasks.push((vec![r], vec![c, o], (r, c, o, w))),
                _ => unobservable.push(Unobservable {
                    row: r,
                    col: c,
                    site: Site::Act,
                    bits: 0xFF,
                    reason: "no PE to its right can turn an activation into an output".into(),
                }),
            }
        }
    }
    let act = pack(&act_tasks, rows, cols);
    bist.total = bist.total - n_act_est + act.len();
    let mut act_sols: HashMap<(usize, usize), crate::solve::ActSolution> = HashMap::new();
    for (i, group) in act.iter().enumerate() {
        bist.check_budget(Phase::Act, i, act.len())?;
        let mut acts = vec![vec![0i8; rows]; XA.len()];
        let mut weights = HashMap::new();
        let mut active = Vec::new();
        for &(r, c, o, w) in group {
            for (m, &x) in XA.iter().enumerate() {
                acts[m][r] = x;
            }
            weights.insert((r, c), vec![0]);
            weights.insert((r, o), vec![w]);
            active.extend([(r, c), (r, o)]);
        }
        let y = bist.run(&Config { active, weights, acts, variants: 1 })?;
        for &(r, c, o, w) in group {
            let s: Vec<(i8, i32)> = XA.iter().enumerate().map(|(m, &x)| (x, y[m][o])).collect();
            act_sols.insert((r, c), solve_act(&s, &sols[r * cols + o].model, w));
        }
        bist.tick(Phase::Act);
    }
    phase_seconds.push((Phase::Act, tp.elapsed().as_secs_f64()));

    // ---- the map
    let mut map = FaultMap::empty(rows, cols);
    let mut inconsistent = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let sol = &sols[r * cols + c];
            let a = act_sols.get(&(r, c)).copied().unwrap_or_default();
            let mut push = |site: Site, m: Masks| {
                if !m.is_clean() {
                    map.faults.push(Fault {
                        row: r,
                        col: c,
                        site,
                        stuck_at_0: m.sa0 as u64,
                        stuck_at_1: m.sa1 as u64,
                    });
                }
            };
            push(Site::Psum, sol.model.psum);
            push(Site::Act, a.masks);
            push(Site::Weight, sol.model.weight);
            if sol.inconsistent || a.inconsistent {
                inconsistent.push([r, c]);
            }
            let mut open = |site: Site, bits: u32, reason: &str| {
                if bits != 0 {
                    unobservable.push(Unobservable {
                        row: r,
                        col: c,
                        site,
                        bits,
                        reason: reason.into(),
                    });
                }
            };
            open(
                Site::Psum,
                sol.psum_undetermined,
                "no workload of the test drove these bits both ways",
            );
            open(
                Site::Weight,
                sol.weight_undetermined,
                "the PE's outputs do not depend on these bits",
            );
            open(Site::Act, a.undetermined, "the observer cannot tell these bits apart");
        }
    }
    unobservable.sort_by_key(|u| (u.row, u.col, u.site.code()));

    // ---- functional check
    let tp = Instant::now();
    let verification = verify(&mut bist, &map)?;
    phase_seconds.push((Phase::Verify, tp.elapsed().as_secs_f64()));
    // Leave the device clean of our settings.
    bist.dev.clear_faults()?;
    let stats = bist.dev.stats();
    let patterns = bist.patterns;
    let configurations = bist.configurations;
    let matmuls = bist.matmuls;
    Ok(Report {
        device: name,
        rows,
        cols,
        transients,
        repeats: opts.repeats,
        patterns,
        matmuls,
        configurations,
        requests: stats.frames_sent - sent0.frames_sent,
        seconds: t0.elapsed().as_secs_f64(),
        faults_found: map.faults.len(),
        faulty_pes: map.faulty_pes(),
        fault_rate: map.fault_rate(),
        unobservable,
        inconsistent,
        verification,
        phase_seconds,
        map,
    })
}

/// Random workloads, random bypass sets and rotations: the chip against the
/// golden model loaded with `map`.
fn verify(b: &mut Bist, map: &FaultMap) -> Result<Verification> {
    let info = b.info.clone();
    let (rows, cols) = (info.rows, info.cols);
    let mut model = Device::new(Box::new(ModelLink::new(info.clone())));
    let mut rng = Rng::new(b.opts.seed);
    let mut v = Verification::default();
    for i in 0..b.opts.verify_workloads {
        if b.check_budget(Phase::Verify, i, b.opts.verify_workloads).is_err() {
            break;
        }
        let k = 1 + rng.below(2 * rows as u64 + 3) as usize;
        let n = 1 + rng.below(2 * cols as u64 + 3) as usize;
        let m = 1 + rng.below(12) as usize;
        let kt = k.div_ceil(rows);
        let ntl = n.div_ceil(cols);
        if kt * ntl * rows * cols > info.wmem_bytes {
            b.tick(Phase::Verify); // too big for this device's memory: skipped
            continue;
        }
        let w = rng.vec_i8(k * n);
        let a = rng.vec_i8(m * k);
        let rot = if info.features & FEATURE_ROTATION != 0 {
            (rng.below(rows as u64) as u8, rng.below(cols as u64) as u8)
        } else {
            (0, 0)
        };
        // Every other workload with a random bypass set.
        let mut bypass = Vec::new();
        if i % 2 == 1 {
            for r in 0..rows {
                for c in 0..cols {
                    if rng.below(5) == 0 {
                        bypass.push([r, c]);
                    }
                }
            }
        }
        let mut on_model = map.clone();
        on_model.bypass = bypass.clone();
        model.apply_fault_map(&on_model)?;
        let mut on_chip = FaultMap::empty(rows, cols);
        on_chip.bypass = bypass.clone();
        b.dev.apply_fault_map(&on_chip)?;
        b.bypass = vec![false; rows * cols];
        for &[r, c] in &bypass {
            b.bypass[r * cols + c] = true;
        }
        let want = {
            let l = model.load_matrix(0, k, n, &w)?;
            model.matmul(l.base as u32, m, k, n, rot, &a)?
        };
        let l = b.dev.load_matrix(0, k, n, &w)?;
        let mut runs = Vec::new();
        for _ in 0..b.opts.repeats {
            runs.push(b.dev.matmul(l.base as u32, m, k, n, rot, &a)?);
            b.matmuls += matmul_frames(&info, m, k, n);
        }
        let got = majority(&runs);
        v.workloads += 1;
        v.agreed += (got == want) as usize;
        b.tick(Phase::Verify);
    }
    v.ok = v.workloads > 0 && v.agreed == v.workloads;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolate_sets_cover_every_pe_once_with_one_per_row_and_column() {
        for (r, c) in [(4, 4), (3, 5), (5, 3), (1, 4), (4, 1)] {
            let sets = isolate_sets(r, c);
            let mut seen = vec![0; r * c];
            for s in &sets {
                let mut rows: Vec<_> = s.iter().map(|p| p.0).collect();
                let mut cols: Vec<_> = s.iter().map(|p| p.1).collect();
                rows.sort();
                rows.dedup();
                cols.sort();
                cols.dedup();
                assert_eq!((rows.len(), cols.len()), (s.len(), s.len()), "{r}x{c}");
                s.iter().for_each(|&(pr, pc)| seen[pr * c + pc] += 1);
            }
            assert!(seen.iter().all(|&n| n == 1), "{r}x{c}: {seen:?}");
        }
    }

    #[test]
    fn pack_never_reuses_a_row_or_column() {
        let tasks: Vec<_> = (0..40).map(|i| (vec![i % 8, (i + 3) % 8], vec![i % 5], i)).collect();
        let bins = pack(&tasks, 8, 5);
        let mut all: Vec<_> = bins.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        for b in &bins {
            let mut rows: Vec<_> = b.iter().flat_map(|&i| tasks[i].0.clone()).collect();
            let n = rows.len();
            rows.sort();
            rows.dedup();
            assert_eq!(rows.len(), n);
        }
    }

    #[test]
    fn majority_votes_per_bit() {
        let runs = vec![vec![0b1100, 7], vec![0b1010, 7], vec![0b1001, -1]];
        assert_eq!(majority(&runs), vec![0b1000, 7]);
    }
}
