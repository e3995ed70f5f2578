//! Fleet planning (`faultloop fleet`, docs/fleet.md): many chips, each with
//! its own fault map, retrained in groups that share one model.
//!
//! * [`fuse`]: the fused map of a group: the union of the members' faulty
//!   PEs; where every member has the same fault at a PE it stays a stuck-at
//!   fault, anywhere else (a member healthy there, or faulty differently) the
//!   PE is bypassed. A bypassed PE computes nothing, so every member run
//!   with the group's bypass list computes exactly what training saw.
//! * [`group`]: greedy agglomeration from singletons; the reward of merging
//!   A and B is `cost(A) + cost(B) − cost(A∪B)`, the cost of a group the
//!   resilience map's need at its fused map's fault rate. A bypassed PE
//!   counts as faulty for the rate: its weights are lost to the model just
//!   as a fault's are, and the resilience map was measured with every
//!   faulty PE counted, so this is the conservative reading. A group whose
//!   need is `None` (not met at any amount) is never formed.
//! * [`run_shard`]: the retraining jobs (one per group: retrain on the fused
//!   map, verify every member on its own map, retrain the members below the
//!   floor alone), `--shard i/n` taking job `k` where `k % n == i`; each
//!   job's result is written atomically (temp + rename), a rerun skips it.
//! * Retraining uses the context's mitigation (the resilience map's, as it
//!   was measured): `fat` runs with exactly the group's bypass list, `fap`
//!   bypasses every faulty PE of the fused map too, `auto` adds what its
//!   triage picks; the checkpoint records the final list and every member
//!   is verified with it.
//! * [`merge`]: every job's result and the grouping into `plan.json`; the
//!   unsharded run ends with the same call, so both are byte-identical.
//!
//! Amounts are sample-steps (as in [`crate::resilience`]); a retraining of
//! `a` sample-steps runs `ceil(a / train_len)` epochs of `ceil(a / epochs)`
//! samples (so `ceil(a / batch)` steps in one epoch up to a full training
//! set). An amount of 0 retrains nothing: the checkpoint is the pretrained
//! model with the bypass list recorded.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use faultloop_proto::faultmap::{Fault, FaultMap};

use crate::checkpoint;
use crate::data::Dataset;
use crate::device::DeviceMatmul;
use crate::error::Error;
use crate::eval;
use crate::fleetjob::write_atomic;
pub use crate::fleetjob::Shard;
use crate::mitigate::{faulty_pes, Mitigation, MitigationRecord};
use crate::plot::{line_chart, Series};
use crate::resilience::ResilienceMap;
use crate::retrain::{self, RetrainConfig, RetrainRun};

/// Fleet errors; each names the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("chips directory {}: {msg}", dir.display())]
    Chips { dir: PathBuf, msg: String },
    #[error("chip map {}: {msg}", path.display())]
    ChipMap { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Plan { path: PathBuf, msg: String },
    #[error(transparent)]
    Trainer(#[from] Error),
}

pub type Result<T, E = FleetError> = std::result::Result<T, E>;

/// One chip: its name (the map's file stem) and fault map.
#[derive(Debug, Clone, PartialEq)]
pub struct Chip {
    pub name: String,
    pub map: FaultMap,
}

/// Every `NAME.json` of `dir`, sorted by name; all maps for one array size
/// (the first chip's, or `array` when given).
pub fn load_chips(dir: &Path, array: Option<(usize, usize)>) -> Result<Vec<Chip>> {
    let bad = |msg: String| FleetError::Chips { dir: dir.to_path_buf(), msg };
    let rd = std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for e in rd {
        let p = e.map_err(|e| bad(e.to_string()))?.path();
        if p.extension().is_some_and(|x| x == "json") && p.is_file() {
            paths.push(p);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(bad("no fault maps (NAME.json) in it".into()));
    }
    let mut chips: Vec<Chip> = Vec::with_capacity(paths.len());
    let mut want = array;
    for p in paths {
        let map = FaultMap::load(&p)
            .and_then(|m| m.validate().map(|_| m))
            .map_err(|e| FleetError::ChipMap { path: p.clone(), msg: e.to_string() })?;
        let size = (map.array.rows, map.array.cols);
        match want {
            Some(w) if w != size => {
                return Err(FleetError::ChipMap {
                    path: p,
                    msg: format!("a {}x{} map, the fleet is {}x{}", size.0, size.1, w.0, w.1),
                })
            }
            _ => want = Some(size),
        }
        let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        chips.push(Chip { name, map });
    }
    Ok(chips)
}

/// A group's fused map: the stuck-at faults all members share, and the PEs
/// bypassed (where they disagree, and every PE a member's map bypasses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fused {
    pub map: FaultMap,
    /// Sorted `[row, col]`; the group's bypass list.
    pub bypass: Vec<[usize; 2]>,
}

impl Fused {
    /// Faulty or bypassed PEs over the array: the rate the group is costed at.
    pub fn rate(&self) -> f64 {
        let n = self.map.array.rows * self.map.array.cols;
        let mut pes = faulty_pes(&self.map);
        pes.extend_from_slice(&self.bypass);
        pes.sort_unstable();
        pes.dedup();
        pes.len() as f64 / n.max(1) as f64
    }
}

/// A PE's non-zero fault entries, in a canonical order.
fn pe_faults(map: &FaultMap) -> BTreeMap<[usize; 2], Vec<Fault>> {
    let mut m: BTreeMap<[usize; 2], Vec<Fault>> = BTreeMap::new();
    for f in map.faults.iter().filter(|f| f.stuck_at_0 | f.stuck_at_1 != 0) {
        m.entry([f.row, f.col]).or_default().push(*f);
    }
    for v in m.values_mut() {
        v.sort_by_key(|f| (f.site, f.stuck_at_0, f.stuck_at_1));
    }
    m
}

/// Fuse the maps of a group (all for one array size; at least one).
pub fn fuse(maps: &[&FaultMap]) -> Fused {
    let array = maps[0].array;
    let per: Vec<_> = maps.iter().map(|m| pe_faults(m)).collect();
    let mut pes: Vec<[usize; 2]> = per.iter().flat_map(|m| m.keys().copied()).collect();
    pes.sort_unstable();
    pes.dedup();
    let mut faults = Vec::new();
    let mut bypass: Vec<[usize; 2]> = maps.iter().flat_map(|m| m.bypass.iter().copied()).collect();
    for pe in pes {
        let first = per[0].get(&pe);
        if per.iter().all(|m| m.get(&pe) == first) {
            faults.extend(first.expect("a faulty PE is in some map").iter().copied());
        } else {
            bypass.push(pe);
        }
    }
    bypass.sort_unstable();
    bypass.dedup();
    // A PE bypassed by some member's own map is bypassed for all: drop its
    // stuck-at entries, which then do nothing.
    faults.retain(|f| !bypass.contains(&[f.row, f.col]));
    let mut map = FaultMap::empty(array.rows, array.cols);
    map.faults = faults;
    Fused { map, bypass }
}

/// A planned group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedGroup {
    /// `g000`, `g001`, ... in order of the first member.
    pub id: String,
    /// Chip indices (into the sorted chip list), ascending.
    pub members: Vec<usize>,
    pub fused: Fused,
    pub rate: f64,
    /// Sample-steps of its retraining; `None` in the map = best effort at
    /// the map's largest amount, see [`amount_or_max`].
    pub need: Option<u64>,
    pub amount: u64,
}

/// `need`, or the map's largest amount when nothing meets the floor (the
/// chip is then retrained as much as the map knows and reported as it ends).
pub fn amount_or_max(res: &ResilienceMap, need: Option<u64>) -> u64 {
    need.unwrap_or_else(|| res.amounts.iter().copied().max().unwrap_or(0))
}

/// The resilience map with its least amounts recomputed for `floor`.
pub fn with_floor(res: &ResilienceMap, floor: f64) -> ResilienceMap {
    let mut r = res.clone();
    r.accuracy = floor;
    r.update_least();
    r
}

/// Greedy grouping of `chips` under `res` (its floor already set): merge
/// the pair of groups with the largest positive reward, ties to the pair
/// with the smallest first members; until no merge pays.
pub fn group(chips: &[Chip], res: &ResilienceMap) -> Vec<PlannedGroup> {
    let fuse_of = |m: &[usize]| {
        let maps: Vec<&FaultMap> = m.iter().map(|&i| &chips[i].map).collect();
        fuse(&maps)
    };
    let mut groups: Vec<(Vec<usize>, Option<u64>)> =
        (0..chips.len()).map(|i| (vec![i], res.need(fuse_of(&[i]).rate()))).collect();
    loop {
        let mut best: Option<(u64, usize, usize, Option<u64>)> = None;
        for a in 0..groups.len() {
            for b in a + 1..groups.len() {
                let (Some(ca), Some(cb)) = (groups[a].1, groups[b].1) else { continue };
                let both: Vec<usize> = [&groups[a].0[..], &groups[b].0[..]].concat();
                let Some(cu) = res.need(fuse_of(&both).rate()) else { continue };
                let reward = (ca + cb).saturating_sub(cu);
                // Strictly larger: the first pair found (smallest indices) wins ties.
                if reward > 0 && best.map_or(true, |(r, ..)| reward > r) {
                    best = Some((reward, a, b, Some(cu)));
                }
            }
        }
        let Some((_, a, b, cu)) = best else { break };
        let (mb, _) = groups.remove(b);
        groups[a].0.extend(mb);
        groups[a].0.sort_unstable();
        groups[a].1 = cu;
    }
    groups.sort_by_key(|g| g.0[0]);
    groups
        .into_iter()
        .enumerate()
        .map(|(k, (members, need))| {
            let fused = fuse_of(&members);
            PlannedGroup {
                id: format!("g{k:03}"),
                rate: fused.rate(),
                members,
                fused,
                need,
                amount: amount_or_max(res, need),
            }
        })
        .collect()
}

/// The deterministic grouping every shard recomputes (and writes, the same
/// bytes each time, to `grouping.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grouping {
    pub floor: f64,
    pub chips: Vec<PlannedChip>,
    pub groups: Vec<PlannedGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChip {
    pub name: String,
    pub fault_rate: f64,
    /// Its own need (sample-steps; `None`: not met at any amount).
    pub need: Option<u64>,
    /// What retraining it alone would cost: `need`, or the best effort.
    pub amount: u64,
    pub map: FaultMap,
}

/// The whole grouping step: each chip's need, and the groups.
pub fn plan(chips: &[Chip], res: &ResilienceMap, floor: f64) -> Grouping {
    let res = with_floor(res, floor);
    let chips_out = chips
        .iter()
        .map(|c| {
            let need = res.need(fuse(&[&c.map]).rate());
            PlannedChip {
                name: c.name.clone(),
                fault_rate: c.map.fault_rate(),
                need,
                amount: amount_or_max(&res, need),
                map: c.map.clone(),
            }
        })
        .collect();
    Grouping { floor, chips: chips_out, groups: group(chips, &res) }
}

/// What the jobs share: the pretrained checkpoint, the device, the data and
/// the retraining settings (`epochs` and `train_samples` set per amount).
pub struct JobContext<'a> {
    pub model: &'a Path,
    /// `model:RxC`, `sim:RxC`, ...
    pub device: &'a str,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub config: RetrainConfig,
}

/// One member's verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberResult {
    pub name: String,
    /// The pretrained model on its own map, nothing bypassed.
    pub accuracy_before: f64,
    /// The group's model on its own map plus the group's bypass list.
    pub accuracy_group: f64,
    /// Below the floor in a group of several: retrained alone.
    pub left: bool,
    /// After retraining alone (its own map, its own amount).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_alone: Option<f64>,
    /// Its own checkpoint (relative to the plan), when it left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// One job's result (`jobs/ID.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub id: String,
    pub members: Vec<String>,
    /// What the job was run for ([`job_key`]): a rerun or a merge refuses a
    /// result whose key differs (another plan's directory, other options).
    pub key: serde_json::Value,
    /// Relative to the plan directory.
    pub checkpoint: String,
    /// The bypass list the group's checkpoint records (the fused map's,
    /// plus what `fap`/`auto` added).
    pub bypass: Vec<[usize; 2]>,
    pub results: Vec<MemberResult>,
    /// Wall seconds (not in plan.json, which must not depend on the run).
    pub seconds: f64,
}

/// What a job's result depends on: the planned group, the floor and, where
/// known (not in a merge), the model, device and retraining settings.
pub fn job_key(
    grouping: &Grouping,
    g: &PlannedGroup,
    ctx: Option<&JobContext>,
) -> serde_json::Value {
    let mut k = serde_json::json!({ "group": g, "floor": grouping.floor });
    if let Some(c) = ctx {
        k["model"] = c.model.display().to_string().into();
        k["device"] = c.device.into();
        k["config"] = serde_json::to_value(&c.config).unwrap_or_default();
    }
    k
}

/// Whether a stored key matches (`ctx` absent: the keys' common part).
fn same_key(stored: &serde_json::Value, want: &serde_json::Value) -> bool {
    ["group", "floor", "model", "device", "config"]
        .iter()
        .all(|f| want.get(f).is_none() || stored.get(f) == want.get(f))
}

fn job_path(plan_dir: &Path, id: &str) -> PathBuf {
    plan_dir.join("jobs").join(format!("{id}.json"))
}

fn to_json<T: Serialize>(path: &Path, v: &T) -> Result<Vec<u8>> {
    let mut s = serde_json::to_vec_pretty(v)
        .map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    s.push(b'\n');
    Ok(s)
}

fn from_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| Error::Io { path: path.into(), source: e })?;
    Ok(serde_json::from_slice(&text)
        .map_err(|source| Error::Json { path: path.to_path_buf(), source })?)
}

/// Retrain the pretrained model for `amount` sample-steps on `map` with
/// `bypass` on top, under the context's mitigation (`fat` keeps exactly
/// `bypass`, `fap` adds every faulty PE of `map`, `auto` what its triage
/// picks); the checkpoint at `dir` (replaced) records the final list, which
/// is returned: every chip that runs this model runs it with that list.
fn retrain_to(
    ctx: &JobContext,
    map: &FaultMap,
    bypass: &[[usize; 2]],
    amount: u64,
    dir: &Path,
) -> Result<Vec<[usize; 2]>> {
    let mitigation = ctx.config.mitigation;
    if mitigation == Mitigation::None {
        return Err(Error::Config("fleet retraining with mitigation `none`".into()).into());
    }
    let (mut vs, model, _) = checkpoint::load(ctx.model)?;
    let mut exec = DeviceMatmul::open(ctx.device, Some(map)).map_err(Error::from)?;
    exec.set_bypass(bypass).map_err(Error::from)?;
    let array = [exec.info().rows, exec.info().cols];
    let _ = std::fs::remove_dir_all(dir);
    if amount == 0 {
        // No retraining: the pretrained weights, with fap's bypass (no
        // triage without a retraining run to carry it).
        let bypass = match mitigation {
            Mitigation::Fap => crate::mitigate::union(bypass, &faulty_pes(map)),
            _ => bypass.to_vec(),
        };
        let record =
            MitigationRecord { mitigation, array, bypass: bypass.clone(), rotations: Vec::new() };
        let info = serde_json::json!({"fleet": {"amount": 0}});
        checkpoint::save_with(dir, &vs, &model, info, Some(&record))?;
        return Ok(bypass);
    }
    let len = ctx.train.len().max(1) as u64;
    let epochs = amount.div_ceil(len).max(1);
    let config = RetrainConfig {
        epochs: epochs as usize,
        train_samples: amount.div_ceil(epochs) as usize,
        stop_after_steps: None,
        // A group's members run its model with its bypass list alone, not
        // with rotations chosen for the fused map.
        triage_rotations: false,
        ..ctx.config.clone()
    };
    // Every job starts from the same libtorch RNG state, whichever shard
    // and order runs it.
    tch::manual_seed(config.seed as i64);
    let run = RetrainRun {
        model: &model,
        vs: &mut vs,
        exec: &mut exec,
        train: ctx.train,
        test: ctx.test,
        config,
        checkpoint: Some(dir),
        resume: false,
    };
    let report = retrain::retrain(run, &mut |_| {})?;
    // The resume state is not needed: a job reruns whole or not at all.
    let _ = std::fs::remove_file(dir.join(retrain::STATE_FILE));
    let _ = std::fs::remove_file(dir.join(retrain::ADAM_FILE));
    Ok(report.bypass)
}

/// Accuracy of the checkpoint at `dir` (or the pretrained model) on `map`
/// with `bypass` on top.
fn accuracy_on(ctx: &JobContext, dir: &Path, map: &FaultMap, bypass: &[[usize; 2]]) -> Result<f64> {
    let (_vs, model, _) = checkpoint::load(dir)?;
    let mut exec = DeviceMatmul::open(ctx.device, Some(map)).map_err(Error::from)?;
    exec.install_model(&model)?;
    exec.set_bypass(bypass).map_err(Error::from)?;
    Ok(eval::accuracy(&model, ctx.test, ctx.config.eval_batch, &mut exec, |_| {})?)
}

/// Run one group's job: retrain on the fused map, verify each member on its
/// own map with the group's bypass list, retrain those below the floor alone.
pub fn run_job(
    ctx: &JobContext,
    grouping: &Grouping,
    g: &PlannedGroup,
    plan_dir: &Path,
) -> Result<JobResult> {
    let t0 = std::time::Instant::now();
    let rel = format!("groups/{}", g.id);
    let bypass = retrain_to(ctx, &g.fused.map, &g.fused.bypass, g.amount, &plan_dir.join(&rel))?;
    let mut results = Vec::new();
    for &i in &g.members {
        let c = &grouping.chips[i];
        let accuracy_before = accuracy_on(ctx, ctx.model, &c.map, &[])?;
        let accuracy_group = accuracy_on(ctx, &plan_dir.join(&rel), &c.map, &bypass)?;
        let left = g.members.len() > 1 && accuracy_group < grouping.floor;
        let (mut accuracy_alone, mut checkpoint) = (None, None);
        if left {
            let own = format!("chips/{}", c.name);
            let own_bypass = retrain_to(ctx, &c.map, &[], c.amount, &plan_dir.join(&own))?;
            accuracy_alone = Some(accuracy_on(ctx, &plan_dir.join(&own), &c.map, &own_bypass)?);
            checkpoint = Some(own);
        }
        results.push(MemberResult {
            name: c.name.clone(),
            accuracy_before,
            accuracy_group,
            left,
            accuracy_alone,
            checkpoint,
        });
    }
    Ok(JobResult {
        id: g.id.clone(),
        members: g.members.iter().map(|&i| grouping.chips[i].name.clone()).collect(),
        key: job_key(grouping, g, Some(ctx)),
        checkpoint: rel,
        bypass,
        results,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// What a shard did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardReport {
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
}

/// Write the grouping and run this shard's jobs (skipping finished ones).
/// `progress` sees each job id before it runs.
pub fn run_shard(
    ctx: &JobContext,
    grouping: &Grouping,
    plan_dir: &Path,
    shard: Shard,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<ShardReport> {
    let gpath = plan_dir.join("grouping.json");
    write_atomic(&gpath, &to_json(&gpath, grouping)?)?;
    let mine: Vec<&PlannedGroup> = grouping
        .groups
        .iter()
        .enumerate()
        .filter(|(k, _)| shard.owns(*k))
        .map(|(_, g)| g)
        .collect();
    let mut rep = ShardReport { ran: Vec::new(), skipped: Vec::new() };
    for (n, g) in mine.iter().enumerate() {
        let path = job_path(plan_dir, &g.id);
        if path.is_file() {
            let done: JobResult = from_json(&path)?;
            if !same_key(&done.key, &job_key(grouping, g, Some(ctx))) {
                return Err(FleetError::Plan {
                    path,
                    msg: format!(
                        "a result for another plan or other options (members {:?}); use a fresh \
                         output directory or delete it",
                        done.members
                    ),
                });
            }
            rep.skipped.push(g.id.clone());
            continue;
        }
        progress(&g.id, n, mine.len());
        let r = run_job(ctx, grouping, g, plan_dir)?;
        write_atomic(&path, &to_json(&path, &r)?)?;
        rep.ran.push(g.id.clone());
    }
    Ok(rep)
}

/// One chip in `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChip {
    pub name: String,
    pub fault_rate: f64,
    pub group: String,
    /// Its own need (sample-steps; `None`: no amount meets the floor).
    pub need: Option<u64>,
    /// Sample-steps of the retraining whose model it runs.
    pub amount: u64,
    pub accuracy_before: f64,
    pub accuracy_after: f64,
    /// Below the floor in its group: retrained alone.
    pub left_group: bool,
    pub meets_floor: bool,
    /// The checkpoint it runs (relative to the plan directory).
    pub checkpoint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanGroup {
    pub id: String,
    pub members: Vec<String>,
    pub fault_rate: f64,
    pub amount: u64,
    pub fused_map: FaultMap,
    pub bypass: Vec<[usize; 2]>,
    pub checkpoint: String,
}

/// `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPlan {
    pub floor: f64,
    pub chips: Vec<PlanChip>,
    pub groups: Vec<PlanGroup>,
    /// Sample-steps: one retraining per group plus each leaver's own.
    pub grouped_cost: u64,
    /// Sample-steps: every chip retrained alone for its own amount.
    pub per_chip_cost: u64,
    pub chips_meeting_floor: usize,
}

/// Combine `grouping.json` and every job's result in `plan_dir` into
/// `plan.json` and the plots; an error lists the jobs not yet done.
pub fn merge(plan_dir: &Path) -> Result<FleetPlan> {
    let grouping: Grouping = from_json(&plan_dir.join("grouping.json"))?;
    let missing: Vec<&str> = grouping
        .groups
        .iter()
        .filter(|g| !job_path(plan_dir, &g.id).is_file())
        .map(|g| g.id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(FleetError::Plan {
            path: plan_dir.join("jobs"),
            msg: format!("jobs not done yet: {} (run every shard first)", missing.join(", ")),
        });
    }
    let mut chips: Vec<Option<PlanChip>> = vec![None; grouping.chips.len()];
    let mut groups = Vec::new();
    let mut grouped_cost = 0u64;
    for g in &grouping.groups {
        let path = job_path(plan_dir, &g.id);
        let r: JobResult = from_json(&path)?;
        if !same_key(&r.key, &job_key(&grouping, g, None)) {
            return Err(FleetError::Plan {
                path,
                msg: "a result for another grouping than grouping.json's (shards run with \
                      different inputs?)"
                    .into(),
            });
        }
        if r.results.len() != g.members.len() {
            return Err(FleetError::Plan {
                path,
                msg: "member count differs from the plan".into(),
            });
        }
        grouped_cost += g.amount;
        for (&i, m) in g.members.iter().zip(&r.results) {
            let c = &grouping.chips[i];
            let (amount, acc, ckpt) = match (m.accuracy_alone, &m.checkpoint) {
                (Some(a), Some(p)) => {
                    grouped_cost += c.amount;
                    (c.amount, a, p.clone())
                }
                _ => (g.amount, m.accuracy_group, r.checkpoint.clone()),
            };
            chips[i] = Some(PlanChip {
                name: c.name.clone(),
                fault_rate: c.fault_rate,
                group: g.id.clone(),
                need: c.need,
                amount,
                accuracy_before: m.accuracy_before,
                accuracy_after: acc,
                left_group: m.left,
                meets_floor: acc >= grouping.floor,
                checkpoint: ckpt,
            });
        }
        groups.push(PlanGroup {
            id: g.id.clone(),
            members: r.members.clone(),
            fault_rate: g.rate,
            amount: g.amount,
            fused_map: g.fused.map.clone(),
            bypass: r.bypass.clone(),
            checkpoint: r.checkpoint.clone(),
        });
    }
    let chips: Vec<PlanChip> =
        chips.into_iter().map(|c| c.expect("every chip is in a group")).collect();
    let plan = FleetPlan {
        floor: grouping.floor,
        per_chip_cost: grouping.chips.iter().map(|c| c.amount).sum(),
        chips_meeting_floor: chips.iter().filter(|c| c.meets_floor).count(),
        chips,
        groups,
        grouped_cost,
    };
    let ppath = plan_dir.join("plan.json");
    write_atomic(&ppath, &to_json(&ppath, &plan)?)?;
    let (cost, acc) = plots(&plan, &grouping);
    write_atomic(&plan_dir.join("cost.svg"), cost.as_bytes())?;
    write_atomic(&plan_dir.join("accuracy.svg"), acc.as_bytes())?;
    Ok(plan)
}

/// The two charts: retraining cost per chip (alone vs its share of the
/// group's), accuracy before and after per chip with the floor.
pub fn plots(plan: &FleetPlan, grouping: &Grouping) -> (String, String) {
    let size: BTreeMap<&str, usize> =
        plan.groups.iter().map(|g| (g.id.as_str(), g.members.len())).collect();
    let x = |i: usize| i as f64 + 1.0;
    let alone: Vec<(f64, f64)> =
        grouping.chips.iter().enumerate().map(|(i, c)| (x(i), c.amount as f64)).collect();
    let share: Vec<(f64, f64)> = plan
        .chips
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let n = if c.left_group { 1 } else { size[c.group.as_str()] };
            (x(i), c.amount as f64 / n as f64)
        })
        .collect();
    let cost = line_chart(
        &format!(
            "Retraining cost per chip: {} grouped vs {} alone (sample-steps)",
            plan.grouped_cost, plan.per_chip_cost
        ),
        "chip",
        "sample-steps",
        &[Series::new("alone", "#888888", alone), Series::new("grouped (share)", "#1f77b4", share)],
        false,
    );
    let n = plan.chips.len() as f64;
    let before: Vec<(f64, f64)> =
        plan.chips.iter().enumerate().map(|(i, c)| (x(i), c.accuracy_before)).collect();
    let after: Vec<(f64, f64)> =
        plan.chips.iter().enumerate().map(|(i, c)| (x(i), c.accuracy_after)).collect();
    let acc = line_chart(
        &format!(
            "Accuracy per chip: {} of {} meet the floor",
            plan.chips_meeting_floor,
            plan.chips.len()
        ),
        "chip",
        "accuracy",
        &[
            Series::new("before", "#d62728", before),
            Series::new("after", "#2ca02c", after),
            Series::level("floor", "#555555", plan.floor, 1.0, n.max(1.0)),
        ],
        true,
    );
    (cost, acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::{Cell, ResilienceMap};
    use faultloop_proto::frame::Site;

    fn fault(row: usize, col: usize, site: Site, sa1: u64) -> Fault {
        Fault { row, col, site, stuck_at_0: 0, stuck_at_1: sa1 }
    }

    fn map(faults: &[Fault]) -> FaultMap {
        let mut m = FaultMap::empty(4, 4);
        m.faults = faults.to_vec();
        m
    }

    #[test]
    fn fusion_keeps_agreed_faults_and_bypasses_disagreements() {
        let a = map(&[
            fault(0, 0, Site::Weight, 1),
            fault(1, 1, Site::Psum, 4),
            fault(2, 2, Site::Act, 2),
        ]);
        let b = map(&[
            fault(0, 0, Site::Weight, 1),
            fault(1, 1, Site::Psum, 8),
            fault(3, 3, Site::Act, 1),
        ]);
        let f = fuse(&[&a, &b]);
        // (0,0) agreed; (1,1) faulty differently; (2,2), (3,3) healthy in one.
        assert_eq!(f.map.faults, vec![fault(0, 0, Site::Weight, 1)]);
        assert_eq!(f.bypass, vec![[1, 1], [2, 2], [3, 3]]);
        assert_eq!(f.rate(), 4.0 / 16.0);
        // A singleton's fused map is its own.
        let s = fuse(&[&a]);
        assert_eq!(s.map.faults, a.faults);
        assert!(s.bypass.is_empty());
        assert_eq!(s.rate(), a.fault_rate());
    }

    #[test]
    fn fusion_takes_every_members_bypass_list_and_ignores_zero_masks() {
        let mut a = map(&[fault(0, 0, Site::Weight, 1), fault(2, 0, Site::Act, 0)]);
        a.bypass = vec![[3, 0]];
        let b = map(&[fault(0, 0, Site::Weight, 1), fault(3, 0, Site::Weight, 1)]);
        let f = fuse(&[&a, &b]);
        assert_eq!(f.bypass, vec![[3, 0]]);
        assert_eq!(f.map.faults, vec![fault(0, 0, Site::Weight, 1)]);
        // The order of a PE's entries does not make members disagree.
        let c = map(&[fault(1, 1, Site::Psum, 1), fault(1, 1, Site::Weight, 2)]);
        let d = map(&[fault(1, 1, Site::Weight, 2), fault(1, 1, Site::Psum, 1)]);
        assert!(fuse(&[&c, &d]).bypass.is_empty());
    }

    /// Needs 100 up to 2/16, 150 up to 4/16, 400 up to 6/16, nothing beyond.
    fn res() -> ResilienceMap {
        let rates = vec![2.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 8.0 / 16.0];
        let amounts = vec![100, 150, 400];
        let mut cells = Vec::new();
        for (ri, &rate) in rates.iter().enumerate() {
            for (ai, &amount) in amounts.iter().enumerate() {
                let ok = ai >= ri && ri < 3;
                cells.push(Cell { rate, amount, samples: vec![if ok { 0.9 } else { 0.5 }] });
            }
        }
        let mut m = ResilienceMap {
            model: "m".into(),
            device: "model:4x4".into(),
            mitigation: "fat".into(),
            clean_accuracy: 0.95,
            accuracy: 0.8,
            percentile: 10.0,
            epoch_samples: 100,
            rates,
            amounts,
            cells,
            least: Vec::new(),
        };
        m.update_least();
        m
    }

    fn chip(name: &str, faults: &[Fault]) -> Chip {
        Chip { name: name.into(), map: map(faults) }
    }

    #[test]
    fn grouping_merges_while_the_reward_is_positive() {
        let r = res();
        assert_eq!(r.need(1.0 / 16.0), Some(100));
        let w = |row, col| fault(row, col, Site::Weight, 1);
        let chips = vec![
            chip("a", &[w(0, 0)]),
            chip("b", &[w(0, 1)]),
            chip("c", &[w(0, 0)]),
            chip("d", &[w(1, 0), w(1, 1), w(1, 2), w(1, 3), w(2, 0), w(2, 1), w(2, 2)]),
        ];
        let g = group(&chips, &r);
        // a+b (2/16 → 100, reward 100; ties a+c, the first pair wins),
        // then +c (2/16 → 100, reward 100); d alone needs more than the map
        // offers and is never merged.
        let members: Vec<Vec<usize>> = g.iter().map(|g| g.members.clone()).collect();
        assert_eq!(members, vec![vec![0, 1, 2], vec![3]]);
        assert_eq!(g[0].fused.bypass, vec![[0, 0], [0, 1]], "b is healthy at (0, 0)");
        assert_eq!(g[0].amount, 100);
        assert_eq!(g[1].need, None);
        assert_eq!(g[1].amount, 400, "best effort: the largest amount");
        assert_eq!((g[0].id.as_str(), g[1].id.as_str()), ("g000", "g001"));
        // Deterministic: the same input, the same grouping.
        assert_eq!(group(&chips, &r), g);
    }

    #[test]
    fn grouping_stops_when_the_fused_map_costs_more_than_it_saves() {
        let r = res();
        let w = |row, col| fault(row, col, Site::Weight, 1);
        // Each 2/16 (100); fused 4/16 (150): reward 50 > 0, merge. Three:
        // 6/16 (400) vs 150 + 100: reward < 0, stop.
        let chips = vec![
            chip("a", &[w(0, 0), w(0, 1)]),
            chip("b", &[w(1, 0), w(1, 1)]),
            chip("c", &[w(2, 0), w(2, 1)]),
        ];
        let g = group(&chips, &r);
        let members: Vec<Vec<usize>> = g.iter().map(|g| g.members.clone()).collect();
        assert_eq!(members, vec![vec![0, 1], vec![2]]);
        assert_eq!(g[0].amount, 150);
        let p = plan(&chips, &r, 0.8);
        assert_eq!(p.chips.iter().map(|c| c.amount).sum::<u64>(), 300);
    }

    #[test]
    fn shards_parse_and_partition() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert!((0..9).filter(|&k| s.owns(k)).eq([1, 4, 7]));
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn chips_dir_errors_name_the_input() {
        let d = tempfile::tempdir().unwrap();
        let e = load_chips(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("no fault maps") && e.contains(&d.path().display().to_string()), "{e}");
        map(&[]).save(d.path().join("a.json")).unwrap();
        FaultMap::empty(8, 8).save(d.path().join("b.json")).unwrap();
        let e = load_chips(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("b.json") && e.contains("8x8") && e.contains("4x4"), "{e}");
        std::fs::write(d.path().join("b.json"), "{").unwrap();
        let e = load_chips(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("b.json"), "{e}");
        std::fs::remove_file(d.path().join("b.json")).unwrap();
        let c = load_chips(d.path(), None).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "a");
    }
}
