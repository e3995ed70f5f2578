//! `faultloop pretrain | eval | retrain` end to end on a tiny synthetic
//! 28×28 data set and the golden-model device (`model:4x4`).
use std::process::Command;

use faultloop_tests::{run_json, write_synthetic_split};
use serde_json::Value;

fn faultloop(args: &[&str]) -> Value {
    run_json(env!("CARGO_BIN_EXE_faultloop"), args)
}

#[test]
fn pretrain_eval_retrain_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_synthetic_split(d, "train", 400, 1);
    write_synthetic_split(d, "t10k", 100, 2);
    let data = d.to_str().unwrap();
    let ckpt = d.join("m.ckpt");
    let ck = ckpt.to_str().unwrap();
    let p = faultloop(&[
        "pretrain",
        "--data-dir",
        data,
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--lr",
        "1e-2",
        "--seed",
        "3",
        "-o",
        ck,
        "--json",
    ]);
    assert!(p["accuracy"].as_f64().unwrap() > 0.6, "{p}");

    // The whole test set on the device: the host's int8 accuracy exactly.
    let e =
        faultloop(&["eval", "--data-dir", data, "--model", ck, "--device", "model:4x4", "--json"]);
    assert_eq!(e["samples"], 100);
    assert_eq!(e["accuracy"], p["accuracy"]);
    assert_eq!(e["macs"].as_u64().unwrap(), 100 * (784 * 256 + 256 * 128 + 128 * 10));
    for k in ["seconds", "bytes_to_device", "bytes_from_device", "link_seconds"] {
        assert!(e[k].as_f64().unwrap() > 0.0, "{k}: {e}");
    }

    let faults = d.join("f.json");
    let st = Command::new(env!("CARGO_BIN_EXE_faultloop"))
        .args([
            "faults", "random", "--rows", "4", "--cols", "4", "--rate", "0.25", "--seed", "2", "-o",
        ])
        .arg(&faults)
        .status()
        .unwrap();
    assert!(st.success());
    let f = faults.to_str().unwrap();
    let common = [
        "retrain",
        "--data-dir",
        data,
        "--model",
        ck,
        "--device",
        "model:4x4",
        "--faults",
        f,
        "--epochs",
        "2",
        "--train-samples",
        "128",
        "--batch",
        "32",
        "--limit",
        "50",
        "--checkpoint-every",
        "3",
        "--json",
    ];
    let out_full = d.join("full.ckpt");
    let mut a: Vec<&str> = common.to_vec();
    a.extend(["-o", out_full.to_str().unwrap()]);
    let r = faultloop(&a);
    for k in [
        "accuracy_before",
        "accuracy_after",
        "epochs",
        "seconds",
        "link_seconds",
        "bytes_per_step_dense",
        "bytes_per_step_sent",
    ] {
        assert!(r.get(k).is_some(), "missing {k}: {r}");
    }
    assert_eq!(r["epochs"], 2);
    assert_eq!(r["steps"], 8);
    assert!(r["bytes_per_step_sent"].as_f64() < r["bytes_per_step_dense"].as_f64(), "{r}");
    // --resume on a finished run does nothing more and reports the same.
    a.push("--resume");
    let again = faultloop(&a);
    assert_eq!(again["accuracy_after"], r["accuracy_after"]);
    assert_eq!(again["resumed_at_step"], 8);
    // The output is a checkpoint eval can load.
    let e2 = faultloop(&[
        "eval",
        "--data-dir",
        data,
        "--model",
        out_full.to_str().unwrap(),
        "--device",
        "model:4x4",
        "--faults",
        f,
        "--limit",
        "50",
        "--json",
    ]);
    assert_eq!(e2["accuracy"], r["accuracy_after"]);

    // --update-budget: reported in the JSON, and no step sends more.
    assert_eq!(r["update_budget"], Value::Null);
    let out_b = d.join("budget.ckpt");
    let mut b: Vec<&str> = common.to_vec();
    b.extend(["-o", out_b.to_str().unwrap(), "--update-budget", "2%"]);
    let rb = faultloop(&b);
    assert_eq!(rb["update_budget"]["fraction"], 0.02, "{rb}");
    let dense = rb["bytes_per_step_dense"].as_f64().unwrap();
    let budget = rb["update_budget_bytes"].as_u64().unwrap();
    assert_eq!(budget, (0.02 * dense).floor() as u64, "{rb}");
    let max = rb["bytes_per_step_max"].as_u64().unwrap();
    assert!(max > 0 && max <= budget, "{rb}");
    assert!(r["bytes_per_step_max"].as_u64().unwrap() > budget, "the budget must bite: {r}");
    // A budget below one patch frame is refused at startup, with the reason.
    let tiny = d.join("tiny.ckpt");
    let mut t: Vec<&str> = common.to_vec();
    t.extend(["-o", tiny.to_str().unwrap(), "--update-budget", "3"]);
    let out = Command::new(env!("CARGO_BIN_EXE_faultloop")).args(&t).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("update budget 3 B is smaller than one PATCH_WEIGHTS frame"), "{err}");
}
