//! Against a real board: `cargo test -p sim-bridge --features hardware --test
//! serial_hardware` with `FAULTLOOP_SERIAL_PORT=/dev/ttyUSB0[@baud]` (and
//! optionally `FAULTLOOP_SERIAL_ARRAY=RxC`, default 16x16, the board's array).
//! Without the variable every test says so and passes.
#![cfg(feature = "hardware")]

use sim_bridge::client::Device;
use sim_bridge::faulty::{soak, SoakOptions};

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
    let array = std::env::var("FAULTLOOP_SERIAL_ARRAY").unwrap_or_else(|_| "16x16".into());
    let mut board = Device::open(&format!("serial:{p}")).expect("open the board");
    let info = board.info().expect("INFO from the board");
    eprintln!("{}: {info}", board.name());
    let mut model = Device::open(&format!("model:{array}")).unwrap();
    let rep = soak(&mut board, &mut model, &SoakOptions { requests: 300, ..Default::default() });
    eprintln!("{}", serde_json::to_string_pretty(&rep).unwrap());
    assert_eq!(rep.wrong, 0, "{rep:?}");
    assert!(rep.success_rate() >= 0.99, "{rep:?}");
}
