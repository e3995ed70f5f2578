//! The device's frame receiver rules (docs/protocol.md §1, rules 1–4), once.
//!
//! Every place that accepts request bytes on the device's behalf applies them
//! through [`RequestGate`]: the golden model's link (faultloop-model), the TCP
//! bridge server and the pseudo-terminal server (faultloop-device). The RTL's
//! frame unit implements the same rules in hardware, and the differential
//! tests hold the two to the same reply bytes.
//!
//! 1. while hunting, every byte that is not `0xA5` is dropped;
//! 2. after the 8-byte header, `len > buf_bytes` is answered with `BAD_LENGTH`
//!    (seq echoed) at once and the receiver hunts again (the payload that
//!    follows is garbage to it);
//! 3. otherwise it takes `len` payload bytes and the CRC; a mismatch is
//!    answered with `BAD_CRC` carrying the seq bytes as received; a good frame
//!    is handed on;
//! 4. a partial frame followed by silence for the idle timeout is dropped
//!    ([`RequestGate::expire`]; a receiver without a clock, like the golden
//!    model, never calls it).

use std::time::{Duration, Instant};

use crate::frame::{crc16, Frame, Status, CRC_LEN, HEADER_LEN, REQUEST_SYNC};

/// What a [`RequestGate`] found in the bytes pushed into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateEvent {
    /// A complete request frame with a good CRC.
    Request(Frame),
    /// A frame the gate answers itself, as the device would: `BAD_LENGTH`
    /// (header claims more than `max_len`) or `BAD_CRC`; nothing is executed.
    Refuse { status: Status, seq: u16 },
}

/// [`GateEvent`] borrowing the payload from the gate's buffer (no copy; the
/// golden model executes straight from it).
#[derive(Debug, PartialEq, Eq)]
pub enum GateEventRef<'a> {
    /// A complete request frame with a good CRC.
    Request { code: u8, seq: u16, payload: &'a [u8] },
    /// Answered by the gate itself (`BAD_LENGTH` or `BAD_CRC`).
    Refuse { status: Status, seq: u16 },
}

/// The device's frame receiver rules on the host side of a link: bytes in,
/// whole CRC-valid request frames out.
#[derive(Debug)]
pub struct RequestGate {
    buf: Vec<u8>,
    head: usize,
    max_len: usize,
    idle_timeout: Duration,
    last_push: Instant,
    dropped_partials: u64,
}

impl RequestGate {
    /// A gate accepting payloads up to `max_len` bytes (the device's
    /// `buf_bytes`) that drops a partial frame after `idle_timeout` without bytes.
    pub fn new(max_len: usize, idle_timeout: Duration) -> RequestGate {
        RequestGate {
            buf: Vec::new(),
            head: 0,
            max_len,
            idle_timeout,
            last_push: Instant::now(),
            dropped_partials: 0,
        }
    }

    /// Feed received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.compact();
        self.buf.extend_from_slice(bytes);
        self.last_push = Instant::now();
    }

    /// Drop consumed bytes once they dominate the buffer.
    fn compact(&mut self) {
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > 4096 && self.head * 2 > self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// Bytes of a partial frame waiting for the rest.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Partial frames dropped by the idle timeout so far.
    pub fn dropped_partials(&self) -> u64 {
        self.dropped_partials
    }

    /// Rule 4: drop a partial frame when no byte came for the idle timeout.
    /// Returns whether something was dropped.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.pending() > 0 && now.saturating_duration_since(self.last_push) >= self.idle_timeout
        {
            log::debug!("dropping a partial frame of {} bytes (idle)", self.pending());
            self.buf.clear();
            self.head = 0;
            self.dropped_partials += 1;
            return true;
        }
        false
    }

    /// The next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<GateEvent> {
        self.next_event_ref().map(|ev| match ev {
            GateEventRef::Request { code, seq, payload } => {
                GateEvent::Request(Frame { code, seq, payload: payload.to_vec() })
            }
            GateEventRef::Refuse { status, seq } => GateEvent::Refuse { status, seq },
        })
    }

    /// The next event with the payload borrowed from the gate, or `None` when
    /// more bytes are needed.
    pub fn next_event_ref(&mut self) -> Option<GateEventRef<'_>> {
        loop {
            let live = &self.buf[self.head..];
            // Rule 1: hunt.
            match live.iter().position(|&b| b == REQUEST_SYNC) {
                Some(0) => {}
                Some(i) => {
                    self.head += i;
                    continue;
                }
                None => {
                    self.head = self.buf.len();
                    return None;
                }
            }
            if live.len() < HEADER_LEN {
                return None;
            }
            let code = live[1];
            let seq = u16::from_le_bytes([live[2], live[3]]);
            let len = u32::from_le_bytes([live[4], live[5], live[6], live[7]]) as u64;
            // Rule 2.
            if len > self.max_len as u64 {
                self.head += HEADER_LEN;
                return Some(GateEventRef::Refuse { status: Status::BadLength, seq });
            }
            let body_end = HEADER_LEN + len as usize;
            let total = body_end + CRC_LEN;
            if live.len() < total {
                return None;
            }
            // Rule 3 (the CRC part; the device judges everything else).
            let want = crc16(&live[1..body_end]);
            let got = u16::from_le_bytes([live[body_end], live[body_end + 1]]);
            let start = self.head;
            self.head += total;
            if want != got {
                return Some(GateEventRef::Refuse { status: Status::BadCrc, seq });
            }
            let payload = &self.buf[start + HEADER_LEN..start + body_end];
            return Some(GateEventRef::Request { code, seq, payload });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_request;
    use std::thread;

    #[test]
    fn gate_passes_good_frames_and_refuses_bad_ones() {
        let mut g = RequestGate::new(100, Duration::from_secs(1));
        let mut bytes = vec![0u8, 0x5A, 7];
        bytes.extend(encode_request(1u8, 3, &[]));
        let mut bad = encode_request(3u8, 4, &[1, 2, 3, 4, 5]);
        bad[9] ^= 1;
        bytes.extend(&bad);
        let mut long = encode_request(3u8, 5, &[0; 101]);
        long.truncate(HEADER_LEN);
        bytes.extend(&long);
        bytes.extend(encode_request(2u8, 6, &[]));
        // Feed one byte at a time.
        let mut evs = Vec::new();
        for b in &bytes {
            g.push(std::slice::from_ref(b));
            while let Some(e) = g.next_event() {
                evs.push(e);
            }
        }
        assert_eq!(
            evs,
            vec![
                GateEvent::Request(Frame { code: 1, seq: 3, payload: vec![] }),
                GateEvent::Refuse { status: Status::BadCrc, seq: 4 },
                GateEvent::Refuse { status: Status::BadLength, seq: 5 },
                GateEvent::Request(Frame { code: 2, seq: 6, payload: vec![] }),
            ]
        );
        assert_eq!(g.pending(), 0);
    }

    #[test]
    fn gate_drops_idle_partial_frames() {
        let mut g = RequestGate::new(100, Duration::from_millis(10));
        let f = encode_request(1u8, 3, &[9; 20]);
        g.push(&f[..10]);
        assert_eq!(g.next_event(), None);
        assert!(!g.expire(Instant::now()));
        thread::sleep(Duration::from_millis(15));
        assert!(g.expire(Instant::now()));
        assert_eq!(g.pending(), 0);
        g.push(&f);
        assert!(matches!(g.next_event(), Some(GateEvent::Request(_))));
    }
}
