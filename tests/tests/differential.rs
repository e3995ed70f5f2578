//! RTL vs golden model: the same request frames go to the Verilated
//! `dla_sim_top` and to the golden model; every reply must be byte-identical.
//! The programs are `faultloop verify`'s (faultloop-device::verify::program).
//!
//! 300+ random cases over every built array size: random dims (K and N not
//! multiples of the array, M = 1), fault rates 0–50 % over all three sites with
//! both polarities and multi-bit masks, bypass, rotations, transient flips at
//! several rates, weight patches between matmuls, some refused requests, and
//! the counters at the end.

use faultloop_device::verify::program::{random_program as program, summary, Program};
use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use faultloop_proto::Info;
use faultloop_proto::Link;
use faultloop_tests::{byte_diff, roundtrip, sim_sizes};
use faultloop_verilated::SimLink;

const CASES: usize = 312;
const ICE40_CASES: usize = 120;
const ECP5_CASES: usize = 60;

/// Sends every frame of `prog` to the model and the sim, asserts the replies
/// are byte-identical (naming `what` and the request), returns the frame count.
fn replay(sim: &mut SimLink, model: &mut ModelLink, prog: &Program, what: &str) -> usize {
    for (i, req) in prog.requests.iter().enumerate() {
        let frame = prog.frame(i);
        let want = roundtrip(model as &mut dyn Link, &frame).unwrap();
        let got = roundtrip(sim as &mut dyn Link, &frame).unwrap();
        assert!(
            want == got,
            "{what}, request {i}: {}\n{}",
            summary(req),
            byte_diff("model (expected) vs sim (got)", &want, &got)
        );
    }
    prog.requests.len()
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
