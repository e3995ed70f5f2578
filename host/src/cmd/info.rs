//! `faultloop info`: INFO of a device.
use anyhow::Result;
use clap::Args;
use faultloop_device::open::OpenOptions;
use faultloop_proto::Info;
use serde::Serialize;

use super::DeviceArg;
use crate::output::print_json_sorted;
use faultloop_device::Device;

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub dev: DeviceArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--json` (printed with sorted keys).
#[derive(Serialize)]
struct InfoOut<'a> {
    acc_words: usize,
    buf_bytes: usize,
    cols: usize,
    device: &'a str,
    features: u32,
    proto_version: u8,
    rows: usize,
    rtl_version: u8,
    wmem_bytes: usize,
}

pub fn run(a: InfoArgs, open: &OpenOptions) -> Result<()> {
    let mut dev = Device::open_with(&a.dev.spec()?, open)?;
    let info = dev.info()?;
    print(dev.name(), &info, a.json);
    Ok(())
}

fn print(device: &str, info: &Info, json: bool) {
    if json {
        print_json_sorted(&InfoOut {
            acc_words: info.acc_words,
            buf_bytes: info.buf_bytes,
            cols: info.cols,
            device,
            features: info.features,
            proto_version: info.proto,
            rows: info.rows,
            rtl_version: info.rtl,
            wmem_bytes: info.wmem_bytes,
        });
    } else {
        println!("device            {device}");
        println!("array             {}x{} PEs", info.rows, info.cols);
        println!("protocol / RTL    v{} / v{}", info.proto, info.rtl);
        println!("weight memory     {} bytes", info.wmem_bytes);
        println!("payload buffer    {} bytes", info.buf_bytes);
        println!("accumulators      {} words", info.acc_words);
        let names = [
            (0, "stuck-at faults"),
            (1, "bypass"),
            (2, "transient flips"),
            (3, "rotation"),
            (4, "hidden defects"),
        ];
        let on: Vec<&str> =
            names.iter().filter(|(b, _)| info.features & (1 << b) != 0).map(|(_, n)| *n).collect();
        println!("features          {} (0b{:05b})", on.join(", "), info.features);
    }
}
