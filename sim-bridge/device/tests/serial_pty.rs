//! `serial:` links against a virtual board on a pseudo-terminal: the same
//! client code path a real board on /dev/ttyUSB0 uses.

use std::time::{Duration, Instant};

use faultloop_device::client::{Cause, ClientOptions, Device};
use faultloop_device::links::serial::{SerialError, SerialLink};
use faultloop_device::open as link;
use faultloop_device::serve::pty::{Gated, PtyServer};
use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use serialport::SerialPort;

fn board(rows: usize, cols: usize) -> PtyServer<Gated> {
    PtyServer::gated(Box::new(ModelLink::sim(rows, cols))).expect("virtual board")
}

fn quick() -> ClientOptions {
    ClientOptions { timeout_base: Duration::from_millis(500), ..ClientOptions::default() }
}

#[test]
fn model_board_over_a_pty_matches_the_model() {
    let b = board(8, 8);
    let mut dev = Device::open(&b.device_string()).expect("open the pty");
    assert_eq!(dev.name(), format!("serial:{}@115200", b.path()));
    let mut direct = Device::open("model:8x8").unwrap();
    assert_eq!(dev.info().unwrap(), direct.info().unwrap());
    let (m, k, n) = (12, 40, 20);
    let mut rng = Rng::new(5);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    dev.load_matrix(0, k, n, &w).unwrap();
    direct.load_matrix(0, k, n, &w).unwrap();
    dev.set_fault(1, 2, faultloop_proto::Site::Psum, 0, 1 << 9).unwrap();
    direct.set_fault(1, 2, faultloop_proto::Site::Psum, 0, 1 << 9).unwrap();
    let y = dev.matmul(0, m, k, n, (1, 3), &a).unwrap();
    assert_eq!(y, direct.matmul(0, m, k, n, (1, 3), &a).unwrap());
    // A large write crosses the pty in many pieces.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    dev.write_weights(4096, &big).unwrap();
    assert_eq!(dev.stats().retries, 0);
}

#[test]
fn garbage_on_the_line_is_skipped() {
    let b = board(4, 4);
    let mut dev = Device::open(&b.device_string()).unwrap();
    dev.link_mut().send(&[0x00, 0x13, 0x5A, 0xFF, 0x37]).unwrap();
    assert_eq!(dev.info().unwrap().rows, 4);
    // Half a frame, then silence: the board's idle timeout drops it.
    let f = faultloop_proto::encode_request(3u8, 999, &[0u8; 64]);
    dev.link_mut().send(&f[..30]).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    dev.reset().unwrap();
    assert_eq!(dev.stats().retries, 0);
}

#[test]
fn missing_port_is_a_clear_error() {
    let e = Device::open("serial:/dev/ttyFAULTLOOP-none@9600").unwrap_err().to_string();
    assert!(e.contains("/dev/ttyFAULTLOOP-none") && e.contains("does not exist"), "{e}");
}

#[test]
fn busy_port_is_a_clear_error() {
    let b = board(4, 4);
    let _first = SerialLink::open(b.path(), 115_200).unwrap();
    match SerialLink::open(b.path(), 115_200) {
        Err(e @ SerialError::Busy { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(b.path()) && msg.contains("busy"), "{msg}");
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    let e = Device::open(&b.device_string()).unwrap_err().to_string();
    assert!(e.contains("busy"), "{e}");
}

#[test]
fn a_silent_board_times_out_with_a_clear_error() {
    // A pty nobody answers on.
    let (_master, slave) = serialport::TTYPort::pair().unwrap();
    let path = slave.name().unwrap();
    let link = link::open_str(&format!("serial:{path}")).unwrap();
    let mut dev = Device::with_options(
        link,
        ClientOptions { retries: 1, timeout_base: Duration::from_millis(100), ..quick() },
    );
    let t = Instant::now();
    let e = dev.info().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(matches!(e.cause, Cause::Timeout { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&path) && msg.contains("INFO") && msg.contains("2 attempts"), "{msg}");
}

#[test]
fn a_port_that_disappears_mid_run_stops_with_a_clear_error() {
    let b = board(4, 4);
    let path = b.path().to_string();
    let mut dev = Device::with_options(link::open_str(&b.device_string()).unwrap(), quick());
    dev.info().unwrap();
    b.stop().unwrap();
    let t = Instant::now();
    let e = dev.reset().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    let msg = e.to_string();
    assert!(matches!(e.cause, Cause::Io(_)), "{msg}");
    assert!(msg.contains(&path) && msg.contains("RESET"), "{msg}");
    assert!(msg.contains("disappeared") || msg.contains("hung up"), "{msg}");
    // And it stays an error, promptly.
    assert!(dev.refresh_info().is_err());
}
