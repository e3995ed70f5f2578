//! The receiver rules of docs/protocol.md §1 as the model link applies them,
//! checked on raw byte streams: exact reply bytes, and a seeded stream of
//! garbage, good frames, bad-CRC frames and impossible headers cut into
//! random fragments.

use std::time::Duration;

use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use faultloop_proto::Info;
use faultloop_proto::Link;
use faultloop_proto::*;

fn drain(link: &mut ModelLink) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 977];
    loop {
        let n = link.recv(&mut buf, Duration::ZERO).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        match decode(&bytes[at..], REPLY_SYNC, 1 << 24) {
            Decoded::Frame { frame, consumed } => {
                out.push(frame);
                at += consumed;
            }
            other => panic!("the device sent something that is not a frame: {other:?}"),
        }
    }
    out
}

#[test]
fn info_reply_bytes_are_exact() {
    let mut link = ModelLink::sim(8, 16);
    link.send(&encode_request(Opcode::Info, 0x3412, &[])).unwrap();
    let got = drain(&mut link);
    let cfg = Info::sim(8, 16);
    let info = Info {
        proto: 2,
        rtl: 1,
        rows: 8,
        cols: 16,
        wmem_bytes: cfg.wmem_bytes,
        buf_bytes: cfg.buf_bytes,
        acc_words: cfg.acc_words,
        features: cfg.features,
    };
    assert_eq!(got, encode_reply(Status::Ok, 0x3412, &info.to_bytes()));
}

#[test]
fn every_status_path_through_the_receiver() {
    let mut link = ModelLink::sim(4, 4);
    let buf = link.model().config().buf_bytes as u32;
    let mut s = Vec::new();
    s.extend(encode_request(0x00u8, 1, &[])); // unknown opcode
    s.extend(encode_request(Opcode::Info, 2, &[1])); // wrong length
    s.extend(Request::SetBypass { row: 9, col: 0, on: true }.encode(3)); // out of range
    let mut bad = Request::Reset.encode(4);
    let last = bad.len() - 1;
    bad[last] ^= 0xFF; // bad CRC
    s.extend(bad);
    s.extend([0xA5, 0x03, 5, 0]);
    s.extend((buf + 1).to_le_bytes()); // impossible length
    s.extend(Request::Counters.encode(6));
    link.send(&s).unwrap();
    let r = frames(&drain(&mut link));
    let got: Vec<(u16, Option<Status>, usize)> =
        r.iter().map(|f| (f.seq, f.status(), f.payload.len())).collect();
    assert_eq!(
        got,
        vec![
            (1, Some(Status::BadOpcode), 0),
            (2, Some(Status::BadLength), 0),
            (3, Some(Status::OutOfRange), 0),
            (4, Some(Status::BadCrc), 0),
            (5, Some(Status::BadLength), 0),
            (6, Some(Status::Ok), COUNTERS_LEN),
        ]
    );
}

#[test]
fn seeded_stream_of_good_and_bad_frames_in_random_fragments() {
    for seed in 0..8u64 {
        let mut rng = Rng::new(seed);
        let mut link = ModelLink::sim(4, 4);
        let buf_bytes = link.model().config().buf_bytes as u32;
        let mut stream = Vec::new();
        // (seq, expected status or None for "any status the model chooses")
        let mut expect: Vec<(u16, Option<Status>)> = Vec::new();
        for i in 0..200u16 {
            // Garbage without request sync bytes: always dropped silently.
            let g = rng.index(6);
            for _ in 0..g {
                let b = rng.next_u32() as u8;
                stream.push(if b == REQUEST_SYNC { 0 } else { b });
            }
            match rng.index(10) {
                0..=5 => {
                    // A good frame with a random opcode (0..=11) and short payload.
                    let op = rng.index(12) as u8;
                    let len = rng.index(16);
                    let payload: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
                    stream.extend(encode_request(op, i, &payload));
                    expect.push((i, None));
                }
                6..=7 => {
                    // Bad CRC: a flipped payload or CRC bit (not in the header).
                    let len = 1 + rng.index(8);
                    let mut f = encode_request(Opcode::WriteWeights, i, &vec![7u8; len]);
                    let at = HEADER_LEN + rng.index(len + CRC_LEN);
                    f[at] ^= 1 << rng.index(8);
                    stream.extend(f);
                    expect.push((i, Some(Status::BadCrc)));
                }
                _ => {
                    // Impossible length, followed by sync-free junk "payload".
                    let len = buf_bytes + 1 + rng.next_u32() % 1000;
                    stream.extend([REQUEST_SYNC, Opcode::WriteWeights.code()]);
                    stream.extend(i.to_le_bytes());
                    stream.extend(len.to_le_bytes());
                    stream.extend([1, 2, 3]);
                    expect.push((i, Some(Status::BadLength)));
                }
            }
        }
        // Feed in random fragments, reading replies as we go.
        let mut replies = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let n = (1 + rng.index(40)).min(stream.len() - at);
            link.send(&stream[at..at + n]).unwrap();
            at += n;
            replies.extend(drain(&mut link));
        }
        let got = frames(&replies);
        assert_eq!(got.len(), expect.len(), "seed {seed}");
        for (f, (seq, st)) in got.iter().zip(&expect) {
            assert_eq!(f.seq, *seq, "seed {seed}");
            let status = f.status().expect("a known status");
            if let Some(st) = st {
                assert_eq!(status, *st, "seed {seed} seq {seq}");
            }
            assert!(status == Status::Ok || f.payload.is_empty());
        }
        assert_eq!(link.pending_request_bytes(), 0);
    }
}

#[test]
fn a_partial_frame_waits_forever_then_completes() {
    // No idle timeout in the model: a frame cut in two is still one frame.
    let mut link = ModelLink::sim(4, 4);
    let f = Request::Info.encode(77);
    link.send(&f[..5]).unwrap();
    assert_eq!(drain(&mut link), Vec::<u8>::new());
    std::thread::sleep(Duration::from_millis(20));
    link.send(&f[5..]).unwrap();
    let r = frames(&drain(&mut link));
    assert_eq!((r.len(), r[0].seq, r[0].status()), (1, 77, Some(Status::Ok)));
}
