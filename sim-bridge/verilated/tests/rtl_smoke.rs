//! Smoke tests of the Verilated RTL (`sim:RxC`) against hand-computed values
//! and a direct transcription of docs/protocol.md (tests/rtl_common.rs).

mod rtl_common;

use faultloop_proto::Link;
use faultloop_verilated::{sim_sizes as built_sizes, SimLink};
use rtl_common::*;

fn open(r: usize, c: usize) -> Dev {
    Dev::open(r, c)
}

#[test]
fn sizes_and_name() {
    let sizes = built_sizes();
    assert!(!sizes.is_empty());
    for &(r, c) in &sizes {
        let d = open(r, c);
        assert_eq!(d.link.name(), format!("sim:{r}x{c}"));
    }
    let err = SimLink::open(3, 5).err().expect("3x5 is never built");
    assert!(err.to_string().contains("3x5"), "{err}");
}

#[test]
fn info() {
    for (r, c) in built_sizes() {
        let mut link = open(r, c);
        let p = ok(&mut link, INFO, &[]);
        let mut want = vec![2u8, 1, r as u8, c as u8];
        for v in [1u32 << 20, 1 << 18, 1 << 17, 0b0_1111] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(p, want, "INFO of sim:{r}x{c}");
        let cfg = faultloop_proto::Info::sim(r, c);
        assert_eq!(
            (cfg.rows, cfg.cols, cfg.wmem_bytes, cfg.buf_bytes, cfg.acc_words, cfg.features),
            (r, c, 1 << 20, 1 << 18, 1 << 17, 0b0_1111)
        );
    }
}

/// Exact reply bytes of INFO on 4x4, seq 7.
#[test]
fn info_bytes() {
    let mut link = open(4, 4);
    link.send(&frame(INFO, 7, &[]));
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < 30 {
        let n = link.link.recv(&mut buf, std::time::Duration::from_secs(10)).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let mut want = vec![0x5A, 0x00, 7, 0, 20, 0, 0, 0, 2, 1, 4, 4];
    want.extend_from_slice(&[0, 0, 0x10, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0x0F, 0, 0, 0]);
    let crc = crc16(&want[1..]);
    want.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(got, want);
}

fn check_matmul(link: &mut Dev, r: usize, c: usize, m: usize, k: usize, n: usize, seed: u64) {
    let w = rand_i8(k * n, seed);
    let a = rand_i8(m * k, seed + 1);
    let base = (c * 3) as u32;
    write_weights(link, base, &layout(&w, k, n, r, c));
    let y = i32s(&ok(link, MATMUL, &matmul_payload(base, m, k, n, (0, 0), &a)));
    assert_eq!(y, plain_matmul(&a, &w, m, k, n), "sim:{r}x{c} M={m} K={k} N={n}");
}

#[test]
fn matmul_odd_shapes() {
    for (r, c) in built_sizes() {
        let mut link = open(r, c);
        check_matmul(&mut link, r, c, 1, 1, 1, 1);
        check_matmul(&mut link, r, c, 1, r + 3, 2 * c + 1, 2);
        check_matmul(&mut link, r, c, 5, 2 * r - 1, c - 1, 3);
        check_matmul(&mut link, r, c, 37, 3 * r + 2, 2 * c + 3, 4);
        // counters: cycles formula of protocol.md s4
        let cnt = ok(&mut link, COUNTERS, &[]);
        let (mut cycles, mut macs) = (0u64, 0u64);
        for (m, k, n) in
            [(1, 1, 1), (1, r + 3, 2 * c + 1), (5, 2 * r - 1, c - 1), (37, 3 * r + 2, 2 * c + 3)]
        {
            cycles += (k.div_ceil(r) * n.div_ceil(c) * (m + 2 * r + c)) as u64;
            macs += (m * k * n) as u64;
        }
        assert_eq!(u64::from_le_bytes(cnt[0..8].try_into().unwrap()), cycles, "cycles sim:{r}x{c}");
        assert_eq!(u64::from_le_bytes(cnt[8..16].try_into().unwrap()), macs, "macs");
        assert_eq!(u64::from_le_bytes(cnt[16..24].try_into().unwrap()), 0, "flips");
    }
}

/// 4x4, K=4, N=4, M=1: a = [1,2,3,4], W[k][n] = (k+1)*(n+1) (rotation 0:
/// logical = physical). Clean result y[n] = (n+1)*(1+4+9+16) = 30*(n+1).
fn small_setup(link: &mut Dev) -> (Vec<i8>, Vec<i8>) {
    let a: Vec<i8> = vec![1, 2, 3, 4];
    let w: Vec<i8> = (0..16).map(|i| ((i / 4 + 1) * (i % 4 + 1)) as i8).collect();
    write_weights(link, 0, &layout(&w, 4, 4, 4, 4));
    (a, w)
}

fn small_run(link: &mut Dev, a: &[i8], rot: (u8, u8)) -> Vec<i32> {
    i32s(&ok(link, MATMUL, &matmul_payload(0, 1, 4, 4, rot, a)))
}

#[test]
fn faults_hand_computed() {
    let mut link = open(4, 4);
    let (a, _w) = small_setup(&mut link);
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30, 60, 90, 120]);

    // psum stuck-at-1 bit 8 at the bottom PE of column 1: 60 | 256 = 316.
    ok(&mut link, SET_FAULT, &fault_payload(3, 1, 0, 0, 1 << 8));
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30, 316, 90, 120]);
    // psum stuck-at-0 bit 1 at PE(0,0) (feeds the rows below): column 0 is
    // 1*1 = 1 -> 1, then +2*2 +3*3 +4*4 = 30 (bit 1 of 1 is 0 anyway);
    // at PE(1,0): replace the mask: sa0 bit 0 on s(2,0) = 1 + 4 = 5 -> 4,
    // final 4 + 9 + 16 = 29.
    ok(&mut link, CLEAR_FAULTS, &[]);
    ok(&mut link, SET_FAULT, &fault_payload(1, 0, 0, 1, 0));
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![29, 60, 90, 120]);

    // act stuck-at-0 bit 1 at PE(2,0): row 2 carries a=3; PE(2,0) itself
    // multiplies 3, PEs (2,1..3) see 3 & !2 = 1: columns 1..3 lose
    // (3-1)*W[2][n] = 2*3*(n+1).
    ok(&mut link, CLEAR_FAULTS, &[]);
    ok(&mut link, SET_FAULT, &fault_payload(2, 0, 1, 2, 0));
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30, 60 - 12, 90 - 18, 120 - 24]);

    // weight stuck-at-1 bit 4 at PE(3,2): W[3][2] = 12 -> 28, y[2] += 4*16.
    ok(&mut link, CLEAR_FAULTS, &[]);
    ok(&mut link, SET_FAULT, &fault_payload(3, 2, 2, 0, 0x10));
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30, 60, 90 + 64, 120]);

    // bypass PE(1,3): y[3] loses a[1]*W[1][3] = 2*8.
    ok(&mut link, CLEAR_FAULTS, &[]);
    ok(&mut link, SET_BYPASS, &[1, 3, 1]);
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30, 60, 90, 120 - 16]);
    // bypass skips the PE's act fault too: act fault on a bypassed PE(1,0)
    // has no effect, bypass of PE(1,0) drops a[1]*W[1][0] = 4 from y[0].
    ok(&mut link, SET_BYPASS, &[1, 3, 0]);
    ok(&mut link, SET_FAULT, &fault_payload(1, 0, 1, 0xFF, 0));
    ok(&mut link, SET_BYPASS, &[1, 0, 1]);
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![26, 60, 90, 120]);

    // RESET clears faults, keeps the weights.
    ok(&mut link, RESET, &[]);
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30, 60, 90, 120]);
}

#[test]
fn rotation() {
    let mut link = open(4, 4);
    let (a, _w) = small_setup(&mut link);
    // Without faults rotation changes nothing.
    for rot in [(1, 0), (0, 3), (2, 1), (3, 3)] {
        assert_eq!(small_run(&mut link, &a, rot), vec![30, 60, 90, 120], "rot {rot:?}");
    }
    // psum stuck-at-1 bit 8 on physical PE(3,1): with rot_c = 2 physical
    // column 1 holds logical column (1-2) mod 4 = 3.
    ok(&mut link, SET_FAULT, &fault_payload(3, 1, 0, 0, 1 << 8));
    assert_eq!(small_run(&mut link, &a, (0, 2)), vec![30, 60, 90, 120 | 256]);
    // weight stuck-at-1 bit 4 on physical PE(0,0) with rot (1,1): logical
    // (3,3): W[3][3] = 16 -> 16 | 16 = 16 (no change); rot (2,3): logical
    // (2,1): W[2][1] = 6 -> 22, y[1] += 3*16.
    ok(&mut link, CLEAR_FAULTS, &[]);
    ok(&mut link, SET_FAULT, &fault_payload(0, 0, 2, 0, 0x10));
    assert_eq!(small_run(&mut link, &a, (1, 1)), vec![30, 60, 90, 120]);
    assert_eq!(small_run(&mut link, &a, (2, 3)), vec![30, 60 + 48, 90, 120]);
}

/// Larger random cases with faults, bypass, rotation and transient flips
/// against the protocol.md transcription.
#[test]
fn faults_vs_reference() {
    for (r, c) in built_sizes() {
        let mut link = open(r, c);
        let mut rf = RefDla::new(r, c);
        let (m, k, n) = (9, 2 * r + 3, 2 * c - 1);
        let w = rand_i8(k * n, 11);
        let img = layout(&w, k, n, r, c);
        let base = 2 * c;
        write_weights(&mut link, base as u32, &img);
        rf.wmem[base..base + img.len()].copy_from_slice(&img);
        // padding-row faults matter: stuck weight in the last (padding) row
        let faults = [
            (1, 2, 0u8, 0u32, 0x0000_0100u32),
            (r - 1, 0, 0, 0x8000_0000, 0),
            (0, c - 1, 1, 0, 0x40),
            (r / 2, 1, 1, 0x01, 0x80),
            (r - 1, c / 2, 2, 0, 0x03),
            (2, c - 2, 2, 0x80, 0),
        ];
        for &(pr, pc, site, sa0, sa1) in &faults {
            ok(&mut link, SET_FAULT, &fault_payload(pr as u8, pc as u8, site, sa0, sa1));
            rf.sa[pr * c + pc][site as usize] = (sa0, sa1);
        }
        for &(pr, pc) in &[(0, 0), (r - 2, c - 1)] {
            ok(&mut link, SET_BYPASS, &[pr as u8, pc as u8, 1]);
            rf.byp[pr * c + pc] = true;
        }
        for (i, rot) in [(0u8, 0u8), (1, 2), ((r - 1) as u8, (c - 1) as u8)].into_iter().enumerate()
        {
            if i == 2 {
                // transient flips: rate 2^27/8
                let mut p = (1u32 << 24).to_le_bytes().to_vec();
                p.extend_from_slice(&0xC0FFEEu32.to_le_bytes());
                ok(&mut link, SET_SEU, &p);
                rf.rate = 1 << 24;
                rf.seed = 0xC0FFEE;
                rf.p = 0;
            }
            let a = rand_i8(m * k, 20 + i as u64);
            let y = i32s(&ok(&mut link, MATMUL, &matmul_payload(base as u32, m, k, n, rot, &a)));
            let want = rf.matmul(base, m, k, n, (rot.0 as usize, rot.1 as usize), &a);
            assert_eq!(y, want, "sim:{r}x{c} rot {rot:?}");
        }
        let cnt = ok(&mut link, COUNTERS, &[]);
        assert_eq!(u64::from_le_bytes(cnt[0..8].try_into().unwrap()), rf.cycles);
        assert_eq!(u64::from_le_bytes(cnt[8..16].try_into().unwrap()), rf.macs);
        assert_eq!(u64::from_le_bytes(cnt[16..24].try_into().unwrap()), rf.flips);
        assert!(rf.flips > 0);
    }
}

#[test]
fn patch_weights() {
    let mut link = open(4, 4);
    let (a, _w) = small_setup(&mut link);
    // W[0][0] (addr 0) := 5 then := 2 (later entry wins); W[3][3] (addr 15) := -1
    let mut p = Vec::new();
    for (addr, v) in [(0u32, 5u8), (15, 0xFF), (0, 2)] {
        p.extend_from_slice(&addr.to_le_bytes()[..3]);
        p.push(v);
    }
    ok(&mut link, PATCH_WEIGHTS, &p);
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30 + 1, 60, 90, 120 - 4 * 17]);
    // out of range entry: whole patch rejected
    let mut bad = p.clone();
    bad[0..4].copy_from_slice(&[0, 0, 0, 9]);
    bad.extend_from_slice(&[0x00, 0x00, 0x10, 1]); // addr 1<<20
    assert_eq!(xfer(&mut link, PATCH_WEIGHTS, 3, &bad).status, OUT_OF_RANGE);
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30 + 1, 60, 90, 120 - 4 * 17]);
    assert_eq!(xfer(&mut link, PATCH_WEIGHTS, 4, &[1, 2, 3]).status, BAD_LENGTH);
}

#[test]
fn errors_and_resync() {
    let mut link = open(4, 4);
    let info = ok(&mut link, INFO, &[]);

    // garbage before a frame is skipped
    let mut bytes = vec![0x00, 0x5A, 0xFF, 0x13];
    bytes.extend(frame(INFO, 1, &[]));
    link.send(&bytes);
    let r = recv_reply(&mut link);
    assert_eq!((r.status, r.seq, &r.payload), (OK, 1, &info));

    // bad CRC: answered, seq as received, nothing executed
    let mut f = frame(SET_BYPASS, 2, &[0, 0, 1]);
    let l = f.len();
    f[l - 1] ^= 0x55;
    link.send(&f);
    assert_eq!(recv_reply(&mut link), Reply { status: BAD_CRC, seq: 2, payload: vec![] });

    // unknown opcodes, even with a length the opcode table does not know
    assert_eq!(xfer(&mut link, 0x00, 3, &[]).status, BAD_OPCODE);
    assert_eq!(xfer(&mut link, 0x0B, 4, &[1, 2, 3]).status, BAD_OPCODE);
    assert_eq!(xfer(&mut link, 0xFF, 5, &[]).status, BAD_OPCODE);

    // wrong lengths
    assert_eq!(xfer(&mut link, INFO, 6, &[0]).status, BAD_LENGTH);
    assert_eq!(xfer(&mut link, SET_FAULT, 7, &[0; 10]).status, BAD_LENGTH);
    assert_eq!(xfer(&mut link, SET_BYPASS, 8, &[0; 4]).status, BAD_LENGTH);
    assert_eq!(xfer(&mut link, SET_SEU, 9, &[0; 7]).status, BAD_LENGTH);
    assert_eq!(xfer(&mut link, WRITE_WEIGHTS, 10, &[0; 3]).status, BAD_LENGTH);
    assert_eq!(xfer(&mut link, MATMUL, 11, &[0; 13]).status, BAD_LENGTH);
    assert_eq!(xfer(&mut link, MATMUL, 14, &[0; 12]).status, BAD_LENGTH);
    assert_eq!(
        xfer(&mut link, MATMUL, 12, &matmul_payload(0, 2, 3, 4, (0, 0), &[1; 5])).status,
        BAD_LENGTH
    );
    // length checked before range
    assert_eq!(
        xfer(&mut link, MATMUL, 13, &matmul_payload(0, 0, 3, 4, (0, 0), &[1; 1])).status,
        BAD_LENGTH
    );

    // out of range
    assert_eq!(xfer(&mut link, SET_FAULT, 20, &fault_payload(4, 0, 0, 0, 1)).status, OUT_OF_RANGE);
    assert_eq!(xfer(&mut link, SET_FAULT, 21, &fault_payload(0, 4, 0, 0, 1)).status, OUT_OF_RANGE);
    assert_eq!(xfer(&mut link, SET_FAULT, 22, &fault_payload(0, 0, 3, 0, 1)).status, OUT_OF_RANGE);
    assert_eq!(
        xfer(&mut link, SET_FAULT, 23, &fault_payload(0, 0, 1, 0, 0x100)).status,
        OUT_OF_RANGE
    );
    assert_eq!(xfer(&mut link, SET_FAULT, 24, &fault_payload(0, 0, 0, 3, 6)).status, OUT_OF_RANGE);
    assert_eq!(xfer(&mut link, SET_BYPASS, 25, &[0, 0, 2]).status, OUT_OF_RANGE);
    let mut seu = ((1u32 << 27) + 1).to_le_bytes().to_vec();
    seu.extend_from_slice(&[0; 4]);
    assert_eq!(xfer(&mut link, SET_SEU, 26, &seu).status, OUT_OF_RANGE);
    let mut ww = ((1u32 << 20) - 2).to_le_bytes().to_vec();
    ww.extend_from_slice(&[0; 3]);
    assert_eq!(xfer(&mut link, WRITE_WEIGHTS, 27, &ww).status, OUT_OF_RANGE);
    let mut ww = u32::MAX.to_le_bytes().to_vec();
    ww.extend_from_slice(&[0; 3]);
    assert_eq!(xfer(&mut link, WRITE_WEIGHTS, 28, &ww).status, OUT_OF_RANGE);
    for (i, (base, m, k, n, rot)) in [
        (0u32, 0usize, 4usize, 4usize, (0u8, 0u8)),
        (0, 1, 0, 4, (0, 0)),
        (0, 1, 4, 0, (0, 0)),
        (0, 1, 4, 4, (4, 0)),
        (0, 1, 4, 4, (0, 4)),
        (2, 1, 4, 4, (0, 0)),
        ((1 << 20) - 12, 1, 4, 4, (0, 0)),
        (0, 3, 1, 65535, (0, 0)),
    ]
    .into_iter()
    .enumerate()
    {
        let p = matmul_payload(base, m, k, n, rot, &vec![0; m * k]);
        assert_eq!(xfer(&mut link, MATMUL, 30 + i as u16, &p).status, OUT_OF_RANGE, "case {i}");
    }
    // fits exactly: last tile ends at WmemBytes; m*n == AccWords
    let p = matmul_payload((1 << 20) - 16, 1, 4, 4, (0, 0), &[0; 4]);
    assert_eq!(xfer(&mut link, MATMUL, 40, &p).status, OK);
    let p = matmul_payload(0, 2, 1, 65535, (0, 0), &[0; 2]);
    assert_eq!(xfer(&mut link, MATMUL, 41, &p).status, OK);

    // header-time BAD_LENGTH: len > BufBytes answered at once; the payload
    // that follows is garbage to the hunter.
    let mut h = vec![0xA5, INFO, 42, 0];
    h.extend_from_slice(&((1u32 << 18) + 1).to_le_bytes());
    link.send(&h);
    assert_eq!(recv_reply(&mut link), Reply { status: BAD_LENGTH, seq: 42, payload: vec![] });
    link.send(&[0x11; 100]);
    assert_eq!(xfer(&mut link, INFO, 43, &[]).payload, info);

    // nothing was executed by the failed requests
    let cnt = ok(&mut link, COUNTERS, &[]);
    assert_eq!(u64::from_le_bytes(cnt[8..16].try_into().unwrap()), 16 + 2 * 65535);
    assert_silent(&mut link);
}

#[test]
fn truncated_frame_then_idle() {
    let mut link = open(4, 4);
    let info = ok(&mut link, INFO, &[]);
    for cut in [1usize, 3, 8, 11, 12] {
        let f = frame(SET_BYPASS, 9, &[0, 0, 1]);
        link.send(&f[..cut]);
        link.link.idle(5000); // > IdleTimeout (4096)
        let r = xfer(&mut link, INFO, 10 + cut as u16, &[]);
        assert_eq!((r.status, r.payload), (OK, info.clone()), "cut {cut}");
    }
    // and recv on a partial frame answers nothing, then the device hunts again
    let f = frame(INFO, 1, &[]);
    link.send(&f[..5]);
    assert_silent(&mut link);
    assert_eq!(xfer(&mut link, INFO, 2, &[]).payload, info);
    // the bypass request never executed
    let (a, _) = small_setup(&mut link);
    assert_eq!(small_run(&mut link, &a, (0, 0)), vec![30, 60, 90, 120]);
    assert!(link.link.total_cycles() > 6 * 5000);
}

#[test]
fn back_to_back_frames() {
    let mut link = open(4, 4);
    let mut bytes = Vec::new();
    for s in 0..5u16 {
        bytes.extend(frame(INFO, s, &[]));
    }
    link.send(&bytes);
    for s in 0..5u16 {
        let r = recv_reply(&mut link);
        assert_eq!((r.status, r.seq), (OK, s));
    }
}
