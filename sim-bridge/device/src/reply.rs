//! The reply-wait loop, once: used by the device client and by the server
//! side's forwarder (`serve`), which both send a request frame and wait for
//! the reply with its sequence number.

use std::io;
use std::time::{Duration, Instant};

use faultloop_proto::{decode, Decoded, Frame, Link, SkipReason, REPLY_SYNC};

/// Receive chunk size.
const RECV_CHUNK: usize = 1 << 20;

/// Why no reply was taken.
#[derive(Debug)]
pub(crate) enum Wait {
    /// The link failed.
    Io(io::Error),
    /// Nothing (matching and intact) within the deadline.
    Timeout,
    /// The reply with this seq arrived but its CRC failed (`code` as
    /// received; only the forwarder of `serve` passes it on).
    Garbled {
        #[cfg_attr(not(feature = "serve"), allow(dead_code))]
        code: u8,
    },
    /// A reply with this seq claimed more payload than allowed; nothing else came.
    Oversized { code: u8, len: u32 },
}

/// Counters of one waiter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WaitStats {
    /// Intact replies with another seq (late answers to earlier attempts).
    pub stale_replies: u64,
    /// Bytes dropped while resynchronising.
    pub skipped_bytes: u64,
    /// Bytes read from the link.
    pub bytes_received: u64,
}

/// The receive side of a request/reply exchange: a buffer of bytes read and
/// not yet decoded, and a reusable chunk.
#[derive(Default)]
pub(crate) struct ReplyWaiter {
    rx: Vec<u8>,
    chunk: Vec<u8>,
    pub stats: WaitStats,
}

impl ReplyWaiter {
    /// Read from `link` until the reply frame with `seq` is there (returned
    /// whatever its status), or the deadline passes. Replies with other
    /// sequence numbers are dropped; `max_reply` bounds the payload length
    /// the decoder accepts.
    pub(crate) fn wait(
        &mut self,
        link: &mut dyn Link,
        seq: u16,
        deadline: Instant,
        max_reply: usize,
    ) -> Result<Frame, Wait> {
        if self.chunk.len() < RECV_CHUNK {
            self.chunk.resize(RECV_CHUNK, 0);
        }
        let mut oversized = None;
        let mut idle_spins = 0u32;
        loop {
            // Decode everything already buffered.
            let mut at = 0;
            let found = loop {
                match decode(&self.rx[at..], REPLY_SYNC, max_reply) {
                    Decoded::Incomplete => break None,
                    Decoded::Frame { frame, consumed } => {
                        at += consumed;
                        if frame.seq == seq {
                            break Some(Ok(frame));
                        }
                        log::debug!(
                            "{}: dropping reply with seq {} (waiting for {seq})",
                            link.name(),
                            frame.seq
                        );
                        self.stats.stale_replies += 1;
                    }
                    Decoded::Skip { n, reason } => {
                        at += n;
                        self.stats.skipped_bytes += n as u64;
                        match reason {
                            SkipReason::BadCrc { code, seq: s, .. } if s == seq => {
                                break Some(Err(Wait::Garbled { code }));
                            }
                            SkipReason::BadLength { code, seq: s, len } if s == seq => {
                                oversized = Some(Wait::Oversized { code, len });
                            }
                            _ => {}
                        }
                    }
                }
            };
            self.rx.drain(..at);
            if let Some(r) = found {
                return r;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(oversized.unwrap_or(Wait::Timeout));
            }
            let n = link.recv(&mut self.chunk, deadline - now).map_err(Wait::Io)?;
            if n == 0 {
                // A link may return early with nothing (the model link always
                // does: nothing more will come). Back off only when the call
                // did no work at all, so links that make progress per call
                // (a simulator stepping its clock) are never slowed down.
                if now.elapsed() < Duration::from_micros(20) {
                    idle_spins += 1;
                    if idle_spins > 100 {
                        std::thread::sleep(
                            Duration::from_micros(500)
                                .min(deadline.saturating_duration_since(Instant::now())),
                        );
                    } else {
                        std::thread::yield_now();
                    }
                }
                continue;
            }
            idle_spins = 0;
            self.stats.bytes_received += n as u64;
            self.rx.extend_from_slice(&self.chunk[..n]);
        }
    }
}
