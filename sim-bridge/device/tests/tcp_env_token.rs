//! `tcp://` takes its token from FAULTLOOP_TOKEN (own test binary: it sets
//! the process environment).

use faultloop_device::client::Device;
use faultloop_device::handshake::{Token, TOKEN_ENV};
use faultloop_device::serve::tcp::{ServeOptions, Server};
use faultloop_model::ModelLink;

#[test]
fn token_from_the_environment() {
    let s = Server::bind(
        Box::new(ModelLink::sim(4, 4)),
        "127.0.0.1:0",
        Token::new("env-token-42").unwrap(),
        ServeOptions::default(),
    )
    .unwrap()
    .spawn();
    std::env::remove_var(TOKEN_ENV);
    let e = Device::open(&s.device_string()).unwrap_err().to_string();
    assert!(e.contains("FAULTLOOP_TOKEN") && e.contains(&s.device_string()), "{e}");
    std::env::set_var(TOKEN_ENV, "wrong");
    let e = Device::open(&s.device_string()).unwrap_err().to_string();
    assert!(e.contains("wrong token"), "{e}");
    std::env::set_var(TOKEN_ENV, "env-token-42\n");
    let mut d = Device::open(&s.device_string()).unwrap();
    assert_eq!(d.info().unwrap().rows, 4);
}
