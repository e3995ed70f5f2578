//! The bridge adversary table as JSON: starts `faultloop serve` (the binary
//! beside this example, or `--bin PATH`) on `model:RxC`, runs every attack of
//! `faultloop_device::testing::adversary` with a legitimate client checked
//! against the golden model beside them, and prints the table.
//!
//! ```text
//! cargo build --release -p faultloop --examples --features faultloop-device/hardware
//! target/release/examples/bridge_adversary [--bin target/release/faultloop] [--size 4x4] [--seed 1]
//! ```
use std::path::PathBuf;
use std::time::Duration;

use faultloop_device::testing::adversary::{run_adversaries, spawn_server, AdversaryOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let bin = opt("--bin").map(PathBuf::from).unwrap_or_else(|| {
        // target/release/examples/bridge_adversary -> target/release/faultloop
        let me = std::env::current_exe().expect("own path");
        me.parent().and_then(|d| d.parent()).expect("target dir").join("faultloop")
    });
    let size = opt("--size").map_or("4x4", String::as_str);
    let (rows, cols) = size
        .split_once('x')
        .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))
        .unwrap_or_else(|| panic!("bad --size `{size}`: expected RxC"));
    let seed = opt("--seed").map_or(1, |s| s.parse().expect("bad --seed: expected an integer"));
    let token = "bridge-adversary-bench-token";
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).expect("token file");
    let deadline = Duration::from_millis(500);
    let device = format!("model:{rows}x{cols}");
    let (mut server, addr) = spawn_server(&bin, &device, &token_file, deadline);
    let mut o = AdversaryOptions::new(addr, token, rows, cols);
    o.handshake_timeout = deadline;
    o.server_pid = Some(server.id());
    o.seed = seed;
    let rep = run_adversaries(&o);
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "device": device,
            "server": "faultloop serve",
            "handshake_timeout_s": deadline.as_secs_f64(),
            "report": rep,
        }))
        .unwrap()
    );
}
