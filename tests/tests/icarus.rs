//! The RTL under a second simulator: Icarus Verilog runs `dla_sim_top`
//! (4x4, small memories) through `rtl/tb/dla_stream_tb.sv`, which replays a
//! byte file of request frames and writes every reply byte as the simulator
//! prints it. The replies must be the golden model's bytes, four-state: an
//! `x` or `z` in any reply bit fails the test. The programs' MATMULs have
//! one activation row (M = 1); with more, Icarus shows X in the result rows
//! after the first (an open finding, `icarus_replays_multi_row_matmuls`).
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

fn rtl_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rtl").canonicalize().expect("rtl/ directory")
}

/// The core's files (rtl/dla_core.f), the sim top and the testbench.
fn sources(rtl: &Path) -> Vec<PathBuf> {
    let list = fs::read_to_string(rtl.join("dla_core.f")).expect("rtl/dla_core.f");
    let mut v: Vec<PathBuf> = list
        .lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| rtl.join(l))
        .collect();
    v.push(rtl.join("dla_sim_top.sv"));
    v.push(rtl.join("tb/dla_stream_tb.sv"));
    v
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
    if !on_path("iverilog") || !on_path("vvp") {
        eprintln!(
            "icarus: ignored: iverilog or vvp not found on PATH (scripts/setup installs them)"
        );
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
    let out = cc.args(sources(&rtl_dir())).output().expect("run iverilog");
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
    let cycles: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("cycles "))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cycle count in the testbench's output:\n{log}"));

    let text = fs::read_to_string(&out_file).unwrap();
    let mut got = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let b = u8::from_str_radix(line.trim(), 16).unwrap_or_else(|_| {
            panic!("reply byte {i} is {line:?}: not a two-state byte (x or z bits)")
        });
        got.push(b);
    }
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
