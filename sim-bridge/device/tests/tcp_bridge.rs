//! The remote bridge: handshake, tokens, frames, one client at a time,
//! clients that vanish mid-frame, and a device that fails while served.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use faultloop_device::client::{Cause, ClientOptions, Device};
use faultloop_device::handshake::Token;
use faultloop_device::links::tcp::{TcpError, TcpLink};
use faultloop_device::open::{self as link, DeviceSpec, OpenOptions};
use faultloop_device::serve::pty::PtyServer;
use faultloop_device::serve::tcp::{BridgeError, RunningServer, ServeOptions, Server};
use faultloop_model::ModelLink;
use faultloop_proto::rng::Rng;
use faultloop_proto::Link;
use faultloop_proto::{self as proto, decode, encode_request, Decoded, Opcode, Status, REPLY_SYNC};

const TOKEN: &str = "test-token-0123456789";

fn opts() -> ServeOptions {
    ServeOptions { frame_idle_timeout: Duration::from_millis(200), ..ServeOptions::default() }
}

fn serve(device: Box<dyn Link>) -> RunningServer {
    Server::bind(device, "127.0.0.1:0", Token::new(TOKEN).unwrap(), opts()).unwrap().spawn()
}

fn client(s: &RunningServer) -> Device {
    let o = OpenOptions { token: Some(Token::new(TOKEN).unwrap()), ..Default::default() };
    let spec: DeviceSpec = s.device_string().parse().unwrap();
    let mut d = Device::new(link::open_with(&spec, &o).expect("connect"));
    d.set_options(ClientOptions {
        timeout_base: Duration::from_secs(2),
        ..ClientOptions::default()
    });
    d
}

/// A raw connection after a good handshake.
fn raw(s: &RunningServer) -> TcpStream {
    let mut t = TcpStream::connect(s.local_addr()).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    t.write_all(format!("FAULTLOOP/1 {TOKEN}\n").as_bytes()).unwrap();
    let line = read_line(&mut t);
    assert!(line.starts_with("OK "), "{line}");
    t
}

fn read_line(t: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while t.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_reply(t: &mut TcpStream) -> proto::Frame {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Decoded::Frame { frame, .. } = decode(&buf, REPLY_SYNC, 1 << 24) {
            return frame;
        }
        let n = t.read(&mut chunk).expect("reply");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn requests_through_the_bridge_match_the_model() {
    let s = serve(Box::new(ModelLink::sim(8, 8)));
    let mut dev = client(&s);
    assert_eq!(dev.name(), s.device_string());
    let mut direct = Device::open("model:8x8").unwrap();
    assert_eq!(dev.info().unwrap(), direct.info().unwrap());
    let (m, k, n) = (40, 100, 30);
    let mut rng = Rng::new(9);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    dev.load_matrix(64, k, n, &w).unwrap();
    direct.load_matrix(64, k, n, &w).unwrap();
    for (r, c) in [(0, 0), (3, 5)] {
        dev.set_bypass(r, c, true).unwrap();
        direct.set_bypass(r, c, true).unwrap();
    }
    assert_eq!(
        dev.matmul(64, m, k, n, (2, 1), &a).unwrap(),
        direct.matmul(64, m, k, n, (2, 1), &a).unwrap()
    );
    // Errors from the device come back as they are.
    let e = dev.set_bypass(8, 0, true).unwrap_err();
    assert!(e.is_status(Status::OutOfRange), "{e}");
    assert_eq!(dev.counters().unwrap(), direct.counters().unwrap());
    let st = s.handle().stats();
    assert!(st.frames >= 6 && st.bytes_in > 0 && st.bytes_out > 0, "{st:?}");
}

#[test]
fn wrong_or_missing_token_is_refused_before_any_request() {
    let s = serve(Box::new(ModelLink::sim(4, 4)));
    let addr = s.local_addr().to_string();
    let e =
        TcpLink::connect(&addr, &Token::new("nope").unwrap(), Duration::from_secs(2)).unwrap_err();
    assert!(matches!(&e, TcpError::Refused { reason, .. } if reason == "wrong token"), "{e}");
    assert!(e.to_string().contains(&addr));

    // No handshake at all: a request frame straight away gets ERR, never a reply frame.
    let mut t = TcpStream::connect(s.local_addr()).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut f = encode_request(Opcode::Info, 1, &[]);
    f.push(b'\n');
    t.write_all(&f).unwrap();
    let mut all = Vec::new();
    let _ = t.read_to_end(&mut all);
    assert!(all.starts_with(b"ERR "), "{:?}", String::from_utf8_lossy(&all));
    assert!(!all.contains(&REPLY_SYNC));

    for line in ["FAULTLOOP/1\n", "FAULTLOOP/1 \n"] {
        let mut t = TcpStream::connect(s.local_addr()).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        t.write_all(line.as_bytes()).unwrap();
        assert_eq!(read_line(&mut t), "ERR missing token");
    }
    // The client side: no token anywhere is an error before connecting.
    let o = OpenOptions { token_file: Some("/nonexistent/tok".into()), ..Default::default() };
    let e = link::open_with(&s.device_string().parse().unwrap(), &o).err().unwrap().to_string();
    assert!(e.contains("/nonexistent/tok"), "{e}");
    let st = s.handle().stats();
    assert_eq!(st.frames, 0, "{st:?}");
    assert!(st.refused >= 4, "{st:?}");
}

#[test]
fn token_file_works() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    let s = serve(Box::new(ModelLink::sim(4, 4)));
    let o = OpenOptions { token_file: Some(p), ..Default::default() };
    let l = link::open_with(&s.device_string().parse().unwrap(), &o).unwrap();
    assert_eq!(Device::new(l).info().unwrap().rows, 4);
}

#[test]
fn a_client_dropping_mid_frame_does_not_wedge_the_server() {
    let s = serve(Box::new(ModelLink::sim(4, 4)));
    for cut in [1usize, 5, 8, 20, 4000] {
        let mut t = raw(&s);
        let f = encode_request(Opcode::WriteWeights, 7, &[0x11; 4096]);
        t.write_all(&f[..cut]).unwrap();
        drop(t);
    }
    // Still holding a partial frame when the next client comes is impossible:
    // the next client's first request is answered at once.
    let mut dev = client(&s);
    let t = Instant::now();
    dev.info().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(dev.stats().retries, 0);
    // Nothing of the cut frames reached the device: weight memory is still 0.
    let y = dev.matmul(0, 1, 4, 4, (0, 0), &[1, 1, 1, 1]).unwrap();
    assert_eq!(y, vec![0; 4]);
}

#[test]
fn bad_frames_are_answered_like_the_device_would() {
    let s = serve(Box::new(ModelLink::sim(4, 4)));
    let mut t = raw(&s);
    // Garbage, then a good frame.
    let mut b = vec![0u8, 0x5A, 0x13];
    b.extend(encode_request(Opcode::Info, 0x1234, &[]));
    t.write_all(&b).unwrap();
    let r = read_reply(&mut t);
    assert_eq!((r.code, r.seq, r.payload.len()), (Status::Ok as u8, 0x1234, proto::INFO_LEN));
    // A bad CRC: BAD_CRC with the seq as received.
    let mut f = encode_request(Opcode::Reset, 0x0BAD, &[]);
    *f.last_mut().unwrap() ^= 1;
    t.write_all(&f).unwrap();
    let r = read_reply(&mut t);
    assert_eq!((r.code, r.seq), (Status::BadCrc as u8, 0x0BAD));
    // An impossible length: BAD_LENGTH at header time.
    let mut h = vec![0xA5, Opcode::WriteWeights as u8, 0x22, 0x11];
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    t.write_all(&h).unwrap();
    let r = read_reply(&mut t);
    assert_eq!((r.code, r.seq), (Status::BadLength as u8, 0x1122));
    // Unknown opcode: the device's own answer comes back.
    t.write_all(&encode_request(0x7Fu8, 5, &[])).unwrap();
    let r = read_reply(&mut t);
    assert_eq!((r.code, r.seq), (Status::BadOpcode as u8, 5));
}

#[test]
fn one_client_at_a_time_others_get_busy() {
    let s = serve(Box::new(ModelLink::sim(4, 4)));
    let mut a = client(&s);
    let mut b = client(&s); // connecting is fine
    a.info().unwrap(); // a holds the device now
    let e = b.info().unwrap_err();
    assert!(e.is_status(Status::Busy), "{e}");
    assert!(e.to_string().contains("BUSY"), "{e}");
    a.reset().unwrap();
    drop(a);
    // b takes over once a is gone, on the same connection.
    let t = Instant::now();
    loop {
        match b.info() {
            Ok(_) => break,
            Err(e) if e.is_status(Status::Busy) && t.elapsed() < Duration::from_secs(3) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(s.handle().stats().busy >= 1);
}

#[test]
fn loopback_only_unless_allowed() {
    let e = Server::bind(
        Box::new(ModelLink::sim(4, 4)),
        "0.0.0.0:0",
        Token::new(TOKEN).unwrap(),
        ServeOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, BridgeError::NotLoopback { .. }), "{e}");
    assert!(e.to_string().contains("--allow-remote"));
}

/// A link that fails after a few frames, like a board unplugged mid-run.
struct Dies {
    inner: ModelLink,
    left: usize,
}

impl Link for Dies {
    fn name(&self) -> &str {
        "dies:4x4"
    }
    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        if self.left == 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "cable pulled"));
        }
        self.left -= 1;
        self.inner.send(b)
    }
    fn recv(&mut self, buf: &mut [u8], t: Duration) -> io::Result<usize> {
        self.inner.recv(buf, t)
    }
}

#[test]
fn a_failing_device_stops_the_server_and_the_client_hears_it() {
    // INFO probe + 2 frames, then the device is gone.
    let s = serve(Box::new(Dies { inner: ModelLink::sim(4, 4), left: 3 }));
    let mut dev = client(&s);
    dev.info().unwrap();
    dev.reset().unwrap();
    let e = dev.reset().unwrap_err();
    assert!(matches!(e.cause, Cause::Io(_)), "{e}");
    assert!(e.to_string().contains("closed the connection"), "{e}");
    match s.stop() {
        Err(BridgeError::Device { device, source }) => {
            assert_eq!(device, "dies:4x4");
            assert!(source.to_string().contains("cable pulled"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn any_device_can_be_served_including_a_serial_board() {
    let board = PtyServer::gated(Box::new(ModelLink::sim(4, 8))).unwrap();
    let serial = link::open_str(&board.device_string()).unwrap();
    let s = serve(serial);
    assert!(s.handle().device_name().starts_with("serial:"));
    let mut dev = client(&s);
    assert_eq!(dev.link_mut().name(), s.device_string());
    let info = dev.info().unwrap();
    assert_eq!((info.rows, info.cols), (4, 8));
    let mut direct = Device::open("model:4x8").unwrap();
    let mut rng = Rng::new(3);
    let (m, k, n) = (5, 9, 17);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    dev.load_matrix(0, k, n, &w).unwrap();
    direct.load_matrix(0, k, n, &w).unwrap();
    assert_eq!(
        dev.matmul(0, m, k, n, (0, 0), &a).unwrap(),
        direct.matmul(0, m, k, n, (0, 0), &a).unwrap()
    );
}
