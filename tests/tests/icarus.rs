//! The RTL under a second simulator: Icarus Verilog runs `dla_sim_top`
//! (4x4, small memories) through `rtl/tb/dla_stream_tb.sv`, which replays a
//! byte file of request frames and writes every reply byte as the simulator
//! prints it. The replies must be the golden model's bytes, four-state: an
//! `x` or `z` in any reply bit fails the test. The programs' MATMULs have
//! one activation row (M = 1); with more, Icarus shows X in the result rows
//! after the first (an open finding, `icarus_replays_multi_row_matmuls`).
//!
//! `rtl/tb/dla_uart_line_tb.sv` runs the board top, `dla_uart_top`, with the
//! ULX3S's 3 Mbaud setting (8 3/8 cycles of 25 MHz a bit) against a host
//! line modelled in real time at exactly 3 Mbaud (and 1.5 % off either way):
//! the replies must be the model's, and every edge the board sends within a
//! quarter bit of where an exact period puts it.
//!
//! Reports itself ignored when `iverilog`/`vvp` are not on PATH (scripts/setup
//! installs them). Prints the simulation speed (cycles/s) as JSON on stderr:
//! `cargo test --release --features faultloop-device/hardware -p faultloop-tests
//! --test icarus -- --nocapture`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use faultloop_proto::{Info, Link, Request};
use faultloop_tests::{byte_diff, random_program, roundtrip};

const ROWS: usize = 4;
const COLS: usize = 4;
const PROGRAMS: usize = 4;

fn on_path(tool: &str) -> bool {
    Command::new(tool).arg("-V").output().is_ok()
}

/// Whether Icarus is missing (then the test says it is ignored).
fn icarus_missing() -> bool {
    let missing = !on_path("iverilog") || !on_path("vvp");
    if missing {
        eprintln!(
            "icarus: ignored: iverilog or vvp not found on PATH (scripts/setup installs them)"
        );
    }
    missing
}

/// A number the testbench printed as "<name> <value>".
fn log_field(log: &str, name: &str) -> u64 {
    log.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} in the testbench's output:\n{log}"))
}

/// The reply bytes a testbench wrote, one hex byte a line; an `x` or `z`
/// bit fails.
fn read_reply_bytes(path: &Path) -> Vec<u8> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            u8::from_str_radix(l.trim(), 16).unwrap_or_else(|_| {
                panic!("reply byte {i} is {l:?}: not a two-state byte (x or z bits)")
            })
        })
        .collect()
}

fn rtl_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rtl").canonicalize().expect("rtl/ directory")
}

/// The core's files (rtl/dla_core.f), then `extra` (a top and its
/// testbench, relative to rtl/).
fn sources(rtl: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let list = fs::read_to_string(rtl.join("dla_core.f")).expect("rtl/dla_core.f");
    list.lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .chain(extra.iter().copied())
        .map(|l| rtl.join(l))
        .collect()
}

/// MATMULs cut to at most `max_m` activation rows (the rest of the request
/// unchanged; a refused MATMUL with m = 0 stays as it is).
fn one_row(req: Request, max_m: u16) -> Request {
    match req {
        Request::Matmul { base, m, k, n, rot, a } if m > max_m => {
            let a = a[..max_m as usize * k as usize].to_vec();
            Request::Matmul { base, m: max_m, k, n, rot, a }
        }
        other => other,
    }
}

#[test]
fn icarus_replays_differential_programs_with_the_models_bytes() {
    replay_on_icarus(1);
}

/// MATMULs with several activation rows, whose skew and de-skew delay lines
/// wrap within a pass (Icarus once read X there: docs/results.md).
#[test]
fn icarus_replays_multi_row_matmuls() {
    replay_on_icarus(u16::MAX);
}

fn replay_on_icarus(max_m: u16) {
    if icarus_missing() {
        return;
    }
    let info = Info { wmem_bytes: 1024, buf_bytes: 256, acc_words: 64, ..Info::sim(ROWS, COLS) };
    let dir = tempfile::tempdir().unwrap();
    let vvp = dir.path().join("tb.vvp");
    let mut cc = Command::new("iverilog");
    cc.args(["-g2012", "-s", "dla_stream_tb", "-o"]).arg(&vvp);
    for (p, v) in [
        ("ArrayRows", ROWS),
        ("ArrayCols", COLS),
        ("WmemBytes", info.wmem_bytes),
        ("BufBytes", info.buf_bytes),
        ("AccWords", info.acc_words),
    ] {
        cc.arg(format!("-Pdla_stream_tb.{p}={v}"));
    }
    let srcs = sources(&rtl_dir(), &["dla_sim_top.sv", "tb/dla_stream_tb.sv"]);
    let out = cc.args(srcs).output().expect("run iverilog");
    assert!(out.status.success(), "iverilog failed:\n{}", String::from_utf8_lossy(&out.stderr));

    // The requests (INFO first, then random differential programs) and the
    // model's replies to them, in order.
    let mut model = ModelLink::new(info);
    let mut rng = Rng::new(0x1CA2);
    let mut frames = vec![Request::Info.encode(1)];
    let mut seq = 1u16;
    for _ in 0..PROGRAMS {
        for req in random_program(&mut rng, ROWS, COLS).into_iter().map(|r| one_row(r, max_m)) {
            seq = seq.wrapping_add(1);
            frames.push(req.encode(seq));
        }
    }
    let mut input = Vec::new();
    let mut want = Vec::new();
    for f in &frames {
        input.extend_from_slice(f);
        want.extend(roundtrip(&mut model as &mut dyn Link, f).unwrap());
    }
    let hex: String = input.iter().map(|b| format!("{b:02x}\n")).collect();
    let (in_file, out_file) = (dir.path().join("in.hex"), dir.path().join("out.hex"));
    fs::write(&in_file, hex).unwrap();

    let t0 = Instant::now();
    let run = Command::new("vvp")
        .arg("-n")
        .arg(&vvp)
        .arg(format!("+in={}", in_file.display()))
        .arg(format!("+n={}", input.len()))
        .arg(format!("+out={}", out_file.display()))
        .arg(format!("+expect={}", want.len()))
        .arg("+max_cycles=2000000")
        .output()
        .expect("run vvp");
    let secs = t0.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "vvp failed:\n{log}{}", String::from_utf8_lossy(&run.stderr));
    assert!(!log.contains("TIMEOUT"), "the RTL did not answer every request under Icarus:\n{log}");
    let cycles = log_field(&log, "cycles");
    let got = read_reply_bytes(&out_file);
    assert!(
        want == got,
        "{} frames: {}",
        frames.len(),
        byte_diff("model (expected) vs Icarus (got)", &want, &got)
    );
    eprintln!(
        "{{\"simulator\": \"icarus\", \"array\": \"{ROWS}x{COLS}\", \"frames\": {}, \"reply_bytes\": {}, \"cycles\": {cycles}, \"seconds\": {secs:.3}, \"cycles_per_s\": {:.0}}}",
        frames.len(),
        got.len(),
        cycles as f64 / secs
    );
}

/// Compiles `dla_uart_line_tb` (2x2, small memories) with a bit period of
/// `cpb + frac/8` cycles.
fn build_line_tb(dir: &Path, cpb: u32, frac: u32) -> PathBuf {
    let rtl = rtl_dir();
    let vvp = dir.join(format!("line_{cpb}_{frac}.vvp"));
    let mut cc = Command::new("iverilog");
    cc.args(["-g2012", "-s", "dla_uart_line_tb", "-o"]).arg(&vvp);
    cc.arg(format!("-Pdla_uart_line_tb.ClocksPerBit={cpb}"));
    cc.arg(format!("-Pdla_uart_line_tb.ClocksPerBitFrac={frac}"));
    let srcs = sources(
        &rtl,
        &["dla_uart_rx.sv", "dla_uart_tx.sv", "dla_uart_top.sv", "tb/dla_uart_line_tb.sv"],
    );
    let out = cc.args(srcs).output().expect("run iverilog");
    assert!(out.status.success(), "iverilog failed:\n{}", String::from_utf8_lossy(&out.stderr));
    vvp
}

/// What one line-level run saw.
struct LineRun {
    got: Vec<u8>,
    max_edge_dev_ppm: u64,
    framing_errors: u64,
    log: String,
}

fn run_line_tb(
    dir: &Path,
    vvp: &Path,
    frames: &[Vec<u8>],
    reply_lens: &[usize],
    host_ppm: i64,
    phase_ps: u64,
) -> LineRun {
    let input: Vec<u8> = frames.concat();
    let hex: String = input.iter().map(|b| format!("{b:02x}\n")).collect();
    let lens: String =
        frames.iter().zip(reply_lens).map(|(f, r)| format!("{} {r}\n", f.len())).collect();
    let tag = format!("{host_ppm}_{phase_ps}");
    let (in_file, lens_file, out_file) = (
        dir.join(format!("in_{tag}.hex")),
        dir.join(format!("lens_{tag}.txt")),
        dir.join(format!("out_{tag}.hex")),
    );
    fs::write(&in_file, hex).unwrap();
    fs::write(&lens_file, lens).unwrap();
    let run = Command::new("vvp")
        .arg("-n")
        .arg(vvp)
        .arg(format!("+in={}", in_file.display()))
        .arg(format!("+lens={}", lens_file.display()))
        .arg(format!("+frames={}", frames.len()))
        .arg(format!("+out={}", out_file.display()))
        .arg(format!("+bit_ps={:.3}", 1e12 / BAUD_3M))
        .arg(format!("+host_ppm={host_ppm}"))
        .arg(format!("+phase_ps={phase_ps}"))
        .output()
        .expect("run vvp");
    let log = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "vvp failed:\n{log}{}", String::from_utf8_lossy(&run.stderr));
    let (max_edge_dev_ppm, framing_errors) =
        (log_field(&log, "max_edge_dev_ppm"), log_field(&log, "framing_errors"));
    let got = read_reply_bytes(&out_file);
    LineRun { got, max_edge_dev_ppm, framing_errors, log }
}

const BAUD_3M: f64 = 3_000_000.0;
/// The ULX3S at 3 Mbaud: 25 MHz / 3 MHz = 8.33 cycles, rounded to 8 3/8
/// (scripts/fpga/ecp5.sh).
const CPB_3M: (u32, u32) = (8, 3);
/// How far a board's TX edge may sit from an exact 3 Mbaud edge: a quarter
/// bit (the FT231X samples at the middle; a whole-cycle divisor, 8, drifts
/// 0.4 bit by the stop bit).
const MAX_EDGE_DEV_PPM: u64 = 250_000;

#[test]
fn the_uart_top_keeps_3_mbaud_from_25_mhz_against_an_exact_line() {
    if icarus_missing() {
        return;
    }
    let (rows, cols) = (2, 2);
    let info = Info { wmem_bytes: 1024, buf_bytes: 256, acc_words: 64, ..Info::sim(rows, cols) };
    let mut model = ModelLink::new(info);
    let mut rng = Rng::new(0x3000_0000);
    let mut frames = vec![Request::Info.encode(1)];
    let mut seq = 1u16;
    for req in random_program(&mut rng, rows, cols).into_iter().map(|r| one_row(r, 1)) {
        seq = seq.wrapping_add(1);
        frames.push(req.encode(seq));
    }
    let mut want = Vec::new();
    let mut reply_lens = Vec::new();
    for f in &frames {
        let r = roundtrip(&mut model as &mut dyn Link, f).unwrap();
        reply_lens.push(r.len());
        want.extend(r);
    }
    let dir = tempfile::tempdir().unwrap();
    let vvp = build_line_tb(dir.path(), CPB_3M.0, CPB_3M.1);
    let t0 = Instant::now();
    // The host exact, 1.5 % slow and 1.5 % fast, each at its own phase to
    // the board's clock.
    for (host_ppm, phase_ps) in [(0i64, 0u64), (15_000, 13_000), (-15_000, 27_000)] {
        let r = run_line_tb(dir.path(), &vvp, &frames, &reply_lens, host_ppm, phase_ps);
        assert!(!r.log.contains("TIMEOUT"), "host at {host_ppm} ppm: no full reply:\n{}", r.log);
        assert!(
            want == r.got,
            "host at {host_ppm} ppm, {} frames: {}",
            frames.len(),
            byte_diff("model (expected) vs dla_uart_top at 3 Mbaud (got)", &want, &r.got)
        );
        assert_eq!(r.framing_errors, 0, "host at {host_ppm} ppm:\n{}", r.log);
        assert!(
            r.max_edge_dev_ppm <= MAX_EDGE_DEV_PPM,
            "host at {host_ppm} ppm: a TX edge {} ppm of a bit from an exact 3 Mbaud edge (at most {MAX_EDGE_DEV_PPM})",
            r.max_edge_dev_ppm
        );
        eprintln!(
            "{{\"simulator\": \"icarus\", \"top\": \"dla_uart_top\", \"baud\": 3000000, \"clocks_per_bit\": {}, \"host_ppm\": {host_ppm}, \"frames\": {}, \"reply_bytes\": {}, \"max_edge_dev_ppm\": {}}}",
            CPB_3M.0 as f64 + CPB_3M.1 as f64 / 8.0,
            frames.len(),
            r.got.len(),
            r.max_edge_dev_ppm
        );
    }
    // The bound tells the two apart: a whole-cycle divisor (8, 4 % fast)
    // drifts past it within a byte.
    let vvp8 = build_line_tb(dir.path(), CPB_3M.0, 0);
    let r = run_line_tb(dir.path(), &vvp8, &frames[..1], &reply_lens[..1], 0, 0);
    assert!(
        r.max_edge_dev_ppm > MAX_EDGE_DEV_PPM,
        "8 whole cycles a bit came within {} ppm of a bit of exact 3 Mbaud edges: the edge check cannot tell",
        r.max_edge_dev_ppm
    );
    eprintln!("line tb: {:.1} s", t0.elapsed().as_secs_f64());
}
