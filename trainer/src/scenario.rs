//! The main job's two scenarios (`faultloop demo`; docs/training.md,
//! "The demo's two scenarios"):
//!
//! * [`permanent`]: a chip with permanent (stuck-at) faults, its map found
//!   by characterisation. Every mitigation is measured on the chip:
//!   `none`, `bypass` (bypass the faulty PEs, no retraining), partial TMR
//!   at each budget, and `fap`, `fat` and `auto` after the same retraining.
//!   The cheapest mitigation that reaches the accuracy floor is chosen
//!   ([`choose`]), written as a deployable checkpoint and measured again
//!   from that checkpoint.
//! * [`soft_errors`]: a chip with soft errors (SEU) and no permanent fault,
//!   where nothing can be bypassed: unprotected, partial TMR per budget,
//!   hardware-in-the-loop retraining, and retraining plus TMR; every figure
//!   a distribution ([`Stat`]) over SEU seeds that neither the retraining
//!   nor the TMR layer choice saw.
//!
//! Cost, for the choice: extra MACs per inference first (TMR is paid on
//! every inference of the chip's life), then retraining sample-steps (paid
//! once). Among equally cheap mitigations the most accurate wins.
use std::path::{Path, PathBuf};
use std::time::Instant;

use faultloop_proto::faultmap::{FaultMap, Seu};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::data::Dataset;
use crate::device::{DeviceMatmul, LayerMode};
use crate::error::{Error, Result};
use crate::eval::{self, EvalProgress};
use crate::mitigate::{self, Mitigation, MitigationRecord};
use crate::model::Model;
use crate::retrain::{self, Progress, RetrainConfig, RetrainEpoch, RetrainRun};
use crate::tmr::{self, Vulnerability};

/// A figure over several seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// One value per seed, in seed order.
    pub values: Vec<f64>,
}

impl Stat {
    /// The mean, minimum and maximum of `values` (not empty).
    pub fn of(values: Vec<f64>) -> Stat {
        let n = values.len().max(1) as f64;
        Stat {
            mean: values.iter().sum::<f64>() / n,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            values,
        }
    }
}

/// What a scenario is doing, for progress bars and logs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A new measurement starts.
    Phase(&'a str),
    /// An evaluation's running count.
    Eval(&'a EvalProgress),
    /// A retraining run's progress.
    Retrain(Progress<'a>),
}

/// The `clean` reference: every layer on the host's integer path, which is
/// a fault-free device bit for bit (and the only fault-free device a chip
/// with permanent defects has). Leaves every layer on the device.
pub fn reference_accuracy(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
    on_batch: impl FnMut(&EvalProgress),
) -> Result<f64> {
    let n = model.layers().len();
    modes(exec, n, &[], LayerMode::Host);
    let a = eval::accuracy(model, data, batch, exec, on_batch);
    modes(exec, n, &[], LayerMode::Device);
    a
}

/// Every layer in `rest`, those in `set` under TMR.
fn modes(exec: &mut DeviceMatmul, n: usize, set: &[usize], rest: LayerMode) {
    tmr::set_modes(exec, n, |i| if set.contains(&i) { LayerMode::Tmr } else { rest });
}

/// Back to default rotations after a TMR analysis installed calibrated ones.
fn default_rotations(exec: &mut DeviceMatmul, n: usize) {
    for i in 0..n {
        exec.set_layer_rotations(i, None);
    }
}

/// One mitigation's measurement on the chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// `none`, `bypass`, `tmr<B>` (budget B %), `fap`, `fat` or `auto`.
    pub name: String,
    pub accuracy: f64,
    /// Extra MACs per inference, % of an unprotected one.
    pub extra_macs_pct: f64,
    /// Training samples processed by retraining (0: none).
    pub retrain_samples: u64,
    /// PEs bypassed.
    pub bypassed: Vec<[usize; 2]>,
    /// Layers under TMR.
    pub protected: Vec<String>,
    /// Wall seconds of this mitigation (analysis, retraining, evaluation;
    /// for `tmr<B>`, the analysis and the whole budget table).
    pub seconds: f64,
    /// Accuracy per retraining epoch (retrained mitigations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RetrainEpoch>,
    /// The retrained checkpoint (retrained mitigations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
}

/// What [`choose`] deployed: enough to run the chip as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub mitigation: String,
    /// The checkpoint to run (its mitigation record holds the bypass list).
    pub checkpoint: PathBuf,
    pub bypass: Vec<[usize; 2]>,
    /// Layers under TMR, with their calibrated rotations.
    pub tmr_layers: Vec<usize>,
    pub tmr_rotations: Vec<[(u8, u8); 3]>,
    /// Re-measured from the deployed checkpoint on the chip.
    pub accuracy: f64,
}

/// The permanent-fault scenario ([`permanent`]).
pub struct PermanentPlan<'a> {
    /// The pretrained model (loaded afresh for every mitigation).
    pub checkpoint: &'a Path,
    /// The chip's map as characterisation found it.
    pub map: &'a FaultMap,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    /// Training images the TMR analysis and the `auto` triage measure on
    /// (none of them in the test set).
    pub calib: &'a Dataset,
    /// The one retraining `fap`, `fat` and `auto` all get (its `mitigation`
    /// is set per run).
    pub config: RetrainConfig,
    /// TMR budgets tried, % extra MACs.
    pub tmr_budgets: &'a [f64],
    /// The floor: at most this many points below clean.
    pub floor_points: f64,
    /// Retrained and deployed checkpoints go here.
    pub out_dir: &'a Path,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermanentReport {
    pub clean_accuracy: f64,
    pub faulty_accuracy: f64,
    /// `clean_accuracy - floor_points / 100`.
    pub floor: f64,
    pub faulty_pes: usize,
    pub mitigations: Vec<Measured>,
    pub chosen: String,
    /// Whether the chosen mitigation reaches the floor (else: none does, and
    /// the most accurate was chosen).
    pub chosen_reaches_floor: bool,
    pub deployed: Deployment,
    /// The TMR analysis (recovery per layer) on the calibration images.
    pub vulnerability: Vulnerability,
}

/// Measure every mitigation of `plan.map`'s chip on `exec` (the chip, with
/// `plan.map` set as its fault map so that `fap` and `auto` know the faulty
/// PEs), choose and deploy. `twin` (a fault-free fast device of the same
/// size, e.g. `model:RxC`) runs the `auto` triage, which needs a PE it can
/// make healthy; without one the triage runs on `exec`.
pub fn permanent(
    plan: &PermanentPlan<'_>,
    exec: &mut DeviceMatmul,
    mut twin: Option<&mut DeviceMatmul>,
    ev: &mut dyn FnMut(Event),
) -> Result<PermanentReport> {
    let batch = plan.config.eval_batch;
    let faulty = mitigate::faulty_pes(plan.map);
    std::fs::create_dir_all(plan.out_dir).map_err(|e| Error::io(plan.out_dir, e))?;
    let (vs, model, _) = checkpoint::load(plan.checkpoint)?;
    let n = model.layers().len();
    exec.set_faults(Some(plan.map))?;
    exec.set_bypass(&[])?;
    exec.install_model(&model)?;
    ev(Event::Phase("clean (host reference)"));
    let clean = reference_accuracy(&model, plan.test, batch, exec, |p| ev(Event::Eval(p)))?;
    let mut out = Vec::new();

    let measure = |name: &str,
                   bypass: &[[usize; 2]],
                   exec: &mut DeviceMatmul,
                   ev: &mut dyn FnMut(Event)|
     -> Result<Measured> {
        ev(Event::Phase(name));
        let t = Instant::now();
        exec.set_bypass(bypass)?;
        let accuracy = eval::accuracy(&model, plan.test, batch, exec, |p| ev(Event::Eval(p)))?;
        exec.set_bypass(&[])?;
        Ok(Measured {
            name: name.to_string(),
            accuracy,
            extra_macs_pct: 0.0,
            retrain_samples: 0,
            bypassed: bypass.to_vec(),
            protected: Vec::new(),
            seconds: t.elapsed().as_secs_f64(),
            history: Vec::new(),
            checkpoint: None,
        })
    };
    let none = measure("none", &[], exec, ev)?;
    let faulty_accuracy = none.accuracy;
    out.push(none);
    out.push(measure("bypass", &faulty, exec, ev)?);

    // Partial TMR: one analysis (recovery per layer, calibrated rotations)
    // on the calibration images, then each budget's choice on the test set.
    ev(Event::Phase("tmr analysis"));
    let t = Instant::now();
    let vulnerability = tmr::analyze(&model, plan.calib, batch, exec)?;
    let analysis_seconds = t.elapsed().as_secs_f64();
    ev(Event::Phase("tmr budgets"));
    let t = Instant::now();
    let table =
        tmr::budget_table(&model, plan.test, batch, exec, &vulnerability, plan.tmr_budgets)?;
    let seconds = analysis_seconds + t.elapsed().as_secs_f64();
    for row in table {
        out.push(Measured {
            name: format!("tmr{}", row.budget_pct),
            accuracy: row.accuracy,
            extra_macs_pct: row.extra_macs_pct,
            retrain_samples: 0,
            bypassed: Vec::new(),
            protected: row.protected,
            seconds,
            history: Vec::new(),
            checkpoint: None,
        });
    }
    let calibrated: Vec<[(u8, u8); 3]> =
        vulnerability.calibration.iter().map(|c| c.rotations).collect();
    default_rotations(exec, n);

    // The same retraining for each of fap, fat and auto, from the same start.
    for m in [Mitigation::Fap, Mitigation::Fat, Mitigation::Auto] {
        ev(Event::Phase(m.name()));
        let t = Instant::now();
        let (mut vs_m, model_m, _) = checkpoint::load(plan.checkpoint)?;
        exec.set_bypass(&[])?;
        let dir = plan.out_dir.join(format!("{m}.ckpt"));
        let _ = std::fs::remove_dir_all(&dir);
        let config = RetrainConfig { mitigation: m, checkpoint_every: 0, ..plan.config.clone() };
        let run = RetrainRun {
            model: &model_m,
            vs: &mut vs_m,
            exec,
            train: plan.train,
            test: plan.test,
            config,
            checkpoint: Some(&dir),
            resume: false,
        };
        let r = retrain::retrain_with(run, twin.as_deref_mut(), &mut |p| ev(Event::Retrain(p)))?;
        exec.set_bypass(&[])?;
        out.push(Measured {
            name: m.name().to_string(),
            accuracy: r.accuracy_after,
            extra_macs_pct: 0.0,
            retrain_samples: r.config.samples_after(plan.train.len(), r.totals.steps),
            bypassed: r.bypass.clone(),
            protected: Vec::new(),
            seconds: t.elapsed().as_secs_f64(),
            history: r.history.clone(),
            checkpoint: Some(dir),
        });
    }
    exec.install_model(&model)?;

    let floor = clean - plan.floor_points / 100.0;
    let (pick, reaches) = choose(&out, floor);
    let chosen = out[pick].clone();
    ev(Event::Phase("deployed (re-measured from its checkpoint)"));
    let deployed = deploy(&chosen, &vs, &model, &vulnerability, &calibrated, plan, exec, ev)?;
    Ok(PermanentReport {
        clean_accuracy: clean,
        faulty_accuracy,
        floor,
        faulty_pes: faulty.len(),
        mitigations: out,
        chosen: chosen.name,
        chosen_reaches_floor: reaches,
        deployed,
        vulnerability,
    })
}

/// The index of the cheapest measurement at or above `floor` (cost: extra
/// MACs per inference, then retraining samples; among equal costs the most
/// accurate, then the first), and whether it reaches the floor; when none
/// does, the most accurate.
pub fn choose(ms: &[Measured], floor: f64) -> (usize, bool) {
    let cost = |m: &Measured| (m.extra_macs_pct, m.retrain_samples);
    let better = |a: &Measured, b: &Measured| a.accuracy > b.accuracy;
    let mut best: Option<usize> = None;
    for (i, m) in ms.iter().enumerate() {
        if m.accuracy + 1e-12 < floor {
            continue;
        }
        best = match best {
            None => Some(i),
            Some(j) => {
                let (c, cj) = (cost(m), cost(&ms[j]));
                let cheaper = c.0 < cj.0 - 1e-9 || (c.0 <= cj.0 + 1e-9 && c.1 < cj.1);
                let same = (c.0 - cj.0).abs() <= 1e-9 && c.1 == cj.1;
                if cheaper || (same && better(m, &ms[j])) {
                    Some(i)
                } else {
                    Some(j)
                }
            }
        };
    }
    match best {
        Some(i) => (i, true),
        None => {
            let mut j = 0;
            for (i, m) in ms.iter().enumerate() {
                if better(m, &ms[j]) {
                    j = i;
                }
            }
            (j, false)
        }
    }
}

/// Write `chosen` as a checkpoint under `plan.out_dir/deployed.ckpt` (with
/// its bypass list as the mitigation record) and measure it again from
/// there, as `faultloop eval` would run it.
#[allow(clippy::too_many_arguments)]
fn deploy(
    chosen: &Measured,
    vs: &tch::nn::VarStore,
    model: &Model,
    vulnerability: &Vulnerability,
    calibrated: &[[(u8, u8); 3]],
    plan: &PermanentPlan<'_>,
    exec: &mut DeviceMatmul,
    ev: &mut dyn FnMut(Event),
) -> Result<Deployment> {
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    let dir = plan.out_dir.join("deployed.ckpt");
    let _ = std::fs::remove_dir_all(&dir);
    let info = serde_json::json!({ "deployed_mitigation": chosen.name });
    match &chosen.checkpoint {
        Some(src) => {
            let (vs_c, model_c, meta) = checkpoint::load(src)?;
            checkpoint::save_with(&dir, &vs_c, &model_c, info, meta.mitigation.as_ref())?;
        }
        None => {
            let record = (!chosen.bypassed.is_empty()).then(|| MitigationRecord {
                mitigation: Mitigation::Fap,
                array: [rows, cols],
                bypass: chosen.bypassed.clone(),
                rotations: Vec::new(),
            });
            checkpoint::save_with(&dir, vs, model, info, record.as_ref())?;
        }
    }
    // Run it as eval does: the recorded bypass list, the TMR layers with
    // their calibrated rotations.
    let (_vs_d, model_d, meta) = checkpoint::load(&dir)?;
    let n = model_d.layers().len();
    exec.install_model(&model_d)?;
    let m = mitigate::for_eval(&model_d, None, meta.mitigation.as_ref(), exec, None, None)?;
    let tmr_layers: Vec<usize> = vulnerability
        .layers
        .iter()
        .filter(|l| chosen.protected.contains(&l.name))
        .map(|l| l.layer)
        .collect();
    let mut tmr_rotations = Vec::new();
    for &i in &tmr_layers {
        let r = calibrated.get(i).copied();
        exec.set_layer_rotations(i, r);
        tmr_rotations.extend(r);
    }
    modes(exec, n, &tmr_layers, LayerMode::Device);
    let accuracy =
        eval::accuracy(&model_d, plan.test, plan.config.eval_batch, exec, |p| ev(Event::Eval(p)))?;
    modes(exec, n, &[], LayerMode::Device);
    default_rotations(exec, n);
    exec.set_bypass(&[])?;
    Ok(Deployment {
        mitigation: chosen.name.clone(),
        checkpoint: dir,
        bypass: m.bypass,
        tmr_layers,
        tmr_rotations,
        accuracy,
    })
}

/// The soft-error scenario ([`soft_errors`]).
pub struct SoftPlan<'a> {
    /// The pretrained model.
    pub checkpoint: &'a Path,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    /// Training images the TMR layer choice is measured on.
    pub calib: &'a Dataset,
    /// Flip probability per MAC.
    pub seu_rate: f64,
    /// SEU seed during retraining.
    pub train_seed: u32,
    /// SEU seed of the TMR analysis.
    pub calib_seed: u32,
    /// SEU seeds of the evaluations; none may be `train_seed` or `calib_seed`.
    pub eval_seeds: &'a [u32],
    /// TMR budgets, % extra MACs (0 = unprotected).
    pub budgets: &'a [f64],
    /// The hardware-in-the-loop retraining (`fat`).
    pub config: RetrainConfig,
    /// The retrained checkpoint goes here (`seu-retrained.ckpt`).
    pub out_dir: &'a Path,
}

/// One budget's choice and its accuracy over the evaluation seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TmrPoint {
    pub budget_pct: f64,
    pub protected: Vec<String>,
    /// Extra MACs actually spent (the performance penalty), %.
    pub extra_macs_pct: f64,
    pub accuracy: Stat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftReport {
    pub seu_rate: f64,
    pub clean_accuracy: f64,
    pub unprotected: Stat,
    pub tmr: Vec<TmrPoint>,
    pub retrained: Stat,
    pub retrained_tmr: Vec<TmrPoint>,
    pub train_seed: u32,
    pub calib_seed: u32,
    pub eval_seeds: Vec<u32>,
    /// Accuracy per retraining epoch (under the training seed's flips).
    pub history: Vec<RetrainEpoch>,
    pub retrain_seconds: f64,
    pub retrained_checkpoint: PathBuf,
    /// The TMR analyses (recovery per layer) before and after retraining.
    pub vulnerability: Vulnerability,
    pub retrained_vulnerability: Vulnerability,
}

/// A map with no stuck-at fault and soft errors at `rate`, seed `seed`.
pub fn seu_map(rows: usize, cols: usize, rate: f64, seed: u32) -> FaultMap {
    FaultMap { seu: Some(Seu { rate, seed }), ..FaultMap::empty(rows, cols) }
}

/// SEU rates per MAC the demo tries in order for a soft-error chip.
pub const SEU_SCAN_RATES: &[f64] = &[1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3];

/// The first of [`SEU_SCAN_RATES`] at which `model` (installed on `exec`)
/// loses at least `min_loss_points` against `clean` under SEU seed `seed`;
/// `on_point` sees each `(rate, accuracy)` tried. `None` if none does.
#[allow(clippy::too_many_arguments)] // the scan's inputs, as experiment::RateScan names them
pub fn find_seu_rate(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
    clean: f64,
    min_loss_points: f64,
    seed: u32,
    mut on_point: impl FnMut(f64, f64),
) -> Result<Option<f64>> {
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    let mut found = None;
    for &rate in SEU_SCAN_RATES {
        exec.set_faults(Some(&seu_map(rows, cols, rate, seed)))?;
        let a = eval::accuracy(model, data, batch, exec, |_| {})?;
        on_point(rate, a);
        if 100.0 * (clean - a) >= min_loss_points {
            found = Some(rate);
            break;
        }
    }
    exec.set_faults(None)?;
    Ok(found)
}

/// Accuracy of `model` with the layers of each budget's choice under TMR,
/// over every evaluation seed (SET_SEU per seed restarts the flip sequence,
/// so each figure is reproducible).
fn tmr_points(
    model: &Model,
    v: &Vulnerability,
    plan: &SoftPlan<'_>,
    label: &str,
    exec: &mut DeviceMatmul,
    ev: &mut dyn FnMut(Event),
) -> Result<(Stat, Vec<TmrPoint>)> {
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    let n = model.layers().len();
    let mut sets: Vec<Vec<usize>> = vec![Vec::new()];
    for &b in plan.budgets {
        let s = v.select(b);
        if !sets.contains(&s) {
            sets.push(s);
        }
    }
    let mut stats: Vec<Stat> = Vec::new();
    for set in &sets {
        let mut vals = Vec::new();
        for &seed in plan.eval_seeds {
            let names: Vec<&str> = set.iter().map(|&i| v.layers[i].name.as_str()).collect();
            let phase = format!("{label}, tmr [{}], seu seed {seed}", names.join(", "));
            ev(Event::Phase(&phase));
            exec.set_faults(Some(&seu_map(rows, cols, plan.seu_rate, seed)))?;
            modes(exec, n, set, LayerMode::Device);
            vals.push(eval::accuracy(model, plan.test, plan.config.eval_batch, exec, |p| {
                ev(Event::Eval(p))
            })?);
        }
        stats.push(Stat::of(vals));
    }
    modes(exec, n, &[], LayerMode::Device);
    let points = plan
        .budgets
        .iter()
        .map(|&b| {
            let s = v.select(b);
            let k = sets.iter().position(|x| *x == s).expect("every budget's set is measured");
            TmrPoint {
                budget_pct: b,
                protected: s.iter().map(|&i| v.layers[i].name.clone()).collect(),
                extra_macs_pct: v.cost_pct(&s),
                accuracy: stats[k].clone(),
            }
        })
        .collect();
    Ok((stats[0].clone(), points))
}

/// Run the soft-error scenario on `exec` (a device whose SEU the host sets:
/// `plan.seu_rate` at each seed).
pub fn soft_errors(
    plan: &SoftPlan<'_>,
    exec: &mut DeviceMatmul,
    ev: &mut dyn FnMut(Event),
) -> Result<SoftReport> {
    if plan.eval_seeds.is_empty() {
        return Err(Error::Config("soft errors: no evaluation SEU seeds".into()));
    }
    if let Some(s) = plan.eval_seeds.iter().find(|&&s| s == plan.train_seed || s == plan.calib_seed)
    {
        return Err(Error::Config(format!(
            "soft errors: evaluation SEU seed {s} is the training ({}) or TMR-analysis ({}) \
             seed; figures must come from flips neither saw",
            plan.train_seed, plan.calib_seed
        )));
    }
    std::fs::create_dir_all(plan.out_dir).map_err(|e| Error::io(plan.out_dir, e))?;
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    let batch = plan.config.eval_batch;
    let (mut vs, model, _) = checkpoint::load(plan.checkpoint)?;
    exec.set_bypass(&[])?;
    exec.install_model(&model)?;
    ev(Event::Phase("clean (host reference)"));
    let clean = reference_accuracy(&model, plan.test, batch, exec, |p| ev(Event::Eval(p)))?;

    let analyze = |model: &Model, exec: &mut DeviceMatmul, ev: &mut dyn FnMut(Event)| {
        ev(Event::Phase("tmr analysis (recovery per layer)"));
        exec.set_faults(Some(&seu_map(rows, cols, plan.seu_rate, plan.calib_seed)))?;
        tmr::analyze(model, plan.calib, batch, exec)
    };
    let vulnerability = analyze(&model, exec, ev)?;
    let (unprotected, tmr) = tmr_points(&model, &vulnerability, plan, "pretrained", exec, ev)?;

    ev(Event::Phase("retraining with the soft errors in the loop"));
    let t = Instant::now();
    exec.set_faults(Some(&seu_map(rows, cols, plan.seu_rate, plan.train_seed)))?;
    let dir = plan.out_dir.join("seu-retrained.ckpt");
    let _ = std::fs::remove_dir_all(&dir);
    let config =
        RetrainConfig { mitigation: Mitigation::Fat, checkpoint_every: 0, ..plan.config.clone() };
    let run = RetrainRun {
        model: &model,
        vs: &mut vs,
        exec,
        train: plan.train,
        test: plan.test,
        config,
        checkpoint: Some(&dir),
        resume: false,
    };
    let r = retrain::retrain(run, &mut |p| ev(Event::Retrain(p)))?;
    let retrain_seconds = t.elapsed().as_secs_f64();
    let retrained_vulnerability = analyze(&model, exec, ev)?;
    let (retrained, retrained_tmr) =
        tmr_points(&model, &retrained_vulnerability, plan, "retrained", exec, ev)?;
    exec.set_faults(None)?;
    Ok(SoftReport {
        seu_rate: plan.seu_rate,
        clean_accuracy: clean,
        unprotected,
        tmr,
        retrained,
        retrained_tmr,
        train_seed: plan.train_seed,
        calib_seed: plan.calib_seed,
        eval_seeds: plan.eval_seeds.to_vec(),
        history: r.history,
        retrain_seconds,
        retrained_checkpoint: dir,
        vulnerability,
        retrained_vulnerability,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, acc: f64, macs: f64, samples: u64) -> Measured {
        Measured {
            name: name.into(),
            accuracy: acc,
            extra_macs_pct: macs,
            retrain_samples: samples,
            bypassed: Vec::new(),
            protected: Vec::new(),
            seconds: 0.0,
            history: Vec::new(),
            checkpoint: None,
        }
    }

    #[test]
    fn choose_takes_the_cheapest_that_reaches_the_floor() {
        let ms = [
            m("none", 0.60, 0.0, 0),
            m("bypass", 0.86, 0.0, 0),
            m("tmr50", 0.89, 29.0, 0),
            m("fap", 0.885, 0.0, 8000),
            m("fat", 0.88, 0.0, 8000),
        ];
        // Bypass is free and reaches 0.85.
        assert_eq!(choose(&ms, 0.85), (1, true));
        // Above bypass: retraining (one-off) before TMR (every inference);
        // fap, the more accurate of the equally cheap retrainings.
        assert_eq!(choose(&ms, 0.87), (3, true));
        assert_eq!(choose(&ms, 0.887), (2, true));
        // Nothing reaches it: the most accurate.
        assert_eq!(choose(&ms, 0.95), (2, false));
    }

    #[test]
    fn stat_of_values() {
        let s = Stat::of(vec![0.5, 0.7, 0.6]);
        assert!((s.mean - 0.6).abs() < 1e-12);
        assert_eq!((s.min, s.max), (0.5, 0.7));
        assert_eq!(s.values.len(), 3);
    }
}
