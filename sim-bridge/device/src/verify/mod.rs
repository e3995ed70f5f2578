//! The RTL-vs-model differential regression as a product (`faultloop
//! verify`): random request programs ([`program`]) go to a device under
//! test and to a reference (by default the device's golden-model twin), and
//! every reply must be byte-identical.
//!
//! Case `k` of a run with seed `S` is the program of seed
//! [`program::case_seed`]`(S, k)`, on freshly opened devices, so it is the
//! same in every shard ([`Shard`]: case `k` belongs to shard `k mod n`) and
//! on every machine. The run stops at the first mismatch: it shrinks the
//! program to a shortest request sequence that still differs (greedy
//! removal of ever smaller chunks), writes it as a replayable case file
//! ([`case::CaseFile`], [`replay`]), records an FST waveform of it when the
//! device is the Verilated RTL, and names the first differing reply field
//! ([`diff::first_difference`], e.g. `MATMUL reply row 3 col 1: sim 1234,
//! model 1230`). [`junit::junit_xml`] renders the report for CI.

pub mod case;
pub mod diff;
pub mod junit;
pub mod program;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultloop_proto::rng::Rng;
use faultloop_proto::{Info, Link};
use serde::Serialize;

use crate::client::{Device, DeviceError};
use crate::open::{self, DeviceSpec, LinkError, OpenOptions};
use crate::shard::Shard;
use crate::trace::Trace;
use case::{CaseFile, CaseRequest, CASE_FORMAT};
use diff::{exchange, first_difference, FieldDiff, Reply};
use program::{case_seed, random_program, summary, Program};

/// How long either side may take to answer one request.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Most programs one shrink runs (each on fresh devices).
const MAX_SHRINK_RUNS: usize = 4000;

/// Errors that stop a run (a mismatch is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A device could not be opened.
    #[error("opening {device}: {source}")]
    Open {
        device: String,
        #[source]
        source: Box<LinkError>,
    },
    /// A device's INFO could not be read (to learn its array size).
    #[error("reading INFO of {device}: {source}")]
    Info {
        device: String,
        #[source]
        source: Box<DeviceError>,
    },
    /// The two devices have different arrays: their replies cannot agree.
    #[error("{device} is a {a} array but {against} is {b}: verify compares devices of one size")]
    Sizes { device: String, against: String, a: String, b: String },
    /// The two devices report different INFO beyond the array (memory
    /// sizes, features, versions): some replies would differ by design.
    #[error(
        "{device} reports INFO {field} = {a} but {against} reports {b}: verify compares devices \
         of one configuration (a board's configuration has its own model, e.g. model:ulx3s)"
    )]
    Config { device: String, against: String, field: &'static str, a: String, b: String },
    /// A case file that cannot be read, parsed or written.
    #[error("case file {}: {problem}", path.display())]
    CaseFile { path: PathBuf, problem: String },
    /// A directory for the failing case could not be made.
    #[error("{}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What one run does.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// The device under test (e.g. `sim:8x8`).
    pub device: DeviceSpec,
    /// The reference (e.g. `model:8x8`).
    pub against: DeviceSpec,
    /// Cases of the whole (unsharded) run.
    pub cases: usize,
    pub seed: u64,
    pub shard: Shard,
    /// Where the failing case's file goes (created on failure).
    pub case_dir: PathBuf,
    /// Where its waveform goes (`None`: `case_dir`).
    pub trace_dir: Option<PathBuf>,
}

/// A case's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    Passed,
    Failed,
    /// Not run: an earlier case of this shard failed.
    Skipped,
}

/// One case of a run.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub case: usize,
    pub case_seed: u64,
    pub requests: usize,
    /// FNV-1a (64 bit, hex) over every reply of the device under test: equal
    /// digests, equal replies (shards are checked against unsharded runs
    /// with it).
    pub reply_digest: String,
    pub seconds: f64,
    pub status: CaseStatus,
}

/// The first mismatch of a run, shrunk.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub case: usize,
    pub case_seed: u64,
    /// The whole line: case, request and field.
    pub message: String,
    /// The differing field and its two values.
    pub field: String,
    pub device_value: String,
    pub against_value: String,
    /// The first differing request of the original program.
    pub first_request: usize,
    pub original_requests: usize,
    /// The shrunk program and its differing request (the last).
    pub shrunk_requests: Vec<String>,
    pub shrink_runs: usize,
    pub case_file: PathBuf,
    /// The waveform of the shrunk case, or why there is none.
    pub waveform: Option<PathBuf>,
    pub waveform_note: Option<String>,
}

impl Failure {
    /// Several lines for logs and JUnit: the shrunk program and the files.
    pub fn details(&self) -> String {
        let mut s = format!(
            "{}\nfirst differing request of the original program: {} of {}\nshrunk to {} requests ({} runs):\n",
            self.message,
            self.first_request,
            self.original_requests,
            self.shrunk_requests.len(),
            self.shrink_runs
        );
        for (i, r) in self.shrunk_requests.iter().enumerate() {
            s.push_str(&format!("  {i}: {r}\n"));
        }
        s.push_str(&format!("replay: faultloop verify --replay {}\n", self.case_file.display()));
        match (&self.waveform, &self.waveform_note) {
            (Some(w), _) => s.push_str(&format!("waveform: {}\n", w.display())),
            (None, Some(n)) => s.push_str(&format!("waveform: none ({n})\n")),
            (None, None) => {}
        }
        s
    }
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub device: String,
    pub against: String,
    pub seed: u64,
    /// Cases of the unsharded run; this shard's are in `cases`.
    pub cases_total: usize,
    pub shard: Shard,
    pub cases: Vec<CaseResult>,
    /// Requests sent to each side, shrinking excluded.
    pub requests: usize,
    pub seconds: f64,
    /// Cases run per second of wall time (shrinking excluded).
    pub cases_per_s: f64,
    pub passed: bool,
    pub failure: Option<Failure>,
}

/// Short names for messages: `sim`, `model`, `board`, `bridge` (`device`
/// and `against` when both are of one kind).
pub fn side_names(device: &DeviceSpec, against: &DeviceSpec) -> (&'static str, &'static str) {
    fn kind(s: &DeviceSpec) -> &'static str {
        match s {
            DeviceSpec::Sim { .. } | DeviceSpec::Board { rtl: true, .. } => "sim",
            DeviceSpec::Model { .. } | DeviceSpec::Board { rtl: false, .. } => "model",
            DeviceSpec::Serial { .. } => "board",
            DeviceSpec::Tcp { .. } => "bridge",
            DeviceSpec::Chip { base, .. } => kind(base),
        }
    }
    let (a, b) = (kind(device), kind(against));
    if uses_info_model(device, against) {
        (a, "model")
    } else if a == b {
        ("device", "against")
    } else {
        (a, b)
    }
}

/// Whether `against` stands for the device's golden model configured from
/// its INFO ([`Reference::Model`]).
fn uses_info_model(device: &DeviceSpec, against: &DeviceSpec) -> bool {
    against == device && matches!(device, DeviceSpec::Serial { .. } | DeviceSpec::Tcp { .. })
}

/// The reference's name in reports.
fn reference_name(device: &DeviceSpec, against: &DeviceSpec) -> String {
    if uses_info_model(device, against) {
        format!("model (configured from the INFO of {device})")
    } else {
        against.to_string()
    }
}

/// Whether the device is Verilated RTL that can write a waveform (the
/// board configurations, `sim:ulx3s`, are built without a trace port).
fn is_sim(s: &DeviceSpec) -> bool {
    match s {
        DeviceSpec::Sim { .. } => true,
        DeviceSpec::Chip { base, .. } => is_sim(base),
        _ => false,
    }
}

/// Why a failing case has no waveform.
fn no_waveform(s: &DeviceSpec) -> String {
    match s {
        DeviceSpec::Board { rtl: true, .. } => {
            format!("{s}: the board configurations are Verilated without a trace port")
        }
        DeviceSpec::Chip { base, .. } => no_waveform(base),
        _ => format!("{s} is not a Verilated device"),
    }
}

fn open_link(spec: &DeviceSpec, opts: &OpenOptions) -> Result<Box<dyn Link>, VerifyError> {
    open::open_with(spec, opts)
        .map_err(|e| VerifyError::Open { device: spec.to_string(), source: Box::new(e) })
}

/// The INFO a device reports.
fn info_of(spec: &DeviceSpec, opts: &OpenOptions) -> Result<Info, VerifyError> {
    let info = |source| VerifyError::Info { device: spec.to_string(), source: Box::new(source) };
    Device::new(open_link(spec, opts)?).info().map_err(info)
}

/// What the device's replies are compared with, resolved once per run: a
/// device opened afresh for each program, or, for a board or a bridge
/// "against itself" (what [`DeviceSpec::fast_twin`] gives for them), its
/// golden model configured from the INFO it reported at the start: array,
/// memory sizes and features (an iCE40 without SEU, an ECP5 with its
/// 256 KiB weight memory).
enum Reference<'a> {
    Open(&'a DeviceSpec),
    Model(Info),
}

impl<'a> Reference<'a> {
    /// `device_info` reads the device's INFO, only when the reference is
    /// its model (a caller that already has it passes it on).
    fn resolve(
        device: &DeviceSpec,
        against: &'a DeviceSpec,
        device_info: impl FnOnce() -> Result<Info, VerifyError>,
    ) -> Result<Reference<'a>, VerifyError> {
        Ok(if uses_info_model(device, against) {
            Reference::Model(device_info()?)
        } else {
            Reference::Open(against)
        })
    }

    fn open(&self, opts: &OpenOptions) -> Result<Box<dyn Link>, VerifyError> {
        match self {
            Reference::Open(spec) => open_link(spec, opts),
            Reference::Model(info) => Ok(Box::new(faultloop_model::ModelLink::new(info.clone()))),
        }
    }

    /// The INFO it reports.
    fn info(&self, opts: &OpenOptions) -> Result<Info, VerifyError> {
        match self {
            Reference::Open(spec) => info_of(spec, opts),
            Reference::Model(info) => Ok(info.clone()),
        }
    }
}

/// The first INFO field in which `a` and `b` differ, with both values
/// (the array is compared first, as `rows x cols`).
fn info_difference(a: &Info, b: &Info) -> Option<(&'static str, String, String)> {
    if (a.rows, a.cols) != (b.rows, b.cols) {
        return Some(("array", format!("{}x{}", a.rows, a.cols), format!("{}x{}", b.rows, b.cols)));
    }
    let fields: [(&'static str, u64, u64); 6] = [
        ("proto", a.proto.into(), b.proto.into()),
        ("rtl", a.rtl.into(), b.rtl.into()),
        ("wmem_bytes", a.wmem_bytes as u64, b.wmem_bytes as u64),
        ("buf_bytes", a.buf_bytes as u64, b.buf_bytes as u64),
        ("acc_words", a.acc_words as u64, b.acc_words as u64),
        ("features", a.features.into(), b.features.into()),
    ];
    fields.into_iter().find(|(_, x, y)| x != y).map(|(f, x, y)| {
        if f == "features" {
            (f, format!("{x:#07b}"), format!("{y:#07b}"))
        } else {
            (f, x.to_string(), y.to_string())
        }
    })
}

/// Refuse a pair of devices whose INFO differs: replies that depend on it
/// (INFO itself, requests past a smaller memory, a feature one side lacks)
/// would differ by construction, and only some programs send them.
fn check_same_config(
    device: &DeviceSpec,
    against: &DeviceSpec,
    a: &Info,
    b: &Info,
) -> Result<(), VerifyError> {
    let Some((field, x, y)) = info_difference(a, b) else { return Ok(()) };
    let (device, against) = (device.to_string(), reference_name(device, against));
    Err(if field == "array" {
        VerifyError::Sizes { device, against, a: x, b: y }
    } else {
        VerifyError::Config { device, against, field, a: x, b: y }
    })
}

/// One program on a fresh pair of devices.
struct RunOutcome {
    /// The first differing request and field.
    diff: Option<(usize, FieldDiff)>,
    digest: u64,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn run_program(
    device: &DeviceSpec,
    against: &Reference,
    opts: &OpenOptions,
    against_opts: &OpenOptions,
    prog: &Program,
) -> Result<RunOutcome, VerifyError> {
    let mut a = open_link(device, opts)?;
    let mut b = against.open(against_opts)?;
    let mut digest = FNV_OFFSET;
    for (i, req) in prog.requests.iter().enumerate() {
        let frame = prog.frame(i);
        let ra: Reply = exchange(a.as_mut(), &frame, REPLY_TIMEOUT);
        let rb: Reply = exchange(b.as_mut(), &frame, REPLY_TIMEOUT);
        digest = match &ra {
            Ok(bytes) => fnv(digest, bytes),
            Err(e) => fnv(digest, e.as_bytes()),
        };
        if let Some(d) = first_difference(req, &ra, &rb) {
            return Ok(RunOutcome { diff: Some((i, d)), digest });
        }
    }
    Ok(RunOutcome { diff: None, digest })
}

/// Options without a waveform: cases and shrink runs are never traced.
fn untraced(opts: &OpenOptions) -> OpenOptions {
    OpenOptions { trace: None, ..opts.clone() }
}

/// Run the regression. `on_case` sees each case as it finishes (progress).
pub fn run(
    cfg: &VerifyConfig,
    opts: &OpenOptions,
    on_case: &mut dyn FnMut(&CaseResult),
) -> Result<VerifyReport, VerifyError> {
    let opts = untraced(opts);
    let info = info_of(&cfg.device, &opts)?;
    let (rows, cols) = (info.rows, info.cols);
    let reference = Reference::resolve(&cfg.device, &cfg.against, || Ok(info.clone()))?;
    check_same_config(&cfg.device, &cfg.against, &info, &reference.info(&opts)?)?;
    let start = Instant::now();
    let mut cases = Vec::new();
    let mut requests = 0;
    let mut failed: Option<(usize, u64, Program, usize, FieldDiff)> = None;
    for k in (0..cfg.cases).filter(|&k| cfg.shard.owns(k)) {
        let seed = case_seed(cfg.seed, k);
        if failed.is_some() {
            let c = CaseResult {
                case: k,
                case_seed: seed,
                requests: 0,
                reply_digest: String::new(),
                seconds: 0.0,
                status: CaseStatus::Skipped,
            };
            on_case(&c);
            cases.push(c);
            continue;
        }
        let prog = random_program(&mut Rng::new(seed), rows, cols);
        let t = Instant::now();
        let out = run_program(&cfg.device, &reference, &opts, &opts, &prog)?;
        let sent = out.diff.as_ref().map_or(prog.requests.len(), |(i, _)| i + 1);
        requests += sent;
        let c = CaseResult {
            case: k,
            case_seed: seed,
            requests: sent,
            reply_digest: format!("{:016x}", out.digest),
            seconds: t.elapsed().as_secs_f64(),
            status: if out.diff.is_some() { CaseStatus::Failed } else { CaseStatus::Passed },
        };
        on_case(&c);
        cases.push(c);
        if let Some((i, d)) = out.diff {
            failed = Some((k, seed, prog, i, d));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let run_cases = cases.iter().filter(|c| c.status != CaseStatus::Skipped).count();
    let failure = match failed {
        None => None,
        Some((k, seed, prog, first, d)) => {
            Some(failure(cfg, &reference, &opts, k, seed, &prog, first, d)?)
        }
    };
    Ok(VerifyReport {
        device: cfg.device.to_string(),
        against: reference_name(&cfg.device, &cfg.against),
        seed: cfg.seed,
        cases_total: cfg.cases,
        shard: cfg.shard,
        cases,
        requests,
        seconds,
        cases_per_s: run_cases as f64 / seconds.max(1e-9),
        passed: failure.is_none(),
        failure,
    })
}

/// Shrink `prog` (first differing at request `first`) to a shortest
/// sequence that still differs: greedily drop chunks, halving the chunk
/// size until single requests cannot go either. Returns the program, the
/// differing field of its last request, and the programs run.
fn shrink(
    cfg: &VerifyConfig,
    reference: &Reference,
    opts: &OpenOptions,
    prog: &Program,
    first: usize,
    diff0: FieldDiff,
) -> Result<(Program, FieldDiff, usize), VerifyError> {
    let mut runs = 0;
    let test = |keep: &[usize], runs: &mut usize| {
        *runs += 1;
        run_program(&cfg.device, reference, opts, opts, &prog.subset(keep)).map(|o| o.diff)
    };
    let mut keep: Vec<usize> = (0..=first).collect();
    let Some(mut best) = test(&keep, &mut runs)? else {
        // It did not differ again on fresh devices: report it unshrunk.
        return Ok((prog.subset(&keep), diff0, runs));
    };
    keep.truncate(best.0 + 1);
    let mut chunk = keep.len().div_ceil(2).max(1);
    loop {
        let mut changed = false;
        let mut i = 0;
        while i < keep.len() && runs < MAX_SHRINK_RUNS {
            let end = (i + chunk).min(keep.len());
            let cand: Vec<usize> = keep[..i].iter().chain(&keep[end..]).copied().collect();
            if !cand.is_empty() {
                if let Some((j, d)) = test(&cand, &mut runs)? {
                    keep = cand[..=j].to_vec();
                    best = (j, d);
                    changed = true;
                    continue;
                }
            }
            i += chunk;
        }
        if !changed {
            if chunk == 1 || runs >= MAX_SHRINK_RUNS {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    Ok((prog.subset(&keep), best.1, runs))
}

/// Shrink the failing case, write its file and waveform, and describe it.
// The run's context (cfg, reference, opts) and the failing case's five facts.
#[allow(clippy::too_many_arguments)]
fn failure(
    cfg: &VerifyConfig,
    reference: &Reference,
    opts: &OpenOptions,
    k: usize,
    seed: u64,
    prog: &Program,
    first: usize,
    diff0: FieldDiff,
) -> Result<Failure, VerifyError> {
    let (small, diff, runs) = shrink(cfg, reference, opts, prog, first, diff0)?;
    let (dn, an) = side_names(&cfg.device, &cfg.against);
    let last = small.requests.len() - 1;
    let message = format!(
        "case {k} (seed {seed:#x}), request {last} of the shrunk program, {}: {}",
        summary(&small.requests[last]),
        diff.describe(dn, an)
    );
    std::fs::create_dir_all(&cfg.case_dir)
        .map_err(|source| VerifyError::Dir { path: cfg.case_dir.clone(), source })?;
    let case_file = cfg.case_dir.join(format!("case-{k}.json"));
    CaseFile {
        format: CASE_FORMAT.into(),
        device: cfg.device.to_string(),
        // A device string (the replay parses it): for a board, the board
        // itself, which again means its INFO-configured model.
        against: cfg.against.to_string(),
        seed: cfg.seed,
        case: k,
        case_seed: seed,
        seq0: small.seq0,
        requests: small.requests.iter().map(CaseRequest::from).collect(),
        mismatch: Some(message.clone()),
    }
    .save(&case_file)?;
    let (waveform, waveform_note) = if is_sim(&cfg.device) {
        let dir = cfg.trace_dir.clone().unwrap_or_else(|| cfg.case_dir.clone());
        std::fs::create_dir_all(&dir)
            .map_err(|source| VerifyError::Dir { path: dir.clone(), source })?;
        let path = dir.join(format!("case-{k}.fst"));
        let traced = OpenOptions { trace: Some(Trace::new(&path)), ..opts.clone() };
        let again = run_program(&cfg.device, reference, &traced, opts, &small)?;
        let note = again.diff.is_none().then(|| "the traced run did not differ".to_string());
        (Some(path), note)
    } else {
        (None, Some(no_waveform(&cfg.device)))
    };
    Ok(Failure {
        case: k,
        case_seed: seed,
        message,
        field: diff.field,
        device_value: diff.device,
        against_value: diff.against,
        first_request: first,
        original_requests: prog.requests.len(),
        shrunk_requests: small.requests.iter().map(summary).collect(),
        shrink_runs: runs,
        case_file,
        waveform,
        waveform_note,
    })
}

/// A replayed case.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub case_file: PathBuf,
    pub device: String,
    pub against: String,
    pub requests: usize,
    pub passed: bool,
    /// The first differing request and field, described.
    pub mismatch: Option<String>,
    pub field: Option<String>,
    pub waveform: Option<PathBuf>,
}

/// Replay a case file on fresh devices (those of the file unless given),
/// with a waveform of the device into `trace` when it is the Verilated RTL.
pub fn replay(
    path: &Path,
    device: Option<DeviceSpec>,
    against: Option<DeviceSpec>,
    trace: Option<PathBuf>,
    opts: &OpenOptions,
) -> Result<ReplayReport, VerifyError> {
    let case = CaseFile::load(path)?;
    let bad = |problem: String| VerifyError::CaseFile { path: path.to_path_buf(), problem };
    let parse = |s: &str| s.parse::<DeviceSpec>().map_err(|e| bad(e.to_string()));
    let device = match device {
        Some(d) => d,
        None => parse(&case.device)?,
    };
    let against = match against {
        Some(d) => d,
        None => parse(&case.against)?,
    };
    let prog = case.program().map_err(bad)?;
    let plain = untraced(opts);
    let waveform = trace.filter(|_| is_sim(&device));
    let dopts = match &waveform {
        Some(p) => OpenOptions { trace: Some(Trace::new(p)), ..plain.clone() },
        None => plain.clone(),
    };
    let reference = Reference::resolve(&device, &against, || info_of(&device, &plain))?;
    let out = run_program(&device, &reference, &dopts, &plain, &prog)?;
    let (dn, an) = side_names(&device, &against);
    let mismatch = out.diff.as_ref().map(|(i, d)| {
        format!("request {i}, {}: {}", summary(&prog.requests[*i]), d.describe(dn, an))
    });
    Ok(ReplayReport {
        case_file: path.to_path_buf(),
        device: device.to_string(),
        against: reference_name(&device, &against),
        requests: prog.requests.len(),
        passed: out.diff.is_none(),
        field: out.diff.map(|(_, d)| d.field),
        mismatch,
        waveform,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> DeviceSpec {
        s.parse().unwrap()
    }

    #[test]
    fn devices_of_another_configuration_are_refused_up_front() {
        let opts = OpenOptions::default();
        let run_pair = |d: &str, a: &str| {
            let cfg = VerifyConfig {
                device: spec(d),
                against: spec(a),
                cases: 2,
                seed: 1,
                shard: Shard::ALL,
                case_dir: std::env::temp_dir(),
                trace_dir: None,
            };
            run(&cfg, &opts, &mut |_| {})
        };
        // Same array, a quarter of the weight memory.
        let e = run_pair("model:ulx3s", "model:8x8").unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, VerifyError::Config { field: "wmem_bytes", .. }), "{m}");
        assert!(m.contains("262144") && m.contains("1048576") && m.contains("model:8x8"), "{m}");
        // Another array.
        let e = run_pair("model:4x4", "model:8x8").unwrap_err();
        assert!(matches!(e, VerifyError::Sizes { .. }), "{e}");
        assert!(e.to_string().contains("4x4") && e.to_string().contains("8x8"), "{e}");
        // The same configuration runs.
        let r = run_pair("model:ulx3s", "model:ulx3s").unwrap();
        assert!(r.passed && r.cases.len() == 2, "{r:?}");
    }

    #[test]
    fn info_differences_name_the_first_field() {
        let a = Info::sim(4, 4);
        assert_eq!(info_difference(&a, &a), None);
        let b = Info { features: a.features & !0b100, ..a.clone() };
        let (f, x, y) = info_difference(&a, &b).unwrap();
        assert_eq!(f, "features");
        assert_ne!(x, y);
        let c = Info { buf_bytes: 1024, acc_words: 7, ..a.clone() };
        assert_eq!(info_difference(&a, &c).unwrap().0, "buf_bytes");
    }
}
