//! Adversaries against a running bridge server (`faultloop serve`), with a
//! legitimate client beside them whose every answer is checked against the
//! golden model ([`soak`]).
//!
//! The attacks run one after another while the legitimate client holds the
//! device and keeps working; each row of the [`AdversaryReport`] says what
//! the server did to the attackers and what the legitimate client saw
//! meanwhile (requests, errors, wrong answers). Nothing here sleeps to pace
//! itself except the slowloris, which trickles its handshake one byte per
//! quarter of the server's handshake deadline (paced by a read timeout) to
//! show that the deadline is for the whole line, not per read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use faultloop_model::ModelLink;
use faultloop_proto::{decode, encode_request, Decoded, Opcode, Rng, Status, REPLY_SYNC};

use crate::client::{ClientOptions, Device};
use crate::handshake::Token;
use crate::links::tcp::TcpLink;
use crate::testing::soak::{soak, SoakOptions};

/// What to throw at the server.
#[derive(Clone, Debug)]
pub struct AdversaryOptions {
    /// The server's address and token.
    pub addr: SocketAddr,
    pub token: String,
    /// The served device's array size (the legitimate client's reference is
    /// the golden model of that size).
    pub rows: usize,
    pub cols: usize,
    /// The server's handshake deadline (the slowloris is paced by it).
    pub handshake_timeout: Duration,
    /// The server's process, for its peak RSS (`/proc/PID/status` VmHWM).
    pub server_pid: Option<u32>,
    /// Clients that drop mid-frame (default 100).
    pub drop_mid_frame: usize,
    /// Frames claiming impossible lengths (default 100).
    pub huge_lengths: usize,
    /// Simultaneous connections (default 50).
    pub crowd: usize,
    /// Wrong, empty and malformed tokens (default 60).
    pub bad_tokens: usize,
    pub seed: u64,
}

impl AdversaryOptions {
    /// The default counts against `addr`.
    pub fn new(addr: SocketAddr, token: &str, rows: usize, cols: usize) -> AdversaryOptions {
        AdversaryOptions {
            addr,
            token: token.into(),
            rows,
            cols,
            handshake_timeout: Duration::from_secs(5),
            server_pid: None,
            drop_mid_frame: 100,
            huge_lengths: 100,
            crowd: 50,
            bad_tokens: 60,
            seed: 1,
        }
    }
}

/// One attack and its effects.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AttackRow {
    pub attack: String,
    /// Attacking connections or frames.
    pub count: usize,
    /// What the server answered the attackers, by kind (e.g. `BUSY: 15`).
    pub server_answers: Vec<(String, usize)>,
    /// The legitimate client during the attack.
    pub legit_requests: u64,
    pub legit_errors: u64,
    pub legit_wrong: u64,
    /// The server's peak RSS after the attack (KiB), if its pid is known.
    pub server_peak_rss_kib: Option<u64>,
    /// How long the attack took.
    pub seconds: f64,
}

impl AttackRow {
    /// How many attackers got answer `what`.
    pub fn answered(&self, what: &str) -> usize {
        self.server_answers.iter().filter(|(w, _)| w == what).map(|(_, n)| n).sum()
    }
}

/// The adversary table.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AdversaryReport {
    pub rows: Vec<AttackRow>,
    /// The legitimate client over the whole run.
    pub legit_requests: u64,
    pub legit_errors: u64,
    pub legit_wrong: u64,
    /// The first wrong answers, described.
    pub sample_wrong: Vec<String>,
    /// Server peak RSS before the attacks and after all of them (KiB).
    pub server_rss_before_kib: Option<u64>,
    pub server_peak_rss_kib: Option<u64>,
    pub seconds: f64,
}

/// `VmHWM` (peak resident set, KiB) of process `pid`, from /proc.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct Legit {
    requests: AtomicU64,
    errors: AtomicU64,
    wrong: AtomicU64,
    stop: AtomicBool,
}

impl Legit {
    fn snapshot(&self) -> (u64, u64, u64) {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        (g(&self.requests), g(&self.errors), g(&self.wrong))
    }
}

fn connect(o: &AdversaryOptions) -> TcpStream {
    let t = TcpStream::connect(o.addr).expect("connect to the server");
    t.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = t.set_nodelay(true);
    t
}

/// The server's one-line answer, up to `\n` (empty when it closed first).
fn read_line(t: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while out.len() < 2048 && t.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Connect and hand-shake; `Err(line)` when the server did not say OK.
fn handshake(o: &AdversaryOptions, token: &str) -> Result<TcpStream, String> {
    let mut t = connect(o);
    let _ = t.write_all(format!("FAULTLOOP/1 {token}\n").as_bytes());
    let line = read_line(&mut t);
    if line.starts_with("OK ") {
        Ok(t)
    } else {
        Err(line)
    }
}

/// Read one reply frame; `None` when the connection closed first.
fn read_reply(t: &mut TcpStream) -> Option<faultloop_proto::Frame> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match decode(&buf, REPLY_SYNC, 1 << 24) {
            Decoded::Frame { frame, .. } => return Some(frame),
            Decoded::Skip { n, .. } => {
                buf.drain(..n);
                continue;
            }
            Decoded::Incomplete => {}
        }
        match t.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What the server answered the attackers of one attack, by kind.
type Answers = Vec<(String, usize)>;

fn tally(answers: &mut Answers, what: String) {
    match answers.iter_mut().find(|(w, _)| *w == what) {
        Some(e) => e.1 += 1,
        None => answers.push((what, 1)),
    }
}

/// The reason of an `ERR <reason>` line, or the line itself.
fn reason(line: &str) -> String {
    let r = line.strip_prefix("ERR ").unwrap_or(line);
    if r.is_empty() {
        "closed".into()
    } else {
        format!("ERR {r}")
    }
}

/// Run every attack against the server at `o.addr` while a legitimate
/// client works beside them. Panics if the legitimate client cannot connect
/// (the server is not there).
pub fn run_adversaries(o: &AdversaryOptions) -> AdversaryReport {
    let t0 = Instant::now();
    let legit = Arc::new(Legit::default());
    let sample_wrong = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // The legitimate client connects first and holds the device throughout.
    let token = Token::new(&o.token).expect("a valid token");
    let link = TcpLink::connect(&o.addr.to_string(), &token, Duration::from_secs(10))
        .expect("the legitimate client connects");
    let mut dut = Device::with_options(Box::new(link), ClientOptions::default());
    dut.info().expect("the legitimate client's first request");
    let (rows, cols, seed) = (o.rows, o.cols, o.seed);
    let worker = {
        let legit = legit.clone();
        let sample_wrong = sample_wrong.clone();
        thread::spawn(move || {
            let mut reference = Device::new(Box::new(ModelLink::sim(rows, cols)));
            let mut round = 0u64;
            while !legit.stop.load(Ordering::SeqCst) {
                round += 1;
                let opts = SoakOptions {
                    requests: 20,
                    seed: seed.wrapping_mul(1_000_003).wrapping_add(round),
                    window: 1024,
                    ..SoakOptions::default()
                };
                let r = soak(&mut dut, &mut reference, &opts);
                legit.requests.fetch_add(r.requests, Ordering::SeqCst);
                legit.errors.fetch_add(r.errors, Ordering::SeqCst);
                legit.wrong.fetch_add(r.wrong, Ordering::SeqCst);
                let mut w = sample_wrong.lock().unwrap();
                if w.len() < 5 {
                    w.extend(r.sample_wrong);
                }
            }
        })
    };
    let rss = || o.server_pid.and_then(peak_rss_kib);
    let rss_before = rss();
    // The server's threads with only the legitimate client connected: after
    // each attack, wait until its connection threads are gone again, so the
    // next attack meets a server with one connection (its counts exact).
    let tasks = || {
        o.server_pid
            .and_then(|p| std::fs::read_dir(format!("/proc/{p}/task")).ok())
            .map(|d| d.count())
    };
    let baseline = tasks();
    let settle = || {
        let t = Instant::now();
        while tasks() > baseline && t.elapsed() < Duration::from_secs(10) {
            thread::yield_now();
        }
    };
    let mut rows_out = Vec::new();
    let mut rng = Rng::new(o.seed);
    let mut phase = |name: &str, count: usize, f: &mut dyn FnMut(&mut Answers)| {
        // Let the legitimate client make progress in every phase.
        let (r0, e0, w0) = legit.snapshot();
        let t = Instant::now();
        let mut answers = Vec::new();
        f(&mut answers);
        let seconds = t.elapsed().as_secs_f64();
        settle();
        while legit.snapshot().0 < r0 + 20 && !worker.is_finished() {
            thread::yield_now();
        }
        let (r1, e1, w1) = legit.snapshot();
        rows_out.push(AttackRow {
            attack: name.into(),
            count,
            server_answers: answers,
            legit_requests: r1 - r0,
            legit_errors: e1 - e0,
            legit_wrong: w1 - w0,
            server_peak_rss_kib: rss(),
            seconds,
        });
    };

    // 1. Simultaneous connections, all open at once, each sending INFO (first,
    //    while the legitimate client is the only other connection).
    phase("simultaneous connections", o.crowd, &mut |ans| {
        let mut open = Vec::new();
        for _ in 0..o.crowd {
            match handshake(o, &o.token) {
                Ok(t) => open.push(t),
                Err(line) => tally(ans, reason(&line)),
            }
        }
        for t in &mut open {
            let _ = t.write_all(&encode_request(Opcode::Info, 3, &[]));
        }
        for t in &mut open {
            match read_reply(t) {
                Some(r) if r.code == Status::Busy as u8 => tally(ans, "BUSY".into()),
                Some(r) => tally(ans, format!("status {}", Status::name_of(r.code))),
                None => tally(ans, "closed".into()),
            }
        }
    });

    // 2. Clients that drop mid-frame: a good handshake, a random prefix of a
    //    MATMUL-sized frame, gone.
    phase("drop mid-frame", o.drop_mid_frame, &mut |ans| {
        for _ in 0..o.drop_mid_frame {
            match handshake(o, &o.token) {
                Ok(mut t) => {
                    let len = 1 + rng.below(2000) as usize;
                    let payload: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                    let f = encode_request(Opcode::Matmul, 1, &payload);
                    let cut = 1 + rng.below(f.len() as u64 - 1) as usize;
                    let _ = t.write_all(&f[..cut]);
                    tally(ans, "dropped by the client".into());
                }
                Err(line) => tally(ans, reason(&line)),
            }
        }
    });

    // 3. Frames claiming impossible lengths, on a few connections that never
    //    hold the device (a refused frame is answered by the gate).
    phase("huge lengths", o.huge_lengths, &mut |ans| {
        let per_conn = 10;
        let mut left = o.huge_lengths;
        while left > 0 {
            let mut t = match handshake(o, &o.token) {
                Ok(t) => t,
                Err(line) => {
                    tally(ans, reason(&line));
                    left = left.saturating_sub(per_conn);
                    continue;
                }
            };
            for _ in 0..per_conn.min(left) {
                left -= 1;
                let claim = match rng.below(3) {
                    0 => u32::MAX,
                    1 => 1 << 31,
                    _ => (1 << 20) + rng.below(1 << 30) as u32,
                };
                let mut f = encode_request(Opcode::WriteWeights, 7, &[]);
                f[4..8].copy_from_slice(&claim.to_le_bytes());
                let _ = t.write_all(&f[..8]);
                match read_reply(&mut t) {
                    Some(r) if r.code == Status::BadLength as u8 => tally(ans, "BAD_LENGTH".into()),
                    Some(r) => tally(ans, format!("status {}", Status::name_of(r.code))),
                    None => tally(ans, "closed".into()),
                }
            }
        }
    });

    // 4. Wrong, empty and malformed tokens; a frame instead of a handshake.
    phase("wrong and empty tokens", o.bad_tokens, &mut |ans| {
        for i in 0..o.bad_tokens {
            let mut t = connect(o);
            let line: Vec<u8> = match i % 6 {
                0 => b"FAULTLOOP/1 \n".to_vec(),
                1 => b"FAULTLOOP/1\n".to_vec(),
                2 => {
                    // One character off, at a random place.
                    let mut tok = o.token.clone().into_bytes();
                    let at = rng.below(tok.len() as u64) as usize;
                    tok[at] = if tok[at] == b'x' { b'y' } else { b'x' };
                    [b"FAULTLOOP/1 ".to_vec(), tok, b"\n".to_vec()].concat()
                }
                3 => format!("FAULTLOOP/1 {}x\n", o.token).into_bytes(),
                4 => encode_request(Opcode::Info, 1, &[]),
                _ => {
                    let n = 1 + rng.below(600) as usize;
                    let mut g: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                    g.push(b'\n');
                    g
                }
            };
            let _ = t.write_all(&line);
            let answer = read_line(&mut t);
            if answer.starts_with("OK ") {
                tally(ans, "ACCEPTED".into());
            } else {
                tally(ans, reason(&answer));
            }
        }
    });

    // 5. Slowloris: the handshake line one byte at a time, a quarter of the
    //    deadline apart, never finished. The server must drop it at the
    //    deadline ("no handshake in time"), long before the line limit.
    phase("slowloris handshake", 1, &mut |ans| {
        let mut t = connect(o);
        t.set_read_timeout(Some((o.handshake_timeout / 4).max(Duration::from_millis(1)))).unwrap();
        let bytes = b"FAULTLOOP/1 ".iter().copied().chain(std::iter::repeat(b'a'));
        let start = Instant::now();
        let mut got = Vec::new();
        for (sent, b) in bytes.enumerate() {
            if t.write_all(&[b]).is_err() || sent > 2048 {
                break;
            }
            let mut buf = [0u8; 256];
            match t.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.contains(&b'\n') {
                        break;
                    }
                }
                Err(_) => {} // nothing yet: trickle the next byte
            }
        }
        let line = String::from_utf8_lossy(&got).trim_end().to_string();
        log::info!("slowloris dropped after {:.2} s", start.elapsed().as_secs_f64());
        tally(ans, reason(&line));
    });

    legit.stop.store(true, Ordering::SeqCst);
    let _ = worker.join();
    let (r, e, w) = legit.snapshot();
    let sample_wrong = sample_wrong.lock().unwrap().clone();
    AdversaryReport {
        rows: rows_out,
        legit_requests: r,
        legit_errors: e,
        legit_wrong: w,
        sample_wrong,
        server_rss_before_kib: rss_before,
        server_peak_rss_kib: rss(),
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// A `faultloop serve` process (binary `bin`) serving `device` on a free
/// loopback port with the token in `token_file`; returns it and its address
/// (read from its start-up line). Its stderr is drained on a thread.
pub fn spawn_server(
    bin: &std::path::Path,
    device: &str,
    token_file: &std::path::Path,
    handshake_timeout: Duration,
) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin)
        .arg("--token-file")
        .arg(token_file)
        .args(["serve", "--device", device, "--listen", "127.0.0.1:0", "--handshake-timeout-s"])
        .arg(format!("{}", handshake_timeout.as_secs_f64()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} serve: {e}", bin.display()));
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            _ => panic!("{} serve exited before listening", bin.display()),
        };
        if let Some(rest) = line.split(" on tcp://").nth(1) {
            let a = rest.split_whitespace().next().unwrap_or("");
            break a.parse::<SocketAddr>().unwrap_or_else(|e| panic!("address in {line:?}: {e}"));
        }
    };
    thread::spawn(move || for _ in lines.by_ref() {});
    (child, addr)
}
