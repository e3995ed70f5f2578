//! `faultloop export | import` end to end on a tiny synthetic data set and
//! the golden-model device: an exported and re-imported checkpoint evaluates
//! exactly as the original; a file without metadata needs `--spec` and is
//! calibrated; bad input fails naming the file and the tensor.
use std::process::Command;

use faultloop_tests::{run_json, tiny_pretrained};

const BIN: &str = env!("CARGO_BIN_EXE_faultloop");

#[test]
fn export_import_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (data, ck) = tiny_pretrained(BIN, d);
    let st = d.join("m.safetensors");
    let st = st.to_str().unwrap();
    let x = run_json(BIN, &["export", "--model", &ck, "-o", st, "--json"]);
    assert_eq!(x["tensors"], 3 * 6, "{x}");
    assert_eq!(x["layers"][0]["name"], "fc0");

    let back = d.join("back.ckpt");
    let back = back.to_str().unwrap();
    let i = run_json(BIN, &["import", "--from", st, "-o", back, "--json"]);
    assert_eq!(i["calib_samples"], 0, "{i}");
    assert_eq!(i["layers"][0]["scales"], "file");
    for (l, xl) in i["layers"].as_array().unwrap().iter().zip(x["layers"].as_array().unwrap()) {
        assert_eq!(l["in_scale"], xl["in_scale"]);
        assert_eq!(l["w_scale"], xl["w_scale"]);
    }
    let eval = |m: &str| {
        run_json(
            BIN,
            &["eval", "--data-dir", &data, "--model", m, "--device", "model:4x4", "--json"],
        )
    };
    let (e0, e1) = (eval(&ck), eval(back));
    assert_eq!(e0["accuracy"], e1["accuracy"]);
    assert_eq!(e0["bytes_from_device"], e1["bytes_from_device"]);

    // --calibrate on training images; a given spec must match the file's.
    let cal = d.join("cal.ckpt");
    let i = run_json(
        BIN,
        &[
            "import",
            "--from",
            st,
            "--spec",
            "mlp:784-256-128-10",
            "--calibrate",
            "--calib-samples",
            "100",
            "--data-dir",
            &data,
            "-o",
            cal.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(i["calib_samples"], 100, "{i}");
    assert_eq!(i["layers"][2]["scales"], "calibrated");
    for l in i["layers"].as_array().unwrap() {
        assert!(l["in_scale"].as_f64().unwrap() > 0.0, "{i}");
    }
    // The calibrated checkpoint loads and runs (its accuracy against
    // PyTorch's is trainer/tests/interop.rs's business, on Fashion-MNIST).
    let e2 = eval(cal.to_str().unwrap());
    assert_eq!(e2["samples"], 60, "{e2}");

    let out = Command::new(BIN)
        .args(["import", "--from", st, "--spec", "mlp:784-64-10", "-o"])
        .arg(d.join("x.ckpt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{st}: the file records the architecture mlp:784-256-128-10")),
        "{err}"
    );
}
