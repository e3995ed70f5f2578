//! The golden model behind the device's frame receiver, as a [`Link`].
//!
//! [`ModelLink`] applies the receiver rules of docs/protocol.md §1 to the bytes
//! it is sent, exactly as the RTL frame unit does:
//!
//! 1. while hunting, every byte that is not `0xA5` is dropped;
//! 2. after the 8-byte header, `len > buf_bytes` is answered with `BAD_LENGTH`
//!    (seq echoed) at once and the receiver hunts again (the payload that
//!    follows is garbage to it);
//! 3. otherwise it takes `len` payload bytes and the CRC; a mismatch is
//!    answered with `BAD_CRC` carrying the seq bytes as received; a good frame
//!    goes to [`Model::execute`](crate::Model::execute) and its status and payload are sent back.
//!
//! Unlike the RTL it has no idle timeout (rule 4): the model has no clock, so
//! a partial frame waits for its remaining bytes forever. Replies are queued
//! and [`Link::recv`] hands them out without blocking.

use std::io;
use std::time::Duration;

use faultloop_proto::receiver::{GateEventRef, RequestGate};
use faultloop_proto::{encode_reply, Info, Link, Status};

use crate::semantics::Model;

/// The golden model as a byte-stream device.
pub struct ModelLink {
    name: String,
    model: Model,
    /// The receiver rules; the model has no clock, so its idle timeout never
    /// fires (nobody calls `expire`).
    gate: RequestGate,
    /// Reply bytes; `tx[tx_head..]` not yet read.
    tx: Vec<u8>,
    tx_head: usize,
}

impl ModelLink {
    /// The same link under another name (what messages and reports call
    /// it, e.g. the device string `model:ulx3s`).
    pub fn with_name(mut self, name: impl Into<String>) -> ModelLink {
        self.name = name.into();
        self
    }

    /// A fresh model configured as `cfg` says, named `model:RxC`.
    pub fn new(cfg: Info) -> ModelLink {
        let name = format!("model:{}x{}", cfg.rows, cfg.cols);
        let gate = RequestGate::new(cfg.buf_bytes, Duration::MAX);
        ModelLink { name, model: Model::new(cfg), gate, tx: Vec::new(), tx_head: 0 }
    }

    /// The model configured like `dla_sim_top` of size `rows`x`cols`.
    pub fn sim(rows: usize, cols: usize) -> ModelLink {
        ModelLink::new(Info::sim(rows, cols))
    }

    /// The model behind the link.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model behind the link, mutably (for tests that poke its state).
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    /// Reply bytes queued and not yet read.
    pub fn pending_reply_bytes(&self) -> usize {
        self.tx.len() - self.tx_head
    }

    /// Bytes of a partly received frame waiting for the rest.
    pub fn pending_request_bytes(&self) -> usize {
        self.gate.pending()
    }

    /// Run the receiver over everything buffered.
    fn process(&mut self) {
        while let Some(ev) = self.gate.next_event_ref() {
            let (status, seq, payload) = match ev {
                GateEventRef::Refuse { status, seq } => (status as u8, seq, Vec::new()),
                GateEventRef::Request { code, seq, payload } => {
                    let (status, reply) = self.model.execute(code, payload);
                    (status, seq, reply)
                }
            };
            debug_assert!(status == Status::Ok as u8 || payload.is_empty());
            if self.tx_head == self.tx.len() {
                self.tx.clear();
                self.tx_head = 0;
            }
            self.tx.extend_from_slice(&encode_reply(status, seq, &payload));
        }
    }
}

impl Link for ModelLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.gate.push(bytes);
        self.process();
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], _timeout: Duration) -> io::Result<usize> {
        let n = buf.len().min(self.tx.len() - self.tx_head);
        buf[..n].copy_from_slice(&self.tx[self.tx_head..self.tx_head + n]);
        self.tx_head += n;
        if self.tx_head == self.tx.len() {
            self.tx.clear();
            self.tx_head = 0;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultloop_proto::{decode, encode_request, Decoded, Frame, REPLY_SYNC};

    fn replies(link: &mut ModelLink) -> Vec<Frame> {
        let mut bytes = vec![0u8; link.pending_reply_bytes()];
        let n = link.recv(&mut bytes, Duration::ZERO).unwrap();
        assert_eq!(n, bytes.len());
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            match decode(&bytes[at..], REPLY_SYNC, 1 << 24) {
                Decoded::Frame { frame, consumed } => {
                    out.push(frame);
                    at += consumed;
                }
                other => panic!("model sent a bad reply: {other:?}"),
            }
        }
        out
    }

    #[test]
    fn name_and_empty_recv() {
        let mut l = ModelLink::sim(8, 4);
        assert_eq!(l.name(), "model:8x4");
        let mut b = [0u8; 16];
        assert_eq!(l.recv(&mut b, Duration::from_secs(1)).unwrap(), 0);
    }

    #[test]
    fn garbage_is_dropped_silently() {
        let mut l = ModelLink::sim(4, 4);
        l.send(&[0, 1, 2, 0x5A, 0xFF, 0x13]).unwrap();
        assert_eq!(l.pending_reply_bytes(), 0);
        assert_eq!(l.pending_request_bytes(), 0);
    }

    #[test]
    fn bad_length_is_answered_at_header_time_then_hunts() {
        let mut l = ModelLink::sim(4, 4);
        let buf = l.model().config().buf_bytes as u32;
        let mut hdr = vec![0xA5, 0x03, 0x34, 0x12];
        hdr.extend_from_slice(&(buf + 1).to_le_bytes());
        l.send(&hdr).unwrap();
        let r = replies(&mut l);
        assert_eq!(r, vec![Frame { code: Status::BadLength as u8, seq: 0x1234, payload: vec![] }]);
        // The "payload" that follows is garbage; a frame inside it is seen.
        let mut junk = vec![1u8, 2, 3];
        junk.extend(encode_request(0x7Fu8, 9, &[]));
        l.send(&junk).unwrap();
        let r = replies(&mut l);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].seq, 9);
    }

    #[test]
    fn len_equal_to_buf_bytes_is_received() {
        let mut l = ModelLink::sim(4, 4);
        let buf = l.model().config().buf_bytes;
        let f = encode_request(0x7Fu8, 3, &vec![0u8; buf]);
        l.send(&f[..f.len() - 1]).unwrap();
        assert_eq!(l.pending_reply_bytes(), 0);
        l.send(&f[f.len() - 1..]).unwrap();
        let r = replies(&mut l);
        assert_eq!(r.len(), 1);
        assert_ne!(r[0].code, Status::BadLength as u8);
    }

    #[test]
    fn bad_crc_echoes_received_seq_and_consumes_frame() {
        let mut l = ModelLink::sim(4, 4);
        let mut f = encode_request(0x01u8, 0xBEEF, &[]);
        let last = f.len() - 1;
        f[last] ^= 0x40;
        // Followed directly by a good frame.
        f.extend(encode_request(0x7Fu8, 7, &[]));
        l.send(&f).unwrap();
        let r = replies(&mut l);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], Frame { code: Status::BadCrc as u8, seq: 0xBEEF, payload: vec![] });
        assert_eq!(r[1].seq, 7);
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let mut stream = vec![0x00, 0x11];
        for (i, op) in [0x01u8, 0x0A, 0x7F, 0x02].iter().enumerate() {
            stream.extend(encode_request(*op, i as u16, &[]));
            stream.push(0x33);
        }
        let mut a = ModelLink::sim(4, 4);
        a.send(&stream).unwrap();
        let mut b = ModelLink::sim(4, 4);
        for &x in &stream {
            b.send(&[x]).unwrap();
        }
        let (ra, rb) = (replies(&mut a), replies(&mut b));
        assert_eq!(ra.len(), 4);
        assert_eq!(ra, rb);
        assert_eq!(ra.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }
}
