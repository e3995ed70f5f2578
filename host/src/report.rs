//! Human tables and JSON for the commands' results.

use std::path::Path;

use faultloop_proto::faultmap::FaultMap;
use faultloop_proto::Info;
use serde_json::json;

use crate::jobs::{BenchOutcome, MatmulOutcome};

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
}

pub fn info((device, info): &(String, Info), json: bool) {
    if json {
        print_json(&json!({
            "device": device,
            "rows": info.rows,
            "cols": info.cols,
            "proto_version": info.proto,
            "rtl_version": info.rtl,
            "wmem_bytes": info.wmem_bytes,
            "buf_bytes": info.buf_bytes,
            "acc_words": info.acc_words,
            "features": info.features,
        }));
    } else {
        println!("device            {device}");
        println!("array             {}x{} PEs", info.rows, info.cols);
        println!("protocol / RTL    v{} / v{}", info.proto, info.rtl);
        println!("weight memory     {} bytes", info.wmem_bytes);
        println!("payload buffer    {} bytes", info.buf_bytes);
        println!("accumulators      {} words", info.acc_words);
        let on = info.feature_names();
        println!("features          {} (0b{:05b})", on.join(", "), info.features);
    }
}

pub fn fault_map(path: &Path, map: &FaultMap, json: bool) {
    let (mut psum, mut act, mut weight) = (0, 0, 0);
    for f in &map.faults {
        match f.site {
            faultloop_proto::Site::Psum => psum += 1,
            faultloop_proto::Site::Act => act += 1,
            faultloop_proto::Site::Weight => weight += 1,
        }
    }
    if json {
        print_json(&json!({
            "file": path.display().to_string(),
            "rows": map.array.rows, "cols": map.array.cols,
            "faulty_pes": map.faulty_pes(), "fault_rate": map.fault_rate(),
            "psum": psum, "act": act, "weight": weight,
            "bypass": map.bypass.len(),
            "seu_rate": map.seu.map(|s| s.rate).unwrap_or(0.0),
        }));
    } else {
        println!(
            "{}: valid, {}x{} array, {} faulty PEs ({:.1} %): {psum} psum, {act} act, {weight} weight; {} bypassed; SEU rate {}",
            path.display(),
            map.array.rows,
            map.array.cols,
            map.faulty_pes(),
            100.0 * map.fault_rate(),
            map.bypass.len(),
            map.seu.map(|s| s.rate).unwrap_or(0.0)
        );
    }
}

pub fn matmul(o: &MatmulOutcome, json: bool) {
    if json {
        print_json(o);
    } else {
        println!("device     {}", o.device);
        println!("dims       {}x{}x{} (rotation {},{})", o.m, o.k, o.n, o.rotate[0], o.rotate[1]);
        println!("sha256     {}", o.sha256);
        println!("time       {:.3} s, {:.3e} MAC/s", o.seconds, o.macs_per_s);
        println!("device     {} busy cycles, {} transient flips", o.device_cycles, o.flips);
        println!(
            "link       {} bytes to, {} bytes from the device",
            o.bytes_to_device, o.bytes_from_device
        );
    }
}

pub fn bench(o: &BenchOutcome, json: bool) {
    if json {
        print_json(o);
    } else {
        println!(
            "{}x{}x{} on {} with {:.0} % faults ({} PEs)",
            o.m,
            o.k,
            o.n,
            o.array,
            100.0 * o.fault_rate,
            o.faulty_pes
        );
        println!(
            "sim     {:.3e} MAC/s ({:.2} s, {:.3e} cycles/s)",
            o.sim_macs_per_s, o.sim_seconds, o.sim_cycles_per_s
        );
        println!("model   {:.3e} MAC/s ({:.3} s)", o.model_macs_per_s, o.model_seconds);
        println!("ratio   model/sim = {:.1}", o.model_over_sim);
        println!("agree   {}", o.agree);
    }
}
