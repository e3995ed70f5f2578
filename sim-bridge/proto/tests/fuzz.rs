//! Property tests of everything that parses untrusted bytes in this crate:
//! the reply decoder, the device's receiver rules ([`RequestGate`]) and the
//! fault-map format. Arbitrary input never panics; after garbage the next
//! valid frame decodes; every refused fault map says which map and why.
//!
//! The runner is seeded (so a failure reproduces) and persists nothing. The
//! long-running version is `cargo run --release -p trainer --example fuzz`.
use std::time::{Duration, Instant};

use faultloop_proto::receiver::{GateEvent, RequestGate};
use faultloop_proto::{
    decode, encode_reply, encode_request, Decoded, FaultMap, Frame, FRAME_OVERHEAD, HEADER_LEN,
    REPLY_SYNC, REQUEST_SYNC,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    Config {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x14_f0_22),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Run the reply decoder over `bytes` as a host does: skip what it says,
/// collect frames, stop at `Incomplete`. Checks the decoder's own contract.
fn decode_all(bytes: &[u8], max_len: usize) -> Vec<Frame> {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        match decode(&bytes[at..], REPLY_SYNC, max_len) {
            Decoded::Incomplete => return out,
            Decoded::Skip { n, .. } => {
                assert!(n >= 1 && at + n <= bytes.len(), "skip {n} at {at} of {}", bytes.len());
                at += n;
            }
            Decoded::Frame { frame, consumed } => {
                assert!(consumed >= FRAME_OVERHEAD && at + consumed <= bytes.len());
                assert!(frame.payload.len() <= max_len);
                at += consumed;
                out.push(frame);
            }
        }
    }
}

/// Bytes that look like frames often: a mix of random bytes, sync bytes and
/// pieces of real frames (corrupted or cut).
fn noisy_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        Just(vec![REQUEST_SYNC]),
        Just(vec![REPLY_SYNC]),
        (any::<u8>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40), any::<usize>())
            .prop_map(|(c, s, p, cut)| {
                let f = encode_request(c, s, &p);
                f[..cut % (f.len() + 1)].to_vec()
            }),
        (any::<u8>(), any::<u16>(), any::<u32>()).prop_map(|(c, s, len)| {
            let mut f = encode_reply(c, s, &[]);
            f[4..8].copy_from_slice(&len.to_le_bytes());
            f
        }),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_decoder_never_panics_and_always_makes_progress(bytes in noisy_stream(), max in 0usize..100) {
        decode_all(&bytes, max);
    }

    /// Garbage, then enough filler to complete any frame the garbage began
    /// (a false header's claimed length), then a good frame: it decodes. The
    /// decoder drops only the sync byte of a bad frame, so it finds the real
    /// one unless the garbage forged a CRC-valid frame spanning it (the
    /// frames found are then all checked against the stream's real content).
    #[test]
    fn after_garbage_the_next_valid_frame_decodes(
        garbage in noisy_stream(),
        code in any::<u8>(), seq in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let max = 64;
        let good = encode_reply(code, seq, &payload);
        let mut s = garbage.clone();
        s.extend(std::iter::repeat(0u8).take(max + FRAME_OVERHEAD));
        s.extend(&good);
        let frames = decode_all(&s, max);
        let want = Frame { code, seq, payload };
        prop_assert!(
            frames.last() == Some(&want),
            "frames {:?}, want {:?} last", frames, want
        );
    }

    /// The device's receiver: any bytes, a silence (the idle timeout), then a
    /// good request is handed on exactly, whatever state the garbage left.
    #[test]
    fn the_receiver_resyncs_after_any_garbage_and_a_silence(
        garbage in noisy_stream(),
        max in 0usize..100,
        code in any::<u8>(), seq in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        // A zero idle timeout: expire() is the silence.
        let mut g = RequestGate::new(max, Duration::ZERO);
        // Pushed in random-ish chunks (by the garbage's own bytes).
        let mut at = 0;
        while at < garbage.len() {
            let n = 1 + garbage[at] as usize % 7;
            let end = (at + n).min(garbage.len());
            g.push(&garbage[at..end]);
            at = end;
            while let Some(ev) = g.next_event() {
                if let GateEvent::Request(f) = ev {
                    prop_assert!(f.payload.len() <= max);
                }
            }
            prop_assert!(g.pending() <= HEADER_LEN + max + 2);
        }
        g.expire(Instant::now());
        prop_assert_eq!(g.pending(), 0);
        let payload: Vec<u8> = payload.into_iter().take(max).collect();
        g.push(&encode_request(code, seq, &payload));
        prop_assert_eq!(g.next_event(), Some(GateEvent::Request(Frame { code, seq, payload })));
        prop_assert_eq!(g.next_event(), None);
    }

    /// Arbitrary text as a fault map: parsed or refused with an error that
    /// names the map and the cause; never a panic.
    #[test]
    fn any_fault_map_text_is_parsed_or_refused_with_a_reason(text in fault_map_text()) {
        match FaultMap::from_json_str(&text) {
            Ok(m) => {
                // A valid map survives its own round trip.
                let back = FaultMap::from_json_str(&m.to_json_string()).unwrap();
                prop_assert_eq!(back.to_json_string(), m.to_json_string());
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("fault map (in memory)"), "{}", msg);
                prop_assert!(msg.len() > "fault map (in memory): ".len(), "{}", msg);
            }
        }
    }
}

/// Near-valid fault maps: real keys with random values, cut at random.
fn fault_map_text() -> impl Strategy<Value = String> {
    let site = prop_oneof![Just("psum"), Just("act"), Just("weight"), Just("pe"), Just("")];
    let fault =
        (0i64..10, -1i64..10, site, any::<u32>(), any::<u32>()).prop_map(|(r, c, s, a, b)| {
            format!(
                r#"{{"row": {r}, "col": {c}, "site": "{s}", "stuck_at_0": {a}, "stuck_at_1": {b}}}"#
            )
        });
    (0i64..10, 0i64..10, proptest::collection::vec(fault, 0..4), any::<bool>(), any::<usize>())
        .prop_map(|(rows, cols, faults, seu, cut)| {
            let mut s = format!(
                r#"{{"array": {{"rows": {rows}, "cols": {cols}}}, "faults": [{}]"#,
                faults.join(", ")
            );
            if seu {
                s.push_str(r#", "seu": {"rate": 0.5, "seed": 3}"#);
            }
            s.push('}');
            // Half the time, cut it anywhere (on a char boundary).
            if cut % 2 == 0 {
                let mut at = (cut / 2) % (s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                s.truncate(at);
            }
            s
        })
}
