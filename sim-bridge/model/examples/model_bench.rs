//! Golden-model throughput: a 256x512x512 MATMUL on a 16x16 array with 5 % of
//! the PEs carrying one random stuck-at bit (the FAT workload), timed through
//! `Model::execute` so request decoding, table building and reply encoding
//! are all included. A second figure runs the same with SEU on (the slow path
//! that evaluates the flip hash per MAC).
//!
//! `cargo run --release -p faultloop-model --example model_bench [threads]`
//! prints one JSON object; `model_macs_per_s` is the headline number.

use faultloop_model::Model;
use faultloop_proto::Info;
use std::time::Instant;

use faultloop_proto::Opcode;

/// xorshift64*: deterministic, so every run benchmarks the same fault map.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn ok(m: &mut Model, op: u8, p: &[u8]) -> Vec<u8> {
    let (st, r) = m.execute(op, p);
    assert_eq!(st, 0, "op {op:#x} refused with status {st}");
    r
}

/// Median seconds per MATMUL over `reps` runs after one warm-up.
fn time(model: &mut Model, payload: &[u8], reps: usize) -> f64 {
    ok(model, Opcode::Matmul as u8, payload);
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(ok(model, Opcode::Matmul as u8, payload));
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn main() {
    let (rows, cols) = (16usize, 16usize);
    let (m, k, n) = (256usize, 512usize, 512usize);
    let mut model = Model::new(Info::sim(rows, cols));
    if let Some(t) = std::env::args().nth(1).and_then(|s| s.parse().ok()) {
        model.set_threads(t);
    }
    let mut g = Gen(0x5EED_F00D_1234_5678);

    // Weights: the whole K x N image (already in tile layout; the contents
    // are random so the layout does not matter to the timing).
    let span = k.div_ceil(rows) * n.div_ceil(cols) * rows * cols;
    let mut p = 0u32.to_le_bytes().to_vec();
    p.extend((0..span).map(|_| g.next() as u8));
    ok(&mut model, Opcode::WriteWeights as u8, &p);

    // Exactly 5 % of the PEs (rounded) faulty, each with one stuck bit at a
    // random site, bit and polarity (the meaning of "fault rate" in docs/protocol.md §7).
    let mut pes: Vec<usize> = (0..rows * cols).collect();
    let faulty = (rows * cols * 5 + 50) / 100;
    for i in 0..faulty {
        let j = i + (g.next() % (pes.len() - i) as u64) as usize;
        pes.swap(i, j);
        let (r, c) = (pes[i] / cols, pes[i] % cols);
        let site = (g.next() % 3) as u8;
        let bit = 1u32 << (g.next() % if site == 0 { 32 } else { 8 });
        let (sa0, sa1) = if g.next() & 1 == 0 { (bit, 0) } else { (0, bit) };
        let mut f = vec![r as u8, c as u8, site];
        f.extend_from_slice(&sa0.to_le_bytes());
        f.extend_from_slice(&sa1.to_le_bytes());
        ok(&mut model, Opcode::SetFault as u8, &f);
    }

    let mut mm = 0u32.to_le_bytes().to_vec();
    for v in [m as u16, k as u16, n as u16] {
        mm.extend_from_slice(&v.to_le_bytes());
    }
    mm.extend_from_slice(&[0, 0, 0, 0]);
    mm.extend((0..m * k).map(|_| g.next() as u8));

    let macs = (m * k * n) as f64;
    let t = time(&mut model, &mm, 15);

    let mut seu = (1u32 << 17).to_le_bytes().to_vec(); // about 1e-3 per MAC
    seu.extend_from_slice(&42u32.to_le_bytes());
    ok(&mut model, Opcode::SetSeu as u8, &seu);
    let t_seu = time(&mut model, &mm, 7);

    println!(
        "{{\"model_macs_per_s\": {:.4e}, \"model_macs_per_s_seu\": {:.4e}, \"seconds_per_matmul\": {:.6}, \
         \"dims\": [{m}, {k}, {n}], \"array\": [{rows}, {cols}], \"faulty_pes\": {faulty}, \"threads\": {}}}",
        macs / t,
        macs / t_seu,
        t,
        model.threads()
    );
}
