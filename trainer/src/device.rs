//! The DLA-backed executor: every layer's int8 matmul runs on a
//! `faultloop_device::client::Device` (any DEV: `sim`, `model`, `serial:...`,
//! `tcp://...`).
//!
//! * Weight memory: each layer gets a `cols`-aligned K×N region from a
//!   [`WeightAllocator`] sized by the device's INFO, on its first
//!   [`Int8Matmul::set_weights`] (so layers must first be installed in one
//!   order, which `Model::sync_weights` does).
//! * Updates: the executor keeps a copy of what the device holds. A later
//!   `set_weights` of the same layer diffs the new int8 weights against that
//!   copy and, in [`Compress::Sparse`] mode, sends the changed values as
//!   PATCH_WEIGHTS — or a dense WRITE_WEIGHTS of the whole layer when that is
//!   fewer bytes. With a threshold `t > 1` only values that moved by at least
//!   `t` int8 steps are sent; the rest stays on the host as a residual (the
//!   float master weights still carry it, and it is sent once it has grown to
//!   `t`), so no update is lost. [`Compress::Dense`] rewrites every layer on
//!   every update (the baseline).
//! * Byte budget ([`DeviceMatmul::set_update_budget`], sparse mode): one
//!   update ([`DeviceMatmul::update_layers`], all layers of a training step)
//!   sends at most `B` bytes. When the plain sparse update fits, it is sent
//!   unchanged; otherwise the changes with the largest accumulated distance
//!   `|master / scale - held|`, weighted by the layer's unit (see
//!   [`DeviceMatmul::sync_model`]), go first, across all layers, as one
//!   PATCH_WEIGHTS (split into frames by `buf_bytes`), as many as fit. The
//!   rest is the residual `quantise(master) - held`, kept implicitly (error
//!   feedback, Deep Gradient Compression, Lin et al. ICLR 2018): it grows
//!   or shrinks with later steps and goes once it ranks high enough.
//! * Protection per layer ([`LayerMode`]): `Device` (plain), `Tmr` (three
//!   runs under the rotations of [`crate::vote::rotations`], or the layer's
//!   own from [`DeviceMatmul::set_layer_rotations`], e.g. calibrated by
//!   [`crate::tmr::calibrate`]; bitwise majority of the int32 results), or
//!   `Host` (the integer reference on the host: a fault-free device, used by
//!   the per-layer vulnerability analysis).
//! * Accounting: bytes to and from the device (the client's counters), MACs
//!   run on the device (TMR counts all three runs) and per layer, and the
//!   weight-update bytes: what a dense rewrite would have cost vs what was
//!   sent ([`DeviceUsage`] takes all of them at once).
//! * Bypass ([`DeviceMatmul::set_bypass`]): PEs switched to bypass on top of
//!   the fault map's own list, e.g. the list a mitigated checkpoint was
//!   trained for ([`crate::mitigate`]); kept across [`DeviceMatmul::set_faults`].
//!   With it, a per-layer rotation of the plain runs
//!   ([`DeviceMatmul::set_plain_rotation`]): which weights sit on the
//!   bypassed PEs, and so which ones a mitigation prunes.
//! * Errors: [`ExecutorError`] from the inherent methods; the
//!   [`Int8Matmul`] impl boxes it.
use std::ops::{Add, Sub};
use std::time::Instant;

use faultloop_device::client::Device;
use faultloop_device::open::{self as link, DeviceSpec, OpenOptions};
use faultloop_proto::faultmap::FaultMap;
use faultloop_proto::layout::{MatrixLayout, WeightAllocator};
use faultloop_proto::{Info, FRAME_OVERHEAD, PATCH_ENTRY_LEN};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ExecError, ExecutorError, Result, ShapeError};
use crate::exec::{check_matmul, check_weights, matmul_i8_ref, Int8Matmul};
use crate::model::Model;
use crate::vote;

/// How weight updates travel to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    /// Rewrite every layer densely on every update.
    Dense,
    /// Patch only the changed int8 values (dense when that is smaller).
    #[default]
    Sparse,
}

/// `dense` or `sparse`, as `--compress` and the JSON spell it.
impl std::fmt::Display for Compress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compress::Dense => "dense",
            Compress::Sparse => "sparse",
        })
    }
}

/// A compression name other than `dense` or `sparse`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compression `{0}`: expected dense or sparse")]
pub struct ParseCompressError(pub String);

impl std::str::FromStr for Compress {
    type Err = ParseCompressError;
    fn from_str(s: &str) -> Result<Self, ParseCompressError> {
        match s {
            "dense" => Ok(Compress::Dense),
            "sparse" => Ok(Compress::Sparse),
            _ => Err(ParseCompressError(s.to_string())),
        }
    }
}

/// Where one layer's matmul runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LayerMode {
    /// Once on the device.
    #[default]
    Device,
    /// Three times on the device with different tile rotations, bitwise majority.
    Tmr,
    /// On the host (integer reference): fault-free.
    Host,
}

/// Cumulative weight-update accounting (bytes to the device only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// `set_weights` calls after a layer's first install.
    pub updates: u64,
    /// Bytes a dense rewrite of those layers would have sent (frames included).
    pub bytes_dense: u64,
    /// Bytes actually sent for them (frames included).
    pub bytes_sent: u64,
    /// int8 values that differed from the device copy.
    pub changed_values: u64,
    /// Values sent (patched or in a dense write of a changed layer).
    pub sent_values: u64,
    /// Changes below the threshold kept on the host (counted per update).
    pub withheld_values: u64,
    pub patch_updates: u64,
    pub dense_updates: u64,
}

/// Applies `op` to every field of two [`UpdateStats`].
fn zip_stats(a: UpdateStats, b: UpdateStats, op: impl Fn(u64, u64) -> u64) -> UpdateStats {
    UpdateStats {
        updates: op(a.updates, b.updates),
        bytes_dense: op(a.bytes_dense, b.bytes_dense),
        bytes_sent: op(a.bytes_sent, b.bytes_sent),
        changed_values: op(a.changed_values, b.changed_values),
        sent_values: op(a.sent_values, b.sent_values),
        withheld_values: op(a.withheld_values, b.withheld_values),
        patch_updates: op(a.patch_updates, b.patch_updates),
        dense_updates: op(a.dense_updates, b.dense_updates),
    }
}

impl Add for UpdateStats {
    type Output = UpdateStats;
    fn add(self, o: UpdateStats) -> UpdateStats {
        zip_stats(self, o, |a, b| a + b)
    }
}

/// The updates between two snapshots (`later - earlier`).
impl Sub for UpdateStats {
    type Output = UpdateStats;
    fn sub(self, o: UpdateStats) -> UpdateStats {
        zip_stats(self, o, |a, b| a - b)
    }
}

/// A snapshot of a [`DeviceMatmul`]'s cumulative counters
/// ([`DeviceMatmul::usage`]); subtract two for what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceUsage {
    pub bytes_to_device: u64,
    pub bytes_from_device: u64,
    /// MACs run on the device (TMR: all three runs).
    pub device_macs: u64,
    pub update: UpdateStats,
}

impl Add for DeviceUsage {
    type Output = DeviceUsage;
    fn add(self, o: DeviceUsage) -> DeviceUsage {
        DeviceUsage {
            bytes_to_device: self.bytes_to_device + o.bytes_to_device,
            bytes_from_device: self.bytes_from_device + o.bytes_from_device,
            device_macs: self.device_macs + o.device_macs,
            update: self.update + o.update,
        }
    }
}

impl Sub for DeviceUsage {
    type Output = DeviceUsage;
    fn sub(self, o: DeviceUsage) -> DeviceUsage {
        DeviceUsage {
            bytes_to_device: self.bytes_to_device - o.bytes_to_device,
            bytes_from_device: self.bytes_from_device - o.bytes_from_device,
            device_macs: self.device_macs - o.device_macs,
            update: self.update - o.update,
        }
    }
}

struct Slot {
    layout: MatrixLayout,
    /// What the device holds (K×N row-major).
    held: Vec<i8>,
}

/// A per-update byte budget: bytes, or a fraction of a dense rewrite of
/// every layer (`--update-budget 4096`, `10%`, `0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateBudget {
    Bytes(u64),
    /// Of the dense bytes of one full update (every layer rewritten), in (0, 1].
    Fraction(f64),
}

impl UpdateBudget {
    /// The budget in bytes, given the dense bytes of one full update
    /// (rounded down, so it never exceeds the fraction).
    pub fn bytes(self, dense: u64) -> u64 {
        match self {
            UpdateBudget::Bytes(b) => b,
            UpdateBudget::Fraction(f) => (f * dense as f64).floor() as u64,
        }
    }
}

/// `4096 B` or `10 % of dense`.
impl std::fmt::Display for UpdateBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateBudget::Bytes(b) => write!(f, "{b} B"),
            UpdateBudget::Fraction(x) => write!(f, "{} % of dense", 100.0 * x),
        }
    }
}

/// An update budget that is neither a byte count nor a fraction in (0, 1].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "update budget `{0}`: expected bytes (4096), a percentage of dense (10%) or a fraction \
     (0.1), greater than 0 and at most all of dense"
)]
pub struct ParseBudgetError(pub String);

/// An integer is bytes; `P%` or a number with a decimal point is a
/// fraction of dense (so `1` is one byte, `1.0` all of dense).
impl std::str::FromStr for UpdateBudget {
    type Err = ParseBudgetError;
    fn from_str(s: &str) -> Result<Self, ParseBudgetError> {
        let bad = || ParseBudgetError(s.to_string());
        let t = s.trim();
        let frac = if let Some(p) = t.strip_suffix('%') {
            p.trim().parse::<f64>().map_err(|_| bad())? / 100.0
        } else if t.contains('.') {
            t.parse::<f64>().map_err(|_| bad())?
        } else {
            let b = t.parse::<u64>().map_err(|_| bad())?;
            return if b > 0 { Ok(UpdateBudget::Bytes(b)) } else { Err(bad()) };
        };
        if frac > 0.0 && frac <= 1.0 {
            Ok(UpdateBudget::Fraction(frac))
        } else {
            Err(bad())
        }
    }
}

/// One layer's new int8 weights for [`DeviceMatmul::update_layers`].
#[derive(Debug, Clone, Copy)]
pub struct LayerTarget<'a> {
    pub layer: usize,
    /// K×N row-major: the quantised master weights.
    pub w: &'a [i8],
    pub k: usize,
    pub n: usize,
    /// The unrounded values `w` rounds from (master / scale, clamped to
    /// ±127), which rank the changes under a budget by the real accumulated
    /// distance; `None`: rank by the int8 distance.
    pub exact: Option<&'a [f32]>,
    /// What one int8 step of this layer is worth when ranking across
    /// layers (priority = distance × unit; 1: int8 steps).
    pub unit: f32,
}

/// Frame bytes of a dense WRITE_WEIGHTS of `len` bytes (4-byte address per frame).
pub fn dense_write_bytes(len: usize, buf_bytes: usize) -> u64 {
    let chunk = buf_bytes.saturating_sub(4).max(1);
    let frames = len.div_ceil(chunk).max(1);
    (len + frames * (4 + FRAME_OVERHEAD)) as u64
}

/// Frame bytes of a PATCH_WEIGHTS of `entries` entries.
pub fn patch_bytes(entries: usize, buf_bytes: usize) -> u64 {
    if entries == 0 {
        return 0;
    }
    let per = (buf_bytes / PATCH_ENTRY_LEN).max(1);
    (entries * PATCH_ENTRY_LEN + entries.div_ceil(per) * FRAME_OVERHEAD) as u64
}

/// The most PATCH_WEIGHTS entries whose frames fit `budget` bytes.
pub fn patch_entries_within(budget: u64, buf_bytes: usize) -> usize {
    let mut e = (budget / PATCH_ENTRY_LEN as u64) as usize;
    // Frame overheads push the cost above 4 B per entry; step back until it
    // fits (a handful of iterations: one per overhead's worth of entries).
    while e > 0 && patch_bytes(e, buf_bytes) > budget {
        e -= 1;
    }
    e
}

/// An [`Int8Matmul`] whose matmuls run on a DLA.
pub struct DeviceMatmul {
    dev: Device,
    info: Info,
    alloc: WeightAllocator,
    slots: Vec<Option<Slot>>,
    modes: Vec<LayerMode>,
    compress: Compress,
    threshold: u8,
    /// Bytes per update ([`DeviceMatmul::update_layers`]); `None`: unbounded.
    budget: Option<u64>,
    rotations: [(u8, u8); 3],
    /// Per-layer TMR rotations (calibrated against the fault map), else `rotations`.
    layer_rotations: Vec<Option<[(u8, u8); 3]>>,
    /// Per-layer rotation of a plain (`Device`) run; (0, 0) where absent.
    plain_rotations: Vec<(u8, u8)>,
    stats: UpdateStats,
    /// MACs run on the device per layer (TMR: all three runs).
    layer_macs: Vec<u64>,
    /// Logical MACs requested per layer (once per matmul).
    layer_logical_macs: Vec<u64>,
    matmul_seconds: f64,
    /// The fault map last applied (None: none, or unknown for [`DeviceMatmul::new`]).
    faults: Option<FaultMap>,
    /// PEs bypassed on top of the fault map's own bypass list, sorted.
    bypass: Vec<[usize; 2]>,
}

impl std::fmt::Debug for DeviceMatmul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMatmul")
            .field("device", &self.dev.name())
            .field("compress", &self.compress)
            .field("threshold", &self.threshold)
            .field("budget", &self.budget)
            .field("modes", &self.modes)
            .finish()
    }
}

impl DeviceMatmul {
    /// Wrap an open device (reads its INFO).
    pub fn new(mut dev: Device) -> Result<DeviceMatmul, ExecutorError> {
        let info = dev.info()?;
        let rotations = vote::rotations(info.rows, info.cols);
        Ok(DeviceMatmul {
            alloc: WeightAllocator::for_info(&info),
            info,
            dev,
            slots: Vec::new(),
            modes: Vec::new(),
            compress: Compress::Sparse,
            threshold: 1,
            budget: None,
            rotations,
            layer_rotations: Vec::new(),
            plain_rotations: Vec::new(),
            stats: UpdateStats::default(),
            layer_macs: Vec::new(),
            layer_logical_macs: Vec::new(),
            matmul_seconds: 0.0,
            faults: None,
            bypass: Vec::new(),
        })
    }

    /// Open a device string (`sim`, `model:8x8`, ...) with the default
    /// [`OpenOptions`] (a `tcp://` token from `FAULTLOOP_TOKEN`), RESET it and
    /// apply `faults` (or clear all faults).
    pub fn open(spec: &str, faults: Option<&FaultMap>) -> Result<DeviceMatmul, ExecutorError> {
        DeviceMatmul::open_with(spec, &OpenOptions::default(), faults)
    }

    /// [`DeviceMatmul::open`] with explicit link options (a `tcp://` token or
    /// token file, serial settings, timeouts).
    pub fn open_with(
        spec: &str,
        opts: &OpenOptions,
        faults: Option<&FaultMap>,
    ) -> Result<DeviceMatmul, ExecutorError> {
        let spec: DeviceSpec = spec.parse().map_err(ExecutorError::Open)?;
        let link = link::open_with(&spec, opts).map_err(ExecutorError::Open)?;
        let mut dev = Device::new(link);
        dev.reset()?;
        apply_faults(&mut dev, faults)?;
        let mut exec = DeviceMatmul::new(dev)?;
        exec.faults = faults.cloned();
        Ok(exec)
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    pub fn device(&mut self) -> &mut Device {
        &mut self.dev
    }

    pub fn device_name(&self) -> &str {
        self.dev.name()
    }

    /// Apply a fault map (CLEAR_FAULTS first) or clear every fault; the
    /// extra bypass list ([`DeviceMatmul::set_bypass`]) is applied again on top.
    pub fn set_faults(&mut self, faults: Option<&FaultMap>) -> Result<(), ExecutorError> {
        apply_faults(&mut self.dev, faults)?;
        self.faults = faults.cloned();
        for &[r, c] in &self.bypass {
            self.dev.set_bypass(r, c, true)?;
        }
        Ok(())
    }

    /// The fault map last applied through this executor.
    pub fn fault_map(&self) -> Option<&FaultMap> {
        self.faults.as_ref()
    }

    /// Bypass exactly `pes` on top of the fault map's own bypass list
    /// (SET_BYPASS for the changes only; a PE the map bypasses stays bypassed).
    pub fn set_bypass(&mut self, pes: &[[usize; 2]]) -> Result<(), ExecutorError> {
        let mut new = pes.to_vec();
        new.sort_unstable();
        new.dedup();
        let in_map = |pe: &[usize; 2]| self.faults.as_ref().is_some_and(|m| m.bypass.contains(pe));
        let off: Vec<[usize; 2]> =
            self.bypass.iter().filter(|pe| !new.contains(pe) && !in_map(pe)).copied().collect();
        let on: Vec<[usize; 2]> =
            new.iter().filter(|pe| !self.bypass.contains(pe)).copied().collect();
        for [r, c] in off {
            self.dev.set_bypass(r, c, false)?;
        }
        for [r, c] in on {
            self.dev.set_bypass(r, c, true)?;
        }
        self.bypass = new;
        Ok(())
    }

    /// The PEs bypassed on top of the fault map (sorted).
    pub fn bypass(&self) -> &[[usize; 2]] {
        &self.bypass
    }

    pub fn set_compress(&mut self, c: Compress) {
        self.compress = c;
    }

    pub fn compress(&self) -> Compress {
        self.compress
    }

    /// Minimum |change| (int8 steps) a value needs to be sent (0 and 1: every change).
    pub fn set_threshold(&mut self, t: u8) {
        self.threshold = t.max(1);
    }

    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Bound every update ([`DeviceMatmul::update_layers`]; a plain
    /// `set_weights` is a one-layer update) to `bytes` (`None`: no bound).
    /// Sparse mode only. A budget below one single-entry PATCH_WEIGHTS frame
    /// could never send anything and is refused.
    pub fn set_update_budget(&mut self, bytes: Option<u64>) -> Result<(), ExecutorError> {
        let min = self.min_update_bytes();
        match bytes {
            Some(b) if b < min => Err(ExecutorError::Budget { budget: b, min }),
            Some(_) if self.compress == Compress::Dense => Err(ExecutorError::BudgetDense),
            _ => {
                self.budget = bytes;
                Ok(())
            }
        }
    }

    pub fn update_budget(&self) -> Option<u64> {
        self.budget
    }

    /// The smallest update there is: one PATCH_WEIGHTS entry in one frame.
    pub fn min_update_bytes(&self) -> u64 {
        patch_bytes(1, self.info.buf_bytes)
    }

    /// The bytes of a dense rewrite of every installed layer (one full
    /// update; what [`UpdateBudget::Fraction`] is a fraction of).
    pub fn dense_update_bytes(&self) -> u64 {
        let buf = self.info.buf_bytes;
        self.slots.iter().flatten().map(|s| dense_write_bytes(s.layout.len(), buf)).sum()
    }

    /// Where `layer` runs.
    pub fn set_mode(&mut self, layer: usize, mode: LayerMode) {
        if self.modes.len() <= layer {
            self.modes.resize(layer + 1, LayerMode::Device);
        }
        self.modes[layer] = mode;
    }

    pub fn mode(&self, layer: usize) -> LayerMode {
        self.modes.get(layer).copied().unwrap_or_default()
    }

    /// The three TMR rotations (the first is (0, 0)).
    pub fn rotations(&self) -> [(u8, u8); 3] {
        self.rotations
    }

    /// TMR rotations of one layer (`None`: the default ones).
    pub fn set_layer_rotations(&mut self, layer: usize, r: Option<[(u8, u8); 3]>) {
        if self.layer_rotations.len() <= layer {
            self.layer_rotations.resize(layer + 1, None);
        }
        self.layer_rotations[layer] = r;
    }

    /// The TMR rotations `layer` uses.
    pub fn layer_rotations(&self, layer: usize) -> [(u8, u8); 3] {
        self.layer_rotations.get(layer).copied().flatten().unwrap_or(self.rotations)
    }

    /// The tile rotation `layer`'s plain (`Device`) runs use, e.g. the one a
    /// mitigated checkpoint's pruning was chosen for ([`crate::mitigate`]).
    /// Rotations are taken modulo the array size.
    pub fn set_plain_rotation(&mut self, layer: usize, rot: (u8, u8)) {
        let rot =
            ((rot.0 as usize % self.info.rows) as u8, (rot.1 as usize % self.info.cols) as u8);
        if self.plain_rotations.len() <= layer {
            self.plain_rotations.resize(layer + 1, (0, 0));
        }
        self.plain_rotations[layer] = rot;
    }

    /// The rotation of `layer`'s plain runs ((0, 0) unless set).
    pub fn plain_rotation(&self, layer: usize) -> (u8, u8) {
        self.plain_rotations.get(layer).copied().unwrap_or((0, 0))
    }

    /// Every layer's plain rotation, `[dr, dc]` by layer index up to the
    /// last one set to other than (0, 0) (empty: all (0, 0)).
    pub fn plain_rotations(&self) -> Vec<[u8; 2]> {
        let last = self.plain_rotations.iter().rposition(|&r| r != (0, 0));
        self.plain_rotations[..last.map_or(0, |i| i + 1)].iter().map(|&(a, b)| [a, b]).collect()
    }

    /// Set every layer's plain rotation from `[dr, dc]` by layer index
    /// (layers past the end: (0, 0)).
    pub fn set_plain_rotations(&mut self, rots: &[[u8; 2]]) {
        self.plain_rotations.clear();
        for (i, r) in rots.iter().enumerate() {
            self.set_plain_rotation(i, (r[0], r[1]));
        }
    }

    /// One plain device run of `layer` with rotation `rot` (not counted as a
    /// layer MAC; for calibration).
    pub fn matmul_rotated(
        &mut self,
        layer: usize,
        a: &[i8],
        m: usize,
        rot: (u8, u8),
    ) -> Result<Vec<i32>, ExecutorError> {
        let slot = self.slot(layer)?;
        let (base, k, n) = (slot.layout.base as u32, slot.layout.k, slot.layout.n);
        Ok(self.dev.matmul(base, m, k, n, rot, a)?)
    }

    pub fn update_stats(&self) -> UpdateStats {
        self.stats
    }

    /// All cumulative counters at once (bytes, device MACs, updates).
    pub fn usage(&self) -> DeviceUsage {
        DeviceUsage {
            bytes_to_device: self.bytes_to_device(),
            bytes_from_device: self.bytes_from_device(),
            device_macs: self.device_macs(),
            update: self.stats,
        }
    }

    pub fn bytes_to_device(&self) -> u64 {
        self.dev.bytes_sent()
    }

    pub fn bytes_from_device(&self) -> u64 {
        self.dev.bytes_received()
    }

    /// MACs run on the device so far (TMR: all three runs).
    pub fn device_macs(&self) -> u64 {
        self.layer_macs.iter().sum()
    }

    /// Per layer: MACs run on the device so far.
    pub fn layer_macs(&self) -> &[u64] {
        &self.layer_macs
    }

    /// Per layer: logical MACs (each matmul once, whatever its mode).
    pub fn layer_logical_macs(&self) -> &[u64] {
        &self.layer_logical_macs
    }

    pub fn reset_macs(&mut self) {
        self.layer_macs.iter_mut().for_each(|m| *m = 0);
        self.layer_logical_macs.iter_mut().for_each(|m| *m = 0);
    }

    /// Wall seconds spent in device matmuls.
    pub fn matmul_seconds(&self) -> f64 {
        self.matmul_seconds
    }

    /// What the device holds for `layer` (K×N row-major), if installed.
    pub fn held(&self, layer: usize) -> Option<&[i8]> {
        self.slots.get(layer)?.as_ref().map(|s| &s.held[..])
    }

    /// The layout of `layer` in weight memory.
    pub fn layout(&self, layer: usize) -> Option<MatrixLayout> {
        self.slots.get(layer)?.as_ref().map(|s| s.layout)
    }

    /// Install `w` as what the device holds for `layer` with a dense write,
    /// without counting it as an update (initial loads, resuming).
    pub fn install(
        &mut self,
        layer: usize,
        w: &[i8],
        k: usize,
        n: usize,
    ) -> Result<(), ExecutorError> {
        check_weights(layer, w.len(), k, n)?;
        if self.slots.len() <= layer {
            self.slots.resize_with(layer + 1, || None);
        }
        let layout = match &self.slots[layer] {
            Some(s) => {
                check_allocated(layer, &s.layout, k, n)?;
                s.layout
            }
            None => self.alloc.alloc(&format!("layer {layer}"), k, n)?,
        };
        self.dev.load_layout(&layout, w)?;
        self.slots[layer] = Some(Slot { layout, held: w.to_vec() });
        Ok(())
    }

    /// Send `model`'s current int8 weights as one update (every layer; under
    /// the budget if one is set, ranked by the unrounded master values).
    pub fn sync_model(&mut self, model: &Model) -> Result<()> {
        let ws: Vec<(Vec<i8>, Vec<f32>)> =
            model.layers().iter().map(|l| (l.int8_weights(), l.scaled_weights())).collect();
        let targets: Vec<LayerTarget> = model
            .layers()
            .iter()
            .zip(&ws)
            .map(|(l, (w, x))| LayerTarget {
                layer: l.index,
                w,
                k: l.k,
                n: l.n,
                exact: Some(x),
                // The change of the layer's float output per int8 step of
                // weight and of input: ranks changes across layers by their
                // effect, not by int8 steps, of which the first layer (small
                // scale, 85 % of the MLP's weights) would take nearly all.
                unit: l.w_scale() * l.in_scale(),
            })
            .collect();
        self.update_layers(&targets).map_err(|(layer, e)| {
            let name = model.layers().iter().find(|l| l.index == layer).map(|l| l.name.clone());
            Error::Exec { layer, name: name.unwrap_or_default(), source: e.into() }
        })
    }

    /// Install `model`'s current int8 weights as the device copy (not
    /// counted as updates), every layer at its index.
    pub fn install_model(&mut self, model: &Model) -> Result<()> {
        for l in model.layers() {
            self.install(l.index, &l.int8_weights(), l.k, l.n).map_err(|e| Error::Exec {
                layer: l.index,
                name: l.name.clone(),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    fn slot(&self, layer: usize) -> Result<&Slot, ShapeError> {
        self.slots.get(layer).and_then(Option::as_ref).ok_or(ShapeError::NoWeights { layer })
    }

    fn grow_counters(&mut self, layer: usize) {
        if self.layer_macs.len() <= layer {
            self.layer_macs.resize(layer + 1, 0);
            self.layer_logical_macs.resize(layer + 1, 0);
        }
    }
}

/// RESET-time fault setup: apply `faults` (CLEAR_FAULTS first), or clear
/// every fault and transient flip.
fn apply_faults(dev: &mut Device, faults: Option<&FaultMap>) -> Result<(), ExecutorError> {
    match faults {
        Some(m) => dev.apply_fault_map(m)?,
        None => {
            dev.clear_faults()?;
            dev.set_seu(0, 0)?;
        }
    }
    Ok(())
}

/// New weights for an allocated layer must have its K×N.
fn check_allocated(
    layer: usize,
    layout: &MatrixLayout,
    k: usize,
    n: usize,
) -> Result<(), ShapeError> {
    if (layout.k, layout.n) != (k, n) {
        return Err(ShapeError::Allocated { layer, k, n, held_k: layout.k, held_n: layout.n });
    }
    Ok(())
}

// The executor's work, with its own error type; `Int8Matmul` boxes it.
impl DeviceMatmul {
    /// One update of several layers (a training step): each layer's new
    /// int8 weights against what the device holds. Without a budget, or when
    /// the plain update fits it, every layer goes as it would alone
    /// (patch, or dense when smaller); otherwise the largest changes across
    /// all layers, as one PATCH_WEIGHTS within the budget (module docs).
    /// Layers not installed yet are installed (not counted). The error names
    /// the layer it concerns (the first target's for a combined patch).
    pub fn update_layers(&mut self, targets: &[LayerTarget]) -> Result<(), (usize, ExecutorError)> {
        let first = targets.first().map_or(0, |t| t.layer);
        // A layer's first weights are an install, not an update.
        let mut fresh = Vec::new();
        for t in targets {
            check_weights(t.layer, t.w.len(), t.k, t.n).map_err(|e| (t.layer, e.into()))?;
            if let Some(x) = t.exact {
                check_weights(t.layer, x.len(), t.k, t.n).map_err(|e| (t.layer, e.into()))?;
            }
            match self.slots.get(t.layer).and_then(Option::as_ref) {
                Some(s) => check_allocated(t.layer, &s.layout, t.k, t.n)
                    .map_err(|e| (t.layer, e.into()))?,
                None => {
                    self.install(t.layer, t.w, t.k, t.n).map_err(|e| (t.layer, e))?;
                    fresh.push(t.layer);
                }
            }
        }
        let targets: Vec<LayerTarget> =
            targets.iter().filter(|t| !fresh.contains(&t.layer)).copied().collect();
        let targets = &targets[..];
        if targets.is_empty() {
            return Ok(());
        }
        let budget = match self.budget {
            Some(b) if self.compress == Compress::Sparse && self.plain_cost(targets) > b => b,
            _ => {
                for t in targets {
                    self.update_weights(t.layer, t.w, t.k, t.n).map_err(|e| (t.layer, e))?;
                }
                return Ok(());
            }
        };
        let buf = self.info.buf_bytes;
        let thr = self.threshold as i16;
        // Candidates: (priority, target index, element), every value whose
        // quantised master differs from the device copy by ≥ the threshold.
        let mut cands: Vec<(f32, usize, usize)> = Vec::new();
        let mut changed = 0u64;
        for (ti, t) in targets.iter().enumerate() {
            let held = &self.slots[t.layer].as_ref().expect("installed above").held;
            for (i, (&h, &v)) in held.iter().zip(t.w).enumerate() {
                if h == v {
                    continue;
                }
                changed += 1;
                if (v as i16 - h as i16).abs() >= thr {
                    let x = t.exact.map_or(v as f32, |x| x[i]);
                    cands.push(((x - h as f32).abs() * t.unit, ti, i));
                }
            }
        }
        let take = patch_entries_within(budget, buf).min(cands.len());
        // Largest distance first; ties in target/element order, so the
        // choice is a pure function of the inputs (resume reproduces it).
        let by_priority = |a: &(f32, usize, usize), b: &(f32, usize, usize)| {
            b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2)))
        };
        if take < cands.len() {
            cands.select_nth_unstable_by(take, by_priority);
            cands.truncate(take);
        }
        let mut entries = Vec::with_capacity(take);
        let mut patched = vec![false; targets.len()];
        for &(_, ti, i) in &cands {
            let t = &targets[ti];
            let slot = self.slots[t.layer].as_mut().expect("installed above");
            entries.push((slot.layout.addr_of(i / t.n, i % t.n) as u32, t.w[i]));
            slot.held[i] = t.w[i];
            patched[ti] = true;
        }
        entries.sort_unstable_by_key(|e| e.0);
        self.stats.updates += targets.len() as u64;
        self.stats.bytes_dense += targets
            .iter()
            .map(|t| {
                dense_write_bytes(
                    self.slots[t.layer].as_ref().expect("installed").layout.len(),
                    buf,
                )
            })
            .sum::<u64>();
        self.stats.changed_values += changed;
        self.stats.withheld_values += changed - entries.len() as u64;
        self.stats.sent_values += entries.len() as u64;
        self.stats.patch_updates += patched.iter().filter(|&&p| p).count() as u64;
        let before = self.dev.bytes_sent();
        if !entries.is_empty() {
            self.dev.patch_weights(&entries).map_err(|e| (first, e.into()))?;
        }
        self.stats.bytes_sent += self.dev.bytes_sent() - before;
        Ok(())
    }

    /// What the unbudgeted update of `targets` costs (installed layers).
    fn plain_cost(&self, targets: &[LayerTarget]) -> u64 {
        let buf = self.info.buf_bytes;
        let t = self.threshold as i16;
        targets
            .iter()
            .map(|tg| {
                let slot = self.slots[tg.layer].as_ref().expect("installed");
                let dense = dense_write_bytes(slot.layout.len(), buf);
                let entries = slot
                    .held
                    .iter()
                    .zip(tg.w)
                    .filter(|(&h, &v)| (v as i16 - h as i16).abs() >= t)
                    .count();
                match self.compress {
                    Compress::Dense => dense,
                    Compress::Sparse => patch_bytes(entries, buf).min(dense),
                }
            })
            .sum()
    }

    fn update_weights(
        &mut self,
        layer: usize,
        w: &[i8],
        k: usize,
        n: usize,
    ) -> Result<(), ExecutorError> {
        let Some(Some(slot)) = self.slots.get_mut(layer) else {
            return self.install(layer, w, k, n);
        };
        check_weights(layer, w.len(), k, n)?;
        check_allocated(layer, &slot.layout, k, n)?;
        let buf = self.info.buf_bytes;
        let dense = dense_write_bytes(slot.layout.len(), buf);
        let t = self.threshold as i16;
        let mut changed = 0u64;
        let mut entries = Vec::new();
        for (i, (&h, &v)) in slot.held.iter().zip(w).enumerate() {
            if h != v {
                changed += 1;
                if (v as i16 - h as i16).abs() >= t {
                    entries.push((slot.layout.addr_of(i / n, i % n) as u32, v));
                }
            }
        }
        self.stats.updates += 1;
        self.stats.bytes_dense += dense;
        self.stats.changed_values += changed;
        self.stats.withheld_values += changed - entries.len() as u64;
        let before = self.dev.bytes_sent();
        let sparse = patch_bytes(entries.len(), buf);
        let dense_now = self.compress == Compress::Dense || sparse >= dense;
        // What the device holds after this update: the sent values applied.
        for (h, &v) in slot.held.iter_mut().zip(w) {
            if (v as i16 - *h as i16).abs() >= t {
                *h = v;
            }
        }
        if dense_now {
            let layout = slot.layout;
            let held = slot.held.clone();
            self.dev.load_layout(&layout, &held)?;
            self.stats.dense_updates += 1;
            self.stats.sent_values += (k * n) as u64;
        } else if !entries.is_empty() {
            self.dev.patch_weights(&entries)?;
            self.stats.patch_updates += 1;
            self.stats.sent_values += entries.len() as u64;
        }
        self.stats.bytes_sent += self.dev.bytes_sent() - before;
        Ok(())
    }

    fn run_matmul(
        &mut self,
        layer: usize,
        a: &[i8],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<i32>, ExecutorError> {
        let mode = self.mode(layer);
        let held = self.slots.get(layer).and_then(Option::as_ref).map(|s| (s.layout.k, s.layout.n));
        check_matmul(layer, held, a.len(), m, k, n)?;
        let slot = self.slot(layer)?;
        let base = slot.layout.base as u32;
        let host = (mode == LayerMode::Host).then(|| matmul_i8_ref(a, &slot.held, m, k, n));
        self.grow_counters(layer);
        let macs = (m * k * n) as u64;
        self.layer_logical_macs[layer] += macs;
        let t0 = Instant::now();
        let out = match mode {
            LayerMode::Host => host.expect("computed above"),
            LayerMode::Device => {
                self.layer_macs[layer] += macs;
                let rot = self.plain_rotation(layer);
                self.dev.matmul(base, m, k, n, rot, a)?
            }
            LayerMode::Tmr => {
                self.layer_macs[layer] += 3 * macs;
                let [r0, r1, r2] = self.layer_rotations(layer);
                let x = self.dev.matmul(base, m, k, n, r0, a)?;
                let y = self.dev.matmul(base, m, k, n, r1, a)?;
                let z = self.dev.matmul(base, m, k, n, r2, a)?;
                vote::vote(&x, &y, &z)
            }
        };
        self.matmul_seconds += t0.elapsed().as_secs_f64();
        Ok(out)
    }
}

impl Int8Matmul for DeviceMatmul {
    fn set_weights(&mut self, layer: usize, w: &[i8], k: usize, n: usize) -> Result<(), ExecError> {
        let t = LayerTarget { layer, w, k, n, exact: None, unit: 1.0 };
        Ok(self.update_layers(&[t]).map_err(|(_, e)| e)?)
    }

    fn matmul(
        &mut self,
        layer: usize,
        a: &[i8],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<i32>, ExecError> {
        Ok(self.run_matmul(layer, a, m, k, n)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_byte_estimates() {
        // 256 bytes in one frame: data + address + header/CRC.
        assert_eq!(dense_write_bytes(256, 4096), 256 + 4 + FRAME_OVERHEAD as u64);
        assert_eq!(dense_write_bytes(10_000, 4096), 10_000 + 3 * (4 + FRAME_OVERHEAD) as u64);
        assert_eq!(patch_bytes(0, 4096), 0);
        assert_eq!(patch_bytes(3, 4096), 12 + FRAME_OVERHEAD as u64);
        assert_eq!(patch_bytes(2000, 4096), 8000 + 2 * FRAME_OVERHEAD as u64);
    }

    #[test]
    fn patch_entries_within_is_the_most_that_fit() {
        for buf in [8usize, 64, 4096, 1 << 18] {
            for budget in (0..3000u64).step_by(7).chain([1 << 20, 3 << 20]) {
                let e = patch_entries_within(budget, buf);
                assert!(patch_bytes(e, buf) <= budget, "buf {buf} budget {budget}: {e}");
                assert!(patch_bytes(e + 1, buf) > budget, "buf {buf} budget {budget}: {e}");
            }
        }
    }

    #[test]
    fn update_budgets_parse_as_bytes_or_fractions() {
        let ok = |s: &str| s.parse::<UpdateBudget>().unwrap();
        assert_eq!(ok("4096"), UpdateBudget::Bytes(4096));
        assert_eq!(ok("10%"), UpdateBudget::Fraction(0.1));
        assert_eq!(ok(" 2.5 % "), UpdateBudget::Fraction(0.025));
        assert_eq!(ok("0.1"), UpdateBudget::Fraction(0.1));
        assert_eq!(ok("1.0"), UpdateBudget::Fraction(1.0));
        for bad in ["0", "0%", "-5", "0.0", "1.5", "150%", "ten", "", "%", "nan%", "1e3"] {
            let e = bad.parse::<UpdateBudget>().unwrap_err();
            assert_eq!(e, ParseBudgetError(bad.into()));
        }
        assert_eq!(UpdateBudget::Fraction(0.1).bytes(235_562), 23_556);
        assert_eq!(UpdateBudget::Bytes(777).bytes(235_562), 777);
        for b in [UpdateBudget::Bytes(4096), UpdateBudget::Fraction(0.02)] {
            let j = serde_json::to_string(&b).unwrap();
            assert_eq!(serde_json::from_str::<UpdateBudget>(&j).unwrap(), b, "{j}");
        }
        assert_eq!(UpdateBudget::Fraction(0.1).to_string(), "10 % of dense");
    }

    #[test]
    fn usage_snapshots_subtract_field_by_field() {
        let u = |n: u64| UpdateStats {
            updates: n,
            bytes_dense: 2 * n,
            bytes_sent: 3 * n,
            changed_values: 4 * n,
            sent_values: 5 * n,
            withheld_values: 6 * n,
            patch_updates: 7 * n,
            dense_updates: 8 * n,
        };
        assert_eq!(u(5) - u(2), u(3));
        assert_eq!(u(2) + u(3), u(5));
        let d = |n: u64| DeviceUsage {
            bytes_to_device: n,
            bytes_from_device: 10 * n,
            device_macs: 100 * n,
            update: u(n),
        };
        assert_eq!(d(9) - d(4), d(5));
        assert_eq!(d(4) + (d(9) - d(4)), d(9));
    }

    #[test]
    fn compress_parses_and_prints_its_names() {
        for c in [Compress::Dense, Compress::Sparse] {
            assert_eq!(c.to_string().parse::<Compress>(), Ok(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.to_string());
        }
        let e = "zip".parse::<Compress>().unwrap_err();
        assert_eq!(e, ParseCompressError("zip".into()));
        assert_eq!(e.to_string(), "compression `zip`: expected dense or sparse");
    }
}
