//! The jobs behind `faultloop eval`, `retrain` and `demo`, built from the
//! other modules: evaluation on a device with optional partial TMR
//! ([`evaluate_on_device`]), retraining with optional TMR
//! ([`retrain_on_device`]), the demo's search for a harmful fault rate
//! ([`find_harmful_rate`]) and its accuracy chart ([`retrain_chart`]).
use std::time::Instant;

use faultloop_proto::faultmap::{FaultMap, RandomOptions};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::device::{DeviceMatmul, DeviceUsage};
use crate::error::Result;
use crate::eval::{self, EvalProgress};
use crate::mitigate::{self, Mitigation};
use crate::model::Model;
use crate::plot::{self, Series};
use crate::retrain::{self, Progress, RetrainReport, RetrainRun};
use crate::tmr::{self, Protection};

/// What [`evaluate_on_device`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEval {
    pub accuracy: f64,
    pub samples: usize,
    /// Wall seconds of the evaluation (not of the TMR analysis).
    pub seconds: f64,
    /// Bytes and device MACs of the evaluation alone.
    pub usage: DeviceUsage,
    /// The layers put under TMR first, if a budget was given.
    pub protection: Option<Protection>,
}

/// Install `model` on `exec`, protect it with partial TMR under
/// `tmr_budget` (% extra MACs) if given, and measure its accuracy on `data`
/// (`on_batch` sees the running count) with the traffic and MACs it took.
pub fn evaluate_on_device(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
    tmr_budget: Option<f64>,
    on_batch: impl FnMut(&EvalProgress),
) -> Result<DeviceEval> {
    if tmr_budget.is_some() {
        mitigate::tmr_conflict(exec.bypass())?;
    }
    exec.install_model(model)?;
    let protection = match tmr_budget {
        Some(b) => Some(tmr::protect(model, data, batch, exec, b)?),
        None => None,
    };
    exec.reset_macs();
    let start = exec.usage();
    let t = Instant::now();
    let accuracy = eval::accuracy(model, data, batch, exec, on_batch)?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(DeviceEval {
        accuracy,
        samples: data.len(),
        seconds,
        usage: exec.usage() - start,
        protection,
    })
}

/// [`retrain::retrain`], after protecting the model's most vulnerable layers
/// with partial TMR under `tmr_budget` (% extra MACs; measured on the test
/// subset with the run's evaluation batch) when given.
pub fn retrain_on_device(
    run: RetrainRun<'_>,
    tmr_budget: Option<f64>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Option<Protection>, RetrainReport)> {
    retrain_on_device_with(run, tmr_budget, None, progress)
}

/// [`retrain_on_device`] with a fast twin for the `auto` triage
/// ([`retrain::retrain_with`]). Bypass (a mitigated checkpoint's list,
/// `fap`, `auto`) and TMR exclude each other ([`mitigate::tmr_conflict`]).
pub fn retrain_on_device_with(
    run: RetrainRun<'_>,
    tmr_budget: Option<f64>,
    twin: Option<&mut DeviceMatmul>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Option<Protection>, RetrainReport)> {
    if tmr_budget.is_some() {
        mitigate::tmr_conflict(run.exec.bypass())?;
        if matches!(run.config.mitigation, Mitigation::Fap | Mitigation::Auto) {
            return Err(crate::Error::Config(format!(
                "--mitigate {} with --tmr-budget: bypass and pruning follow the layout at \
                 rotation (0, 0), TMR runs layers under other rotations; use one or the other",
                run.config.mitigation
            )));
        }
    }
    let protection = match tmr_budget {
        Some(b) => {
            run.exec.install_model(run.model)?;
            Some(tmr::protect(run.model, run.test, run.config.eval_batch, run.exec, b)?)
        }
        None => None,
    };
    Ok((protection, retrain::retrain_with(run, twin, progress)?))
}

/// Fault rates the demo tries in order (fixed seed); fine steps at the low
/// end because one stuck high psum bit can already cost most of the accuracy.
pub const DEFAULT_SCAN_RATES: &[f64] = &[
    0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.08, 0.10, 0.15, 0.20,
    0.30,
];

/// The random stuck-at map the demo uses for `rate` and `seed` (every site,
/// both polarities, no transient flips).
pub fn random_fault_map(rows: usize, cols: usize, rate: f64, seed: u64) -> Result<FaultMap> {
    Ok(FaultMap::random(rows, cols, rate, seed, &RandomOptions::default())?)
}

/// What [`find_harmful_rate`] looks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RateScan<'a> {
    /// Rates to try, in order.
    pub rates: &'a [f64],
    /// Seed of every map ([`random_fault_map`]).
    pub seed: u64,
    /// The fault-free accuracy the loss is measured against.
    pub clean_accuracy: f64,
    /// The loss (accuracy points, 0..100) a rate must cost.
    pub min_loss_points: f64,
    /// Evaluation batch size.
    pub batch: usize,
}

/// One scanned rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanPoint {
    pub rate: f64,
    pub faulty_pes: usize,
    pub accuracy: f64,
}

/// The rates [`find_harmful_rate`] tried, and the one it found.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanOutcome {
    pub points: Vec<ScanPoint>,
    /// The first rate that cost at least the minimum loss; `None` if none did.
    pub rate: Option<f64>,
}

/// Install `model` on `twin` (a device giving the same results as the one
/// the experiment runs on, but fast: `model:RxC` for `sim:RxC`) and evaluate
/// `test` under the fault map of each rate in turn, until one costs at least
/// `scan.min_loss_points`. `on_point` sees each rate as it is measured.
pub fn find_harmful_rate(
    model: &Model,
    test: &Dataset,
    twin: &mut DeviceMatmul,
    scan: &RateScan<'_>,
    mut on_point: impl FnMut(&ScanPoint),
) -> Result<ScanOutcome> {
    twin.install_model(model)?;
    let (rows, cols) = (twin.info().rows, twin.info().cols);
    let mut points = Vec::new();
    for &rate in scan.rates {
        let map = random_fault_map(rows, cols, rate, scan.seed)?;
        twin.set_faults(Some(&map))?;
        let accuracy = eval::accuracy(model, test, scan.batch, twin, |_| {})?;
        let point = ScanPoint { rate, faulty_pes: map.faulty_pes(), accuracy };
        on_point(&point);
        points.push(point);
        if 100.0 * (scan.clean_accuracy - accuracy) >= scan.min_loss_points {
            return Ok(ScanOutcome { points, rate: Some(rate) });
        }
    }
    Ok(ScanOutcome { points, rate: None })
}

/// The demo's SVG chart: test accuracy per retraining epoch against the
/// fault-free (`clean`) and faulty, not retrained, levels.
pub fn retrain_chart(device: &str, fault_rate: f64, clean: f64, r: &RetrainReport) -> String {
    let e = r.history.len() as f64;
    let faulty = r.accuracy_before;
    let mut pts = vec![(0.0, faulty)];
    pts.extend(r.history.iter().map(|h| (h.epoch as f64, h.test_accuracy)));
    plot::line_chart(
        &format!("HIL retraining on {device} ({:.0} % faulty PEs)", 100.0 * fault_rate),
        "retraining epoch",
        "test accuracy (%)",
        &[
            Series::level("fault-free", "#2a8a2a", clean, 0.0, e.max(1.0)),
            Series::level("faulty, not retrained", "#c0392b", faulty, 0.0, e.max(1.0)),
            Series::new("retrained on the faulty device", "#1f5fbf", pts),
        ],
        true,
    )
}
