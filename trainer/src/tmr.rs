//! Partial TMR (R2F): protect the layers that buy the most accuracy under a
//! budget of extra MACs.
//!
//! * A protected layer runs three times on the device with different tile
//!   rotations (ρr, ρc) — (0, 0), (⌊R/3⌋, ⌊C/3⌋), (⌊2R/3⌋, ⌊2C/3⌋) — so a
//!   faulty PE lands on a different logical row and column in each run, and
//!   the result is the bitwise majority `(x&y)|(y&z)|(x&z)` of the three int32
//!   results. A psum or weight fault corrupts one logical output column per
//!   run, a different one each time, so one faulty PE is voted out; an act
//!   fault corrupts every PE to its right and can survive the vote.
//! * Vulnerability analysis: the accuracy with only layer `i` on the faulty
//!   device (every other layer on the host's integer reference, which equals
//!   a fault-free device); `loss_i = clean - that`.
//! * Selection: cost of protecting layer `i` = 2 × its MACs (two extra runs),
//!   as a percentage of the model's MACs per inference. Among all subsets of
//!   layers whose cost fits the budget (exhaustive up to 16 layers, greedy by
//!   loss per MAC beyond), pick the one with the largest summed loss
//!   (vulnerability), i.e. the most accuracy bought; ties go to the cheaper set.
//! * [`budget_table`] measures the real accuracy of each budget's choice.
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::device::{DeviceMatmul, LayerMode};
use crate::error::Result;
use crate::model::Model;
use crate::retrain::evaluate_installed;

/// Bitwise majority of three int32 vectors.
pub fn vote(x: &[i32], y: &[i32], z: &[i32]) -> Vec<i32> {
    assert!(x.len() == y.len() && y.len() == z.len(), "TMR vote: lengths differ");
    x.iter().zip(y).zip(z).map(|((&a, &b), &c)| (a & b) | (b & c) | (a & c)).collect()
}

/// The three tile rotations for an R×C array.
pub fn rotations(rows: usize, cols: usize) -> [(u8, u8); 3] {
    let r = |x: usize| (x.min(255)) as u8;
    let step_r = (rows / 3).max(1) % rows.max(1);
    let step_c = (cols / 3).max(1) % cols.max(1);
    [(0, 0), (r(step_r), r(step_c)), (r((2 * step_r) % rows.max(1)), r((2 * step_c) % cols.max(1)))]
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// All layers on the host (fault-free).
    pub clean_accuracy: f64,
    /// All layers on the faulty device, unprotected.
    pub faulty_accuracy: f64,
    pub layers: Vec<LayerVulnerability>,
    pub samples: usize,
}

impl Vulnerability {
    pub fn total_macs_per_sample(&self) -> u64 {
        self.layers.iter().map(|l| l.macs_per_sample).sum()
    }

    /// Extra MACs (% of one unprotected inference) of protecting `set`.
    pub fn cost_pct(&self, set: &[usize]) -> f64 {
        let total = self.total_macs_per_sample().max(1) as f64;
        set.iter().map(|&i| 2.0 * self.layers[i].macs_per_sample as f64).sum::<f64>() / total
            * 100.0
    }

    /// The layers (indices into `layers`) to protect under `budget_pct`.
    pub fn select(&self, budget_pct: f64) -> Vec<usize> {
        let n = self.layers.len();
        let gain = |set: &[usize]| set.iter().map(|&i| self.layers[i].loss.max(0.0)).sum::<f64>();
        let fits = |set: &[usize]| self.cost_pct(set) <= budget_pct + 1e-9;
        if n <= 16 {
            let mut best: Vec<usize> = Vec::new();
            for mask in 1u32..(1 << n) {
                let set: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
                if !fits(&set) {
                    continue;
                }
                let (g, bg) = (gain(&set), gain(&best));
                if g > bg + 1e-12 || ((g - bg).abs() <= 1e-12 && self.cost_pct(&set) < self.cost_pct(&best)) {
                    best = set;
                }
            }
            // Only layers that buy something.
            best.retain(|&i| self.layers[i].loss > 0.0);
            best
        } else {
            let mut order: Vec<usize> = (0..n).collect();
            let per_mac = |i: usize| self.layers[i].loss / self.layers[i].macs_per_sample.max(1) as f64;
            order.sort_by(|&a, &b| per_mac(b).total_cmp(&per_mac(a)));
            let mut set = Vec::new();
            for i in order {
                if self.layers[i].loss <= 0.0 {
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
}

fn set_modes(exec: &mut DeviceMatmul, layers: usize, f: impl Fn(usize) -> LayerMode) {
    for i in 0..layers {
        exec.set_mode(i, f(i));
    }
}

/// Per-layer vulnerability of `model` on `exec`'s (faulty) device over `data`.
/// The model's weights must be installed on `exec` (`Model::sync_weights`).
/// Leaves every layer in [`LayerMode::Device`].
pub fn analyze(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
) -> Result<Vulnerability> {
    let n = model.layers().len();
    set_modes(exec, n, |_| LayerMode::Host);
    exec.reset_macs();
    let clean = evaluate_installed(model, data, batch, exec)?;
    let macs: Vec<u64> = (0..n)
        .map(|i| exec.layer_logical_macs().get(i).copied().unwrap_or(0) / data.len().max(1) as u64)
        .collect();
    set_modes(exec, n, |_| LayerMode::Device);
    let faulty = evaluate_installed(model, data, batch, exec)?;
    let mut layers = Vec::with_capacity(n);
    for (i, l) in model.layers().iter().enumerate() {
        set_modes(exec, n, |j| if j == i { LayerMode::Device } else { LayerMode::Host });
        let acc = evaluate_installed(model, data, batch, exec)?;
        layers.push(LayerVulnerability {
            layer: i,
            name: l.name.clone(),
            macs_per_sample: macs[i],
            accuracy_alone_faulty: acc,
            loss: clean - acc,
        });
    }
    set_modes(exec, n, |_| LayerMode::Device);
    Ok(Vulnerability { clean_accuracy: clean, faulty_accuracy: faulty, layers, samples: data.len() })
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
                set_modes(exec, n, |i| if set.contains(&i) { LayerMode::Tmr } else { LayerMode::Device });
                let a = evaluate_installed(model, data, batch, exec)?;
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

    #[test]
    fn majority_is_bitwise() {
        let x = [0b1100, -1, 7, i32::MIN];
        let y = [0b1010, -1, 7, 0];
        let z = [0b0110, 0, 9, i32::MIN];
        assert_eq!(vote(&x, &y, &z), vec![0b1110, -1, 7, i32::MIN]);
        // Any single corrupted copy is voted out, whatever the corruption.
        for bad in [0x4000_0000, -5, 12345] {
            assert_eq!(vote(&[bad], &[42], &[42]), vec![42]);
            assert_eq!(vote(&[42], &[bad], &[42]), vec![42]);
            assert_eq!(vote(&[42], &[42], &[bad]), vec![42]);
        }
    }

    #[test]
    fn rotations_are_distinct() {
        assert_eq!(rotations(16, 16), [(0, 0), (5, 5), (10, 10)]);
        assert_eq!(rotations(4, 4), [(0, 0), (1, 1), (2, 2)]);
        let r = rotations(8, 8);
        assert!(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
    }

    fn vuln(losses: &[(f64, u64)]) -> Vulnerability {
        Vulnerability {
            clean_accuracy: 0.9,
            faulty_accuracy: 0.5,
            samples: 1,
            layers: losses
                .iter()
                .enumerate()
                .map(|(i, &(loss, macs))| LayerVulnerability {
                    layer: i,
                    name: format!("l{i}"),
                    macs_per_sample: macs,
                    accuracy_alone_faulty: 0.9 - loss,
                    loss,
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
