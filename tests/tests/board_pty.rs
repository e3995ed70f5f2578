//! The virtual board (`faultloop board --pty`): the Verilated `dla_uart_top`
//! driven bit by bit through its RX/TX pins behind a pseudo-terminal, reached
//! through `serial:<pty>` exactly like a board on a USB UART.
//!
//! * Differential: random request programs (faults, bypass, rotation,
//!   transient flips, patches, refused requests, counters) give
//!   byte-identical replies over the serial link and from the golden model
//!   (INFO differs only in feature bit 4, the defect port).
//! * Hidden defects: not removed by CLEAR_FAULTS or RESET, invisible on the
//!   wire, equal to the model with the same masks injected, combined with
//!   host-injected faults.
//! * The UART board in process (no pseudo-terminal): INFO, refused sizes and
//!   bit periods, hidden defects against the model.
//!
//! The `faultloop board --pty` process itself is tested in
//! host/tests/cli_board.rs, where cargo provides the binary.

use faultloop_device::client::Device;
use faultloop_device::open as link;
use faultloop_device::serve::pty::{PtyOptions, PtyServer};
use faultloop_model::ModelLink;
use faultloop_proto::faultmap::{Fault, FaultMap, Polarity, RandomOptions};
use faultloop_proto::rng::Rng;
use faultloop_proto::Link;
use faultloop_proto::{Request, Site};
use faultloop_tests::{byte_diff, random_masks, random_program, roundtrip, without_defect_feature};
use faultloop_verilated::uart::{self as board, BitPeriod, UartSim};

/// Bit period of the boards under test (fast; the UART works at any >= 4).
const CPB: u32 = 8;

fn board_sizes() -> Vec<(usize, usize)> {
    let s = board::built_sizes();
    assert!(!s.is_empty(), "no virtual board sizes built (FAULTLOOP_BOARD_SIZES)");
    s
}

fn spawn(rows: usize, cols: usize, hidden: Option<&FaultMap>) -> PtyServer<UartSim> {
    let mut sim = UartSim::open(rows, cols, CPB).unwrap();
    if let Some(map) = hidden {
        sim.apply_hidden(map).unwrap();
    }
    PtyServer::spawn(sim, PtyOptions::default()).unwrap()
}

#[test]
fn requests_over_the_pty_board_match_the_model_byte_for_byte() {
    let mut rng = Rng::new(0xB0A2D);
    let mut frames = 0;
    for (rows, cols) in board_sizes() {
        let pty = spawn(rows, cols, None);
        let mut serial = link::open_str(&pty.device_string()).unwrap();
        let mut model = ModelLink::sim(rows, cols);
        let cases = if rows * cols > 16 { 6 } else { 10 };
        let mut seq = 0u16;
        for case in 0..cases {
            let mut reqs = random_program(&mut rng, rows, cols);
            reqs.push(Request::Info);
            for (i, req) in reqs.iter().enumerate() {
                seq = seq.wrapping_add(1);
                let frame = req.encode(seq);
                let want = roundtrip(&mut model as &mut dyn Link, &frame).unwrap();
                let got = roundtrip(serial.as_mut(), &frame).unwrap();
                let (want, got) = if matches!(req, Request::Info) {
                    assert_ne!(want, got, "INFO must report the defect port");
                    (without_defect_feature(&want), without_defect_feature(&got))
                } else {
                    (want, got)
                };
                assert!(
                    want == got,
                    "{rows}x{cols} case {case} request {i} ({}):\n{}",
                    req.name(),
                    byte_diff("model (expected) vs pty board (got)", &want, &got)
                );
                frames += 1;
            }
        }
        drop(serial);
        let sim = pty.stop().unwrap();
        assert_eq!(sim.framing_errors(), 0);
    }
    eprintln!("{frames} frames over the pty board, all replies equal to the model's");
}

/// The masks a PE site ends up with: injected | hidden, sa0 winning.
fn combine(a: (u32, u32), b: (u32, u32)) -> (u32, u32) {
    let sa0 = a.0 | b.0;
    (sa0, (a.1 | b.1) & !sa0)
}

#[test]
fn hidden_defects_persist_are_invisible_and_combine_with_injected_faults() {
    let (rows, cols) = board_sizes()[0];
    let opts = RandomOptions { polarity: Polarity::Both, ..RandomOptions::default() };
    let hidden = FaultMap::random(rows, cols, 0.3, 7, &opts).unwrap();
    assert!(!hidden.faults.is_empty());
    let pty = spawn(rows, cols, Some(&hidden));
    let mut dev = Device::open(&pty.device_string()).unwrap();
    let mut clean = Device::new(Box::new(ModelLink::sim(rows, cols)));
    let mut faulty = Device::new(Box::new(ModelLink::sim(rows, cols)));
    faulty.apply_fault_map(&hidden).unwrap();

    // Nothing on the wire reports them: INFO equals the model's but for bit 4.
    let (i_dev, i_model) = (dev.info().unwrap(), clean.info().unwrap());
    assert_eq!(i_dev.features, i_model.features | 0x10);
    assert_eq!(
        (i_dev.rows, i_dev.cols, i_dev.wmem_bytes),
        (i_model.rows, i_model.cols, i_model.wmem_bytes)
    );

    let (m, k, n) = (5, 2 * rows + 1, 2 * cols + 1);
    let mut rng = Rng::new(11);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    for d in [&mut dev, &mut clean, &mut faulty] {
        d.load_matrix(0, k, n, &w).unwrap();
    }
    let y_clean = clean.matmul(0, m, k, n, (0, 0), &a).unwrap();
    let y_faulty = faulty.matmul(0, m, k, n, (0, 0), &a).unwrap();
    assert_ne!(y_clean, y_faulty, "the hidden map must change this matmul");

    // CLEAR_FAULTS and RESET do not remove them.
    dev.clear_faults().unwrap();
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), y_faulty);
    dev.reset().unwrap();
    faulty.reset().unwrap();
    faulty.apply_fault_map(&hidden).unwrap();
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), y_faulty);

    // Injected faults combine with them (on a PE site with a hidden defect too).
    let f0: &Fault = &hidden.faults[0];
    let inj = random_masks(&mut rng, f0.site.bits(), 2);
    dev.set_fault(f0.row, f0.col, f0.site, inj.0, inj.1).unwrap();
    let both = combine(inj, (f0.stuck_at_0 as u32, f0.stuck_at_1 as u32));
    // the model gets the last hidden entry for that site plus the injection
    let last = hidden
        .faults
        .iter()
        .rev()
        .find(|f| (f.row, f.col, f.site) == (f0.row, f0.col, f0.site))
        .unwrap();
    let both = if last == f0 {
        both
    } else {
        combine(inj, (last.stuck_at_0 as u32, last.stuck_at_1 as u32))
    };
    faulty.set_fault(f0.row, f0.col, f0.site, both.0, both.1).unwrap();
    assert_eq!(
        dev.matmul(0, m, k, n, (0, 0), &a).unwrap(),
        faulty.matmul(0, m, k, n, (0, 0), &a).unwrap()
    );
    // and CLEAR_FAULTS takes the injection away again, not the defect.
    dev.clear_faults().unwrap();
    assert_eq!(dev.matmul(0, m, k, n, (0, 0), &a).unwrap(), y_faulty);
    assert!(dev.stats().retries == 0, "{:?}", dev.stats());
}

// ---------------------------------------------------------------------------
// The UART board in process (no pseudo-terminal)

#[test]
fn info_over_the_uart_reports_the_defect_port() {
    let (r, c) = board_sizes()[0];
    let mut dev = Device::new(Box::new(UartSim::open(r, c, 8).unwrap()));
    let info = dev.info().unwrap();
    assert_eq!((info.rows, info.cols), (r, c));
    assert_eq!(info.features & 0x10, 0x10);
}

#[test]
fn bad_clocks_per_bit_and_sizes_are_refused() {
    assert!(matches!(
        UartSim::open(4, 4, 3),
        Err(faultloop_verilated::BoardError::ClocksPerBit(p)) if p == BitPeriod::cycles_whole(3)
    ));
    // Eighths below the RTL's 4 cycles are refused too.
    assert!(matches!(
        UartSim::open(4, 4, BitPeriod::from_eighths(31)),
        Err(faultloop_verilated::BoardError::ClocksPerBit(_))
    ));
    assert!(matches!(
        UartSim::open(3, 5, 16),
        Err(faultloop_verilated::BoardError::NotBuilt { .. })
    ));
}

#[test]
fn hidden_defects_survive_clear_faults_and_match_the_model_with_them_injected() {
    let (r, c) = board_sizes()[0];
    let mut board = UartSim::open(r, c, 8).unwrap();
    let f = Fault { row: 0, col: 0, site: Site::Weight, stuck_at_0: 0, stuck_at_1: 0x40 };
    board.add_defect(&f).unwrap();
    assert!(board.add_defect(&Fault { row: r, ..f }).is_err());
    assert!(board.add_defect(&Fault { stuck_at_0: 0x40, ..f }).is_err());
    assert!(board.add_defect(&Fault { stuck_at_1: 0x100, ..f }).is_err());
    assert_eq!(board.hidden(), &[f]);

    let mut dev = Device::new(Box::new(board));
    let mut model = Device::new(Box::new(ModelLink::sim(r, c)));
    let mut clean = Device::new(Box::new(ModelLink::sim(r, c)));
    model.set_fault(0, 0, Site::Weight, 0, 0x40).unwrap();
    let (m, k, n) = (3, r + 1, c + 1);
    let mut rng = Rng::new(5);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    for d in [&mut dev, &mut model, &mut clean] {
        d.load_matrix(0, k, n, &w).unwrap();
    }
    dev.clear_faults().unwrap();
    dev.reset().unwrap();
    let y = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
    assert_eq!(y, model.matmul(0, m, k, n, (0, 0), &a).unwrap());
    assert_ne!(y, clean.matmul(0, m, k, n, (0, 0), &a).unwrap());
}

/// The ULX3S at 3 Mbaud (docs/boards.md): 8 3/8 cycles of its 25 MHz clock
/// a bit (each bit 8 or 9 cycles on both pins), reached as `serial:PTY@3000000` like the board on its FT231X, so
/// the host sets that rate on the port and sizes its per-byte timeouts by it.
/// Random programs give the model's replies; INFO, MATMUL and COUNTERS
/// through the device client as well.
#[test]
fn a_board_at_the_3_mbaud_setting_matches_the_model() {
    const CPB_3MBAUD: BitPeriod = BitPeriod::from_eighths(67); // 25 MHz / 3 Mbaud
    let (rows, cols) = board_sizes()[0];
    let pty =
        PtyServer::spawn(UartSim::open(rows, cols, CPB_3MBAUD).unwrap(), PtyOptions::default())
            .unwrap();
    let spec = format!("{}@3000000", pty.device_string());
    let mut serial = link::open_str(&spec).unwrap();
    let mut model = ModelLink::sim(rows, cols);
    let mut rng = Rng::new(0x0300_0000);
    let mut seq = 0u16;
    for case in 0..4 {
        for (i, req) in random_program(&mut rng, rows, cols).iter().enumerate() {
            seq = seq.wrapping_add(1);
            let frame = req.encode(seq);
            let want = roundtrip(&mut model as &mut dyn Link, &frame).unwrap();
            let got = roundtrip(serial.as_mut(), &frame).unwrap();
            assert!(
                want == got,
                "case {case} request {i} ({}) at 3 Mbaud:\n{}",
                req.name(),
                byte_diff("model (expected) vs pty board (got)", &want, &got)
            );
        }
    }
    drop(serial);
    let mut dev = Device::open(&spec).unwrap();
    assert_eq!(dev.name(), spec);
    let info = dev.info().unwrap();
    assert_eq!((info.rows, info.cols), (rows, cols));
    let mut mdev = Device::open(&format!("model:{rows}x{cols}")).unwrap();
    let (m, k, n) = (3, rows + 1, cols + 2);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    let base = dev.load_matrix(0, k, n, &w).unwrap().base as u32;
    assert_eq!(mdev.load_matrix(0, k, n, &w).unwrap().base as u32, base);
    let y = dev.matmul(base, m, k, n, (1, 1), &a).unwrap();
    assert_eq!(y, mdev.matmul(base, m, k, n, (1, 1), &a).unwrap());
    drop(dev);
    let sim = pty.stop().unwrap();
    assert_eq!(sim.framing_errors(), 0);
}
