//! Hardware-in-the-loop retraining (R2F): the forward pass runs on the
//! (faulty) device through a [`DeviceMatmul`], the backward pass on the host
//! (straight-through), and after every optimizer step only the int8 weights
//! that changed are shipped back (see [`crate::device`]).
//!
//! [`retrain`] runs a [`RetrainRun`] and returns a [`RetrainReport`]: one
//! [`RetrainEpoch`] per epoch, the byte/MAC [`Totals`], and the derived
//! figures (bytes saved, seconds per epoch, link-model seconds).
//!
//! Choices (all recorded in the checkpoint):
//! * Weight scales are frozen and activation observers off, so an update
//!   changes only int8 weight values and biases (biases live on the host).
//! * Each epoch trains on `train_samples` examples drawn without replacement
//!   from the whole training set by `faultloop_proto::rng::Rng` seeded with
//!   (`seed`, epoch), in that random order — a pure function of the seed, so
//!   a resumed run sees exactly the batches an uninterrupted one would.
//! * The optimizer is Adam implemented here ([`Adam`]) so that its state
//!   (moments and step count) is saved with every checkpoint; learning rate
//!   cosine-decayed per epoch like pretraining.
//! * Checkpoints (every `checkpoint_every` steps and at each epoch end) are a
//!   normal trainer checkpoint directory plus `adam.safetensors` and
//!   `retrain_state.json` (progress, history, byte totals, and the int8
//!   weights the device holds, which differ from the master weights when a
//!   threshold keeps residuals on the host). It is written to a sibling
//!   directory and renamed into place, so an interruption at any moment
//!   leaves the last finished checkpoint intact. `resume` reloads all of it,
//!   rewrites the device weights and fault map, and continues at the next
//!   unfinished step: the results equal an uninterrupted run's (stuck-at
//!   faults; transient SEU flips depend on the device's operation counter,
//!   which a fresh device restarts).
//! * Mitigation (`config.mitigation`, [`crate::mitigate`]): `fat` retrains
//!   with the faults in the loop; `fap` bypasses every faulty PE of the
//!   executor's fault map before the first step and prunes and freezes the
//!   weights on them; `auto` runs the first `triage_epochs` (default 0) as
//!   FAT, then triages each faulty PE on a held-out calibration subset (on
//!   the fast twin when [`retrain_with`] gets one), bypasses and prunes those
//!   that cost more in the loop than bypassed, and retrains for the rest of
//!   the same number of steps. A
//!   bypass list already on the executor (a mitigated checkpoint's) is kept.
//!   The state records the bypass list and the triage, so a resumed run
//!   freezes the same weights; the checkpoint records the bypass list.
use std::path::{Path, PathBuf};
use std::time::Instant;

use faultloop_proto::rng::Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use crate::checkpoint;
use crate::data::Dataset;
use crate::device::{Compress, DeviceMatmul, DeviceUsage, LayerMode, UpdateBudget, UpdateStats};
use crate::error::{Error, Result};
use crate::eval;
use crate::link_model::link_seconds;
use crate::mitigate::{self, Freeze, Mitigation, MitigationRecord, Triage};
use crate::model::Model;

pub const STATE_FILE: &str = "retrain_state.json";
pub const ADAM_FILE: &str = "adam.safetensors";
/// `auto`: the weights of the best candidate so far (see [`Selection`]).
pub const BEST_FILE: &str = "best.safetensors";
const STATE_FORMAT: &str = "faultloop-retrain-state";

/// Adam (Kingma & Ba) over a VarStore's trainable variables, with savable state.
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub step: i64,
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    pub fn new(vs: &nn::VarStore) -> Adam {
        let mut vars: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, t)| t.zeros_like().detach()).collect();
        let v = vars.iter().map(|(_, t)| t.zeros_like().detach()).collect();
        let (names, params) = vars.into_iter().unzip();
        Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 0, names, params, m, v }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) {
        self.zero_grad();
        loss.backward();
        self.step(lr);
    }

    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for ((p, m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                let denom = (&*v / bc2).sqrt() + self.eps;
                let upd = &*m / bc1 / denom * lr;
                let _ = p.g_sub_(&upd);
            }
        });
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (i, n) in self.names.iter().enumerate() {
            named.push((format!("m.{n}"), self.m[i].shallow_clone()));
            named.push((format!("v.{n}"), self.v[i].shallow_clone()));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        Tensor::write_safetensors(&named, path)
            .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), msg: e.to_string() })
    }

    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
        let named = Tensor::read_safetensors(path).map_err(|e| bad(e.to_string()))?;
        let get = |k: &str| {
            named
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| bad(format!("no tensor {k}")))
        };
        for (i, n) in self.names.clone().iter().enumerate() {
            let (m, v) = (get(&format!("m.{n}"))?, get(&format!("v.{n}"))?);
            if m.size() != self.m[i].size() || v.size() != self.v[i].size() {
                return Err(bad(format!("optimizer state for {n} has the wrong shape")));
            }
            tch::no_grad(|| {
                self.m[i].copy_(&m);
                self.v[i].copy_(&v);
            });
        }
        self.step = get("step")?.int64_value(&[0]);
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak Adam learning rate (cosine-decayed per epoch).
    pub lr: f64,
    pub cosine: bool,
    /// Training examples per epoch (0 = the whole training set).
    pub train_samples: usize,
    pub seed: u64,
    pub compress: Compress,
    /// Minimum |Δ| in int8 steps for a weight to be sent (1 = every change).
    pub threshold: u8,
    /// Weight-update bytes per step at most (sparse only; `None`: unbounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_budget: Option<UpdateBudget>,
    /// Checkpoint every this many steps (0 = only at epoch ends).
    pub checkpoint_every: usize,
    pub eval_batch: usize,
    /// Stop after this many steps in this run without saving, as a crash
    /// would; for tests of resuming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after_steps: Option<usize>,
    /// `fat`, `fap` or `auto` (`none` is refused: nothing to retrain for).
    #[serde(default)]
    pub mitigation: Mitigation,
    /// `auto`: epochs of FAT before the triage (part of `epochs`; 0: triage
    /// before the first step).
    #[serde(default = "default_triage_epochs")]
    pub triage_epochs: f64,
    /// `auto`: calibration examples the triage measures on.
    #[serde(default = "default_triage_samples")]
    pub triage_samples: usize,
    /// `auto`: bypass a PE whose fault costs more mean cross-entropy than this.
    #[serde(default = "default_triage_tolerance")]
    pub triage_tolerance: f64,
    /// `auto`: after the triage, choose each layer's tile rotation for the
    /// bypass list ([`mitigate::choose_rotations`]); off: rotation (0, 0)
    /// (or the input checkpoint's).
    #[serde(default = "default_triage_rotations")]
    pub triage_rotations: bool,
    /// `auto`: held-out training images the final choice among the
    /// triaged start, the end and their blend is measured on ([`Selection`];
    /// 0: `triage_samples`).
    #[serde(default = "default_selection_samples")]
    pub selection_samples: usize,
    /// Sample-steps (training samples processed since the start) after
    /// which the test subset is evaluated as well, ascending: one run then
    /// yields the accuracy after every amount (`faultloop resilience`).
    /// A mark at an epoch's end reuses that epoch's evaluation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eval_marks: Vec<u64>,
}

fn default_triage_tolerance() -> f64 {
    mitigate::DEFAULT_TOLERANCE
}

fn default_selection_samples() -> usize {
    5000
}

fn default_triage_rotations() -> bool {
    true
}

fn default_triage_epochs() -> f64 {
    0.0
}

fn default_triage_samples() -> usize {
    1000
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            epochs: 2,
            batch_size: 64,
            lr: 1e-3,
            cosine: true,
            train_samples: 4000,
            seed: 1,
            compress: Compress::Sparse,
            threshold: 1,
            update_budget: None,
            checkpoint_every: 20,
            eval_batch: 500,
            stop_after_steps: None,
            mitigation: Mitigation::Fat,
            triage_epochs: default_triage_epochs(),
            triage_samples: default_triage_samples(),
            triage_tolerance: default_triage_tolerance(),
            triage_rotations: default_triage_rotations(),
            selection_samples: default_selection_samples(),
            eval_marks: Vec::new(),
        }
    }
}

impl RetrainConfig {
    pub fn lr_at(&self, epoch: usize) -> f64 {
        if !self.cosine || self.epochs == 0 {
            return self.lr;
        }
        let t = (epoch as f64 + 0.5) / self.epochs as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }

    pub fn samples_per_epoch(&self, train_len: usize) -> usize {
        if self.train_samples == 0 {
            train_len
        } else {
            self.train_samples.min(train_len)
        }
    }

    pub fn steps_per_epoch(&self, train_len: usize) -> usize {
        self.samples_per_epoch(train_len).div_ceil(self.batch_size.max(1))
    }

    /// Training samples processed after `steps` global steps.
    pub fn samples_after(&self, train_len: usize, steps: usize) -> u64 {
        let (spe, samples) = (self.steps_per_epoch(train_len), self.samples_per_epoch(train_len));
        let (full, rest) = (steps / spe.max(1), steps % spe.max(1));
        (full * samples + (rest * self.batch_size).min(samples)) as u64
    }

    /// The fewest global steps after which at least `samples` training
    /// samples have been processed.
    pub fn steps_for_samples(&self, train_len: usize, samples: u64) -> usize {
        let (spe, per) = (self.steps_per_epoch(train_len), self.samples_per_epoch(train_len));
        let per = per.max(1) as u64;
        let (full, rest) = ((samples / per) as usize, samples % per);
        full * spe + (rest as usize).div_ceil(self.batch_size.max(1))
    }

    /// `auto`: the number of steps done when the triage runs (before the
    /// next one; at most the run's last step).
    pub fn triage_step(&self, train_len: usize) -> usize {
        let spe = self.steps_per_epoch(train_len);
        let s = (self.triage_epochs.max(0.0) * spe as f64).round() as usize;
        s.min((spe * self.epochs).saturating_sub(1))
    }

    /// Whether two configs describe the same run (ignores `stop_after_steps`
    /// and the checkpoint interval).
    fn same_run(&self, o: &RetrainConfig) -> bool {
        let strip = |c: &RetrainConfig| RetrainConfig {
            stop_after_steps: None,
            checkpoint_every: 0,
            ..c.clone()
        };
        strip(self) == strip(o)
    }
}

/// The example indices of `epoch`, in training order.
pub fn epoch_order(seed: u64, epoch: usize, train_len: usize, samples: usize) -> Vec<usize> {
    let mut rng = Rng::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.sample_indices(train_len, samples.min(train_len))
}

/// One epoch of retraining on the device (the host-pretraining
/// counterpart is [`crate::train::PretrainEpoch`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainEpoch {
    /// 1-based.
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    /// On the device, of the training minibatches.
    pub train_accuracy: f64,
    /// Test-subset accuracy on the device after the epoch.
    pub test_accuracy: f64,
    pub steps: usize,
    /// Weight-update bytes this epoch: dense equivalent and sent.
    pub bytes_dense: u64,
    pub bytes_sent: u64,
    /// The most weight-update bytes sent in one step of this epoch.
    #[serde(default)]
    pub bytes_max: u64,
    /// Wall seconds of training (not evaluation) this epoch.
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct EpochAcc {
    loss_sum: f64,
    correct: i64,
    seen: usize,
    bytes_dense: u64,
    bytes_sent: u64,
    #[serde(default)]
    bytes_max: u64,
    seconds: f64,
}

/// The test accuracy at one of [`RetrainConfig::eval_marks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkEval {
    /// The mark (sample-steps).
    pub samples: u64,
    /// Global steps done when it was evaluated (the first step reaching it).
    pub steps: usize,
    pub test_accuracy: f64,
}

/// Totals carried across a resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub steps: usize,
    pub update: UpdateStats,
    /// The most weight-update bytes sent in one step.
    #[serde(default)]
    pub bytes_per_step_max: u64,
    pub bytes_to_device: u64,
    pub bytes_from_device: u64,
    pub device_macs: u64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

impl Totals {
    /// The device counters these totals carry.
    pub fn usage(&self) -> DeviceUsage {
        DeviceUsage {
            bytes_to_device: self.bytes_to_device,
            bytes_from_device: self.bytes_from_device,
            device_macs: self.device_macs,
            update: self.update,
        }
    }

    fn set_usage(&mut self, u: DeviceUsage) {
        self.bytes_to_device = u.bytes_to_device;
        self.bytes_from_device = u.bytes_from_device;
        self.device_macs = u.device_macs;
        self.update = u.update;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    format: String,
    config: RetrainConfig,
    /// Next epoch to run (0-based) and the steps of it already done.
    epoch: usize,
    step_in_epoch: usize,
    accuracy_before: f64,
    history: Vec<RetrainEpoch>,
    acc: EpochAcc,
    totals: Totals,
    /// What the device holds, per layer (K×N int8).
    held: Vec<Vec<i8>>,
    /// PEs bypassed on top of the fault map, their weights pruned and frozen.
    #[serde(default)]
    bypass: Vec<[usize; 2]>,
    /// `[dr, dc]` of each layer's plain runs (the pruning follows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rotations: Vec<[u8; 2]>,
    /// `auto`: the triage, once it ran.
    #[serde(default)]
    triage: Option<Triage>,
    /// The evaluations at `config.eval_marks` so far.
    #[serde(default)]
    marks: Vec<MarkEval>,
    /// `auto`: the candidates measured on the selection images so far.
    #[serde(default)]
    selection: Vec<SelectionPoint>,
    /// `auto`: the candidate the run ended with, once applied (a resume
    /// after that finds it in place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selected: Option<SelectionPoint>,
    /// `auto`: the device weights of the best candidate (its float weights
    /// are in [`BEST_FILE`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    best_held: Vec<Vec<i8>>,
    /// SHA-256 of `adam.safetensors` as written (absent in older states: not
    /// checked), so a corrupted optimizer state is refused on resume.
    #[serde(default)]
    adam_sha256: Option<String>,
}

/// `auto`'s choice of weights among three candidates: the triaged start
/// (the faults the triage keeps in the loop, the bypass list and rotations
/// applied, no step taken yet), the retrained end, and their blend (the
/// mean of the two, [`BLEND`]), whichever is most accurate on
/// `selection_samples` held-out training images that no step of the run
/// trains on (on ties the end, then the blend). Retraining a converged
/// model at the default learning rate can cost more than the faults kept
/// in the loop do; then the start or the blend wins. The measurements run
/// on the fast twin when there is one. (Mid-run epochs are not candidates:
/// before the cosine schedule has annealed they are noisier, and a tie on
/// 1000 images picked them over a better end; 1000 images were also too
/// few to tell the start from the end, hence 5000 by default.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Held-out training images measured on.
    pub samples: usize,
    pub candidates: Vec<SelectionPoint>,
    /// Global step of the weights the run ended with ...
    pub selected_steps: usize,
    /// ... and the triaged start's share in them (0: those weights alone).
    #[serde(default)]
    pub selected_blend: f64,
}

/// One candidate of [`Selection`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SelectionPoint {
    /// Global steps done when it was measured.
    pub steps: usize,
    pub accuracy: f64,
    /// The triaged start's share in these weights: 0 for the weights at
    /// `steps`, [`BLEND`] for the mean of the start and the end.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blend: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// `auto`'s third candidate: the triaged start's share in a blend of the
/// start and the retrained end (the weights averaged, WiSE-FT, Wortsman et
/// al. CVPR 2022): fine-tuning from the start stays in its basin, and the
/// average often beats both ends.
pub const BLEND: f64 = 0.5;

/// What a retraining run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainReport {
    pub config: RetrainConfig,
    pub accuracy_before: f64,
    pub accuracy_after: f64,
    pub history: Vec<RetrainEpoch>,
    pub totals: Totals,
    pub steps_per_epoch: usize,
    pub samples_per_epoch: usize,
    pub test_samples: usize,
    /// Weight-update bytes per step: a dense rewrite vs what was sent.
    pub bytes_per_step_dense: f64,
    pub bytes_per_step_sent: f64,
    /// The most sent in one step.
    pub bytes_per_step_max: u64,
    /// `config.update_budget` in bytes (the dense bytes of one full update
    /// resolve a fraction).
    pub update_budget_bytes: Option<u64>,
    /// Step this run resumed at (global), if it resumed.
    pub resumed_at_step: Option<usize>,
    /// True when every epoch finished (false after `stop_after_steps`).
    pub finished: bool,
    pub mitigation: Mitigation,
    /// PEs bypassed on top of the fault map (sorted).
    pub bypass: Vec<[usize; 2]>,
    /// `[dr, dc]` of each layer's plain runs, by layer index (empty: all
    /// (0, 0)); the pruning follows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<[u8; 2]>,
    /// Weights pruned and frozen at 0 (those on bypassed PEs).
    pub pruned_weights: usize,
    /// `auto`: the per-PE measurements and decisions.
    pub triage: Option<Triage>,
    /// The accuracy at each of `config.eval_marks` reached.
    pub marks: Vec<MarkEval>,
    /// `auto`: the weights chosen among the triaged start and each epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

impl RetrainReport {
    /// Weight-update bytes saved against dense rewrites, % of dense.
    pub fn bytes_saved_pct(&self) -> f64 {
        100.0 * (1.0 - self.bytes_per_step_sent / self.bytes_per_step_dense.max(1e-9))
    }

    /// Training wall seconds per epoch (evaluation not included).
    pub fn seconds_per_epoch(&self) -> f64 {
        self.totals.train_seconds / self.history.len().max(1) as f64
    }

    /// Link-model seconds of all the traffic (to and from the device) at `bps`.
    pub fn link_seconds(&self, bps: f64) -> f64 {
        link_seconds(self.totals.bytes_to_device + self.totals.bytes_from_device, bps)
    }

    /// Link-model seconds of the weight updates alone at `bps`.
    pub fn link_seconds_weight_updates(&self, bps: f64) -> f64 {
        link_seconds(self.totals.update.bytes_sent, bps)
    }
}

/// Progress events for bars and logs.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Start { steps_total: usize, steps_done: usize },
    Step { epoch: usize, step: usize, loss: f64 },
    Eval { what: &'static str },
    Epoch(&'a RetrainEpoch),
    Mark(&'a MarkEval),
    Checkpoint { steps_done: usize },
}

fn subset(data: &Dataset, idx: &[usize]) -> (Tensor, Tensor) {
    let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let t = Tensor::from_slice(&idx);
    (data.images.index_select(0, &t), data.labels.index_select(0, &t))
}

fn save_state(
    dir: &Path,
    vs: &nn::VarStore,
    model: &Model,
    adam: &Adam,
    state: &State,
    array: [usize; 2],
    best: Option<&[(String, Tensor)]>,
) -> Result<()> {
    let tmp = sibling(dir, "saving");
    let old = sibling(dir, "old");
    let _ = std::fs::remove_dir_all(&tmp);
    let info = serde_json::json!({
        "retrain": {
            "config": state.config, "epochs_done": state.epoch, "steps_done": state.totals.steps,
            "accuracy_before": state.accuracy_before,
            "history": state.history,
        }
    });
    let record = MitigationRecord {
        mitigation: state.config.mitigation,
        array,
        bypass: state.bypass.clone(),
        rotations: state.rotations.clone(),
    };
    checkpoint::save_with(&tmp, vs, model, info, Some(&record))?;
    let apath = tmp.join(ADAM_FILE);
    adam.save(&apath)?;
    let state = State { adam_sha256: Some(checkpoint::file_sha256(&apath)?), ..state.clone() };
    if let Some(b) = best {
        let bpath = tmp.join(BEST_FILE);
        Tensor::write_safetensors(b, &bpath)
            .map_err(|e| Error::Checkpoint { path: bpath.clone(), msg: e.to_string() })?;
    }
    let spath = tmp.join(STATE_FILE);
    let text = serde_json::to_string(&state)
        .map_err(|source| Error::Json { path: spath.clone(), source })?;
    faultloop_proto::atomic::write_atomic(&spath, text.as_bytes())
        .map_err(|e| Error::io(&spath, e))?;
    // The swap: `tmp` is complete from here on. A kill between the two
    // renames leaves no `dir` but `old` and a complete `tmp`, which
    // [`recover_interrupted_save`] finishes.
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn sibling(dir: &Path, tag: &str) -> PathBuf {
    let name = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!(".{name}.{tag}"))
}

/// Finish a checkpoint swap that a kill interrupted between its two renames
/// (see `save_state`): no `dir`, the previous checkpoint in its `old` sibling
/// and the complete new one in its `saving` sibling. Returns whether it did.
pub fn recover_interrupted_save(dir: &Path) -> Result<bool> {
    let (tmp, old) = (sibling(dir, "saving"), sibling(dir, "old"));
    if dir.exists() || !old.is_dir() || !tmp.is_dir() {
        return Ok(false);
    }
    log::warn!("{}: finishing a checkpoint save that was interrupted", dir.display());
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(true)
}

/// Whether `dir` holds a resumable retraining state.
pub fn has_state(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file() && dir.join(ADAM_FILE).is_file()
}

/// One retraining run: what [`retrain`] trains, where, on what, and how.
pub struct RetrainRun<'a> {
    /// The model, built at `vs.root()`.
    pub model: &'a Model,
    pub vs: &'a mut nn::VarStore,
    /// The device every forward pass runs on.
    pub exec: &'a mut DeviceMatmul,
    pub train: &'a Dataset,
    /// The fixed evaluation subset (accuracy before, and after each epoch,
    /// on the same device).
    pub test: &'a Dataset,
    pub config: RetrainConfig,
    /// Checkpoints go here (none: no checkpoints).
    pub checkpoint: Option<&'a Path>,
    /// Continue the state found in `checkpoint` (an error if it belongs to a
    /// different configuration; a fresh start if there is none).
    pub resume: bool,
}

/// Retrain `run.model` with its forward pass on `run.exec`; `progress` sees
/// every step, evaluation, epoch and checkpoint.
pub fn retrain(run: RetrainRun<'_>, progress: &mut dyn FnMut(Progress)) -> Result<RetrainReport> {
    retrain_with(run, None, progress)
}

/// [`retrain`], with a fast twin of the device (same results, e.g.
/// `model:RxC` for `sim:RxC`) for the `auto` triage's measurements; without
/// one they run on `run.exec`.
pub fn retrain_with(
    run: RetrainRun<'_>,
    twin: Option<&mut DeviceMatmul>,
    progress: &mut dyn FnMut(Progress),
) -> Result<RetrainReport> {
    let device = run.exec.device_name().to_string();
    let ckpt = run.checkpoint.map(Path::to_path_buf);
    retrain_inner(run, twin, progress).map_err(|source| match &ckpt {
        // A run that stops (a board unplugged, a link gone) says what it
        // leaves behind, so the user knows what --resume will continue.
        Some(dir) => Error::Stopped { device, saved: saved_note(dir), source: Box::new(source) },
        None => source,
    })
}

/// What a stopped run leaves in `dir`, for its error message.
fn saved_note(dir: &Path) -> String {
    let steps = std::fs::read(dir.join(STATE_FILE))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| v["totals"]["steps"].as_u64());
    match steps {
        Some(s) if has_state(dir) => format!(
            "the last checkpoint (step {s}) is saved in {}; rerun with --resume to continue \
             from it",
            dir.display()
        ),
        _ => format!("no checkpoint was saved in {} yet", dir.display()),
    }
}

fn retrain_inner(
    run: RetrainRun<'_>,
    mut twin: Option<&mut DeviceMatmul>,
    progress: &mut dyn FnMut(Progress),
) -> Result<RetrainReport> {
    let RetrainRun { model, vs, exec, train, test, config, checkpoint: ckpt, resume } = run;
    let cfg = &config;
    if cfg.batch_size == 0 || cfg.eval_batch == 0 || cfg.lr.is_nan() || cfg.lr <= 0.0 {
        return Err(Error::Config(format!("{cfg:?}: batch sizes and lr must be > 0")));
    }
    if cfg.mitigation == Mitigation::None {
        return Err(Error::Config(
            "retraining with mitigation `none`: nothing to retrain for; `fat` retrains with the \
             faults in the loop, and `eval --mitigate none` measures the unmitigated chip"
                .into(),
        ));
    }
    let array = [exec.info().rows, exec.info().cols];
    let tmr_layers = (0..model.layers().len()).any(|i| exec.mode(i) == LayerMode::Tmr);
    let set_bypass =
        |exec: &mut DeviceMatmul, b: &[[usize; 2]], rots: &[[u8; 2]]| -> Result<Freeze> {
            if tmr_layers {
                mitigate::tmr_conflict(b)?;
            }
            exec.set_bypass(b)?;
            exec.set_plain_rotations(rots);
            Freeze::new(model, array[0], array[1], b, rots)
        };
    if train.is_empty() {
        return Err(Error::Config("empty training set".into()));
    }
    if cfg.eval_marks.windows(2).any(|w| w[0] >= w[1]) || cfg.eval_marks.first() == Some(&0) {
        return Err(Error::Config(format!(
            "evaluation marks {:?} must be > 0 and strictly ascending (0 is the accuracy before)",
            cfg.eval_marks
        )));
    }
    if cfg.update_budget.is_some() && cfg.compress == Compress::Dense {
        return Err(Error::Config("an update budget needs sparse updates, not dense".into()));
    }
    model.freeze_weight_scales();
    model.set_observe(false);
    exec.set_compress(cfg.compress);
    exec.set_threshold(cfg.threshold);
    // The budget is resolved and checked once every layer is installed
    // (a fraction is of their dense bytes); until then updates are unbounded.
    exec.set_update_budget(None)?;
    let mut adam = Adam::new(vs);
    let samples = cfg.samples_per_epoch(train.len());
    let steps_per_epoch = cfg.steps_per_epoch(train.len());

    if let (Some(dir), true) = (ckpt, resume) {
        recover_interrupted_save(dir)?;
    }
    let resumed = match ckpt {
        Some(dir) if resume && has_state(dir) => {
            let spath = dir.join(STATE_FILE);
            let text = std::fs::read(&spath).map_err(|e| Error::io(&spath, e))?;
            let st: State = serde_json::from_slice(&text)
                .map_err(|source| Error::Json { path: spath.clone(), source })?;
            if st.format != STATE_FORMAT || !st.config.same_run(cfg) {
                return Err(Error::Checkpoint {
                    path: spath,
                    msg: format!(
                        "cannot resume: saved configuration {:?} differs from {cfg:?}",
                        st.config
                    ),
                });
            }
            // Every part is checked before any is used: the weights against
            // meta.json's hash, the optimizer state against the state's.
            checkpoint::verify_weights(dir, &checkpoint::read_meta(dir)?)?;
            let apath = dir.join(ADAM_FILE);
            if let Some(want) = &st.adam_sha256 {
                let got = checkpoint::file_sha256(&apath)?;
                if &got != want {
                    return Err(Error::Checkpoint {
                        path: apath,
                        msg: format!(
                            "truncated or corrupted: its SHA-256 is {got}, {STATE_FILE} \
                             recorded {want}"
                        ),
                    });
                }
            }
            let wpath = dir.join(checkpoint::WEIGHTS_FILE);
            vs.load(&wpath)
                .map_err(|e| Error::Checkpoint { path: wpath.clone(), msg: e.to_string() })?;
            adam.load(&apath)?;
            if st.held.len() != model.layers().len() {
                return Err(Error::Checkpoint {
                    path: spath,
                    msg: "device weight copy does not match the model".into(),
                });
            }
            install_held(model, exec, &st.held)?;
            if st.triage.is_some() != (st.totals.steps > cfg.triage_step(train.len()))
                && cfg.mitigation == Mitigation::Auto
            {
                return Err(Error::Checkpoint {
                    path: spath,
                    msg: "the saved triage does not match the saved progress".into(),
                });
            }
            log::info!(
                "resuming {} at epoch {} step {} ({} steps done)",
                dir.display(),
                st.epoch + 1,
                st.step_in_epoch,
                st.totals.steps
            );
            Some(st)
        }
        _ => None,
    };
    let resumed_at_step = resumed.as_ref().map(|s| s.totals.steps);
    let fresh = resumed.is_none();
    if fresh {
        exec.install_model(model)?;
    }
    let mut st = match resumed {
        Some(s) => s,
        None => {
            progress(Progress::Eval { what: "before" });
            let t = Instant::now();
            let before = eval::accuracy(model, test, cfg.eval_batch, exec, |_| {})?;
            // A bypass list already on the executor (from the checkpoint) is
            // kept; fap adds every faulty PE.
            let carried = exec.bypass().to_vec();
            let bypass = match cfg.mitigation {
                Mitigation::Fap => mitigate::union(
                    &carried,
                    &exec.fault_map().map(mitigate::faulty_pes).unwrap_or_default(),
                ),
                _ => carried,
            };
            let rotations = exec.plain_rotations();
            State {
                format: STATE_FORMAT.into(),
                config: cfg.clone(),
                epoch: 0,
                step_in_epoch: 0,
                accuracy_before: before,
                history: Vec::new(),
                acc: EpochAcc::default(),
                totals: Totals { eval_seconds: t.elapsed().as_secs_f64(), ..Default::default() },
                held: Vec::new(),
                bypass,
                rotations,
                triage: None,
                marks: Vec::new(),
                selection: Vec::new(),
                selected: None,
                best_held: Vec::new(),
                adam_sha256: None,
            }
        }
    };
    let mut freeze = set_bypass(exec, &st.bypass, &st.rotations)?;
    st.config = cfg.clone();
    // Device-side counters of this run, added to the saved totals.
    let (saved, start) = (st.totals.usage(), exec.usage());
    let sync_totals =
        |st: &mut State, exec: &DeviceMatmul| st.totals.set_usage(saved + (exec.usage() - start));
    if fresh && freeze.pruned() > 0 {
        // Ship the pruned zeros, so the device copy is the model.
        model.sync_weights(exec)?;
    }
    // The budget bounds the training steps' updates; the install and the
    // pruned zeros above go out whole.
    let budget_bytes = cfg.update_budget.map(|b| b.bytes(exec.dense_update_bytes()));
    exec.set_update_budget(budget_bytes)?;
    // `auto`: the selection images and the best candidate's float weights.
    let select_set = (cfg.mitigation == Mitigation::Auto).then(|| selection_subset(cfg, train));
    let mut best: Option<Vec<(String, Tensor)>> = None;
    if let (Some(dir), false) = (ckpt, st.best_held.is_empty()) {
        let bpath = dir.join(BEST_FILE);
        best = Some(
            Tensor::read_safetensors(&bpath)
                .map_err(|e| Error::Checkpoint { path: bpath.clone(), msg: e.to_string() })?,
        );
    }
    let save = |st: &mut State,
                exec: &DeviceMatmul,
                adam: &Adam,
                vs: &nn::VarStore,
                best: Option<&[(String, Tensor)]>|
     -> Result<()> {
        if let Some(dir) = ckpt {
            st.held = held_weights(model, exec);
            save_state(dir, vs, model, adam, st, array, best)?;
            st.held.clear();
        }
        Ok(())
    };
    // Measure the current weights as a selection candidate; the triaged
    // start (`keep`) is also kept, to end with if it beats the end.
    // Accuracy on the selection images, on the twin (a mirror of `exec`)
    // when there is one: the same results, much faster than a simulator.
    let select_accuracy =
        |exec: &mut DeviceMatmul, twin: Option<&mut DeviceMatmul>, set: &Dataset| -> Result<f64> {
            let meas = mitigate::measuring(model, exec, twin)?;
            eval::accuracy(model, set, cfg.eval_batch, meas, |_| {})
        };
    let consider = |st: &mut State,
                    exec: &mut DeviceMatmul,
                    twin: Option<&mut DeviceMatmul>,
                    vs: &nn::VarStore,
                    best: &mut Option<Vec<(String, Tensor)>>,
                    keep: bool|
     -> Result<()> {
        let Some(set) = &select_set else { return Ok(()) };
        let t = Instant::now();
        let accuracy = select_accuracy(exec, twin, set)?;
        st.totals.eval_seconds += t.elapsed().as_secs_f64();
        st.selection.push(SelectionPoint { steps: st.totals.steps, accuracy, blend: 0.0 });
        if keep {
            *best = Some(snapshot(vs));
            st.best_held = held_weights(model, exec);
        }
        Ok(())
    };

    progress(Progress::Start {
        steps_total: steps_per_epoch * cfg.epochs,
        steps_done: st.totals.steps,
    });
    let mut run_steps = 0usize;
    let mut finished = true;
    'epochs: while st.epoch < cfg.epochs {
        let epoch = st.epoch;
        let lr = cfg.lr_at(epoch);
        let order = epoch_order(cfg.seed, epoch, train.len(), samples);
        while st.step_in_epoch < steps_per_epoch {
            if cfg.stop_after_steps.is_some_and(|n| run_steps >= n) {
                finished = false;
                break 'epochs;
            }
            if cfg.mitigation == Mitigation::Auto
                && st.triage.is_none()
                && st.totals.steps == cfg.triage_step(train.len())
            {
                progress(Progress::Eval { what: "triage" });
                run_triage(model, train, cfg, exec, twin.as_deref_mut(), &mut st)?;
                freeze = set_bypass(exec, &st.bypass, &st.rotations)?;
                model.sync_weights(exec)?;
                consider(&mut st, exec, twin.as_deref_mut(), vs, &mut best, true)?;
            }
            let t0 = Instant::now();
            let s = st.step_in_epoch;
            let idx = &order[s * cfg.batch_size..((s + 1) * cfg.batch_size).min(order.len())];
            let (xs, ys) = subset(train, idx);
            let logits = model.forward_exec(&xs, true, Some(&mut *exec))?;
            let loss = logits.cross_entropy_for_logits(&ys);
            adam.backward_step(&loss, lr);
            freeze.apply();
            let before = exec.update_stats();
            exec.sync_model(model)?;
            let after = exec.update_stats();
            let loss_v = loss.double_value(&[]);
            let a = &mut st.acc;
            a.loss_sum += loss_v * idx.len() as f64;
            a.correct +=
                logits.detach().argmax(-1, false).eq_tensor(&ys).sum(Kind::Int64).int64_value(&[]);
            a.seen += idx.len();
            a.bytes_dense += after.bytes_dense - before.bytes_dense;
            let sent = after.bytes_sent - before.bytes_sent;
            a.bytes_sent += sent;
            a.bytes_max = a.bytes_max.max(sent);
            st.totals.bytes_per_step_max = st.totals.bytes_per_step_max.max(sent);
            a.seconds += t0.elapsed().as_secs_f64();
            st.totals.train_seconds += t0.elapsed().as_secs_f64();
            st.step_in_epoch += 1;
            st.totals.steps += 1;
            run_steps += 1;
            progress(Progress::Step { epoch: epoch + 1, step: st.step_in_epoch, loss: loss_v });
            // Marks this step reached: one evaluation for all of them.
            let done = cfg.samples_after(train.len(), st.totals.steps);
            let next = st.marks.len();
            let reached = cfg.eval_marks[next.min(cfg.eval_marks.len())..]
                .iter()
                .take_while(|&&m| m <= done)
                .count();
            if reached > 0 {
                progress(Progress::Eval { what: "mark" });
                let t = Instant::now();
                let test_accuracy = eval::accuracy(model, test, cfg.eval_batch, exec, |_| {})?;
                st.totals.eval_seconds += t.elapsed().as_secs_f64();
                for &samples in &cfg.eval_marks[next..next + reached] {
                    st.marks.push(MarkEval { samples, steps: st.totals.steps, test_accuracy });
                    progress(Progress::Mark(st.marks.last().expect("pushed")));
                }
            }
            if cfg.checkpoint_every > 0
                && st.totals.steps % cfg.checkpoint_every == 0
                && st.step_in_epoch < steps_per_epoch
            {
                sync_totals(&mut st, exec);
                save(&mut st, exec, &adam, vs, best.as_deref())?;
                progress(Progress::Checkpoint { steps_done: st.totals.steps });
            }
        }
        progress(Progress::Eval { what: "epoch" });
        let t1 = Instant::now();
        // The same weights on the same device give the same accuracy: a
        // mark at this step already measured it.
        let test_acc = match st.marks.last() {
            Some(m) if m.steps == st.totals.steps => m.test_accuracy,
            _ => eval::accuracy(model, test, cfg.eval_batch, exec, |_| {})?,
        };
        let eval_seconds = t1.elapsed().as_secs_f64();
        st.totals.eval_seconds += eval_seconds;
        let a = std::mem::take(&mut st.acc);
        let rec = RetrainEpoch {
            epoch: epoch + 1,
            lr,
            train_loss: a.loss_sum / a.seen.max(1) as f64,
            train_accuracy: a.correct as f64 / a.seen.max(1) as f64,
            test_accuracy: test_acc,
            steps: steps_per_epoch,
            bytes_dense: a.bytes_dense,
            bytes_sent: a.bytes_sent,
            bytes_max: a.bytes_max,
            train_seconds: a.seconds,
            eval_seconds,
        };
        log::info!("{rec:?}");
        st.history.push(rec);
        st.epoch += 1;
        st.step_in_epoch = 0;
        if st.triage.is_some() && st.epoch == cfg.epochs {
            progress(Progress::Eval { what: "selection" });
            consider(&mut st, exec, twin.as_deref_mut(), vs, &mut best, false)?;
        }
        sync_totals(&mut st, exec);
        save(&mut st, exec, &adam, vs, best.as_deref())?;
        progress(Progress::Epoch(st.history.last().expect("pushed")));
    }
    // An interruption (`stop_after_steps`) saves nothing more, like a crash:
    // a resume redoes the steps after the last checkpoint, identically.
    let mut accuracy_after = st.history.last().map_or(st.accuracy_before, |r| r.test_accuracy);
    let mut selection = None;
    if let (true, Some(set)) = (finished, &select_set) {
        // The blend of the triaged start and the end, measured once.
        if let (None, Some(start)) = (&st.selected, best.as_ref()) {
            if !st.selection.iter().any(|p| p.blend > 0.0) {
                let end = snapshot(vs);
                let end_held = held_weights(model, exec);
                blend_into(vs, start, BLEND);
                freeze.apply();
                exec.install_model(model)?;
                progress(Progress::Eval { what: "selection" });
                let t = Instant::now();
                let accuracy = select_accuracy(exec, twin, set)?;
                st.totals.eval_seconds += t.elapsed().as_secs_f64();
                st.selection.push(SelectionPoint {
                    steps: st.totals.steps,
                    accuracy,
                    blend: BLEND,
                });
                restore(vs, &end);
                install_held(model, exec, &end_held)?;
            }
        }
        // The most accurate; on ties the end, then the blend, then the start.
        let rank = |p: &SelectionPoint| {
            if p.blend > 0.0 {
                1
            } else if p.steps == st.totals.steps {
                2
            } else {
                0
            }
        };
        let pick = st
            .selection
            .iter()
            .copied()
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy).then(rank(a).cmp(&rank(b))));
        if let (Some(p), Some(b)) = (pick, best.as_ref()) {
            if rank(&p) != 2 {
                if st.selected.is_none() {
                    // End with the chosen candidate: float weights and the device copy.
                    if p.blend > 0.0 {
                        blend_into(vs, b, p.blend);
                        freeze.apply();
                        exec.install_model(model)?;
                    } else {
                        restore(vs, b);
                        install_held(model, exec, &st.best_held)?;
                    }
                    st.selected = Some(p);
                }
                progress(Progress::Eval { what: "selected" });
                let t = Instant::now();
                accuracy_after = eval::accuracy(model, test, cfg.eval_batch, exec, |_| {})?;
                st.totals.eval_seconds += t.elapsed().as_secs_f64();
                sync_totals(&mut st, exec);
                save(&mut st, exec, &adam, vs, best.as_deref())?;
            }
            selection = Some(Selection {
                samples: set.len(),
                candidates: st.selection.clone(),
                selected_steps: p.steps,
                selected_blend: p.blend,
            });
        }
    }
    sync_totals(&mut st, exec);
    let steps = st.totals.steps.max(1) as f64;
    Ok(RetrainReport {
        config: cfg.clone(),
        accuracy_before: st.accuracy_before,
        accuracy_after,
        bytes_per_step_dense: st.totals.update.bytes_dense as f64 / steps,
        bytes_per_step_sent: st.totals.update.bytes_sent as f64 / steps,
        bytes_per_step_max: st.totals.bytes_per_step_max,
        update_budget_bytes: budget_bytes,
        history: st.history,
        totals: st.totals,
        steps_per_epoch,
        samples_per_epoch: samples,
        test_samples: test.len(),
        resumed_at_step,
        finished,
        mitigation: cfg.mitigation,
        bypass: st.bypass,
        rotations: st.rotations,
        pruned_weights: freeze.pruned(),
        triage: st.triage,
        marks: st.marks,
        selection,
    })
}

/// What `exec` holds for each of `model`'s layers (empty where nothing).
fn held_weights(model: &Model, exec: &DeviceMatmul) -> Vec<Vec<i8>> {
    (0..model.layers().len())
        .map(|i| exec.held(i).map(<[i8]>::to_vec).unwrap_or_default())
        .collect()
}

/// Install `held` (one K×N int8 matrix per layer) as `exec`'s device copy.
fn install_held(model: &Model, exec: &mut DeviceMatmul, held: &[Vec<i8>]) -> Result<()> {
    for (l, h) in model.layers().iter().zip(held) {
        exec.install(l.index, h, l.k, l.n).map_err(|e| Error::Exec {
            layer: l.index,
            name: l.name.clone(),
            source: e.into(),
        })?;
    }
    Ok(())
}

/// Every variable of `vs`, copied, sorted by name.
fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Copy `saved` (a [`snapshot`]) back into `vs`.
fn restore(vs: &nn::VarStore, saved: &[(String, Tensor)]) {
    tch::no_grad(|| {
        for (n, mut t) in vs.variables() {
            if let Some((_, v)) = saved.iter().find(|(k, _)| *k == n) {
                t.copy_(v);
            }
        }
    });
}

/// `vs` ← `share` · `other` + (1 − `share`) · `vs`, variable by variable.
fn blend_into(vs: &nn::VarStore, other: &[(String, Tensor)], share: f64) {
    tch::no_grad(|| {
        for (n, mut t) in vs.variables() {
            if let Some((_, v)) = other.iter().find(|(k, _)| *k == n) {
                let mixed = &t * (1.0 - share) + v * share;
                t.copy_(&mixed);
            }
        }
    });
}

/// `auto`'s selection images: `triage_samples` training images (a seeded
/// draw) that no step of the whole run trains on.
fn selection_subset(cfg: &RetrainConfig, train: &Dataset) -> Dataset {
    let steps = cfg.steps_per_epoch(train.len()) * cfg.epochs;
    let used = used_examples(cfg, train.len(), steps);
    let n = if cfg.selection_samples == 0 { cfg.triage_samples } else { cfg.selection_samples };
    mitigate::calibration_subset(train, &used, n, cfg.seed ^ 0x5E1E_C710_4000_0001)
}

/// `auto`: triage the faulty PEs now (on a calibration subset the steps so
/// far did not train on) and add the PEs it picks to the bypass list.
fn run_triage(
    model: &Model,
    train: &Dataset,
    cfg: &RetrainConfig,
    exec: &mut DeviceMatmul,
    twin: Option<&mut DeviceMatmul>,
    st: &mut State,
) -> Result<()> {
    let t0 = Instant::now();
    let used = used_examples(cfg, train.len(), st.totals.steps);
    let calib = mitigate::calibration_subset(train, &used, cfg.triage_samples, cfg.seed);
    // One mirror for both measurements: each leaves the device as it found it.
    let meas = mitigate::measuring(model, exec, twin)?;
    let mut t = mitigate::triage(model, &calib, cfg.eval_batch, meas, cfg.triage_tolerance)?;
    t.at_step = Some(st.totals.steps);
    st.bypass = mitigate::union(&st.bypass, &t.bypassed());
    if cfg.triage_rotations {
        let c = mitigate::choose_rotations(model, &calib, cfg.eval_batch, meas, &st.bypass)?;
        if !c.layers.is_empty() {
            st.rotations = c.rotations();
            log::info!("rotations for the bypass list: {:?}", st.rotations);
        }
        t.rotations = Some(c);
    }
    log::info!(
        "triage at step {}: bypass {:?} of {} faulty PEs",
        st.totals.steps,
        t.bypassed(),
        t.pes.len()
    );
    st.triage = Some(t);
    st.totals.eval_seconds += t0.elapsed().as_secs_f64();
    Ok(())
}

/// The training examples of the first `steps` global steps.
fn used_examples(cfg: &RetrainConfig, train_len: usize, steps: usize) -> Vec<usize> {
    let (samples, spe) = (cfg.samples_per_epoch(train_len), cfg.steps_per_epoch(train_len));
    let mut used = Vec::new();
    for epoch in 0..steps.div_ceil(spe.max(1)) {
        let order = epoch_order(cfg.seed, epoch, train_len, samples);
        let in_epoch = (steps - epoch * spe).min(spe);
        used.extend_from_slice(&order[..(in_epoch * cfg.batch_size).min(order.len())]);
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_is_the_mean_and_restore_undoes_it() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root() / "fc0";
        let w = root.var_copy("weight", &Tensor::from_slice(&[1.0f32, -3.0, 0.0, 7.5]));
        let s = root.var_copy("w_scale", &Tensor::from_slice(&[0.1f32]));
        let start = snapshot(&vs);
        tch::no_grad(|| {
            w.shallow_clone().copy_(&Tensor::from_slice(&[3.0f32, 1.0, 0.0, -0.5]));
        });
        let end = snapshot(&vs);
        blend_into(&vs, &start, BLEND);
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [2.0, -1.0, 0.0, 3.5]);
        // Equal values (frozen scales, pruned zeros) stay exactly as they were.
        assert_eq!(Vec::<f32>::try_from(&s).unwrap(), [0.1]);
        restore(&vs, &end);
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [3.0, 1.0, 0.0, -0.5]);
        assert_eq!(
            start.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["fc0.w_scale", "fc0.weight"]
        );
    }

    #[test]
    fn a_save_killed_between_its_renames_is_finished() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("x.ckpt");
        let (tmp, old) = (sibling(&dir, "saving"), sibling(&dir, "old"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join(STATE_FILE), "new").unwrap();
        // Only a partial `saving` (a first save killed): nothing to finish.
        assert!(!recover_interrupted_save(&dir).unwrap());
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(STATE_FILE), "old").unwrap();
        assert!(recover_interrupted_save(&dir).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join(STATE_FILE)).unwrap(), "new");
        assert!(!old.exists() && !tmp.exists());
        // A checkpoint in place is never touched.
        assert!(!recover_interrupted_save(&dir).unwrap());
    }
}
