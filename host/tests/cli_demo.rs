//! `faultloop demo`'s two scenarios end to end on a tiny synthetic data set
//! and the golden-model device (`model:4x4`): a chip with hidden stuck-at
//! defects characterised over the wire, every mitigation measured, the
//! cheapest that reaches the floor deployed; and a chip with soft errors,
//! figures over SEU seeds the training never saw.
use std::collections::BTreeSet;

use faultloop_tests::{run_json, write_synthetic_split};
use serde_json::Value;

fn faultloop(args: &[&str]) -> Value {
    run_json(env!("CARGO_BIN_EXE_faultloop"), args)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn two_scenarios_choose_deploy_and_spread_over_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_synthetic_split(d, "train", 400, 1);
    write_synthetic_split(d, "t10k", 100, 2);
    let data = d.to_str().unwrap();
    let out = d.join("demo");
    let o = out.to_str().unwrap();
    // The demo's cached model: a small pretraining here, reused by the demo.
    let ck = out.join("mlp.ckpt");
    faultloop(&[
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
        ck.to_str().unwrap(),
        "--json",
    ]);
    let r = faultloop(&[
        "demo",
        "--device",
        "model:4x4",
        "--data-dir",
        data,
        "--out-dir",
        o,
        "--epochs",
        "1",
        "--train-samples",
        "200",
        "--test-samples",
        "100",
        "--calib-samples",
        "100",
        "--rate",
        "0.25",
        "--seu-rate",
        "2e-3",
        "--seu-seeds",
        "3",
        "--json",
    ]);
    assert_eq!(r["pretrained_now"], false, "the cached model is reused");

    // 1. Permanent faults.
    let p = &r["permanent"];
    let ms = p["mitigations"].as_object().unwrap();
    let names: BTreeSet<&str> = ms.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> =
        ["none", "bypass", "tmr50", "tmr200", "fap", "fat", "auto"].into_iter().collect();
    assert_eq!(names, want, "{p}");
    assert_eq!(f(&ms["none"]), f(&p["faulty_accuracy"]));
    assert!(f(&p["faulty_accuracy"]) < f(&p["clean_accuracy"]), "the hidden defects hurt: {p}");
    // Characterisation found a map that reproduces the chip, and it is not
    // the hidden one's file.
    let found: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("chip.json")).unwrap()).unwrap();
    assert!(!found["faults"].as_array().unwrap().is_empty());
    assert_eq!(p["faulty_pes"], p["report"]["faulty_pes"]);
    // The choice: the cheapest at the floor (cost: extra MACs, then
    // retraining samples), re-measured from the deployed checkpoint.
    let floor = f(&p["floor"]);
    assert!((floor - (f(&p["clean_accuracy"]) - 0.01)).abs() < 1e-12);
    let rows = p["report"]["mitigations"].as_array().unwrap();
    let cost = |m: &Value| (f(&m["extra_macs_pct"]), m["retrain_samples"].as_u64().unwrap());
    let chosen = rows.iter().find(|m| m["name"] == p["chosen"]).unwrap();
    assert_eq!(f(&p["chosen_accuracy"]), f(&chosen["accuracy"]), "deployed = measured");
    if p["chosen_reaches_floor"] == true {
        assert!(f(&chosen["accuracy"]) >= floor);
        for m in rows.iter().filter(|m| f(&m["accuracy"]) >= floor) {
            assert!(cost(m) >= cost(chosen), "{} is cheaper than {}", m["name"], chosen["name"]);
        }
    } else {
        assert!(rows.iter().all(|m| f(&m["accuracy"]) < floor));
    }
    for m in rows.iter().filter(|m| ["fap", "fat", "auto"].contains(&m["name"].as_str().unwrap())) {
        assert_eq!(m["retrain_samples"], 200, "equal retraining: {m}");
    }
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("deployed.ckpt").join("meta.json")).unwrap(),
    )
    .unwrap();
    let recorded = meta["mitigation"]["bypass"].as_array().map_or(0, Vec::len);
    assert_eq!(recorded, chosen["bypassed"].as_array().unwrap().len(), "{meta}");

    // 2. Soft errors.
    let s = &r["soft_errors"];
    let seeds: Vec<u64> =
        s["eval_seeds"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seeds.len(), 3);
    assert!(!seeds.contains(&s["report"]["train_seed"].as_u64().unwrap()));
    assert!(!seeds.contains(&s["report"]["calib_seed"].as_u64().unwrap()));
    for key in ["unprotected", "retrained"] {
        let a = &s[key];
        assert_eq!(a["values"].as_array().unwrap().len(), 3, "{key}");
        assert!(f(&a["min"]) <= f(&a["mean"]) && f(&a["mean"]) <= f(&a["max"]), "{key}: {a}");
    }
    assert!(f(&s["unprotected"]["mean"]) < f(&s["clean_accuracy"]), "SEU hurts: {s}");
    for key in ["tmr", "retrained_tmr"] {
        let t = s[key].as_object().unwrap();
        let budgets: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(budgets, ["0", "100", "200", "50"], "{key}");
        for (b, row) in t {
            assert!(f(&row["extra_macs_pct"]) <= b.parse::<f64>().unwrap() + 1e-9, "{key} {b}");
        }
        // Budget 0 protects nothing: the unprotected figure.
        assert!(t["0"]["protected"].as_array().unwrap().is_empty());
    }
    assert_eq!(s["tmr"]["0"]["accuracy"], s["unprotected"]);
    assert_eq!(s["retrained_tmr"]["0"]["accuracy"], s["retrained"]);
    // Different seeds draw different flips.
    let v = s["unprotected"]["values"].as_array().unwrap();
    assert!(v.iter().any(|x| x != &v[0]) || f(&v[0]) == 1.0, "seeds do not differ: {v:?}");
    for plot in ["permanent.svg", "soft-errors.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("fault-free"), "{plot}");
    }
    assert!(out.join("demo.json").is_file());
}
