//! Forwarding whole request frames to a device link and waiting for the
//! reply: what the servers do after the receiver rules ([`RequestGate`]
//! (faultloop_proto::RequestGate)) have accepted a frame.

use std::io;
use std::time::Instant;

use faultloop_proto::{self as proto, encode_reply, encode_request, Frame, Link, Opcode, CRC_LEN};

use crate::client::ClientOptions;
use crate::reply::{ReplyWaiter, Wait};

/// How the device answered one forwarded frame.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Reply bytes to pass back (a good reply, or a deliberately bad-CRC
    /// marker when the device's reply arrived garbled, so the client retries).
    Bytes(Vec<u8>),
    /// No reply within the timeout: say nothing, the client times out.
    Nothing,
}

/// A device link plus what is needed to exchange whole frames with it.
pub(crate) struct Forwarder {
    pub(crate) link: Box<dyn Link>,
    seq: u16,
    replies: ReplyWaiter,
    max_reply: usize,
    timeouts: ClientOptions,
}

impl Forwarder {
    pub(crate) fn new(link: Box<dyn Link>, max_reply: usize, timeouts: ClientOptions) -> Forwarder {
        Forwarder {
            link,
            // Start far from the client's sequence numbers (which start at 1),
            // so a stale reply from a probe can never look like a new one.
            seq: 0x8000,
            replies: ReplyWaiter::default(),
            max_reply,
            timeouts,
        }
    }

    /// Send one request frame and wait for its reply. With `translate`, the
    /// frame goes out with the forwarder's own seq and the reply is mapped
    /// back to `frame.seq`; without, the seq is kept.
    pub(crate) fn forward(&mut self, frame: &Frame, translate: bool) -> io::Result<Answer> {
        let seq = if translate {
            self.seq = self.seq.wrapping_add(1);
            self.seq
        } else {
            frame.seq
        };
        let (macs, reply_bytes) = proto::request_work(frame.code, &frame.payload);
        let timeout = self
            .timeouts
            .timeout_for(frame.payload.len() + reply_bytes + 2 * proto::FRAME_OVERHEAD, macs);
        self.link.send(&encode_request(frame.code, seq, &frame.payload))?;
        let deadline = Instant::now() + timeout;
        match self.replies.wait(&mut *self.link, seq, deadline, self.max_reply) {
            Ok(r) => Ok(Answer::Bytes(encode_reply(r.code, frame.seq, &r.payload))),
            Err(Wait::Garbled { code }) => Ok(Answer::Bytes(garbled_marker(code, frame.seq))),
            Err(Wait::Io(e)) => Err(e),
            Err(Wait::Timeout | Wait::Oversized { .. }) => {
                log::warn!(
                    "{}: no reply to {} within {timeout:.1?}",
                    self.link.name(),
                    Opcode::name_of(frame.code)
                );
                Ok(Answer::Nothing)
            }
        }
    }
}

/// A reply header with `seq` whose CRC is certainly wrong: the client's
/// decoder reports it as a garbled reply to that request and retries.
fn garbled_marker(code: u8, seq: u16) -> Vec<u8> {
    let mut f = encode_reply(code, seq, &[]);
    let at = f.len() - CRC_LEN;
    f[at] ^= 0xFF;
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultloop_proto::{decode, Decoded, SkipReason, REPLY_SYNC};

    #[test]
    fn garbled_marker_is_a_bad_crc_frame_with_the_seq() {
        let m = garbled_marker(0, 77);
        match decode(&m, REPLY_SYNC, 16) {
            Decoded::Skip { reason: SkipReason::BadCrc { seq: 77, .. }, .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
