//! Mitigation of one faulty chip, one choice per run (`--mitigate`;
//! docs/training.md, "Mitigation"):
//!
//! * [`Mitigation::Fap`] (FAP+T, Zhang et al. VTS 2018): bypass every faulty
//!   PE, prune the weights the tiling maps onto them to 0 and keep them there
//!   ([`Freeze`]), retrain. A bypassed PE forwards its partial sum and
//!   activation unchanged, so its weight contributes nothing on the device;
//!   with that weight at 0 the host's float model computes what the device
//!   does, and the straight-through gradient stops moving a weight that
//!   cannot matter.
//! * [`Mitigation::Fat`]: retrain with the stuck-at behaviour in the loop.
//! * [`Mitigation::Auto`] (triage): for each faulty PE a measurement
//!   ([`triage`]) of what its fault costs: on a held-out calibration subset
//!   of the training data, with every other faulty PE bypassed, the loss
//!   with the PE's fault minus the loss with the same PE healthy (its
//!   entries removed from the map on the measuring device). A PE whose
//!   fault costs more than a tolerance is bypassed and pruned; the others
//!   stay in the loop with their weights. Then each layer's tile rotation
//!   is chosen for that list ([`choose_rotations`], measured): the rotation
//!   decides which weights sit on the bypassed PEs, so it chooses what is
//!   pruned (the output layer's pruned weight energy halves on 8 % maps).
//!   Then retraining (optionally after a FAT burst, `triage_epochs`),
//!   ending with the best of the triaged start, the end and their blend on
//!   held-out images (`retrain::Selection`). Why the fault's own cost and not "keep
//!   vs prune": retraining wins back the pruning of a few PEs' weights
//!   almost entirely (FAP+T), not what a fault in the loop keeps costing, so
//!   comparing against the unretrained pruning cost keeps too many.
//! * [`Mitigation::None`]: the faults as they are (evaluation only).
//!
//! Which weights a PE holds: under rotation (0, 0) physical PE (p, q) holds
//! every `W[k][n]` with `k ≡ p (mod R)` and `n ≡ q (mod C)`, under rotation
//! (dr, dc) those with `k ≡ p − dr` and `n ≡ q − dc` (docs/protocol.md
//! §3–4, [`MatrixLayout::pe_of`]). `fap` keeps every layer at (0, 0), as
//! FAP+T does; `auto` records its per-layer rotations next to the bypass
//! list ([`MitigationRecord`]). TMR layers run under three rotations, where
//! a bypassed PE holds other weights each time, so bypass lists are refused
//! with TMR.
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use faultloop_proto::faultmap::{Fault, FaultMap};
use faultloop_proto::layout::MatrixLayout;
use faultloop_proto::rng::Rng;

use crate::data::Dataset;
use crate::device::DeviceMatmul;
use crate::error::{Error, Result};
use crate::exec::Int8Matmul;
use crate::model::Model;

/// One mitigation choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mitigation {
    /// No mitigation: the faults as they are (no bypass).
    None,
    /// Bypass every faulty PE, prune and freeze its weights, retrain.
    Fap,
    /// Retrain with the faults in the loop (no bypass added).
    #[default]
    Fat,
    /// Per-PE triage: bypass only the PEs whose bypass measurably helps.
    Auto,
}

impl Mitigation {
    pub const ALL: [Mitigation; 4] =
        [Mitigation::None, Mitigation::Fap, Mitigation::Fat, Mitigation::Auto];

    pub fn name(self) -> &'static str {
        match self {
            Mitigation::None => "none",
            Mitigation::Fap => "fap",
            Mitigation::Fat => "fat",
            Mitigation::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Mitigation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A mitigation name other than none, fap, fat or auto.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mitigation `{0}`: expected none, fap, fat or auto")]
pub struct ParseMitigationError(pub String);

impl std::str::FromStr for Mitigation {
    type Err = ParseMitigationError;
    fn from_str(s: &str) -> Result<Self, ParseMitigationError> {
        Mitigation::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| ParseMitigationError(s.to_string()))
    }
}

/// What a checkpoint records about the chip it was retrained for: the
/// mitigation, the array size, the PEs bypassed (on top of the fault map's
/// own bypass list) and each layer's tile rotation (which weights sit on the
/// bypassed PEs). Evaluation and the device executor apply it
/// ([`MitigationRecord::apply`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MitigationRecord {
    pub mitigation: Mitigation,
    /// `[rows, cols]` of the array the list is for.
    pub array: [usize; 2],
    /// `[row, col]`, sorted.
    pub bypass: Vec<[usize; 2]>,
    /// `[dr, dc]` of each layer's plain runs, by layer index (absent or
    /// empty: (0, 0) for every layer; layers past the end: (0, 0)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<[u8; 2]>,
}

impl MitigationRecord {
    /// The list, checked against the device's array size.
    pub fn bypass_for(&self, rows: usize, cols: usize) -> Result<&[[usize; 2]]> {
        self.check_array(rows, cols)?;
        Ok(&self.bypass)
    }

    /// The per-layer rotations, checked against the device's array size.
    pub fn rotations_for(&self, rows: usize, cols: usize) -> Result<&[[u8; 2]]> {
        self.check_array(rows, cols)?;
        if let Some(r) =
            self.rotations.iter().find(|r| r[0] as usize >= rows || r[1] as usize >= cols)
        {
            return Err(Error::Config(format!(
                "the checkpoint's layer rotation ({}, {}) is outside the {rows}x{cols} array",
                r[0], r[1]
            )));
        }
        Ok(&self.rotations)
    }

    fn check_array(&self, rows: usize, cols: usize) -> Result<()> {
        let used = !self.bypass.is_empty() || self.rotations.iter().any(|r| *r != [0, 0]);
        if self.array != [rows, cols] && used {
            return Err(Error::Config(format!(
                "the checkpoint's bypass list and rotations are for a {}x{} array, the device is \
                 {rows}x{cols}",
                self.array[0], self.array[1]
            )));
        }
        Ok(())
    }

    /// Bypass the recorded PEs on `exec` and run each layer under its
    /// recorded rotation.
    pub fn apply(&self, exec: &mut DeviceMatmul) -> Result<()> {
        let (rows, cols) = (exec.info().rows, exec.info().cols);
        let rots = self.rotations_for(rows, cols)?.to_vec();
        exec.set_bypass(self.bypass_for(rows, cols)?)?;
        exec.set_plain_rotations(&rots);
        Ok(())
    }
}

/// The faulty PEs of a map (a non-zero mask at any site), sorted.
pub fn faulty_pes(map: &FaultMap) -> Vec<[usize; 2]> {
    let mut v: Vec<[usize; 2]> = map
        .faults
        .iter()
        .filter(|f| f.stuck_at_0 | f.stuck_at_1 != 0)
        .map(|f| [f.row, f.col])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Sorted union of two PE lists.
pub fn union(a: &[[usize; 2]], b: &[[usize; 2]]) -> Vec<[usize; 2]> {
    let mut v = [a, b].concat();
    v.sort_unstable();
    v.dedup();
    v
}

/// Which elements of a K×N matrix (row-major) sit on a PE of `bypass` on a
/// `rows`x`cols` array under rotation `rot`: `true` = pruned.
pub fn pruned_mask(
    k: usize,
    n: usize,
    rows: usize,
    cols: usize,
    bypass: &[[usize; 2]],
    rot: (u8, u8),
) -> Result<Vec<bool>> {
    let layout = MatrixLayout::new(0, k, n, rows, cols)
        .map_err(|e| Error::Shape(format!("pruning a {k}x{n} layer: {e}")))?;
    let mut on = vec![false; rows * cols];
    for &[r, c] in bypass {
        if r >= rows || c >= cols {
            return Err(Error::Config(format!(
                "bypassed PE ({r}, {c}) is outside the {rows}x{cols} array"
            )));
        }
        on[r * cols + c] = true;
    }
    let mut mask = Vec::with_capacity(k * n);
    for ki in 0..k {
        for ni in 0..n {
            let (p, q) = layout.pe_of(ki, ni, rot);
            mask.push(on[p * cols + q]);
        }
    }
    Ok(mask)
}

/// Weights pruned to 0 and held there: one keep mask (1 kept, 0 pruned) per
/// layer with a pruned weight. Rebuilt from the bypass list, so a resumed run
/// freezes exactly what the interrupted one did.
#[derive(Debug, Default)]
pub struct Freeze {
    layers: Vec<(Tensor, Tensor)>,
    pruned: usize,
}

impl Freeze {
    /// The masks of `model`'s layers for `bypass` on a `rows`x`cols` array,
    /// each layer under its rotation in `rotations` (by layer index; (0, 0)
    /// past the end); the weights are zeroed at once.
    pub fn new(
        model: &Model,
        rows: usize,
        cols: usize,
        bypass: &[[usize; 2]],
        rotations: &[[u8; 2]],
    ) -> Result<Freeze> {
        let mut f = Freeze::default();
        if bypass.is_empty() {
            return Ok(f);
        }
        for l in model.layers() {
            let rot = rotations.get(l.index).map_or((0, 0), |r| (r[0], r[1]));
            let mask = pruned_mask(l.k, l.n, rows, cols, bypass, rot)?;
            let pruned = mask.iter().filter(|&&p| p).count();
            if pruned == 0 {
                continue;
            }
            f.pruned += pruned;
            let keep: Vec<f32> = mask.iter().map(|&p| if p { 0.0 } else { 1.0 }).collect();
            let keep = Tensor::from_slice(&keep).view([l.k as i64, l.n as i64]);
            f.layers.push((l.weight.shallow_clone(), keep));
        }
        f.apply();
        Ok(f)
    }

    /// Zero the pruned weights again (after every optimizer step: Adam's
    /// moments would move them otherwise). Multiplying by 1 leaves the kept
    /// weights bit for bit as they were.
    pub fn apply(&self) {
        tch::no_grad(|| {
            for (w, keep) in &self.layers {
                let _ = w.shallow_clone().g_mul_(keep);
            }
        });
    }

    /// Weights pruned, over all layers.
    pub fn pruned(&self) -> usize {
        self.pruned
    }
}

/// The triage measurement of one faulty PE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeTriage {
    pub row: usize,
    pub col: usize,
    /// Its stuck-at entries (site and masks).
    pub faults: Vec<Fault>,
    /// Weights of the model the PE holds (pruned if it is bypassed).
    pub weights: usize,
    /// Mean cross-entropy on the calibration subset, every other faulty PE
    /// bypassed, with this PE in the loop (its fault and its weights) ...
    pub loss_kept: f64,
    /// ... with this PE healthy (its fault removed, its weights in use) ...
    pub loss_healthy: f64,
    /// ... and with this PE bypassed too (the same for all PEs).
    pub loss_bypassed: f64,
    /// `loss_kept - loss_healthy`: what the fault costs the current weights.
    pub fault_cost: f64,
    /// `loss_kept - loss_bypassed`: keeping vs bypassing, before retraining
    /// (for comparison; not the decision).
    pub delta_loss: f64,
    pub accuracy_kept: f64,
    pub accuracy_healthy: f64,
    pub accuracy_bypassed: f64,
    /// The decision: bypassed (`fault_cost > tolerance`).
    pub bypass: bool,
}

/// How many rotations of a layer [`choose_rotations`] measures: the ones
/// that put the least of its weight energy on the bypassed PEs.
pub const ROTATION_CANDIDATES: usize = 8;

/// One layer's rotation as [`choose_rotations`] chose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRotation {
    pub layer: usize,
    pub name: String,
    /// `[dr, dc]` kept.
    pub rotation: [u8; 2],
    /// Share of the layer's Σw² (int8) on the bypassed PEs: at the
    /// rotation it started from, and at the one kept.
    pub pruned_energy_start: f64,
    pub pruned_energy: f64,
    /// Mean cross-entropy on the calibration subset before this layer's
    /// choice (the earlier layers' choices made) and after it.
    pub loss_start: f64,
    pub loss: f64,
    /// Rotations measured for this layer.
    pub measured: usize,
}

/// Per-layer tile rotations for a bypass list (see [`choose_rotations`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotationChoice {
    pub candidates_per_layer: usize,
    pub layers: Vec<LayerRotation>,
}

impl RotationChoice {
    /// `[dr, dc]` by layer index, up to the last layer not at (0, 0) (as
    /// [`DeviceMatmul::plain_rotations`] lists them; a layer not listed:
    /// (0, 0)).
    pub fn rotations(&self) -> Vec<[u8; 2]> {
        let n = self.layers.iter().filter(|l| l.rotation != [0, 0]).map(|l| l.layer + 1).max();
        let len = n.unwrap_or(0);
        let mut v = vec![[0, 0]; len];
        for l in self.layers.iter().filter(|l| l.layer < len) {
            v[l.layer] = l.rotation;
        }
        v
    }
}

/// Per PE `(p, q)` of a `rows`x`cols` array, the Σw² of the K×N int8
/// weights `w` it holds under rotation (0, 0).
fn pe_energy(w: &[i8], k: usize, n: usize, rows: usize, cols: usize) -> Result<Vec<f64>> {
    let layout = MatrixLayout::new(0, k, n, rows, cols)
        .map_err(|e| Error::Shape(format!("a {k}x{n} layer on {rows}x{cols}: {e}")))?;
    let mut e = vec![0f64; rows * cols];
    for ki in 0..k {
        for ni in 0..n {
            let (p, q) = layout.pe_of(ki, ni, (0, 0));
            let x = w[ki * n + ni] as f64;
            e[p * cols + q] += x * x;
        }
    }
    Ok(e)
}

/// Share of `energy`'s total (per PE at rotation (0, 0)) that rotation
/// `rot` puts on the PEs of `on` (row-major flags).
fn energy_on(energy: &[f64], on: &[bool], rows: usize, cols: usize, rot: (u8, u8)) -> f64 {
    let total: f64 = energy.iter().sum();
    if total == 0.0 {
        return 0.0;
    }
    let mut hit = 0.0;
    for p in 0..rows {
        for q in 0..cols {
            let (pr, pc) = ((p + rot.0 as usize) % rows, (q + rot.1 as usize) % cols);
            if on[pr * cols + pc] {
                hit += energy[p * cols + q];
            }
        }
    }
    hit / total
}

/// Each layer's tile rotation for the bypass list `bypass`, measured on
/// `meas` (weights installed, the chip's fault map applied): a bypassed PE
/// drops the weights the rotation maps onto it, so the rotation chooses
/// which weights the mitigation prunes, and which weights the faulty PEs
/// left in the loop multiply. Layer by layer in device order, the
/// [`ROTATION_CANDIDATES`] rotations that put the least of the layer's
/// weight energy on bypassed PEs are measured (mean cross-entropy on
/// `calib`, the earlier layers at their choice), and the best is kept if it
/// beats the layer's current rotation. With nothing bypassed it measures
/// nothing and returns no layers. `meas`'s bypass list and rotations are
/// restored afterwards.
pub fn choose_rotations(
    model: &Model,
    calib: &Dataset,
    batch: usize,
    meas: &mut DeviceMatmul,
    bypass: &[[usize; 2]],
) -> Result<RotationChoice> {
    let mut choice =
        RotationChoice { candidates_per_layer: ROTATION_CANDIDATES, layers: Vec::new() };
    let (rows, cols) = (meas.info().rows, meas.info().cols);
    let in_map = meas.fault_map().map(|m| m.bypass.clone()).unwrap_or_default();
    let all = union(bypass, &in_map);
    if all.is_empty() {
        return Ok(choice);
    }
    let mut on = vec![false; rows * cols];
    for &[r, c] in &all {
        if r >= rows || c >= cols {
            return Err(Error::Config(format!(
                "bypassed PE ({r}, {c}) is outside the {rows}x{cols} array"
            )));
        }
        on[r * cols + c] = true;
    }
    let (saved_bypass, saved_rot) = (meas.bypass().to_vec(), meas.plain_rotations());
    meas.set_bypass(bypass)?;
    let (mut loss, _) = loss_and_accuracy(model, calib, batch, meas)?;
    for l in model.layers() {
        let energy = pe_energy(&l.int8_weights(), l.k, l.n, rows, cols)?;
        let cur = meas.plain_rotation(l.index);
        let mut ranked: Vec<(f64, (u8, u8))> = (0..rows)
            .flat_map(|a| (0..cols).map(move |b| (a as u8, b as u8)))
            .map(|rot| (energy_on(&energy, &on, rows, cols, rot), rot))
            .collect();
        ranked.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let e_cur = energy_on(&energy, &on, rows, cols, cur);
        let start = LayerRotation {
            layer: l.index,
            name: l.name.clone(),
            rotation: [cur.0, cur.1],
            pruned_energy_start: e_cur,
            pruned_energy: e_cur,
            loss_start: loss,
            loss,
            measured: 0,
        };
        let mut best = start;
        for &(e, rot) in ranked.iter().filter(|(_, r)| *r != cur).take(ROTATION_CANDIDATES) {
            meas.set_plain_rotation(l.index, rot);
            let (cand, _) = loss_and_accuracy(model, calib, batch, meas)?;
            best.measured += 1;
            if cand < best.loss {
                (best.rotation, best.pruned_energy, best.loss) = ([rot.0, rot.1], e, cand);
            }
        }
        meas.set_plain_rotation(l.index, (best.rotation[0], best.rotation[1]));
        loss = best.loss;
        choice.layers.push(best);
    }
    meas.set_bypass(&saved_bypass)?;
    meas.set_plain_rotations(&saved_rot);
    Ok(choice)
}

/// What [`triage`] measured and decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    /// Global retraining step after which it ran (None: evaluation only).
    pub at_step: Option<usize>,
    pub calibration_samples: usize,
    /// Where the measurements ran (the fast twin or the device itself).
    pub device: String,
    /// A PE is bypassed when its fault costs more loss than this.
    pub tolerance: f64,
    pub pes: Vec<PeTriage>,
    /// The layers' rotations chosen for the bypass list, if they were
    /// ([`choose_rotations`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotations: Option<RotationChoice>,
}

impl Triage {
    /// The PEs it decided to bypass, sorted.
    pub fn bypassed(&self) -> Vec<[usize; 2]> {
        self.pes.iter().filter(|p| p.bypass).map(|p| [p.row, p.col]).collect()
    }
}

/// Mean cross-entropy and accuracy of `model` on `data` with every matmul on
/// `exec` (weights installed).
pub fn loss_and_accuracy(
    model: &Model,
    data: &Dataset,
    batch: usize,
    exec: &mut dyn Int8Matmul,
) -> Result<(f64, f64)> {
    let (mut loss, mut correct) = (0.0f64, 0i64);
    tch::no_grad(|| -> Result<()> {
        for (xs, ys) in data.batches(batch.max(1), false) {
            let logits = model.forward_exec(&xs, false, Some(&mut *exec))?;
            let m = ys.size()[0] as f64;
            loss += logits.cross_entropy_for_logits(&ys).double_value(&[]) * m;
            correct += logits.argmax(-1, false).eq_tensor(&ys).sum(Kind::Int64).int64_value(&[]);
        }
        Ok(())
    })?;
    let n = data.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// `samples` training examples (seeded draw) outside `used`, for measuring
/// on data the model has not just been trained on.
pub fn calibration_subset(train: &Dataset, used: &[usize], samples: usize, seed: u64) -> Dataset {
    let mut taken = vec![false; train.len()];
    for &i in used {
        taken[i] = true;
    }
    let free: Vec<usize> = (0..train.len()).filter(|&i| !taken[i]).collect();
    let mut rng = Rng::new(seed ^ 0x7A1A_6E5E_ED00_0001);
    let pick = rng.sample_indices(free.len(), samples.min(free.len()));
    let idx: Vec<i64> = pick.into_iter().map(|i| free[i] as i64).collect();
    let t = Tensor::from_slice(&idx);
    Dataset {
        images: train.images.index_select(0, &t),
        labels: train.labels.index_select(0, &t),
        rows: train.rows,
        cols: train.cols,
    }
}

/// Make `twin` a copy of `exec`'s chip and weights: the same fault map and
/// bypass list, and exactly the int8 weights `exec` holds.
pub fn mirror(exec: &DeviceMatmul, twin: &mut DeviceMatmul, model: &Model) -> Result<()> {
    twin.set_faults(exec.fault_map())?;
    twin.set_bypass(exec.bypass())?;
    twin.set_plain_rotations(&exec.plain_rotations());
    for l in model.layers() {
        let held = exec.held(l.index).map(<[i8]>::to_vec).unwrap_or_else(|| l.int8_weights());
        twin.install(l.index, &held, l.k, l.n).map_err(|e| Error::Exec {
            layer: l.index,
            name: l.name.clone(),
            source: e.into(),
        })?;
    }
    Ok(())
}

/// Per faulty PE of `meas`'s fault map not already bypassed (the
/// candidates), with the current weights on `calib` and every other
/// candidate bypassed: the loss and accuracy with the PE faulty, healthy
/// (its entries removed from the map) and bypassed; bypass it where its
/// fault costs more than `tolerance`. Measuring with the other candidates
/// bypassed, not on the faulty chip, keeps one PE's effect visible when
/// others are catastrophic: with several stuck high psum bits in the loop
/// the loss saturates and no single PE changes it. A bypassed PE's weights
/// contribute nothing on the device, so the device result with a PE
/// bypassed is exactly that of the pruned model. `meas`'s fault map and
/// bypass list are restored afterwards.
pub fn triage(
    model: &Model,
    calib: &Dataset,
    batch: usize,
    meas: &mut DeviceMatmul,
    tolerance: f64,
) -> Result<Triage> {
    let Some(map) = meas.fault_map().cloned() else {
        return Ok(Triage {
            at_step: None,
            calibration_samples: calib.len(),
            device: meas.device_name().to_string(),
            tolerance,
            pes: Vec::new(),
            rotations: None,
        });
    };
    let (rows, cols) = (meas.info().rows, meas.info().cols);
    let base = meas.bypass().to_vec();
    let cands: Vec<[usize; 2]> = faulty_pes(&map)
        .into_iter()
        .filter(|pe| !base.contains(pe) && !map.bypass.contains(pe))
        .collect();
    let all = union(&base, &cands);
    meas.set_bypass(&all)?;
    let (loss_bypassed, accuracy_bypassed) = loss_and_accuracy(model, calib, batch, meas)?;
    let mut pes = Vec::new();
    for &pe in &cands {
        let others: Vec<[usize; 2]> = all.iter().filter(|&&p| p != pe).copied().collect();
        meas.set_bypass(&others)?;
        let (loss_kept, accuracy_kept) = loss_and_accuracy(model, calib, batch, meas)?;
        let healthy = FaultMap {
            faults: map.faults.iter().filter(|f| [f.row, f.col] != pe).copied().collect(),
            ..map.clone()
        };
        meas.set_faults(Some(&healthy))?;
        let (loss_healthy, accuracy_healthy) = loss_and_accuracy(model, calib, batch, meas)?;
        meas.set_faults(Some(&map))?;
        let mut weights = 0;
        for l in model.layers() {
            let rot = meas.plain_rotation(l.index);
            weights +=
                pruned_mask(l.k, l.n, rows, cols, &[pe], rot)?.iter().filter(|&&p| p).count();
        }
        let fault_cost = loss_kept - loss_healthy;
        pes.push(PeTriage {
            row: pe[0],
            col: pe[1],
            faults: map.faults.iter().filter(|f| [f.row, f.col] == pe).copied().collect(),
            weights,
            loss_kept,
            loss_healthy,
            loss_bypassed,
            fault_cost,
            delta_loss: loss_kept - loss_bypassed,
            accuracy_kept,
            accuracy_healthy,
            accuracy_bypassed,
            bypass: fault_cost > tolerance,
        });
    }
    meas.set_bypass(&base)?;
    Ok(Triage {
        at_step: None,
        calibration_samples: calib.len(),
        device: meas.device_name().to_string(),
        tolerance,
        pes,
        rotations: None,
    })
}

/// Where measurements of `exec`'s chip run: `twin`, made a mirror of
/// `exec` first (same results, much faster than a simulator), or, without
/// one, `exec` itself.
pub fn measuring<'a>(
    model: &Model,
    exec: &'a mut DeviceMatmul,
    twin: Option<&'a mut DeviceMatmul>,
) -> Result<&'a mut DeviceMatmul> {
    match twin {
        Some(t) => {
            mirror(exec, t, model)?;
            Ok(t)
        }
        None => Ok(exec),
    }
}

/// [`triage`] on [`measuring`]`(model, exec, twin)`.
pub fn triage_on(
    model: &Model,
    calib: &Dataset,
    batch: usize,
    exec: &mut DeviceMatmul,
    twin: Option<&mut DeviceMatmul>,
    tolerance: f64,
) -> Result<Triage> {
    triage(model, calib, batch, measuring(model, exec, twin)?, tolerance)
}

/// The default triage tolerance (mean cross-entropy): a fault costing less
/// is as good as harmless (see docs/training.md, "Mitigation").
pub const DEFAULT_TOLERANCE: f64 = 0.002;

/// What an evaluation applies ([`for_eval`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMitigation {
    pub mitigation: Mitigation,
    /// Bypassed on top of the fault map, sorted.
    pub bypass: Vec<[usize; 2]>,
    /// `[dr, dc]` of each layer's plain runs, by layer index (empty: all
    /// (0, 0)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<[u8; 2]>,
    /// Per-PE measurements (`auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triage: Option<Triage>,
}

/// What `auto` measures on in [`for_eval`].
#[derive(Debug, Clone, Copy)]
pub struct AutoOptions<'a> {
    /// Held-out images the triage and the rotation choice measure on.
    pub calib: &'a Dataset,
    pub batch: usize,
    /// Choose each layer's rotation for the bypass list ([`choose_rotations`]).
    pub rotations: bool,
}

/// Set `exec`'s bypass list and layer rotations for evaluating a checkpoint
/// (weights installed) under `mitigation`; no retraining happens here:
/// * absent: as the checkpoint records (its mitigation, bypass list and
///   rotations; `fat` when it records none);
/// * `none`: no bypass at all and every layer at rotation (0, 0), the
///   faults as they are;
/// * `fat`: the checkpoint's bypass list and rotations, nothing added;
/// * `fap`: the checkpoint's list plus every faulty PE, its rotations;
/// * `auto`: the checkpoint's list plus the PEs [`triage`] picks on
///   `auto.calib` (on `twin` if given), then (with `auto.rotations`) the
///   rotations [`choose_rotations`] picks for that list.
pub fn for_eval(
    model: &Model,
    mitigation: Option<Mitigation>,
    recorded: Option<&MitigationRecord>,
    exec: &mut DeviceMatmul,
    twin: Option<&mut DeviceMatmul>,
    auto: Option<AutoOptions<'_>>,
) -> Result<EvalMitigation> {
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    let (carried, carried_rot) = match recorded {
        Some(r) => (r.bypass_for(rows, cols)?.to_vec(), r.rotations_for(rows, cols)?.to_vec()),
        None => (Vec::new(), Vec::new()),
    };
    let faulty = exec.fault_map().map(faulty_pes).unwrap_or_default();
    let mut triage_out = None;
    let (m, bypass, rotations) = match mitigation {
        None => (recorded.map_or(Mitigation::Fat, |r| r.mitigation), carried, carried_rot),
        Some(Mitigation::None) => (Mitigation::None, Vec::new(), Vec::new()),
        Some(Mitigation::Fat) => (Mitigation::Fat, carried, carried_rot),
        Some(Mitigation::Fap) => (Mitigation::Fap, union(&carried, &faulty), carried_rot),
        Some(Mitigation::Auto) => {
            let o =
                auto.ok_or_else(|| Error::Config("--mitigate auto needs calibration data".into()))?;
            exec.set_bypass(&carried)?;
            exec.set_plain_rotations(&carried_rot);
            // One mirror for both measurements: each leaves the device as
            // it found it.
            let meas = measuring(model, exec, twin)?;
            let mut t = triage(model, o.calib, o.batch, meas, DEFAULT_TOLERANCE)?;
            let b = union(&carried, &t.bypassed());
            let mut rots = carried_rot;
            if o.rotations {
                let c = choose_rotations(model, o.calib, o.batch, meas, &b)?;
                if !c.layers.is_empty() {
                    rots = c.rotations();
                }
                t.rotations = Some(c);
            }
            triage_out = Some(t);
            (Mitigation::Auto, b, rots)
        }
    };
    exec.set_bypass(&bypass)?;
    exec.set_plain_rotations(&rotations);
    let rotations = exec.plain_rotations();
    Ok(EvalMitigation { mitigation: m, bypass, rotations, triage: triage_out })
}

/// The error for a bypass list together with partial TMR.
pub fn tmr_conflict(bypass: &[[usize; 2]]) -> Result<()> {
    if bypass.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} bypassed PE(s) and --tmr-budget: pruning follows each layer's one rotation, TMR \
         runs layers under three where a bypassed PE holds other weights; use one or the other \
         (eval --mitigate none ignores a checkpoint's bypass list)",
        bypass.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mitigation::ALL {
            assert_eq!(m.to_string().parse::<Mitigation>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.to_string());
        }
        let e = "tmr".parse::<Mitigation>().unwrap_err();
        assert_eq!(e.to_string(), "mitigation `tmr`: expected none, fap, fat or auto");
    }

    #[test]
    fn pruned_mask_follows_the_residues() {
        // 10x7 on 4x3: PE (1, 2) holds k ∈ {1, 5, 9}, n ∈ {2, 5}.
        let m = pruned_mask(10, 7, 4, 3, &[[1, 2]], (0, 0)).unwrap();
        let want: Vec<bool> =
            (0..70).map(|i| [1, 5, 9].contains(&(i / 7)) && [2, 5].contains(&(i % 7))).collect();
        assert_eq!(m, want);
        // Under rotation (1, 1) it holds k ≡ 0 (mod 4), n ≡ 1 (mod 3).
        let m = pruned_mask(10, 7, 4, 3, &[[1, 2]], (1, 1)).unwrap();
        let want: Vec<bool> =
            (0..70).map(|i| [0, 4, 8].contains(&(i / 7)) && [1, 4].contains(&(i % 7))).collect();
        assert_eq!(m, want);
        assert!(pruned_mask(10, 7, 4, 3, &[[4, 0]], (0, 0)).is_err());
        assert!(pruned_mask(10, 7, 4, 3, &[], (2, 2)).unwrap().iter().all(|&p| !p));
    }

    #[test]
    fn rotated_energy_is_the_shifted_per_pe_energy() {
        // 4x4 weights on a 2x2 array: PE (p, q) at (0, 0) holds k ≡ p, n ≡ q.
        let w: Vec<i8> = (0..16).map(|i| i as i8).collect();
        let e = pe_energy(&w, 4, 4, 2, 2).unwrap();
        let sq = |idx: &[usize]| idx.iter().map(|&i| (i * i) as f64).sum::<f64>();
        assert_eq!(
            e,
            [sq(&[0, 2, 8, 10]), sq(&[1, 3, 9, 11]), sq(&[4, 6, 12, 14]), sq(&[5, 7, 13, 15])]
        );
        let total: f64 = e.iter().sum();
        let on = [true, false, false, false];
        assert_eq!(energy_on(&e, &on, 2, 2, (0, 0)), e[0] / total);
        // Rotation (1, 1) puts the weights of (0, 0)-PE (1, 1) on PE (0, 0).
        assert_eq!(energy_on(&e, &on, 2, 2, (1, 1)), e[3] / total);
        assert_eq!(energy_on(&e, &on, 2, 2, (0, 1)), e[1] / total);
    }

    #[test]
    fn record_checks_the_array() {
        let r = MitigationRecord {
            mitigation: Mitigation::Fap,
            array: [4, 4],
            bypass: vec![[1, 1]],
            rotations: vec![[0, 0], [3, 2]],
        };
        assert_eq!(r.bypass_for(4, 4).unwrap(), &[[1, 1]]);
        let e = r.bypass_for(8, 8).unwrap_err().to_string();
        assert!(e.contains("4x4") && e.contains("8x8"), "{e}");
        let small = MitigationRecord { array: [2, 2], bypass: vec![], ..r.clone() };
        assert!(small.rotations_for(2, 2).unwrap_err().to_string().contains("(3, 2)"));
        // Older checkpoints have no rotations: all (0, 0).
        let old: MitigationRecord =
            serde_json::from_str(r#"{"mitigation":"fap","array":[4,4],"bypass":[[1,1]]}"#).unwrap();
        assert!(old.rotations.is_empty());
        let j = serde_json::to_string(&MitigationRecord { rotations: vec![], ..r }).unwrap();
        assert!(!j.contains("rotations"), "{j}");
    }
}
