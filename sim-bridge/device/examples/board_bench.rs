//! Throughput of the virtual board (`dla_uart_top` behind a pseudo-terminal,
//! `faultloop board --pty`) through `serial:<pty>`: small frames (INFO) and
//! MATMULs, as JSON. Also the raw simulation speed of the board model.
//!
//! ```text
//! cargo run --release -p faultloop-device --features serve --example board_bench -- [RxC] [clocks_per_bit]
//! ```
//! Wall-clock figures are those of the simulation; `modelled_*` are what the
//! same traffic takes on a real board clocked at 12 MHz (bytes x 10 bits x
//! clocks per bit, plus compute cycles).
use std::time::Instant;

use faultloop_device::client::Device;
use faultloop_device::serve::pty::{PtyOptions, PtyServer};
use faultloop_device::verilated::uart::{self as board, UartSim};
use faultloop_proto::rng::Rng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (rows, cols) = args
        .get(1)
        .and_then(|s| s.split_once('x'))
        .map(|(r, c)| (r.parse().unwrap(), c.parse().unwrap()))
        .unwrap_or((8, 8));
    let cpb: board::BitPeriod = args
        .get(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(board::BitPeriod::cycles_whole(board::DEFAULT_CLOCKS_PER_BIT));

    // Raw model speed: idle line and core.
    let mut sim = UartSim::open(rows, cols, cpb).unwrap();
    let t = Instant::now();
    let idle_cycles = 2_000_000u64;
    sim.idle(idle_cycles);
    let idle_hz = idle_cycles as f64 / t.elapsed().as_secs_f64();

    let pty = PtyServer::spawn(sim, PtyOptions::default()).unwrap();
    let mut dev = Device::open(&pty.device_string()).unwrap();
    dev.info().unwrap();

    // Small frames: INFO round trips.
    let frames = 20;
    let c0 = pty.stats().cycles.load(std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..frames {
        dev.refresh_info().unwrap();
    }
    let info_s = t.elapsed().as_secs_f64();
    let info_cycles = pty.stats().cycles.load(std::sync::atomic::Ordering::Relaxed) - c0;

    // MATMUL: weights loaded once, then activations in and results out.
    let (m, k, n) = (16, 64, 32);
    let mut rng = Rng::new(1);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    let layout = dev.load_matrix(0, k, n, &w).unwrap();
    let reps = 3;
    let b0 = dev.bytes_sent() + dev.bytes_received();
    let c0 = pty.stats().cycles.load(std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..reps {
        dev.matmul(layout.base as u32, m, k, n, (0, 0), &a).unwrap();
    }
    let mm_s = t.elapsed().as_secs_f64();
    let mm_cycles = pty.stats().cycles.load(std::sync::atomic::Ordering::Relaxed) - c0;
    let mm_bytes = dev.bytes_sent() + dev.bytes_received() - b0;
    let macs = (reps * m * k * n) as f64;
    let hz = board::BOARD_CLOCK_HZ as f64;
    println!(
        "{}",
        serde_json::json!({
            "device": pty.device_string(),
            "array": format!("{rows}x{cols}"),
            "clocks_per_bit": cpb.cycles(),
            "baud_at_12mhz": board::baud_of(cpb),
            "sim_idle_cycles_per_s": idle_hz,
            "info_frames_per_s": frames as f64 / info_s,
            "info_sim_cycles_per_s": info_cycles as f64 / info_s,
            "modelled_info_frames_per_s": frames as f64 * hz / info_cycles as f64,
            "matmul": format!("{m}x{k}x{n}"),
            "matmul_bytes_per_frame": mm_bytes / reps as u64,
            "matmul_frames_per_s": reps as f64 / mm_s,
            "matmul_macs_per_s": macs / mm_s,
            "modelled_matmul_macs_per_s": macs * hz / mm_cycles as f64,
            "modelled_matmul_frames_per_s": reps as f64 * hz / mm_cycles as f64,
        })
    );
}
