//! Fault maps: the JSON unit of exchange (normative: docs/protocol.md §7).
//!
//! ```json
//! {
//!   "array": {"rows": 16, "cols": 16},
//!   "faults": [
//!     {"row": 3, "col": 5, "site": "psum",   "stuck_at_0": 0,   "stuck_at_1": 1024},
//!     {"row": 0, "col": 1, "site": "weight", "stuck_at_0": 128, "stuck_at_1": 0},
//!     {"row": 7, "col": 2, "site": "act",    "stuck_at_1": 1}
//!   ],
//!   "bypass": [[3, 5]],
//!   "seu": {"rate": 0.0001, "seed": 42}
//! }
//! ```
//!
//! Masks are unsigned integers of the site's width (psum 32 bits, act and
//! weight 8); a missing mask is 0, as are missing `faults` and `bypass` lists.
//! Unknown keys are rejected (a misspelt mask must not silently become 0).
//! `seu.rate` is a probability per MAC in [0, 1]. Fault rate, where a command
//! takes one, is the fraction of PEs that are faulty.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::frame::{Site, SEU_RATE_ONE};
use crate::rng::Rng;

/// Array dimensions a map was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArraySize {
    pub rows: usize,
    pub cols: usize,
}

/// Stuck-at masks of one site of one PE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub row: usize,
    pub col: usize,
    pub site: Site,
    /// Bits forced to 0. Stored wide so an over-wide mask is reported, not truncated.
    #[serde(default)]
    pub stuck_at_0: u64,
    /// Bits forced to 1.
    #[serde(default)]
    pub stuck_at_1: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(row {}, col {}, {})", self.row, self.col, self.site)
    }
}

/// Transient-fault settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seu {
    /// Flip probability per MAC, in [0, 1].
    pub rate: f64,
    pub seed: u32,
}

impl Seu {
    /// The SET_SEU rate register value: `round(rate * 2^27)`.
    pub fn rate_register(&self) -> u32 {
        (self.rate.clamp(0.0, 1.0) * SEU_RATE_ONE as f64).round() as u32
    }
}

/// A chip's fault map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultMap {
    pub array: ArraySize,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Bypassed PEs as `[row, col]`.
    #[serde(default)]
    pub bypass: Vec<[usize; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seu: Option<Seu>,
    /// Where the map came from, for error messages (not serialised).
    #[serde(skip)]
    pub source: Option<String>,
}

/// Which stuck-at polarities a random map uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Polarity {
    /// Stuck-at-0 or stuck-at-1 with equal probability.
    #[default]
    Both,
    Sa0,
    Sa1,
}

/// Options of [`FaultMap::random`].
#[derive(Clone, Debug, PartialEq)]
pub struct RandomOptions {
    /// Sites a fault may hit (default all three).
    pub sites: Vec<Site>,
    pub polarity: Polarity,
    /// SEU probability per MAC; 0 means no `seu` entry.
    pub seu_rate: f64,
    pub seu_seed: u32,
    /// Stuck bits per faulty PE, `(lo, hi)` inclusive (docs/protocol.md
    /// §7.5, extension); `None` is the single-bit draw, which stays
    /// byte-identical to maps drawn before the option existed.
    pub bits: Option<(u32, u32)>,
}

impl Default for RandomOptions {
    fn default() -> Self {
        RandomOptions {
            sites: Site::ALL.to_vec(),
            polarity: Polarity::Both,
            seu_rate: 0.0,
            seu_seed: 0,
            bits: None,
        }
    }
}

/// Fault-map errors; each names the map (file) and, for content, the entry.
#[derive(Debug, thiserror::Error)]
pub enum FaultMapError {
    #[error("fault map {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fault map {file}: invalid JSON: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    /// One or more entries are invalid; each problem names its entry.
    #[error("fault map {file}: {}", problems.join("; "))]
    Invalid { file: String, problems: Vec<String> },
    /// The map is for another array size than the device's.
    #[error("fault map {file} is for a {map_rows}x{map_cols} array but {device} is {dev_rows}x{dev_cols}")]
    ArrayMismatch {
        file: String,
        device: String,
        map_rows: usize,
        map_cols: usize,
        dev_rows: usize,
        dev_cols: usize,
    },
    /// Bad arguments to [`FaultMap::random`].
    #[error("random fault map: {0}")]
    BadRandom(String),
}

impl FaultMap {
    /// A map without faults for a `rows`x`cols` array.
    pub fn empty(rows: usize, cols: usize) -> FaultMap {
        FaultMap {
            array: ArraySize { rows, cols },
            faults: Vec::new(),
            bypass: Vec::new(),
            seu: None,
            source: None,
        }
    }

    /// The file the map was loaded from (quoted), or `(in memory)`.
    pub fn file(&self) -> String {
        match &self.source {
            Some(s) => format!("'{s}'"),
            None => "(in memory)".to_string(),
        }
    }

    /// Parse and validate a map from JSON text.
    pub fn from_json_str(json: &str) -> Result<FaultMap, FaultMapError> {
        Self::parse(json, None)
    }

    fn parse(json: &str, source: Option<String>) -> Result<FaultMap, FaultMapError> {
        let mut map: FaultMap = serde_json::from_str(json).map_err(|e| FaultMapError::Json {
            file: source.as_ref().map_or("(in memory)".to_string(), |s| format!("'{s}'")),
            source: e,
        })?;
        map.source = source;
        map.validate()?;
        Ok(map)
    }

    /// Read, parse and validate a map file.
    pub fn load(path: impl AsRef<Path>) -> Result<FaultMap, FaultMapError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| FaultMapError::Io { file: format!("'{name}'"), source: e })?;
        Self::parse(&text, Some(name))
    }

    /// Pretty JSON.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("a fault map always serialises")
    }

    /// Write pretty JSON to `path`, atomically ([`crate::atomic`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), FaultMapError> {
        let path = path.as_ref();
        crate::atomic::write_atomic(path, (self.to_json_string() + "\n").as_bytes())
            .map_err(|e| FaultMapError::Io { file: format!("'{}'", path.display()), source: e })
    }

    /// Check every entry; all problems are reported, each naming its entry.
    pub fn validate(&self) -> Result<(), FaultMapError> {
        let mut problems = Vec::new();
        let ArraySize { rows, cols } = self.array;
        if rows == 0 || cols == 0 || rows > 255 || cols > 255 {
            problems
                .push(format!("array: {rows}x{cols} is not a valid array size (1..=255 per side)"));
        }
        let mut seen = HashSet::new();
        for (i, f) in self.faults.iter().enumerate() {
            let entry = format!("faults[{i}] {f}");
            if f.row >= rows || f.col >= cols {
                problems.push(format!("{entry}: PE is outside the {rows}x{cols} array"));
            }
            let width = f.site.mask() as u64;
            for (name, m) in [("stuck_at_0", f.stuck_at_0), ("stuck_at_1", f.stuck_at_1)] {
                if m & !width != 0 {
                    problems.push(format!(
                        "{entry}: {name} {m:#x} is wider than the {}-bit site",
                        f.site.bits()
                    ));
                }
            }
            let both = f.stuck_at_0 & f.stuck_at_1;
            if both != 0 {
                problems.push(format!(
                    "{entry}: bits {both:#x} are set in both stuck_at_0 and stuck_at_1"
                ));
            }
            if !seen.insert((f.row, f.col, f.site)) {
                let first = self
                    .faults
                    .iter()
                    .position(|g| (g.row, g.col, g.site) == (f.row, f.col, f.site))
                    .unwrap_or(i);
                problems.push(format!(
                    "{entry}: duplicate of faults[{first}] (one entry per PE and site)"
                ));
            }
        }
        for (i, [r, c]) in self.bypass.iter().enumerate() {
            if *r >= rows || *c >= cols {
                problems
                    .push(format!("bypass[{i}] ({r}, {c}): PE is outside the {rows}x{cols} array"));
            }
        }
        if let Some(seu) = &self.seu {
            if !(0.0..=1.0).contains(&seu.rate) {
                problems.push(format!("seu: rate {} is outside [0, 1]", seu.rate));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(FaultMapError::Invalid { file: self.file(), problems })
        }
    }

    /// Distinct PEs with at least one non-zero mask.
    pub fn faulty_pes(&self) -> usize {
        self.faults
            .iter()
            .filter(|f| f.stuck_at_0 | f.stuck_at_1 != 0)
            .map(|f| (f.row, f.col))
            .collect::<HashSet<_>>()
            .len()
    }

    /// Fraction of PEs that are faulty.
    pub fn fault_rate(&self) -> f64 {
        self.faulty_pes() as f64 / (self.array.rows * self.array.cols).max(1) as f64
    }

    /// A reproducible random map: `round(rate * rows * cols)` distinct PEs,
    /// each with one stuck bit at a random site (among `opts.sites`), bit and
    /// polarity. Faults are sorted by (row, col).
    pub fn random(
        rows: usize,
        cols: usize,
        rate: f64,
        seed: u64,
        opts: &RandomOptions,
    ) -> Result<FaultMap, FaultMapError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(FaultMapError::BadRandom(format!("fault rate {rate} is outside [0, 1]")));
        }
        if rows == 0 || cols == 0 || rows > 255 || cols > 255 {
            return Err(FaultMapError::BadRandom(format!(
                "{rows}x{cols} is not a valid array size"
            )));
        }
        if opts.sites.is_empty() {
            return Err(FaultMapError::BadRandom("no fault sites allowed".to_string()));
        }
        if !(0.0..=1.0).contains(&opts.seu_rate) {
            return Err(FaultMapError::BadRandom(format!(
                "SEU rate {} is outside [0, 1]",
                opts.seu_rate
            )));
        }
        if let Some((lo, hi)) = opts.bits {
            let narrowest = opts.sites.iter().map(|s| s.bits()).min().unwrap_or(0);
            if lo == 0 || lo > hi || hi > narrowest {
                return Err(FaultMapError::BadRandom(format!(
                    "stuck bits {lo}-{hi}: need 1 <= LO <= HI <= {narrowest} (the narrowest \
                     allowed site's width)"
                )));
            }
        }
        let total = rows * cols;
        let count = ((rate * total as f64).round() as usize).min(total);
        let mut rng = Rng::new(seed);
        let sa1_draw = |rng: &mut Rng| match opts.polarity {
            Polarity::Both => rng.below(2) == 1,
            Polarity::Sa0 => false,
            Polarity::Sa1 => true,
        };
        let mut faults: Vec<Fault> = rng
            .sample_indices(total, count)
            .into_iter()
            .map(|pe| {
                let site = opts.sites[rng.index(opts.sites.len())];
                let (mut stuck_at_0, mut stuck_at_1) = (0u64, 0u64);
                match opts.bits {
                    None => {
                        let bit = 1u64 << rng.below(site.bits() as u64);
                        if sa1_draw(&mut rng) {
                            stuck_at_1 = bit;
                        } else {
                            stuck_at_0 = bit;
                        }
                    }
                    // §7.5 extension: the number of bits, distinct bits by a
                    // partial Fisher–Yates over the site's width, then one
                    // polarity per bit in that order.
                    Some((lo, hi)) => {
                        let nb = lo as usize + rng.index((hi - lo + 1) as usize);
                        for b in rng.sample_indices(site.bits() as usize, nb) {
                            if sa1_draw(&mut rng) {
                                stuck_at_1 |= 1 << b;
                            } else {
                                stuck_at_0 |= 1 << b;
                            }
                        }
                    }
                }
                Fault { row: pe / cols, col: pe % cols, site, stuck_at_0, stuck_at_1 }
            })
            .collect();
        faults.sort_by_key(|f| (f.row, f.col, f.site));
        let seu = (opts.seu_rate > 0.0).then_some(Seu { rate: opts.seu_rate, seed: opts.seu_seed });
        Ok(FaultMap {
            array: ArraySize { rows, cols },
            faults,
            bypass: Vec::new(),
            seu,
            source: None,
        })
    }

    /// Check that the map is valid and made for a `rows`x`cols` array (the
    /// size `device` reports), before anything is sent to it.
    pub fn check_for(&self, device: &str, rows: usize, cols: usize) -> Result<(), FaultMapError> {
        self.validate()?;
        if (rows, cols) != (self.array.rows, self.array.cols) {
            return Err(FaultMapError::ArrayMismatch {
                file: self.file(),
                device: device.to_string(),
                map_rows: self.array.rows,
                map_cols: self.array.cols,
                dev_rows: rows,
                dev_cols: cols,
            });
        }
        Ok(())
    }

    /// The SET_SEU register values of this map: `(round(p * 2^27), seed)`,
    /// or `(0, 0)` when it has no `seu`.
    pub fn seu_registers(&self) -> (u32, u32) {
        self.seu.map_or((0, 0), |s| (s.rate_register(), s.seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "array": {"rows": 16, "cols": 16},
      "faults": [
        {"row": 3, "col": 5, "site": "psum",   "stuck_at_0": 0,   "stuck_at_1": 1024},
        {"row": 0, "col": 1, "site": "weight", "stuck_at_0": 128, "stuck_at_1": 0},
        {"row": 7, "col": 2, "site": "act",    "stuck_at_1": 1}
      ],
      "bypass": [[3, 5]],
      "seu": {"rate": 0.0001, "seed": 42}
    }"#;

    fn invalid(json: &str) -> String {
        match FaultMap::from_json_str(json) {
            Err(e @ FaultMapError::Invalid { .. }) => e.to_string(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn design_example_parses() {
        let m = FaultMap::from_json_str(EXAMPLE).unwrap();
        assert_eq!(m.array, ArraySize { rows: 16, cols: 16 });
        assert_eq!(m.faults.len(), 3);
        assert_eq!(
            m.faults[2],
            Fault { row: 7, col: 2, site: Site::Act, stuck_at_0: 0, stuck_at_1: 1 }
        );
        assert_eq!(m.bypass, vec![[3, 5]]);
        assert_eq!(m.seu.unwrap().seed, 42);
        assert_eq!(m.seu.unwrap().rate_register(), (0.0001f64 * 134217728.0).round() as u32);
        assert_eq!(m.faulty_pes(), 3);
        // Round trip through JSON.
        let back = FaultMap::from_json_str(&m.to_json_string()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn minimal_map_defaults() {
        let m = FaultMap::from_json_str(r#"{"array": {"rows": 4, "cols": 4}}"#).unwrap();
        assert_eq!(m, FaultMap::empty(4, 4));
        assert!(!m.to_json_string().contains("seu"));
    }

    #[test]
    fn validation_errors_name_the_entry() {
        let e = invalid(
            r#"{"array": {"rows": 8, "cols": 8}, "faults": [
                {"row": 0, "col": 0, "site": "psum"},
                {"row": 1, "col": 1, "site": "psum"},
                {"row": 2, "col": 2, "site": "psum"},
                {"row": 3, "col": 5, "site": "act", "stuck_at_1": 511}]}"#,
        );
        assert!(
            e.contains(
                "faults[3] (row 3, col 5, act): stuck_at_1 0x1ff is wider than the 8-bit site"
            ),
            "{e}"
        );
        let e = invalid(
            r#"{"array": {"rows": 8, "cols": 8}, "faults": [
                {"row": 1, "col": 2, "site": "weight", "stuck_at_0": 3, "stuck_at_1": 6}]}"#,
        );
        assert!(e.contains("faults[0] (row 1, col 2, weight): bits 0x2 are set in both"), "{e}");
        let e = invalid(
            r#"{"array": {"rows": 8, "cols": 8}, "faults": [{"row": 8, "col": 0, "site": "psum"}]}"#,
        );
        assert!(e.contains("faults[0] (row 8, col 0, psum): PE is outside the 8x8 array"), "{e}");
        let e = invalid(
            r#"{"array": {"rows": 8, "cols": 8}, "faults": [
                {"row": 1, "col": 1, "site": "act", "stuck_at_0": 1},
                {"row": 1, "col": 1, "site": "psum", "stuck_at_0": 1},
                {"row": 1, "col": 1, "site": "act", "stuck_at_1": 2}]}"#,
        );
        assert!(e.contains("faults[2] (row 1, col 1, act): duplicate of faults[0]"), "{e}");
        let e = invalid(r#"{"array": {"rows": 8, "cols": 8}, "bypass": [[1, 1], [2, 8]]}"#);
        assert!(e.contains("bypass[1] (2, 8): PE is outside the 8x8 array"), "{e}");
        let e = invalid(r#"{"array": {"rows": 8, "cols": 8}, "seu": {"rate": 1.5, "seed": 1}}"#);
        assert!(e.contains("seu: rate 1.5 is outside [0, 1]"), "{e}");
        let e = invalid(r#"{"array": {"rows": 8, "cols": 8}, "seu": {"rate": -0.1, "seed": 1}}"#);
        assert!(e.contains("seu: rate -0.1"), "{e}");
        let e = invalid(
            r#"{"array": {"rows": 8, "cols": 8}, "faults": [
                {"row": 0, "col": 0, "site": "psum", "stuck_at_1": 4294967296}]}"#,
        );
        assert!(e.contains("stuck_at_1 0x100000000 is wider than the 32-bit site"), "{e}");
        let e = invalid(r#"{"array": {"rows": 0, "cols": 8}}"#);
        assert!(e.contains("array: 0x8"), "{e}");
    }

    #[test]
    fn all_problems_reported_together() {
        let e = invalid(
            r#"{"array": {"rows": 4, "cols": 4}, "faults": [
                {"row": 9, "col": 0, "site": "act", "stuck_at_0": 256}], "bypass": [[4, 4]]}"#,
        );
        assert!(e.contains("faults[0]") && e.contains("0x100") && e.contains("bypass[0]"), "{e}");
    }

    #[test]
    fn json_errors() {
        let e = FaultMap::from_json_str(
            r#"{"array": {"rows": 4, "cols": 4}, "faults": [{"row": 0, "col": 0, "site": "mul"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid JSON") && e.contains("mul"), "{e}");
        let e = FaultMap::from_json_str(r#"{"array": {"rows": 4, "cols": 4}, "faults": [{"row": 0, "col": 0, "site": "act", "stuck_at1": 1}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("stuck_at1"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chip7.json");
        std::fs::write(&p, r#"{"array": {"rows": 4, "cols": 4}, "bypass": [[0, 9]]}"#).unwrap();
        let e = FaultMap::load(&p).unwrap_err().to_string();
        assert!(e.contains("chip7.json") && e.contains("bypass[0] (0, 9)"), "{e}");
        let e = FaultMap::load(dir.path().join("missing.json")).unwrap_err().to_string();
        assert!(e.contains("missing.json"), "{e}");
        let m = FaultMap::random(4, 4, 0.5, 1, &RandomOptions::default()).unwrap();
        let q = dir.path().join("rand.json");
        m.save(&q).unwrap();
        let back = FaultMap::load(&q).unwrap();
        assert_eq!(back.faults, m.faults);
        assert_eq!(back.source.as_deref(), Some(q.display().to_string().as_str()));
    }

    #[test]
    fn random_is_reproducible_and_well_formed() {
        let o = RandomOptions::default();
        let a = FaultMap::random(16, 16, 0.1, 7, &o).unwrap();
        let b = FaultMap::random(16, 16, 0.1, 7, &o).unwrap();
        let c = FaultMap::random(16, 16, 0.1, 8, &o).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.faults.len(), 26); // round(0.1 * 256) = 25.6 -> 26
        assert_eq!(a.faulty_pes(), 26);
        a.validate().unwrap();
        for f in &a.faults {
            assert_eq!((f.stuck_at_0 | f.stuck_at_1).count_ones(), 1);
            assert_eq!(f.stuck_at_0 & f.stuck_at_1, 0);
        }
        assert!(a.seu.is_none());
        assert_eq!(FaultMap::random(8, 8, 0.0, 1, &o).unwrap().faults.len(), 0);
        assert_eq!(FaultMap::random(8, 8, 1.0, 1, &o).unwrap().faulty_pes(), 64);
    }

    #[test]
    fn random_respects_options() {
        let o = RandomOptions {
            sites: vec![Site::Weight],
            polarity: Polarity::Sa1,
            seu_rate: 1e-3,
            seu_seed: 5,
            bits: None,
        };
        let m = FaultMap::random(8, 8, 0.5, 3, &o).unwrap();
        assert!(m
            .faults
            .iter()
            .all(|f| f.site == Site::Weight && f.stuck_at_0 == 0 && f.stuck_at_1 < 256));
        assert_eq!(m.seu, Some(Seu { rate: 1e-3, seed: 5 }));
        let o = RandomOptions { polarity: Polarity::Sa0, ..RandomOptions::default() };
        let m = FaultMap::random(8, 8, 0.5, 3, &o).unwrap();
        assert!(m.faults.iter().all(|f| f.stuck_at_1 == 0));
        // Both polarities and all sites show up in a big map.
        let m = FaultMap::random(32, 32, 1.0, 3, &RandomOptions::default()).unwrap();
        for s in Site::ALL {
            assert!(m.faults.iter().any(|f| f.site == s));
        }
        assert!(m.faults.iter().any(|f| f.stuck_at_1 != 0));
        assert!(m.faults.iter().any(|f| f.stuck_at_0 != 0));
        // psum faults use high bits too.
        assert!(m
            .faults
            .iter()
            .any(|f| f.site == Site::Psum && (f.stuck_at_0 | f.stuck_at_1) > 255));
    }

    #[test]
    fn random_rejects_bad_arguments() {
        let o = RandomOptions::default();
        assert!(FaultMap::random(8, 8, 1.1, 1, &o).is_err());
        assert!(FaultMap::random(0, 8, 0.1, 1, &o).is_err());
        assert!(
            FaultMap::random(8, 8, 0.1, 1, &RandomOptions { sites: vec![], ..o.clone() }).is_err()
        );
        assert!(
            FaultMap::random(8, 8, 0.1, 1, &RandomOptions { seu_rate: 2.0, ..o.clone() }).is_err()
        );
        for bits in [(0, 2), (3, 2), (1, 9)] {
            let e =
                FaultMap::random(8, 8, 0.1, 1, &RandomOptions { bits: Some(bits), ..o.clone() })
                    .unwrap_err();
            assert!(e.to_string().contains("stuck bits"), "{e}");
        }
    }

    #[test]
    fn random_multi_bit_draw() {
        let psum = |bits| RandomOptions { sites: vec![Site::Psum], bits, ..Default::default() };
        let m = FaultMap::random(16, 16, 0.5, 7, &psum(Some((1, 3)))).unwrap();
        m.validate().unwrap();
        let counts: Vec<u32> =
            m.faults.iter().map(|f| (f.stuck_at_0 | f.stuck_at_1).count_ones()).collect();
        assert!(counts.iter().all(|&c| (1..=3).contains(&c)), "{counts:?}");
        for c in 1..=3 {
            assert!(counts.contains(&c), "no PE with {c} stuck bits: {counts:?}");
        }
        assert!(m.faults.iter().all(|f| f.stuck_at_0 & f.stuck_at_1 == 0));
        // The same PEs as the single-bit draw (step 2 is unchanged), and
        // reproducible.
        let single = FaultMap::random(16, 16, 0.5, 7, &psum(None)).unwrap();
        let pes = |m: &FaultMap| m.faults.iter().map(|f| (f.row, f.col)).collect::<Vec<_>>();
        assert_eq!(pes(&m), pes(&single));
        assert_eq!(m, FaultMap::random(16, 16, 0.5, 7, &psum(Some((1, 3)))).unwrap());
        // Exactly two bits when asked.
        let m = FaultMap::random(8, 8, 1.0, 2, &psum(Some((2, 2)))).unwrap();
        assert!(m.faults.iter().all(|f| (f.stuck_at_0 | f.stuck_at_1).count_ones() == 2));
    }
}
