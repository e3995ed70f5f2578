//! `faultloop faults plot`: a fault map drawn as SVG or PNG (by the output
//! name), every faulty and every bypassed PE marked, bad input named.
use std::process::Command;

fn faultloop(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faultloop")).args(args).output().expect("faultloop runs")
}

fn ok(args: &[&str]) {
    let o = faultloop(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn faults_plot_marks_every_faulty_and_bypassed_pe() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    ok(&[
        "faults",
        "random",
        "--rows",
        "6",
        "--cols",
        "8",
        "--rate",
        "0.25",
        "--seed",
        "3",
        "--bits",
        "1-3",
        "-o",
        &p("map.json"),
    ]);
    let map: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p("map.json")).unwrap()).unwrap();
    let faulty: std::collections::BTreeSet<(u64, u64)> = map["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["row"].as_u64().unwrap(), f["col"].as_u64().unwrap()))
        .collect();
    assert_eq!(faulty.len(), 12);
    // Bypass one faulty PE and one healthy one, as `eval --json` lists them.
    let healthy = (0..6u64)
        .flat_map(|r| (0..8u64).map(move |c| (r, c)))
        .find(|pe| !faulty.contains(pe))
        .unwrap();
    let first = *faulty.iter().next().unwrap();
    let bypass = serde_json::json!({ "bypass": [[first.0, first.1], [healthy.0, healthy.1]] });
    std::fs::write(p("eval.json"), bypass.to_string()).unwrap();

    ok(&["faults", "plot", &p("map.json"), "-o", &p("map.svg"), "--bypass", &p("eval.json")]);
    let svg = std::fs::read_to_string(p("map.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // One site label per faulty PE (sites P/A/W, then its stuck bits).
    let labels = svg
        .split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>').map(|(_, r)| r.split('<').next().unwrap_or("").trim()))
        .filter(|t| {
            let sites: String = t.chars().take_while(|c| "PAW".contains(*c)).collect();
            !sites.is_empty()
                && t[sites.len()..].trim_start().starts_with(|c: char| c.is_ascii_digit())
        })
        .count();
    assert_eq!(labels, faulty.len(), "a label per faulty PE");
    // Two strokes (2 px; the axes are 1 px) cross out each bypassed PE.
    assert_eq!(
        svg.split("<polyline").skip(1).filter(|e| e.contains(r#"stroke-width="2""#)).count(),
        2 * 2
    );
    assert!(svg.contains("12 faulty PEs") && svg.contains("2 bypassed"));

    ok(&["faults", "plot", &p("map.json"), "-o", &p("map.png")]);
    let png = std::fs::read(p("map.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR", "a PNG");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    assert!(be(16) > 8 * 40 && be(20) > 6 * 20, "{}x{}", be(16), be(20));
    assert!(!tmp.path().join("map.svg.png").exists());

    // Bad input names the file and the cause.
    let o = faultloop(&["faults", "plot", &p("map.json"), "-o", &p("map.gif")]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("map.gif") && e.contains(".png"), "{e}");
    std::fs::write(p("far.json"), "[[6, 0]]").unwrap();
    let o = faultloop(&[
        "faults",
        "plot",
        &p("map.json"),
        "-o",
        &p("x.svg"),
        "--bypass",
        &p("far.json"),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("far.json") && e.contains("outside"), "{e}");
}

/// `faultloop plot tmr` over `eval --json`-shaped files: a PNG and an SVG
/// naming every fault map, and an error naming a file that is no eval output.
#[test]
fn plot_tmr_draws_every_map_against_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let mut files = Vec::new();
    for (i, (faults, budget, acc)) in [
        (None, None, 0.89),
        (Some("f1.json"), None, 0.67),
        (Some("f1.json"), Some(50.0), 0.78),
        (Some("f2.json"), Some(200.0), 0.69),
        (Some("f2.json"), None, 0.52),
    ]
    .into_iter()
    .enumerate()
    {
        let tmr = budget.map(|b: f64| serde_json::json!({ "budget_pct": b }));
        let v = serde_json::json!({ "accuracy": acc, "faults": faults, "tmr": tmr });
        let f = p(&format!("e{i}.json"));
        std::fs::write(&f, v.to_string()).unwrap();
        files.push(f);
    }
    let args = |out: &str| -> Vec<String> {
        let mut a = vec!["plot".to_string(), "tmr".into(), "-o".into(), p(out)];
        a.extend(files.iter().cloned());
        a
    };
    let run = |a: Vec<String>| faultloop(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(args("tmr.svg")).status.success());
    let svg = std::fs::read_to_string(p("tmr.svg")).unwrap();
    for name in ["fault-free", "f1.json", "f2.json"] {
        assert!(svg.contains(name), "{name}");
    }
    assert!(run(args("tmr.png")).status.success());
    let png = std::fs::read(p("tmr.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR", "a PNG");
    std::fs::write(p("bad.json"), "{}").unwrap();
    let o = faultloop(&["plot", "tmr", "-o", &p("x.svg"), &p("bad.json")]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("bad.json") && e.contains("accuracy"), "{e}");
}

/// A reader that stops early (`| head`) closes the pipe mid-output: the
/// command stops quietly with the SIGPIPE status, no panic message.
#[test]
fn a_reader_closing_stdout_early_gets_no_panic() {
    use std::io::Read;
    use std::process::Stdio;
    // A 64x64 map with every PE faulty: far more than a pipe buffer.
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultloop"))
        .args(["faults", "random", "--rows", "64", "--cols", "64", "--rate", "1", "--bits", "1-3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("faultloop runs");
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(first[0], b'{', "the map's JSON starts the output");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "a panic on a closed stdout:\n{stderr}");
    assert_eq!(out.status.code(), Some(141), "status {:?}, stderr:\n{stderr}", out.status);
}
