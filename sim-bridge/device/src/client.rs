//! The device client: typed requests over any [`Link`], with sequence numbers,
//! timeouts, retries and errors that name the device, the request and the cause.
//!
//! ```text
//! Device::open("model:8x8")?.matmul(base, m, k, n, (0, 0), &a)?
//! ```
//!
//! * Every request gets the next sequence number; a reply whose seq does not
//!   match (a late reply to an earlier, timed-out attempt) is dropped.
//! * A request is retried (up to [`ClientOptions::retries`] times, with a new
//!   seq) when the device answers `BAD_CRC` or `BAD_LENGTH` (nothing was
//!   executed; the client only sends well-formed frames), when no
//!   reply comes within the timeout, or when the reply arrives garbled (its CRC
//!   fails). A MATMUL whose reply was lost may have executed, so retrying it
//!   advances the pass counter and the counters a second time; set
//!   [`ClientOptions::retry_non_idempotent`] to `false` to fail instead.
//! * The timeout of one attempt is [`ClientOptions::timeout_base`] plus a term
//!   per MAC and per byte moved, so large MATMULs on slow backends get time.
//! * Large writes, patches and MATMULs are split into frames that fit the
//!   device's `buf_bytes` and `acc_words` (from INFO, fetched once and cached).
//!   Splitting a MATMUL changes nothing in its results except where transient
//!   flips fall (the flip hash depends on the pass number and the row index
//!   within a frame) and the cycle counter (which counts per frame).

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use faultloop_proto::faultmap::{FaultMap, FaultMapError};
use faultloop_proto::layout::{LayoutError, MatrixLayout};
use faultloop_proto::{
    self as proto, encode_request, Counters, Frame, Info, Link, Opcode, ProtoError, Request, Site,
    Status, FRAME_OVERHEAD, MATMUL_HEADER_LEN, PATCH_ADDR_LIMIT, PATCH_ENTRY_LEN,
};

use crate::open::{self, DeviceSpec, LinkError, OpenOptions};
use crate::reply::{ReplyWaiter, Wait};

/// Largest reply accepted before INFO is known.
const DEFAULT_MAX_REPLY: usize = 1 << 24;

/// Retry and timeout policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Extra attempts after the first (default 3).
    pub retries: u32,
    /// Fixed part of each attempt's timeout (default 5 s).
    pub timeout_base: Duration,
    /// Added per useful MAC of a MATMUL frame (default 200 ns, i.e. a backend
    /// doing 5 M MAC/s still finishes).
    pub timeout_per_mac: Duration,
    /// Added per byte of request and reply (default 100 µs ≈ 100 kbaud 8N1).
    pub timeout_per_byte: Duration,
    /// Retry a MATMUL after a timeout or a garbled reply even though it may
    /// have executed (default true). `BAD_CRC` is always retried.
    pub retry_non_idempotent: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retries: 3,
            timeout_base: Duration::from_secs(5),
            timeout_per_mac: Duration::from_nanos(200),
            timeout_per_byte: Duration::from_micros(100),
            retry_non_idempotent: true,
        }
    }
}

impl ClientOptions {
    /// Timeout of one attempt moving `bytes` bytes (both directions) and doing
    /// `macs` MACs (capped at one day).
    pub fn timeout_for(&self, bytes: usize, macs: u64) -> Duration {
        let extra = self.timeout_per_mac.as_nanos().saturating_mul(macs as u128)
            + self.timeout_per_byte.as_nanos().saturating_mul(bytes as u128);
        let cap = 86_400_000_000_000u128;
        self.timeout_base.saturating_add(Duration::from_nanos(extra.min(cap) as u64))
    }
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The link failed.
    #[error("link error: {0}")]
    Io(#[source] io::Error),
    /// The device answered with a non-OK status.
    #[error("device answered {} (status {code})", Status::name_of(*code))]
    Status { code: u8 },
    /// No (matching, intact) reply within the timeout.
    #[error("no reply within {timeout:.1?}")]
    Timeout { timeout: Duration },
    /// The reply arrived but its CRC failed.
    #[error("reply garbled (CRC mismatch)")]
    Garbled,
    /// A reply with this request's seq claimed a payload longer than the
    /// request can have; it was skipped and nothing else came.
    #[error("reply claims {len} payload bytes (status {code}), at most {max} expected")]
    Oversized { code: u8, len: u32, max: usize },
    /// An intact OK reply with the wrong payload.
    #[error("malformed reply: {0}")]
    Reply(#[source] ProtoError),
    /// The device speaks another protocol version or reports impossible sizes.
    #[error("incompatible device: {0}")]
    Incompatible(String),
    /// The call's arguments cannot be sent (checked before anything is sent).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Opening the link failed.
    #[error("{0}")]
    Open(#[source] Box<LinkError>),
}

/// A failed request: the device, the request (name and seq) and the cause.
#[derive(Debug)]
pub struct DeviceError {
    /// Link name (`model:8x8`, `sim:16x16`, ...) or the device string for `open`.
    pub device: String,
    /// Request name (`MATMUL`, ...), or `open`.
    pub request: &'static str,
    /// Sequence number of the last attempt, if one was sent.
    pub seq: Option<u16>,
    /// Attempts made (0 when nothing was sent).
    pub attempts: u32,
    pub cause: Cause,
}

impl DeviceError {
    /// The status the device answered, if that was the cause.
    pub fn status(&self) -> Option<u8> {
        match self.cause {
            Cause::Status { code } => Some(code),
            _ => None,
        }
    }

    /// Whether the device answered this status.
    pub fn is_status(&self, s: Status) -> bool {
        self.status() == Some(s as u8)
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Cause::Open(e) = &self.cause {
            return write!(f, "cannot open device: {e}");
        }
        write!(f, "{}: {}", self.device, self.request)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.cause)?;
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for DeviceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// Link-level statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Frames sent (attempts).
    pub frames_sent: u64,
    /// Attempts repeated after BAD_CRC, a timeout or a garbled reply.
    pub retries: u64,
    /// Intact replies dropped because their seq did not match.
    pub stale_replies: u64,
    /// Received bytes dropped while resyncing.
    pub skipped_bytes: u64,
}

/// Loading a fault map into a device failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The map is invalid or for another array size (nothing was sent).
    #[error(transparent)]
    Map(#[from] FaultMapError),
    /// A request failed on the way.
    #[error("fault map {file}: {source}")]
    Device {
        file: String,
        #[source]
        source: DeviceError,
    },
}

/// A DLA behind a link.
pub struct Device {
    link: Box<dyn Link>,
    opts: ClientOptions,
    seq: u16,
    replies: ReplyWaiter,
    info: Option<Info>,
    bytes_sent: u64,
    stats: ClientStats,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device").field("link", &self.link.name()).field("info", &self.info).finish()
    }
}

/// Rows of activations [`Device::matmul`] puts in one MATMUL frame for a
/// K×N product on a device with `info`: as many as fit its receive buffer
/// (14 + rows·K bytes) and its accumulators (rows·N words); 0 if one row
/// does not fit.
pub fn matmul_rows_per_frame(info: &Info, k: usize, n: usize) -> usize {
    let by_buf = info.buf_bytes.saturating_sub(MATMUL_HEADER_LEN) / k.max(1);
    let by_acc = info.acc_words / n.max(1);
    by_buf.min(by_acc).min(u16::MAX as usize)
}

/// Time for one 8N1 byte (10 bits) at `baud`, with 50 % margin: a slow
/// port's large replies must not time out (the default per-byte allowance
/// assumes about 100 kbaud).
fn byte_time(baud: u32) -> Duration {
    Duration::from_nanos(15_000_000_000 / baud.max(1) as u64)
}

impl Device {
    /// Parse a device string (`sim`, `model:8x8`, ...) and open it with
    /// default [`OpenOptions`].
    pub fn open(spec: &str) -> Result<Device, DeviceError> {
        let parsed: DeviceSpec = spec.parse().map_err(|e| open_error(spec, e))?;
        Device::open_spec(&parsed)
    }

    /// Open a parsed device string with default [`OpenOptions`].
    pub fn open_spec(spec: &DeviceSpec) -> Result<Device, DeviceError> {
        Device::open_with(spec, &OpenOptions::default())
    }

    /// Open a parsed device string with explicit options (a bridge token
    /// file, serial settings, ...).
    pub fn open_with(spec: &DeviceSpec, opts: &OpenOptions) -> Result<Device, DeviceError> {
        let link = open::open_with(spec, opts).map_err(|e| open_error(&spec.to_string(), e))?;
        let mut client = ClientOptions::default();
        if let DeviceSpec::Serial { baud, .. } = spec {
            client.timeout_per_byte = client.timeout_per_byte.max(byte_time(*baud));
        }
        Ok(Device::with_options(link, client))
    }

    /// A client over an open link, with default options.
    pub fn new(link: Box<dyn Link>) -> Device {
        Device::with_options(link, ClientOptions::default())
    }

    /// A client over an open link.
    pub fn with_options(link: Box<dyn Link>, opts: ClientOptions) -> Device {
        Device {
            link,
            opts,
            seq: 0,
            replies: ReplyWaiter::default(),
            info: None,
            bytes_sent: 0,
            stats: ClientStats::default(),
        }
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        self.link.name()
    }

    /// Current options.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Replace the options.
    pub fn set_options(&mut self, opts: ClientOptions) {
        self.opts = opts;
    }

    /// Bytes written to the link so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes read from the link so far.
    pub fn bytes_received(&self) -> u64 {
        self.replies.stats.bytes_received
    }

    /// Retry and resync statistics.
    pub fn stats(&self) -> ClientStats {
        let w = self.replies.stats;
        ClientStats { stale_replies: w.stale_replies, skipped_bytes: w.skipped_bytes, ..self.stats }
    }

    /// The link itself (e.g. for raw byte tests).
    pub fn link_mut(&mut self) -> &mut dyn Link {
        &mut *self.link
    }

    /// Give the link back.
    pub fn into_link(self) -> Box<dyn Link> {
        self.link
    }

    fn err(
        &self,
        request: &'static str,
        seq: Option<u16>,
        attempts: u32,
        cause: Cause,
    ) -> DeviceError {
        DeviceError { device: self.link.name().to_string(), request, seq, attempts, cause }
    }

    fn invalid(&self, request: Opcode, msg: String) -> DeviceError {
        self.err(request.name(), None, 0, Cause::Invalid(msg))
    }

    fn max_reply_len(&self) -> usize {
        self.info.as_ref().map_or(DEFAULT_MAX_REPLY, Info::max_reply_len)
    }

    /// Send one request frame (raw opcode and payload) and return the reply
    /// frame whatever its status, after the retry policy: `BAD_CRC`,
    /// `BAD_LENGTH`, timeouts and garbled replies are retried; other statuses are returned as is.
    /// `max_reply` bounds the reply payload length the decoder accepts;
    /// `work` = (MACs, expected reply bytes) sizes the timeout.
    fn exchange(
        &mut self,
        op: u8,
        payload: &[u8],
        work: (u64, usize),
        idempotent: bool,
        max_reply: usize,
    ) -> Result<(Frame, u32), DeviceError> {
        let name = Opcode::name_of(op);
        let timeout = self.opts.timeout_for(payload.len() + work.1 + 2 * FRAME_OVERHEAD, work.0);
        let may_repeat = idempotent || self.opts.retry_non_idempotent;
        let max_attempts = self.opts.retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            let frame = encode_request(op, seq, payload);
            if let Err(e) = self.link.send(&frame) {
                return Err(self.err(name, Some(seq), attempt, Cause::Io(e)));
            }
            self.bytes_sent += frame.len() as u64;
            self.stats.frames_sent += 1;
            let cause = match self.await_reply(seq, timeout, max_reply) {
                // Nothing executes on BAD_CRC or BAD_LENGTH. The client only
                // builds well-formed frames, so a BAD_LENGTH means the length
                // field was corrupted on the way (the commonest failure on a
                // noisy serial line): retrying is safe.
                Ok(f) if f.code == Status::BadCrc as u8 || f.code == Status::BadLength as u8 => {
                    if attempt < max_attempts {
                        log::warn!(
                            "{}: {name} (seq {seq}): device answered {}, retrying",
                            self.name(),
                            Status::name_of(f.code)
                        );
                        self.stats.retries += 1;
                        continue;
                    }
                    return Ok((f, attempt));
                }
                Ok(f) => return Ok((f, attempt)),
                Err(Wait::Io(e)) => return Err(self.err(name, Some(seq), attempt, Cause::Io(e))),
                Err(Wait::Timeout) => Cause::Timeout { timeout },
                Err(Wait::Oversized { code, len }) => {
                    Cause::Oversized { code, len, max: max_reply }
                }
                Err(Wait::Garbled { .. }) => Cause::Garbled,
            };
            if attempt >= max_attempts || !may_repeat {
                return Err(self.err(name, Some(seq), attempt, cause));
            }
            log::warn!("{}: {name} (seq {seq}): {cause}, retrying", self.name());
            self.stats.retries += 1;
        }
    }

    fn await_reply(
        &mut self,
        seq: u16,
        timeout: Duration,
        max_reply: usize,
    ) -> Result<Frame, Wait> {
        let deadline = Instant::now() + timeout;
        self.replies.wait(&mut *self.link, seq, deadline, max_reply)
    }

    /// Send a raw request (any opcode byte, any payload) and return the reply
    /// frame whatever its status. Retries as for typed requests. For protocol
    /// tests and differential runs.
    pub fn request_raw(&mut self, op: u8, payload: &[u8]) -> Result<Frame, DeviceError> {
        let max = self.max_reply_len();
        let is_matmul = op == Opcode::Matmul as u8;
        // Size the timeout from the MATMUL header when there is one.
        let work = proto::request_work(op, payload);
        self.exchange(op, payload, work, !is_matmul, max).map(|(f, _)| f)
    }

    /// Send a typed request; returns the OK reply payload (length checked).
    pub fn request(&mut self, req: &Request) -> Result<Vec<u8>, DeviceError> {
        let macs = match req {
            Request::Matmul { m, k, n, .. } => *m as u64 * *k as u64 * *n as u64,
            _ => 0,
        };
        let expect = req.reply_len();
        let (f, attempts) = self.exchange(
            req.opcode().code(),
            &req.encode_payload(),
            (macs, expect),
            req.is_idempotent(),
            expect,
        )?;
        if f.code != Status::Ok as u8 {
            let cause = Cause::Status { code: f.code };
            return Err(self.err(req.name(), Some(f.seq), attempts, cause));
        }
        if f.payload.len() != expect {
            let e = ProtoError::ReplyLength {
                what: req.name(),
                expected: expect,
                got: f.payload.len(),
            };
            return Err(self.err(req.name(), Some(f.seq), attempts, Cause::Reply(e)));
        }
        Ok(f.payload)
    }

    /// INFO, fetched once and cached. Checks the protocol version.
    pub fn info(&mut self) -> Result<Info, DeviceError> {
        if let Some(i) = &self.info {
            return Ok(i.clone());
        }
        self.refresh_info()
    }

    /// INFO from the device, replacing the cached copy.
    pub fn refresh_info(&mut self) -> Result<Info, DeviceError> {
        let p = self.request(&Request::Info)?;
        let seq = Some(self.seq);
        let info = Info::parse(&p).map_err(|e| self.err("INFO", seq, 1, Cause::Reply(e)))?;
        let problem = if info.proto != proto::PROTO_VERSION {
            Some(format!(
                "device speaks protocol {}, this host speaks {}",
                info.proto,
                proto::PROTO_VERSION
            ))
        } else if info.rows == 0 || info.cols == 0 {
            Some(format!("device reports a {}x{} array", info.rows, info.cols))
        } else if info.buf_bytes <= MATMUL_HEADER_LEN {
            Some(format!("device reports buf_bytes {}", info.buf_bytes))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(self.err("INFO", seq, 1, Cause::Incompatible(p)));
        }
        self.info = Some(info.clone());
        Ok(info)
    }

    /// RESET: clears faults, bypass, SEU, the pass counter and the counters
    /// (not the weight memory).
    pub fn reset(&mut self) -> Result<(), DeviceError> {
        self.request(&Request::Reset).map(drop)
    }

    /// WRITE_WEIGHTS, split into frames that fit the device buffer.
    pub fn write_weights(&mut self, addr: u32, data: &[u8]) -> Result<(), DeviceError> {
        let info = self.info()?;
        let chunk = info.buf_bytes - 4;
        if addr as u64 + data.len() as u64 > u32::MAX as u64 + 1 {
            let msg =
                format!("{} bytes at {addr:#x} run past the 32-bit address space", data.len());
            return Err(self.invalid(Opcode::WriteWeights, msg));
        }
        for (i, part) in data.chunks(chunk).enumerate() {
            let a = addr + (i * chunk) as u32;
            self.request(&Request::WriteWeights { addr: a, data: part.to_vec() })?;
        }
        Ok(())
    }

    /// PATCH_WEIGHTS, split into frames that fit the device buffer. Entries
    /// apply in order (a later entry for the same address wins).
    pub fn patch_weights(&mut self, entries: &[(u32, i8)]) -> Result<(), DeviceError> {
        if let Some(&(a, _)) = entries.iter().find(|(a, _)| *a >= PATCH_ADDR_LIMIT) {
            let msg = format!("patch address {a:#x} does not fit the 24-bit PATCH_WEIGHTS field");
            return Err(self.invalid(Opcode::PatchWeights, msg));
        }
        let info = self.info()?;
        let per_frame = info.buf_bytes / PATCH_ENTRY_LEN;
        for part in entries.chunks(per_frame) {
            self.request(&Request::PatchWeights(part.to_vec()))?;
        }
        Ok(())
    }

    fn pe(&self, op: Opcode, row: usize, col: usize) -> Result<(u8, u8), DeviceError> {
        match (u8::try_from(row), u8::try_from(col)) {
            (Ok(r), Ok(c)) => Ok((r, c)),
            _ => Err(self
                .invalid(op, format!("PE ({row}, {col}) does not fit the 8-bit row/col fields"))),
        }
    }

    /// SET_FAULT: replace the stuck-at masks of one PE site.
    pub fn set_fault(
        &mut self,
        row: usize,
        col: usize,
        site: Site,
        sa0: u32,
        sa1: u32,
    ) -> Result<(), DeviceError> {
        let (row, col) = self.pe(Opcode::SetFault, row, col)?;
        self.request(&Request::SetFault { row, col, site, sa0, sa1 }).map(drop)
    }

    /// SET_BYPASS of one PE.
    pub fn set_bypass(&mut self, row: usize, col: usize, on: bool) -> Result<(), DeviceError> {
        let (row, col) = self.pe(Opcode::SetBypass, row, col)?;
        self.request(&Request::SetBypass { row, col, on }).map(drop)
    }

    /// CLEAR_FAULTS: all masks and bypass bits (SEU unchanged).
    pub fn clear_faults(&mut self) -> Result<(), DeviceError> {
        self.request(&Request::ClearFaults).map(drop)
    }

    /// SET_SEU: `rate` in units of 2^-27 flips per MAC, and the hash seed.
    pub fn set_seu(&mut self, rate: u32, seed: u32) -> Result<(), DeviceError> {
        self.request(&Request::SetSeu { rate, seed }).map(drop)
    }

    /// COUNTERS (cycles, MACs, flips); reading does not clear them.
    pub fn counters(&mut self) -> Result<Counters, DeviceError> {
        let p = self.request(&Request::Counters)?;
        let seq = Some(self.seq);
        Counters::parse(&p).map_err(|e| self.err("COUNTERS", seq, 1, Cause::Reply(e)))
    }

    /// MATMUL: `y = a · W` with `a` M×K row-major int8 and W the K×N matrix at
    /// `base`; returns M×N int32 row-major. M is split into frames that fit
    /// `buf_bytes` (14 + mc·K) and `acc_words` (mc·N); fails if one row does not fit.
    pub fn matmul(
        &mut self,
        base: u32,
        m: usize,
        k: usize,
        n: usize,
        rot: (u8, u8),
        a: &[i8],
    ) -> Result<Vec<i32>, DeviceError> {
        let op = Opcode::Matmul;
        if a.len() != m * k {
            return Err(self.invalid(
                op,
                format!("activations have {} elements, M*K = {m}*{k} = {}", a.len(), m * k),
            ));
        }
        let (k16, n16) = match (u16::try_from(k), u16::try_from(n)) {
            (Ok(k), Ok(n)) => (k, n),
            _ => {
                return Err(
                    self.invalid(op, format!("K={k} or N={n} does not fit the 16-bit field"))
                )
            }
        };
        let info = self.info()?;
        if m == 0 || k == 0 || n == 0 {
            // Let the device judge (it answers OUT_OF_RANGE) so every backend agrees.
            let m16 = u16::try_from(m).unwrap_or(u16::MAX);
            let req = Request::Matmul { base, m: m16, k: k16, n: n16, rot, a: a.to_vec() };
            self.request(&req)?;
            return Ok(Vec::new());
        }
        let mc_max = matmul_rows_per_frame(&info, k, n);
        if mc_max == 0 {
            return Err(self.invalid(
                op,
                format!(
                    "one row does not fit the device: K={k} needs {} of {} buffer bytes, \
                     N={n} needs {n} of {} accumulator words",
                    MATMUL_HEADER_LEN + k,
                    info.buf_bytes,
                    info.acc_words
                ),
            ));
        }
        let mut out = Vec::with_capacity(m * n);
        let mut row = 0;
        while row < m {
            let mc = mc_max.min(m - row);
            let req = Request::Matmul {
                base,
                m: mc as u16,
                k: k16,
                n: n16,
                rot,
                a: a[row * k..(row + mc) * k].to_vec(),
            };
            let p = self.request(&req)?;
            let seq = Some(self.seq);
            let y = proto::parse_matmul(&p, mc, n)
                .map_err(|e| self.err("MATMUL", seq, 1, Cause::Reply(e)))?;
            out.extend_from_slice(&y);
            row += mc;
        }
        Ok(out)
    }

    /// Pack a K×N row-major matrix into the device layout (docs/protocol.md §3)
    /// and write it at `base` (a multiple of cols). Returns its layout.
    pub fn load_matrix(
        &mut self,
        base: u32,
        k: usize,
        n: usize,
        w: &[i8],
    ) -> Result<MatrixLayout, DeviceError> {
        let info = self.info()?;
        let op = Opcode::WriteWeights;
        if base as usize % info.cols != 0 {
            return Err(self.invalid(
                op,
                format!("matrix base {base:#x} is not a multiple of cols = {}", info.cols),
            ));
        }
        let layout = MatrixLayout::new(base as usize, k, n, info.rows, info.cols)
            .map_err(|e: LayoutError| self.invalid(op, e.to_string()))?;
        self.load_layout(&layout, w)?;
        Ok(layout)
    }

    /// Pack `w` with `layout` and write it at `layout.base`.
    pub fn load_layout(&mut self, layout: &MatrixLayout, w: &[i8]) -> Result<(), DeviceError> {
        let packed =
            layout.pack(w).map_err(|e| self.invalid(Opcode::WriteWeights, e.to_string()))?;
        let base = u32::try_from(layout.base).map_err(|_| {
            self.invalid(Opcode::WriteWeights, format!("base {:#x} beyond 32 bits", layout.base))
        })?;
        self.write_weights(base, &packed)
    }

    /// Make the device's fault state exactly `map`: CLEAR_FAULTS, then one
    /// SET_FAULT per entry, SET_BYPASS per bypassed PE, and SET_SEU (rate
    /// `round(p * 2^27)`, or 0 when the map has no `seu`). Fails before
    /// sending anything but INFO if the map is invalid or for another array size.
    pub fn apply_fault_map(&mut self, map: &FaultMap) -> Result<(), ApplyError> {
        map.validate()?;
        let file = map.file();
        let wrap = |e: DeviceError| ApplyError::Device { file: file.clone(), source: e };
        let info = self.info().map_err(wrap)?;
        map.check_for(self.name(), info.rows, info.cols)?;
        self.clear_faults().map_err(wrap)?;
        for f in &map.faults {
            self.set_fault(f.row, f.col, f.site, f.stuck_at_0 as u32, f.stuck_at_1 as u32)
                .map_err(wrap)?;
        }
        for &[r, c] in &map.bypass {
            self.set_bypass(r, c, true).map_err(wrap)?;
        }
        let (rate, seed) = map.seu_registers();
        self.set_seu(rate, seed).map_err(wrap)?;
        Ok(())
    }
}

fn open_error(spec: &str, e: LinkError) -> DeviceError {
    DeviceError {
        device: spec.to_string(),
        request: "open",
        seq: None,
        attempts: 0,
        cause: Cause::Open(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_grows_with_size() {
        let o = ClientOptions::default();
        assert_eq!(o.timeout_for(0, 0), Duration::from_secs(5));
        assert!(o.timeout_for(0, 1 << 30) > Duration::from_secs(200));
        assert!(o.timeout_for(1 << 18, 0) > Duration::from_secs(25));
        // No overflow panics at the extremes.
        let _ = o.timeout_for(usize::MAX, u64::MAX);
    }

    #[test]
    fn slow_serial_ports_get_longer_timeouts() {
        // 9600 baud: 1.56 ms a byte, so 8 KiB take 12.8 s on the wire.
        assert_eq!(byte_time(9600), Duration::from_nanos(1_562_500));
        assert_eq!(byte_time(115_200), Duration::from_nanos(130_208));
        assert!(byte_time(1_000_000) < ClientOptions::default().timeout_per_byte);
    }

    #[test]
    fn open_errors_name_the_string() {
        let e = Device::open("fpga:1").unwrap_err().to_string();
        assert!(e.contains("'fpga:1'"), "{e}");
        let e = Device::open("tcp://h:5").unwrap_err().to_string();
        assert!(e.contains("tcp://h:5"), "{e}");
    }
}
