//! A deliberately literal MATMUL, written statement by statement from
//! protocol §4 with no precomputation, no lane tricks and no threads. It is
//! the yardstick the fast kernel is tested against; keep it dumb.

// Index loops on purpose: they read like the spec's subscripts.
#![allow(clippy::needless_range_loop)]

use super::{seu_hash, Model, Refusal};

impl Model {
    /// MATMUL per protocol §4, literally. Same validation as the fast path
    /// (shared `check_matmul`), same effects on `p` and the counters.
    pub(super) fn reference_matmul(&mut self, payload: &[u8]) -> Result<Vec<u8>, Refusal> {
        let job = self.check_matmul(payload)?;
        let a = &payload[14..];
        let (rr, cc) = (self.cfg.rows, self.cfg.cols);
        let (mm, kk, nn) = (job.m, job.k, job.n);
        let (kt_n, nt_n) = (job.kt, job.nt);
        let (rho_r, rho_c) = (job.rot_r, job.rot_c);
        let mut acc = vec![0i32; mm * nn];
        let mut flips = 0u64;

        let sext8 = |v: u8| v as i8 as i32;
        let mask8 = |v: u8, m: [u8; 2]| (v | m[1]) & !m[0];
        let mask32 = |v: u32, m: [u32; 2]| (v | m[1]) & !m[0];

        for nt in 0..nt_n {
            for kt in 0..kt_n {
                let p = self.pass;
                self.pass = self.pass.wrapping_add(1);

                // Weight of physical PE (pr, pc).
                let weight = |pr: usize, pc: usize| -> u8 {
                    let r = (pr + rr - rho_r) % rr;
                    let c = (pc + cc - rho_c) % cc;
                    self.wmem[job.base + ((nt * kt_n + kt) * rr + r) * cc + c]
                };

                for m in 0..mm {
                    // s[pc] holds s(pr, pc) for the current pr.
                    let mut s = vec![0u32; cc];
                    for pr in 0..rr {
                        let r = (pr + rr - rho_r) % rr;
                        let k = kt * rr + r;
                        let mut x: u8 = if k < kk { a[m * kk + k] } else { 0 };
                        for pc in 0..cc {
                            let f = self.faults[pr * cc + pc];
                            if f.bypass {
                                // s(pr+1,pc) = s(pr,pc); x(pr,pc+1) = x(pr,pc)
                                continue;
                            }
                            let w2 = mask8(weight(pr, pc), f.weight);
                            let mut v = (s[pc] as i32)
                                .wrapping_add(sext8(x).wrapping_mul(sext8(w2)))
                                as u32;
                            if self.seu_rate != 0 {
                                let h = seu_hash(self.seu_seed, p, m as u32, pr as u32, pc as u32);
                                if (h >> 5) < self.seu_rate {
                                    v ^= 1 << (h & 31);
                                    flips += 1;
                                }
                            }
                            s[pc] = mask32(v, f.psum);
                            x = mask8(x, f.act);
                        }
                    }
                    for pc in 0..cc {
                        let c = (pc + cc - rho_c) % cc;
                        let n = nt * cc + c;
                        if n < nn {
                            let prev = if kt == 0 { 0 } else { acc[m * nn + n] };
                            acc[m * nn + n] = prev.wrapping_add(s[pc] as i32);
                        }
                    }
                }
            }
        }
        // finish_matmul advances p itself; undo our literal increments first.
        self.pass = self.pass.wrapping_sub((kt_n * nt_n) as u32);
        self.finish_matmul(&job, flips);
        Ok(acc.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// `execute` with MATMUL routed to the literal reference.
    pub(super) fn reference_execute(&mut self, op: u8, payload: &[u8]) -> (u8, Vec<u8>) {
        if op == super::Opcode::Matmul as u8 {
            match self.reference_matmul(payload) {
                Ok(r) => (0, r),
                Err(s) => (s as u8, Vec::new()),
            }
        } else {
            self.execute(op, payload)
        }
    }
}
