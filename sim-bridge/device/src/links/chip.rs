//! A chip with hidden defects around any in-process device ([`ChipLink`]).
//!
//! A fabricated chip has defects the host cannot see or clear: the virtual
//! board writes them through its RTL defect port (docs/boards.md). For tests,
//! benchmarks and fleets, [`ChipLink`] makes any `sim` or `model` device such
//! a chip, at the frame level, with the board's semantics:
//!
//! * **Stuck-at defects** survive CLEAR_FAULTS and RESET: the masks in effect
//!   at a PE site are the injected ones OR-ed with the hidden ones
//!   (`sa0 = sa0_inj | sa0_hid`, `sa1 = sa1_inj | sa1_hid`, stuck-at-0 wins
//!   where both are set, as `mask(v) = (v | sa1) & ~sa0` gives on the board).
//!   The link rewrites every valid SET_FAULT to the merged masks and re-sends
//!   the hidden masks after every CLEAR_FAULTS and RESET; a SET_FAULT the
//!   device would refuse (OUT_OF_RANGE) is forwarded unchanged, so it is
//!   still refused.
//! * **Soft errors** (optional): a flip rate the host cannot switch off. A
//!   SET_SEU `(rate, seed)` becomes `(min(rate + hidden, 2^27), seed)`, and
//!   the hidden rate is restored after RESET, so SET_SEU 0 leaves the chip's
//!   own soft errors in place — as on a real chip.
//!
//! Everything else passes unchanged, and INFO is the wrapped device's. The
//! link applies the device's receiver rules itself (as the TCP bridge does,
//! docs/protocol.md §6): garbage before a sync byte is dropped, BAD_LENGTH and
//! BAD_CRC are answered here, and only complete, CRC-valid request frames
//! reach the device. Its one difference from the device: a partial frame is
//! never dropped on idle (there is no clock to time it); the in-process
//! devices it wraps are fed whole frames by the client anyway.
//!
//! Device strings: `sim:RxC+defects=PATH`, `model:RxC+defects=PATH`, with an
//! optional `+seu=RATE[@SEED]` (see [`crate::open`]).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use faultloop_proto::faultmap::FaultMap;
use faultloop_proto::receiver::{GateEvent, RequestGate};
use faultloop_proto::{
    decode, encode_reply, encode_request, Decoded, Link, Opcode, Site, SkipReason, Status,
    FRAME_OVERHEAD, REPLY_SYNC, SEU_RATE_ONE,
};

/// What the chip hides from the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HiddenDefects {
    /// Stuck-at masks per (row, col, site code): `(sa0, sa1)`.
    stuck: BTreeMap<(u8, u8, u8), (u32, u32)>,
    rows: usize,
    cols: usize,
    /// Soft errors the host cannot switch off: `(rate register, seed)`.
    seu: Option<(u32, u32)>,
}

/// A hidden-defect map that cannot describe a chip.
#[derive(Debug, thiserror::Error)]
pub enum ChipError {
    /// The map holds host settings, not defects.
    #[error("hidden defects {file}: {problem}")]
    NotDefects { file: String, problem: String },
    /// The map does not parse or is invalid.
    #[error(transparent)]
    Map(#[from] faultloop_proto::faultmap::FaultMapError),
    /// The map is for another array size.
    #[error(
        "hidden defects {file} are for a {map_rows}x{map_cols} array, the device is {rows}x{cols}"
    )]
    Size { file: String, map_rows: usize, map_cols: usize, rows: usize, cols: usize },
    /// A soft-error rate outside [0, 1].
    #[error("hidden soft-error rate {0} is outside [0, 1]")]
    SeuRate(f64),
}

impl HiddenDefects {
    /// Defects of a `rows`x`cols` chip from a fault map's stuck-at entries
    /// (a map with `bypass` or `seu` is refused: those are the host's
    /// settings), plus an optional soft-error rate per MAC and its seed.
    pub fn new(
        map: &FaultMap,
        rows: usize,
        cols: usize,
        seu: Option<(f64, u32)>,
    ) -> Result<HiddenDefects, ChipError> {
        map.validate()?;
        let file = map.file();
        if (map.array.rows, map.array.cols) != (rows, cols) {
            return Err(ChipError::Size {
                file,
                map_rows: map.array.rows,
                map_cols: map.array.cols,
                rows,
                cols,
            });
        }
        if !map.bypass.is_empty() || map.seu.is_some() {
            return Err(ChipError::NotDefects {
                file,
                problem: "hidden defects are stuck-at faults only: remove 'bypass' and 'seu' \
                          (bypass is the host's setting; give soft errors as +seu=RATE)"
                    .into(),
            });
        }
        let mut stuck = BTreeMap::new();
        for f in &map.faults {
            if f.stuck_at_0 | f.stuck_at_1 != 0 {
                stuck.insert(
                    (f.row as u8, f.col as u8, f.site.code()),
                    (f.stuck_at_0 as u32, f.stuck_at_1 as u32),
                );
            }
        }
        let seu = match seu {
            None => None,
            Some((p, _)) if !(0.0..=1.0).contains(&p) => return Err(ChipError::SeuRate(p)),
            Some((p, seed)) => {
                let reg = (p * SEU_RATE_ONE as f64).round() as u32;
                (reg > 0).then_some((reg, seed))
            }
        };
        Ok(HiddenDefects { stuck, rows, cols, seu })
    }

    /// The hidden stuck-at defects as a fault map (what a perfect
    /// characterisation would find, unobservable registers included).
    pub fn to_map(&self) -> FaultMap {
        let mut map = FaultMap::empty(self.rows, self.cols);
        for (&(r, c, s), &(sa0, sa1)) in &self.stuck {
            map.faults.push(faultloop_proto::faultmap::Fault {
                row: r as usize,
                col: c as usize,
                site: Site::from_u8(s).expect("site codes come from Site"),
                stuck_at_0: sa0 as u64,
                stuck_at_1: sa1 as u64,
            });
        }
        map
    }

    /// The hidden soft-error setting `(rate register, seed)`, if any.
    pub fn seu(&self) -> Option<(u32, u32)> {
        self.seu
    }

    /// The frames that put the hidden state back after CLEAR_FAULTS
    /// (`after_reset`: also after RESET, which clears the SEU rate too).
    fn restore_frames(&self, after_reset: bool) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        for (&(r, c, s), &(sa0, sa1)) in &self.stuck {
            out.push((Opcode::SetFault.code(), set_fault_payload(r, c, s, sa0, sa1)));
        }
        if after_reset {
            if let Some((rate, seed)) = self.seu {
                let mut p = rate.to_le_bytes().to_vec();
                p.extend_from_slice(&seed.to_le_bytes());
                out.push((Opcode::SetSeu.code(), p));
            }
        }
        out
    }

    /// The request payload the device gets in place of `payload` (`op` a
    /// valid-CRC request), or `None` to forward it unchanged.
    fn rewrite(&self, op: u8, payload: &[u8]) -> Option<Vec<u8>> {
        if op == Opcode::SetFault.code() && payload.len() == 11 {
            let (r, c, s) = (payload[0], payload[1], payload[2]);
            let sa0 = u32::from_le_bytes(payload[3..7].try_into().unwrap());
            let sa1 = u32::from_le_bytes(payload[7..11].try_into().unwrap());
            let width_ok = Site::from_u8(s).is_some_and(|site| (sa0 | sa1) & !site.mask() == 0);
            let in_range = (r as usize) < self.rows && (c as usize) < self.cols;
            if !in_range || !width_ok || sa0 & sa1 != 0 {
                return None; // the device refuses it; let it
            }
            let &(h0, h1) = self.stuck.get(&(r, c, s))?;
            let m0 = sa0 | h0;
            // Stuck-at-0 wins where both are set (the board's (v|sa1)&~sa0);
            // SET_FAULT wants disjoint masks.
            let m1 = (sa1 | h1) & !m0;
            return Some(set_fault_payload(r, c, s, m0, m1));
        }
        if op == Opcode::SetSeu.code() && payload.len() == 8 {
            let (hr, _) = self.seu?;
            let rate = u32::from_le_bytes(payload[0..4].try_into().unwrap());
            if rate > SEU_RATE_ONE {
                return None; // OUT_OF_RANGE as sent
            }
            let mut p = rate.saturating_add(hr).min(SEU_RATE_ONE).to_le_bytes().to_vec();
            p.extend_from_slice(&payload[4..8]);
            return Some(p);
        }
        None
    }
}

fn set_fault_payload(r: u8, c: u8, s: u8, sa0: u32, sa1: u32) -> Vec<u8> {
    let mut p = vec![r, c, s];
    p.extend_from_slice(&sa0.to_le_bytes());
    p.extend_from_slice(&sa1.to_le_bytes());
    p
}

/// What the next reply from the wrapped device is for.
#[derive(Debug)]
enum Pending {
    /// A reply the link made itself (BAD_LENGTH, BAD_CRC), due in order.
    Local(Vec<u8>),
    /// The reply to a host request: hand it on.
    Pass,
    /// The reply to a restore frame: drop it.
    Swallow,
}

/// A device with hidden defects: see the module docs.
pub struct ChipLink<L: Link> {
    inner: L,
    name: String,
    hidden: HiddenDefects,
    gate: RequestGate,
    pending: VecDeque<Pending>,
    /// Reply bytes from the device not yet framed.
    rx: Vec<u8>,
    /// Reply bytes ready for the host.
    out: VecDeque<u8>,
    seq: u16,
    buf_bytes: usize,
}

impl<L: Link> ChipLink<L> {
    /// Wrap `inner` (whose receive buffer holds `buf_bytes`, its INFO's
    /// `buf_bytes`) and write the hidden defects into it.
    pub fn new(inner: L, buf_bytes: usize, hidden: HiddenDefects) -> io::Result<ChipLink<L>> {
        let name = format!("{}+chip", inner.name());
        let gate = RequestGate::new(buf_bytes, Duration::MAX);
        let mut link = ChipLink {
            inner,
            name,
            hidden,
            gate,
            pending: VecDeque::new(),
            rx: Vec::new(),
            out: VecDeque::new(),
            seq: 0x8000,
            buf_bytes,
        };
        link.restore(true)?;
        Ok(link)
    }

    /// The defects this chip hides.
    pub fn hidden(&self) -> &HiddenDefects {
        &self.hidden
    }

    /// Name the link `name` in error messages (default: the inner name + `+chip`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    fn restore(&mut self, after_reset: bool) -> io::Result<()> {
        for (op, payload) in self.hidden.restore_frames(after_reset) {
            self.seq = self.seq.wrapping_add(1);
            self.inner.send(&encode_request(op, self.seq, &payload))?;
            self.pending.push_back(Pending::Swallow);
        }
        Ok(())
    }

    /// Read one reply frame from the device, waiting until `deadline`.
    fn next_reply(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        loop {
            match decode(&self.rx, REPLY_SYNC, self.buf_bytes.max(1 << 24)) {
                Decoded::Frame { consumed, .. } => {
                    let bytes = self.rx[..consumed].to_vec();
                    self.rx.drain(..consumed);
                    return Ok(Some(bytes));
                }
                Decoded::Skip { reason: SkipReason::BadCrc { len, .. }, .. } => {
                    // A garbled reply: hand it on as it came, the client
                    // decodes it as garbled and retries.
                    let consumed = FRAME_OVERHEAD + len as usize;
                    let bytes = self.rx[..consumed].to_vec();
                    self.rx.drain(..consumed);
                    return Ok(Some(bytes));
                }
                Decoded::Skip { n, .. } => {
                    self.rx.drain(..n);
                    continue;
                }
                Decoded::Incomplete => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let mut buf = [0u8; 4096];
            let n = self.inner.recv(&mut buf, deadline - now)?;
            if n == 0 {
                return Ok(None);
            }
            self.rx.extend_from_slice(&buf[..n]);
        }
    }
}

impl<L: Link> Link for ChipLink<L> {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.gate.push(bytes);
        while let Some(ev) = self.gate.next_event() {
            match ev {
                GateEvent::Refuse { status, seq } => {
                    self.pending.push_back(Pending::Local(encode_reply(status, seq, &[])));
                }
                GateEvent::Request(f) => {
                    let payload = self.hidden.rewrite(f.code, &f.payload);
                    let payload = payload.as_deref().unwrap_or(&f.payload);
                    self.inner.send(&encode_request(f.code, f.seq, payload))?;
                    self.pending.push_back(Pending::Pass);
                    if f.code == Opcode::ClearFaults.code() && f.payload.is_empty() {
                        self.restore(false)?;
                    } else if f.code == Opcode::Reset.code() && f.payload.is_empty() {
                        self.restore(true)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        while self.out.is_empty() {
            match self.pending.front() {
                None => return Ok(0),
                Some(Pending::Local(_)) => {
                    if let Some(Pending::Local(b)) = self.pending.pop_front() {
                        self.out.extend(b);
                    }
                }
                Some(_) => {
                    let Some(reply) = self.next_reply(deadline)? else { return Ok(0) };
                    match self.pending.pop_front() {
                        Some(Pending::Pass) => self.out.extend(reply),
                        Some(Pending::Swallow) => {
                            // A restore frame the device refused would mean
                            // the hidden map does not fit it: say so loudly.
                            if reply.get(1) != Some(&(Status::Ok as u8)) {
                                return Err(io::Error::other(format!(
                                    "{}: the device refused a hidden-defect frame (status {})",
                                    self.name,
                                    Status::name_of(reply[1])
                                )));
                            }
                        }
                        _ => unreachable!("front was Pass or Swallow"),
                    }
                }
            }
        }
        let n = buf.len().min(self.out.len());
        for (d, s) in buf.iter_mut().zip(self.out.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }

    fn sim_cycles(&self) -> Option<u64> {
        self.inner.sim_cycles()
    }
}
