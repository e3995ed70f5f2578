//! Protocol robustness against the RTL itself: garbage, truncated frames,
//! flipped bits, impossible lengths and unknown opcodes fed into the Verilated
//! device's stream. The device must answer with the right status or stay
//! silent, never hang, and answer the next valid frame correctly.
//!
//! The golden model's receiver follows the same rules (docs/protocol.md §1),
//! so random streams are checked differentially: the bytes the RTL sends back
//! must equal the model's, and afterwards (past the RTL's idle timeout) a
//! valid request must get the right answer.

use std::time::Duration;

use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use faultloop_proto::Link;
use faultloop_proto::{decode, encode_request, Decoded, Frame, Request, Site, Status, REPLY_SYNC};
use faultloop_tests::{byte_diff, drain, random_bytes, roundtrip, sim_sizes};
use faultloop_verilated::SimLink;

/// More than the sim top's IdleTimeout (4096 cycles).
const PAST_IDLE_TIMEOUT: u64 = 10_000;

fn reply(bytes: &[u8]) -> Frame {
    match decode(bytes, REPLY_SYNC, usize::MAX / 2) {
        Decoded::Frame { frame, consumed } if consumed == bytes.len() => frame,
        other => panic!("not one reply frame: {other:?} in {bytes:02x?}"),
    }
}

fn status_of(link: &mut dyn Link, bytes: &[u8]) -> (u8, u16, Vec<u8>) {
    let f = reply(&roundtrip(link, bytes).unwrap());
    (f.code, f.seq, f.payload)
}

fn sim() -> SimLink {
    let (r, c) = *sim_sizes().iter().find(|&&(r, _)| r == 8).unwrap_or(&sim_sizes()[0]);
    SimLink::open(r, c).unwrap()
}

#[test]
fn every_kind_of_bad_frame_gets_its_status() {
    let mut s = sim();
    let info_ok = status_of(&mut s, &Request::Info.encode(1));
    assert_eq!(info_ok.0, Status::Ok.code());

    // Bad CRC: the seq is echoed as received.
    let mut f = Request::Info.encode(0x1234);
    let last = f.len() - 1;
    f[last] ^= 0x40;
    assert_eq!(status_of(&mut s, &f), (Status::BadCrc.code(), 0x1234, vec![]));

    // Unknown opcodes with a valid CRC.
    for op in [0x00u8, 0x0B, 0x7F, 0xFF] {
        assert_eq!(
            status_of(&mut s, &encode_request(op, 7, &[])).0,
            Status::BadOpcode.code(),
            "op {op:#x}"
        );
    }
    // Wrong length for the opcode.
    assert_eq!(status_of(&mut s, &encode_request(0x01u8, 8, &[0; 3])).0, Status::BadLength.code());
    assert_eq!(status_of(&mut s, &encode_request(0x05u8, 9, &[0; 10])).0, Status::BadLength.code());
    // A header claiming more than the buffer: answered at once, before any payload.
    let mut huge = vec![0xA5, 0x03, 0x0A, 0x00];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(status_of(&mut s, &huge), (Status::BadLength.code(), 10, vec![]));
    // Out of range: nothing executed.
    let bad = Request::SetFault { row: 200, col: 0, site: Site::Psum, sa0: 0, sa1: 1 };
    assert_eq!(status_of(&mut s, &bad.encode(11)).0, Status::OutOfRange.code());
    let both = Request::SetFault { row: 0, col: 0, site: Site::Act, sa0: 1, sa1: 1 };
    assert_eq!(status_of(&mut s, &both.encode(12)).0, Status::OutOfRange.code());
    let wide = Request::SetFault { row: 0, col: 0, site: Site::Weight, sa0: 0x100, sa1: 0 };
    assert_eq!(status_of(&mut s, &wide.encode(13)).0, Status::OutOfRange.code());

    // Garbage before a frame is skipped.
    let mut g = vec![0x00, 0x11, 0x5A, 0xFF, 0x42];
    g.extend(Request::Info.encode(14));
    assert_eq!(status_of(&mut s, &g), (info_ok.0, 14, info_ok.2.clone()));

    // A truncated frame is dropped after the idle timeout; the next frame is answered.
    let t = Request::WriteWeights { addr: 0, data: vec![1; 40] }.encode(15);
    s.send(&t[..20]).unwrap();
    assert!(
        drain(&mut s, Duration::from_millis(200)).is_empty(),
        "a partial frame must not be answered"
    );
    s.idle(PAST_IDLE_TIMEOUT);
    assert_eq!(status_of(&mut s, &Request::Info.encode(16)), (info_ok.0, 16, info_ok.2));
}

/// One random hostile element of a stream.
fn element(rng: &mut Rng, seq: u16) -> Vec<u8> {
    let valid = |rng: &mut Rng| match rng.below(4) {
        0 => Request::Info.encode(seq),
        1 => Request::Counters.encode(seq),
        2 => {
            Request::SetFault { row: 1, col: 2, site: Site::Psum, sa0: 0, sa1: 1 << rng.below(32) }
                .encode(seq)
        }
        _ => {
            let m = 1 + rng.index(3);
            Request::Matmul { base: 0, m: m as u16, k: 5, n: 9, rot: (0, 0), a: vec![3; m * 5] }
                .encode(seq)
        }
    };
    match rng.below(8) {
        0 => {
            let n = rng.index(48);
            random_bytes(rng, n)
        }
        1 => {
            let mut f = valid(rng);
            let i = 1 + rng.index(f.len() - 1);
            f[i] ^= 1 << rng.below(8);
            f
        }
        2 => {
            let (op, n) = (0x0B + rng.below(0xF4) as u8, rng.index(6));
            encode_request(op, seq, &random_bytes(rng, n))
        }
        3 => {
            let n = 1 + rng.index(5);
            encode_request(0x01u8, seq, &random_bytes(rng, n))
        }
        4 => {
            let mut h = vec![0xA5, rng.below(11) as u8];
            h.extend_from_slice(&seq.to_le_bytes());
            h.extend_from_slice(&(0x0004_0001u32 + rng.next_u32() % 1000).to_le_bytes());
            h
        }
        5 => {
            let f = valid(rng);
            f[..1 + rng.index(f.len() - 1)].to_vec()
        }
        _ => valid(rng),
    }
}

#[test]
fn random_hostile_streams_match_the_model_and_never_wedge_the_device() {
    let mut rng = Rng::new(0xBAD5EED);
    let mut s = sim();
    let info = status_of(&mut s, &Request::Info.encode(1));
    let (rows, cols) = (info.2[2] as usize, info.2[3] as usize);
    // The weight region of element()'s MATMULs (k 5, n 9 at base 0, §3).
    let region = 5usize.div_ceil(rows) * 9usize.div_ceil(cols) * rows * cols;
    let mut replies = 0;
    for stream in 0..24 {
        // Fresh model per stream: a model left waiting inside a swallowed
        // frame (it has no idle timeout) would desynchronise the next stream.
        let mut m = ModelLink::sim(rows, cols);
        let mut bytes = Vec::new();
        for i in 0..12 {
            bytes.extend(element(&mut rng, (stream * 100 + i) as u16));
        }
        // Both start from the same state: the sim has just been re-synchronised,
        // and the weights the stream's MATMULs read (base 0, k 5, n 9) are
        // written to both, since weight memory is undefined at power-up and
        // RESET leaves it as it is (docs/protocol.md §2).
        assert_eq!(
            status_of(&mut s, &Request::Reset.encode(2)),
            status_of(&mut m, &Request::Reset.encode(2))
        );
        let weights = Request::WriteWeights { addr: 0, data: random_bytes(&mut rng, region) };
        assert_eq!(
            status_of(&mut s, &weights.encode(4)),
            status_of(&mut m, &weights.encode(4)),
            "stream {stream}: writing the weights"
        );

        m.send(&bytes).unwrap();
        s.send(&bytes).unwrap();
        let want = drain(&mut m, Duration::from_millis(10));
        let got = drain(&mut s, Duration::from_millis(400));
        assert!(want == got, "stream {stream}: {}", byte_diff("model vs sim", &want, &got));
        let mut rest = &got[..];
        while let Decoded::Frame { consumed, .. } = decode(rest, REPLY_SYNC, usize::MAX / 2) {
            rest = &rest[consumed..];
            replies += 1;
        }
        // Whatever the stream left half-received, the device comes back.
        s.idle(PAST_IDLE_TIMEOUT);
        let again = status_of(&mut s, &Request::Info.encode(3));
        assert_eq!(
            again,
            (Status::Ok.code(), 3, info.2.clone()),
            "stream {stream}: device did not recover"
        );
    }
    assert!(replies > 50, "the streams should provoke many replies, got {replies}");
}
