//! `faultloop fleet` and `fleet merge` end to end on a tiny synthetic data
//! set and `model:4x4`: sharded runs merge to the unsharded plan.json, and
//! the chips directory's errors name the input.
use std::path::Path;
use std::process::Command;

use faultloop_tests::{run_json, tiny_pretrained};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_faultloop");

fn faultloop(args: &[&str]) -> Value {
    run_json(BIN, args)
}

fn fails(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(!out.status.success(), "faultloop {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn v(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn random_map(path: &Path, rate: &str, seed: &str) {
    let st = Command::new(BIN)
        .args(["faults", "random", "--rows", "4", "--cols", "4", "--rate", rate, "--seed", seed])
        .arg("-o")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn fleet_plans_shards_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (data, ck) = tiny_pretrained(env!("CARGO_BIN_EXE_faultloop"), d);
    let (data, ck) = (data.as_str(), ck.as_str());
    let chips = d.join("chips");
    std::fs::create_dir(&chips).unwrap();
    for (i, rate) in ["0.0625", "0.125", "0.0625", "0.125"].iter().enumerate() {
        random_map(&chips.join(format!("c{i}.json")), rate, &(10 + i).to_string());
    }
    // Up to 4/16 faulty: 64 sample-steps; up to 8/16: 128.
    let res = json!({
        "model": ck, "device": "model:4x4", "mitigation": "fat", "clean_accuracy": 1.0,
        "accuracy": 0.5, "percentile": 10.0, "epoch_samples": 300,
        "rates": [0.25, 0.5], "amounts": [64, 128],
        "cells": [
            {"rate": 0.25, "amount": 64, "samples": [1.0]},
            {"rate": 0.25, "amount": 128, "samples": [1.0]},
            {"rate": 0.5, "amount": 64, "samples": [0.001]},
            {"rate": 0.5, "amount": 128, "samples": [1.0]}
        ],
        "least": []
    });
    let rpath = d.join("resilience.json");
    std::fs::write(&rpath, res.to_string()).unwrap();
    let (a, b) = (d.join("a"), d.join("b"));
    let args = |out: &Path| -> Vec<String> {
        [
            "fleet",
            "--data-dir",
            data,
            "--model",
            ck,
            "--resilience",
            rpath.to_str().unwrap(),
            "--chips",
            chips.to_str().unwrap(),
            "--accuracy",
            "0.01",
            "--limit",
            "60",
            "--batch",
            "32",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let whole = faultloop(&v(&args(&a)));
    let plan = &whole["plan"];
    assert_eq!(plan["chips"].as_array().unwrap().len(), 4, "{whole}");
    assert!(plan["grouped_cost"].as_u64() < plan["per_chip_cost"].as_u64(), "{plan}");
    assert_eq!(plan["chips_meeting_floor"], 4);
    for f in ["plan.json", "grouping.json", "cost.svg", "accuracy.svg"] {
        assert!(a.join(f).is_file(), "{f}");
    }
    for g in plan["groups"].as_array().unwrap() {
        assert!(a.join(g["checkpoint"].as_str().unwrap()).join("meta.json").is_file(), "{g}");
    }
    for s in ["0/2", "1/2"] {
        let mut x = args(&b);
        x.extend(["--shard".to_string(), s.to_string()]);
        let r = faultloop(&v(&x));
        assert!(r.get("plan").is_none(), "a shard does not merge: {r}");
    }
    let merged = faultloop(&["fleet", "merge", "-o", b.to_str().unwrap(), "--json"]);
    assert_eq!(&merged, plan);
    assert_eq!(
        std::fs::read(a.join("plan.json")).unwrap(),
        std::fs::read(b.join("plan.json")).unwrap()
    );

    // A malformed map names its file; an empty directory says so; a map
    // for another array size names the file and both sizes.
    let bad = d.join("bad");
    std::fs::create_dir(&bad).unwrap();
    let mut x = args(&d.join("o"));
    let at = x.iter().position(|s| s == "--chips").unwrap() + 1;
    x[at] = bad.to_str().unwrap().to_string();
    let e = fails(&v(&x));
    assert!(e.contains("no fault maps") && e.contains("bad"), "{e}");
    std::fs::write(bad.join("broken.json"), "{").unwrap();
    let e = fails(&v(&x));
    assert!(e.contains("broken.json"), "{e}");
    std::fs::remove_file(bad.join("broken.json")).unwrap();
    let st = Command::new(BIN)
        .args(["faults", "random", "--rows", "8", "--cols", "8", "--rate", "0.1", "-o"])
        .arg(bad.join("big.json"))
        .status()
        .unwrap();
    assert!(st.success());
    let e = fails(&v(&x));
    assert!(e.contains("big.json") && e.contains("8x8") && e.contains("4x4"), "{e}");
    // merge before any shard ran names what is missing.
    let e = fails(&["fleet", "merge", "-o", d.join("none").to_str().unwrap()]);
    assert!(e.contains("grouping.json"), "{e}");
}
