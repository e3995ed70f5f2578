//! The device semantics: a pure-Rust, bit-exact twin of the RTL (docs/protocol.md).
//!
//! [`Model::execute`] takes one request that already passed the frame
//! receiver's CRC and `len <= buf_bytes` checks (that is
//! [`ModelLink`](crate::ModelLink)'s job, which applies the receiver rules of
//! protocol §1) and returns exactly the status and payload the RTL would send.
//! The model has no clock, so it never times out a partial frame and never
//! answers BUSY.
//!
//! Two concerns live here:
//! * the request semantics of protocol §2 (validation order, state effects,
//!   counters) — in this file, deliberately plain;
//! * MATMUL (protocol §4) — in the private `kernel` module, written for speed because the model
//!   is also the fault-emulation backend for fault-aware training. A literal,
//!   statement-by-statement reference of §4 lives in `reference` (tests only)
//!   and the tests hold the fast kernel to it bit for bit.

mod kernel;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use faultloop_proto::{Counters, Info, Opcode, Site, Status, FEATURE_SEU, SEU_RATE_ONE};

/// The stuck-at state of one physical PE. Masks are `[sa0, sa1]`, applied as
/// `(v | sa1) & !sa0`; the act and weight masks are 8 bits wide because the
/// device rejects wider ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeFaults {
    pub psum: [u32; 2],
    pub act: [u8; 2],
    pub weight: [u8; 2],
    pub bypass: bool,
}

/// The counter-based transient-flip hash of protocol §4, exported so the RTL
/// testbenches and the host can predict individual flips.
///
/// A pure function of (seed, pass `p`, activation row `m`, physical PE) rather
/// than a free-running LFSR, so the model reproduces every flip of the RTL
/// without simulating cycles, and threads can evaluate passes in any order.
/// It is `u(pr) ^ alpha * u(pc)` of two index hashes of the same row `m`,
/// so the hardware needs one hash unit per row/column index rather than one
/// per PE. A MAC flips when `(h >> 5) < rate`, at bit `h & 31`.
#[inline(always)]
pub fn seu_hash(seed: u32, p: u32, m: u32, pr: u32, pc: u32) -> u32 {
    let base = seu_base(seed, p, m);
    seu_index(base, pr) ^ seu_alpha(seu_index(base, pc))
}

/// The part of the hash input that depends on (seed, p, m) only; hoisted out
/// of the per-PE loop by the kernel.
#[inline(always)]
pub(crate) fn seu_base(seed: u32, p: u32, m: u32) -> u32 {
    seed ^ p.wrapping_mul(0x9E37_79B1) ^ m.wrapping_mul(0x85EB_CA77)
}

/// The index term of the hash input (a physical row or column index).
#[inline(always)]
pub(crate) fn seu_index_term(i: u32) -> u32 {
    i.wrapping_mul(0xC2B2_AE3D)
}

/// The index hash `u(i)` of protocol §4 for the row `m` behind `base`.
#[inline(always)]
pub(crate) fn seu_index(base: u32, i: u32) -> u32 {
    seu_mix(base ^ seu_index_term(i))
}

/// Multiplication by `x` in GF(2)[x] / (x^32 + x^22 + x^2 + x + 1): a
/// bijection, and so is `u ^ alpha(u)` (the diagonal PEs, `pr == pc`).
#[inline(always)]
pub(crate) fn seu_alpha(u: u32) -> u32 {
    (u << 1) ^ if u >> 31 != 0 { 0x0040_0007 } else { 0 }
}

/// The finaliser of the hash (a murmur3-style avalanche).
#[inline(always)]
pub(crate) fn seu_mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

/// Device state and semantics.
#[derive(Clone)]
pub struct Model {
    cfg: Info,
    /// Weight memory; zero at power-up, never cleared by RESET.
    wmem: Vec<u8>,
    /// Per physical PE, row-major `pr * cols + pc`.
    faults: Vec<PeFaults>,
    seu_rate: u32,
    seu_seed: u32,
    /// Device-global pass counter `p` (protocol §4); u32 because the hash
    /// works on u32, so it wraps like a 32-bit RTL register.
    pass: u32,
    counters: Counters,
    /// Worker threads for MATMUL (a host-side knob; it cannot change results).
    threads: usize,
    /// Use the kernel's portable tiles even where AVX2 exists (tests cover both).
    portable_kernel: bool,
}

/// Little-endian field readers for payloads whose length was already checked.
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Why a request was refused; the status code is the discriminant.
type Refusal = Status;

impl Model {
    /// A powered-up device: weight memory zero, no faults, SEU off, counters 0.
    /// (docs/protocol.md §2 leaves the weight memory undefined at power-up;
    /// zero is one allowed content, and nothing may rely on it.)
    ///
    /// Panics if `rows` or `cols` is 0 or above 255: the protocol carries PE
    /// coordinates and the INFO dims in a u8, so such a device cannot exist.
    pub fn new(cfg: Info) -> Self {
        assert!(
            (1..=255).contains(&cfg.rows) && (1..=255).contains(&cfg.cols),
            "array dims must be 1..=255"
        );
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Model {
            wmem: vec![0; cfg.wmem_bytes],
            faults: vec![PeFaults::default(); cfg.rows * cfg.cols],
            seu_rate: 0,
            seu_seed: 0,
            pass: 0,
            counters: Counters::default(),
            threads,
            portable_kernel: false,
            cfg,
        }
    }

    /// The configuration (what INFO reports).
    pub fn config(&self) -> &Info {
        &self.cfg
    }

    /// Number of worker threads MATMUL may use (0 = available parallelism).
    /// Results do not depend on it: every pass number and flip is a pure
    /// function of the request, so threads never interact.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = if n == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            n
        };
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The counters, as COUNTERS would report them.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The pass counter `p` the next MATMUL pass will use.
    pub fn pass_counter(&self) -> u32 {
        self.pass
    }

    /// The weight memory (read-only; for tests and diagnostics).
    pub fn wmem(&self) -> &[u8] {
        &self.wmem
    }

    /// Execute one request whose frame passed its CRC check: returns the
    /// status code and, for OK, the reply payload. Non-OK replies are always
    /// empty and a refused request changes nothing.
    pub fn execute(&mut self, op: u8, payload: &[u8]) -> (u8, Vec<u8>) {
        match self.try_execute(op, payload) {
            Ok(reply) => (Status::Ok as u8, reply),
            Err(status) => (status as u8, Vec::new()),
        }
    }

    /// The check order of protocol §1 rule 3 is encoded per opcode: first the
    /// opcode is known (match arm), then its length, then every field is
    /// validated before the first byte of state changes.
    fn try_execute(&mut self, op: u8, p: &[u8]) -> Result<Vec<u8>, Refusal> {
        let len_is = |want: usize| if p.len() == want { Ok(()) } else { Err(Status::BadLength) };
        let Ok(op) = Opcode::try_from(op) else { return Err(Status::BadOpcode) };
        match op {
            Opcode::Info => {
                len_is(0)?;
                Ok(self.cfg.to_bytes())
            }
            Opcode::Reset => {
                len_is(0)?;
                self.faults.fill(PeFaults::default());
                self.seu_rate = 0;
                self.seu_seed = 0;
                self.pass = 0;
                self.counters = Counters::default();
                Ok(Vec::new())
            }
            Opcode::WriteWeights => {
                if p.len() < 4 {
                    return Err(Status::BadLength);
                }
                let addr = le_u32(p, 0) as u64;
                let data = &p[4..];
                // u64: addr + len must not wrap into range.
                if addr + data.len() as u64 > self.cfg.wmem_bytes as u64 {
                    return Err(Status::OutOfRange);
                }
                let a = addr as usize;
                self.wmem[a..a + data.len()].copy_from_slice(data);
                Ok(Vec::new())
            }
            Opcode::PatchWeights => {
                if p.len() % 4 != 0 {
                    return Err(Status::BadLength);
                }
                let addr = |e: &[u8]| u32::from_le_bytes([e[0], e[1], e[2], 0]) as usize;
                // All-or-nothing: validate every entry before applying any.
                if p.chunks_exact(4).any(|e| addr(e) >= self.cfg.wmem_bytes) {
                    return Err(Status::OutOfRange);
                }
                // In order, so a later entry for the same address wins.
                for e in p.chunks_exact(4) {
                    self.wmem[addr(e)] = e[3];
                }
                Ok(Vec::new())
            }
            Opcode::SetFault => {
                len_is(11)?;
                let (row, col) = (p[0] as usize, p[1] as usize);
                let Some(site) = Site::from_u8(p[2]) else { return Err(Status::OutOfRange) };
                let (sa0, sa1) = (le_u32(p, 3), le_u32(p, 7));
                let width_ok = match site {
                    Site::Psum => true,
                    Site::Act | Site::Weight => (sa0 | sa1) <= 0xFF,
                };
                if row >= self.cfg.rows || col >= self.cfg.cols || !width_ok || sa0 & sa1 != 0 {
                    return Err(Status::OutOfRange);
                }
                let pe = &mut self.faults[row * self.cfg.cols + col];
                match site {
                    Site::Psum => pe.psum = [sa0, sa1],
                    Site::Act => pe.act = [sa0 as u8, sa1 as u8],
                    Site::Weight => pe.weight = [sa0 as u8, sa1 as u8],
                }
                Ok(Vec::new())
            }
            Opcode::SetBypass => {
                len_is(3)?;
                let (row, col, on) = (p[0] as usize, p[1] as usize, p[2]);
                if row >= self.cfg.rows || col >= self.cfg.cols || on > 1 {
                    return Err(Status::OutOfRange);
                }
                self.faults[row * self.cfg.cols + col].bypass = on == 1;
                Ok(Vec::new())
            }
            Opcode::ClearFaults => {
                len_is(0)?;
                self.faults.fill(PeFaults::default());
                Ok(Vec::new())
            }
            Opcode::SetSeu => {
                len_is(8)?;
                let (rate, seed) = (le_u32(p, 0), le_u32(p, 4));
                // A device without the SEU feature (bit 2) accepts only rate 0.
                if rate > SEU_RATE_ONE || (self.cfg.features & FEATURE_SEU == 0 && rate != 0) {
                    return Err(Status::OutOfRange);
                }
                self.seu_rate = rate;
                self.seu_seed = seed;
                self.pass = 0;
                Ok(Vec::new())
            }
            Opcode::Matmul => self.matmul(p),
            Opcode::Counters => {
                len_is(0)?;
                Ok(self.counters.to_bytes())
            }
        }
    }

    /// Decodes and validates a MATMUL (all of it before any effect), runs the
    /// fast kernel, then advances `p` and the counters.
    fn matmul(&mut self, p: &[u8]) -> Result<Vec<u8>, Refusal> {
        let job = self.check_matmul(p)?;
        let args = kernel::MatmulArgs {
            rows: self.cfg.rows,
            cols: self.cfg.cols,
            m: job.m,
            k: job.k,
            n: job.n,
            rot_r: job.rot_r,
            rot_c: job.rot_c,
            base: job.base,
            wmem: &self.wmem,
            a: &p[14..],
            faults: &self.faults,
            seu_rate: self.seu_rate,
            seed: self.seu_seed,
            p0: self.pass,
            portable: self.portable_kernel,
        };
        let (out, flips) = kernel::matmul(&args, self.threads);
        self.finish_matmul(&job, flips);
        let mut reply = Vec::with_capacity(out.len() * 4);
        for v in out {
            reply.extend_from_slice(&v.to_le_bytes());
        }
        Ok(reply)
    }

    /// Validation of a MATMUL request, shared with the test-only reference so
    /// the two differ only in how they compute.
    fn check_matmul(&self, p: &[u8]) -> Result<MatmulJob, Refusal> {
        if p.len() < 14 {
            return Err(Status::BadLength);
        }
        let base = le_u32(p, 0) as u64;
        let (m, k, n) = (le_u16(p, 4) as u64, le_u16(p, 6) as u64, le_u16(p, 8) as u64);
        let (rot_r, rot_c) = (p[10] as usize, p[11] as usize);
        // Bytes 12..14 are reserved padding of the 14-byte header (spec: the
        // activations start at offset 14); they are ignored.
        if p.len() as u64 != 14 + m * k {
            return Err(Status::BadLength);
        }
        let (r, c) = (self.cfg.rows as u64, self.cfg.cols as u64);
        if m == 0 || k == 0 || n == 0 {
            return Err(Status::OutOfRange);
        }
        let (kt, nt) = (k.div_ceil(r), n.div_ceil(c));
        if rot_r >= self.cfg.rows
            || rot_c >= self.cfg.cols
            || base % c != 0
            || base + kt * nt * r * c > self.cfg.wmem_bytes as u64
            || m * n > self.cfg.acc_words as u64
        {
            return Err(Status::OutOfRange);
        }
        Ok(MatmulJob {
            base: base as usize,
            m: m as usize,
            k: k as usize,
            n: n as usize,
            rot_r,
            rot_c,
            kt: kt as usize,
            nt: nt as usize,
        })
    }

    /// Effects of a completed MATMUL on `p` and the counters.
    fn finish_matmul(&mut self, job: &MatmulJob, flips: u64) {
        let passes = (job.kt * job.nt) as u64;
        self.pass = self.pass.wrapping_add(passes as u32);
        let (r, c) = (self.cfg.rows as u64, self.cfg.cols as u64);
        let cn = &mut self.counters;
        cn.cycles = cn.cycles.wrapping_add(passes * (job.m as u64 + 2 * r + c));
        cn.macs = cn.macs.wrapping_add(job.m as u64 * job.k as u64 * job.n as u64);
        cn.flips = cn.flips.wrapping_add(flips);
    }
}

/// A validated MATMUL header.
#[derive(Clone, Copy, Debug)]
struct MatmulJob {
    base: usize,
    m: usize,
    k: usize,
    n: usize,
    rot_r: usize,
    rot_c: usize,
    kt: usize,
    nt: usize,
}
