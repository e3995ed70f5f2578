//! Throughput of the Verilated 16x16 DLA through SimLink (all I/O included).
//! `cargo test --release -p faultloop-verilated --test rtl_bench -- --ignored --nocapture`
//! prints one JSON line: {"sim_macs_per_s":..,"sim_cycles_per_s":..,...}.

mod rtl_common;

use std::time::Instant;

use rtl_common::*;

#[test]
#[ignore = "benchmark: run with --ignored --nocapture (release)"]
fn sim_bench() {
    let (r, c) = (16, 16);
    let (m, k, n) = (256usize, 512usize, 512usize);
    let mut d = Dev::open(r, c);
    let w = rand_i8(k * n, 5);
    let a = rand_i8(m * k, 6);
    let img = layout(&w, k, n, r, c);

    let t0 = Instant::now();
    let c0 = d.link.total_cycles();
    write_weights(&mut d, 0, &img);
    let (w_s, w_cyc) = (t0.elapsed().as_secs_f64(), d.link.total_cycles() - c0);

    let req = frame(MATMUL, 1, &matmul_payload(0, m, k, n, (0, 0), &a));
    let c1 = d.link.total_cycles();
    let t1 = Instant::now();
    d.send(&req);
    let rep = recv_reply(&mut d);
    let secs = t1.elapsed().as_secs_f64();
    let cycles = d.link.total_cycles() - c1;
    assert_eq!(rep.status, OK);
    let y = i32s(&rep.payload);
    assert_eq!(y, plain_matmul(&a, &w, m, k, n));
    let macs = (m * k * n) as f64;
    println!(
        "{{\"sim_macs_per_s\":{:.4e},\"sim_cycles_per_s\":{:.4e},\"matmul\":\"{m}x{k}x{n}\",\"array\":\"{r}x{c}\",\
         \"seconds\":{:.3},\"cycles\":{cycles},\"compute_cycles\":{},\"write_weights_seconds\":{:.3},\"write_weights_cycles\":{w_cyc}}}",
        macs / secs,
        cycles as f64 / secs,
        secs,
        k.div_ceil(r) * n.div_ceil(c) * (m + 2 * r + c),
        w_s
    );
}
