//! Link faults: corrupted, lost and delayed bytes between host and device.
//! Every request either returns the golden model's answer or fails with an
//! error — never a wrong answer.

use std::time::Duration;

use faultloop_device::client::{ClientOptions, Device};
use faultloop_device::handshake::Token;
use faultloop_device::links::link_faults::{FaultyLink, LinkFaultRates};
use faultloop_device::open::{self as link, OpenOptions};
use faultloop_device::serve::fault_proxy::{FaultProxy, ProxyOptions};
use faultloop_device::serve::pty::{PtyOptions, PtyServer};
use faultloop_device::serve::tcp::{ServeOptions, Server};
use faultloop_device::testing::{soak, SoakOptions};
use faultloop_model::ModelLink;

fn client_opts() -> ClientOptions {
    faultloop_device::testing::soak::noisy_link_client()
}

fn reference() -> Device {
    Device::open("model:4x4").unwrap()
}

fn soak_opts(requests: usize, seed: u64) -> SoakOptions {
    SoakOptions { requests, seed, window: 2048, max_m: 6, max_write: 256 }
}

#[test]
fn soak_harness_is_clean_on_a_clean_link() {
    let mut dut = Device::open("model:4x4").unwrap();
    let rep = soak(&mut dut, &mut reference(), &soak_opts(400, 1));
    assert_eq!((rep.ok, rep.errors, rep.wrong), (400, 0, 0), "{rep:?}");
    assert!(rep.by_kind.len() >= 8, "{:?}", rep.by_kind);
}

#[test]
fn faulty_link_over_a_serial_board() {
    let board = PtyServer::gated_with(
        Box::new(ModelLink::sim(4, 4)),
        PtyOptions { idle_flush: Duration::from_millis(60), ..PtyOptions::default() },
    )
    .unwrap();
    let serial = link::open_str(&board.device_string()).unwrap();
    let rates = LinkFaultRates {
        corrupt: 2e-4,
        drop: 1e-4,
        delay: 1e-4,
        max_delay: Duration::from_millis(20),
    };
    let faulty = FaultyLink::symmetric(serial, rates, 11);
    let mut dut = Device::with_options(Box::new(faulty), client_opts());
    let rep = soak(&mut dut, &mut reference(), &soak_opts(300, 2));
    eprintln!("{}", serde_json::to_string(&rep).unwrap());
    assert_eq!(rep.wrong, 0, "{rep:?}");
    assert!(rep.success_rate() >= 0.97, "{rep:?}");
    let link = dut.into_link();
    assert!(link.name().starts_with("faulty(serial:"));
}

#[test]
fn heavy_corruption_gives_errors_never_wrong_answers() {
    // Most frames are hit: many requests fail, none may return a wrong answer.
    let board = PtyServer::gated_with(
        Box::new(ModelLink::sim(4, 4)),
        PtyOptions { idle_flush: Duration::from_millis(40), ..PtyOptions::default() },
    )
    .unwrap();
    let serial = link::open_str(&board.device_string()).unwrap();
    let rates = LinkFaultRates { corrupt: 3e-3, drop: 1e-3, ..LinkFaultRates::none() };
    let faulty = FaultyLink::symmetric(serial, rates, 99);
    let opts =
        ClientOptions { retries: 2, timeout_base: Duration::from_millis(150), ..client_opts() };
    let mut dut = Device::with_options(Box::new(faulty), opts);
    let rep = soak(&mut dut, &mut reference(), &soak_opts(150, 3));
    eprintln!("{}", serde_json::to_string(&rep).unwrap());
    assert_eq!(rep.requests, 150, "{rep:?}");
    assert_eq!(rep.wrong, 0, "{rep:?}");
    assert!(rep.client_retries > 20, "the faults did not bite: {rep:?}");
}

#[test]
fn fault_proxy_in_front_of_the_bridge() {
    let token = Token::new("proxy-test-token").unwrap();
    let server = Server::bind(
        Box::new(ModelLink::sim(4, 4)),
        "127.0.0.1:0",
        token.clone(),
        ServeOptions { frame_idle_timeout: Duration::from_millis(60), ..ServeOptions::default() },
    )
    .unwrap()
    .spawn();
    let rates = LinkFaultRates {
        corrupt: 2e-4,
        drop: 1e-4,
        delay: 2e-4,
        max_delay: Duration::from_millis(20),
    };
    let proxy = FaultProxy::spawn(server.local_addr(), ProxyOptions::symmetric(rates, 5)).unwrap();
    let o = OpenOptions { token: Some(token), ..Default::default() };
    let l = link::open_with(&proxy.device_string().parse().unwrap(), &o).unwrap();
    let mut dut = Device::with_options(l, client_opts());
    let rep = soak(&mut dut, &mut reference(), &soak_opts(300, 4));
    let (up, down) = proxy.counts();
    eprintln!("{} up {up:?} down {down:?}", serde_json::to_string(&rep).unwrap());
    assert_eq!(rep.wrong, 0, "{rep:?}");
    assert!(rep.success_rate() >= 0.97, "{rep:?}");
    assert!(up.corrupted + down.corrupted + up.dropped + down.dropped > 0);
}
