//! Mitigation (`trainer::mitigate`): bypass and pruning against the layout
//! and the device, FAP and triage retraining, resuming, and the refusals.
use std::path::Path;

use faultloop_proto::faultmap::{Fault, FaultMap};
use faultloop_proto::layout::MatrixLayout;
use faultloop_proto::rng::Rng;
use faultloop_proto::Site;
use tch::nn;
use trainer::device::{DeviceMatmul, LayerMode};
use trainer::exec::matmul_i8_ref;
use trainer::mitigate::{self, Mitigation};
use trainer::retrain::{self, RetrainConfig, RetrainReport, RetrainRun};
use trainer::{checkpoint, eval, experiment, Int8Matmul, Model};

mod util;
use util::{data, lock, pretrained, Fixture};

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

/// Which PEs of a `rows`x`cols` array hold `W[k][n]`, from the packed
/// layout alone: the element's offset inside its tile is `r * C + c`.
fn pe_from_address(l: &MatrixLayout, k: usize, n: usize) -> [usize; 2] {
    let off = (l.addr_of(k, n) - l.base) % (l.rows * l.cols);
    [off / l.cols, off % l.cols]
}

#[test]
fn pruned_mask_matches_the_layout_and_the_device() {
    let mut rng = Rng::new(21);
    let bypass = vec![[0usize, 1usize], [2, 3], [3, 0]];
    // Faults only on bypassed PEs, and one PE the map itself bypasses: the
    // device must then compute exactly the pruned matrix.
    let map = FaultMap {
        faults: vec![
            Fault { row: 0, col: 1, site: Site::Psum, stuck_at_0: 0, stuck_at_1: 1 << 30 },
            Fault { row: 2, col: 3, site: Site::Act, stuck_at_0: 0, stuck_at_1: 1 << 6 },
            Fault { row: 3, col: 0, site: Site::Weight, stuck_at_0: 0xff, stuck_at_1: 0 },
        ],
        bypass: vec![[1, 1]],
        ..FaultMap::empty(4, 4)
    };
    for spec in ["model:4x4", "sim:4x4"] {
        let mut exec = DeviceMatmul::open(spec, Some(&map)).unwrap();
        exec.set_bypass(&bypass).unwrap();
        let on_device = mitigate::union(&bypass, &map.bypass);
        // Each layer under its own rotation: (0, 0), then two others, which
        // move the element at tile position (r, c) to PE (r + dr, c + dc).
        let rots = [(0u8, 0u8), (1, 2), (3, 1)];
        for (i, (k, n)) in [(13usize, 9usize), (5, 21), (16, 4)].into_iter().enumerate() {
            let rot = rots[i];
            exec.set_plain_rotation(i, rot);
            let layout = MatrixLayout::new(0, k, n, 4, 4).unwrap();
            let mask = mitigate::pruned_mask(k, n, 4, 4, &on_device, rot).unwrap();
            for ki in 0..k {
                for ni in 0..n {
                    let [r, c] = pe_from_address(&layout, ki, ni);
                    let pe = [(r + rot.0 as usize) % 4, (c + rot.1 as usize) % 4];
                    assert_eq!(mask[ki * n + ni], on_device.contains(&pe), "{k}x{n} W[{ki}][{ni}]");
                    assert_eq!(layout.pe_of(ki, ni, rot), (pe[0], pe[1]));
                }
            }
            let w: Vec<i8> = (0..k * n).map(|_| rng.range_i8(1, 127)).collect();
            let pruned: Vec<i8> =
                w.iter().zip(&mask).map(|(&v, &p)| if p { 0 } else { v }).collect();
            exec.set_weights(i, &w, k, n).unwrap();
            let m = 11;
            let a: Vec<i8> = (0..m * k).map(|_| rng.range_i8(1, 127)).collect();
            let got = exec.matmul(i, &a, m, k, n).unwrap();
            assert_eq!(got, matmul_i8_ref(&a, &pruned, m, k, n), "{spec}: {k}x{n} at {rot:?}");
            assert_ne!(got, matmul_i8_ref(&a, &w, m, k, n), "{spec}: the bypass must show");
            if rot != (0, 0) {
                // The mask of another rotation is not what the device drops.
                let other = mitigate::pruned_mask(k, n, 4, 4, &on_device, (0, 0)).unwrap();
                let wrong: Vec<i8> =
                    w.iter().zip(&other).map(|(&v, &p)| if p { 0 } else { v }).collect();
                assert_ne!(got, matmul_i8_ref(&a, &wrong, m, k, n), "{spec}: {k}x{n} at {rot:?}");
            }
        }
        assert_eq!(exec.plain_rotations(), vec![[0, 0], [1, 2], [3, 1]]);
        exec.set_plain_rotations(&[]);
        // Dropping the extra list keeps the map's own bypassed PE, and the
        // faults come back.
        exec.set_bypass(&[]).unwrap();
        assert!(exec.bypass().is_empty());
        let (k, n) = (16, 4);
        let w: Vec<i8> = (0..k * n).map(|_| rng.range_i8(1, 127)).collect();
        exec.set_weights(9, &w, k, n).unwrap();
        let a: Vec<i8> = (0..3 * k).map(|_| rng.range_i8(1, 127)).collect();
        let only_map = mitigate::pruned_mask(k, n, 4, 4, &map.bypass, (0, 0)).unwrap();
        let pruned: Vec<i8> =
            w.iter().zip(&only_map).map(|(&v, &p)| if p { 0 } else { v }).collect();
        assert_ne!(exec.matmul(9, &a, 3, k, n).unwrap(), matmul_i8_ref(&a, &pruned, 3, k, n));
        exec.set_faults(None).unwrap();
        assert_eq!(exec.matmul(9, &a, 3, k, n).unwrap(), matmul_i8_ref(&a, &w, 3, k, n));
    }
}

fn cfg(m: Mitigation) -> RetrainConfig {
    RetrainConfig {
        epochs: 2,
        batch_size: 32,
        lr: 3e-3,
        train_samples: 256,
        checkpoint_every: 3,
        eval_batch: 100,
        mitigation: m,
        triage_samples: 200,
        selection_samples: 200,
        ..Default::default()
    }
}

fn run_retrain(
    f: &Fixture,
    map: &FaultMap,
    config: RetrainConfig,
    ckpt: Option<&Path>,
    resume: bool,
) -> (RetrainReport, trainer::ModelExport, Vec<Vec<i8>>) {
    let (mut vs, model) = pretrained(f, 5);
    let mut exec = DeviceMatmul::open("model:4x4", Some(map)).unwrap();
    let job = RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: &f.train,
        test: &f.test,
        config,
        checkpoint: ckpt,
        resume,
    };
    let r = retrain::retrain(job, &mut |_| {}).unwrap();
    let held = (0..model.layers().len()).map(|i| exec.held(i).unwrap().to_vec()).collect();
    (r, model.export(), held)
}

#[test]
fn fap_prunes_exactly_the_weights_on_bypassed_pes() {
    let _g = lock();
    let f = data(400, 200);
    let map = harmful_map();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("fap.ckpt");
    let (r, exp, held) = run_retrain(&f, &map, cfg(Mitigation::Fap), Some(&ck), false);
    assert_eq!(r.mitigation, Mitigation::Fap);
    assert_eq!(r.bypass, mitigate::faulty_pes(&map));
    assert_eq!(r.bypass, vec![[0, 1], [2, 0], [3, 3]]);
    let mut pruned = 0;
    for (l, h) in exp.layers.iter().zip(&held) {
        let layout = MatrixLayout::new(0, l.k, l.n, 4, 4).unwrap();
        let mut nonzero_kept = 0;
        for ki in 0..l.k {
            for ni in 0..l.n {
                let v = l.weights[ki * l.n + ni];
                if r.bypass.contains(&pe_from_address(&layout, ki, ni)) {
                    assert_eq!(v, 0, "{} W[{ki}][{ni}] sits on a bypassed PE", l.name);
                    pruned += 1;
                } else if v != 0 {
                    nonzero_kept += 1;
                }
            }
        }
        // Only the bypassed PEs' weights are pruned: the others live on.
        assert!(nonzero_kept > l.k * l.n / 2, "{}: {nonzero_kept} non-zero", l.name);
        // The device holds the model.
        assert_eq!(h, &l.weights);
    }
    assert_eq!(r.pruned_weights, pruned);
    // The checkpoint records the bypass list; evaluating it with the list
    // applied reproduces the run's accuracy, without it the faults return.
    let (_vs, model, meta) = checkpoint::load(&ck).unwrap();
    let rec = meta.mitigation.expect("a retrained checkpoint records its mitigation");
    assert_eq!((rec.mitigation, rec.array, &rec.bypass), (Mitigation::Fap, [4, 4], &r.bypass));
    let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
    exec.install_model(&model).unwrap();
    let m = mitigate::for_eval(&model, None, Some(&rec), &mut exec, None, None).unwrap();
    assert_eq!((m.mitigation, &m.bypass), (Mitigation::Fap, &r.bypass));
    assert_eq!(eval::accuracy(&model, &f.test, 100, &mut exec, |_| {}).unwrap(), r.accuracy_after);
    let m = mitigate::for_eval(&model, Some(Mitigation::None), Some(&rec), &mut exec, None, None)
        .unwrap();
    assert!(m.bypass.is_empty() && exec.bypass().is_empty());
}

/// A 4x4 map with one catastrophic fault (psum bit 30 stuck at 1) and one
/// that can never change an output (the act register of the last column
/// feeds nothing).
fn one_bad_one_harmless() -> FaultMap {
    FaultMap {
        faults: vec![
            Fault { row: 1, col: 2, site: Site::Psum, stuck_at_0: 0, stuck_at_1: 1 << 30 },
            Fault { row: 2, col: 3, site: Site::Act, stuck_at_0: 0, stuck_at_1: 1 << 6 },
        ],
        ..FaultMap::empty(4, 4)
    }
}

#[test]
fn triage_bypasses_what_hurts_and_keeps_what_does_not() {
    let _g = lock();
    let f = data(400, 200);
    let map = one_bad_one_harmless();
    let (_vs, model) = pretrained(&f, 5);
    let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
    exec.install_model(&model).unwrap();
    let calib = mitigate::calibration_subset(&f.train, &[], 200, 1);
    assert_eq!(calib.len(), 200);
    // On a twin, which must end up a copy of the chip; the executor's own
    // bypass list is left alone.
    let mut twin = DeviceMatmul::open("model:4x4", None).unwrap();
    let tol = mitigate::DEFAULT_TOLERANCE;
    let t = mitigate::triage_on(&model, &calib, 100, &mut exec, Some(&mut twin), tol).unwrap();
    assert_eq!(twin.fault_map(), Some(&map));
    assert!(exec.bypass().is_empty() && twin.bypass().is_empty());
    assert_eq!(t.pes.len(), 2);
    let (bad, harmless) = (&t.pes[0], &t.pes[1]);
    assert_eq!([bad.row, bad.col, harmless.row, harmless.col], [1, 2, 2, 3]);
    assert!(bad.bypass && bad.fault_cost > 0.1, "{bad:?}");
    // The harmless fault changes no output: its cost is exactly 0.
    assert!(!harmless.bypass && harmless.fault_cost == 0.0, "{harmless:?}");
    assert_eq!(harmless.loss_kept, harmless.loss_healthy);
    assert_eq!(t.bypassed(), vec![[1, 2]]);
    assert_eq!(harmless.accuracy_bypassed, bad.accuracy_bypassed);
    // The same on the executor itself.
    let t2 = mitigate::triage_on(&model, &calib, 100, &mut exec, None, tol).unwrap();
    assert_eq!(exec.fault_map(), Some(&map));
    assert_eq!(t2.pes, t.pes);
    // Evaluation with auto applies the decision, and the rotations chosen
    // for it; without the rotation choice every layer stays at (0, 0).
    let auto = |rotations| mitigate::AutoOptions { calib: &calib, batch: 100, rotations };
    let m = mitigate::for_eval(
        &model,
        Some(Mitigation::Auto),
        None,
        &mut exec,
        None,
        Some(auto(false)),
    )
    .unwrap();
    assert_eq!(m.bypass, vec![[1, 2]]);
    assert_eq!(exec.bypass(), &[[1, 2]]);
    assert!(m.rotations.is_empty() && exec.plain_rotations().is_empty());
    let (loss_plain, _) = mitigate::loss_and_accuracy(&model, &calib, 100, &mut exec).unwrap();
    let m = mitigate::for_eval(
        &model,
        Some(Mitigation::Auto),
        None,
        &mut exec,
        Some(&mut twin),
        Some(auto(true)),
    )
    .unwrap();
    assert_eq!(m.bypass, vec![[1, 2]]);
    assert_eq!(exec.plain_rotations(), m.rotations);
    let c = m.triage.as_ref().and_then(|t| t.rotations.as_ref()).expect("rotations chosen");
    assert_eq!(c.layers.len(), model.layers().len());
    assert_eq!(c.rotations(), m.rotations);
    let mut prev = loss_plain;
    for l in &c.layers {
        // Each layer starts where the one before ended, and never worsens it.
        assert_eq!(l.loss_start, prev, "{l:?}");
        assert!(l.loss <= l.loss_start && l.measured == mitigate::ROTATION_CANDIDATES, "{l:?}");
        prev = l.loss;
    }
    // The measurement on the twin is what the chip gives under the choice.
    let (loss_rot, _) = mitigate::loss_and_accuracy(&model, &calib, 100, &mut exec).unwrap();
    assert_eq!(loss_rot, prev);
    // none drops both the bypass list and the rotations.
    mitigate::for_eval(&model, Some(Mitigation::None), None, &mut exec, None, None).unwrap();
    assert!(exec.bypass().is_empty() && exec.plain_rotations().is_empty());
}

#[test]
fn auto_retraining_triages_then_retrains_and_resumes_identically() {
    let _g = lock();
    let f = data(400, 200);
    let map = one_bad_one_harmless();
    // 8 steps an epoch; a FAT burst of 5 steps, triage before step 6.
    let c = RetrainConfig { triage_epochs: 0.625, ..cfg(Mitigation::Auto) };
    let dir = tempfile::tempdir().unwrap();
    let (full, full_exp, full_held) =
        run_retrain(&f, &map, c.clone(), Some(&dir.path().join("full.ckpt")), false);
    let t = full.triage.as_ref().expect("auto records its triage");
    assert_eq!(t.at_step, Some(5));
    assert_eq!(full.bypass, vec![[1, 2]]);
    assert!(full.pruned_weights > 0);
    assert!(full.accuracy_after > full.accuracy_before + 0.2, "{full:?}");
    // Interrupted after 4 steps (resume at the checkpoint of step 3, before
    // the triage), then 4 more (resume at 6, after it), then to the end.
    let ck = dir.path().join("cut.ckpt");
    let cut = |stop| RetrainConfig { stop_after_steps: stop, ..c.clone() };
    let (a, _, _) = run_retrain(&f, &map, cut(Some(4)), Some(&ck), true);
    assert!(a.triage.is_none());
    let (b, _, _) = run_retrain(&f, &map, cut(Some(4)), Some(&ck), true);
    assert_eq!(b.resumed_at_step, Some(3));
    assert_eq!(b.triage, full.triage);
    let (z, z_exp, z_held) = run_retrain(&f, &map, cut(None), Some(&ck), true);
    assert_eq!(z.resumed_at_step, Some(6));
    assert_eq!(z.triage, full.triage);
    assert_eq!((z.bypass.clone(), z.pruned_weights), (full.bypass.clone(), full.pruned_weights));
    assert_eq!(z_exp, full_exp);
    assert_eq!(z_held, full_held);
    for (x, y) in full.history.iter().zip(&z.history) {
        assert_eq!((x.train_loss, x.test_accuracy), (y.train_loss, y.test_accuracy));
    }
    assert_eq!(z.rotations, full.rotations);
    // The pruned weights are those the chosen rotations put on bypassed PEs.
    for l in &full_exp.layers {
        let layout = MatrixLayout::new(0, l.k, l.n, 4, 4).unwrap();
        let rot = full.rotations.get(l.index).copied().unwrap_or([0, 0]);
        for ki in 0..l.k {
            for ni in 0..l.n {
                let [r, c] = pe_from_address(&layout, ki, ni);
                let pe = [(r + rot[0] as usize) % 4, (c + rot[1] as usize) % 4];
                if full.bypass.contains(&pe) {
                    assert_eq!(l.weights[ki * l.n + ni], 0, "{} W[{ki}][{ni}] at {rot:?}", l.name);
                }
            }
        }
    }
    // Resuming a finished run changes nothing (the chosen candidate is
    // already in place, not chosen again).
    let (again, again_exp, again_held) = run_retrain(&f, &map, cut(None), Some(&ck), true);
    assert_eq!(again.resumed_at_step, Some(16));
    assert_eq!((again.accuracy_after, &again.selection), (full.accuracy_after, &full.selection));
    assert_eq!((again_exp, again_held), (full_exp.clone(), full_held.clone()));
    // The selection: the triaged start (step 5), the end or their blend,
    // the most accurate (on ties the end, then the blend), the same after
    // the interruptions.
    let sel = full.selection.as_ref().expect("auto selects");
    let steps: Vec<(usize, f64)> = sel.candidates.iter().map(|c| (c.steps, c.blend)).collect();
    assert_eq!(steps, [(5, 0.0), (16, 0.0), (16, retrain::BLEND)]);
    let [start, end, blend] = [0, 1, 2].map(|i| sel.candidates[i].accuracy);
    let want = if end >= start && end >= blend {
        (16, 0.0)
    } else if blend >= start {
        (16, retrain::BLEND)
    } else {
        (5, 0.0)
    };
    assert_eq!((sel.selected_steps, sel.selected_blend), want, "{sel:?}");
    assert_eq!(z.selection, full.selection);
    assert_eq!(z.accuracy_after, full.accuracy_after);
    // The checkpoint records the rotations; evaluated as recorded, it gives
    // the run's accuracy.
    let (_vs, model, meta) = checkpoint::load(&dir.path().join("full.ckpt")).unwrap();
    let rec = meta.mitigation.expect("recorded");
    assert_eq!((&rec.bypass, &rec.rotations), (&full.bypass, &full.rotations));
    let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
    exec.install_model(&model).unwrap();
    let m = mitigate::for_eval(&model, None, Some(&rec), &mut exec, None, None).unwrap();
    assert_eq!(m.rotations, full.rotations);
    assert_eq!(
        eval::accuracy(&model, &f.test, 100, &mut exec, |_| {}).unwrap(),
        full.accuracy_after
    );
    // A different mitigation refuses to resume.
    let (mut vs, model) = pretrained(&f, 5);
    let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
    let job = RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: &f.train,
        test: &f.test,
        config: cfg(Mitigation::Fap),
        checkpoint: Some(&ck),
        resume: true,
    };
    let e = retrain::retrain(job, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("cannot resume"), "{e}");
}

#[test]
fn auto_keeps_the_triaged_start_when_retraining_hurts() {
    let _g = lock();
    let f = data(400, 200);
    let map = one_bad_one_harmless();
    // A learning rate that wrecks the model: every epoch is worse than the
    // triaged start, so the run must end with the start's weights.
    let c = RetrainConfig { lr: 3.0, epochs: 1, ..cfg(Mitigation::Auto) };
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("auto.ckpt");
    let (r, exp, held) = run_retrain(&f, &map, c, Some(&ck), false);
    let sel = r.selection.as_ref().expect("auto selects");
    assert_eq!(sel.candidates.len(), 3, "{sel:?}");
    assert!(sel.candidates[1].accuracy < sel.candidates[0].accuracy, "{sel:?}");
    assert!(sel.candidates[2].accuracy < sel.candidates[0].accuracy, "{sel:?}");
    assert_eq!((sel.selected_steps, sel.selected_blend), (0, 0.0));
    assert!(r.accuracy_after > r.history[0].test_accuracy, "{r:?}");
    // The start's weights: the pretrained model on the chip with the triage's
    // bypass list (a bypassed PE's pruned weights contribute nothing there).
    let (_vs, model) = pretrained(&f, 5);
    let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
    exec.install_model(&model).unwrap();
    exec.set_bypass(&r.bypass).unwrap();
    exec.set_plain_rotations(&r.rotations);
    let want = eval::accuracy(&model, &f.test, 100, &mut exec, |_| {}).unwrap();
    assert_eq!(r.accuracy_after, want);
    // What the checkpoint holds is what the run ended with.
    let (_vs, loaded, meta) = checkpoint::load(&ck).unwrap();
    assert_eq!(loaded.export(), exp);
    assert_eq!(meta.mitigation.unwrap().bypass, r.bypass);
    let mut exec = DeviceMatmul::open("model:4x4", Some(&map)).unwrap();
    exec.install_model(&loaded).unwrap();
    let reheld: Vec<Vec<i8>> =
        (0..loaded.layers().len()).map(|i| exec.held(i).unwrap().to_vec()).collect();
    assert_eq!(reheld, held);
}

#[test]
fn fap_resume_is_identical() {
    let _g = lock();
    let f = data(400, 200);
    let map = harmful_map();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(Mitigation::Fap);
    let (full, full_exp, _) = run_retrain(&f, &map, c.clone(), Some(&dir.path().join("f")), false);
    let ck = dir.path().join("cut.ckpt");
    let (_, _, _) = run_retrain(
        &f,
        &map,
        RetrainConfig { stop_after_steps: Some(10), ..c.clone() },
        Some(&ck),
        true,
    );
    let (z, z_exp, _) = run_retrain(&f, &map, c, Some(&ck), true);
    assert_eq!(z.resumed_at_step, Some(9));
    assert_eq!(z_exp, full_exp);
    assert_eq!((z.bypass, z.pruned_weights), (full.bypass, full.pruned_weights));
    assert_eq!(z.accuracy_after, full.accuracy_after);
}

#[test]
fn none_on_retrain_and_bypass_with_tmr_are_refused() {
    let _g = lock();
    let f = data(64, 32);
    let (mut vs, model) = pretrained(&f, 5);
    let mut exec = DeviceMatmul::open("model:4x4", Some(&harmful_map())).unwrap();
    let e = retrain::retrain(job(&model, &f, &mut vs, &mut exec, Mitigation::None), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("mitigation `none`"), "{e}");
    for m in [Mitigation::Fap, Mitigation::Auto] {
        let e = experiment::retrain_on_device(
            job(&model, &f, &mut vs, &mut exec, m),
            Some(100.0),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("--tmr-budget"), "{m}: {e}");
    }
    // A TMR layer on the executor and a bypass list exclude each other too.
    exec.set_mode(0, LayerMode::Tmr);
    let e = retrain::retrain(job(&model, &f, &mut vs, &mut exec, Mitigation::Fap), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("rotation"), "{e}");
    exec.set_mode(0, LayerMode::Device);
    exec.set_bypass(&[[0, 1]]).unwrap();
    let e = experiment::evaluate_on_device(&model, &f.test, 32, &mut exec, Some(50.0), |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("bypassed PE"), "{e}");
    // Without TMR the same runs.
    let r = experiment::evaluate_on_device(&model, &f.test, 32, &mut exec, None, |_| {}).unwrap();
    assert_eq!(r.samples, 32);
}

fn job<'a>(
    model: &'a Model,
    f: &'a Fixture,
    vs: &'a mut nn::VarStore,
    exec: &'a mut DeviceMatmul,
    m: Mitigation,
) -> RetrainRun<'a> {
    RetrainRun {
        model,
        vs,
        exec,
        train: &f.train,
        test: &f.test,
        config: cfg(m),
        checkpoint: None,
        resume: false,
    }
}
