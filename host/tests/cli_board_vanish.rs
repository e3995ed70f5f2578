//! A board that vanishes: the pty board (`faultloop board --pty`, its own
//! process) is SIGKILLed mid-retrain. The run stops with an error naming the
//! device and the checkpoint it saved; on a restarted board (a new pty path),
//! `--resume` finishes with the same checkpoint as an uninterrupted run.
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultloop_proto::faultmap::{FaultMap, RandomOptions};
use faultloop_tests::{run_json, write_synthetic_split};

const BIN: &str = env!("CARGO_BIN_EXE_faultloop");
/// Bit period of the boards under test (fast; the UART works at any >= 4).
const CPB: &str = "8";

struct Board {
    child: Child,
    path: String,
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_board(array: &str, hidden: &str) -> Board {
    let mut child = Command::new(BIN)
        .args(["board", "--pty", "--array", array, "--faults", hidden, "--clocks-per-bit", CPB])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let path = line.trim().to_string();
    assert!(path.starts_with("/dev/"), "first line is not a terminal path: {line:?}");
    Board { child, path }
}

#[test]
fn a_board_killed_mid_retrain_stops_the_run_and_resume_finishes_it_identically() {
    let (rows, cols) = faultloop_verilated::board_sizes()[0];
    let array = format!("{rows}x{cols}");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_synthetic_split(d, "train", 200, 1);
    write_synthetic_split(d, "t10k", 40, 2);
    let data = d.to_str().unwrap();
    let ck = d.join("m.ckpt");
    let ck = ck.to_str().unwrap();
    let pre = ["pretrain", "--data-dir", data, "--model", "mlp", "--epochs", "2", "--lr", "1e-2"];
    run_json(BIN, &[&pre[..], &["-o", ck, "--json"]].concat());
    let map = FaultMap::random(rows, cols, 0.5, 5, &RandomOptions::default()).unwrap();
    let hidden = d.join("hidden.json");
    map.save(&hidden).unwrap();
    let hidden = hidden.to_str().unwrap();
    let args = |dev: &str, out: &Path| -> Vec<String> {
        let o = out.to_str().unwrap();
        [
            "retrain",
            "--data-dir",
            data,
            "--model",
            ck,
            "--device",
            dev,
            "--epochs",
            "1",
            "--train-samples",
            "48",
            "--batch",
            "16",
            "--limit",
            "8",
            "--checkpoint-every",
            "1",
            "--resume",
            "-o",
            o,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };

    // The uninterrupted run, on its own board.
    let full = d.join("full.ckpt");
    let want = {
        let a = start_board(&array, hidden);
        let dev = format!("serial:{}", a.path);
        let v: Vec<String> = args(&dev, &full);
        run_json(BIN, &v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(want["steps"], 3, "{want}");

    // The interrupted run: the board dies once the first checkpoint is saved.
    let out = d.join("re.ckpt");
    let mut b = start_board(&array, hidden);
    let dev_b = format!("serial:{}", b.path);
    let mut run = Command::new(BIN)
        .args(args(&dev_b, &out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !out.join("retrain_state.json").is_file() {
        assert!(run.try_wait().unwrap().is_none(), "the run ended before its first checkpoint");
        assert!(t0.elapsed() < Duration::from_secs(300), "no checkpoint in 300 s");
        std::thread::sleep(Duration::from_millis(5)); // polling for the file, not timing
    }
    let t_kill = Instant::now();
    eprintln!("checkpoint after {:.1} s; killing the board", t0.elapsed().as_secs_f64());
    b.child.kill().unwrap();
    let _ = b.child.wait();
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = run.wait().unwrap();
    eprintln!("the run stopped {:.1} s after the kill:\n{err}", t_kill.elapsed().as_secs_f64());
    assert!(!status.success(), "the run went on without its board: {err}");
    assert!(err.contains(&dev_b), "the error does not name the device {dev_b}: {err}");
    assert!(
        err.contains(&format!("is saved in {}", out.display())) && err.contains("--resume"),
        "the error does not say what was saved: {err}"
    );

    // A restarted board (a new pty, the same chip): --resume finishes it.
    let c = start_board(&array, hidden);
    let dev_c = format!("serial:{}", c.path);
    let v = args(&dev_c, &out);
    let got = run_json(BIN, &v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(got["resumed_at_step"].as_u64().is_some_and(|s| (1..3).contains(&s)), "{got}");
    assert_eq!(got["steps"], want["steps"]);
    assert_eq!(got["accuracy_after"], want["accuracy_after"], "{got} vs {want}");
    for f in ["weights.safetensors", "adam.safetensors"] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(full.join(f)).unwrap(),
            "{f} differs from the uninterrupted run's"
        );
    }
}
