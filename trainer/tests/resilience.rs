//! Resilience maps on the golden-model 4×4 device with a tiny synthetic
//! data set: the least-amount rule on a real run, shards + merge equal to
//! the unsharded run byte for byte, resuming at job granularity, and the
//! errors of bad `--shard`, `--rates` and `--amounts`.
mod util;

use std::path::Path;

use trainer::checkpoint;
use trainer::device::DeviceMatmul;
use trainer::fleetjob::{self, Amount, ResilienceSpec, RunData, Shard};
use trainer::mitigate::Mitigation;
use trainer::resilience::percentile;
use trainer::retrain::RetrainConfig;

struct Setup {
    f: util::Fixture,
    dir: tempfile::TempDir,
    spec: ResilienceSpec,
}

/// A pretrained MLP checkpoint; 2 rates × 2 chips × 3 amounts (0, half an
/// epoch, 1.5 epochs of 128 samples).
fn setup() -> Setup {
    let f = util::data(400, 100);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("m.ckpt");
    {
        let _g = util::lock();
        let (vs, model) = util::pretrained(&f, 5);
        checkpoint::save(&ckpt, &vs, &model, serde_json::json!({})).unwrap();
    }
    let retrain = RetrainConfig {
        batch_size: 32,
        lr: 1e-2,
        train_samples: 128,
        eval_batch: 64,
        seed: 3,
        ..Default::default()
    };
    let epoch_samples = retrain.samples_per_epoch(f.train.len()) as u64;
    let amounts = fleetjob::parse_amounts("0,0.5,1.5")
        .unwrap()
        .into_iter()
        .map(|a| a.samples(epoch_samples))
        .collect();
    let spec = ResilienceSpec {
        model: ckpt.display().to_string(),
        device: fleetjob::twin_device("sim:4x4").unwrap(),
        mitigation: Mitigation::Fat,
        rates: fleetjob::parse_rates("0.125,0.375").unwrap(),
        amounts,
        chips_per_rate: 2,
        accuracy: 0.0, // set per test from the clean accuracy
        percentile: 10.0,
        epoch_samples,
        seed: 7,
        test_samples: f.test.len(),
        retrain,
    };
    Setup { f, dir, spec }
}

fn run(s: &Setup, shard: Option<Shard>, work: &Path) -> fleetjob::RunOutcome {
    let data = RunData { train: &s.f.train, test: &s.f.test };
    fleetjob::run(&s.spec, &data, shard, work, &mut |_| {}).unwrap()
}

fn shard(s: &str) -> Shard {
    s.parse().unwrap()
}

#[test]
fn shards_merged_equal_the_unsharded_map_and_rerun_skips_finished_jobs() {
    let mut s = setup();
    // Loading a checkpoint builds the model first (random init from
    // libtorch's global RNG): hold the lock so the other tests' seeded
    // pretraining does not interleave with it.
    let _g = util::lock();
    assert_eq!(s.spec.device, "model:4x4");
    assert_eq!(s.spec.amounts, vec![0, 64, 192]);
    let d = s.dir.path().to_path_buf();
    let clean = fleetjob::clean_accuracy(&s.spec, &s.f.test).unwrap();
    // A floor the faulty chips miss before retraining but not always after.
    s.spec.accuracy = clean - 0.02;

    let all = run(&s, None, &d.join("all.work"));
    assert_eq!((all.jobs.len(), all.ran), (4, 4));
    assert_eq!(all.clean_accuracy, clean);
    let map = fleetjob::assemble(&s.spec, all.clean_accuracy, &all.jobs).unwrap();
    fleetjob::write_map(&d.join("all.json"), &map).unwrap();

    // Every chip has its own map; amount 0 is that chip unretrained.
    let seeds: Vec<u64> = all.jobs.iter().map(|j| j.map_seed).collect();
    let mut uniq = seeds.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), seeds.len());
    assert!(all.jobs.iter().all(|j| j.faulty_pes > 0), "{:?}", all.jobs);

    // The least-amount rule on the measured map: non-decreasing in the
    // rate, each meets the floor at the percentile, none below it does.
    let mut prev = Some(0u64);
    for l in &map.least {
        match (l.amount, prev) {
            (Some(a), Some(p)) => {
                assert!(a >= p, "{:?}", map.least);
                let c = map.cell(l.rate, a).unwrap();
                assert!(percentile(&c.samples, 10.0) >= s.spec.accuracy, "{map:?}");
            }
            (Some(_), None) => panic!("a rate after an impossible one: {:?}", map.least),
            (None, _) => {}
        }
        prev = l.amount;
    }
    let first = &map.least[0];
    if let Some(a) = first.amount {
        for &b in s.spec.amounts.iter().filter(|&&b| b < a) {
            let c = map.cell(first.rate, b).unwrap();
            assert!(percentile(&c.samples, 10.0) < s.spec.accuracy, "{map:?}");
        }
    }

    // Two shards, merged from their shard files and from their work dirs.
    let mut shard_files = Vec::new();
    for k in ["0/2", "1/2"] {
        let sh = shard(k);
        let out = run(&s, Some(sh), &d.join(format!("s{}.work", sh.index)));
        assert_eq!((out.jobs.len(), out.ran), (2, 2));
        let p = d.join(format!("s{}.json", sh.index));
        fleetjob::write_shard(&p, &fleetjob::shard_file(&s.spec, sh, &out)).unwrap();
        shard_files.push(p);
    }
    let merged = fleetjob::merge(&shard_files, Default::default()).unwrap();
    fleetjob::write_map(&d.join("merged.json"), &merged).unwrap();
    let bytes = |p: &str| std::fs::read(d.join(p)).unwrap();
    assert_eq!(bytes("merged.json"), bytes("all.json"));
    let from_dirs =
        fleetjob::merge(&[d.join("s0.work"), d.join("s1.work")], Default::default()).unwrap();
    assert_eq!(from_dirs, map);

    // A rerun of a finished shard runs nothing and leaves its files alone.
    let job0 = fleetjob::job_path(&d.join("s0.work"), &s.spec, 0);
    let before = std::fs::metadata(&job0).unwrap().modified().unwrap();
    let again = run(&s, Some(shard("0/2")), &d.join("s0.work"));
    assert_eq!(again.ran, 0);
    assert_eq!(again.jobs, run(&s, Some(shard("0/2")), &d.join("s0.work")).jobs);
    assert_eq!(std::fs::metadata(&job0).unwrap().modified().unwrap(), before);

    // An interrupted shard (one job file missing) redoes only that job,
    // with the same result.
    let job2 = fleetjob::job_path(&d.join("s0.work"), &s.spec, 2);
    std::fs::remove_file(&job2).unwrap();
    let resumed = run(&s, Some(shard("0/2")), &d.join("s0.work"));
    assert_eq!(resumed.ran, 1);
    let strip = |v: &[fleetjob::JobResult]| -> Vec<Vec<f64>> {
        v.iter().map(|j| j.accuracies.clone()).collect()
    };
    assert_eq!(strip(&resumed.jobs), strip(&again.jobs));

    // Another floor reuses every job, and a merge can set it too.
    let lower = ResilienceSpec { accuracy: s.spec.accuracy - 0.1, ..s.spec.clone() };
    let data = RunData { train: &s.f.train, test: &s.f.test };
    let re = fleetjob::run(&lower, &data, None, &d.join("all.work"), &mut |_| {}).unwrap();
    assert_eq!((re.ran, re.jobs.clone()), (0, all.jobs.clone()));
    let relaxed = fleetjob::assemble(&lower, re.clean_accuracy, &re.jobs).unwrap();
    let over = fleetjob::FloorOverride { accuracy: Some(lower.accuracy), percentile: None };
    assert_eq!(fleetjob::merge(&shard_files, over).unwrap(), relaxed);
    assert_eq!(relaxed.cells, map.cells);

    // A missing shard is refused, naming what is missing.
    let e = fleetjob::merge(&shard_files[..1], Default::default()).unwrap_err().to_string();
    assert!(e.contains("2 of 4 jobs missing"), "{e}");
    // A work dir of another spec is refused.
    let other = ResilienceSpec { seed: 8, ..s.spec.clone() };
    let data = RunData { train: &s.f.train, test: &s.f.test };
    let e = fleetjob::run(&other, &data, None, &d.join("all.work"), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("another resilience run"), "{e}");
}

#[test]
fn eval_marks_only_evaluate() {
    let f = util::data(400, 100);
    let _g = util::lock();
    let base = RetrainConfig {
        epochs: 1,
        batch_size: 32,
        lr: 1e-2,
        train_samples: 128,
        eval_batch: 64,
        checkpoint_every: 0,
        ..Default::default()
    };
    let map = fleetjob_map();
    let mut reports = Vec::new();
    for marks in [vec![], vec![40, 64, 128]] {
        let (mut vs, model) = util::pretrained(&f, 5);
        let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
        let cfg = RetrainConfig { eval_marks: marks, ..base.clone() };
        reports.push(util::retrain_plain(&model, &mut vs, &mut exec, &f, cfg));
    }
    let (plain, marked) = (&reports[0], &reports[1]);
    assert_eq!(plain.accuracy_after, marked.accuracy_after);
    assert_eq!(plain.totals.update, marked.totals.update);
    // 40 samples are reached after 2 steps of 32, 64 after 2, 128 after 4 (the epoch's end).
    let got: Vec<(u64, usize)> = marked.marks.iter().map(|m| (m.samples, m.steps)).collect();
    assert_eq!(got, vec![(40, 2), (64, 2), (128, 4)]);
    assert_eq!(marked.marks[0].test_accuracy, marked.marks[1].test_accuracy);
    assert_eq!(marked.marks[2].test_accuracy, marked.history[0].test_accuracy);
    // Marks must be ascending and above 0.
    for bad in [vec![0, 64], vec![64, 64]] {
        let (mut vs, model) = util::pretrained(&f, 5);
        let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
        let job = trainer::retrain::RetrainRun {
            model: &model,
            vs: &mut vs,
            exec: &mut exec,
            train: &f.train,
            test: &f.test,
            config: RetrainConfig { eval_marks: bad, ..base.clone() },
            checkpoint: None,
            resume: false,
        };
        let e = trainer::retrain::retrain(job, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("strictly ascending"), "{e}");
    }
}

fn fleetjob_map() -> faultloop_proto::faultmap::FaultMap {
    trainer::experiment::random_fault_map(4, 4, 0.25, fleetjob::chip_seed(1, 0, 0)).unwrap()
}

#[test]
fn bad_shards_rates_and_amounts_say_why() {
    for (s, why) in [
        ("1", "expected INDEX/COUNT"),
        ("a/2", "index is not a whole number"),
        ("0/x", "count is not a whole number"),
        ("-1/2", "index is not a whole number"),
        ("2/2", "below the count"),
        ("0/0", "at least 1"),
    ] {
        let e = s.parse::<Shard>().unwrap_err().to_string();
        assert!(e.contains(&format!("`{s}`")) && e.contains(why), "{s}: {e}");
    }
    assert_eq!(shard("3/4"), Shard { index: 3, count: 4 });
    assert_eq!(shard("3/4").to_string(), "3/4");
    for (s, why) in [("0.1,x", "`x` is not a number"), ("0.2,0.1", "ascending"), ("1.5", "[0, 1]")]
    {
        let e = fleetjob::parse_rates(s).unwrap_err().to_string();
        assert!(e.contains("--rates") && e.contains(why), "{s}: {e}");
    }
    for (s, why) in [("1,-2", ">= 0"), ("1,x", "number of epochs"), ("2.5s", "sample-steps")] {
        let e = fleetjob::parse_amounts(s).unwrap_err().to_string();
        assert!(e.contains("--amounts") && e.contains(why), "{s}: {e}");
    }
    assert_eq!(
        fleetjob::parse_amounts("0, 0.25,500s").unwrap(),
        vec![Amount::Epochs(0.0), Amount::Epochs(0.25), Amount::Samples(500)]
    );
    assert_eq!(Amount::Epochs(0.25).samples(4000), 1000);
}
