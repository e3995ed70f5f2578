//! The DLA-backed executor, sparse increments, partial TMR, checkpoint/resume
//! and a small hardware-in-the-loop retraining run, on the golden model
//! (`model:RxC`) and, where cheap, on the Verilated RTL (`sim:RxC`).
use std::path::Path;

use faultloop_proto::faultmap::{Fault, FaultMap};
use faultloop_proto::rng::Rng;
use faultloop_proto::Site;
use tch::{nn, Kind, Tensor};
use trainer::device::{
    patch_entries_within, Compress, DeviceMatmul, LayerMode, LayerTarget, UpdateBudget,
};
use trainer::exec::matmul_i8_ref;
use trainer::experiment::{self, RateScan};
use trainer::retrain::{self, RetrainConfig, RetrainRun};
use trainer::train;
use trainer::{eval, tmr, ExecutorError, HostMatmul, Int8Matmul, Model, ModelSpec, ShapeError};

mod util;
use util::{data, lock, pretrained, retrain_plain, Fixture};

fn identity(k: usize) -> Vec<i8> {
    let mut a = vec![0i8; k * k];
    for i in 0..k {
        a[i * k + i] = 1;
    }
    a
}

#[test]
fn device_matmul_equals_host_reference_on_model_and_sim() {
    let mut rng = Rng::new(7);
    for spec in ["model:4x4", "model:8x8", "sim:4x4"] {
        let mut exec = DeviceMatmul::open(spec, None).unwrap();
        // Several layers, odd shapes (padding), allocated one after the other.
        let shapes = [(13usize, 9usize), (64, 32), (5, 21)];
        let ws: Vec<Vec<i8>> = shapes.iter().map(|&(k, n)| rng.vec_i8(k * n)).collect();
        for (i, (&(k, n), w)) in shapes.iter().zip(&ws).enumerate() {
            exec.set_weights(i, w, k, n).unwrap();
        }
        let mut end = 0;
        for (i, &(k, n)) in shapes.iter().enumerate() {
            let l = exec.layout(i).unwrap();
            assert_eq!(l.base % exec.info().cols, 0, "{spec}: layer {i} base aligned");
            assert!(l.base >= end, "{spec}: layers overlap");
            end = l.end();
            let m = 37;
            let a = rng.vec_i8(m * k);
            let got = exec.matmul(i, &a, m, k, n).unwrap();
            assert_eq!(got, matmul_i8_ref(&a, &ws[i], m, k, n), "{spec}: layer {i} {m}x{k}x{n}");
        }
        assert_eq!(exec.device_macs(), 37 * (13 * 9 + 64 * 32 + 5 * 21) as u64);
        assert!(exec.bytes_to_device() > 0 && exec.bytes_from_device() > 0);
    }
}

#[test]
fn exported_model_on_device_equals_host_int8_path() {
    let _g = lock();
    let f = data(256, 96);
    let (_vs, model) = pretrained(&f, 3);
    let host = train::predict(&model, &f.test, 50, Some(&mut HostMatmul::new())).unwrap();
    for spec in ["model:4x4", "sim:8x8"] {
        let mut exec = DeviceMatmul::open(spec, None).unwrap();
        let dev = train::predict(&model, &f.test, 50, Some(&mut exec)).unwrap();
        assert!(host.equal(&dev), "{spec}: device predictions differ from the host's");
        // Layer by layer: the export's weights on the device times random
        // activations equal the integer reference.
        let exp = model.export();
        let mut rng = Rng::new(5);
        for l in &exp.layers {
            let a = rng.vec_i8(7 * l.k);
            assert_eq!(
                exec.matmul(l.index, &a, 7, l.k, l.n).unwrap(),
                matmul_i8_ref(&a, &l.weights, 7, l.k, l.n),
                "{spec}: {}",
                l.name
            );
        }
    }
}

#[test]
fn straight_through_gradients_through_a_faulty_device() {
    let _g = lock();
    let f = data(64, 32);
    tch::manual_seed(1);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    // One layer and a loss linear in the logits: its gradient cannot see the
    // forward values, so straight-through must give exactly the float gradient.
    let model = Model::new(&vs.root(), &ModelSpec::Mlp { widths: vec![64, 4] }).unwrap();
    let xs = f.train.images.narrow(0, 0, 16);
    let _ = model.forward_exec(&xs, true, None).unwrap(); // observe the input range
    model.set_observe(false);
    let c = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([1, 4]);
    let map = FaultMap {
        faults: vec![Fault {
            row: 1,
            col: 2,
            site: Site::Psum,
            stuck_at_0: 0,
            stuck_at_1: 1 << 12,
        }],
        ..FaultMap::empty(4, 4)
    };
    let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
    model.sync_weights(&mut exec).unwrap();
    let run = |exec: Option<&mut dyn Int8Matmul>| {
        for mut v in vs.trainable_variables() {
            v.zero_grad();
        }
        let logits = model.forward_exec(&xs, true, exec).unwrap();
        (&logits * &c).sum(Kind::Float).backward();
        let l = &model.layers()[0];
        (logits.detach(), l.weight.grad().copy(), l.bias.grad().copy())
    };
    let (dev_y, dev_gw, dev_gb) = run(Some(&mut exec));
    let (float_y, float_gw, float_gb) = run(None);
    // The forward value is exactly the device's (faulty) result ...
    let eval_y = tch::no_grad(|| model.forward_exec(&xs, false, Some(&mut exec)).unwrap());
    assert!(dev_y.equal(&eval_y));
    assert!(
        !dev_y.allclose(&float_y, 1e-4, 1e-4, false),
        "the fault must show in the forward value"
    );
    // ... and the backward pass is the float one.
    assert!(dev_gw.allclose(&float_gw, 1e-6, 1e-6, false));
    assert!(dev_gb.allclose(&float_gb, 1e-6, 1e-6, false));
    assert!(dev_gw.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn sparse_patches_reproduce_dense_weights_exactly() {
    let mut rng = Rng::new(99);
    let (k, n) = (40usize, 24usize);
    let mut w = rng.vec_i8(k * n);
    let mut sparse = DeviceMatmul::open("model:8x8", None).unwrap();
    let mut dense = DeviceMatmul::open("model:8x8", None).unwrap();
    dense.set_compress(Compress::Dense);
    sparse.set_weights(0, &w, k, n).unwrap();
    dense.set_weights(0, &w, k, n).unwrap();
    let eye = identity(k);
    for step in 0..30 {
        // Few changes usually (patch), sometimes most of the matrix (dense fallback).
        let changes = if step % 10 == 9 { k * n } else { 1 + rng.index(20) };
        for _ in 0..changes {
            let i = rng.index(k * n);
            w[i] = rng.range_i8(-127, 127);
        }
        sparse.set_weights(0, &w, k, n).unwrap();
        dense.set_weights(0, &w, k, n).unwrap();
        let a = sparse.matmul(0, &eye, k, k, n).unwrap();
        let b = dense.matmul(0, &eye, k, k, n).unwrap();
        assert_eq!(a, b, "step {step}");
        assert_eq!(a, w.iter().map(|&v| v as i32).collect::<Vec<_>>(), "step {step}");
        assert_eq!(sparse.held(0).unwrap(), &w[..]);
    }
    let (s, d) = (sparse.update_stats(), dense.update_stats());
    assert_eq!(s.updates, 30);
    assert!(s.patch_updates >= 20 && s.dense_updates >= 1, "{s:?}");
    assert_eq!(d.dense_updates, 30);
    assert!(s.bytes_sent < d.bytes_sent / 3, "{s:?} vs {d:?}");
    // The dense estimate is what a dense write really costs.
    assert_eq!(d.bytes_sent, d.bytes_dense);
    assert_eq!(s.bytes_dense, d.bytes_dense);
}

#[test]
fn threshold_keeps_a_residual_that_is_sent_once_it_grows() {
    let (k, n) = (8usize, 8usize);
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    exec.set_threshold(3);
    let mut w = vec![0i8; k * n];
    exec.set_weights(0, &w, k, n).unwrap();
    // +1 per step on element 5: sent only when the distance reaches 3.
    for step in 1..=7i8 {
        w[5] = step;
        exec.set_weights(0, &w, k, n).unwrap();
        let held = exec.held(0).unwrap()[5];
        assert!((w[5] - held).abs() < 3, "step {step}: residual {}", w[5] - held);
        let got = exec.matmul(0, &identity(k), k, k, n).unwrap();
        assert_eq!(got[5], held as i32);
    }
    assert_eq!(exec.held(0).unwrap()[5], 6);
    let s = exec.update_stats();
    assert_eq!((s.patch_updates, s.withheld_values), (2, 5), "{s:?}");
}

#[test]
fn tmr_votes_out_a_faulty_pe() {
    let mut rng = Rng::new(3);
    let (m, k, n) = (20usize, 16usize, 8usize);
    let w = rng.vec_i8(k * n);
    let a = rng.vec_i8(m * k);
    let want = matmul_i8_ref(&a, &w, m, k, n);
    for site in [Site::Psum, Site::Weight] {
        let (sa1, what) = match site {
            Site::Psum => (1u64 << 20, "psum"),
            _ => (1 << 6, "weight"),
        };
        let map = FaultMap {
            faults: vec![Fault { row: 1, col: 2, site, stuck_at_0: 0, stuck_at_1: sa1 }],
            ..FaultMap::empty(4, 4)
        };
        for spec in ["model:4x4", "sim:4x4"] {
            let mut exec = DeviceMatmul::open(spec, Some(&map)).unwrap();
            exec.set_weights(0, &w, k, n).unwrap();
            let plain = exec.matmul(0, &a, m, k, n).unwrap();
            assert_ne!(plain, want, "{spec} {what}: the fault must corrupt the plain run");
            exec.set_mode(0, LayerMode::Tmr);
            assert_eq!(exec.matmul(0, &a, m, k, n).unwrap(), want, "{spec} {what}: TMR");
            exec.set_mode(0, LayerMode::Host);
            assert_eq!(exec.matmul(0, &a, m, k, n).unwrap(), want);
            assert_eq!(exec.layer_macs()[0], 4 * (m * k * n) as u64, "plain + 3 TMR runs");
        }
    }
}

/// A fault map on a 4×4 array that hurts the small MLP: high psum bits stuck
/// at 1 in two columns, an act and a weight fault.
fn harmful_map() -> FaultMap {
    FaultMap {
        faults: vec![
            Fault { row: 0, col: 1, site: Site::Weight, stuck_at_0: 0, stuck_at_1: 1 << 6 },
            Fault { row: 2, col: 0, site: Site::Psum, stuck_at_0: 0, stuck_at_1: 1 << 13 },
            Fault { row: 3, col: 3, site: Site::Act, stuck_at_0: 0, stuck_at_1: 1 << 6 },
        ],
        ..FaultMap::empty(4, 4)
    }
}

#[test]
fn retraining_on_a_faulty_model_device_recovers_accuracy() {
    let _g = lock();
    let f = data(600, 300);
    let (mut vs, model) = pretrained(&f, 3);
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    exec.install_model(&model).unwrap();
    let clean = eval::accuracy(&model, &f.test, 100, &mut exec, |_| {}).unwrap();
    exec.set_faults(Some(&harmful_map())).unwrap();
    let cfg = RetrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 3e-3,
        train_samples: 600,
        checkpoint_every: 0,
        eval_batch: 100,
        ..Default::default()
    };
    let r = retrain_plain(&model, &mut vs, &mut exec, &f, cfg);
    eprintln!(
        "clean {clean} before {} after {} {:?}",
        r.accuracy_before, r.accuracy_after, r.history
    );
    assert!(
        r.accuracy_before < clean - 0.1,
        "the faults must hurt: {clean} vs {}",
        r.accuracy_before
    );
    assert!(r.accuracy_after > r.accuracy_before + 0.1, "{r:?}");
    assert_eq!(r.totals.steps, 3 * 19);
    assert!(r.bytes_per_step_sent < r.bytes_per_step_dense, "{r:?}");
    // The derived figures of the report.
    let saved = 100.0 * (1.0 - r.bytes_per_step_sent / r.bytes_per_step_dense);
    assert!((r.bytes_saved_pct() - saved).abs() < 1e-9 && saved > 0.0);
    assert_eq!(r.seconds_per_epoch(), r.totals.train_seconds / 3.0);
    let t = &r.totals;
    assert_eq!(r.link_seconds(1e6), (t.bytes_to_device + t.bytes_from_device) as f64 * 10.0 / 1e6);
    assert_eq!(r.link_seconds_weight_updates(1e6), t.update.bytes_sent as f64 * 10.0 / 1e6);
    assert_eq!(t.usage().update, t.update);
}

#[test]
fn resume_after_an_interruption_gives_identical_results() {
    let cfg = RetrainConfig { threshold: 2, ..resume_config() };
    let f = data(300, 100);
    let dir = tempfile::tempdir().unwrap();
    let ck = check_resume_is_identical(&f, &cfg, dir.path());
    // A different configuration refuses to resume.
    let _g = lock();
    let (mut vs, model) = pretrained(&f, 5);
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    let job = RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: &f.train,
        test: &f.test,
        config: RetrainConfig { lr: 1e-2, ..cfg.clone() },
        checkpoint: Some(&ck),
        resume: true,
    };
    let e = retrain::retrain(job, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("cannot resume"), "{e}");
}

/// Under a byte budget the residual lives in the difference between the
/// master weights and the device copy, both checkpointed: a resumed run
/// still equals an uninterrupted one.
#[test]
fn resume_under_an_update_budget_gives_identical_results() {
    let cfg =
        RetrainConfig { update_budget: Some(UpdateBudget::Fraction(0.05)), ..resume_config() };
    let f = data(300, 100);
    let dir = tempfile::tempdir().unwrap();
    check_resume_is_identical(&f, &cfg, dir.path());
}

fn resume_config() -> RetrainConfig {
    RetrainConfig {
        epochs: 2,
        batch_size: 32,
        lr: 3e-3,
        train_samples: 200,
        checkpoint_every: 3,
        eval_batch: 100,
        ..Default::default()
    }
}

/// A run cut twice and resumed equals an uninterrupted one; returns the
/// resumed run's checkpoint directory (in `dir`).
fn check_resume_is_identical(f: &Fixture, cfg: &RetrainConfig, dir: &Path) -> std::path::PathBuf {
    let _g = lock();
    let run = |ckpt: &Path, stop: Option<usize>, resume: bool| {
        let (mut vs, model) = pretrained(f, 5);
        let mut exec = DeviceMatmul::open("model:4x4", Some(&harmful_map())).unwrap();
        let job = RetrainRun {
            model: &model,
            vs: &mut vs,
            exec: &mut exec,
            train: &f.train,
            test: &f.test,
            config: RetrainConfig { stop_after_steps: stop, ..cfg.clone() },
            checkpoint: Some(ckpt),
            resume,
        };
        let r = retrain::retrain(job, &mut |_| {}).unwrap();
        let held: Vec<Vec<i8>> = (0..3).map(|l| exec.held(l).unwrap().to_vec()).collect();
        (r, model.export(), held)
    };
    let (full, full_exp, full_held) = run(&dir.join("full.ckpt"), None, false);
    assert!(full.finished);
    let ck = dir.join("cut.ckpt");
    // 7 steps an epoch, checkpoints at steps 3, 6, 7 (epoch end), 9, 12, 14.
    // Interrupted after 8 steps (resumes at 7, the epoch end), then again 3
    // steps into the resumed run (resumes at the checkpoint of step 9), then finished.
    let (a, _, _) = run(&ck, Some(8), true);
    assert!(!a.finished);
    let (b, _, _) = run(&ck, Some(3), true);
    assert_eq!(b.resumed_at_step, Some(7));
    let (c, c_exp, c_held) = run(&ck, None, true);
    assert_eq!(c.resumed_at_step, Some(9));
    assert!(c.finished);
    assert_eq!(c.history.len(), 2);
    for (x, y) in full.history.iter().zip(&c.history) {
        assert_eq!(
            (x.train_loss, x.train_accuracy, x.test_accuracy),
            (y.train_loss, y.train_accuracy, y.test_accuracy)
        );
        assert_eq!(
            (x.bytes_dense, x.bytes_sent, x.bytes_max),
            (y.bytes_dense, y.bytes_sent, y.bytes_max)
        );
    }
    assert_eq!(full.accuracy_before, c.accuracy_before);
    assert_eq!(full.totals.update.bytes_sent, c.totals.update.bytes_sent);
    assert_eq!(full.totals.steps, c.totals.steps);
    assert_eq!(full_exp, c_exp);
    assert_eq!(full_held, c_held);
    // The result is a loadable checkpoint.
    let (_vs, loaded, _) = trainer::checkpoint::load(&ck).unwrap();
    assert_eq!(loaded.export(), c_exp);
    assert_eq!(full.totals.bytes_per_step_max, c.totals.bytes_per_step_max);
    ck
}

#[test]
fn vulnerability_and_budget_table() {
    let _g = lock();
    let f = data(256, 200);
    let (_vs, model) = pretrained(&f, 3);
    let mut exec = DeviceMatmul::open("model:4x4", Some(&harmful_map())).unwrap();
    exec.install_model(&model).unwrap();
    let v = tmr::analyze(&model, &f.test, 100, &mut exec).unwrap();
    assert_eq!(v.layers.len(), 3);
    assert_eq!(v.layers[0].macs_per_sample, 64 * 32);
    assert!(v.faulty_accuracy < v.clean_accuracy);
    let rows =
        tmr::budget_table(&model, &f.test, 100, &mut exec, &v, &[0.0, 50.0, 100.0, 200.0]).unwrap();
    assert_eq!(rows[0].accuracy, v.faulty_accuracy);
    assert!(rows[0].protected.is_empty());
    for r in &rows {
        assert!(r.extra_macs_pct <= r.budget_pct + 1e-9, "{r:?}");
    }
    // Everything protected: every fault here is a single PE, voted out.
    assert_eq!(rows[3].protected.len(), v.layers.iter().filter(|l| l.recovery > 0.0).count());
    assert!(rows[3].accuracy >= rows[0].accuracy, "{rows:?}");

    // `protect` makes the same choice as the table and measures the same
    // accuracy, on its own executor and through the eval job.
    let mut exec = DeviceMatmul::open("model:4x4", Some(&harmful_map())).unwrap();
    exec.install_model(&model).unwrap();
    let p = tmr::protect(&model, &f.test, 100, &mut exec, 200.0).unwrap();
    assert_eq!(p.protected, rows[3].protected);
    assert_eq!(p.extra_macs_pct, rows[3].extra_macs_pct);
    assert_eq!(p.vulnerability, v);
    for (i, l) in v.layers.iter().enumerate() {
        let want = if p.protected.contains(&l.name) { LayerMode::Tmr } else { LayerMode::Device };
        assert_eq!(exec.mode(i), want, "{}", l.name);
    }
    assert_eq!(eval::accuracy(&model, &f.test, 100, &mut exec, |_| {}).unwrap(), rows[3].accuracy);
    let keys: Vec<String> =
        serde_json::to_value(&p).unwrap().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["budget_pct", "extra_macs_pct", "protected", "vulnerability"]);

    let mut exec = DeviceMatmul::open("model:4x4", Some(&harmful_map())).unwrap();
    let mut batches = 0;
    let e = experiment::evaluate_on_device(&model, &f.test, 100, &mut exec, Some(200.0), |b| {
        batches += 1;
        assert_eq!(b.total, 200);
    })
    .unwrap();
    assert_eq!(batches, 2);
    assert_eq!(e.accuracy, rows[3].accuracy);
    assert_eq!(e.protection.as_ref().map(|p| &p.protected), Some(&rows[3].protected));
    let macs: u64 = v.layers.iter().map(|l| l.macs_per_sample).sum();
    let tmr_macs: u64 = v
        .layers
        .iter()
        .filter(|l| rows[3].protected.contains(&l.name))
        .map(|l| 2 * l.macs_per_sample)
        .sum();
    assert_eq!(e.usage.device_macs, 200 * (macs + tmr_macs));
    assert!(e.usage.bytes_to_device > 0 && e.usage.update.updates == 0);
}

#[test]
fn the_scan_stops_at_the_first_harmful_rate() {
    let _g = lock();
    let f = data(256, 100);
    let (_vs, model) = pretrained(&f, 3);
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    exec.install_model(&model).unwrap();
    let clean = eval::accuracy(&model, &f.test, 50, &mut exec, |_| {}).unwrap();
    let rates = [0.1, 0.25, 0.5, 0.75];
    let mut seen = Vec::new();
    let mut scan =
        RateScan { rates: &rates, seed: 4, clean_accuracy: clean, min_loss_points: 1e3, batch: 50 };
    // Nothing costs 1000 points: every rate is tried.
    let none =
        experiment::find_harmful_rate(&model, &f.test, &mut exec, &scan, |p| seen.push(p.clone()))
            .unwrap();
    assert_eq!(none.rate, None);
    assert_eq!(none.points, seen);
    assert_eq!(none.points.iter().map(|p| p.rate).collect::<Vec<_>>(), rates);
    // Each point is the accuracy under that rate's map.
    for p in &none.points {
        let map = experiment::random_fault_map(4, 4, p.rate, 4).unwrap();
        assert_eq!(p.faulty_pes, map.faulty_pes());
        exec.set_faults(Some(&map)).unwrap();
        assert_eq!(eval::accuracy(&model, &f.test, 50, &mut exec, |_| {}).unwrap(), p.accuracy);
    }
    // Ask for the largest loss seen (at most 50 points): the scan stops at
    // the first rate that costs it.
    let losses: Vec<f64> = none.points.iter().map(|p| 100.0 * (clean - p.accuracy)).collect();
    scan.min_loss_points = losses.iter().copied().fold(f64::MIN, f64::max).clamp(1e-6, 50.0);
    let found = experiment::find_harmful_rate(&model, &f.test, &mut exec, &scan, |_| {}).unwrap();
    let first = losses.iter().position(|&l| l >= scan.min_loss_points);
    assert_eq!(found.rate, first.map(|i| rates[i]));
    let n = first.map_or(rates.len(), |i| i + 1);
    assert_eq!(found.points, none.points[..n]);
}

#[test]
fn executor_errors_are_typed() {
    let e = DeviceMatmul::open("fpga:1", None).unwrap_err();
    assert!(matches!(e, ExecutorError::Open(_)), "{e:?}");
    assert!(e.to_string().starts_with("cannot open device: "), "{e}");
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    let e = exec.matmul(3, &[1], 1, 1, 1).unwrap_err();
    let e = e.downcast_ref::<ExecutorError>().expect("an ExecutorError");
    assert!(matches!(e, ExecutorError::Shape(ShapeError::NoWeights { layer: 3 })), "{e:?}");
    exec.set_weights(0, &[1, 2, 3, 4], 2, 2).unwrap();
    let e = exec.set_weights(0, &[1, 2, 3], 3, 1).unwrap_err();
    let e = e.downcast_ref::<ExecutorError>().expect("an ExecutorError");
    assert!(matches!(e, ExecutorError::Shape(ShapeError::Allocated { layer: 0, .. })), "{e:?}");
    let e = exec.matmul(0, &[1, 2, 3], 2, 2, 2).unwrap_err().to_string();
    assert_eq!(e, "layer 0: matmul 2×2×2 with 3 activations against weights 2×2");
}

fn targets<'a>(shapes: &[(usize, usize)], ws: &'a [Vec<i8>]) -> Vec<LayerTarget<'a>> {
    shapes
        .iter()
        .zip(ws)
        .enumerate()
        .map(|(layer, (&(k, n), w))| LayerTarget { layer, w, k, n, exact: None, unit: 1.0 })
        .collect()
}

/// Moves about a third of the values of every layer by up to ±40 int8 steps.
fn big_step(rng: &mut Rng, ws: &mut [Vec<i8>]) {
    for w in ws {
        for _ in 0..w.len() / 3 {
            let i = rng.index(w.len());
            w[i] = (w[i] as i16 + rng.range_i8(-40, 40) as i16).clamp(-127, 127) as i8;
        }
    }
}

/// The device's weight memory, read back with identity activations, holds
/// what the executor thinks it holds.
fn assert_device_holds(exec: &mut DeviceMatmul, shapes: &[(usize, usize)], what: &str) {
    for (l, &(k, n)) in shapes.iter().enumerate() {
        let got = exec.matmul(l, &identity(k), k, k, n).unwrap();
        let held: Vec<i32> = exec.held(l).unwrap().iter().map(|&v| v as i32).collect();
        assert_eq!(got, held, "{what}: layer {l}");
    }
}

#[test]
fn budgeted_updates_never_exceed_the_budget_and_lose_nothing() {
    let mut rng = Rng::new(41);
    let shapes = [(40usize, 24usize), (64, 32), (13, 9)];
    let mut ws: Vec<Vec<i8>> = shapes.iter().map(|&(k, n)| rng.vec_i8(k * n)).collect();
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    exec.update_layers(&targets(&shapes, &ws)).unwrap(); // installs, not counted
    assert_eq!(exec.update_stats().updates, 0);
    let budget = exec.dense_update_bytes() / 20;
    exec.set_update_budget(Some(budget)).unwrap();
    let per_step = patch_entries_within(budget, exec.info().buf_bytes);
    assert!(per_step > 10, "{budget} B");
    for step in 0..30 {
        big_step(&mut rng, &mut ws);
        let before: Vec<Vec<i8>> = (0..3).map(|l| exec.held(l).unwrap().to_vec()).collect();
        let b0 = exec.bytes_to_device();
        exec.update_layers(&targets(&shapes, &ws)).unwrap();
        let sent_bytes = exec.bytes_to_device() - b0;
        assert!(sent_bytes <= budget, "step {step}: {sent_bytes} B > {budget} B");
        // The largest distances went, across layers; what went is exact.
        let (mut sent, mut min_sent, mut max_kept) = (0usize, i16::MAX, 0i16);
        for l in 0..3 {
            let after = exec.held(l).unwrap();
            for i in 0..ws[l].len() {
                let d = (ws[l][i] as i16 - before[l][i] as i16).abs();
                if after[i] != before[l][i] {
                    assert_eq!(after[i], ws[l][i], "step {step}: a sent value is the target");
                    sent += 1;
                    min_sent = min_sent.min(d);
                } else if d > 0 {
                    max_kept = max_kept.max(d);
                }
            }
        }
        assert_eq!(sent, per_step, "step {step}: the budget is used, not more");
        assert!(max_kept <= min_sent, "step {step}: kept {max_kept} > sent {min_sent}");
        assert_device_holds(&mut exec, &shapes, &format!("step {step}"));
    }
    let s = exec.update_stats();
    assert_eq!(s.updates, 30 * 3);
    assert_eq!(s.sent_values, 30 * per_step as u64);
    assert!(s.withheld_values > 0 && s.changed_values == s.sent_values + s.withheld_values);
    // The targets stop moving: the residual (target - held) drains at the
    // budget's pace, and then the device holds exactly the targets.
    let pending: usize = (0..3)
        .map(|l| exec.held(l).unwrap().iter().zip(&ws[l]).filter(|(h, w)| h != w).count())
        .sum();
    assert!(pending > per_step, "the budget must have left a residual");
    for _ in 0..pending.div_ceil(per_step) {
        let b0 = exec.bytes_to_device();
        exec.update_layers(&targets(&shapes, &ws)).unwrap();
        assert!(exec.bytes_to_device() - b0 <= budget);
    }
    for (l, w) in ws.iter().enumerate() {
        assert_eq!(exec.held(l).unwrap(), &w[..], "layer {l}: an update was lost");
    }
    assert_device_holds(&mut exec, &shapes, "drained");
    let b0 = exec.bytes_to_device();
    exec.update_layers(&targets(&shapes, &ws)).unwrap();
    assert_eq!(exec.bytes_to_device(), b0, "nothing left to send");
}

#[test]
fn a_budget_of_dense_or_more_changes_nothing() {
    let mut rng = Rng::new(42);
    let shapes = [(40usize, 24usize), (64, 32), (13, 9)];
    let mut ws: Vec<Vec<i8>> = shapes.iter().map(|&(k, n)| rng.vec_i8(k * n)).collect();
    let mut plain = DeviceMatmul::open("model:8x8", None).unwrap();
    let mut budgeted = DeviceMatmul::open("model:8x8", None).unwrap();
    for e in [&mut plain, &mut budgeted] {
        e.update_layers(&targets(&shapes, &ws)).unwrap();
    }
    budgeted.set_update_budget(Some(budgeted.dense_update_bytes())).unwrap();
    for step in 0..20 {
        // Small steps (patches) and every fifth a big one (dense fallbacks).
        if step % 5 == 4 {
            big_step(&mut rng, &mut ws);
        } else {
            for w in &mut ws {
                let i = rng.index(w.len());
                w[i] = rng.range_i8(-127, 127);
            }
        }
        for e in [&mut plain, &mut budgeted] {
            e.update_layers(&targets(&shapes, &ws)).unwrap();
        }
        assert_eq!(plain.update_stats(), budgeted.update_stats(), "step {step}");
        for (l, w) in ws.iter().enumerate() {
            assert_eq!(budgeted.held(l).unwrap(), &w[..]);
        }
    }
    let s = budgeted.update_stats();
    assert!(s.patch_updates > 0 && s.dense_updates > 0, "{s:?}");
    assert_eq!(plain.bytes_to_device(), budgeted.bytes_to_device());
    assert_device_holds(&mut budgeted, &shapes, "dense budget");
}

#[test]
fn impossible_budgets_are_refused() {
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    let min = exec.min_update_bytes();
    let e = exec.set_update_budget(Some(min - 1)).unwrap_err();
    assert!(
        matches!(e, ExecutorError::Budget { budget, min: m } if budget == min - 1 && m == min),
        "{e:?}"
    );
    exec.set_update_budget(Some(min)).unwrap();
    assert_eq!(exec.update_budget(), Some(min));
    exec.set_update_budget(None).unwrap();
    exec.set_compress(Compress::Dense);
    let e = exec.set_update_budget(Some(10 * min)).unwrap_err();
    assert!(matches!(e, ExecutorError::BudgetDense), "{e:?}");
}

#[test]
fn retraining_under_a_budget_stays_within_it_and_keeps_every_change() {
    let _g = lock();
    let f = data(400, 200);
    let (mut vs, model) = pretrained(&f, 3);
    let mut exec = DeviceMatmul::open("model:4x4", Some(&harmful_map())).unwrap();
    let cfg = RetrainConfig {
        epochs: 2,
        batch_size: 32,
        lr: 3e-3,
        train_samples: 400,
        checkpoint_every: 0,
        eval_batch: 100,
        update_budget: Some(UpdateBudget::Fraction(0.05)),
        ..Default::default()
    };
    let r = retrain_plain(&model, &mut vs, &mut exec, &f, cfg);
    let budget = r.update_budget_bytes.unwrap();
    assert_eq!(budget, (0.05 * r.bytes_per_step_dense).floor() as u64, "{r:?}");
    assert!(r.bytes_per_step_max <= budget && r.bytes_per_step_max > 0, "{r:?}");
    for h in &r.history {
        assert!(h.bytes_max <= budget && h.bytes_sent <= budget * h.steps as u64, "{h:?}");
    }
    assert!(r.totals.update.withheld_values > 0, "the budget must bite: {r:?}");
    assert!(r.accuracy_after > r.accuracy_before, "{r:?}");
    // What the device lacks is the residual, quantise(master) - held; more
    // updates with the master weights fixed send it all, within the budget.
    let shapes: Vec<(usize, usize)> = model.layers().iter().map(|l| (l.k, l.n)).collect();
    exec.set_faults(None).unwrap(); // read back what the memory holds, not faulty sums
    assert_device_holds(&mut exec, &shapes, "after retraining");
    let pending = |exec: &DeviceMatmul| -> usize {
        model
            .layers()
            .iter()
            .map(|l| {
                let w = l.int8_weights();
                exec.held(l.index).unwrap().iter().zip(&w).filter(|(h, w)| h != w).count()
            })
            .sum()
    };
    let per_step = patch_entries_within(budget, exec.info().buf_bytes);
    let left = pending(&exec);
    assert!(left > 0, "the last steps must have left a residual");
    for _ in 0..left.div_ceil(per_step) {
        let b0 = exec.bytes_to_device();
        exec.sync_model(&model).unwrap();
        assert!(exec.bytes_to_device() - b0 <= budget);
    }
    assert_eq!(pending(&exec), 0, "an update was lost");
    assert_device_holds(&mut exec, &shapes, "drained");
    for l in model.layers() {
        assert_eq!(exec.held(l.index).unwrap(), &l.int8_weights()[..], "{}", l.name);
    }
}

#[test]
fn the_budget_ranks_by_distance_times_the_layer_unit() {
    let (k, n) = (16usize, 16usize);
    let zeros = vec![0i8; k * n];
    let mut exec = DeviceMatmul::open("model:4x4", None).unwrap();
    let t = |layer, w, exact, unit| LayerTarget { layer, w, k, n, exact, unit };
    exec.update_layers(&[t(0, &zeros, None, 1.0), t(1, &zeros, None, 1.0)]).unwrap();
    let budget = exec.min_update_bytes() + 9 * 4; // ten entries
    exec.set_update_budget(Some(budget)).unwrap();
    // Layer 0 moves 3 steps everywhere, layer 1 only 1, but an int8 step of
    // layer 1 is worth 10 of layer 0's: layer 1 goes first.
    let w0 = vec![3i8; k * n];
    let w1 = vec![1i8; k * n];
    exec.update_layers(&[t(0, &w0, None, 1.0), t(1, &w1, None, 10.0)]).unwrap();
    let sent =
        |exec: &DeviceMatmul, l: usize| exec.held(l).unwrap().iter().filter(|&&v| v != 0).count();
    assert_eq!((sent(&exec, 0), sent(&exec, 1)), (0, 10));
    // Unrounded values break ties within a layer: the largest go first.
    let exact: Vec<f32> = (0..k * n).map(|i| if i % 7 == 0 { 1.4 } else { 0.6 }).collect();
    let mut exec2 = DeviceMatmul::open("model:4x4", None).unwrap();
    exec2.update_layers(&[t(0, &zeros, None, 1.0)]).unwrap();
    exec2.set_update_budget(Some(budget)).unwrap();
    exec2.update_layers(&[t(0, &w1, Some(&exact), 1.0)]).unwrap();
    let held = exec2.held(0).unwrap();
    assert_eq!(held.iter().filter(|&&v| v != 0).count(), 10);
    assert!(held.iter().enumerate().all(|(i, &v)| v == 0 || i % 7 == 0), "{held:?}");
}
