//! RTL vs golden model: the same request frames go to the Verilated
//! `dla_sim_top` and to the golden model; every reply must be byte-identical.
//!
//! 300+ random cases over every built array size: random dims (K and N not
//! multiples of the array, M = 1), fault rates 0–50 % over all three sites with
//! both polarities and multi-bit masks, bypass, rotations, transient flips at
//! several rates, weight patches between matmuls, some refused requests, and
//! the counters at the end.

use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use faultloop_proto::Info;
use faultloop_proto::Link;
use faultloop_proto::{Request, Site};
use faultloop_tests::{byte_diff, random_bytes, random_masks, roundtrip, sim_sizes};
use faultloop_verilated::SimLink;

const CASES: usize = 312;
const ICE40_CASES: usize = 120;
const ECP5_CASES: usize = 60;

struct Program {
    frames: Vec<(String, Vec<u8>)>,
    seq: u16,
}

impl Program {
    fn push(&mut self, req: Request) {
        self.seq = self.seq.wrapping_add(1);
        let label = format!("{} {:?}", req.name(), summary(&req));
        self.frames.push((label, req.encode(self.seq)));
    }
}

fn summary(req: &Request) -> String {
    match req {
        Request::Matmul { base, m, k, n, rot, .. } => {
            format!("base {base} {m}x{k}x{n} rot {rot:?}")
        }
        Request::WriteWeights { addr, data } => format!("addr {addr} {} bytes", data.len()),
        Request::PatchWeights(e) => format!("{} entries", e.len()),
        other => format!("{other:?}"),
    }
}

fn program(rng: &mut Rng, rows: usize, cols: usize) -> Program {
    let mut p = Program { frames: Vec::new(), seq: rng.next_u32() as u16 };
    p.push(Request::Reset);

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
    p.push(Request::WriteWeights { addr: base as u32, data: w });

    // Stuck-at faults at a random rate in 0..50 %.
    let rate = rng.f64() * 0.5;
    for r in 0..rows {
        for c in 0..cols {
            if rng.f64() < rate {
                let site = Site::ALL[rng.index(3)];
                let (sa0, sa1) = random_masks(rng, site.bits(), 3);
                p.push(Request::SetFault { row: r as u8, col: c as u8, site, sa0, sa1 });
            }
            if rng.f64() < rate / 4.0 {
                p.push(Request::SetBypass { row: r as u8, col: c as u8, on: true });
            }
        }
    }
    if rng.below(3) == 0 {
        let seu_rate = [1u32, 1000, 1 << 17, 1 << 20, 1 << 27][rng.index(5)];
        p.push(Request::SetSeu { rate: seu_rate, seed: rng.next_u32() });
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
    p.push(Request::Matmul {
        base: base as u32,
        m: m as u16,
        k: k as u16,
        n: n as u16,
        rot: r1,
        a: a.clone(),
    });

    // A sparse patch, then the same matmul again (and maybe a different rotation).
    let patch: Vec<(u32, i8)> = (0..1 + rng.index(12))
        .map(|_| ((base + rng.index(region)) as u32, rng.next_u32() as i8))
        .collect();
    p.push(Request::PatchWeights(patch));
    if rng.below(4) == 0 {
        p.push(Request::SetBypass {
            row: rng.index(rows) as u8,
            col: rng.index(cols) as u8,
            on: false,
        });
    }
    let r2 = rot_of(rng);
    p.push(Request::Matmul {
        base: base as u32,
        m: m as u16,
        k: k as u16,
        n: n as u16,
        rot: r2,
        a,
    });

    // Refused requests must be refused identically and change nothing.
    match rng.below(4) {
        0 => {
            p.push(Request::SetFault { row: rows as u8, col: 0, site: Site::Psum, sa0: 1, sa1: 0 })
        }
        1 => p.push(Request::Matmul { base: 0, m: 0, k: 1, n: 1, rot: (0, 0), a: vec![] }),
        2 => p.push(Request::SetSeu { rate: (1 << 27) + 1, seed: 0 }),
        _ => p.push(Request::Info),
    }
    p.push(Request::Counters);
    if rng.below(4) == 0 {
        p.push(Request::ClearFaults);
        let mut a = vec![0i8; k];
        rng.fill_i8(&mut a);
        p.push(Request::Matmul {
            base: base as u32,
            m: 1,
            k: k as u16,
            n: n as u16,
            rot: (0, 0),
            a,
        });
        p.push(Request::Counters);
    }
    p
}

/// Sends every frame of `prog` to the model and the sim, asserts the replies
/// are byte-identical (naming `what` and the request), returns the frame count.
fn replay(sim: &mut SimLink, model: &mut ModelLink, prog: &Program, what: &str) -> usize {
    for (i, (label, frame)) in prog.frames.iter().enumerate() {
        let want = roundtrip(model as &mut dyn Link, frame).unwrap();
        let got = roundtrip(sim as &mut dyn Link, frame).unwrap();
        assert!(
            want == got,
            "{what}, request {i}: {label}\n{}",
            byte_diff("model (expected) vs sim (got)", &want, &got)
        );
    }
    prog.frames.len()
}

#[test]
fn sim_and_model_replies_are_byte_identical() {
    let sizes = sim_sizes();
    assert!(!sizes.is_empty(), "no Verilated sizes built");
    let mut links: Vec<(SimLink, ModelLink)> = sizes
        .iter()
        .map(|&(r, c)| (SimLink::open(r, c).expect("open sim"), ModelLink::sim(r, c)))
        .collect();
    let mut rng = Rng::new(0xD1FF);
    let mut frames = 0;
    for case in 0..CASES {
        let which = case % links.len();
        let (rows, cols) = sizes[which];
        let prog = program(&mut rng, rows, cols);
        let (sim, model) = &mut links[which];
        frames += replay(sim, model, &prog, &format!("case {case} ({rows}x{cols})"));
    }
    eprintln!("{CASES} cases, {frames} frames, all replies byte-identical");
}

/// The iCE40 bitstream's core configuration (2x2, no SEU hash, no FastPath,
/// its memory sizes) against a model with the same configuration: the FPGA
/// build's datapath and its SET_SEU refusal, byte for byte.
#[test]
fn ice40_configuration_matches_the_model() {
    let mut sim = SimLink::open_ice40();
    let mut model = ModelLink::new(Info::ice40());
    let mut rng = Rng::new(0x1CE4);
    let mut frames = 0;
    for case in 0..ICE40_CASES {
        let prog = program(&mut rng, 2, 2);
        frames += replay(&mut sim, &mut model, &prog, &format!("case {case} (ice40 2x2)"));
    }
    eprintln!("{ICE40_CASES} cases, {frames} frames, all replies byte-identical");
}

/// The ECP5 (ULX3S) bitstream's core configuration (8x8, the full fault
/// model with the SEU hash, no FastPath, its memory sizes) against a model
/// with the same configuration, byte for byte.
#[test]
fn ecp5_configuration_matches_the_model() {
    let mut sim = SimLink::open_ecp5();
    let mut model = ModelLink::new(Info::ecp5());
    let mut rng = Rng::new(0xEC95);
    let mut frames = 0;
    for case in 0..ECP5_CASES {
        let prog = program(&mut rng, 8, 8);
        frames += replay(&mut sim, &mut model, &prog, &format!("case {case} (ecp5 8x8)"));
    }
    eprintln!("{ECP5_CASES} cases, {frames} frames, all replies byte-identical");
}
