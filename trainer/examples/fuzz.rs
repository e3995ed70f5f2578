//! The fuzz command for developers (stable Rust, no cargo-fuzz): seeded random
//! inputs through every parser of untrusted bytes, for a count or a time,
//! with the results as JSON on stdout.
//!
//! ```text
//! cargo run --release -p trainer --example fuzz -- [--target T] [--count N] [--seconds S] [--seed X]
//! ```
//!
//! Targets (`all` by default):
//! * `frames` — random request frames (valid, bit-flipped, cut short,
//!   impossible lengths, garbage) through the host's stream decoder
//!   (`faultloop_proto::decode`) and the golden model's receiver
//!   (`ModelLink`: `RequestGate` plus execution). Every reply the model sends
//!   must decode cleanly, and every 4096 frames a silence-equivalent (filler
//!   longer than any frame) and an INFO must get the right INFO answer from
//!   both (resync). Default count 1 000 000.
//! * `faultmap` — mutated fault-map JSON (`FaultMap::from_json_str`);
//! * `idx` — mutated idx files, plain and gzipped (`parse_images`,
//!   `parse_labels`, `parse_idx`);
//! * `meta` — mutated checkpoint `meta.json` (`checkpoint::parse_meta`).
//!
//! Each refused input's error must name the input (file or map) and a cause;
//! a panic, an unnamed error or a failed resync is counted and the command
//! exits non-zero. Replay files are not fuzzed: the project has no replay
//! format (yet).
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultloop_model::ModelLink;
use faultloop_proto::{
    decode, encode_request, Decoded, FaultMap, Info, Link, Opcode, Rng, Status, FRAME_OVERHEAD,
    REPLY_SYNC, REQUEST_SYNC,
};
use serde_json::{json, Value};
use tch::nn;
use trainer::checkpoint;
use trainer::data::{gunzip_maybe, parse_idx, parse_images, parse_labels};
use trainer::model::{Model, ModelSpec};

struct Budget {
    count: u64,
    until: Option<Instant>,
}

impl Budget {
    fn more(&self, done: u64) -> bool {
        // MSRV 1.80: no Option::is_none_or.
        done < self.count && self.until.map_or(true, |t| Instant::now() < t)
    }
}

/// Failures of one target (the first few inputs kept, hex-encoded).
#[derive(Default)]
struct Failures {
    panics: u64,
    unnamed: u64,
    resync: u64,
    samples: Vec<String>,
}

impl Failures {
    fn note(&mut self, what: &str, input: &[u8]) {
        if self.samples.len() < 5 {
            let hex: String = input.iter().take(256).map(|b| format!("{b:02x}")).collect();
            self.samples.push(format!("{what}: {hex}"));
        }
    }
    fn total(&self) -> u64 {
        self.panics + self.unnamed + self.resync
    }
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// One random request-side "frame": what a broken, hostile or noisy host
/// could send.
fn random_frame(rng: &mut Rng, buf_bytes: usize) -> Vec<u8> {
    let seq = rng.next_u32() as u16;
    let code = match rng.below(4) {
        0 => rng.next_u32() as u8,
        _ => 1 + rng.below(10) as u8, // a known opcode
    };
    let n = rng.below(48) as usize;
    let payload = random_bytes(rng, n);
    match rng.below(8) {
        0..=2 => encode_request(code, seq, &payload),
        3 => {
            let mut f = encode_request(code, seq, &payload);
            let at = rng.index(f.len());
            f[at] ^= 1 << rng.below(8);
            f
        }
        4 => {
            let mut f = encode_request(code, seq, &[]);
            let len = buf_bytes as u64 + 1 + rng.below(u32::MAX as u64 - buf_bytes as u64);
            f[4..8].copy_from_slice(&(len as u32).to_le_bytes());
            f.truncate(8);
            f
        }
        5 => {
            let f = encode_request(code, seq, &payload);
            f[..rng.index(f.len())].to_vec()
        }
        6 => {
            let n = rng.below(32) as usize;
            let mut g = random_bytes(rng, n);
            if rng.chance(0.3) {
                g.push(REQUEST_SYNC);
            }
            g
        }
        _ => encode_request(Opcode::Info, seq, &[]),
    }
}

fn fuzz_frames(budget: &Budget, seed: u64) -> Value {
    let info = Info::sim(4, 4);
    let buf_bytes = info.buf_bytes;
    let mut rng = Rng::new(seed);
    let mut model = ModelLink::new(info.clone());
    let mut fail = Failures::default();
    // The host-side decoder's stream and the model's reply stream.
    let mut dec_buf: Vec<u8> = Vec::new();
    let mut rep_buf: Vec<u8> = Vec::new();
    let (mut frames, mut bytes, mut decoded, mut replies, mut resyncs) = (0u64, 0u64, 0, 0, 0);
    let mut last_decoded = None;
    let mut last_reply = None;
    let mut chunk = vec![0u8; 1 << 16];
    let t0 = Instant::now();
    // Feed `bytes` to both receivers; returns false on a panic.
    let mut feed = |input: &[u8],
                    model: &mut ModelLink,
                    fail: &mut Failures,
                    last_decoded: &mut Option<(u8, u16)>,
                    last_reply: &mut Option<(u8, u16, Vec<u8>)>|
     -> (u64, u64) {
        let (mut d, mut r) = (0, 0);
        let ok = catch_unwind(AssertUnwindSafe(|| {
            dec_buf.extend_from_slice(input);
            let mut at = 0;
            loop {
                match decode(&dec_buf[at..], REQUEST_SYNC, buf_bytes) {
                    Decoded::Incomplete => break,
                    Decoded::Skip { n, .. } => at += n,
                    Decoded::Frame { frame, consumed } => {
                        at += consumed;
                        d += 1;
                        *last_decoded = Some((frame.code, frame.seq));
                    }
                }
            }
            dec_buf.drain(..at);
            model.send(input).expect("the model link never fails");
            loop {
                let n = model.recv(&mut chunk, Duration::ZERO).unwrap();
                if n == 0 {
                    break;
                }
                rep_buf.extend_from_slice(&chunk[..n]);
            }
            // The model's replies are always well-formed frames, back to back.
            let mut at = 0;
            let mut clean = true;
            loop {
                match decode(&rep_buf[at..], REPLY_SYNC, 1 << 20) {
                    Decoded::Incomplete => break,
                    Decoded::Skip { n, .. } => {
                        clean = false;
                        at += n
                    }
                    Decoded::Frame { frame, consumed } => {
                        at += consumed;
                        r += 1;
                        *last_reply = Some((frame.code, frame.seq, frame.payload));
                    }
                }
            }
            rep_buf.drain(..at);
            clean && rep_buf.is_empty()
        }));
        match ok {
            Ok(true) => {}
            Ok(false) => {
                fail.unnamed += 1;
                fail.note("model reply stream not clean", input);
            }
            Err(_) => {
                fail.panics += 1;
                fail.note("panic", input);
            }
        }
        (d, r)
    };
    let mut recent = Vec::new();
    while budget.more(frames) {
        let f = random_frame(&mut rng, buf_bytes);
        bytes += f.len() as u64;
        frames += 1;
        recent.extend_from_slice(&f);
        let (d, r) = feed(&f, &mut model, &mut fail, &mut last_decoded, &mut last_reply);
        decoded += d;
        replies += r;
        if frames % 4096 == 0 || !budget.more(frames) {
            // Resync: filler longer than any frame stands for the idle
            // timeout (the model has no clock), then an INFO.
            let marker = rng.next_u32() as u16;
            let mut probe = vec![0u8; buf_bytes + FRAME_OVERHEAD];
            probe.extend(encode_request(Opcode::Info, marker, &[]));
            let (d, r) = feed(&probe, &mut model, &mut fail, &mut last_decoded, &mut last_reply);
            decoded += d;
            replies += r;
            resyncs += 1;
            let want_reply = Some((Status::Ok as u8, marker, info.to_bytes()));
            if last_decoded != Some((Opcode::Info as u8, marker)) || last_reply != want_reply {
                fail.resync += 1;
                fail.note("no resync after", &recent);
            }
            recent.clear();
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    report(
        "frames",
        frames,
        seconds,
        &fail,
        json!({
            "bytes": bytes,
            "frames_decoded": decoded,
            "model_replies": replies,
            "resync_checks": resyncs,
            "frames_per_second": frames as f64 / seconds.max(1e-9),
            "receivers": ["faultloop_proto::decode", "faultloop_model::ModelLink (RequestGate + model)"],
        }),
    )
}

fn report(target: &str, inputs: u64, seconds: f64, fail: &Failures, extra: Value) -> Value {
    let mut v = json!({
        "target": target,
        "inputs": inputs,
        "seconds": seconds,
        "inputs_per_second": inputs as f64 / seconds.max(1e-9),
        "panics": fail.panics,
        "unnamed_errors": fail.unnamed,
        "resync_failures": fail.resync,
        "failures": fail.total(),
        "samples": fail.samples,
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    v
}

/// Random edits of a valid input: flips, cuts, insertions, duplicated spans.
fn mutate(rng: &mut Rng, base: &[u8], alphabet: &[u8]) -> Vec<u8> {
    let mut s = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        if s.is_empty() {
            s.push(alphabet[rng.index(alphabet.len())]);
            continue;
        }
        let at = rng.index(s.len());
        match rng.below(6) {
            0 => s[at] ^= 1 << rng.below(8),
            1 => s.truncate(at),
            2 => s.insert(at, alphabet[rng.index(alphabet.len())]),
            3 => {
                s.remove(at);
            }
            4 => s[at] = alphabet[rng.index(alphabet.len())],
            _ => {
                let end = (at + rng.below(16) as usize).min(s.len());
                let span = s[at..end].to_vec();
                s.splice(at..at, span);
            }
        }
    }
    s
}

/// Run `parse` on inputs from `gen`; an error's message must contain `name`.
fn fuzz_parser(
    target: &str,
    budget: &Budget,
    name: &str,
    mut gen: impl FnMut(u64) -> Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<(), String>,
) -> Value {
    let mut fail = Failures::default();
    let (mut n, mut accepted, mut refused) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    while budget.more(n) {
        let input = gen(n);
        n += 1;
        match catch_unwind(AssertUnwindSafe(|| parse(&input))) {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(msg)) => {
                refused += 1;
                // The input is named, and something follows the name.
                let named = msg.contains(name) && msg.len() > name.len() + 2;
                if !named {
                    fail.unnamed += 1;
                    fail.note(&format!("unnamed error `{msg}`"), &input);
                }
            }
            Err(_) => {
                fail.panics += 1;
                fail.note("panic", &input);
            }
        }
    }
    report(
        target,
        n,
        t0.elapsed().as_secs_f64(),
        &fail,
        json!({ "accepted": accepted, "refused": refused }),
    )
}

const JSON_ALPHABET: &[u8] = b"{}[]\",:0123456789-.eE truefalsnul\\rowcsitepumagh_";

fn fuzz_faultmap(budget: &Budget, seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let base =
        FaultMap::random(8, 8, 0.1, 7, &Default::default()).expect("a random map").to_json_string();
    let with_seu = r#"{"array": {"rows": 4, "cols": 4}, "faults": [{"row": 1, "col": 2, "site": "psum", "stuck_at_1": 1024}], "bypass": [[0, 1]], "seu": {"rate": 0.001, "seed": 9}}"#;
    fuzz_parser(
        "faultmap",
        budget,
        "fault map (in memory)",
        |i| {
            let b = if i % 2 == 0 { base.as_bytes() } else { with_seu.as_bytes() };
            mutate(&mut rng, b, JSON_ALPHABET)
        },
        |input| {
            // Invalid UTF-8 is refused by the caller that reads the file
            // (FaultMap::load names it); here only text reaches the parser.
            let text = String::from_utf8_lossy(input);
            FaultMap::from_json_str(&text).map(|_| ()).map_err(|e| e.to_string())
        },
    )
}

fn fuzz_idx(budget: &Budget, seed: u64) -> Value {
    let rng = Rng::new(seed);
    let path = PathBuf::from("fuzz/input.idx");
    let images = trainer::data::encode_idx(&[3, 4, 5], &[7u8; 60]);
    let labels = trainer::data::encode_idx(&[6], &[1u8; 6]);
    let gzip = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let mut g = rng;
    fuzz_parser(
        "idx",
        budget,
        "fuzz/input.idx",
        move |i| {
            let base = if i % 2 == 0 { &images } else { &labels };
            let mut m = mutate(&mut g, base, &[0, 1, 3, 8, 0xff, 0x80]);
            // Sometimes a header claiming huge dims.
            if g.chance(0.1) && m.len() >= 8 {
                m[4..8].copy_from_slice(&g.next_u32().to_be_bytes());
            }
            match g.below(4) {
                0 => gzip(&m),
                1 => {
                    // A gzip stream cut or flipped.
                    let z = gzip(&m);
                    mutate(&mut g, &z, &[0, 0x1f, 0x8b])
                }
                _ => m,
            }
        },
        |input| {
            let bytes = gunzip_maybe(input.to_vec(), &path).map_err(|e| e.to_string())?;
            let r = [
                parse_images(&bytes, &path).map(|_| ()),
                parse_labels(&bytes, &path).map(|_| ()),
                parse_idx(&bytes, &path).map(|_| ()),
            ];
            let errors: Vec<String> =
                r.iter().filter_map(|x| x.as_ref().err()).map(|e| e.to_string()).collect();
            // Every refusal must name the file: hand back an unnamed one first.
            let name = path.display().to_string();
            if let Some(e) = errors.iter().find(|e| !e.contains(&name)) {
                return Err(e.clone());
            }
            // Accepted when one of the readers takes it (images or labels).
            if errors.len() == r.len() {
                return Err(errors[0].clone());
            }
            Ok(())
        },
    )
}

fn fuzz_meta(budget: &Budget, seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let ck = dir.path().join("m.ckpt");
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let spec = ModelSpec::Mlp { widths: vec![16, 4] };
    let model = Model::new(&vs.root(), &spec).expect("a tiny model");
    checkpoint::save(&ck, &vs, &model, json!({"note": "fuzz base"})).expect("save");
    let base = std::fs::read(ck.join(checkpoint::META_FILE)).expect("meta.json");
    let mpath = Path::new("fuzz.ckpt/meta.json");
    fuzz_parser(
        "meta",
        budget,
        "fuzz.ckpt/meta.json",
        |_| mutate(&mut rng, &base, JSON_ALPHABET),
        |input| checkpoint::parse_meta(input, mpath).map(|_| ()).map_err(|e| e.to_string()),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let target = opt("--target").map_or("all", String::as_str).to_string();
    let num = |name: &str| {
        opt(name).map(|s| {
            s.replace('_', "")
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad {name} `{s}`: expected a number"))
        })
    };
    let count = num("--count");
    let seconds = num("--seconds");
    let seed = num("--seed").map_or(1, |s| s as u64);
    let budget = |default: u64| Budget {
        count: count.map_or(if seconds.is_some() { u64::MAX } else { default }, |c| c as u64),
        until: seconds.map(|s| Instant::now() + Duration::from_secs_f64(s)),
    };
    let all = target == "all";
    let mut out = Vec::new();
    if all || target == "frames" {
        out.push(fuzz_frames(&budget(1_000_000), seed));
    }
    if all || target == "faultmap" {
        out.push(fuzz_faultmap(&budget(100_000), seed));
    }
    if all || target == "idx" {
        out.push(fuzz_idx(&budget(100_000), seed));
    }
    if all || target == "meta" {
        out.push(fuzz_meta(&budget(100_000), seed));
    }
    if out.is_empty() {
        eprintln!("bad --target `{target}`: expected frames, faultmap, idx, meta or all");
        std::process::exit(2);
    }
    let failures: u64 = out.iter().map(|v| v["failures"].as_u64().unwrap_or(0)).sum();
    println!("{}", serde_json::to_string_pretty(&json!({ "seed": seed, "targets": out })).unwrap());
    if failures > 0 {
        std::process::exit(1);
    }
}
