//! Waveforms on demand: an FST file of the Verilated RTL while a `sim`
//! device runs ([`OpenOptions::trace`](crate::open::OpenOptions::trace)).
//!
//! [`Trace`] names the file and a [`TraceWindow`] of clock cycles, so a long
//! run records only the part of interest. One process may open several sim
//! devices with the same trace: the first writes `FILE.fst`, the next
//! `FILE.1.fst`, `FILE.2.fst`, ... ([`Trace::claim_path`]), and
//! [`written`] lists them. A binary whose commands open devices deep inside
//! library code (fleets, resilience maps) sets the trace once for the whole
//! process with [`set_process_trace`]; explicit options take precedence.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

/// The clock cycles a waveform records: `start..end`, counted from the
/// first cycle after reset of each device. Written `START:END`; either side
/// may be empty (`:END`, `START:`). The default records every cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceWindow {
    pub start: u64,
    pub end: u64,
}

impl Default for TraceWindow {
    fn default() -> Self {
        TraceWindow { start: 0, end: u64::MAX }
    }
}

/// A `--trace-window` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad trace window '{input}': {problem}")]
pub struct TraceWindowError {
    pub input: String,
    pub problem: String,
}

impl FromStr for TraceWindow {
    type Err = TraceWindowError;

    fn from_str(s: &str) -> Result<TraceWindow, TraceWindowError> {
        let bad = |problem: String| TraceWindowError { input: s.to_string(), problem };
        let (a, b) =
            s.split_once(':').ok_or_else(|| bad("expected START:END in clock cycles".into()))?;
        let num = |v: &str, dflt: u64| -> Result<u64, TraceWindowError> {
            let v = v.trim().replace('_', "");
            if v.is_empty() {
                return Ok(dflt);
            }
            v.parse().map_err(|_| bad(format!("'{v}' is not a cycle number")))
        };
        let w = TraceWindow { start: num(a, 0)?, end: num(b, u64::MAX)? };
        if w.start >= w.end {
            return Err(bad("START must be below END".into()));
        }
        Ok(w)
    }
}

impl fmt::Display for TraceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            u64::MAX => write!(f, "{}:", self.start),
            end => write!(f, "{}:{end}", self.start),
        }
    }
}

/// Where a sim device's waveform goes and which cycles it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Trace {
    pub path: PathBuf,
    pub window: TraceWindow,
}

/// Paths handed out per requested path, and every file claimed.
struct Registry {
    next: BTreeMap<PathBuf, usize>,
    written: Vec<PathBuf>,
    process: Option<Trace>,
}

static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { next: BTreeMap::new(), written: Vec::new(), process: None });

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic elsewhere cannot leave the registry inconsistent.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Trace {
    /// A trace of every cycle into `path`.
    pub fn new(path: impl Into<PathBuf>) -> Trace {
        Trace { path: path.into(), window: TraceWindow::default() }
    }

    /// The file the next device opened with this trace writes: `path` the
    /// first time in this process, then `stem.1.ext`, `stem.2.ext`, ...
    pub fn claim_path(&self) -> PathBuf {
        let mut reg = registry();
        let n = reg.next.entry(self.path.clone()).or_insert(0);
        let path = numbered(&self.path, *n);
        *n += 1;
        reg.written.push(path.clone());
        path
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    path.with_file_name(name)
}

/// Trace every sim device this process opens without an explicit
/// [`OpenOptions::trace`](crate::open::OpenOptions::trace) (`None` stops).
pub fn set_process_trace(trace: Option<Trace>) {
    registry().process = trace;
}

/// The process-wide trace of [`set_process_trace`].
pub fn process_trace() -> Option<Trace> {
    registry().process.clone()
}

/// Every waveform file claimed so far in this process, in order.
pub fn written() -> Vec<PathBuf> {
    registry().written.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_print() {
        let w: TraceWindow = "100:2_000".parse().unwrap();
        assert_eq!(w, TraceWindow { start: 100, end: 2000 });
        assert_eq!(w.to_string(), "100:2000");
        assert_eq!(":5".parse::<TraceWindow>().unwrap(), TraceWindow { start: 0, end: 5 });
        let all: TraceWindow = "7:".parse().unwrap();
        assert_eq!((all.start, all.end, all.to_string()), (7, u64::MAX, "7:".to_string()));
        for (s, why) in [("5", "START:END"), ("9:3", "below"), ("a:3", "'a'"), ("3:3", "below")] {
            let e = s.parse::<TraceWindow>().unwrap_err().to_string();
            assert!(e.contains(&format!("'{s}'")) && e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn later_devices_get_numbered_files() {
        let t = Trace::new("/tmp/faultloop-trace-numbering-test/run.fst");
        let a = t.claim_path();
        let b = t.claim_path();
        let c = t.claim_path();
        assert_eq!(a, PathBuf::from("/tmp/faultloop-trace-numbering-test/run.fst"));
        assert_eq!(b, PathBuf::from("/tmp/faultloop-trace-numbering-test/run.1.fst"));
        assert_eq!(c, PathBuf::from("/tmp/faultloop-trace-numbering-test/run.2.fst"));
        let w = written();
        assert!(w.contains(&a) && w.contains(&c));
        assert_eq!(numbered(Path::new("x"), 3), PathBuf::from("x.3"));
    }
}
