//! The client over a misbehaving link: corrupted requests and replies, lost,
//! late, fragmented and garbage-wrapped replies, refusals and link errors.
//! A scripted wrapper around the golden model link plays the bad channel.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use faultloop_device::client::{Cause, ClientOptions, Device};
use faultloop_model::ModelLink;
use faultloop_proto::Link;
use faultloop_proto::{encode_reply, Info, Status};

type Answer = Box<dyn Fn(u16) -> Vec<u8> + Send>;

/// What the channel does to one request (one `send` call = one frame).
enum Act {
    Pass,
    /// Flip a bit of the request's CRC: the device answers BAD_CRC.
    CorruptRequest,
    /// The device executes but the reply is lost.
    DropReply,
    /// The reply arrives with a flipped CRC bit.
    CorruptReplyCrc,
    /// The reply arrives with its seq corrupted (and so its CRC fails too).
    CorruptReplySeq,
    /// The reply is held back and delivered just before the next reply.
    DelayReply,
    /// Garbage (with sync bytes in it) before the reply.
    Garbage,
    /// The request never reaches the device.
    Swallow,
    /// The link fails on send.
    SendError,
    /// Answer with these bytes instead of asking the device.
    Answer(Answer),
}

struct Flaky {
    inner: ModelLink,
    script: VecDeque<Act>,
    held: Vec<u8>,
    out: VecDeque<u8>,
    /// Deliver at most this many bytes per recv.
    chunk: usize,
    requests: usize,
}

impl Flaky {
    fn new(script: Vec<Act>) -> Flaky {
        Flaky {
            inner: ModelLink::sim(4, 4),
            script: script.into(),
            held: Vec::new(),
            out: VecDeque::new(),
            chunk: usize::MAX,
            requests: 0,
        }
    }

    fn device_reply(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.inner.send(bytes).unwrap();
        let mut r = vec![0u8; self.inner.pending_reply_bytes()];
        let n = self.inner.recv(&mut r, Duration::ZERO).unwrap();
        r.truncate(n);
        r
    }
}

impl Link for Flaky {
    fn name(&self) -> &str {
        "flaky:4x4"
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.requests += 1;
        let act = self.script.pop_front().unwrap_or(Act::Pass);
        let seq = u16::from_le_bytes([bytes[2], bytes[3]]);
        let reply = match act {
            Act::Pass => self.device_reply(bytes),
            Act::CorruptRequest => {
                let mut b = bytes.to_vec();
                *b.last_mut().unwrap() ^= 0x01;
                self.device_reply(&b)
            }
            Act::DropReply => {
                self.device_reply(bytes);
                Vec::new()
            }
            Act::CorruptReplyCrc => {
                let mut r = self.device_reply(bytes);
                *r.last_mut().unwrap() ^= 0x80;
                r
            }
            Act::CorruptReplySeq => {
                let mut r = self.device_reply(bytes);
                r[2] ^= 0x04;
                r
            }
            Act::DelayReply => {
                let r = self.device_reply(bytes);
                self.held = r;
                Vec::new()
            }
            Act::Garbage => {
                let mut g = vec![0x00, 0x5A, 0x00, 0x13, 0x5A, 0x5A, 0xFF, 0x5A, 0x01];
                g.extend(self.device_reply(bytes));
                g
            }
            Act::Swallow => Vec::new(),
            Act::SendError => {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "cable pulled"));
            }
            Act::Answer(f) => f(seq),
        };
        if !reply.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.out.extend(held);
        }
        self.out.extend(reply);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], _timeout: Duration) -> io::Result<usize> {
        let n = buf.len().min(self.out.len()).min(self.chunk);
        for (o, b) in buf[..n].iter_mut().zip(self.out.drain(..n)) {
            *o = b;
        }
        Ok(n)
    }
}

fn quick() -> ClientOptions {
    ClientOptions {
        timeout_base: Duration::from_millis(40),
        timeout_per_mac: Duration::ZERO,
        timeout_per_byte: Duration::ZERO,
        ..ClientOptions::default()
    }
}

fn dev(script: Vec<Act>) -> Device {
    Device::with_options(Box::new(Flaky::new(script)), quick())
}

fn info_bytes() -> Vec<u8> {
    Info {
        proto: 2,
        rtl: 1,
        rows: 4,
        cols: 4,
        wmem_bytes: 1 << 20,
        buf_bytes: 1 << 18,
        acc_words: 1 << 17,
        features: 0xF,
    }
    .to_bytes()
}

#[test]
fn bad_crc_at_the_device_is_retried() {
    let mut d = dev(vec![Act::CorruptRequest, Act::CorruptRequest]);
    let info = d.info().unwrap();
    assert_eq!(info.rows, 4);
    assert_eq!(d.stats().retries, 2);
    assert_eq!(d.stats().frames_sent, 3);
}

#[test]
fn persistent_bad_crc_fails_after_all_attempts() {
    let mut d = dev((0..4).map(|_| Act::CorruptRequest).collect());
    let e = d.reset().unwrap_err();
    assert!(e.is_status(Status::BadCrc));
    assert_eq!(e.attempts, 4);
    let s = e.to_string();
    assert!(s.starts_with("flaky:4x4: RESET (seq 4): device answered BAD_CRC"), "{s}");
    assert!(s.ends_with("after 4 attempts"), "{s}");
}

#[test]
fn lost_reply_times_out_and_is_retried() {
    let mut d = dev(vec![Act::DropReply, Act::Swallow]);
    let t = Instant::now();
    d.info().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(80));
    assert_eq!(d.stats().retries, 2);
}

#[test]
fn no_reply_at_all_is_a_timeout_error() {
    let mut d = dev((0..10).map(|_| Act::Swallow).collect());
    let e = d.counters().unwrap_err();
    assert!(matches!(e.cause, Cause::Timeout { .. }));
    assert_eq!(e.attempts, 4);
    let s = e.to_string();
    assert!(s.starts_with("flaky:4x4: COUNTERS (seq 4): no reply within"), "{s}");
    // Fewer retries configured.
    let mut d = dev((0..10).map(|_| Act::Swallow).collect());
    d.set_options(ClientOptions { retries: 0, ..quick() });
    let e = d.counters().unwrap_err();
    assert_eq!(e.attempts, 1);
    assert!(!e.to_string().contains("attempts"), "{e}");
}

#[test]
fn garbled_reply_is_retried_at_once() {
    let mut d = dev(vec![Act::CorruptReplyCrc]);
    d.set_options(ClientOptions { timeout_base: Duration::from_secs(30), ..quick() });
    let t = Instant::now();
    d.info().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "waited for the timeout");
    assert_eq!(d.stats().retries, 1);
}

#[test]
fn reply_with_a_corrupted_seq_is_not_taken() {
    let mut d = dev(vec![Act::CorruptReplySeq]);
    assert_eq!(d.info().unwrap().cols, 4);
    assert_eq!(d.stats().retries, 1);
    assert!(d.stats().skipped_bytes > 0);
}

#[test]
fn late_reply_with_old_seq_is_dropped() {
    // The first INFO's reply comes late, right before the retry's reply.
    let mut d = dev(vec![Act::DelayReply]);
    d.info().unwrap();
    assert_eq!(d.stats().stale_replies, 1);
    assert_eq!(d.stats().retries, 1);
    // Later requests are unaffected.
    d.reset().unwrap();
    assert_eq!(d.stats().stale_replies, 1);
}

#[test]
fn garbage_and_one_byte_fragments_are_survived() {
    // INFO, WRITE_WEIGHTS, MATMUL.
    let mut f = Flaky::new(vec![Act::Garbage, Act::Pass, Act::Garbage]);
    f.chunk = 1;
    let mut d = Device::with_options(Box::new(f), quick());
    d.info().unwrap();
    d.load_matrix(0, 4, 4, &[1; 16]).unwrap();
    let y = d.matmul(0, 1, 4, 4, (0, 0), &[1, 2, 3, 4]).unwrap();
    assert_eq!(y, vec![10; 4]);
    assert_eq!(d.stats().retries, 0);
    assert!(d.stats().skipped_bytes >= 2 * 9, "{:?}", d.stats());
}

#[test]
fn busy_is_reported_not_retried() {
    let mut d = dev(vec![Act::Answer(Box::new(|seq| encode_reply(Status::Busy, seq, &[])))]);
    let e = d.info().unwrap_err();
    assert!(e.is_status(Status::Busy));
    assert_eq!(e.attempts, 1);
    assert!(e.to_string().contains("device answered BUSY (status 5)"), "{e}");
}

#[test]
fn matmul_retry_after_lost_reply_is_configurable() {
    let strict = || ClientOptions { retry_non_idempotent: false, ..quick() };
    // Idempotent requests are still retried after a lost reply.
    let mut d = Device::with_options(Box::new(Flaky::new(vec![Act::DropReply])), strict());
    d.info().unwrap();
    assert_eq!(d.stats().retries, 1);

    // Now lose a MATMUL reply: not retried.
    let f = Flaky::new(vec![Act::Pass, Act::Pass, Act::DropReply]);
    let mut d = Device::with_options(Box::new(f), strict());
    d.load_matrix(0, 4, 4, &[1; 16]).unwrap(); // INFO + WRITE
    let e = d.matmul(0, 1, 4, 4, (0, 0), &[1; 4]).unwrap_err();
    assert!(matches!(e.cause, Cause::Timeout { .. }) && e.attempts == 1, "{e}");
    // But a BAD_CRC (nothing executed) is still retried.
    let f = Flaky::new(vec![Act::Pass, Act::Pass, Act::CorruptRequest]);
    let mut d = Device::with_options(Box::new(f), strict());
    d.load_matrix(0, 4, 4, &[1; 16]).unwrap();
    assert_eq!(d.matmul(0, 1, 4, 4, (0, 0), &[1; 4]).unwrap(), vec![4; 4]);
    // With the default policy the lost MATMUL reply is retried (and the
    // device executed it twice: the MAC counter shows it).
    let mut d = dev(vec![Act::Pass, Act::Pass, Act::DropReply]);
    d.load_matrix(0, 4, 4, &[1; 16]).unwrap();
    assert_eq!(d.matmul(0, 1, 4, 4, (0, 0), &[1; 4]).unwrap(), vec![4; 4]);
    assert_eq!(d.counters().unwrap().macs, 32);
}

#[test]
fn link_errors_are_not_retried() {
    let mut d = dev(vec![Act::SendError]);
    let e = d.info().unwrap_err();
    assert!(matches!(e.cause, Cause::Io(_)));
    let s = e.to_string();
    assert!(s.starts_with("flaky:4x4: INFO (seq 1): link error: cable pulled"), "{s}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn malformed_and_incompatible_replies() {
    // INFO with 19 bytes.
    let mut d =
        dev(vec![Act::Answer(Box::new(|seq| encode_reply(Status::Ok, seq, &info_bytes()[..19])))]);
    let e = d.info().unwrap_err();
    assert!(matches!(e.cause, Cause::Reply(_)), "{e}");
    assert!(e.to_string().contains("INFO reply has 19 payload bytes, expected 20"), "{e}");
    // A reply claiming more bytes than the request can have.
    let mut d = dev((0..4)
        .map(|_| Act::Answer(Box::new(|seq| encode_reply(Status::Ok, seq, &[0; 64]))))
        .collect());
    let e = d.reset().unwrap_err();
    assert!(matches!(e.cause, Cause::Oversized { len: 64, .. }), "{e}");
    // Another protocol version.
    let mut d = dev(vec![Act::Answer(Box::new(|seq| {
        let mut p = info_bytes();
        p[0] = 3;
        encode_reply(Status::Ok, seq, &p)
    }))]);
    let e = d.info().unwrap_err();
    assert!(e.to_string().contains("incompatible device: device speaks protocol 3"), "{e}");
}

#[test]
fn sequence_numbers_wrap() {
    let mut d = dev(vec![]);
    for _ in 0..70_000 {
        d.request_raw(0x7F, &[]).unwrap();
    }
    assert_eq!(d.stats().retries, 0);
    assert_eq!(d.stats().stale_replies, 0);
}
