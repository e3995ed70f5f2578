//! Against a real board: `cargo test -p sim-bridge --features hardware --test
//! serial_hardware` with `FAULTLOOP_SERIAL_PORT=/dev/ttyUSB0[@baud]`. The
//! reference is the golden model configured from the board's own INFO (array,
//! memory sizes, features), so an iCE40 2x2 without SEU and a 16x16 board are
//! both checked against their own configuration. Without the variable every
//! test says so and passes.
#![cfg(feature = "hardware")]

use sim_bridge::client::Device;
use sim_bridge::faulty::{soak, SoakOptions};
use sim_bridge::model::DeviceConfig;
use sim_bridge::model_link::ModelLink;

fn port() -> Option<String> {
    match std::env::var("FAULTLOOP_SERIAL_PORT") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!("FAULTLOOP_SERIAL_PORT is not set: skipping the hardware test");
            None
        }
    }
}

#[test]
fn board_answers_and_matches_the_model() {
    let Some(p) = port() else { return };
    let mut board = Device::open(&format!("serial:{p}")).expect("open the board");
    let info = board.info().expect("INFO from the board");
    eprintln!("{}: {info}", board.name());
    let mut model = Device::new(Box::new(ModelLink::new(DeviceConfig {
        rows: info.rows,
        cols: info.cols,
        wmem_bytes: info.wmem_bytes,
        buf_bytes: info.buf_bytes,
        acc_words: info.acc_words,
        features: info.features,
    })));
    let rep = soak(&mut board, &mut model, &SoakOptions { requests: 300, ..Default::default() });
    eprintln!("{}", serde_json::to_string_pretty(&rep).unwrap());
    assert_eq!(rep.wrong, 0, "{rep:?}");
    assert!(rep.success_rate() >= 0.99, "{rep:?}");
}
