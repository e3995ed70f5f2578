//! The jobs that fill a [`ResilienceMap`] (`faultloop resilience`): one per
//! random chip, each a retraining run on the fast twin evaluated at every
//! amount on the way, split into shards and merged back.
//!
//! * Chips: rate `i`, chip `c` gets `FaultMap::random(rows, cols, rate,
//!   chip_seed(seed, i, c))` (default options: every site, both
//!   polarities), so a chip is a pure function of the seed and its place.
//! * One run per chip: retrain (`fat`, `fap` or `auto`) up to the largest
//!   amount with [`RetrainConfig::eval_marks`] at every other; amount 0 is
//!   the chip before retraining. The learning rate is constant (no cosine
//!   decay), so the accuracy at an amount is what a run of just that amount
//!   would reach, not one shaped by the longest amount's schedule.
//! * Jobs are numbered rate-major (`i * chips + c`); shard `k/n` runs the
//!   jobs whose number is `k` mod `n` (round robin, so each shard gets every
//!   rate). Each finished job is written atomically (temp file + rename) to
//!   its job file in the work directory; a rerun skips jobs whose file is
//!   there and belongs to the same spec, so an interrupted shard resumes
//!   at job granularity.
//! * [`merge`] reads shard files, job files or directories of them, checks
//!   they share one spec and cover every job, and assembles the map exactly
//!   as an unsharded run does ([`assemble`]): the JSON is byte-identical.
use std::path::{Path, PathBuf};
use std::time::Instant;

use faultloop_proto::faultmap::{FaultMap, RandomOptions};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::data::Dataset;
use crate::device::DeviceMatmul;
use crate::error::{Error, Result};
use crate::eval;
use crate::mitigate::Mitigation;
use crate::resilience::{Cell, ResilienceMap};
use crate::retrain::{self, RetrainConfig, RetrainRun};

const JOB_FORMAT: &str = "faultloop-resilience-job";
const SHARD_FORMAT: &str = "faultloop-resilience-shard";

/// A retraining amount as given: epochs (`0.25`) or sample-steps (`1000s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Epochs(f64),
    Samples(u64),
}

impl Amount {
    /// Sample-steps, with `epoch_samples` training samples per epoch.
    pub fn samples(self, epoch_samples: u64) -> u64 {
        match self {
            Amount::Epochs(e) => (e * epoch_samples as f64).round() as u64,
            Amount::Samples(s) => s,
        }
    }
}

fn list_err(what: &'static str, input: &str, msg: String) -> Error {
    Error::List { what, input: input.into(), msg }
}

/// `--amounts`: comma-separated epochs (`0,0.25,1,4`) or sample-steps with
/// an `s` suffix (`500s`).
pub fn parse_amounts(s: &str) -> Result<Vec<Amount>> {
    let bad = |msg| list_err("--amounts list", s, msg);
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim) {
        let a = if let Some(n) = item.strip_suffix('s') {
            Amount::Samples(
                n.parse()
                    .map_err(|_| bad(format!("`{item}` is not a whole number of sample-steps")))?,
            )
        } else {
            let e: f64 =
                item.parse().map_err(|_| bad(format!("`{item}` is not a number of epochs")))?;
            if !e.is_finite() || e < 0.0 {
                return Err(bad(format!("`{item}`: epochs must be finite and >= 0")));
            }
            Amount::Epochs(e)
        };
        out.push(a);
    }
    Ok(out)
}

/// `--rates`: comma-separated fault rates in [0, 1], strictly ascending.
pub fn parse_rates(s: &str) -> Result<Vec<f64>> {
    let bad = |msg| list_err("--rates list", s, msg);
    let mut out: Vec<f64> = Vec::new();
    for item in s.split(',').map(str::trim) {
        let r: f64 = item.parse().map_err(|_| bad(format!("`{item}` is not a number")))?;
        if !(0.0..=1.0).contains(&r) {
            return Err(bad(format!("{r} is not a fault rate in [0, 1]")));
        }
        if out.last().is_some_and(|&p| p >= r) {
            return Err(bad("rates must be strictly ascending".into()));
        }
        out.push(r);
    }
    Ok(out)
}

/// `--shard i/n`: this run does the jobs whose number is `i` mod `n` (the
/// resilience map's chips here, the fleet's groups in [`crate::fleet`]).
pub use faultloop_device::shard::Shard;

/// Everything that determines a map: two shards merge only if theirs agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResilienceSpec {
    /// The checkpoint, as given.
    pub model: String,
    /// The device the chips run on (a fast twin, e.g. `model:16x16`).
    pub device: String,
    pub mitigation: Mitigation,
    /// Ascending.
    pub rates: Vec<f64>,
    /// Sample-steps, ascending, distinct.
    pub amounts: Vec<u64>,
    pub chips_per_rate: usize,
    /// The floor (0–1) and the percentile the least amounts use.
    pub accuracy: f64,
    pub percentile: f64,
    /// Sample-steps of one epoch.
    pub epoch_samples: u64,
    /// Seed of every chip's fault map and training order.
    pub seed: u64,
    /// Test images each chip is evaluated on (the first N).
    pub test_samples: usize,
    /// The retraining (batch, lr, compression, ...); epochs, marks, seed and
    /// the stop are set per job.
    pub retrain: RetrainConfig,
}

impl ResilienceSpec {
    pub fn jobs(&self) -> usize {
        self.rates.len() * self.chips_per_rate
    }

    /// Job number `j` as (rate index, chip).
    pub fn job(&self, j: usize) -> (usize, usize) {
        (j / self.chips_per_rate.max(1), j % self.chips_per_rate.max(1))
    }

    /// Whether two specs have the same jobs: all but the floor and the
    /// percentile, which only the least amounts read. A rerun with another
    /// floor reuses every job file.
    pub fn same_jobs(&self, o: &ResilienceSpec) -> bool {
        let strip =
            |s: &ResilienceSpec| ResilienceSpec { accuracy: 0.0, percentile: 0.0, ..s.clone() };
        strip(self) == strip(o)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.rates.is_empty() || self.amounts.is_empty() || self.chips_per_rate == 0 {
            return bad(
                "a resilience map needs rates, amounts and at least one chip per rate".into()
            );
        }
        if self.amounts.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!(
                "amounts {:?} (sample-steps) must be distinct and ascending",
                self.amounts
            ));
        }
        if !(0.0..=1.0).contains(&self.accuracy) {
            return bad(format!("--accuracy {} is not an accuracy in [0, 1]", self.accuracy));
        }
        if !(0.0..=100.0).contains(&self.percentile) {
            return bad(format!("--percentile {} is not in [0, 100]", self.percentile));
        }
        if self.epoch_samples == 0 {
            return bad("an epoch of 0 samples".into());
        }
        if self.retrain.mitigation == Mitigation::None {
            return bad("--mitigate none: nothing to retrain for; use fat, fap or auto".into());
        }
        Ok(())
    }
}

/// The seed of chip `chip` of rate `rate_index` (SplitMix64 of the three):
/// independent of the other rates and of how many chips there are.
pub fn chip_seed(seed: u64, rate_index: usize, chip: usize) -> u64 {
    let mut z = seed
        ^ (rate_index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (chip as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The device string's fast twin (`sim:RxC` → `model:RxC`).
pub fn twin_device(device: &str) -> Result<String> {
    let spec: faultloop_device::open::DeviceSpec =
        device.parse().map_err(|e| Error::Config(format!("--device {device}: {e}")))?;
    Ok(spec.fast_twin().to_string())
}

/// One chip's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub rate_index: usize,
    pub chip: usize,
    pub rate: f64,
    pub map_seed: u64,
    pub faulty_pes: usize,
    /// Test accuracy after each of the spec's amounts.
    pub accuracies: Vec<f64>,
    /// Wall seconds of the job (not part of the map).
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobFile {
    format: String,
    spec: ResilienceSpec,
    clean_accuracy: f64,
    job: JobResult,
}

/// What a sharded run writes (`-o` with `--shard`), and [`merge`] reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFile {
    pub format: String,
    pub spec: ResilienceSpec,
    pub shard: Shard,
    pub clean_accuracy: f64,
    pub jobs: Vec<JobResult>,
}

/// The data a run evaluates and trains on.
pub struct RunData<'a> {
    pub train: &'a Dataset,
    /// Already cut to `spec.test_samples`.
    pub test: &'a Dataset,
}

/// What [`run`] reports as it goes.
#[derive(Debug, Clone)]
pub enum JobEvent<'a> {
    /// `total` jobs in this shard, `done` of them already in the work directory.
    Start { total: usize, done: usize },
    /// A job finished (`skipped`: its file was already there).
    Job { result: &'a JobResult, skipped: bool },
    /// A retraining step of the current job.
    Step,
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub clean_accuracy: f64,
    /// This shard's jobs, in job order.
    pub jobs: Vec<JobResult>,
    /// Of them, how many were run now (the rest came from job files).
    pub ran: usize,
}

/// The job file of job `j` in `work`.
pub fn job_path(work: &Path, spec: &ResilienceSpec, j: usize) -> PathBuf {
    let (r, c) = spec.job(j);
    work.join(format!("job-r{r:03}-c{c:04}.json"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&text).map_err(|source| Error::Json { path: path.into(), source })
}

/// Write `text` to `path` atomically (its directory is made if missing):
/// [`faultloop_proto::atomic::write_atomic`], with the error naming the file.
pub fn write_atomic(path: &Path, text: &[u8]) -> Result<()> {
    faultloop_proto::atomic::write_atomic(path, text).map_err(|e| Error::io(path, e))
}

/// The accuracy of the checkpoint on a fault-free `spec.device`.
pub fn clean_accuracy(spec: &ResilienceSpec, test: &Dataset) -> Result<f64> {
    let (_vs, model, _) = checkpoint::load(Path::new(&spec.model))?;
    let mut exec = DeviceMatmul::open(&spec.device, None)?;
    exec.install_model(&model)?;
    eval::accuracy(&model, test, spec.retrain.eval_batch, &mut exec, |_| {})
}

/// Run the jobs of `shard` (all of them for `None`), writing each job's
/// file to `work` and skipping those already there.
pub fn run(
    spec: &ResilienceSpec,
    data: &RunData<'_>,
    shard: Option<Shard>,
    work: &Path,
    progress: &mut dyn FnMut(JobEvent),
) -> Result<RunOutcome> {
    spec.check()?;
    let per = spec.retrain.samples_per_epoch(data.train.len()) as u64;
    if per != spec.epoch_samples {
        return Err(Error::Config(format!(
            "an epoch of {} sample-steps in the spec, but the retraining draws {per} per epoch \
             from {} training examples",
            spec.epoch_samples,
            data.train.len()
        )));
    }
    std::fs::create_dir_all(work).map_err(|e| Error::io(work, e))?;
    let shard = shard.unwrap_or(Shard::ALL);
    let mine: Vec<usize> = (0..spec.jobs()).filter(|&j| shard.owns(j)).collect();
    let mut done: Vec<Option<(f64, JobResult)>> = Vec::with_capacity(mine.len());
    for &j in &mine {
        let path = job_path(work, spec, j);
        done.push(if path.is_file() {
            let f: JobFile = read_json(&path)?;
            if f.format != JOB_FORMAT || !f.spec.same_jobs(spec) {
                return Err(Error::Config(format!(
                    "{}: a job of another resilience run (different spec); remove the work \
                     directory {} or choose another output",
                    path.display(),
                    work.display()
                )));
            }
            Some((f.clean_accuracy, f.job))
        } else {
            None
        });
    }
    progress(JobEvent::Start { total: mine.len(), done: done.iter().flatten().count() });
    let mut clean = done.iter().flatten().map(|d| d.0).next();
    let mut jobs = Vec::with_capacity(mine.len());
    let mut ran = 0;
    for (&j, prior) in mine.iter().zip(done) {
        let clean_acc = match clean {
            Some(c) => c,
            None => *clean.insert(clean_accuracy(spec, data.test)?),
        };
        let result = match prior {
            Some((_, r)) => {
                progress(JobEvent::Job { result: &r, skipped: true });
                r
            }
            None => {
                let r = run_job(spec, data, j, progress)?;
                let file = JobFile {
                    format: JOB_FORMAT.into(),
                    spec: spec.clone(),
                    clean_accuracy: clean_acc,
                    job: r.clone(),
                };
                let path = job_path(work, spec, j);
                let text = serde_json::to_vec_pretty(&file)
                    .map_err(|source| Error::Json { path: path.clone(), source })?;
                write_atomic(&path, &text)?;
                ran += 1;
                progress(JobEvent::Job { result: &r, skipped: false });
                r
            }
        };
        jobs.push(result);
    }
    let clean_accuracy = match clean {
        Some(c) => c,
        None => clean_accuracy(spec, data.test)?,
    };
    Ok(RunOutcome { clean_accuracy, jobs, ran })
}

/// One chip: draw its map, retrain it up to the largest amount, and read
/// the accuracy at every amount.
pub fn run_job(
    spec: &ResilienceSpec,
    data: &RunData<'_>,
    j: usize,
    progress: &mut dyn FnMut(JobEvent),
) -> Result<JobResult> {
    let t0 = Instant::now();
    let (rate_index, chip) = spec.job(j);
    let rate = spec.rates[rate_index];
    let seed = chip_seed(spec.seed, rate_index, chip);
    // A fresh model and device per chip: a job's result never depends on
    // which jobs ran before it in this process.
    let (mut vs, model, _) = checkpoint::load(Path::new(&spec.model))?;
    let mut exec = DeviceMatmul::open(&spec.device, None)?;
    let (rows, cols) = (exec.info().rows, exec.info().cols);
    let map = FaultMap::random(rows, cols, rate, seed, &RandomOptions::default())?;
    exec.set_faults(Some(&map))?;
    let marks: Vec<u64> = spec.amounts.iter().copied().filter(|&a| a > 0).collect();
    let accuracies = match marks.last() {
        None => {
            exec.install_model(&model)?;
            let a = eval::accuracy(&model, data.test, spec.retrain.eval_batch, &mut exec, |_| {})?;
            vec![a; spec.amounts.len()]
        }
        Some(&last) => {
            let mut config = RetrainConfig {
                cosine: false,
                seed,
                checkpoint_every: 0,
                eval_marks: marks.clone(),
                ..spec.retrain.clone()
            };
            // Whole epochs to cover the last mark, stopped right after it.
            config.epochs = last.div_ceil(spec.epoch_samples).max(1) as usize;
            config.stop_after_steps = Some(config.steps_for_samples(data.train.len(), last));
            let run = RetrainRun {
                model: &model,
                vs: &mut vs,
                exec: &mut exec,
                train: data.train,
                test: data.test,
                config,
                checkpoint: None,
                resume: false,
            };
            let r = retrain::retrain(run, &mut |p| {
                if matches!(p, retrain::Progress::Step { .. }) {
                    progress(JobEvent::Step)
                }
            })?;
            if r.marks.len() != marks.len() {
                return Err(Error::Config(format!(
                    "chip {chip} at rate {rate}: retraining reached {} of the amounts {marks:?}",
                    r.marks.len()
                )));
            }
            let mut it = r.marks.iter();
            spec.amounts
                .iter()
                .map(|&a| {
                    if a == 0 {
                        r.accuracy_before
                    } else {
                        it.next().expect("counted").test_accuracy
                    }
                })
                .collect()
        }
    };
    Ok(JobResult {
        rate_index,
        chip,
        rate,
        map_seed: seed,
        faulty_pes: map.faulty_pes(),
        accuracies,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The map of a complete set of jobs (every job once, any order).
pub fn assemble(
    spec: &ResilienceSpec,
    clean_accuracy: f64,
    jobs: &[JobResult],
) -> Result<ResilienceMap> {
    let mut slot: Vec<Option<&JobResult>> = vec![None; spec.jobs()];
    for r in jobs {
        let j = r.rate_index * spec.chips_per_rate + r.chip;
        if r.rate_index >= spec.rates.len() || r.chip >= spec.chips_per_rate {
            return Err(Error::Merge(format!(
                "job (rate {}, chip {}) is outside the spec",
                r.rate_index, r.chip
            )));
        }
        if r.accuracies.len() != spec.amounts.len() {
            return Err(Error::Merge(format!(
                "job (rate {}, chip {}) has {} accuracies for {} amounts",
                r.rate_index,
                r.chip,
                r.accuracies.len(),
                spec.amounts.len()
            )));
        }
        match slot[j] {
            Some(prev) if prev.accuracies != r.accuracies => {
                return Err(Error::Merge(format!(
                    "job (rate {}, chip {}) appears twice with different results",
                    r.rate_index, r.chip
                )))
            }
            _ => slot[j] = Some(r),
        }
    }
    let missing: Vec<String> = slot
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(j, _)| format!("{:?}", spec.job(j)))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Merge(format!(
            "{} of {} jobs missing, (rate index, chip): {}",
            missing.len(),
            spec.jobs(),
            missing.iter().take(8).cloned().collect::<Vec<_>>().join(" ")
        )));
    }
    let mut cells = Vec::new();
    for (i, &rate) in spec.rates.iter().enumerate() {
        for (a, &amount) in spec.amounts.iter().enumerate() {
            let samples = (0..spec.chips_per_rate)
                .map(|c| slot[i * spec.chips_per_rate + c].expect("checked").accuracies[a])
                .collect();
            cells.push(Cell { rate, amount, samples });
        }
    }
    let mut map = ResilienceMap {
        model: spec.model.clone(),
        device: spec.device.clone(),
        mitigation: spec.mitigation.to_string(),
        clean_accuracy,
        accuracy: spec.accuracy,
        percentile: spec.percentile,
        epoch_samples: spec.epoch_samples,
        rates: spec.rates.clone(),
        amounts: spec.amounts.clone(),
        cells,
        least: Vec::new(),
    };
    map.update_least();
    Ok(map)
}

/// A shard file for `outcome`.
pub fn shard_file(spec: &ResilienceSpec, shard: Shard, outcome: &RunOutcome) -> ShardFile {
    ShardFile {
        format: SHARD_FORMAT.into(),
        spec: spec.clone(),
        shard,
        clean_accuracy: outcome.clean_accuracy,
        jobs: outcome.jobs.clone(),
    }
}

/// A floor and percentile for [`merge`] to use instead of the files'.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FloorOverride {
    pub accuracy: Option<f64>,
    pub percentile: Option<f64>,
}

/// Merge shard files, job files, or directories of them (every `*.json`
/// inside) into the map. The files must have the same jobs
/// ([`ResilienceSpec::same_jobs`]); the floor and percentile are theirs
/// (they must agree) unless `floor` overrides them.
pub fn merge(inputs: &[PathBuf], floor: FloorOverride) -> Result<ResilienceMap> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json") && f.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err(Error::Merge(format!("no shard or job files in {inputs:?}")));
    }
    let mut spec: Option<(ResilienceSpec, f64, PathBuf)> = None;
    let mut jobs = Vec::new();
    for f in &files {
        let v: serde_json::Value = read_json(f)?;
        let json = |source| Error::Json { path: f.clone(), source };
        let (s, clean, mut js) = match v.get("format").and_then(|x| x.as_str()) {
            Some(SHARD_FORMAT) => {
                let s: ShardFile = serde_json::from_value(v).map_err(json)?;
                (s.spec, s.clean_accuracy, s.jobs)
            }
            Some(JOB_FORMAT) => {
                let s: JobFile = serde_json::from_value(v).map_err(json)?;
                (s.spec, s.clean_accuracy, vec![s.job])
            }
            _ => {
                return Err(Error::Merge(format!(
                    "{}: neither a resilience shard nor a job file",
                    f.display()
                )))
            }
        };
        match &spec {
            None => spec = Some((s, clean, f.clone())),
            Some((s0, c0, f0)) => {
                if !s0.same_jobs(&s) || *c0 != clean {
                    return Err(Error::Merge(format!(
                        "{} and {} belong to different resilience runs",
                        f0.display(),
                        f.display()
                    )));
                }
                let differ = |a: f64, b: f64, o: Option<f64>| a != b && o.is_none();
                if differ(s0.accuracy, s.accuracy, floor.accuracy)
                    || differ(s0.percentile, s.percentile, floor.percentile)
                {
                    return Err(Error::Merge(format!(
                        "{} and {} have different floors or percentiles; give --accuracy and \
                         --percentile to merge them under one",
                        f0.display(),
                        f.display()
                    )));
                }
            }
        }
        jobs.append(&mut js);
    }
    let (mut spec, clean, _) = spec.expect("at least one file");
    spec.accuracy = floor.accuracy.unwrap_or(spec.accuracy);
    spec.percentile = floor.percentile.unwrap_or(spec.percentile);
    spec.check()?;
    assemble(&spec, clean, &jobs)
}

/// Write `map` to `path` (pretty JSON, atomically): the same map gives the
/// same bytes, sharded or not.
pub fn write_map(path: &Path, map: &ResilienceMap) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(map)
        .map_err(|source| Error::Json { path: path.into(), source })?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// Write a shard file to `path` (atomically).
pub fn write_shard(path: &Path, shard: &ShardFile) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(shard)
        .map_err(|source| Error::Json { path: path.into(), source })?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// The default work directory of output `out`: `resilience.json` →
/// `resilience.work` beside it.
pub fn work_dir_for(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!("{stem}.work"))
}
