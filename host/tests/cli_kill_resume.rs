//! Kill and resume as a process: `faultloop retrain`, `resilience`, `fleet`
//! and `characterize` are SIGKILLed at seeded random points and run again;
//! the result equals an uninterrupted run's, no finished job is redone and
//! none is lost. A truncated or corrupted checkpoint is refused with an
//! error naming the file.
//!
//! The kill points are drawn (seeded) as fractions of the uninterrupted
//! run's wall time; what is asserted holds wherever a kill lands. Retraining
//! uses stuck-at faults only: with SEU the flips follow the device's
//! operation counter, which a fresh device restarts, so an SEU run resumed is
//! not bit-identical to an uninterrupted one (docs/training.md).
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultloop_proto::Rng;
use faultloop_tests::{run_json, tiny_pretrained};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_faultloop");

fn faultloop(args: &[&str]) -> Value {
    run_json(BIN, args)
}

/// Start `faultloop args`, SIGKILL it after `delay`; whether it was still
/// running (false: it had finished, and nothing was killed).
fn kill_after(args: &[String], delay: Duration) -> bool {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    match child.try_wait().unwrap() {
        Some(_) => false,
        None => {
            child.kill().unwrap(); // SIGKILL on Unix
            let _ = child.wait();
            true
        }
    }
}

/// Kill `args` at a random point within `full` (drawing again, earlier, if
/// the run finished first). Returns the delay that killed it.
fn kill_somewhere(rng: &mut Rng, args: &[String], full: Duration) -> Option<Duration> {
    let mut hi = 1.0;
    for _ in 0..4 {
        let d = full.mul_f64(hi * (0.05 + 0.9 * rng.f64()));
        if kill_after(args, d) {
            return Some(d);
        }
        hi /= 2.0;
    }
    None
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn timed(args: &[String]) -> (Value, Duration) {
    let t = Instant::now();
    let v = faultloop(&strs(args));
    (v, t.elapsed())
}

/// Every file under `dir` whose name ends in `.json` (what the merge
/// commands read; temporaries end in `.tmp`), with its inode: a job
/// redone would be rewritten (a new file renamed in place: a new inode).
fn job_files(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            out.insert(p.clone(), std::fs::metadata(&p).unwrap().ino());
        }
    }
    out
}

fn random_faults(d: &Path, name: &str, rate: &str, seed: &str) -> String {
    let p = d.join(name);
    let st = Command::new(BIN)
        .args(["faults", "random", "--rows", "4", "--cols", "4", "--rate", rate, "--seed", seed])
        .arg("-o")
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    p.to_str().unwrap().to_string()
}

#[test]
fn retrain_killed_at_random_points_resumes_to_the_uninterrupted_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (data, ck) = tiny_pretrained(BIN, d);
    let f = random_faults(d, "f.json", "0.25", "2");
    let args = |out: &Path| -> Vec<String> {
        [
            "retrain",
            "--data-dir",
            &data,
            "--model",
            &ck,
            "--device",
            "model:4x4",
            "--faults",
            &f,
            "--epochs",
            "2",
            "--train-samples",
            "96",
            "--batch",
            "16",
            "--limit",
            "30",
            "--checkpoint-every",
            "1",
            "--resume",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let full = d.join("full.ckpt");
    let (want, t_full) = timed(&args(&full));
    assert_eq!(want["steps"], 12, "{want}");
    let weights = |dir: &Path, file: &str| std::fs::read(dir.join(file)).unwrap();

    let mut rng = Rng::new(14);
    let mut resumed_at = Vec::new();
    for trial in 0..10 {
        let out = d.join(format!("t{trial}.ckpt"));
        let a = args(&out);
        // One or two kills, then a run to the end.
        for _ in 0..1 + rng.below(2) {
            kill_somewhere(&mut rng, &a, t_full).expect("a kill that lands before the end");
        }
        let got = faultloop(&strs(&a));
        resumed_at.push(got["resumed_at_step"].clone());
        assert_eq!(got["steps"], want["steps"], "trial {trial}: {got}");
        assert_eq!(got["accuracy_after"], want["accuracy_after"], "trial {trial}");
        // The history, but for wall-clock seconds.
        let learning = |v: &Value| -> Vec<Value> {
            let keys = ["epoch", "lr", "train_loss", "train_accuracy", "test_accuracy", "steps"];
            let h = v["history"].as_array().unwrap();
            h.iter().map(|e| keys.iter().map(|k| e[*k].clone()).collect()).collect()
        };
        assert_eq!(learning(&got), learning(&want), "trial {trial}");
        for file in ["weights.safetensors", "adam.safetensors"] {
            assert!(
                weights(&out, file) == weights(&full, file),
                "trial {trial}: {file} differs from the uninterrupted run's (resumed at {})",
                got["resumed_at_step"]
            );
        }
        // No temporary or swap directory is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!(".t{trial}.ckpt")))
            .collect();
        assert!(leftovers.is_empty(), "trial {trial}: {leftovers:?}");
    }
    eprintln!("retrain kill trials: 10 survived, resumed at steps {resumed_at:?}");
}

#[test]
fn a_truncated_or_corrupted_checkpoint_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (data, ck) = tiny_pretrained(BIN, d);
    let out = d.join("r.ckpt");
    let o = out.to_str().unwrap().to_string();
    let retrain: Vec<String> = [
        "retrain",
        "--data-dir",
        &data,
        "--model",
        &ck,
        "--device",
        "model:4x4",
        "--epochs",
        "1",
        "--train-samples",
        "32",
        "--batch",
        "16",
        "--limit",
        "20",
        "--resume",
        "-o",
        &o,
        "--json",
    ]
    .map(String::from)
    .to_vec();
    faultloop(&strs(&retrain));
    let fails = |args: &[String]| -> String {
        let r = Command::new(BIN).args(args).output().unwrap();
        assert!(!r.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&r.stderr).into_owned()
    };
    let eval: Vec<String> =
        ["eval", "--data-dir", &data, "--model", &o, "--device", "model:4x4", "--limit", "5"]
            .map(String::from)
            .to_vec();
    let pristine: Vec<(String, Vec<u8>)> =
        ["weights.safetensors", "adam.safetensors", "meta.json", "retrain_state.json"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(out.join(f)).unwrap()))
            .collect();
    let restore = || {
        for (f, b) in &pristine {
            std::fs::write(out.join(f), b).unwrap();
        }
    };
    for (file, damage) in [
        ("weights.safetensors", "truncate"),
        ("weights.safetensors", "flip"),
        ("adam.safetensors", "flip"),
        ("adam.safetensors", "truncate"),
        ("meta.json", "truncate"),
        ("retrain_state.json", "truncate"),
    ] {
        restore();
        let p = out.join(file);
        let mut b = std::fs::read(&p).unwrap();
        if damage == "truncate" {
            b.truncate(b.len() / 2);
        } else {
            let at = b.len() - 7; // in the tensor data, past the header
            b[at] ^= 0x10;
        }
        std::fs::write(&p, b).unwrap();
        let e = fails(&retrain);
        assert!(e.contains(&p.display().to_string()), "{file} {damage}: {e}");
        if file == "weights.safetensors" || file == "meta.json" {
            let e = fails(&eval);
            assert!(e.contains(&p.display().to_string()), "eval, {file} {damage}: {e}");
        }
    }
    restore();
    faultloop(&strs(&retrain));
}

/// Job-granular commands: kill at random points, rerun until done; a job
/// file present before a run is never rewritten by it (no finished job
/// redone), and the final output equals the uninterrupted run's bytes (no
/// job lost). Returns the kills that landed.
fn kill_jobs_until_done(
    rng: &mut Rng,
    args: &[String],
    jobs_dir: &Path,
    t_full: Duration,
    kills: usize,
) -> (usize, Value) {
    let mut landed = 0;
    for _ in 0..kills {
        let before = job_files(jobs_dir);
        if kill_somewhere(rng, args, t_full).is_some() {
            landed += 1;
        }
        let after = job_files(jobs_dir);
        for (p, ino) in &before {
            assert_eq!(after.get(p), Some(ino), "{} was redone or lost", p.display());
        }
        for p in after.keys() {
            serde_json::from_slice::<Value>(&std::fs::read(p).unwrap())
                .unwrap_or_else(|e| panic!("{} is not whole JSON after a kill: {e}", p.display()));
        }
    }
    let before = job_files(jobs_dir);
    let last = faultloop(&strs(args));
    let after = job_files(jobs_dir);
    for (p, ino) in &before {
        assert_eq!(after.get(p), Some(ino), "{} was redone by the last run", p.display());
    }
    (landed, last)
}

#[test]
fn resilience_and_fleet_killed_at_random_points_lose_no_job_and_redo_none() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (data, ck) = tiny_pretrained(BIN, d);
    let path = |n: &str| d.join(n).to_str().unwrap().to_string();
    let res_args = |out: &str| -> Vec<String> {
        [
            "resilience",
            "--data-dir",
            &data,
            "--model",
            &ck,
            "--device",
            "model:4x4",
            "--rates",
            "0.125,0.375",
            "--amounts",
            "0,0.5,64s",
            "--chips-per-rate",
            "3",
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
            "-o",
            out,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let (whole, t_full) = timed(&res_args(&path("all.json")));
    assert_eq!(whole["ran"], 6, "{whole}");
    let mut rng = Rng::new(41);
    let out = path("k.json");
    let a = res_args(&out);
    let (landed, last) = kill_jobs_until_done(&mut rng, &a, &d.join("k.work"), t_full, 5);
    assert!(landed >= 3, "only {landed} of 5 kills landed");
    let done_before = 6 - last["ran"].as_u64().unwrap();
    assert_eq!(last["jobs"], 6, "{last}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(path("all.json")).unwrap());
    eprintln!("resilience: {landed} kills, {done_before} jobs finished before the last run");

    // Fleet: the same four chips grouped; shards killed, rerun, merged.
    let chips = d.join("chips");
    std::fs::create_dir(&chips).unwrap();
    for (i, rate) in ["0.0625", "0.125", "0.1875", "0.25"].iter().enumerate() {
        random_faults(&chips, &format!("c{i}.json"), rate, &(10 + i).to_string());
    }
    let fleet_args = |out: &str| -> Vec<String> {
        [
            "fleet",
            "--data-dir",
            &data,
            "--model",
            &ck,
            "--resilience",
            &path("all.json"),
            "--chips",
            chips.to_str().unwrap(),
            "--accuracy",
            "0.01",
            "--limit",
            "40",
            "--batch",
            "32",
            "-o",
            out,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let (fw, t_fleet) = timed(&fleet_args(&path("fa")));
    let groups = fw["plan"]["groups"].as_array().unwrap().len();
    let mut flanded = 0;
    for s in ["0/2", "1/2"] {
        let mut a = fleet_args(&path("fb"));
        a.extend(["--shard".to_string(), s.to_string()]);
        let (l, last) =
            kill_jobs_until_done(&mut rng, &a, &d.join("fb").join("jobs"), t_fleet / 2, 2);
        flanded += l;
        assert!(last.get("plan").is_none(), "{last}");
    }
    let merged = faultloop(&["fleet", "merge", "-o", &path("fb"), "--json"]);
    assert_eq!(merged, fw["plan"]);
    assert_eq!(
        std::fs::read(d.join("fa/plan.json")).unwrap(),
        std::fs::read(d.join("fb/plan.json")).unwrap()
    );
    eprintln!("fleet: {groups} groups, {flanded} kills landed on shards");
}

#[test]
fn characterize_killed_at_random_points_leaves_no_partial_map() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let hidden = random_faults(d, "hidden.json", "0.25", "8");
    let dev = format!("model:4x4+defects={hidden}");
    let args = |out: &Path| -> Vec<String> {
        ["characterize", "--device", &dev, "--verify", "4", "--json", "-o"]
            .map(String::from)
            .into_iter()
            .chain([out.to_str().unwrap().to_string()])
            .collect()
    };
    let full = d.join("full.json");
    let (_, t_full) = timed(&args(&full));
    let out = d.join("k.json");
    // A previous map in place: a kill leaves it or the new one, whole.
    std::fs::write(&out, std::fs::read(&hidden).unwrap()).unwrap();
    let mut rng = Rng::new(7);
    for _ in 0..5 {
        kill_somewhere(&mut rng, &args(&out), t_full);
        let text = std::fs::read(&out).unwrap();
        let ok = text == std::fs::read(&full).unwrap() || text == std::fs::read(&hidden).unwrap();
        assert!(ok, "a kill left a partial map: {}", String::from_utf8_lossy(&text));
    }
    faultloop(&strs(&args(&out)));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&full).unwrap());
}
