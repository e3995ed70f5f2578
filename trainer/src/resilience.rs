//! The eFAT resilience map (Hanif & Shafique 2023): fault rate × retraining
//! amount → accuracy over random chips, and the least amount per rate that
//! meets an accuracy floor.
//!
//! This module holds the map's data and its one rule; the runs that fill it
//! (one retraining per random chip, evaluated at every amount on the way)
//! and the fleet planner that reads it build on [`ResilienceMap`].
//!
//! * Amounts are **sample-steps**: training samples processed (an epoch of
//!   4000 images is 4000 sample-steps), so fractions of an epoch and several
//!   epochs are one unit, and a fleet's cost is their sum.
//! * [`ResilienceMap::least_amounts`]: for each rate, the smallest amount
//!   whose accuracy at the map's percentile (a low one: most chips must meet
//!   the floor) is at least the floor, made non-decreasing in the rate (a
//!   higher rate never needs less); `None` where no amount meets it.
//! * [`ResilienceMap::need`]: the amount a chip of a given fault rate needs:
//!   that of the smallest tabulated rate at or above it (never interpolated
//!   downwards); `None` above the largest rate or where no amount suffices.

use serde::{Deserialize, Serialize};

/// One cell: every chip's accuracy at one rate after one amount.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub rate: f64,
    /// Sample-steps of retraining.
    pub amount: u64,
    /// Accuracy (0–1) of each random chip, in chip order.
    pub samples: Vec<f64>,
}

/// The least amount for one rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Least {
    pub rate: f64,
    /// `None`: no amount of the map meets the floor at this rate.
    pub amount: Option<u64>,
}

/// A resilience map, as `faultloop resilience` writes it (`resilience.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResilienceMap {
    /// The checkpoint it was measured for.
    pub model: String,
    /// The device (array size) the chips were drawn for, e.g. `model:16x16`.
    pub device: String,
    /// `fat`, `fap` or `auto`.
    pub mitigation: String,
    /// Accuracy of the model on a fault-free device (0–1).
    pub clean_accuracy: f64,
    /// The floor (absolute accuracy, 0–1).
    pub accuracy: f64,
    /// The percentile (0–100) of each cell's samples compared with the floor.
    pub percentile: f64,
    /// Sample-steps of one epoch (to show amounts as epochs).
    pub epoch_samples: u64,
    /// Fault rates, ascending.
    pub rates: Vec<f64>,
    /// Amounts in sample-steps, ascending; 0 (no retraining) may be one.
    pub amounts: Vec<u64>,
    /// Every (rate, amount) cell.
    pub cells: Vec<Cell>,
    /// The least amount per rate (see [`ResilienceMap::least_amounts`]).
    pub least: Vec<Least>,
}

/// The `p`-th percentile (0–100) of `v`, by linear interpolation between
/// the sorted samples (`p = 0` is the minimum); NaN for no samples.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let x = (p.clamp(0.0, 100.0) / 100.0) * (s.len() - 1) as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (x - lo as f64)
}

impl ResilienceMap {
    /// The cell at (`rate`, `amount`), if measured.
    pub fn cell(&self, rate: f64, amount: u64) -> Option<&Cell> {
        self.cells.iter().find(|c| c.rate == rate && c.amount == amount)
    }

    /// The least amount per rate meeting the floor at the percentile,
    /// non-decreasing in the rate.
    pub fn least_amounts(&self) -> Vec<Least> {
        let mut out: Vec<Least> = Vec::with_capacity(self.rates.len());
        let mut floor_amount: Option<u64> = Some(0);
        for &rate in &self.rates {
            let own = self.amounts.iter().copied().find(|&a| {
                self.cell(rate, a)
                    .is_some_and(|c| percentile(&c.samples, self.percentile) >= self.accuracy)
            });
            // Monotone: at least the previous rate's amount; once a rate
            // cannot be met, no higher rate can be.
            let amount = match (own, floor_amount) {
                (Some(a), Some(f)) => Some(a.max(f)),
                _ => None,
            };
            floor_amount = amount;
            out.push(Least { rate, amount });
        }
        out
    }

    /// Recompute [`ResilienceMap::least`] from the cells.
    pub fn update_least(&mut self) {
        self.least = self.least_amounts();
    }

    /// The amount a chip of fault rate `rate` needs: that of the smallest
    /// tabulated rate ≥ `rate` (with a tolerance of 1e-9 for rates that are
    /// counts over the array); `None` beyond the map or where nothing meets
    /// the floor.
    pub fn need(&self, rate: f64) -> Option<u64> {
        self.least.iter().find(|l| l.rate + 1e-9 >= rate).and_then(|l| l.amount)
    }
}

impl ResilienceMap {
    /// The heatmap (SVG): rates down, amounts (in epochs) across, each cell
    /// the percentile accuracy, the least amount per rate outlined.
    pub fn heatmap_svg(&self) -> String {
        self.with_heatmap(crate::plot::heatmap)
    }

    /// [`ResilienceMap::heatmap_svg`] written to `path`, as SVG or PNG by its extension.
    pub fn save_heatmap(&self, path: &std::path::Path) -> Result<(), crate::plot::PlotError> {
        self.with_heatmap(|h| crate::plot::save(h, path))
    }

    /// `f` of the map's [`crate::plot::Heatmap`].
    fn with_heatmap<R>(&self, f: impl FnOnce(&crate::plot::Heatmap<'_>) -> R) -> R {
        let cols: Vec<String> = self
            .amounts
            .iter()
            .map(|&a| {
                format!(
                    "{}",
                    (a as f64 / self.epoch_samples.max(1) as f64 * 1000.0).round() / 1000.0
                )
            })
            .collect();
        let rows: Vec<String> = self.rates.iter().map(|r| format!("{} %", 100.0 * r)).collect();
        let values: Vec<Vec<f64>> = self
            .rates
            .iter()
            .map(|&r| {
                self.amounts
                    .iter()
                    .map(|&a| {
                        self.cell(r, a)
                            .map_or(f64::NAN, |c| percentile(&c.samples, self.percentile))
                    })
                    .collect()
            })
            .collect();
        let outlined: Vec<(usize, usize)> = self
            .least
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                l.amount.and_then(|a| self.amounts.iter().position(|&x| x == a)).map(|j| (i, j))
            })
            .collect();
        let chips = self.cells.first().map_or(0, |c| c.samples.len());
        f(&crate::plot::Heatmap {
            title: &format!("Resilience map on {} ({}, {chips} chips per rate)", self.device, self.mitigation),
            x_label: &format!("retraining (epochs of {} samples)", self.epoch_samples),
            y_label: "fault rate",
            cols: &cols,
            rows: &rows,
            values: &values,
            floor: self.accuracy,
            top: self.clean_accuracy.max(self.accuracy + 1e-3),
            outlined: &outlined,
            note: &format!(
                "accuracy (%) at the {}th percentile; outlined: least amount for the floor {:.1} % (clean {:.1} %)",
                self.percentile,
                100.0 * self.accuracy,
                100.0 * self.clean_accuracy
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(cells: &[(f64, u64, &[f64])]) -> ResilienceMap {
        let mut rates: Vec<f64> = cells.iter().map(|c| c.0).collect();
        rates.dedup();
        let mut amounts: Vec<u64> = cells.iter().map(|c| c.1).collect();
        amounts.sort();
        amounts.dedup();
        let mut m = ResilienceMap {
            model: "m".into(),
            device: "model:4x4".into(),
            mitigation: "fat".into(),
            clean_accuracy: 0.9,
            accuracy: 0.8,
            percentile: 10.0,
            epoch_samples: 100,
            rates,
            amounts,
            cells: cells
                .iter()
                .map(|&(rate, amount, s)| Cell { rate, amount, samples: s.to_vec() })
                .collect(),
            least: Vec::new(),
        };
        m.update_least();
        m
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [0.5, 0.1, 0.3, 0.2, 0.4];
        assert_eq!(percentile(&v, 0.0), 0.1);
        assert_eq!(percentile(&v, 100.0), 0.5);
        assert!((percentile(&v, 50.0) - 0.3).abs() < 1e-12);
        assert!((percentile(&v, 10.0) - 0.14).abs() < 1e-12);
        assert!(percentile(&[], 10.0).is_nan());
    }

    #[test]
    fn least_amount_is_the_first_meeting_the_floor_at_the_percentile() {
        let m = map(&[
            (0.01, 0, &[0.85, 0.82, 0.9]),
            (0.01, 50, &[0.9, 0.9, 0.9]),
            (0.05, 0, &[0.5, 0.85, 0.9]), // one bad chip: the low percentile fails
            (0.05, 50, &[0.7, 0.9, 0.9]),
            (0.05, 200, &[0.81, 0.9, 0.9]),
        ]);
        assert_eq!(
            m.least,
            vec![Least { rate: 0.01, amount: Some(0) }, Least { rate: 0.05, amount: Some(200) },]
        );
        assert_eq!(m.need(0.0), Some(0));
        assert_eq!(m.need(0.01), Some(0));
        assert_eq!(m.need(0.02), Some(200));
        assert_eq!(m.need(0.06), None);
    }

    #[test]
    fn least_amounts_never_decrease_and_stop_at_the_first_impossible_rate() {
        let m = map(&[
            (0.01, 0, &[0.7]),
            (0.01, 100, &[0.85]),
            (0.02, 0, &[0.85]), // luckier chips: alone it would need 0
            (0.03, 0, &[0.1]),
            (0.03, 100, &[0.2]),
            (0.04, 0, &[0.9]), // beyond an impossible rate: impossible too
        ]);
        let a: Vec<_> = m.least.iter().map(|l| l.amount).collect();
        assert_eq!(a, vec![Some(100), Some(100), None, None]);
    }

    #[test]
    fn the_json_round_trips() {
        let m = map(&[(0.01, 0, &[0.85]), (0.01, 100, &[0.9])]);
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<ResilienceMap>(&s).unwrap(), m);
    }
}
