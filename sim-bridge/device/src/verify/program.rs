//! Random request programs over every feature of the protocol, from a seed.
//!
//! One program is one case of the differential regression: RESET, random
//! weights, stuck-at faults at a random rate (0–50 %) over all three sites
//! with both polarities and multi-bit masks, bypass, maybe transient flips,
//! a MATMUL with or without rotation, a sparse weight patch, bypass cleared,
//! the MATMUL again, one refused request (or INFO), COUNTERS, and sometimes
//! CLEAR_FAULTS with a clean MATMUL and COUNTERS.

use faultloop_proto::rng::Rng;
use faultloop_proto::{Request, Site};

/// A request program and the sequence numbers its frames carry: request `i`
/// is sent with `seq0 + i + 1` (wrapping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub seq0: u16,
    pub requests: Vec<Request>,
}

impl Program {
    /// Request `i`'s sequence number.
    pub fn seq(&self, i: usize) -> u16 {
        self.seq0.wrapping_add(1).wrapping_add(i as u16)
    }

    /// Request `i` as a frame.
    pub fn frame(&self, i: usize) -> Vec<u8> {
        self.requests[i].encode(self.seq(i))
    }

    /// The same program with only the requests at `keep` (in order).
    pub fn subset(&self, keep: &[usize]) -> Program {
        Program {
            seq0: self.seq0,
            requests: keep.iter().map(|&i| self.requests[i].clone()).collect(),
        }
    }
}

/// A one-line summary of a request (its name and shape, not its data).
pub fn summary(req: &Request) -> String {
    let what = match req {
        Request::Matmul { base, m, k, n, rot, .. } => {
            format!("base {base}, {m}x{k}x{n}, rotation ({}, {})", rot.0, rot.1)
        }
        Request::WriteWeights { addr, data } => format!("addr {addr}, {} bytes", data.len()),
        Request::PatchWeights(e) => format!("{} entries", e.len()),
        Request::SetFault { row, col, site, sa0, sa1 } => {
            format!("PE ({row}, {col}) {site} sa0 {sa0:#x} sa1 {sa1:#x}")
        }
        Request::SetBypass { row, col, on } => {
            format!("PE ({row}, {col}) {}", if *on { "on" } else { "off" })
        }
        Request::SetSeu { rate, seed } => format!("rate {rate}, seed {seed}"),
        Request::Info | Request::Reset | Request::ClearFaults | Request::Counters => String::new(),
    };
    if what.is_empty() {
        req.name().to_string()
    } else {
        format!("{} ({what})", req.name())
    }
}

/// The seed of case `k` of a run with seed `seed`: a pure function of both,
/// so a case is the same in every shard and on every machine.
pub fn case_seed(seed: u64, k: usize) -> u64 {
    let mut r = Rng::new(seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    r.next_u64()
}

/// Random int8 bytes.
pub fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0i8; n];
    rng.fill_i8(&mut v);
    v.into_iter().map(|x| x as u8).collect()
}

/// Random stuck-at masks for a site `width` bits wide: 1..=`max_bits` random
/// bits, each stuck at 0 or 1 (never both).
pub fn random_masks(rng: &mut Rng, width: u32, max_bits: u64) -> (u32, u32) {
    let (mut sa0, mut sa1) = (0u32, 0u32);
    for _ in 0..1 + rng.below(max_bits) {
        let bit = 1u32 << rng.below(width as u64);
        if rng.below(2) == 0 {
            sa0 |= bit;
        } else {
            sa1 |= bit;
        }
    }
    (sa0 & !sa1, sa1)
}

/// One random program for a `rows`x`cols` array (see the module docs).
pub fn random_program(rng: &mut Rng, rows: usize, cols: usize) -> Program {
    let mut p = Program { seq0: rng.next_u32() as u16, requests: Vec::new() };
    let r = &mut p.requests;
    r.push(Request::Reset);

    // Operands. M = 1 in a tenth of the cases; K and N up to three tiles and a bit.
    let m = if rng.below(10) == 0 { 1 } else { 1 + rng.index(24) };
    let k = 1 + rng.index(3 * rows + 3);
    let n = 1 + rng.index(3 * cols + 3);
    let (kt, nt) = (k.div_ceil(rows), n.div_ceil(cols));
    let region = kt * nt * rows * cols;
    let base = cols * rng.index(64);
    // Random bytes everywhere, padding included: padding weights meet zero
    // activations, which stuck-at-1 act bits can make non-zero.
    let w = random_bytes(rng, region);
    r.push(Request::WriteWeights { addr: base as u32, data: w });

    // Stuck-at faults at a random rate in 0..50 %.
    let rate = rng.f64() * 0.5;
    for row in 0..rows {
        for col in 0..cols {
            if rng.f64() < rate {
                let site = Site::ALL[rng.index(3)];
                let (sa0, sa1) = random_masks(rng, site.bits(), 3);
                r.push(Request::SetFault { row: row as u8, col: col as u8, site, sa0, sa1 });
            }
            if rng.f64() < rate / 4.0 {
                r.push(Request::SetBypass { row: row as u8, col: col as u8, on: true });
            }
        }
    }
    if rng.below(3) == 0 {
        let seu_rate = [1u32, 1000, 1 << 17, 1 << 20, 1 << 27][rng.index(5)];
        r.push(Request::SetSeu { rate: seu_rate, seed: rng.next_u32() });
    }

    let rot_of = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            (0, 0)
        } else {
            (rng.index(rows) as u8, rng.index(cols) as u8)
        }
    };
    let mut a = vec![0i8; m * k];
    rng.fill_i8(&mut a);
    let r1 = rot_of(rng);
    let (bu, mu, ku, nu) = (base as u32, m as u16, k as u16, n as u16);
    r.push(Request::Matmul { base: bu, m: mu, k: ku, n: nu, rot: r1, a: a.clone() });

    // A sparse patch, then the same matmul again (and maybe a different rotation).
    let patch: Vec<(u32, i8)> = (0..1 + rng.index(12))
        .map(|_| ((base + rng.index(region)) as u32, rng.next_u32() as i8))
        .collect();
    r.push(Request::PatchWeights(patch));
    if rng.below(4) == 0 {
        r.push(Request::SetBypass {
            row: rng.index(rows) as u8,
            col: rng.index(cols) as u8,
            on: false,
        });
    }
    let r2 = rot_of(rng);
    r.push(Request::Matmul { base: bu, m: mu, k: ku, n: nu, rot: r2, a });

    // Refused requests must be refused identically and change nothing.
    match rng.below(4) {
        0 => {
            r.push(Request::SetFault { row: rows as u8, col: 0, site: Site::Psum, sa0: 1, sa1: 0 })
        }
        1 => r.push(Request::Matmul { base: 0, m: 0, k: 1, n: 1, rot: (0, 0), a: vec![] }),
        2 => r.push(Request::SetSeu { rate: (1 << 27) + 1, seed: 0 }),
        _ => r.push(Request::Info),
    }
    r.push(Request::Counters);
    if rng.below(4) == 0 {
        r.push(Request::ClearFaults);
        let mut a = vec![0i8; k];
        rng.fill_i8(&mut a);
        r.push(Request::Matmul { base: bu, m: 1, k: ku, n: nu, rot: (0, 0), a });
        r.push(Request::Counters);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_a_function_of_the_seed_and_cover_every_request() {
        let a = random_program(&mut Rng::new(case_seed(5, 3)), 4, 4);
        let b = random_program(&mut Rng::new(case_seed(5, 3)), 4, 4);
        assert_eq!(a, b);
        assert_ne!(case_seed(5, 3), case_seed(5, 4));
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..200 {
            let p = random_program(&mut Rng::new(case_seed(1, k)), 4, 4);
            assert_eq!(p.requests[0], Request::Reset);
            for r in &p.requests {
                seen.insert(r.name());
            }
        }
        assert_eq!(seen.len(), faultloop_proto::Opcode::ALL.len(), "{seen:?}");
    }
}
