//! `faultloop verify` and `--trace` end to end: a clean run passes and its
//! shards add up to it; a deliberately wrong reference (the golden model
//! given a hidden stuck psum bit, a mutated model configuration) makes it
//! fail, shrink, name the field and write a replay file that reproduces;
//! waveforms hold the top's ports and the PEs' partial sums.
use std::path::Path;
use std::process::{Command, Output};

use faultloop_tests::run_json;

const BIN: &str = env!("CARGO_BIN_EXE_faultloop");

fn size() -> String {
    let (r, c) = faultloop_verilated::sim_sizes()[0];
    format!("{r}x{c}")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// (case, seed, digest) of every case a --json report ran.
fn cases(v: &serde_json::Value) -> Vec<(u64, u64, String)> {
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["status"], "passed", "{c}");
            (
                c["case"].as_u64().unwrap(),
                c["case_seed"].as_u64().unwrap(),
                c["reply_digest"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn a_clean_run_passes_and_its_shards_add_up_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let dev = format!("sim:{}", size());
    let junit = dir.path().join("report.xml");
    let j = junit.to_str().unwrap();
    let all = run_json(
        BIN,
        &["verify", "--device", &dev, "--cases", "30", "--seed", "11", "--junit", j, "--json"],
    );
    assert_eq!(all["passed"], true);
    assert_eq!(all["against"], format!("model:{}", size()));
    let whole = cases(&all);
    assert_eq!(whole.len(), 30);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 30, "{xml}");
    assert!(xml.contains("failures=\"0\"") && !xml.contains("<failure"), "{xml}");

    let mut union = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let v = run_json(
            BIN,
            &[
                "verify", "--device", &dev, "--cases", "30", "--seed", "11", "--shard", &shard,
                "--json",
            ],
        );
        let part = cases(&v);
        assert!(part.iter().all(|c| c.0 % 3 == i), "{shard}: {part:?}");
        union.extend(part);
    }
    union.sort();
    assert_eq!(union, whole, "the shards' cases differ from the unsharded run's");

    let other =
        run_json(BIN, &["verify", "--device", &dev, "--cases", "30", "--seed", "12", "--json"]);
    assert_ne!(cases(&other), whole, "another seed must give other programs");
}

#[test]
fn a_wrong_reference_fails_shrinks_names_the_field_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = faultloop_verilated::sim_sizes()[0];
    // The golden model made wrong in one place: bit 4 of PE (1, 1)'s
    // partial sum stuck at 1 (a configuration only this test uses).
    let map = dir.path().join("mutation.json");
    std::fs::write(
        &map,
        format!(
            r#"{{"array": {{"rows": {r}, "cols": {c}}},
                "faults": [{{"row": 1, "col": 1, "site": "psum", "stuck_at_1": 16}}]}}"#
        ),
    )
    .unwrap();
    let against = format!("model:{r}x{c}+defects={}", map.display());
    let cases_dir = dir.path().join("failures");
    let traces = dir.path().join("waves");
    let junit = dir.path().join("report.xml");
    let o = run(&[
        "verify",
        "--device",
        &format!("sim:{r}x{c}"),
        "--against",
        &against,
        "--cases",
        "20",
        "--seed",
        "5",
        "--case-dir",
        cases_dir.to_str().unwrap(),
        "--trace-dir",
        traces.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--json",
    ]);
    assert!(!o.status.success(), "verify passed against a mutated model:\n{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["failure"];
    let field = f["field"].as_str().unwrap();
    assert!(field.starts_with("MATMUL reply row "), "{f}");
    // Bit 4 stuck at 1 on the psum chain only adds 16 per pass through the PE.
    let value = |k: &str| f[k].as_str().unwrap().parse::<i64>().unwrap();
    let (dv, av) = (value("device_value"), value("against_value"));
    assert!(av > dv && (av - dv) % 16 == 0, "{f}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(&format!("{field}: sim {dv}, model {av}")), "{stderr}");
    let shrunk = f["shrunk_requests"].as_array().unwrap();
    assert!(shrunk.len() < f["original_requests"].as_u64().unwrap() as usize, "{f}");
    assert!(shrunk.last().unwrap().as_str().unwrap().starts_with("MATMUL"), "{f}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"1\"") && xml.contains(&format!("{field}: sim")), "{xml}");

    let case = f["case_file"].as_str().unwrap();
    let wave = f["waveform"].as_str().unwrap();
    assert!(Path::new(wave).starts_with(&traces) && std::fs::metadata(wave).unwrap().len() > 0);

    // The case file reproduces the mismatch on fresh devices ...
    let o = run(&["verify", "--replay", case, "--json"]);
    assert!(!o.status.success(), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["field"], field, "{rep}");
    assert_eq!(rep["requests"].as_u64().unwrap() as usize, shrunk.len());
    // ... and against the real golden model it passes.
    let clean = run_json(
        BIN,
        &["verify", "--replay", case, "--against", &format!("model:{r}x{c}"), "--json"],
    );
    assert_eq!(clean["passed"], true, "{clean}");
}

/// fst2vcd (Debian's gtkwave) dumps a waveform as VCD text, or `None`
/// when it is not installed.
fn fst2vcd(path: &Path) -> Option<String> {
    let o = Command::new("fst2vcd").arg(path).output().ok()?;
    assert!(
        o.status.success(),
        "fst2vcd {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn trace_writes_the_ports_and_the_partial_sums_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let dev = format!("sim:{}", size());
    let full = dir.path().join("full.fst");
    let args = ["matmul", "--device", &dev, "--m", "16", "--k", "16", "--n", "16", "--seed", "2"];
    let o = Command::new(BIN).arg("--trace").arg(&full).args(args).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("waveform {}", full.display())));
    // FAULTLOOP_TRACE and a window of 200 cycles: a smaller file.
    let part = dir.path().join("part.fst");
    let o = Command::new(BIN)
        .env("FAULTLOOP_TRACE", &part)
        .args(["--trace-window", "100:300"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (fl, pl) =
        (std::fs::metadata(&full).unwrap().len(), std::fs::metadata(&part).unwrap().len());
    assert!(fl > 0 && pl > 0 && pl < fl, "full {fl} bytes, window {pl} bytes");
    let o = run(&["--trace-window", "5:1", "info", "--device", &dev, "--trace", "x.fst"]);
    assert!(!o.status.success() && text(&o).contains("'5:1'"), "{}", text(&o));

    let Some(vcd) = fst2vcd(&full) else {
        eprintln!("ignored: fst2vcd not found (Debian package gtkwave; scripts/setup installs it)");
        return;
    };
    for port in ["clk_i", "rst_ni", "in_valid_i", "in_data_i", "out_valid_o", "out_data_o"] {
        assert!(vcd.contains(&format!(" {port} ")), "port {port} missing from the waveform");
    }
    // dla_array is instance u_array; each PE (u_pe) has its psum register.
    let array = vcd.find("$scope module u_array").expect("no u_array scope in the waveform");
    let pe = array + vcd[array..].find("$scope module u_pe").expect("no PE scope under u_array");
    assert!(vcd[pe..].contains(" psum_q "), "no PE partial sums (psum_q) in the waveform");
    let times = |v: &str| -> Vec<u64> {
        v.lines().filter_map(|l| l.strip_prefix('#')).filter_map(|t| t.parse().ok()).collect()
    };
    let t = times(&fst2vcd(&part).unwrap());
    assert!(
        t.iter().all(|&x| (1000..3000).contains(&x)),
        "window 100:300 holds times outside 1000..3000"
    );
    assert_eq!((t.first(), t.last()), (Some(&1000), Some(&2995)));
}

/// A bitstream's exact core configuration by name: `sim:ulx3s` answers
/// INFO with the ULX3S's memory sizes and verifies against `model:ulx3s`.
#[test]
fn the_ulx3s_configuration_verifies_by_name() {
    let info = run_json(BIN, &["info", "--device", "sim:ulx3s", "--json"]);
    assert_eq!(info["device"], "sim:ulx3s", "{info}");
    assert_eq!((info["rows"].as_u64(), info["wmem_bytes"].as_u64()), (Some(8), Some(262144)));
    assert_eq!(info["buf_bytes"].as_u64(), Some(16384), "{info}");
    let v = run_json(
        BIN,
        &["verify", "--device", "sim:ulx3s", "--against", "model:ulx3s", "--cases", "4", "--json"],
    );
    assert_eq!(v["passed"], true, "{v}");
    // The plain 8x8 sim top is another configuration.
    let plain = run_json(BIN, &["info", "--device", "model:8x8", "--json"]);
    assert_ne!(plain["buf_bytes"], info["buf_bytes"], "{plain}");
}
