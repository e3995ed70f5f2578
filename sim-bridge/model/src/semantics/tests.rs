//! Golden-model tests: request semantics by hand, and the fast MATMUL kernel
//! against the literal reference on hundreds of random fault configurations.

use super::*;
use faultloop_proto::{Opcode, Site, Status};

// ---------------------------------------------------------------- helpers

/// splitmix64: a tiny deterministic generator so failures reproduce by seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: usize, hi_incl: usize) -> usize {
        lo + self.below((hi_incl - lo + 1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn ok(m: &mut Model, op: u8, p: &[u8]) -> Vec<u8> {
    let (st, r) = m.execute(op, p);
    assert_eq!(st, Status::Ok as u8, "op {op:#x} refused");
    r
}

fn set_fault(m: &mut Model, row: u8, col: u8, site: u8, sa0: u32, sa1: u32) {
    ok(m, Opcode::SetFault as u8, &fault_payload(row, col, site, sa0, sa1));
}
fn fault_payload(row: u8, col: u8, site: u8, sa0: u32, sa1: u32) -> Vec<u8> {
    let mut p = vec![row, col, site];
    p.extend_from_slice(&sa0.to_le_bytes());
    p.extend_from_slice(&sa1.to_le_bytes());
    p
}
fn bypass(m: &mut Model, row: u8, col: u8) {
    ok(m, Opcode::SetBypass as u8, &[row, col, 1]);
}
fn seu_payload(rate: u32, seed: u32) -> Vec<u8> {
    let mut p = rate.to_le_bytes().to_vec();
    p.extend_from_slice(&seed.to_le_bytes());
    p
}

fn mm_payload(base: u32, m: u16, k: u16, n: u16, rot: (u8, u8), a: &[i8]) -> Vec<u8> {
    let mut p = base.to_le_bytes().to_vec();
    for v in [m, k, n] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&[rot.0, rot.1, 0, 0]);
    p.extend(a.iter().map(|&v| v as u8));
    p
}

fn decode_i32(r: &[u8]) -> Vec<i32> {
    r.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// Writes the K×N matrix `w` (row-major) at `base` in the protocol §3 layout,
/// padding included, with one WRITE_WEIGHTS.
fn write_matrix(model: &mut Model, base: usize, k: usize, n: usize, w: &[i8]) {
    let (r, c) = (model.cfg.rows, model.cfg.cols);
    let (kt_n, nt_n) = (k.div_ceil(r), n.div_ceil(c));
    let mut img = vec![0u8; kt_n * nt_n * r * c];
    for kk in 0..k {
        for nn in 0..n {
            let (kt, rr, nt, cc) = (kk / r, kk % r, nn / c, nn % c);
            img[((nt * kt_n + kt) * r + rr) * c + cc] = w[kk * n + nn] as u8;
        }
    }
    let mut p = (base as u32).to_le_bytes().to_vec();
    p.extend_from_slice(&img);
    ok(model, Opcode::WriteWeights as u8, &p);
}

fn matmul(
    model: &mut Model,
    base: u32,
    m: usize,
    k: usize,
    n: usize,
    rot: (u8, u8),
    a: &[i8],
) -> Vec<i32> {
    decode_i32(&ok(
        model,
        Opcode::Matmul as u8,
        &mm_payload(base, m as u16, k as u16, n as u16, rot, a),
    ))
}

/// Everything a request may change, for "a refused request has no effect".
fn state(m: &Model) -> (Vec<u8>, Vec<PeFaults>, u32, u32, u32, Counters) {
    (m.wmem.clone(), m.faults.clone(), m.seu_rate, m.seu_seed, m.pass, m.counters)
}

fn small(rows: usize, cols: usize) -> Model {
    Model::new(Info { wmem_bytes: 4096, buf_bytes: 8192, acc_words: 1024, ..Info::sim(rows, cols) })
}

// ------------------------------------------------------- request semantics

#[test]
fn info_reply() {
    let mut m = Model::new(Info::sim(16, 8));
    let r = ok(&mut m, Opcode::Info as u8, &[]);
    let mut want = vec![2, 1, 16, 8];
    for v in [1u32 << 20, 1 << 18, 1 << 17, 0b1111] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(r, want);
}

#[test]
fn unknown_opcodes_are_bad_opcode_whatever_the_length() {
    let mut m = small(4, 4);
    for op in [0x00, 0x0B, 0x7F, 0xA5, 0xFF] {
        assert_eq!(m.execute(op, &[]), (Status::BadOpcode as u8, vec![]));
        assert_eq!(m.execute(op, &[1, 2, 3]), (Status::BadOpcode as u8, vec![]));
    }
}

#[test]
fn wrong_lengths_are_bad_length_and_have_no_effect() {
    let mut m = small(4, 4);
    let before = state(&m);
    let cases: &[(u8, usize)] = &[
        (Opcode::Info as u8, 1),
        (Opcode::Reset as u8, 2),
        (Opcode::WriteWeights as u8, 3),
        (Opcode::WriteWeights as u8, 0),
        (Opcode::PatchWeights as u8, 5),
        (Opcode::PatchWeights as u8, 3),
        (Opcode::SetFault as u8, 10),
        (Opcode::SetFault as u8, 12),
        (Opcode::SetBypass as u8, 2),
        (Opcode::ClearFaults as u8, 4),
        (Opcode::SetSeu as u8, 7),
        (Opcode::SetSeu as u8, 9),
        (Opcode::Matmul as u8, 0),
        (Opcode::Matmul as u8, 13),
        (Opcode::Counters as u8, 1),
    ];
    for &(op, len) in cases {
        assert_eq!(
            m.execute(op, &vec![0u8; len]),
            (Status::BadLength as u8, vec![]),
            "op {op:#x} len {len}"
        );
    }
    // MATMUL whose length disagrees with m*k (one byte short / long); BAD_LENGTH
    // wins over fields that are also out of range (rot_r = 200).
    let good = mm_payload(0, 2, 3, 1, (0, 0), &[1; 6]);
    assert_eq!(m.execute(Opcode::Matmul as u8, &good[..good.len() - 1]).0, Status::BadLength as u8);
    let mut long = good.clone();
    long.push(0);
    assert_eq!(m.execute(Opcode::Matmul as u8, &long).0, Status::BadLength as u8);
    let bad_rot = mm_payload(0, 2, 3, 1, (200, 0), &[1; 5]);
    assert_eq!(m.execute(Opcode::Matmul as u8, &bad_rot).0, Status::BadLength as u8);
    assert!(state(&m) == before);
}

#[test]
fn out_of_range_fields_have_no_effect() {
    let mut m = small(4, 4);
    // Some non-trivial state to protect.
    ok(&mut m, Opcode::WriteWeights as u8, &[0, 0, 0, 0, 9, 9, 9]);
    set_fault(&mut m, 1, 1, Site::Psum as u8, 0, 4);
    ok(&mut m, Opcode::SetSeu as u8, &seu_payload(5, 7));
    matmul(&mut m, 0, 1, 1, 1, (0, 0), &[1]);
    let before = state(&m);
    let oor = |op: u8, p: Vec<u8>| (op, p);
    let mut patch = vec![];
    for (addr, v) in [(0u32, 1u8), (4095, 2), (4096, 3), (5, 4)] {
        patch.extend_from_slice(&addr.to_le_bytes()[..3]);
        patch.push(v);
    }
    let cases = vec![
        oor(
            Opcode::WriteWeights as u8,
            [4093u32.to_le_bytes().to_vec(), vec![1, 2, 3, 4]].concat(),
        ),
        oor(Opcode::WriteWeights as u8, [u32::MAX.to_le_bytes().to_vec(), vec![1]].concat()),
        oor(Opcode::WriteWeights as u8, 4097u32.to_le_bytes().to_vec()),
        oor(Opcode::PatchWeights as u8, patch),
        oor(Opcode::SetFault as u8, fault_payload(4, 0, Site::Psum as u8, 0, 1)),
        oor(Opcode::SetFault as u8, fault_payload(0, 4, Site::Psum as u8, 0, 1)),
        oor(Opcode::SetFault as u8, fault_payload(0, 0, 3, 0, 0)),
        oor(Opcode::SetFault as u8, fault_payload(0, 0, Site::Act as u8, 0x100, 0)),
        oor(Opcode::SetFault as u8, fault_payload(0, 0, Site::Weight as u8, 0, 0x100)),
        oor(Opcode::SetFault as u8, fault_payload(0, 0, Site::Psum as u8, 3, 6)),
        oor(Opcode::SetBypass as u8, vec![4, 0, 1]),
        oor(Opcode::SetBypass as u8, vec![0, 4, 0]),
        oor(Opcode::SetBypass as u8, vec![0, 0, 2]),
        oor(Opcode::SetSeu as u8, seu_payload((1 << 27) + 1, 0)),
        oor(Opcode::Matmul as u8, mm_payload(0, 0, 1, 1, (0, 0), &[])),
        oor(Opcode::Matmul as u8, mm_payload(0, 1, 0, 1, (0, 0), &[])),
        oor(Opcode::Matmul as u8, mm_payload(0, 1, 1, 0, (0, 0), &[1])),
        oor(Opcode::Matmul as u8, mm_payload(0, 1, 1, 1, (4, 0), &[1])),
        oor(Opcode::Matmul as u8, mm_payload(0, 1, 1, 1, (0, 4), &[1])),
        oor(Opcode::Matmul as u8, mm_payload(2, 1, 1, 1, (0, 0), &[1])),
        // 4096 bytes = 256 tiles of 16; KT*NT = 2*... : base 4080 + 16 > 4096 needs 2 tiles
        oor(Opcode::Matmul as u8, mm_payload(4080, 1, 5, 1, (0, 0), &[1; 5])),
        oor(Opcode::Matmul as u8, mm_payload(4096, 1, 1, 1, (0, 0), &[1])),
        // m*n = 1025 > acc_words = 1024
        oor(Opcode::Matmul as u8, mm_payload(0, 41, 1, 25, (0, 0), &[1; 41])),
    ];
    for (op, p) in cases {
        assert_eq!(
            m.execute(op, &p),
            (Status::OutOfRange as u8, vec![]),
            "op {op:#x} payload {p:?}"
        );
        assert!(state(&m) == before, "op {op:#x} changed state");
    }
    // The edges that are still in range.
    ok(
        &mut m,
        Opcode::WriteWeights as u8,
        &[4092u32.to_le_bytes().to_vec(), vec![1, 2, 3, 4]].concat(),
    );
    ok(&mut m, Opcode::WriteWeights as u8, &4096u32.to_le_bytes());
    ok(&mut m, Opcode::PatchWeights as u8, &[]);
    ok(&mut m, Opcode::SetSeu as u8, &seu_payload(1 << 27, 0));
    ok(&mut m, Opcode::SetFault as u8, &fault_payload(3, 3, Site::Act as u8, 0x80, 0x7F));
    ok(&mut m, Opcode::SetFault as u8, &fault_payload(3, 3, Site::Psum as u8, 0xFFFF_0000, 0xFFFF));
    matmul(&mut m, 4080, 1, 4, 4, (3, 3), &[1; 4]);
    matmul(&mut m, 0, 32, 1, 32, (0, 0), &[1; 32]); // m*n == acc_words
}

#[test]
fn write_and_patch_weights() {
    let mut m = small(4, 4);
    ok(&mut m, Opcode::WriteWeights as u8, &[10, 0, 0, 0, 1, 2, 3]);
    assert_eq!(&m.wmem()[9..14], &[0, 1, 2, 3, 0]);
    // Patch: in order, the later entry for the same address wins.
    ok(&mut m, Opcode::PatchWeights as u8, &[11, 0, 0, 7, 0xFF, 0x0F, 0, 8, 11, 0, 0, 9]);
    assert_eq!(&m.wmem()[10..13], &[1, 9, 3]);
    assert_eq!(m.wmem()[0x0FFF], 8);
}

#[test]
fn reset_clear_and_seu_effects() {
    let mut m = small(4, 4);
    write_matrix(&mut m, 0, 4, 4, &[1; 16]);
    set_fault(&mut m, 0, 0, Site::Psum as u8, 0, 1 << 20);
    bypass(&mut m, 1, 1);
    ok(&mut m, Opcode::SetSeu as u8, &seu_payload(1000, 99));
    matmul(&mut m, 0, 2, 4, 4, (0, 0), &[1; 8]);
    assert_eq!(m.pass_counter(), 1);
    assert_ne!(m.counters(), Counters::default());

    // CLEAR_FAULTS: masks and bypass go, SEU and counters stay.
    let mut c = m.clone();
    ok(&mut c, Opcode::ClearFaults as u8, &[]);
    assert!(c.faults.iter().all(|f| *f == PeFaults::default()));
    assert_eq!(
        (c.seu_rate, c.seu_seed, c.pass, c.counters),
        (m.seu_rate, m.seu_seed, m.pass, m.counters)
    );

    // SET_SEU resets p so a run after it reproduces whatever came before.
    let mut c = m.clone();
    ok(&mut c, Opcode::SetSeu as u8, &seu_payload(1 << 26, 5));
    let first = matmul(&mut c, 0, 3, 4, 4, (0, 0), &[3; 12]);
    matmul(&mut c, 0, 3, 4, 4, (0, 0), &[3; 12]);
    ok(&mut c, Opcode::SetSeu as u8, &seu_payload(1 << 26, 5));
    assert_eq!(c.pass_counter(), 0);
    assert_eq!(matmul(&mut c, 0, 3, 4, 4, (0, 0), &[3; 12]), first);

    // RESET: everything but the weight memory.
    let wmem = m.wmem.clone();
    ok(&mut m, Opcode::Reset as u8, &[]);
    assert!(m.faults.iter().all(|f| *f == PeFaults::default()));
    assert_eq!((m.seu_rate, m.seu_seed, m.pass, m.counters), (0, 0, 0, Counters::default()));
    assert_eq!(m.wmem, wmem);
    assert_eq!(ok(&mut m, Opcode::Counters as u8, &[]), vec![0; 24]);
}

#[test]
fn counters_formula_and_reply() {
    let mut m = small(4, 4);
    // M=3, K=5, N=6: KT=2, NT=2.
    ok(&mut m, Opcode::SetSeu as u8, &seu_payload(1 << 27, 1));
    matmul(&mut m, 0, 3, 5, 6, (1, 2), &[0; 15]);
    // Every MAC of every PE flips at rate 2^27: passes*M*R*C, padding included.
    let c = m.counters();
    assert_eq!(c, Counters { cycles: 4 * (3 + 8 + 4), macs: 90, flips: 4 * 3 * 16 });
    bypass(&mut m, 2, 3);
    matmul(&mut m, 0, 3, 5, 6, (0, 0), &[0; 15]);
    let c2 = m.counters();
    assert_eq!(c2, Counters { cycles: 120, macs: 180, flips: 192 + 4 * 3 * 15 });
    let r = ok(&mut m, Opcode::Counters as u8, &[]);
    assert_eq!(r, [120u64.to_le_bytes(), 180u64.to_le_bytes(), 372u64.to_le_bytes()].concat());
    // COUNTERS reads, does not clear.
    assert_eq!(ok(&mut m, Opcode::Counters as u8, &[]), r);
    assert_eq!(m.pass_counter(), 8);
}

#[test]
fn hash_known_values() {
    // Values computed independently (Python) from the formula in protocol §4.
    assert_eq!(seu_hash(0, 0, 0, 0, 0), 0);
    assert_eq!(seu_hash(42, 7, 3, 5, 9), 0xf64d_8c9e);
    assert_eq!(seu_hash(0xdead_beef, 123_456, 65_535, 15, 15), 0xf02c_716d);
}

// ------------------------------------------------- hand-computed matmuls

/// 4x4 array, W = all ones at base 0 (K = N = 4), for the propagation cases.
fn ones4() -> Model {
    let mut m = small(4, 4);
    write_matrix(&mut m, 0, 4, 4, &[1; 16]);
    m
}

#[test]
fn fault_free_matmul_is_a_matmul() {
    let mut rng = Rng(1);
    let mut m = small(4, 4);
    let (mm, kk, nn) = (3, 7, 9);
    let w: Vec<i8> = rng.bytes(kk * nn).into_iter().map(|b| b as i8).collect();
    let a: Vec<i8> = rng.bytes(mm * kk).into_iter().map(|b| b as i8).collect();
    write_matrix(&mut m, 64, kk, nn, &w);
    for rot in [(0, 0), (1, 3), (3, 2)] {
        let y = matmul(&mut m, 64, mm, kk, nn, rot, &a);
        for i in 0..mm {
            for j in 0..nn {
                let want: i32 = (0..kk).map(|x| a[i * kk + x] as i32 * w[x * nn + j] as i32).sum();
                assert_eq!(y[i * nn + j], want);
            }
        }
    }
}

#[test]
fn stuck_act_bit_corrupts_only_pes_to_its_right() {
    let mut m = ones4();
    // Act register of PE(0,1) stuck-at-1 on bit 1: PE(0,1) still multiplies
    // its clean input 1; PEs (0,2) and (0,3) see 1|2 = 3.
    set_fault(&mut m, 0, 1, Site::Act as u8, 0, 0x02);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1, 0, 0, 0]), vec![1, 1, 3, 3]);
    // Other rows' activations are untouched (row 1 adds 5 everywhere).
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1, 5, 0, 0]), vec![6, 6, 8, 8]);
    // A zero input still becomes 2 right of the fault.
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[0, 0, 0, 0]), vec![0, 0, 2, 2]);
    // Stuck-at-0 on the sign bit turns -1 (0xFF) into 127 to the right.
    set_fault(&mut m, 0, 1, Site::Act as u8, 0x80, 0);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[-1, 0, 0, 0]), vec![-1, -1, 127, 127]);
}

#[test]
fn stuck_psum_bit_corrupts_everything_below() {
    let mut m = ones4();
    set_fault(&mut m, 1, 2, Site::Psum as u8, 0, 0x100);
    // Column 2: s(1)=1, s(2)=(1+1)|0x100, then +1 +1.
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1; 4]), vec![4, 4, 0x104, 4]);
    // Stuck-at-0 on bit 2 at the bottom row of column 0: 4 -> 0.
    set_fault(&mut m, 3, 0, Site::Psum as u8, 0x4, 0);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1; 4]), vec![0, 4, 0x104, 4]);
    // Wrapping: s = 0x7FFF_FFFF, plus two more ones, wraps to i32::MIN + 1.
    set_fault(&mut m, 1, 1, Site::Psum as u8, 0, 0x7FFF_FFFF);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1; 4])[1], i32::MIN + 1);
}

#[test]
fn stuck_weight_bit() {
    let mut m = ones4();
    set_fault(&mut m, 2, 3, Site::Weight as u8, 0x01, 0x80); // 1 -> 0x80 = -128
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1, 1, 2, 1]), vec![5, 5, 5, 3 - 256]);
}

#[test]
fn bypass_passes_act_and_psum_unmasked() {
    let mut m = ones4();
    // Faults on a bypassed PE are out of the path; its MAC does not happen.
    set_fault(&mut m, 1, 1, Site::Act as u8, 0, 0x40);
    set_fault(&mut m, 1, 1, Site::Psum as u8, 0, 0x1000);
    set_fault(&mut m, 1, 1, Site::Weight as u8, 0, 0x10);
    bypass(&mut m, 1, 1);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1, 2, 3, 4]), vec![10, 8, 10, 10]);
    // Bypass off again: the faults are back.
    ok(&mut m, Opcode::SetBypass as u8, &[1, 1, 0]);
    // PE(1,1) multiplies 2*0x11; to its right act = 2|0x40 = 66.
    assert_eq!(
        matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1, 2, 3, 4]),
        vec![10, ((1 + 34) | 0x1000) + 3 + 4, 1 + 66 + 7, 1 + 66 + 7]
    );
    // SEU at rate 2^27 never flips in a bypassed PE.
    let mut m = ones4();
    ok(&mut m, Opcode::SetSeu as u8, &seu_payload(1 << 27, 3));
    bypass(&mut m, 0, 0);
    matmul(&mut m, 0, 2, 4, 4, (0, 0), &[0; 8]);
    assert_eq!(m.counters().flips, 2 * 15);
}

#[test]
fn padding_rows_and_columns_keep_their_faults() {
    let mut m = small(4, 4);
    // K = 2, N = 3: rows 2,3 and column 3 are padding (weights 0).
    write_matrix(&mut m, 0, 2, 3, &[1; 6]);
    // Act stuck-at-1 in padding row 2 at PE(2,0) feeds a padding-row PE(2,1)
    // whose weight is stuck-at-1 too: 1*1 lands in output column 1.
    set_fault(&mut m, 2, 0, Site::Act as u8, 0, 0x01);
    set_fault(&mut m, 2, 1, Site::Weight as u8, 0, 0x01);
    // Psum stuck-at-1 in padding row 3 of column 0.
    set_fault(&mut m, 3, 0, Site::Psum as u8, 0, 0x40);
    // A fault in padding column 3 changes nothing visible.
    set_fault(&mut m, 0, 3, Site::Psum as u8, 0, 0x40);
    assert_eq!(matmul(&mut m, 0, 1, 2, 3, (0, 0), &[2, 3]), vec![5 | 0x40, 6, 5]);
}

#[test]
fn rotation_moves_a_fault_to_another_logical_position() {
    let mut m = ones4();
    set_fault(&mut m, 0, 1, Site::Psum as u8, 0, 0x100);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[1; 4]), vec![4, 0x104, 4, 4]);
    // rot_c = 1: logical column 0 sits on physical column 1.
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 1), &[1; 4]), vec![0x104, 4, 4, 4]);
    // rot_c = 3: logical column 2 on physical column 1.
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 3), &[1; 4]), vec![4, 4, 0x104, 4]);
    // rot_r = 3: physical rows carry logical rows 1,2,3,0; the stuck bit is
    // still set after one add with three more below: (1 | 0x100) + 3.
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (3, 0), &[1; 4]), vec![4, 0x104, 4, 4]);
    // An act stuck-at-0 on bit 0 at physical PE(0,0): with rot_r = 1 that row
    // carries logical row 3, so a[3] is cut off right of column 0.
    let mut m = ones4();
    set_fault(&mut m, 0, 0, Site::Act as u8, 0x01, 0);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (1, 0), &[0, 0, 0, 1]), vec![1, 0, 0, 0]);
    assert_eq!(matmul(&mut m, 0, 1, 4, 4, (0, 0), &[0, 0, 0, 1]), vec![1, 1, 1, 1]);
}

#[test]
fn transient_flip_matches_hash_by_hand() {
    // 1x1 array: a single PE, so every flip is predictable from seu_hash.
    let mut m = small(1, 1);
    ok(&mut m, Opcode::WriteWeights as u8, &[0, 0, 0, 0, 3]);
    let seed = 12345;
    let rate = 1 << 26; // about half the MACs flip
    ok(&mut m, Opcode::SetSeu as u8, &seu_payload(rate, seed));
    let a: Vec<i8> = (0..40).map(|i| i as i8).collect();
    let y = matmul(&mut m, 0, 40, 1, 1, (0, 0), &a);
    let mut flips = 0;
    for (i, &yi) in y.iter().enumerate() {
        let h = seu_hash(seed, 0, i as u32, 0, 0);
        let mut v = (i as i32) * 3;
        if (h >> 5) < rate {
            v ^= 1 << (h & 31);
            flips += 1;
        }
        assert_eq!(yi, v, "row {i}");
    }
    assert!(flips > 5 && flips < 35);
    assert_eq!(m.counters().flips, flips);
}

// ------------------------------------------- fast kernel vs. reference

/// A random fault population: `rate` of PEs get one to three stuck masks at
/// random sites, bits and polarities (sometimes multi-bit), some bypassed.
fn random_faults(m: &mut Model, rng: &mut Rng, rate: f64, bypass_rate: f64) {
    let (r, c) = (m.cfg.rows, m.cfg.cols);
    for pr in 0..r {
        for pc in 0..c {
            if rng.chance(rate) {
                for _ in 0..rng.range(1, 3) {
                    let site = rng.below(3) as u8;
                    let width = if site == Site::Psum as u8 { 32 } else { 8 };
                    let bits = if rng.chance(0.7) {
                        1u32 << rng.below(width)
                    } else {
                        (rng.next() as u32) & if width == 32 { u32::MAX } else { 0xFF }
                    };
                    let (sa0, sa1) = if rng.chance(0.2) {
                        let split = rng.next() as u32;
                        (bits & split, bits & !split)
                    } else if rng.chance(0.5) {
                        (bits, 0)
                    } else {
                        (0, bits)
                    };
                    set_fault(m, pr as u8, pc as u8, site, sa0, sa1);
                }
            }
            if rng.chance(bypass_rate) {
                bypass(m, pr as u8, pc as u8);
            }
        }
    }
}

/// Drives `fast` (the real execute) and `refm` (MATMUL through the literal
/// reference) with the same request and demands identical replies and state.
fn both(fast: &mut Model, refm: &mut Model, op: u8, p: &[u8], what: &str) {
    let a = fast.execute(op, p);
    let b = refm.reference_execute(op, p);
    assert_eq!(a.0, b.0, "{what}: status");
    if a.1 != b.1 {
        let (x, y) = (decode_i32(&a.1), decode_i32(&b.1));
        let i = x.iter().zip(&y).position(|(p, q)| p != q).unwrap_or(0);
        panic!("{what}: replies differ first at word {i}: fast {:#x} ref {:#x}", x[i], y[i]);
    }
    assert_eq!(fast.counters(), refm.counters(), "{what}: counters");
    assert_eq!(fast.pass_counter(), refm.pass_counter(), "{what}: pass");
}

fn random_case(seed: u64, big: bool) {
    let mut rng = Rng(seed);
    let dims = [
        (4, 4),
        (8, 8),
        (16, 16),
        (16, 8),
        (3, 5),
        (1, 1),
        (2, 7),
        (5, 1),
        (12, 20),
        (8, 40),
        (16, 33),
    ];
    let (r, c) = dims[rng.below(dims.len() as u64) as usize];
    let cfg =
        Info { wmem_bytes: 1 << 16, buf_bytes: 1 << 17, acc_words: 1 << 14, ..Info::sim(r, c) };
    let mut fast = Model::new(cfg);
    fast.set_threads(rng.range(1, 4));
    fast.portable_kernel = rng.chance(0.3);
    let what = |s: &str| format!("seed {seed} {r}x{c}: {s}");
    let mut fill = rng.bytes(1 << 16);
    // Weight memory: a mix of small and full-range values.
    if rng.chance(0.5) {
        fill.iter_mut().for_each(|b| *b = (*b as i8 / 16) as u8);
    }
    ok(
        &mut fast,
        Opcode::WriteWeights as u8,
        &[vec![0, 0, 0, 0], fill[..(1 << 16) - 4].to_vec()].concat(),
    );
    let frate = [0.0, 0.02, 0.05, 0.2, 0.5][rng.below(5) as usize];
    let brate = if rng.chance(0.4) { [0.02, 0.1, 0.3][rng.below(3) as usize] } else { 0.0 };
    random_faults(&mut fast, &mut rng, frate, brate);
    let seu = match rng.below(6) {
        0 | 1 => None,
        2 => Some(1 << 27),
        3 => Some(1),
        4 => Some(rng.below(1 << 27) as u32 + 1),
        _ => Some(rng.below(1 << 16) as u32 + 1),
    };
    if let Some(rate) = seu {
        ok(&mut fast, Opcode::SetSeu as u8, &seu_payload(rate, rng.next() as u32));
    }
    let mut refm = fast.clone();
    for step in 0..rng.range(1, 3) {
        let (mm, kk, nn) = if big {
            (rng.range(40, 120), rng.range(20, 80), rng.range(20, 80))
        } else {
            let m = if rng.chance(0.2) { 1 } else { rng.range(1, 20) };
            (m, rng.range(1, 3 * r + 2), rng.range(1, 3 * c + 2))
        };
        let (kt_n, nt_n) = (kk.div_ceil(r), nn.div_ceil(c));
        let span = kt_n * nt_n * r * c;
        let slots = ((1 << 16) - span) / c;
        let base = (rng.below(slots as u64 + 1) as usize * c) as u32;
        let rot = (rng.below(r as u64) as u8, rng.below(c as u64) as u8);
        let a: Vec<i8> = if rng.chance(0.3) {
            (0..mm * kk).map(|_| [-128, 127, -1, 0, 1][rng.below(5) as usize]).collect()
        } else {
            rng.bytes(mm * kk).into_iter().map(|b| b as i8).collect()
        };
        let p = mm_payload(base, mm as u16, kk as u16, nn as u16, rot, &a);
        both(
            &mut fast,
            &mut refm,
            Opcode::Matmul as u8,
            &p,
            &what(&format!("matmul {step} {mm}x{kk}x{nn} rot {rot:?} base {base}")),
        );
        // Patch some weights between matmuls (sometimes at the used range).
        let mut patch = vec![];
        for _ in 0..rng.range(0, 20) {
            let addr = if rng.chance(0.7) {
                base as u64 + rng.below(span as u64)
            } else {
                rng.below(1 << 16)
            };
            patch.extend_from_slice(&(addr as u32).to_le_bytes()[..3]);
            patch.push(rng.next() as u8);
        }
        both(&mut fast, &mut refm, Opcode::PatchWeights as u8, &patch, &what("patch"));
        if rng.chance(0.2) {
            // The same new faults on both models.
            let s = rng.next();
            random_faults(&mut fast, &mut Rng(s), 0.05, 0.0);
            random_faults(&mut refm, &mut Rng(s), 0.05, 0.0);
        }
    }
}

#[test]
fn fast_matches_reference_random_small() {
    for seed in 0..400 {
        random_case(seed, false);
    }
}

#[test]
fn fast_matches_reference_random_multithreaded() {
    // Large enough that the kernel splits rows over threads.
    for seed in 1000..1024 {
        random_case(seed, true);
    }
}

#[test]
fn device_without_seu_refuses_a_nonzero_rate() {
    let mut m = small(4, 4);
    m.cfg.features &= !FEATURE_SEU;
    let before = state(&m);
    assert_eq!(
        m.execute(Opcode::SetSeu as u8, &seu_payload(1, 7)),
        (Status::OutOfRange as u8, vec![])
    );
    assert!(state(&m) == before, "a refused SET_SEU changed state");
    // rate 0 (switching SEUs off) is still accepted
    ok(&mut m, Opcode::SetSeu as u8, &seu_payload(0, 7));
    let info = ok(&mut m, Opcode::Info as u8, &[]);
    assert_eq!(u32::from_le_bytes(info[16..20].try_into().unwrap()) & FEATURE_SEU, 0);
}
