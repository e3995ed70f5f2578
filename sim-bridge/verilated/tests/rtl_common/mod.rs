//! Shared helpers of the rtl_* tests: a tiny frame builder/parser with its
//! own CRC (independent of faultloop-proto) and a direct transcription of
//! docs/protocol.md section 4 as the reference.
#![allow(dead_code)]
// The reference transcribes the spec's index loops literally.
#![allow(clippy::needless_range_loop)]

use std::time::Duration;

use faultloop_proto::Link;
use faultloop_verilated::SimLink;

pub const INFO: u8 = 0x01;
pub const RESET: u8 = 0x02;
pub const WRITE_WEIGHTS: u8 = 0x03;
pub const PATCH_WEIGHTS: u8 = 0x04;
pub const SET_FAULT: u8 = 0x05;
pub const SET_BYPASS: u8 = 0x06;
pub const CLEAR_FAULTS: u8 = 0x07;
pub const SET_SEU: u8 = 0x08;
pub const MATMUL: u8 = 0x09;
pub const COUNTERS: u8 = 0x0A;

pub const OK: u8 = 0;
pub const BAD_CRC: u8 = 1;
pub const BAD_OPCODE: u8 = 2;
pub const BAD_LENGTH: u8 = 3;
pub const OUT_OF_RANGE: u8 = 4;

pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

pub fn frame(op: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xA5, op];
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    let crc = crc16(&f[1..]);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u8,
    pub seq: u16,
    pub payload: Vec<u8>,
}

/// A Verilated device plus the reply bytes received but not yet parsed.
pub struct Dev {
    pub link: SimLink,
    pub rx: Vec<u8>,
}

impl Dev {
    pub fn open(r: usize, c: usize) -> Dev {
        Dev { link: SimLink::open(r, c).unwrap_or_else(|e| panic!("{e}")), rx: Vec::new() }
    }
    pub fn send(&mut self, bytes: &[u8]) {
        self.link.send(bytes).unwrap();
    }
}

/// Read exactly one reply frame (checks sync and CRC).
pub fn recv_reply(d: &mut Dev) -> Reply {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let got = &d.rx;
        if got.len() >= 8 {
            let len = u32::from_le_bytes(got[4..8].try_into().unwrap()) as usize;
            if got.len() >= 10 + len {
                assert_eq!(got[0], 0x5A, "reply sync");
                let crc = u16::from_le_bytes([got[8 + len], got[9 + len]]);
                assert_eq!(crc, crc16(&got[1..8 + len]), "reply CRC");
                let r = Reply {
                    status: got[1],
                    seq: u16::from_le_bytes([got[2], got[3]]),
                    payload: got[8..8 + len].to_vec(),
                };
                d.rx.drain(..10 + len);
                return r;
            }
        }
        let n = d.link.recv(&mut buf, Duration::from_secs(60)).unwrap();
        assert!(n > 0, "no reply from {} (have {} bytes)", d.link.name(), d.rx.len());
        d.rx.extend_from_slice(&buf[..n]);
    }
}

pub fn xfer(d: &mut Dev, op: u8, seq: u16, payload: &[u8]) -> Reply {
    d.send(&frame(op, seq, payload));
    let r = recv_reply(d);
    assert_eq!(r.seq, seq, "seq echo");
    r
}

pub fn ok(d: &mut Dev, op: u8, payload: &[u8]) -> Vec<u8> {
    let r = xfer(d, op, 0x1234, payload);
    assert_eq!(r.status, OK, "op {op:#x} status");
    r.payload
}

/// No more bytes come from the device.
pub fn assert_silent(d: &mut Dev) {
    assert!(d.rx.is_empty(), "unexpected bytes {:02x?}", d.rx);
    let mut buf = [0u8; 64];
    let n = d.link.recv(&mut buf, Duration::from_millis(200)).unwrap();
    assert_eq!(n, 0, "unexpected bytes {:02x?}", &buf[..n]);
}

pub fn fault_payload(row: u8, col: u8, site: u8, sa0: u32, sa1: u32) -> Vec<u8> {
    let mut p = vec![row, col, site];
    p.extend_from_slice(&sa0.to_le_bytes());
    p.extend_from_slice(&sa1.to_le_bytes());
    p
}

pub fn matmul_payload(base: u32, m: usize, k: usize, n: usize, rot: (u8, u8), a: &[i8]) -> Vec<u8> {
    let mut p = base.to_le_bytes().to_vec();
    p.extend_from_slice(&(m as u16).to_le_bytes());
    p.extend_from_slice(&(k as u16).to_le_bytes());
    p.extend_from_slice(&(n as u16).to_le_bytes());
    p.push(rot.0);
    p.push(rot.1);
    p.extend_from_slice(&[0, 0]); // reserved u16
    p.extend(a.iter().map(|&v| v as u8));
    p
}

pub fn i32s(bytes: &[u8]) -> Vec<i32> {
    bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// protocol.md s3 layout of a K x N matrix (row-major w[k*N + n]).
pub fn layout(w: &[i8], k: usize, n: usize, r: usize, c: usize) -> Vec<u8> {
    let kt_n = k.div_ceil(r);
    let nt_n = n.div_ceil(c);
    let mut img = vec![0u8; kt_n * nt_n * r * c];
    for kk in 0..k {
        for nn in 0..n {
            let (kt, rr, nt, cc) = (kk / r, kk % r, nn / c, nn % c);
            img[((nt * kt_n + kt) * r + rr) * c + cc] = w[kk * n + nn] as u8;
        }
    }
    img
}

pub fn write_weights(d: &mut Dev, base: u32, img: &[u8]) {
    let chunk = (1 << 18) - 4;
    for (i, part) in img.chunks(chunk).enumerate() {
        let mut p = (base + (i * chunk) as u32).to_le_bytes().to_vec();
        p.extend_from_slice(part);
        ok(d, WRITE_WEIGHTS, &p);
    }
}

pub fn plain_matmul(a: &[i8], w: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    let mut y = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0i32;
            for kk in 0..k {
                s = s.wrapping_add(a[i * k + kk] as i32 * w[kk * n + j] as i32);
            }
            y[i * n + j] = s;
        }
    }
    y
}

/// Deterministic pseudo-random bytes.
pub fn rand_i8(n: usize, seed: u64) -> Vec<i8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as i8
        })
        .collect()
}

pub fn seu_hash(seed: u32, p: u32, m: u32, pr: u32, pc: u32) -> u32 {
    // protocol §4: h = u(pr) ^ alpha * u(pc), u(i) the index hash of row m.
    let u = |i: u32| {
        let mut x = seed
            ^ p.wrapping_mul(0x9E37_79B1)
            ^ m.wrapping_mul(0x85EB_CA77)
            ^ i.wrapping_mul(0xC2B2_AE3D);
        x ^= x >> 16;
        x = x.wrapping_mul(0x7FEB_352D);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846C_A68B);
        x ^= x >> 16;
        x
    };
    let uc = u(pc);
    let alpha_uc = (uc << 1) ^ if uc & 0x8000_0000 != 0 { 0x0040_0007 } else { 0 };
    u(pr) ^ alpha_uc
}

/// docs/protocol.md section 4, transcribed loop by loop.
pub struct RefDla {
    pub r: usize,
    pub c: usize,
    pub wmem: Vec<u8>,
    pub sa: Vec<[(u32, u32); 3]>, // per PE, per site: (sa0, sa1)
    pub byp: Vec<bool>,
    pub rate: u32,
    pub seed: u32,
    pub p: u32,
    pub cycles: u64,
    pub macs: u64,
    pub flips: u64,
}

impl RefDla {
    pub fn new(r: usize, c: usize) -> Self {
        RefDla {
            r,
            c,
            wmem: vec![0; 1 << 20],
            sa: vec![[(0, 0); 3]; r * c],
            byp: vec![false; r * c],
            rate: 0,
            seed: 0,
            p: 0,
            cycles: 0,
            macs: 0,
            flips: 0,
        }
    }

    fn mask(v: u32, (sa0, sa1): (u32, u32)) -> u32 {
        (v | sa1) & !sa0
    }

    pub fn matmul(
        &mut self,
        base: usize,
        m: usize,
        k: usize,
        n: usize,
        rot: (usize, usize),
        a: &[i8],
    ) -> Vec<i32> {
        let (rr, cc) = (self.r, self.c);
        let kt_n = k.div_ceil(rr);
        let nt_n = n.div_ceil(cc);
        let mut acc = vec![0i32; m * n];
        for nt in 0..nt_n {
            for kt in 0..kt_n {
                let p = self.p;
                self.p = self.p.wrapping_add(1);
                let logical = |phys: usize, rot: usize, size: usize| (phys + size - rot) % size;
                for mi in 0..m {
                    let mut s = vec![0u32; cc];
                    for pr in 0..rr {
                        let r = logical(pr, rot.0, rr);
                        let kk = kt * rr + r;
                        let mut x: u8 = if kk < k { a[mi * k + kk] as u8 } else { 0 };
                        for pc in 0..cc {
                            let c = logical(pc, rot.1, cc);
                            let pe = pr * cc + pc;
                            if self.byp[pe] {
                                continue; // psum and act pass unchanged
                            }
                            let w = self.wmem[base + ((nt * kt_n + kt) * rr + r) * cc + c];
                            let w = Self::mask(w as u32, self.sa[pe][2]) as u8;
                            let mut v =
                                s[pc].wrapping_add((x as i8 as i32 * w as i8 as i32) as u32);
                            if self.rate != 0 {
                                let h = seu_hash(self.seed, p, mi as u32, pr as u32, pc as u32);
                                if (h >> 5) < self.rate {
                                    v ^= 1 << (h & 31);
                                    self.flips += 1;
                                }
                            }
                            s[pc] = Self::mask(v, self.sa[pe][0]);
                            x = Self::mask(x as u32, self.sa[pe][1]) as u8;
                        }
                    }
                    for pc in 0..cc {
                        let c = logical(pc, rot.1, cc);
                        let nn = nt * cc + c;
                        if nn < n {
                            let o = &mut acc[mi * n + nn];
                            *o = if kt == 0 { s[pc] as i32 } else { o.wrapping_add(s[pc] as i32) };
                        }
                    }
                }
            }
        }
        self.cycles += (kt_n * nt_n * (m + 2 * rr + cc)) as u64;
        self.macs += (m * k * n) as u64;
        acc
    }
}
