//! Device strings and opening them.
//!
//! Device strings ([`DeviceSpec`]): `sim` (in-process Verilator, 16×16),
//! `sim:RxC`, `model` (golden model, 16×16), `model:RxC`,
//! `sim:BOARD` / `model:BOARD` (a bitstream's exact core configuration:
//! `ulx3s`, the ECP5 8x8 with its memory sizes, or `icebreaker`, the iCE40
//! 2x2; [`BoardConfig`]), `serial:/dev/ttyUSB0[@baud]` (default 115200
//! baud), `tcp://host:port`.
//! [`open_with`] turns one into a [`Link`] (the trait lives in
//! faultloop-proto; the backends in faultloop-model, faultloop-verilated and
//! [`crate::links`]). `sim` needs this crate's `sim` feature (the default).
//!
//! `tcp://` needs the bridge's token: [`OpenOptions::token`] or
//! [`OpenOptions::token_file`], else the environment variable
//! `FAULTLOOP_TOKEN` (see [`crate::handshake`]).

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use faultloop_proto::Link;

use faultloop_proto::faultmap::FaultMap;

use crate::handshake::Token;
use crate::links::chip::{ChipError, ChipLink, HiddenDefects};
use crate::links::serial::{SerialError, SerialLink, SerialOptions};
use crate::links::tcp::{TcpError, TcpLink, DEFAULT_CONNECT_TIMEOUT};
use crate::trace::Trace;

/// Array size used when a device string gives none.
pub const DEFAULT_ROWS: usize = 16;
/// Array size used when a device string gives none.
pub const DEFAULT_COLS: usize = 16;
/// Baud rate used when a serial device string gives none.
pub const DEFAULT_BAUD: u32 = 115_200;
/// Largest array side the protocol can describe (INFO carries rows/cols as u8).
pub const MAX_ARRAY_SIDE: usize = 255;

/// A parsed device string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// In-process Verilated RTL.
    Sim { rows: usize, cols: usize },
    /// In-process golden model.
    Model { rows: usize, cols: usize },
    /// A bitstream's exact core configuration in process: its Verilated
    /// core (`rtl: true`, `sim:BOARD`) or the golden model configured with
    /// its INFO (`model:BOARD`).
    Board { board: BoardConfig, rtl: bool },
    /// A board on a serial port.
    Serial { path: String, baud: u32 },
    /// A remote bridge.
    Tcp { addr: String },
    /// A `sim` or `model` device made a chip with hidden defects
    /// (`DEV+defects=PATH[+seu=RATE[@SEED]]`, [`crate::links::chip`]).
    Chip { base: Box<DeviceSpec>, defects: Option<std::path::PathBuf>, seu: Option<ChipSeu> },
}

/// The boards whose core configuration (array, memory sizes, features) a
/// device string can name in process: what a run on the board would do,
/// frame splits by its payload buffer included, without the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoardConfig {
    /// ULX3S 85F (ECP5): `Info::ecp5()`, 8x8, full fault model.
    Ulx3s,
    /// iCEBreaker (iCE40UP5K): `Info::ice40()`, 2x2, no SEU.
    Icebreaker,
}

impl BoardConfig {
    /// The name in device strings.
    pub fn name(self) -> &'static str {
        match self {
            BoardConfig::Ulx3s => "ulx3s",
            BoardConfig::Icebreaker => "icebreaker",
        }
    }

    /// The bitstream's INFO.
    pub fn info(self) -> faultloop_proto::Info {
        match self {
            BoardConfig::Ulx3s => faultloop_proto::Info::ecp5(),
            BoardConfig::Icebreaker => faultloop_proto::Info::ice40(),
        }
    }

    fn parse(s: &str) -> Option<BoardConfig> {
        [BoardConfig::Ulx3s, BoardConfig::Icebreaker].into_iter().find(|b| b.name() == s)
    }
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec::Sim { rows: DEFAULT_ROWS, cols: DEFAULT_COLS }
    }
}

/// Errors parsing a device string or opening a link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The device string does not parse.
    #[error("bad device string '{spec}': {problem}")]
    BadSpec { spec: String, problem: String },
    /// The Verilated model could not be opened.
    #[cfg(feature = "sim")]
    #[error("{device}: {source}")]
    Sim {
        device: String,
        #[source]
        source: faultloop_verilated::SimError,
    },
    /// This build has no Verilated models (faultloop-device without its
    /// `sim` feature).
    #[cfg(not(feature = "sim"))]
    #[error("{device}: this build has no Verilated RTL (faultloop-device was built without the `sim` feature); use model:RxC")]
    NoSim { device: String },
    /// The serial port could not be opened.
    #[error("{device}: {source}")]
    Serial {
        device: String,
        #[source]
        source: SerialError,
    },
    /// The remote bridge could not be reached or refused us.
    #[error("{device}: {source}")]
    Tcp {
        device: String,
        #[source]
        source: TcpError,
    },
    /// The hidden defects of a chip device could not be loaded.
    #[error("{device}: {source}")]
    Chip {
        device: String,
        #[source]
        source: ChipError,
    },
    /// An I/O error while opening.
    #[error("{device}: {source}")]
    Io {
        device: String,
        #[source]
        source: io::Error,
    },
}

fn bad(spec: &str, problem: impl Into<String>) -> LinkError {
    LinkError::BadSpec { spec: spec.to_string(), problem: problem.into() }
}

/// Parse an array size `RxC` (e.g. `8x8`; both sides 1..=255), as in
/// `sim:RxC`; errors name `spec`, the string it came from.
pub fn parse_array_size(spec: &str, s: &str) -> Result<(usize, usize), LinkError> {
    let (r, c) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| bad(spec, format!("array size '{s}' is not of the form RxC (e.g. 8x8)")))?;
    let side = |what: &str, v: &str| -> Result<usize, LinkError> {
        let n: usize =
            v.parse().map_err(|_| bad(spec, format!("{what} '{v}' in '{s}' is not a number")))?;
        if n == 0 || n > MAX_ARRAY_SIDE {
            return Err(bad(spec, format!("{what} {n} is outside 1..={MAX_ARRAY_SIDE}")));
        }
        Ok(n)
    };
    Ok((side("rows", r)?, side("cols", c)?))
}

impl FromStr for DeviceSpec {
    type Err = LinkError;

    fn from_str(spec: &str) -> Result<DeviceSpec, LinkError> {
        let s = spec.trim();
        if let Some(at) = s.find("+defects=").or_else(|| s.find("+seu=")) {
            return parse_chip(spec, &s[..at], &s[at + 1..]);
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| bad(spec, "expected tcp://host:port (the port is missing)"))?;
            if host.is_empty() {
                return Err(bad(spec, "expected tcp://host:port (the host is missing)"));
            }
            match port.parse::<u16>() {
                Ok(p) if p != 0 => {}
                _ => return Err(bad(spec, format!("port '{port}' is not a number in 1..=65535"))),
            }
            return Ok(DeviceSpec::Tcp { addr: addr.to_string() });
        }
        let (kind, rest) = match s.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (s, None),
        };
        match kind {
            "sim" | "model" => {
                if let Some(board) = rest.and_then(BoardConfig::parse) {
                    return Ok(DeviceSpec::Board { board, rtl: kind == "sim" });
                }
                let (rows, cols) = match rest {
                    None => (DEFAULT_ROWS, DEFAULT_COLS),
                    Some(r) => parse_array_size(spec, r).map_err(|e| match e {
                        LinkError::BadSpec { spec, problem } => LinkError::BadSpec {
                            spec,
                            problem: format!("{problem}; or a board: ulx3s, icebreaker"),
                        },
                        other => other,
                    })?,
                };
                Ok(if kind == "sim" {
                    DeviceSpec::Sim { rows, cols }
                } else {
                    DeviceSpec::Model { rows, cols }
                })
            }
            "serial" => {
                let rest = rest.unwrap_or("");
                let (path, baud) = match rest.rsplit_once('@') {
                    Some((p, b)) => {
                        let baud: u32 = b.parse().ok().filter(|&b| b > 0).ok_or_else(|| {
                            bad(spec, format!("baud rate '{b}' is not a positive number"))
                        })?;
                        (p, baud)
                    }
                    None => (rest, DEFAULT_BAUD),
                };
                if path.is_empty() {
                    return Err(bad(
                        spec,
                        "expected serial:PATH[@baud] (the port path is missing)",
                    ));
                }
                Ok(DeviceSpec::Serial { path: path.to_string(), baud })
            }
            "" => Err(bad(
                spec,
                "empty device string (expected sim, model, serial:PATH or tcp://host:port)",
            )),
            other => Err(bad(
                spec,
                format!(
                    "unknown device kind '{other}' (expected sim, sim:RxC, sim:BOARD, model, \
                     model:RxC, model:BOARD, serial:PATH[@baud] or tcp://host:port)"
                ),
            )),
        }
    }
}

/// A chip's own soft errors: flip rate per MAC and seed (`+seu=RATE@SEED`).
#[derive(Clone, Copy, Debug)]
pub struct ChipSeu {
    pub rate: f64,
    pub seed: u32,
}

// Device strings compare and hash by what they say: the rate's bits.
impl PartialEq for ChipSeu {
    fn eq(&self, o: &ChipSeu) -> bool {
        self.rate.to_bits() == o.rate.to_bits() && self.seed == o.seed
    }
}
impl Eq for ChipSeu {}
impl std::hash::Hash for ChipSeu {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.rate.to_bits().hash(h);
        self.seed.hash(h);
    }
}

/// `base` + `defects=PATH` / `seu=RATE[@SEED]` options joined by `+`.
fn parse_chip(spec: &str, base: &str, opts: &str) -> Result<DeviceSpec, LinkError> {
    let base: DeviceSpec = base.parse().map_err(|e| match e {
        LinkError::BadSpec { problem, .. } => bad(spec, problem),
        other => other,
    })?;
    if !matches!(base, DeviceSpec::Sim { .. } | DeviceSpec::Model { .. } | DeviceSpec::Board { .. })
    {
        return Err(bad(
            spec,
            "hidden defects (+defects=, +seu=) are for sim and model devices; a board's are in \
             its hardware (faultloop board --faults)",
        ));
    }
    let (mut defects, mut seu) = (None, None);
    // Split at `+` only where an option starts, so a path may hold a `+`.
    let mut rest = opts;
    while !rest.is_empty() {
        let next = ["+defects=", "+seu="].iter().filter_map(|k| rest.find(k)).min();
        let (item, tail) = match next {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = tail;
        if let Some(path) = item.strip_prefix("defects=") {
            if path.is_empty() || defects.is_some() {
                return Err(bad(spec, "expected one +defects=PATH with a path"));
            }
            defects = Some(std::path::PathBuf::from(path));
        } else if let Some(v) = item.strip_prefix("seu=") {
            let (rate, seed) = match v.split_once('@') {
                Some((r, s)) => (r, s),
                None => (v, "0"),
            };
            let rate: f64 =
                rate.parse().ok().filter(|p: &f64| (0.0..=1.0).contains(p)).ok_or_else(|| {
                    bad(spec, format!("seu rate '{rate}' is not a number in [0, 1]"))
                })?;
            let seed: u32 =
                seed.parse().map_err(|_| bad(spec, format!("seu seed '{seed}' is not a u32")))?;
            if seu.replace(ChipSeu { rate, seed }).is_some() {
                return Err(bad(spec, "expected at most one +seu="));
            }
        } else {
            return Err(bad(
                spec,
                format!("unknown chip option '{item}' (expected defects=PATH or seu=RATE[@SEED])"),
            ));
        }
    }
    Ok(DeviceSpec::Chip { base: Box::new(base), defects, seu })
}

impl DeviceSpec {
    /// The array size of an in-process device (`sim`, `model`, a board
    /// configuration, or a chip made of one); `None` for boards and bridges
    /// (ask INFO).
    pub fn array_size(&self) -> Option<(usize, usize)> {
        self.local_info().map(|i| (i.rows, i.cols))
    }

    /// The INFO an in-process device answers with (`None` for boards on a
    /// port and bridges: ask them).
    pub fn local_info(&self) -> Option<faultloop_proto::Info> {
        match self {
            DeviceSpec::Sim { rows, cols } | DeviceSpec::Model { rows, cols } => {
                Some(faultloop_proto::Info::sim(*rows, *cols))
            }
            DeviceSpec::Board { board, .. } => Some(board.info()),
            DeviceSpec::Chip { base, .. } => base.local_info(),
            _ => None,
        }
    }

    /// The bit-exact fast twin of this device for what-if scans: `sim:RxC`
    /// becomes `model:RxC` (the golden model answers byte for byte like the
    /// RTL, about 60x faster); every other device is its own twin.
    pub fn fast_twin(&self) -> DeviceSpec {
        match self {
            DeviceSpec::Sim { rows, cols } => DeviceSpec::Model { rows: *rows, cols: *cols },
            DeviceSpec::Board { board, .. } => DeviceSpec::Board { board: *board, rtl: false },
            DeviceSpec::Chip { base, defects, seu } => DeviceSpec::Chip {
                base: Box::new(base.fast_twin()),
                defects: defects.clone(),
                seu: *seu,
            },
            other => other.clone(),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Sim { rows, cols } => write!(f, "sim:{rows}x{cols}"),
            DeviceSpec::Model { rows, cols } => write!(f, "model:{rows}x{cols}"),
            DeviceSpec::Board { board, rtl } => {
                write!(f, "{}:{}", if *rtl { "sim" } else { "model" }, board.name())
            }
            DeviceSpec::Serial { path, baud } => write!(f, "serial:{path}@{baud}"),
            DeviceSpec::Tcp { addr } => write!(f, "tcp://{addr}"),
            DeviceSpec::Chip { base, defects, seu } => {
                write!(f, "{base}")?;
                if let Some(p) = defects {
                    write!(f, "+defects={}", p.display())?;
                }
                if let Some(ChipSeu { rate, seed }) = seu {
                    write!(f, "+seu={rate}@{seed}")?;
                }
                Ok(())
            }
        }
    }
}

/// How to open links beyond what the device string says.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The bridge token for `tcp://` (takes precedence over everything else).
    pub token: Option<Token>,
    /// A file holding the bridge token for `tcp://` (used when `token` is
    /// unset; the environment variable `FAULTLOOP_TOKEN` is the fallback).
    pub token_file: Option<std::path::PathBuf>,
    /// Connect and handshake timeout for `tcp://` (default 5 s).
    pub connect_timeout: Option<Duration>,
    /// Serial port settings for `serial:`.
    pub serial: SerialOptions,
    /// Record an FST waveform of every `sim` device opened (chips made of
    /// one included); unset, the process-wide trace of
    /// [`crate::trace::set_process_trace`] applies. Other devices ignore it.
    pub trace: Option<Trace>,
}

impl OpenOptions {
    /// The token for a `tcp://` link: `token`, else `token_file`, else the
    /// environment.
    pub fn resolve_token(&self) -> Result<Token, TcpError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        if let Some(p) = &self.token_file {
            return Ok(Token::from_file(p)?);
        }
        Token::from_env()?.ok_or(TcpError::NoToken)
    }
}

/// Open a link to the device a spec names, with default [`OpenOptions`]
/// (a `tcp://` token from `FAULTLOOP_TOKEN`).
///
/// `Sim` opens the Verilated RTL of that size, `Model` the golden model
/// configured with `Info::sim(rows, cols)` (so INFO matches the RTL of the
/// same size byte for byte), `Serial` the port ([`SerialLink`]), `Tcp` a
/// remote bridge ([`TcpLink`]).
pub fn open(spec: &DeviceSpec) -> Result<Box<dyn Link>, LinkError> {
    open_with(spec, &OpenOptions::default())
}

/// Open a link with explicit options.
pub fn open_with(spec: &DeviceSpec, opts: &OpenOptions) -> Result<Box<dyn Link>, LinkError> {
    match spec {
        #[cfg(feature = "sim")]
        DeviceSpec::Sim { rows, cols } => {
            use faultloop_verilated::SimLink;
            let link = match opts.trace.clone().or_else(crate::trace::process_trace) {
                Some(t) => {
                    let path = t.claim_path();
                    log::info!("{spec}: waveform of cycles {} into {}", t.window, path.display());
                    SimLink::open_traced(*rows, *cols, &path, t.window.start..t.window.end)
                }
                None => SimLink::open(*rows, *cols),
            }
            .map_err(|source| LinkError::Sim { device: spec.to_string(), source })?;
            Ok(Box::new(link))
        }
        #[cfg(not(feature = "sim"))]
        DeviceSpec::Sim { .. } => Err(LinkError::NoSim { device: spec.to_string() }),
        DeviceSpec::Model { rows, cols } => {
            Ok(Box::new(faultloop_model::ModelLink::sim(*rows, *cols)))
        }
        #[cfg(feature = "sim")]
        DeviceSpec::Board { board, rtl: true } => {
            use faultloop_verilated::SimLink;
            // The board configurations are built without a trace port.
            if opts.trace.clone().or_else(crate::trace::process_trace).is_some() {
                log::warn!("{spec}: no waveform (the board configurations are built untraced)");
            }
            let link = match board {
                BoardConfig::Ulx3s => SimLink::open_ecp5(),
                BoardConfig::Icebreaker => SimLink::open_ice40(),
            };
            Ok(Box::new(link.with_name(spec.to_string())))
        }
        #[cfg(not(feature = "sim"))]
        DeviceSpec::Board { rtl: true, .. } => Err(LinkError::NoSim { device: spec.to_string() }),
        DeviceSpec::Board { board, rtl: false } => {
            Ok(Box::new(faultloop_model::ModelLink::new(board.info()).with_name(spec.to_string())))
        }
        DeviceSpec::Serial { path, baud } => {
            let link = SerialLink::open_with(path, *baud, &opts.serial)
                .map_err(|source| LinkError::Serial { device: spec.to_string(), source })?;
            Ok(Box::new(link))
        }
        DeviceSpec::Tcp { addr } => {
            let tcp = |source| LinkError::Tcp { device: spec.to_string(), source };
            let token = opts.resolve_token().map_err(tcp)?;
            let timeout = opts.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
            let link = TcpLink::connect(addr, &token, timeout).map_err(tcp)?;
            Ok(Box::new(link))
        }
        DeviceSpec::Chip { base, defects, seu } => {
            let info = base.local_info().expect("chips are made of in-process devices");
            let (rows, cols) = (info.rows, info.cols);
            let chip = |source| LinkError::Chip { device: spec.to_string(), source };
            let map = match defects {
                Some(p) => FaultMap::load(p).map_err(|e| chip(e.into()))?,
                None => FaultMap::empty(rows, cols),
            };
            let hidden = HiddenDefects::new(&map, rows, cols, seu.map(|s| (s.rate, s.seed)))
                .map_err(chip)?;
            let inner = open_with(base, opts)?;
            let io = |source| LinkError::Io { device: spec.to_string(), source };
            let link = ChipLink::new(inner, info.buf_bytes, hidden)
                .map_err(io)?
                .with_name(spec.to_string());
            Ok(Box::new(link))
        }
    }
}

/// Parse a device string and open it.
pub fn open_str(spec: &str) -> Result<Box<dyn Link>, LinkError> {
    open(&spec.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DeviceSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_fast_twin_of_sim_is_model() {
        assert_eq!(p("sim:8x4").fast_twin(), p("model:8x4"));
        assert_eq!(p("model").fast_twin(), p("model"));
        assert_eq!(p("tcp://h:5").fast_twin(), p("tcp://h:5"));
    }

    #[test]
    fn parses_all_forms() {
        assert_eq!(p("sim"), DeviceSpec::Sim { rows: 16, cols: 16 });
        assert_eq!(p("sim:8x4"), DeviceSpec::Sim { rows: 8, cols: 4 });
        assert_eq!(p("model"), DeviceSpec::Model { rows: 16, cols: 16 });
        assert_eq!(p("model:4x4"), DeviceSpec::Model { rows: 4, cols: 4 });
        assert_eq!(
            p("serial:/dev/ttyUSB0"),
            DeviceSpec::Serial { path: "/dev/ttyUSB0".into(), baud: 115200 }
        );
        assert_eq!(
            p("serial:/dev/ttyUSB1@921600"),
            DeviceSpec::Serial { path: "/dev/ttyUSB1".into(), baud: 921600 }
        );
        assert_eq!(p("tcp://localhost:7000"), DeviceSpec::Tcp { addr: "localhost:7000".into() });
        assert_eq!(p("tcp://[::1]:7000"), DeviceSpec::Tcp { addr: "[::1]:7000".into() });
        assert_eq!(DeviceSpec::default(), p("sim"));
        assert_eq!(p("sim:ulx3s"), DeviceSpec::Board { board: BoardConfig::Ulx3s, rtl: true });
        assert_eq!(
            p("model:icebreaker"),
            DeviceSpec::Board { board: BoardConfig::Icebreaker, rtl: false }
        );
        assert_eq!(p("sim:ulx3s").fast_twin(), p("model:ulx3s"));
        assert_eq!(p("model:ulx3s").array_size(), Some((8, 8)));
        assert_eq!(p("sim:icebreaker").local_info(), Some(faultloop_proto::Info::ice40()));
        let chip = p("model:ulx3s+defects=m.json");
        assert_eq!(chip.local_info(), Some(faultloop_proto::Info::ecp5()));
    }

    #[test]
    fn an_unknown_board_is_named() {
        let e = "sim:ulx4s".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.contains("'sim:ulx4s'") && e.contains("ulx3s, icebreaker"), "{e}");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "sim",
            "sim:8x8",
            "model:4x16",
            "sim:ulx3s",
            "model:icebreaker",
            "serial:/dev/ttyACM0@9600",
            "tcp://h:1",
        ] {
            let spec = p(s);
            assert_eq!(p(&spec.to_string()), spec, "{s}");
        }
        assert_eq!(p("model").to_string(), "model:16x16");
    }

    #[test]
    fn bad_strings_name_string_and_problem() {
        let cases = [
            ("", "empty"),
            ("fpga", "unknown device kind 'fpga'"),
            ("sim:8", "not of the form RxC"),
            ("sim:0x8", "rows 0 is outside"),
            ("model:8x300", "cols 300 is outside"),
            ("model:ax8", "rows 'a'"),
            ("serial:", "port path is missing"),
            ("serial:/dev/ttyUSB0@fast", "baud rate 'fast'"),
            ("serial:/dev/ttyUSB0@0", "baud rate '0'"),
            ("tcp://host", "port is missing"),
            ("tcp://:80", "host is missing"),
            ("tcp://h:99999", "port '99999'"),
        ];
        for (s, want) in cases {
            let e = s.parse::<DeviceSpec>().expect_err(s).to_string();
            assert!(e.contains(&format!("'{s}'")), "{s}: {e}");
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn serial_and_tcp_open_errors_are_clear() {
        let e = open_str("serial:/dev/faultloop-no-such-port").err().unwrap().to_string();
        assert!(e.contains("/dev/faultloop-no-such-port") && e.contains("does not exist"), "{e}");
        let opts = OpenOptions {
            token_file: Some("/nonexistent/faultloop-token".into()),
            ..Default::default()
        };
        let e = open_with(&p("tcp://127.0.0.1:9"), &opts).err().unwrap().to_string();
        assert!(
            e.contains("tcp://127.0.0.1:9") && e.contains("/nonexistent/faultloop-token"),
            "{e}"
        );
    }

    #[test]
    fn model_link_has_its_name() {
        let l = open_str("model:4x8").unwrap();
        assert_eq!(l.name(), "model:4x8");
    }
}
