//! `faultloop resilience` end to end on a tiny synthetic data set and the
//! golden-model device (`model:4x4`): the unsharded map, two shards merged
//! into the same bytes, a rerun that skips finished jobs, and bad input.
use std::process::Command;

use faultloop_tests::{run_json, tiny_pretrained};
use serde_json::Value;

fn faultloop(args: &[&str]) -> Value {
    run_json(env!("CARGO_BIN_EXE_faultloop"), args)
}

#[test]
fn resilience_shards_merge_to_the_unsharded_map() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (data, ck) = tiny_pretrained(env!("CARGO_BIN_EXE_faultloop"), d);
    let (data, ck) = (data.as_str(), ck.as_str());
    let path = |n: &str| d.join(n).to_str().unwrap().to_string();
    let (all, s0, s1, merged, plot) =
        (path("all.json"), path("s0.json"), path("s1.json"), path("merged.json"), path("map.png"));
    let common = [
        "resilience",
        "--data-dir",
        data,
        "--model",
        ck,
        "--device",
        "sim:4x4",
        "--rates",
        "0.125,0.375",
        "--amounts",
        "0,0.5,64s",
        "--chips-per-rate",
        "2",
        "--accuracy",
        "0.5",
        "--train-samples",
        "64",
        "--batch",
        "32",
        "--limit",
        "40",
        "--seed",
        "5",
        "--json",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| faultloop(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let a = run(with(&["-o", &all, "--plot", &plot]));
    assert_eq!((a["jobs"].as_u64(), a["ran"].as_u64()), (Some(4), Some(4)), "{a}");
    // A .png name gets a PNG (signature, IHDR), and no SVG beside it.
    assert!(a["plot"].as_str().unwrap().ends_with("map.png"), "{a}");
    let png = std::fs::read(path("map.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR", "not a PNG");
    assert!(!d.join("map.svg").exists());
    let map: Value = serde_json::from_slice(&std::fs::read(&all).unwrap()).unwrap();
    assert_eq!(map["device"], "model:4x4");
    assert_eq!(map["amounts"], serde_json::json!([0, 32, 64]));
    assert_eq!(map["cells"].as_array().unwrap().len(), 6);
    assert_eq!(map["least"], a["least"]);

    for (k, out) in [("0/2", &s0), ("1/2", &s1)] {
        let r = run(with(&["--shard", k, "-o", out]));
        assert_eq!((r["jobs"].as_u64(), r["ran"].as_u64()), (Some(2), Some(2)), "{r}");
        assert!(r["least"].is_null(), "a shard has no map: {r}");
    }
    // A rerun of a finished shard runs no job.
    let again = run(with(&["--shard", "1/2", "-o", &s1]));
    assert_eq!(again["ran"].as_u64(), Some(0), "{again}");

    let m = faultloop(&["resilience", "merge", &s0, &s1, "-o", &merged, "--json"]);
    assert_eq!(m["least"], a["least"]);
    assert_eq!(std::fs::read(&merged).unwrap(), std::fs::read(&all).unwrap());
    // The shards' work directories hold job files that merge the same way.
    let m2 = path("merged2.json");
    faultloop(&["resilience", "merge", &path("s0.work"), &path("s1.work"), "-o", &m2, "--json"]);
    assert_eq!(std::fs::read(&m2).unwrap(), std::fs::read(&all).unwrap());

    // Bad input names the option and the cause.
    let fail = |args: Vec<String>, want: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_faultloop")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    };
    fail(with(&["--shard", "2/2", "-o", &s0]), "bad --shard `2/2`");
    fail(with(&["--shard", "x", "-o", &s0]), "expected INDEX/COUNT");
    let mut bad_rates = with(&["-o", &all]);
    bad_rates[8] = "0.3,0.1".into();
    fail(bad_rates, "bad --rates list `0.3,0.1`");
    fail(
        vec!["resilience".into(), "merge".into(), s0.clone(), "-o".into(), merged.clone()],
        "2 of 4 jobs missing",
    );
}
