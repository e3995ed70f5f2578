//! The framed request/reply protocol of docs/protocol.md §1–§2: CRC, frame
//! encoding, a resynchronising stream decoder, typed requests and reply parsers.
//!
//! ```text
//! request : 0xA5 | op u8     | seq u16 | len u32 | payload[len] | crc u16
//! reply   : 0x5A | status u8 | seq u16 | len u32 | payload[len] | crc u16
//! ```
//!
//! The decoder works on a byte buffer the caller owns, in the style of
//! tokio-modbus: [`decode`] looks at the front of the buffer and says whether a
//! whole frame is there ([`Decoded::Frame`]), more bytes are needed
//! ([`Decoded::Incomplete`]) or some leading bytes must be dropped to resync
//! ([`Decoded::Skip`]). It never allocates except for the payload of a frame.

use std::fmt;

/// First byte of every request (host → device).
pub const REQUEST_SYNC: u8 = 0xA5;
/// First byte of every reply (device → host).
pub const REPLY_SYNC: u8 = 0x5A;
/// Sync, op/status, seq (2), len (4).
pub const HEADER_LEN: usize = 8;
/// The CRC trailer.
pub const CRC_LEN: usize = 2;
/// Bytes a frame adds around its payload.
pub const FRAME_OVERHEAD: usize = HEADER_LEN + CRC_LEN;
/// Protocol version reported by INFO.
pub const PROTO_VERSION: u8 = 2;
/// RTL version reported by INFO (the RTL's own revision of that protocol).
pub const RTL_VERSION: u8 = 1;
/// Length of the INFO reply payload.
pub const INFO_LEN: usize = 20;
/// Length of the COUNTERS reply payload.
pub const COUNTERS_LEN: usize = 24;
/// Fixed part of a MATMUL request payload (before the activations): base u32,
/// m u16, k u16, n u16, rot_r u8, rot_c u8 and 2 reserved zero bytes, so the
/// activations start at offset 14 as `len = 14 + m*k` requires.
pub const MATMUL_HEADER_LEN: usize = 14;
/// Length of a SET_FAULT request payload.
pub const SET_FAULT_LEN: usize = 11;
/// Bytes per PATCH_WEIGHTS entry (addr u24, value u8).
pub const PATCH_ENTRY_LEN: usize = 4;
/// PATCH_WEIGHTS addresses are 24 bits wide.
pub const PATCH_ADDR_LIMIT: u32 = 1 << 24;
/// SET_SEU rate meaning "flip on every MAC" (probability 1).
pub const SEU_RATE_ONE: u32 = 1 << 27;

/// INFO feature bit: stuck-at fault sites.
pub const FEATURE_STUCK_AT: u32 = 1 << 0;
/// INFO feature bit: PE bypass.
pub const FEATURE_BYPASS: u32 = 1 << 1;
/// INFO feature bit: transient faults (SEU).
pub const FEATURE_SEU: u32 = 1 << 2;
/// INFO feature bit: MATMUL rotation.
pub const FEATURE_ROTATION: u32 = 1 << 3;
/// INFO feature bit: hidden defect port (board tops).
pub const FEATURE_DEFECT_PORT: u32 = 1 << 4;

/// Every feature bit with its name, in bit order.
pub const FEATURES: [(u32, &str); 5] = [
    (FEATURE_STUCK_AT, "stuck-at faults"),
    (FEATURE_BYPASS, "bypass"),
    (FEATURE_SEU, "transient flips"),
    (FEATURE_ROTATION, "rotation"),
    (FEATURE_DEFECT_PORT, "hidden defects"),
];

// ---------------------------------------------------------------------------
// CRC

/// Feed `data` into a running CRC-16/CCITT-FALSE (poly 0x1021, not reflected,
/// no final xor). Start from [`CRC_INIT`].
///
/// Slicing-by-8: the CRC is linear over XOR, so eight bytes fold through eight
/// tables at once (several times faster than a byte at a time, which matters
/// for the megabytes of MATMUL frames an in-process link moves).
pub fn crc16_update(mut crc: u16, data: &[u8]) -> u16 {
    let t = &CRC_TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let x0 = (c[0] ^ (crc >> 8) as u8) as usize;
        let x1 = (c[1] ^ crc as u8) as usize;
        crc = t[7][x0]
            ^ t[6][x1]
            ^ t[5][c[2] as usize]
            ^ t[4][c[3] as usize]
            ^ t[3][c[4] as usize]
            ^ t[2][c[5] as usize]
            ^ t[1][c[6] as usize]
            ^ t[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ t[0][((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

/// Initial value of the CRC register.
pub const CRC_INIT: u16 = 0xFFFF;

/// CRC-16/CCITT-FALSE of `data`: `crc16(b"123456789") == 0x29B1`.
pub fn crc16(data: &[u8]) -> u16 {
    crc16_update(CRC_INIT, data)
}

/// `CRC_TABLES[0]` is the classic byte table; `CRC_TABLES[k][b]` is the CRC
/// contribution of byte `b` followed by `k` zero bytes.
const CRC_TABLES: [[u16; 256]; 8] = {
    let mut t = [[0u16; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u16) << 8;
        let mut j = 0;
        while j < 8 {
            c = if c & 0x8000 != 0 { (c << 1) ^ 0x1021 } else { c << 1 };
            j += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

// ---------------------------------------------------------------------------
// Opcodes, statuses, sites

/// Request opcodes (docs/protocol.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    Info = 0x01,
    Reset = 0x02,
    WriteWeights = 0x03,
    PatchWeights = 0x04,
    SetFault = 0x05,
    SetBypass = 0x06,
    ClearFaults = 0x07,
    SetSeu = 0x08,
    Matmul = 0x09,
    Counters = 0x0A,
}

impl Opcode {
    /// Every opcode, in code order.
    pub const ALL: [Opcode; 10] = [
        Opcode::Info,
        Opcode::Reset,
        Opcode::WriteWeights,
        Opcode::PatchWeights,
        Opcode::SetFault,
        Opcode::SetBypass,
        Opcode::ClearFaults,
        Opcode::SetSeu,
        Opcode::Matmul,
        Opcode::Counters,
    ];

    /// The opcode with this code, if any.
    pub fn from_u8(code: u8) -> Option<Opcode> {
        Opcode::ALL.get((code as usize).wrapping_sub(1)).copied()
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The spec's name (`MATMUL`, `WRITE_WEIGHTS`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Info => "INFO",
            Opcode::Reset => "RESET",
            Opcode::WriteWeights => "WRITE_WEIGHTS",
            Opcode::PatchWeights => "PATCH_WEIGHTS",
            Opcode::SetFault => "SET_FAULT",
            Opcode::SetBypass => "SET_BYPASS",
            Opcode::ClearFaults => "CLEAR_FAULTS",
            Opcode::SetSeu => "SET_SEU",
            Opcode::Matmul => "MATMUL",
            Opcode::Counters => "COUNTERS",
        }
    }

    /// Name of a raw opcode byte; `"UNKNOWN"` when it is none.
    pub fn name_of(code: u8) -> &'static str {
        Opcode::from_u8(code).map_or("UNKNOWN", Opcode::name)
    }
}

impl From<Opcode> for u8 {
    fn from(op: Opcode) -> u8 {
        op as u8
    }
}

impl TryFrom<u8> for Opcode {
    type Error = u8;
    /// Fails with the unknown code.
    fn try_from(code: u8) -> Result<Opcode, u8> {
        Opcode::from_u8(code).ok_or(code)
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reply status codes (docs/protocol.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    BadCrc = 1,
    BadOpcode = 2,
    BadLength = 3,
    OutOfRange = 4,
    Busy = 5,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 6] = [
        Status::Ok,
        Status::BadCrc,
        Status::BadOpcode,
        Status::BadLength,
        Status::OutOfRange,
        Status::Busy,
    ];

    /// The status with this code, if any.
    pub fn from_u8(code: u8) -> Option<Status> {
        Status::ALL.get(code as usize).copied()
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The spec's name (`OK`, `BAD_CRC`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadCrc => "BAD_CRC",
            Status::BadOpcode => "BAD_OPCODE",
            Status::BadLength => "BAD_LENGTH",
            Status::OutOfRange => "OUT_OF_RANGE",
            Status::Busy => "BUSY",
        }
    }

    /// Name of a raw status byte; `"UNKNOWN"` when it is none.
    pub fn name_of(code: u8) -> &'static str {
        Status::from_u8(code).map_or("UNKNOWN", Status::name)
    }
}

impl From<Status> for u8 {
    fn from(s: Status) -> u8 {
        s as u8
    }
}

impl TryFrom<u8> for Status {
    type Error = u8;
    /// Fails with the unknown code.
    fn try_from(code: u8) -> Result<Status, u8> {
        Status::from_u8(code).ok_or(code)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault site inside a PE (docs/protocol.md §2: 0 = psum, 1 = act, 2 = weight).
///
/// Serialised in fault maps as `"psum"`, `"act"`, `"weight"`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Site {
    /// The 32-bit partial-sum output register.
    Psum = 0,
    /// The 8-bit activation output register.
    Act = 1,
    /// The 8-bit weight register.
    Weight = 2,
}

impl Site {
    /// All sites in code order.
    pub const ALL: [Site; 3] = [Site::Psum, Site::Act, Site::Weight];

    /// The site with this code, if any.
    pub fn from_u8(code: u8) -> Option<Site> {
        Site::ALL.get(code as usize).copied()
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Register width in bits (32 for psum, 8 otherwise).
    pub fn bits(self) -> u32 {
        match self {
            Site::Psum => 32,
            Site::Act | Site::Weight => 8,
        }
    }

    /// All-ones mask of the register's width.
    pub fn mask(self) -> u32 {
        match self {
            Site::Psum => u32::MAX,
            Site::Act | Site::Weight => 0xFF,
        }
    }

    /// `psum`, `act` or `weight`.
    pub fn name(self) -> &'static str {
        match self {
            Site::Psum => "psum",
            Site::Act => "act",
            Site::Weight => "weight",
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Site {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Site, ProtoError> {
        match s {
            "psum" => Ok(Site::Psum),
            "act" => Ok(Site::Act),
            "weight" => Ok(Site::Weight),
            _ => Err(ProtoError::UnknownSite(s.to_string())),
        }
    }
}

// ---------------------------------------------------------------------------
// Errors

/// A reply payload that does not parse, or a bad protocol value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// An OK reply whose payload has the wrong size for its request.
    #[error("{what} reply has {got} payload bytes, expected {expected}")]
    ReplyLength { what: &'static str, expected: usize, got: usize },
    /// A site name that is not `psum`, `act` or `weight`.
    #[error("unknown fault site '{0}' (expected psum, act or weight)")]
    UnknownSite(String),
}

// ---------------------------------------------------------------------------
// Frames

/// One decoded frame: `code` is the opcode of a request or the status of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub code: u8,
    pub seq: u16,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Encode with the given sync byte ([`REQUEST_SYNC`] or [`REPLY_SYNC`]).
    pub fn encode(&self, sync: u8) -> Vec<u8> {
        encode_frame(sync, self.code, self.seq, &self.payload)
    }

    /// The status of a reply frame, if the code is a known status.
    pub fn status(&self) -> Option<Status> {
        Status::from_u8(self.code)
    }

    /// The opcode of a request frame, if the code is a known opcode.
    pub fn opcode(&self) -> Option<Opcode> {
        Opcode::from_u8(self.code)
    }
}

/// Encode one frame. Panics if the payload is longer than `u32::MAX`.
pub fn encode_frame(sync: u8, code: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame payload longer than u32::MAX");
    let mut out = Vec::with_capacity(FRAME_OVERHEAD + payload.len());
    out.push(sync);
    out.push(code);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc16(&out[1..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Encode a request frame (`op` may be an [`Opcode`] or any raw byte).
pub fn encode_request(op: impl Into<u8>, seq: u16, payload: &[u8]) -> Vec<u8> {
    encode_frame(REQUEST_SYNC, op.into(), seq, payload)
}

/// Encode a reply frame (`status` may be a [`Status`] or any raw byte).
pub fn encode_reply(status: impl Into<u8>, seq: u16, payload: &[u8]) -> Vec<u8> {
    encode_frame(REPLY_SYNC, status.into(), seq, payload)
}

/// Why [`decode`] wants leading bytes dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Bytes before the next sync byte.
    Garbage,
    /// A header whose `len` exceeds the decoder's `max_len`; only the sync byte
    /// is dropped, the decoder hunts again from the next byte.
    BadLength { code: u8, seq: u16, len: u32 },
    /// A complete frame whose CRC does not match; only the sync byte is
    /// dropped (the "frame" may have been a sync byte inside garbage).
    BadCrc { code: u8, seq: u16, len: u32 },
}

/// What [`decode`] found at the front of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A partial frame (or nothing): wait for more bytes.
    Incomplete,
    /// A good frame occupying the first `consumed` bytes.
    Frame { frame: Frame, consumed: usize },
    /// Drop the first `n` bytes (n ≥ 1) and decode again.
    Skip { n: usize, reason: SkipReason },
}

/// Decode the frame at the front of `buf`, which must start with `sync`
/// (anything before it is reported as [`SkipReason::Garbage`]). A header whose
/// `len` exceeds `max_len` is impossible and skipped.
pub fn decode(buf: &[u8], sync: u8, max_len: usize) -> Decoded {
    if buf.is_empty() {
        return Decoded::Incomplete;
    }
    if buf[0] != sync {
        let n = buf.iter().position(|&b| b == sync).unwrap_or(buf.len());
        return Decoded::Skip { n, reason: SkipReason::Garbage };
    }
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let code = buf[1];
    let seq = u16::from_le_bytes([buf[2], buf[3]]);
    let len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len as u64 > max_len as u64 {
        return Decoded::Skip { n: 1, reason: SkipReason::BadLength { code, seq, len } };
    }
    let total = FRAME_OVERHEAD + len as usize;
    if buf.len() < total {
        return Decoded::Incomplete;
    }
    let body_end = HEADER_LEN + len as usize;
    let want = crc16(&buf[1..body_end]);
    let got = u16::from_le_bytes([buf[body_end], buf[body_end + 1]]);
    if want != got {
        return Decoded::Skip { n: 1, reason: SkipReason::BadCrc { code, seq, len } };
    }
    Decoded::Frame {
        frame: Frame { code, seq, payload: buf[HEADER_LEN..body_end].to_vec() },
        consumed: total,
    }
}

// ---------------------------------------------------------------------------
// Typed requests

/// A typed request; [`Request::encode_payload`] produces the payload of §2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Info,
    Reset,
    /// Dense bytes at `addr`.
    WriteWeights {
        addr: u32,
        data: Vec<u8>,
    },
    /// (address, value) pairs; addresses are 24 bits on the wire (higher bits
    /// are dropped by the encoding: check against [`PATCH_ADDR_LIMIT`] first).
    PatchWeights(Vec<(u32, i8)>),
    SetFault {
        row: u8,
        col: u8,
        site: Site,
        sa0: u32,
        sa1: u32,
    },
    SetBypass {
        row: u8,
        col: u8,
        on: bool,
    },
    ClearFaults,
    /// `rate` in units of 2^-27 per MAC ([`SEU_RATE_ONE`] = every MAC).
    SetSeu {
        rate: u32,
        seed: u32,
    },
    /// `a` is M×K row-major int8; `rot` = (rot_r, rot_c). The payload header is
    /// 14 bytes, the last two reserved (sent as 0).
    Matmul {
        base: u32,
        m: u16,
        k: u16,
        n: u16,
        rot: (u8, u8),
        a: Vec<i8>,
    },
    Counters,
}

impl Request {
    /// The request's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Info => Opcode::Info,
            Request::Reset => Opcode::Reset,
            Request::WriteWeights { .. } => Opcode::WriteWeights,
            Request::PatchWeights(_) => Opcode::PatchWeights,
            Request::SetFault { .. } => Opcode::SetFault,
            Request::SetBypass { .. } => Opcode::SetBypass,
            Request::ClearFaults => Opcode::ClearFaults,
            Request::SetSeu { .. } => Opcode::SetSeu,
            Request::Matmul { .. } => Opcode::Matmul,
            Request::Counters => Opcode::Counters,
        }
    }

    /// The spec's name of the opcode (`MATMUL`, ...).
    pub fn name(&self) -> &'static str {
        self.opcode().name()
    }

    /// Whether executing the request twice leaves the device as executing it
    /// once. MATMUL is not: it advances the pass counter (which seeds the
    /// transient flips) and the counters.
    pub fn is_idempotent(&self) -> bool {
        !matches!(self, Request::Matmul { .. })
    }

    /// Length of the OK reply payload this request expects.
    pub fn reply_len(&self) -> usize {
        match self {
            Request::Info => INFO_LEN,
            Request::Counters => COUNTERS_LEN,
            Request::Matmul { m, n, .. } => *m as usize * *n as usize * 4,
            _ => 0,
        }
    }

    /// The request payload (docs/protocol.md §2).
    pub fn encode_payload(&self) -> Vec<u8> {
        match self {
            Request::Info | Request::Reset | Request::ClearFaults | Request::Counters => Vec::new(),
            Request::WriteWeights { addr, data } => {
                let mut p = Vec::with_capacity(4 + data.len());
                p.extend_from_slice(&addr.to_le_bytes());
                p.extend_from_slice(data);
                p
            }
            Request::PatchWeights(entries) => {
                let mut p = Vec::with_capacity(PATCH_ENTRY_LEN * entries.len());
                for &(addr, v) in entries {
                    p.extend_from_slice(&addr.to_le_bytes()[..3]);
                    p.push(v as u8);
                }
                p
            }
            Request::SetFault { row, col, site, sa0, sa1 } => {
                let mut p = Vec::with_capacity(SET_FAULT_LEN);
                p.extend_from_slice(&[*row, *col, site.code()]);
                p.extend_from_slice(&sa0.to_le_bytes());
                p.extend_from_slice(&sa1.to_le_bytes());
                p
            }
            Request::SetBypass { row, col, on } => vec![*row, *col, *on as u8],
            Request::SetSeu { rate, seed } => {
                let mut p = Vec::with_capacity(8);
                p.extend_from_slice(&rate.to_le_bytes());
                p.extend_from_slice(&seed.to_le_bytes());
                p
            }
            Request::Matmul { base, m, k, n, rot, a } => {
                let mut p = Vec::with_capacity(MATMUL_HEADER_LEN + a.len());
                p.extend_from_slice(&base.to_le_bytes());
                p.extend_from_slice(&m.to_le_bytes());
                p.extend_from_slice(&k.to_le_bytes());
                p.extend_from_slice(&n.to_le_bytes());
                p.push(rot.0);
                p.push(rot.1);
                // Bytes 12..14: reserved, zero (the spec's header is 14 bytes).
                p.extend_from_slice(&[0, 0]);
                p.extend(a.iter().map(|&v| v as u8));
                p
            }
        }
    }

    /// The whole request frame with sequence number `seq`.
    pub fn encode(&self, seq: u16) -> Vec<u8> {
        encode_request(self.opcode(), seq, &self.encode_payload())
    }
}

// ---------------------------------------------------------------------------
// Reply parsers

/// The INFO reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub proto: u8,
    pub rtl: u8,
    pub rows: usize,
    pub cols: usize,
    pub wmem_bytes: usize,
    pub buf_bytes: usize,
    pub acc_words: usize,
    pub features: u32,
}

fn u32_at(p: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]])
}

fn u64_at(p: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[i..i + 8]);
    u64::from_le_bytes(b)
}

impl Info {
    /// What `dla_sim_top` of a `rows`x`cols` array reports (rtl/dla_sim_top.sv:
    /// 1 MiB weights, 256 KiB buffer, 128 Ki accumulators, stuck-at, bypass,
    /// SEU and rotation). The golden model of that size is configured with it,
    /// so the two answer INFO byte for byte.
    pub fn sim(rows: usize, cols: usize) -> Info {
        Info {
            proto: PROTO_VERSION,
            rtl: RTL_VERSION,
            rows,
            cols,
            wmem_bytes: 1 << 20,
            buf_bytes: 1 << 18,
            acc_words: 1 << 17,
            features: FEATURE_STUCK_AT | FEATURE_BYPASS | FEATURE_SEU | FEATURE_ROTATION,
        }
    }

    /// The core configuration of the iCE40 bitstream (`rtl/ice40/dla_ice40_top.sv`,
    /// `scripts/fpga/ice40.sh`): 2x2, weights in the four SPRAMs, buffers in
    /// EBR, no SEU feature.
    pub fn ice40() -> Info {
        Info {
            rows: 2,
            cols: 2,
            wmem_bytes: 1 << 17,
            buf_bytes: 1 << 10,
            acc_words: 1 << 10,
            features: FEATURE_STUCK_AT | FEATURE_BYPASS | FEATURE_ROTATION,
            ..Info::sim(2, 2)
        }
    }

    /// The core configuration of the ECP5 bitstream (`rtl/ecp5/dla_ecp5_top.sv`,
    /// `scripts/fpga/ecp5.sh`, ULX3S 85F): 8x8 with the full fault model
    /// (SEU included), 256 KiB weights (the default MLP fits), 16 KiB payload
    /// buffer and 16 Ki accumulator words in EBR.
    pub fn ecp5() -> Info {
        Info {
            rows: 8,
            cols: 8,
            wmem_bytes: 1 << 18,
            buf_bytes: 1 << 14,
            acc_words: 1 << 14,
            ..Info::sim(8, 8)
        }
    }

    /// Parse the 20-byte INFO payload.
    pub fn parse(p: &[u8]) -> Result<Info, ProtoError> {
        if p.len() != INFO_LEN {
            return Err(ProtoError::ReplyLength { what: "INFO", expected: INFO_LEN, got: p.len() });
        }
        Ok(Info {
            proto: p[0],
            rtl: p[1],
            rows: p[2] as usize,
            cols: p[3] as usize,
            wmem_bytes: u32_at(p, 4) as usize,
            buf_bytes: u32_at(p, 8) as usize,
            acc_words: u32_at(p, 12) as usize,
            features: u32_at(p, 16),
        })
    }

    /// The 20-byte payload (values are truncated to their wire widths).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(INFO_LEN);
        p.extend_from_slice(&[self.proto, self.rtl, self.rows as u8, self.cols as u8]);
        p.extend_from_slice(&(self.wmem_bytes as u32).to_le_bytes());
        p.extend_from_slice(&(self.buf_bytes as u32).to_le_bytes());
        p.extend_from_slice(&(self.acc_words as u32).to_le_bytes());
        p.extend_from_slice(&self.features.to_le_bytes());
        p
    }

    /// The names of the features this device reports ([`FEATURES`]).
    pub fn feature_names(&self) -> Vec<&'static str> {
        FEATURES.iter().filter(|(bit, _)| self.features & bit != 0).map(|(_, n)| *n).collect()
    }

    /// Whether all of the `FEATURE_*` bits in `bits` are set.
    pub fn has(&self, bits: u32) -> bool {
        self.features & bits == bits
    }

    /// Largest reply payload this device can send (a MATMUL of `acc_words` results).
    pub fn max_reply_len(&self) -> usize {
        (self.acc_words * 4).max(COUNTERS_LEN).max(INFO_LEN)
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{} array, proto {}, rtl {}, wmem {} B, buf {} B, acc {} words, features {:#07b}",
            self.rows,
            self.cols,
            self.proto,
            self.rtl,
            self.wmem_bytes,
            self.buf_bytes,
            self.acc_words,
            self.features
        )
    }
}

/// The COUNTERS reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub cycles: u64,
    pub macs: u64,
    pub flips: u64,
}

impl Counters {
    /// Parse the 24-byte COUNTERS payload.
    pub fn parse(p: &[u8]) -> Result<Counters, ProtoError> {
        if p.len() != COUNTERS_LEN {
            return Err(ProtoError::ReplyLength {
                what: "COUNTERS",
                expected: COUNTERS_LEN,
                got: p.len(),
            });
        }
        Ok(Counters { cycles: u64_at(p, 0), macs: u64_at(p, 8), flips: u64_at(p, 16) })
    }

    /// The 24-byte payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(COUNTERS_LEN);
        p.extend_from_slice(&self.cycles.to_le_bytes());
        p.extend_from_slice(&self.macs.to_le_bytes());
        p.extend_from_slice(&self.flips.to_le_bytes());
        p
    }

    /// Counter increments from `earlier` to `self` (wrapping).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            cycles: self.cycles.wrapping_sub(earlier.cycles),
            macs: self.macs.wrapping_sub(earlier.macs),
            flips: self.flips.wrapping_sub(earlier.flips),
        }
    }
}

/// (useful MACs, reply payload bytes) a request frame implies, for sizing a
/// timeout: from the MATMUL header when there is one, else the largest fixed
/// reply (INFO, COUNTERS).
pub fn request_work(code: u8, payload: &[u8]) -> (u64, usize) {
    if code == Opcode::Matmul as u8 && payload.len() >= MATMUL_HEADER_LEN {
        let dim = |i: usize| u16::from_le_bytes([payload[i], payload[i + 1]]) as u64;
        let (m, k, n) = (dim(4), dim(6), dim(8));
        (m * k * n, (m * n * 4) as usize)
    } else {
        (0, COUNTERS_LEN.max(INFO_LEN))
    }
}

/// Parse a MATMUL reply of `m`×`n` little-endian int32 results.
pub fn parse_matmul(p: &[u8], m: usize, n: usize) -> Result<Vec<i32>, ProtoError> {
    let expected = m * n * 4;
    if p.len() != expected {
        return Err(ProtoError::ReplyLength { what: "MATMUL", expected, got: p.len() });
    }
    Ok(p.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
        assert_eq!(crc16(b""), 0xFFFF);
        // Incremental = one-shot.
        let c = crc16_update(crc16_update(CRC_INIT, b"1234"), b"56789");
        assert_eq!(c, 0x29B1);
    }

    /// Bit-at-a-time definition, to hold the sliced tables to.
    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc = CRC_INIT;
        for &b in data {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
        }
        crc
    }

    #[test]
    fn sliced_crc_equals_bitwise_at_every_length_and_split() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc16(&data[..len]), crc16_bitwise(&data[..len]), "len {len}");
        }
        for split in 0..40 {
            let c = crc16_update(crc16_update(CRC_INIT, &data[..split]), &data[split..]);
            assert_eq!(c, crc16_bitwise(&data), "split {split}");
        }
    }
}
