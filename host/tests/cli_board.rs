//! `faultloop board --pty` in its own process, driven by other `faultloop`
//! processes over the pseudo-terminal: matmul hashes equal the model's with
//! the hidden defects injected, and a short retrain runs over the board.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use faultloop_proto::faultmap::{FaultMap, RandomOptions};
use faultloop_tests::{run_json, write_synthetic_split};

const BIN: &str = env!("CARGO_BIN_EXE_faultloop");
/// Bit period of the boards under test (fast; the UART works at any >= 4).
const CPB: u32 = 8;

fn board_sizes() -> Vec<(usize, usize)> {
    let s = faultloop_verilated::board_sizes();
    assert!(!s.is_empty(), "no virtual board sizes built (FAULTLOOP_BOARD_SIZES)");
    s
}

struct BoardProcess {
    child: Child,
    path: String,
}

impl Drop for BoardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_board(bin: &str, args: &[&str]) -> BoardProcess {
    let mut child = Command::new(bin)
        .args(["board", "--pty"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let path = line.trim().to_string();
    assert!(path.starts_with("/dev/"), "first line is not a terminal path: {line:?}");
    BoardProcess { child, path }
}

#[test]
fn faultloop_board_binary_matmul_hashes_equal_the_model() {
    let bin = BIN;
    let (rows, cols) = board_sizes()[0];
    let array = format!("{rows}x{cols}");
    let tmp = tempfile::tempdir().unwrap();
    let map = FaultMap::random(rows, cols, 0.25, 3, &RandomOptions::default()).unwrap();
    let map_path = tmp.path().join("hidden.json");
    map.save(&map_path).unwrap();
    let mp = map_path.to_str().unwrap();
    let cpb = CPB.to_string();
    let board = start_board(bin, &["--array", &array, "--faults", mp, "--clocks-per-bit", &cpb]);
    let dev = format!("serial:{}", board.path);
    let model = format!("model:{array}");
    for (m, k, n, seed) in [(3, 7, 5, 1), (9, 2 * rows + 3, 3 * cols - 1, 2), (1, 40, 17, 3)] {
        let dims = [m.to_string(), k.to_string(), n.to_string(), seed.to_string()];
        let args = |d: &str, extra: &[&str]| -> serde_json::Value {
            let mut a =
                vec!["matmul", "--device", d, "--m", &dims[0], "--k", &dims[1], "--n", &dims[2]];
            a.extend(["--seed", &dims[3], "--json"]);
            a.extend(extra);
            run_json(bin, &a)
        };
        let on_board = args(&dev, &[]);
        let on_model = args(&model, &["--faults", mp]);
        assert_eq!(on_board["sha256"], on_model["sha256"], "{m}x{k}x{n}: {on_board} vs {on_model}");
        assert_eq!(on_board["device_cycles"], on_model["device_cycles"]);
        let clean = args(&model, &[]);
        if seed == 2 {
            assert_ne!(on_board["sha256"], clean["sha256"], "hidden defects must show");
        }
    }
}

/// 28x28 images, 4 classes: class c lights quadrant c (plus LCG noise).
#[test]
fn short_retrain_over_the_pty_board_with_hidden_defects() {
    let bin = BIN;
    let (rows, cols) = board_sizes()[0];
    let array = format!("{rows}x{cols}");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_synthetic_split(d, "train", 200, 1);
    write_synthetic_split(d, "t10k", 40, 2);
    let data = d.to_str().unwrap();
    let ck = d.join("m.ckpt");
    let ck = ck.to_str().unwrap();
    run_json(
        bin,
        &[
            "pretrain",
            "--data-dir",
            data,
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--lr",
            "1e-2",
            "-o",
            ck,
            "--json",
        ],
    );

    let map = FaultMap::random(rows, cols, 0.5, 5, &RandomOptions::default()).unwrap();
    let map_path = d.join("hidden.json");
    map.save(&map_path).unwrap();
    let mp = map_path.to_str().unwrap();
    let cpb = CPB.to_string();
    let board = start_board(bin, &["--array", &array, "--faults", mp, "--clocks-per-bit", &cpb]);
    let dev = format!("serial:{}", board.path);
    let out = d.join("re.ckpt");
    let r = run_json(
        bin,
        &[
            "retrain",
            "--data-dir",
            data,
            "--model",
            ck,
            "--device",
            &dev,
            "--epochs",
            "1",
            "--train-samples",
            "32",
            "--batch",
            "32",
            "--limit",
            "20",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(r["steps"], 1, "{r}");
    // What the board computed before retraining is what the model computes
    // with the hidden map injected.
    let e = run_json(
        bin,
        &[
            "eval",
            "--data-dir",
            data,
            "--model",
            ck,
            "--device",
            &format!("model:{array}"),
            "--faults",
            mp,
            "--limit",
            "20",
            "--json",
        ],
    );
    assert_eq!(r["accuracy_before"], e["accuracy"], "{r} vs {e}");
}

/// `faultloop characterize` in one process finds the hidden defects of a
/// `faultloop board` in another: only the wire reaches them. The found map,
/// given to `matmul` on the model, hashes like the board.
#[test]
fn characterize_finds_a_board_processes_hidden_defects() {
    let (rows, cols) = board_sizes()[0];
    let array = format!("{rows}x{cols}");
    let tmp = tempfile::tempdir().unwrap();
    let hidden = FaultMap::random(rows, cols, 0.3, 8, &RandomOptions::default()).unwrap();
    let hp = tmp.path().join("hidden.json");
    hidden.save(&hp).unwrap();
    let cpb = CPB.to_string();
    let board = start_board(
        BIN,
        &["--array", &array, "--faults", hp.to_str().unwrap(), "--clocks-per-bit", &cpb],
    );
    let dev = format!("serial:{}", board.path);
    let found = tmp.path().join("found.json");
    let fp = found.to_str().unwrap();
    let r = run_json(BIN, &["characterize", "--device", &dev, "-o", fp, "--json", "--verify", "6"]);
    for key in ["patterns", "matmuls", "seconds", "faults_found", "unobservable"] {
        assert!(!r[key].is_null(), "report lacks {key}: {r}");
    }
    assert_eq!(r["verification"]["ok"], true, "{r}");
    let map = FaultMap::load(&found).unwrap();
    // Everything but last-column act defects is observable and found.
    let observable: Vec<_> = hidden
        .faults
        .iter()
        .filter(|f| !(f.col == cols - 1 && f.site == faultloop_proto::Site::Act))
        .copied()
        .collect();
    assert_eq!(map.faults, observable, "{r}");
    let args = |d: &str, extra: &[&str]| {
        let mut a = vec!["matmul", "--device", d, "--m", "5", "--k", "11", "--n", "9", "--json"];
        a.extend(extra);
        run_json(BIN, &a)
    };
    let on_board = args(&dev, &[]);
    let on_model = args(&format!("model:{array}"), &["--faults", fp]);
    assert_eq!(on_board["sha256"], on_model["sha256"]);
}

/// `faultloop verify --device serial:PTY` compares the board with its golden
/// model configured from the board's INFO: a clean board passes, and one
/// with hidden defects (which its INFO does not tell) fails, naming a field.
#[test]
fn verify_checks_a_board_against_its_info_configured_model() {
    let bin = BIN;
    let (rows, cols) = board_sizes()[0];
    let array = format!("{rows}x{cols}");
    let cpb = CPB.to_string();
    let tmp = tempfile::tempdir().unwrap();

    let clean = start_board(bin, &["--array", &array, "--clocks-per-bit", &cpb]);
    let dev = format!("serial:{}", clean.path);
    let rep = run_json(bin, &["verify", "--device", &dev, "--cases", "8", "--seed", "5", "--json"]);
    assert_eq!(rep["passed"], true, "clean board: {rep}");
    let against = rep["against"].as_str().unwrap();
    assert!(against.starts_with("model (configured from the INFO of serial:"), "{against}");
    drop(clean);

    let map = FaultMap::random(rows, cols, 0.5, 7, &RandomOptions::default()).unwrap();
    let map_path = tmp.path().join("hidden.json");
    map.save(&map_path).unwrap();
    let faulty = start_board(
        bin,
        &["--array", &array, "--faults", map_path.to_str().unwrap(), "--clocks-per-bit", &cpb],
    );
    let dev = format!("serial:{}", faulty.path);
    let cases = tmp.path().join("cases");
    let out = Command::new(bin)
        .args(["verify", "--device", &dev, "--cases", "20", "--seed", "5"])
        .arg("--case-dir")
        .arg(&cases)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hidden defects must make verify fail:\n{text}");
    // The first differing reply field, board against model.
    assert!(text.contains(": board ") && text.contains(", model "), "names the field:\n{text}");
}
