//! Characterisation end to end: chips with hidden defects (random multi-bit
//! maps at every site, both polarities, rates up to 10 %) on the golden
//! model, the Verilated RTL and the pty board; the discovered map is judged
//! functionally by random workloads with random bypass sets and rotations,
//! and checked never to invent a fault.
//!
//! Also: a `+defects=` chip behaves like the virtual board with the same
//! hidden defects, reply for reply.

use faultloop_characterize::{characterize, Options, Report};
use faultloop_device::client::Device;
use faultloop_device::serve::pty::{PtyOptions, PtyServer};
use faultloop_proto::faultmap::{Fault, FaultMap};
use faultloop_proto::rng::Rng;
use faultloop_proto::{Link, Site};
use faultloop_tests::{
    byte_diff, judge_map, random_chip_map, random_program, roundtrip, without_defect_feature,
};
use faultloop_verilated::uart::UartSim;

fn write_map(dir: &tempfile::TempDir, name: &str, map: &FaultMap) -> String {
    let p = dir.path().join(name);
    map.save(&p).unwrap();
    p.display().to_string()
}

/// Every found entry is a hidden fault (masks within the hidden ones), and
/// every hidden stuck bit is found unless the report lists it unobservable.
fn never_invented_nothing_missed(hidden: &FaultMap, report: &Report) -> Result<(), String> {
    let masks = |m: &FaultMap, r: usize, c: usize, s: Site| -> (u64, u64) {
        m.faults
            .iter()
            .filter(|f| (f.row, f.col, f.site) == (r, c, s))
            .fold((0, 0), |(a, b), f| (a | f.stuck_at_0, b | f.stuck_at_1))
    };
    let open = |r: usize, c: usize, s: Site| -> u64 {
        report
            .unobservable
            .iter()
            .filter(|u| (u.row, u.col, u.site) == (r, c, s))
            .fold(0, |a, u| a | u.bits as u64)
    };
    for f in &report.map.faults {
        let (h0, h1) = masks(hidden, f.row, f.col, f.site);
        if f.stuck_at_0 & !h0 != 0 || f.stuck_at_1 & !h1 != 0 {
            return Err(format!(
                "invented: found {f} sa0 {:#x} sa1 {:#x}, hidden sa0 {h0:#x} sa1 {h1:#x}",
                f.stuck_at_0, f.stuck_at_1
            ));
        }
    }
    for f in &hidden.faults {
        let (g0, g1) = masks(&report.map, f.row, f.col, f.site);
        let o = open(f.row, f.col, f.site);
        if (f.stuck_at_0 & !g0 & !o) | (f.stuck_at_1 & !g1 & !o) != 0 {
            return Err(format!(
                "missed: hidden {f} sa0 {:#x} sa1 {:#x}, found sa0 {g0:#x} sa1 {g1:#x}, \
                 unobservable {o:#x}",
                f.stuck_at_0, f.stuck_at_1
            ));
        }
    }
    Ok(())
}

fn check(dev: &str, hidden: &FaultMap, report: &Report, chip: &mut Device, seed: u64) {
    assert!(report.verification.ok, "{dev}: own check failed: {:?}", report.verification);
    if let Err(e) = never_invented_nothing_missed(hidden, report) {
        panic!("{dev}: {e}");
    }
    if let Err(e) = judge_map(chip, &report.map, 40, 1, seed) {
        panic!("{dev}: discovered map does not reproduce the chip: {e}");
    }
}

#[test]
fn finds_random_hidden_maps_on_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0xC4A2);
    for (i, (rows, cols, rate)) in
        [(8, 8, 0.1), (8, 8, 0.05), (4, 6, 0.1), (6, 4, 0.1), (16, 16, 0.1), (3, 3, 0.3)]
            .into_iter()
            .enumerate()
    {
        let hidden = random_chip_map(&mut rng, rows, cols, rate);
        let path = write_map(&dir, &format!("h{i}.json"), &hidden);
        let spec = format!("model:{rows}x{cols}+defects={path}");
        let mut chip = Device::open(&spec).unwrap();
        let report = characterize(&mut chip, &Options::default(), &mut |_| {}).unwrap();
        check(&spec, &hidden, &report, &mut chip, i as u64);
    }
}

#[test]
fn finds_random_hidden_maps_on_the_rtl() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x51A);
    for (i, (rows, cols)) in faultloop_tests::sim_sizes().into_iter().enumerate() {
        let hidden = random_chip_map(&mut rng, rows, cols, 0.1);
        let path = write_map(&dir, &format!("h{i}.json"), &hidden);
        let spec = format!("sim:{rows}x{cols}+defects={path}");
        let mut chip = Device::open(&spec).unwrap();
        let report = characterize(&mut chip, &Options::default(), &mut |_| {}).unwrap();
        check(&spec, &hidden, &report, &mut chip, 100 + i as u64);
    }
}

#[test]
fn finds_hidden_defects_over_the_pty_board() {
    let (rows, cols) = faultloop_verilated::uart::built_sizes()[0];
    let mut rng = Rng::new(0xB0A7D);
    let hidden = random_chip_map(&mut rng, rows, cols, 0.25);
    let mut sim = UartSim::open(rows, cols, 8).unwrap();
    sim.apply_hidden(&hidden).unwrap();
    let pty = PtyServer::spawn(sim, PtyOptions::default()).unwrap();
    let spec = pty.device_string();
    let mut chip = Device::open(&spec).unwrap();
    let opts = Options { verify_workloads: 8, ..Options::default() };
    let report = characterize(&mut chip, &opts, &mut |_| {}).unwrap();
    assert!(!report.map.faults.is_empty());
    check(&spec, &hidden, &report, &mut chip, 7);
    drop(chip);
    pty.stop().unwrap();
}

#[test]
fn last_column_act_faults_are_reported_unobservable_never_invented() {
    let dir = tempfile::tempdir().unwrap();
    let mut hidden = FaultMap::empty(4, 4);
    hidden.faults = vec![
        Fault { row: 1, col: 3, site: Site::Act, stuck_at_0: 0, stuck_at_1: 0x81 },
        Fault { row: 2, col: 1, site: Site::Act, stuck_at_0: 0x10, stuck_at_1: 0x01 },
    ];
    let path = write_map(&dir, "h.json", &hidden);
    let mut chip = Device::open(&format!("model:4x4+defects={path}")).unwrap();
    let report = characterize(&mut chip, &Options::default(), &mut |_| {}).unwrap();
    assert!(report.verification.ok);
    assert_eq!(report.map.faults, vec![hidden.faults[1]], "only the observable one");
    assert!(report
        .unobservable
        .iter()
        .any(|u| (u.row, u.col, u.site, u.bits) == (1, 3, Site::Act, 0xFF)));
    // Those are not guesses: a clean 4x4 lists exactly the last column.
    let mut clean = Device::open("model:4x4").unwrap();
    let r = characterize(&mut clean, &Options::default(), &mut |_| {}).unwrap();
    assert!(r.map.faults.is_empty());
    let mut cols: Vec<_> = r.unobservable.iter().map(|u| (u.row, u.col, u.site)).collect();
    cols.dedup();
    assert_eq!(cols, (0..4).map(|r| (r, 3, Site::Act)).collect::<Vec<_>>());
}

#[test]
fn soft_errors_that_cannot_be_switched_off_are_outvoted_by_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5E0);
    let hidden = random_chip_map(&mut rng, 8, 8, 0.1);
    let path = write_map(&dir, "h.json", &hidden);
    // 2e-3 flips per MAC: dozens of flips per run, on any PE.
    let spec = format!("model:8x8+defects={path}+seu=0.002@9");
    let mut chip = Device::open(&spec).unwrap();
    let one = characterize(&mut chip, &Options::default(), &mut |_| {}).unwrap();
    assert!(!one.verification.ok || !one.inconsistent.is_empty() || one.map != hidden);
    let opts = Options { repeats: 7, ..Options::default() };
    let report = characterize(&mut chip, &opts, &mut |_| {}).unwrap();
    assert!(report.transients.contains("majority of 7"), "{}", report.transients);
    assert!(report.verification.ok, "{:?}", report.verification);
    never_invented_nothing_missed(&hidden, &report).unwrap();
    judge_map(&mut chip, &report.map, 20, 7, 3).unwrap();
}

#[test]
fn a_defects_chip_answers_like_the_board_with_the_same_hidden_defects() {
    let (rows, cols) = faultloop_verilated::uart::built_sizes()[0];
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0xC41F);
    for case in 0..4 {
        let hidden = random_chip_map(&mut rng, rows, cols, 0.3);
        let path = write_map(&dir, &format!("h{case}.json"), &hidden);
        let mut board = UartSim::open(rows, cols, 8).unwrap();
        board.apply_hidden(&hidden).unwrap();
        let mut chip =
            faultloop_device::open::open_str(&format!("model:{rows}x{cols}+defects={path}"))
                .unwrap();
        let mut seq = 0u16;
        for _ in 0..3 {
            let mut reqs = random_program(&mut rng, rows, cols);
            reqs.push(faultloop_proto::Request::Info);
            for (i, req) in reqs.iter().enumerate() {
                seq = seq.wrapping_add(1);
                let frame = req.encode(seq);
                let want = roundtrip(&mut board as &mut dyn Link, &frame).unwrap();
                let got = roundtrip(chip.as_mut(), &frame).unwrap();
                let (want, got) = (without_defect_feature(&want), without_defect_feature(&got));
                assert!(
                    want == got,
                    "case {case} request {i} ({}):\n{}",
                    req.name(),
                    byte_diff("board (expected) vs +defects chip (got)", &want, &got)
                );
            }
        }
    }
}

#[test]
fn a_spent_budget_is_an_error_naming_the_phase() {
    let mut chip = Device::open("model:4x4").unwrap();
    let opts = Options { budget: Some(std::time::Duration::ZERO), ..Options::default() };
    let e = characterize(&mut chip, &opts, &mut |_| {}).unwrap_err().to_string();
    assert!(
        e.contains("model:4x4") && e.contains("isolate phase") && e.contains("--budget-s"),
        "{e}"
    );
    let opts = Options { repeats: 0, ..Options::default() };
    let e = characterize(&mut chip, &opts, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("--repeats"), "{e}");
}

#[test]
fn progress_counts_up_to_its_total() {
    let mut chip = Device::open("model:4x4").unwrap();
    let mut seen = Vec::new();
    characterize(&mut chip, &Options::default(), &mut |p| seen.push((p.done, p.total))).unwrap();
    let (done, total) = *seen.last().unwrap();
    assert_eq!(done, total, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[1].0 == w[0].0 + 1), "{seen:?}");
}
