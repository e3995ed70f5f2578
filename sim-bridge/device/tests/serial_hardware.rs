//! Against a real board: `FAULTLOOP_SERIAL_PORT=/dev/ttyUSB0[@baud] cargo test
//! -p faultloop-device --features hardware --test serial_hardware -- --ignored`.
//! The reference is the golden model configured from the board's own INFO
//! (array, memory sizes, features), so an iCE40 2x2 without SEU and a 16x16
//! board are both checked against their own configuration. Without a board
//! the tests report themselves ignored; run with `--ignored` but without the
//! variable, they fail and say what is missing.
#![cfg(feature = "hardware")]

use faultloop_device::client::Device;
use faultloop_device::testing::{soak, SoakOptions};
use faultloop_model::ModelLink;

fn port() -> String {
    match std::env::var("FAULTLOOP_SERIAL_PORT") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!("set FAULTLOOP_SERIAL_PORT=/dev/ttyUSB0[@baud] to the board's serial port"),
    }
}

#[test]
#[ignore = "needs a board: set FAULTLOOP_SERIAL_PORT and run with --ignored"]
fn board_answers_and_matches_the_model() {
    let p = port();
    let mut board = Device::open(&format!("serial:{p}")).expect("open the board");
    let info = board.info().expect("INFO from the board");
    eprintln!("{}: {info}", board.name());
    let mut model = Device::new(Box::new(ModelLink::new(info.clone())));
    let rep = soak(&mut board, &mut model, &SoakOptions { requests: 300, ..Default::default() });
    eprintln!("{}", serde_json::to_string_pretty(&rep).unwrap());
    assert_eq!(rep.wrong, 0, "{rep:?}");
    assert!(rep.success_rate() >= 0.99, "{rep:?}");
}
