//! Partial TMR (R2F): protect the layers that buy the most accuracy under a
//! budget of extra MACs.
//!
//! * A protected layer runs three times on the device with different tile
//!   rotations (ρr, ρc) — (0, 0), (⌊R/3⌋, ⌊C/3⌋), (⌊2R/3⌋, ⌊2C/3⌋) — so a
//!   faulty PE lands on a different logical row and column in each run, and
//!   the result is the bitwise majority `(x&y)|(y&z)|(x&z)` of the three int32
//!   results. A psum or weight fault corrupts one logical output column per
//!   run, a different one each time, so one faulty PE is voted out; an act
//!   fault corrupts every PE to its right and can survive the vote. (The
//!   mechanism, rotations and vote, is [`crate::vote`]; this module is the
//!   policy.)
//! * Fault-map-aware rotations ([`calibrate`]): the default rotations can
//!   make two faulty PEs (or one act fault, which corrupts its whole row to
//!   the right) hit the same output in two of the three runs, and the vote
//!   then fails. The host knows the chip, so per layer it probes candidate
//!   rotations on the device with the layer's real weights and random
//!   non-negative activations (what follows a ReLU or an image), keeps the
//!   cleanest, and picks the triple whose vote is wrong on the fewest outputs.
//! * Vulnerability analysis, two measurements per layer under the chip's
//!   actual faults and error rate: the accuracy with only layer `i` on the
//!   faulty device (every other layer on the host's integer reference, which
//!   equals a fault-free device), `loss_i = clean - that`; and the accuracy
//!   with every layer on the faulty device and only layer `i` under TMR,
//!   `recovery_i = that - faulty`. The stand-alone loss says how much a
//!   layer suffers; it does not say what protecting it wins back (an act
//!   fault survives the vote, a layer's errors may be masked downstream), so
//!   the selection ranks by measured recovery.
//! * Selection: cost of protecting layer `i` = 2 × its MACs (two extra runs),
//!   as a percentage of the model's MACs per inference. Among all subsets of
//!   layers whose cost fits the budget (exhaustive up to 16 layers, greedy by
//!   recovery per MAC beyond), pick the one with the largest summed recovery,
//!   i.e. the most accuracy bought; ties go to the cheaper set. Summing
//!   per-layer recoveries assumes they add; the budget table then measures
//!   each chosen set for real.
//! * Transient flips (SEU): each of the three runs draws its own flips, so
//!   the vote removes them whatever the rotations; with no stuck-at fault on
//!   the chip the rotations are left at their defaults (no calibration).
//! * [`protect`] does analysis and selection for one budget and puts the
//!   chosen layers under TMR ([`Protection`] says what it chose and why).
//! * [`budget_table`] measures the real accuracy of each budget's choice.
use faultloop_proto::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::device::{DeviceMatmul, LayerMode};
use crate::error::{ExecutorError, Result, ShapeError};
use crate::eval;
use crate::exec::matmul_i8_ref;
use crate::model::Model;

/// Calibrated TMR rotations of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub layer: usize,
    pub rotations: [(u8, u8); 3],
    /// Probe outputs the vote still gets wrong with these rotations.
    pub wrong_outputs: usize,
    /// ... and with the default rotations.
    pub wrong_outputs_default: usize,
    pub probe_outputs: usize,
}

/// Choose `layer`'s TMR rotations on `exec`'s device (see the module docs):
/// probe up to 64 rotations (every one on arrays up to 64 PEs, else an 8×8
/// grid of offsets) with `probe_rows` random activation rows, keep the 20
/// with the fewest wrong outputs (plus the defaults), and take the triple
/// whose vote is wrong least often (ties: the earliest).
pub fn calibrate(
    exec: &mut DeviceMatmul,
    layer: usize,
    probe_rows: usize,
    seed: u64,
) -> std::result::Result<Calibration, ExecutorError> {
    let held = exec.held(layer).ok_or(ShapeError::NoWeights { layer })?.to_vec();
    let layout = exec.layout(layer).ok_or(ShapeError::NoWeights { layer })?;
    let (k, n, m) = (layout.k, layout.n, probe_rows.max(1));
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    let mut rng = Rng::new(seed ^ (layer as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let a: Vec<i8> =
        (0..m * k).map(|_| if rng.below(2) == 0 { 0 } else { rng.below(128) as i8 }).collect();
    let want = matmul_i8_ref(&a, &held, m, k, n);
    let (sr, sc) = if rows * cols <= 64 { (1, 1) } else { ((rows / 8).max(1), (cols / 8).max(1)) };
    let defaults = exec.rotations();
    let mut cands: Vec<(u8, u8)> = Vec::new();
    for r in (0..rows).step_by(sr) {
        for c in (0..cols).step_by(sc) {
            cands.push((r as u8, c as u8));
        }
    }
    for d in defaults {
        if !cands.contains(&d) {
            cands.push(d);
        }
    }
    let mut runs: Vec<((u8, u8), Vec<i32>, usize)> = Vec::with_capacity(cands.len());
    for rot in cands {
        let y = exec.matmul_rotated(layer, &a, m, rot)?;
        let wrong = y.iter().zip(&want).filter(|(a, b)| a != b).count();
        runs.push((rot, y, wrong));
    }
    let wrong_of = |x: &[i32], y: &[i32], z: &[i32]| {
        x.iter()
            .zip(y)
            .zip(z)
            .zip(&want)
            .filter(|(((&a, &b), &c), &w)| (a & b) | (b & c) | (a & c) != w)
            .count()
    };
    let find = |rot: (u8, u8)| runs.iter().position(|r| r.0 == rot).expect("default probed");
    let d = [find(defaults[0]), find(defaults[1]), find(defaults[2])];
    let wrong_default = wrong_of(&runs[d[0]].1, &runs[d[1]].1, &runs[d[2]].1);
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| runs[i].2);
    order.truncate(20);
    let mut best = (wrong_default, d);
    for (x, &i) in order.iter().enumerate() {
        for (y, &j) in order.iter().enumerate().skip(x + 1) {
            for &l in order.iter().skip(y + 1) {
                if best.0 == 0 {
                    break;
                }
                let w = wrong_of(&runs[i].1, &runs[j].1, &runs[l].1);
                if w < best.0 {
                    best = (w, [i, j, l]);
                }
            }
        }
    }
    Ok(Calibration {
        layer,
        rotations: [runs[best.1[0]].0, runs[best.1[1]].0, runs[best.1[2]].0],
        wrong_outputs: best.0,
        wrong_outputs_default: wrong_default,
        probe_outputs: m * n,
    })
}

/// [`calibrate`] every layer and install the rotations on `exec`.
pub fn calibrate_all(
    exec: &mut DeviceMatmul,
    layers: usize,
    probe_rows: usize,
    seed: u64,
) -> Result<Vec<Calibration>> {
    let mut out = Vec::with_capacity(layers);
    for i in 0..layers {
        let c = calibrate(exec, i, probe_rows, seed).map_err(|e| crate::error::Error::Exec {
            layer: i,
            name: format!("layer {i}"),
            source: e.into(),
        })?;
        exec.set_layer_rotations(i, Some(c.rotations));
        out.push(c);
    }
    Ok(out)
}

/// One layer's vulnerability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerVulnerability {
    pub layer: usize,
    pub name: String,
    /// MACs of this layer per inference (one sample).
    pub macs_per_sample: u64,
    /// Accuracy with only this layer on the faulty device.
    pub accuracy_alone_faulty: f64,
    /// `clean - accuracy_alone_faulty`.
    pub loss: f64,
    /// Accuracy with every layer on the faulty device and only this one
    /// under TMR.
    #[serde(default)]
    pub accuracy_alone_tmr: f64,
    /// `accuracy_alone_tmr - faulty_accuracy`: what protecting this layer
    /// alone wins back (the selection's gain).
    #[serde(default)]
    pub recovery: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// All layers on the host (fault-free).
    pub clean_accuracy: f64,
    /// All layers on the faulty device, unprotected.
    pub faulty_accuracy: f64,
    pub layers: Vec<LayerVulnerability>,
    pub samples: usize,
    /// The TMR rotations chosen per layer (installed on the executor).
    #[serde(default)]
    pub calibration: Vec<Calibration>,
}

impl Vulnerability {
    pub fn total_macs_per_sample(&self) -> u64 {
        self.layers.iter().map(|l| l.macs_per_sample).sum()
    }

    /// Extra MACs (% of one unprotected inference) of protecting `set`.
    pub fn cost_pct(&self, set: &[usize]) -> f64 {
        let macs: Vec<u64> = self.layers.iter().map(|l| l.macs_per_sample).collect();
        cost_pct_of(&macs, set)
    }

    /// The layers (indices into `layers`) to protect under `budget_pct`:
    /// the largest summed measured recovery that fits (see the module docs).
    pub fn select(&self, budget_pct: f64) -> Vec<usize> {
        let gains: Vec<f64> = self.layers.iter().map(|l| l.recovery).collect();
        let macs: Vec<u64> = self.layers.iter().map(|l| l.macs_per_sample).collect();
        select_layers(&gains, &macs, budget_pct)
    }
}

/// Extra MACs (% of one unprotected inference) of protecting `set`.
fn cost_pct_of(macs: &[u64], set: &[usize]) -> f64 {
    let total = macs.iter().sum::<u64>().max(1) as f64;
    set.iter().map(|&i| 2.0 * macs[i] as f64).sum::<f64>() / total * 100.0
}

/// The subset of layers with the largest summed `gains` whose TMR cost
/// (2 × `macs` each) fits `budget_pct`; only layers with a positive gain.
/// Exhaustive up to 16 layers (ties: the cheaper set), greedy by gain per
/// MAC beyond.
pub fn select_layers(gains: &[f64], macs: &[u64], budget_pct: f64) -> Vec<usize> {
    let n = gains.len();
    let gain = |set: &[usize]| set.iter().map(|&i| gains[i].max(0.0)).sum::<f64>();
    let fits = |set: &[usize]| cost_pct_of(macs, set) <= budget_pct + 1e-9;
    if n <= 16 {
        let mut best: Vec<usize> = Vec::new();
        for mask in 1u32..(1 << n) {
            let set: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            if !fits(&set) {
                continue;
            }
            let (g, bg) = (gain(&set), gain(&best));
            if g > bg + 1e-12
                || ((g - bg).abs() <= 1e-12 && cost_pct_of(macs, &set) < cost_pct_of(macs, &best))
            {
                best = set;
            }
        }
        // Only layers that buy something.
        best.retain(|&i| gains[i] > 0.0);
        best
    } else {
        let mut order: Vec<usize> = (0..n).collect();
        let per_mac = |i: usize| gains[i] / macs[i].max(1) as f64;
        order.sort_by(|&a, &b| per_mac(b).total_cmp(&per_mac(a)));
        let mut set = Vec::new();
        for i in order {
            if gains[i] <= 0.0 {
                continue;
            }
            set.push(i);
            if !fits(&set) {
                set.pop();
            }
        }
        set.sort_unstable();
        set
    }
}

/// Every layer `i < layers` in mode `f(i)`.
pub(crate) fn set_modes(exec: &mut DeviceMatmul, layers: usize, f: impl Fn(usize) -> LayerMode) {
    for i in 0..layers {
        exec.set_mode(i, f(i));
    }
}

/// Per-layer vulnerability and TMR recovery of `model` on `exec`'s (faulty)
/// device over `data`, and the calibrated TMR rotations of every layer
/// (installed on `exec`; left at the defaults when the chip has no stuck-at
/// fault, see the module docs). The model's weights must be installed on
/// `exec` (`Model::sync_weights`). Under SEU each measurement sees its own
/// flips (the pass counter runs on), as a deployed chip would. Leaves every
/// layer in [`LayerMode::Device`].
pub fn analyze(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
) -> Result<Vulnerability> {
    let n = model.layers().len();
    set_modes(exec, n, |_| LayerMode::Host);
    exec.reset_macs();
    let clean = eval::accuracy(model, data, batch, exec, |_| {})?;
    let macs: Vec<u64> = (0..n)
        .map(|i| exec.layer_logical_macs().get(i).copied().unwrap_or(0) / data.len().max(1) as u64)
        .collect();
    let stuck = exec.fault_map().is_some_and(|m| m.faulty_pes() > 0);
    let calibration = if stuck { calibrate_all(exec, n, 32, 1)? } else { Vec::new() };
    set_modes(exec, n, |_| LayerMode::Device);
    let faulty = eval::accuracy(model, data, batch, exec, |_| {})?;
    let mut layers = Vec::with_capacity(n);
    for (i, l) in model.layers().iter().enumerate() {
        set_modes(exec, n, |j| if j == i { LayerMode::Device } else { LayerMode::Host });
        let alone = eval::accuracy(model, data, batch, exec, |_| {})?;
        set_modes(exec, n, |j| if j == i { LayerMode::Tmr } else { LayerMode::Device });
        let tmr = eval::accuracy(model, data, batch, exec, |_| {})?;
        layers.push(LayerVulnerability {
            layer: i,
            name: l.name.clone(),
            macs_per_sample: macs[i],
            accuracy_alone_faulty: alone,
            loss: clean - alone,
            accuracy_alone_tmr: tmr,
            recovery: tmr - faulty,
        });
    }
    set_modes(exec, n, |_| LayerMode::Device);
    Ok(Vulnerability {
        clean_accuracy: clean,
        faulty_accuracy: faulty,
        layers,
        samples: data.len(),
        calibration,
    })
}

/// What [`protect`] chose for one budget (the `tmr` object of `faultloop
/// eval --json` and `retrain --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protection {
    pub budget_pct: f64,
    /// Extra MACs the protected layers cost, % of an unprotected inference.
    pub extra_macs_pct: f64,
    /// Names of the layers now under TMR.
    pub protected: Vec<String>,
    /// The analysis the choice was made from.
    pub vulnerability: Vulnerability,
}

/// [`analyze`] `model` on `exec`'s device over `data`, [`Vulnerability::select`]
/// the layers worth protecting under `budget_pct` % extra MACs, and run them
/// in [`LayerMode::Tmr`] from now on (with their calibrated rotations). The
/// model's weights must be installed on `exec`
/// ([`DeviceMatmul::install_model`]).
pub fn protect(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
    budget_pct: f64,
) -> Result<Protection> {
    let vulnerability = analyze(model, data, batch, exec)?;
    let set = vulnerability.select(budget_pct);
    for &i in &set {
        exec.set_mode(i, LayerMode::Tmr);
    }
    Ok(Protection {
        budget_pct,
        extra_macs_pct: vulnerability.cost_pct(&set),
        protected: set.iter().map(|&i| vulnerability.layers[i].name.clone()).collect(),
        vulnerability,
    })
}

/// One row of the accuracy-vs-budget table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetRow {
    pub budget_pct: f64,
    pub protected: Vec<String>,
    /// Extra MACs actually spent, % of an unprotected inference.
    pub extra_macs_pct: f64,
    pub accuracy: f64,
}

/// Measured accuracy for each budget with the layers [`Vulnerability::select`]
/// picks run under TMR (the rest unprotected on the device).
pub fn budget_table(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
    vuln: &Vulnerability,
    budgets: &[f64],
) -> Result<Vec<BudgetRow>> {
    let n = model.layers().len();
    let mut rows = Vec::new();
    let mut cache: Vec<(Vec<usize>, f64)> = Vec::new();
    for &b in budgets {
        let set = vuln.select(b);
        let acc = match cache.iter().find(|(s, _)| *s == set) {
            Some((_, a)) => *a,
            None => {
                set_modes(exec, n, |i| {
                    if set.contains(&i) {
                        LayerMode::Tmr
                    } else {
                        LayerMode::Device
                    }
                });
                let a = eval::accuracy(model, data, batch, exec, |_| {})?;
                cache.push((set.clone(), a));
                a
            }
        };
        rows.push(BudgetRow {
            budget_pct: b,
            protected: set.iter().map(|&i| vuln.layers[i].name.clone()).collect(),
            extra_macs_pct: vuln.cost_pct(&set),
            accuracy: acc,
        });
    }
    set_modes(exec, n, |_| LayerMode::Device);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vuln(gains: &[(f64, u64)]) -> Vulnerability {
        Vulnerability {
            clean_accuracy: 0.9,
            faulty_accuracy: 0.5,
            samples: 1,
            calibration: Vec::new(),
            layers: gains
                .iter()
                .enumerate()
                .map(|(i, &(gain, macs))| LayerVulnerability {
                    layer: i,
                    name: format!("l{i}"),
                    macs_per_sample: macs,
                    accuracy_alone_faulty: 0.9,
                    loss: 0.0,
                    accuracy_alone_tmr: 0.5 + gain,
                    recovery: gain,
                })
                .collect(),
        }
    }

    #[test]
    fn selection_respects_budget_and_maximizes_gain() {
        // MLP-like: 200k, 32k, 1.3k MACs.
        let v = vuln(&[(0.10, 200_000), (0.05, 32_000), (0.30, 1_300)]);
        assert_eq!(v.select(0.0), Vec::<usize>::new());
        assert_eq!(v.select(2.0), vec![2]);
        assert_eq!(v.select(50.0), vec![1, 2]);
        assert!(v.cost_pct(&[1, 2]) <= 50.0);
        assert_eq!(v.select(200.0), vec![0, 1, 2]);
        // A layer that buys nothing is not protected.
        let v = vuln(&[(0.0, 100), (0.2, 100)]);
        assert_eq!(v.select(200.0), vec![1]);
    }
}
