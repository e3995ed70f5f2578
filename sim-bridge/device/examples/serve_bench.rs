//! Bytes per second through the remote bridge, against the same work on the
//! in-process model link.
//!
//! `cargo run --release -p faultloop-device --features serve --example serve_bench [ROUNDS]`
//!
//! A `bridge::Server` (the code behind `faultloop serve`) serves a 16x16
//! golden model on loopback; a `Device` over `tcp://` does big WRITE_WEIGHTS
//! (1 MiB per round, 256 KiB frames) and MATMULs (256x784x128: 200 KB
//! request, 128 KB reply). Prints JSON.

use std::time::Instant;

use faultloop_device::client::Device;
use faultloop_device::handshake::Token;
use faultloop_device::open::{self as link, OpenOptions};
use faultloop_device::serve::tcp::{ServeOptions, Server};
use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use serde_json::json;

struct Run {
    write_s: f64,
    write_bytes: u64,
    matmul_s: f64,
    matmul_bytes: u64,
}

fn work(dev: &mut Device, rounds: usize) -> Run {
    let mut rng = Rng::new(1);
    let wmem = dev.info().unwrap().wmem_bytes;
    let data: Vec<u8> = rng.vec_i8(wmem).into_iter().map(|v| v as u8).collect();
    let b0 = dev.bytes_sent() + dev.bytes_received();
    let t = Instant::now();
    for _ in 0..rounds {
        dev.write_weights(0, &data).unwrap();
    }
    let write_s = t.elapsed().as_secs_f64();
    let write_bytes = dev.bytes_sent() + dev.bytes_received() - b0;

    let (m, k, n) = (256, 784, 128);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    dev.load_matrix(0, k, n, &w).unwrap();
    let b0 = dev.bytes_sent() + dev.bytes_received();
    let t = Instant::now();
    let mut check = 0i64;
    for _ in 0..rounds * 4 {
        let y = dev.matmul(0, m, k, n, (0, 0), &a).unwrap();
        check = check.wrapping_add(y.iter().map(|&v| v as i64).sum::<i64>());
    }
    std::hint::black_box(check);
    Run {
        write_s,
        write_bytes,
        matmul_s: t.elapsed().as_secs_f64(),
        matmul_bytes: dev.bytes_sent() + dev.bytes_received() - b0,
    }
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let token = Token::new("serve-bench-token").unwrap();
    let server = Server::bind(
        Box::new(ModelLink::sim(16, 16)),
        "127.0.0.1:0",
        token.clone(),
        ServeOptions::default(),
    )
    .unwrap()
    .spawn();
    let o = OpenOptions { token: Some(token), ..Default::default() };
    let mut remote =
        Device::new(link::open_with(&server.device_string().parse().unwrap(), &o).unwrap());
    let r = work(&mut remote, rounds);
    let mut direct = Device::open("model:16x16").unwrap();
    let d = work(&mut direct, rounds);
    let stats = server.handle().stats();
    let mbps = |b: u64, s: f64| b as f64 / s / 1e6;
    let out = json!({
        "bench": "serve_bench",
        "device": "model:16x16 behind bridge::Server on 127.0.0.1",
        "rounds": rounds,
        "write_weights": {
            "bytes": r.write_bytes,
            "seconds": r.write_s,
            "bytes_per_s": r.write_bytes as f64 / r.write_s,
            "mb_per_s": mbps(r.write_bytes, r.write_s),
            "direct_mb_per_s": mbps(d.write_bytes, d.write_s),
        },
        "matmul_256x784x128": {
            "calls": rounds * 4,
            "bytes": r.matmul_bytes,
            "seconds": r.matmul_s,
            "bytes_per_s": r.matmul_bytes as f64 / r.matmul_s,
            "mb_per_s": mbps(r.matmul_bytes, r.matmul_s),
            "ms_per_call": r.matmul_s * 1e3 / (rounds * 4) as f64,
            "direct_ms_per_call": d.matmul_s * 1e3 / (rounds * 4) as f64,
        },
        "server": stats,
        "client_retries": remote.stats().retries,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
