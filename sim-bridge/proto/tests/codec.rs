//! Byte-array tests of the frame codec (docs/protocol.md §1–§2).

use faultloop_proto::*;

const MAX: usize = 1 << 20;

fn frame_of(d: Decoded) -> (Frame, usize) {
    match d {
        Decoded::Frame { frame, consumed } => (frame, consumed),
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Decode a whole stream the way a host does: drop what `Skip` says, collect frames.
fn decode_all(mut buf: &[u8], sync: u8) -> (Vec<Frame>, Vec<SkipReason>) {
    let (mut frames, mut skips) = (Vec::new(), Vec::new());
    loop {
        match decode(buf, sync, MAX) {
            Decoded::Incomplete => return (frames, skips),
            Decoded::Frame { frame, consumed } => {
                frames.push(frame);
                buf = &buf[consumed..];
            }
            Decoded::Skip { n, reason } => {
                assert!(n >= 1 && n <= buf.len());
                skips.push(reason);
                buf = &buf[n..];
            }
        }
    }
}

#[test]
fn crc_check_value() {
    assert_eq!(crc16(b"123456789"), 0x29B1);
}

#[test]
fn exact_bytes_of_an_info_request() {
    let f = encode_request(Opcode::Info, 0x0102, &[]);
    let crc = crc16(&[0x01, 0x02, 0x01, 0, 0, 0, 0]);
    assert_eq!(f, vec![0xA5, 0x01, 0x02, 0x01, 0, 0, 0, 0, crc as u8, (crc >> 8) as u8]);
    assert_eq!(Request::Info.encode(0x0102), f);
}

#[test]
fn exact_bytes_of_a_reply() {
    let f = encode_reply(Status::OutOfRange, 7, &[]);
    assert_eq!(&f[..8], &[0x5A, 4, 7, 0, 0, 0, 0, 0]);
    assert_eq!(u16::from_le_bytes([f[8], f[9]]), crc16(&f[1..8]));
    let f = encode_reply(Status::Ok, 0xFFFF, &[0xDE, 0xAD]);
    assert_eq!(&f[..10], &[0x5A, 0, 0xFF, 0xFF, 2, 0, 0, 0, 0xDE, 0xAD]);
}

#[test]
fn round_trip_requests_and_replies() {
    for (i, len) in [0usize, 1, 7, 255, 256, 4099].into_iter().enumerate() {
        let payload: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
        let seq = (i as u16).wrapping_mul(40503);
        let req = encode_request(0x09u8, seq, &payload);
        let (f, used) = frame_of(decode(&req, REQUEST_SYNC, MAX));
        assert_eq!(f, Frame { code: 0x09, seq, payload: payload.clone() });
        assert_eq!(used, req.len());
        assert_eq!(f.encode(REQUEST_SYNC), req);
        let rep = encode_reply(Status::Ok, seq, &payload);
        let (f, used) = frame_of(decode(&rep, REPLY_SYNC, MAX));
        assert_eq!((f.code, f.seq, used), (0, seq, rep.len()));
        assert_eq!(f.status(), Some(Status::Ok));
    }
}

#[test]
fn partial_frames_are_incomplete_at_every_cut_point() {
    let payload: Vec<u8> = (0..37).collect();
    let f = encode_request(Opcode::WriteWeights, 513, &payload);
    assert_eq!(decode(&[], REQUEST_SYNC, MAX), Decoded::Incomplete);
    for cut in 1..f.len() {
        assert_eq!(decode(&f[..cut], REQUEST_SYNC, MAX), Decoded::Incomplete, "cut at {cut}");
    }
    let (frame, used) = frame_of(decode(&f, REQUEST_SYNC, MAX));
    assert_eq!((frame.payload, used), (payload, f.len()));
}

#[test]
fn a_frame_followed_by_more_bytes_consumes_only_itself() {
    let mut s = encode_reply(Status::Ok, 1, &[1, 2, 3]);
    let first = s.len();
    s.extend(encode_reply(Status::Busy, 2, &[]));
    let (f, used) = frame_of(decode(&s, REPLY_SYNC, MAX));
    assert_eq!((f.seq, used), (1, first));
    let (f, _) = frame_of(decode(&s[used..], REPLY_SYNC, MAX));
    assert_eq!((f.seq, f.status()), (2, Some(Status::Busy)));
}

#[test]
fn garbage_before_sync_is_skipped_up_to_the_sync() {
    let mut s = vec![0x00, 0x5A, 0xFF, 0x13];
    s.extend(encode_request(Opcode::Reset, 9, &[]));
    assert_eq!(decode(&s, REQUEST_SYNC, MAX), Decoded::Skip { n: 4, reason: SkipReason::Garbage });
    // Garbage without any sync: all of it.
    assert_eq!(
        decode(&[1, 2, 3], REQUEST_SYNC, MAX),
        Decoded::Skip { n: 3, reason: SkipReason::Garbage }
    );
    let (frames, skips) = decode_all(&s, REQUEST_SYNC);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode(), Some(Opcode::Reset));
    assert_eq!(skips, vec![SkipReason::Garbage]);
    // A reply decoder treats request sync bytes as garbage and vice versa.
    let r = encode_reply(Status::Ok, 1, &[]);
    assert!(matches!(decode(&r, REQUEST_SYNC, MAX), Decoded::Skip { n, .. } if n == r.len()));
}

#[test]
fn bad_crc_is_reported_with_its_header_and_resyncs() {
    for flip_at in 1..12 {
        let mut s = encode_reply(Status::Ok, 0x4242, &[9, 8]);
        s[flip_at] ^= 0x10;
        let good = encode_reply(Status::Ok, 0x4343, &[7]);
        s.extend(&good);
        let d = decode(&s, REPLY_SYNC, MAX);
        match d {
            Decoded::Skip { n: 1, reason: SkipReason::BadCrc { .. } } => {}
            // A flip in the length field can make the frame look longer
            // (incomplete) or impossible; never a good frame.
            Decoded::Incomplete | Decoded::Skip { reason: SkipReason::BadLength { .. }, .. } => {
                assert!((4..8).contains(&flip_at), "flip at {flip_at}: {d:?}")
            }
            other => panic!("flip at {flip_at}: {other:?}"),
        }
        if !(4..8).contains(&flip_at) {
            let (frames, _) = decode_all(&s, REPLY_SYNC);
            assert_eq!(frames.last().map(|f| f.seq), Some(0x4343), "flip at {flip_at}");
            assert!(frames.iter().all(|f| f.seq != 0x4242));
        }
    }
    let mut s = encode_reply(Status::Ok, 0x1234, &[]);
    s[9] ^= 1;
    assert_eq!(
        decode(&s, REPLY_SYNC, MAX),
        Decoded::Skip { n: 1, reason: SkipReason::BadCrc { code: 0, seq: 0x1234, len: 0 } }
    );
}

#[test]
fn impossible_length_is_skipped_at_header_time() {
    let mut hdr = vec![0xA5, 0x03, 0x11, 0x22];
    hdr.extend_from_slice(&(MAX as u32 + 1).to_le_bytes());
    assert_eq!(
        decode(&hdr, REQUEST_SYNC, MAX),
        Decoded::Skip {
            n: 1,
            reason: SkipReason::BadLength { code: 3, seq: 0x2211, len: MAX as u32 + 1 }
        }
    );
    // u32::MAX does not overflow anything.
    let mut hdr = vec![0x5A, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(matches!(
        decode(&hdr, REPLY_SYNC, MAX),
        Decoded::Skip { n: 1, reason: SkipReason::BadLength { len: u32::MAX, .. } }
    ));
    // max_len itself is allowed.
    hdr[4..8].copy_from_slice(&16u32.to_le_bytes());
    assert_eq!(decode(&hdr, REPLY_SYNC, 16), Decoded::Incomplete);
    // And a good frame right after the bad header is found.
    let mut s = vec![0x5A, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
    s.extend(encode_reply(Status::Ok, 5, &[1]));
    let (frames, skips) = decode_all(&s, REPLY_SYNC);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].seq, 5);
    assert!(matches!(skips[0], SkipReason::BadLength { .. }));
}

#[test]
fn stream_of_frames_split_anywhere_decodes_the_same() {
    let mut s = Vec::new();
    for i in 0..20u16 {
        s.extend([0x00, 0xA5, 0x13].iter().take((i % 4) as usize));
        let p: Vec<u8> = (0..i * 3).map(|x| x as u8 ^ 0x5A).collect();
        s.extend(encode_reply(Status::Ok, i, &p));
    }
    let (all, _) = decode_all(&s, REPLY_SYNC);
    assert_eq!(all.len(), 20);
    // Feed in fragments of every size 1..=13, decoding as bytes arrive.
    for step in 1..=13 {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for part in s.chunks(step) {
            buf.extend_from_slice(part);
            loop {
                match decode(&buf, REPLY_SYNC, MAX) {
                    Decoded::Incomplete => break,
                    Decoded::Frame { frame, consumed } => {
                        got.push(frame);
                        buf.drain(..consumed);
                    }
                    Decoded::Skip { n, .. } => {
                        buf.drain(..n);
                    }
                }
            }
        }
        assert_eq!(got, all, "fragments of {step}");
    }
}

#[test]
fn opcode_and_status_tables() {
    for (i, op) in Opcode::ALL.iter().enumerate() {
        assert_eq!(op.code() as usize, i + 1);
        assert_eq!(Opcode::from_u8(op.code()), Some(*op));
        assert_eq!(Opcode::try_from(op.code()), Ok(*op));
        assert_eq!(u8::from(*op), op.code());
    }
    assert_eq!(Opcode::from_u8(0), None);
    assert_eq!(Opcode::from_u8(0x0B), None);
    assert_eq!(Opcode::try_from(0xFF), Err(0xFF));
    assert_eq!(Opcode::Matmul.to_string(), "MATMUL");
    assert_eq!(Opcode::name_of(0x03), "WRITE_WEIGHTS");
    assert_eq!(Opcode::name_of(0x42), "UNKNOWN");
    let names = ["OK", "BAD_CRC", "BAD_OPCODE", "BAD_LENGTH", "OUT_OF_RANGE", "BUSY"];
    for (i, s) in Status::ALL.iter().enumerate() {
        assert_eq!(s.code() as usize, i);
        assert_eq!(s.name(), names[i]);
        assert_eq!(Status::try_from(i as u8), Ok(*s));
    }
    assert_eq!(Status::from_u8(6), None);
    assert_eq!(Status::name_of(9), "UNKNOWN");
    for s in Site::ALL {
        assert_eq!(Site::from_u8(s.code()), Some(s));
        assert_eq!(s.name().parse::<Site>().unwrap(), s);
    }
    assert_eq!((Site::Psum.bits(), Site::Act.bits(), Site::Weight.bits()), (32, 8, 8));
    assert!("mul".parse::<Site>().is_err());
}

#[test]
fn request_payloads_match_the_spec_table() {
    assert!(Request::Info.encode_payload().is_empty());
    assert!(Request::Reset.encode_payload().is_empty());
    assert!(Request::ClearFaults.encode_payload().is_empty());
    assert!(Request::Counters.encode_payload().is_empty());
    assert_eq!(
        Request::WriteWeights { addr: 0x0403_0201, data: vec![9, 8] }.encode_payload(),
        vec![1, 2, 3, 4, 9, 8]
    );
    assert_eq!(
        Request::PatchWeights(vec![(0x030201, -1), (0x10, 5)]).encode_payload(),
        vec![1, 2, 3, 0xFF, 0x10, 0, 0, 5]
    );
    assert_eq!(
        Request::SetFault { row: 3, col: 5, site: Site::Act, sa0: 0x0102_0304, sa1: 0x80 }
            .encode_payload(),
        vec![3, 5, 1, 4, 3, 2, 1, 0x80, 0, 0, 0]
    );
    assert_eq!(Request::SetBypass { row: 1, col: 2, on: true }.encode_payload(), vec![1, 2, 1]);
    assert_eq!(Request::SetBypass { row: 1, col: 2, on: false }.encode_payload(), vec![1, 2, 0]);
    assert_eq!(
        Request::SetSeu { rate: 1 << 27, seed: 42 }.encode_payload(),
        vec![0, 0, 0, 8, 42, 0, 0, 0]
    );
    let mm = Request::Matmul {
        base: 64,
        m: 2,
        k: 3,
        n: 0x0102,
        rot: (1, 7),
        a: vec![-1, 2, -3, 4, 5, 6],
    };
    assert_eq!(
        mm.encode_payload(),
        vec![64, 0, 0, 0, 2, 0, 3, 0, 2, 1, 1, 7, 0, 0, 0xFF, 2, 0xFD, 4, 5, 6]
    );
    assert_eq!(mm.encode_payload().len(), MATMUL_HEADER_LEN + 6);
    assert_eq!(mm.reply_len(), 2 * 0x102 * 4);
    assert_eq!(mm.name(), "MATMUL");
    assert!(!mm.is_idempotent());
    assert!(Request::Reset.is_idempotent());
    let f = mm.encode(77);
    let (d, _) = frame_of(decode(&f, REQUEST_SYNC, MAX));
    assert_eq!((d.code, d.seq, d.payload), (0x09, 77, mm.encode_payload()));
}

#[test]
fn reply_parsers() {
    let info = Info {
        proto: 2,
        rtl: 1,
        rows: 16,
        cols: 8,
        wmem_bytes: 1 << 20,
        buf_bytes: 1 << 18,
        acc_words: 1 << 17,
        features: 0b1111,
    };
    let b = info.to_bytes();
    assert_eq!(b.len(), INFO_LEN);
    assert_eq!(&b[..4], &[2, 1, 16, 8]);
    assert_eq!(&b[4..8], &[0, 0, 0x10, 0]);
    assert_eq!(Info::parse(&b).unwrap(), info);
    assert!(info.has(FEATURE_SEU | FEATURE_ROTATION));
    assert!(!info.has(FEATURE_DEFECT_PORT));
    let e = Info::parse(&b[..19]).unwrap_err();
    assert_eq!(e.to_string(), "INFO reply has 19 payload bytes, expected 20");

    let c = Counters { cycles: 1 << 40, macs: 3, flips: u64::MAX };
    assert_eq!(Counters::parse(&c.to_bytes()).unwrap(), c);
    assert!(Counters::parse(&[0; 23]).is_err());
    let d =
        Counters { cycles: 5, macs: 1, flips: 0 }.since(&Counters { cycles: 2, macs: 1, flips: 0 });
    assert_eq!(d, Counters { cycles: 3, macs: 0, flips: 0 });

    let mut p = Vec::new();
    for v in [1i32, -2, i32::MIN, i32::MAX, 0, 7] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(parse_matmul(&p, 2, 3).unwrap(), vec![1, -2, i32::MIN, i32::MAX, 0, 7]);
    assert!(parse_matmul(&p, 3, 3).is_err());
}
