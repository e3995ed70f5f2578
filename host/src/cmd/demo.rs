//! `faultloop demo`: the main job, two scenarios on the default device
//! (docs/training.md, "The demo's two scenarios"):
//!
//! 1. **Permanent faults.** A chip with hidden stuck-at defects (a random
//!    map at the first scanned rate that costs `--min-loss` points) is
//!    characterised over the wire; on the map found, none, bypass, partial
//!    TMR, fap, fat and auto are measured at equal retraining, and the
//!    cheapest that reaches the floor is chosen and deployed.
//! 2. **Soft errors.** A chip with SEU at a rate that costs `--min-loss`
//!    points: unprotected, partial TMR per budget, hardware-in-the-loop
//!    retraining, retraining plus TMR, over SEU seeds neither the retraining
//!    nor the TMR choice saw.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use faultloop_characterize::{characterize, Options};
use faultloop_device::client::Device;
use faultloop_device::open::{DeviceSpec, OpenOptions};
use serde::Serialize;
use trainer::data::Dataset;
use trainer::device::{Compress, UpdateBudget};
use trainer::experiment::{self, RateScan, ScanPoint, DEFAULT_SCAN_RATES};
use trainer::mitigate;
use trainer::plot::{self, Series};
use trainer::retrain::RetrainConfig;
use trainer::scenario::{self, Event, PermanentReport, SoftReport, Stat, TmrPoint};
use trainer::train::TrainConfig;
use trainer::{checkpoint, ModelSpec};

use super::pretrain::pretrain_with_bar;
use super::{loading, open_exec, DataArg, DeviceArg};
use crate::output::{json_sorted, note, print_json_sorted};
use crate::progress::Bar;

/// The model the demo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DemoModel {
    /// The int8 MLP 784-256-128-10.
    Mlp,
    /// The int8 CNN (conv 1→8, 8→16, fc 784→10).
    Cnn,
}

/// Which scenarios to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenarios {
    Both,
    Permanent,
    Soft,
}

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub data: DataArg,
    #[command(flatten)]
    pub dev: DeviceArg,
    /// The model: pretrained on the host (or reused from `OUT_DIR/<model>.ckpt`).
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: DemoModel,
    /// The scenarios to run.
    #[arg(long, value_enum, default_value = "both")]
    pub scenario: Scenarios,
    /// Where the cached model, maps, checkpoints, plots and report go.
    #[arg(long, default_value = "out/demo")]
    pub out_dir: PathBuf,
    /// Retraining epochs (every retrained mitigation gets the same).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Training examples per retraining epoch.
    #[arg(long, default_value_t = 4000)]
    pub train_samples: usize,
    /// Fixed test subset (the first N test images).
    #[arg(long, default_value_t = 2000)]
    pub test_samples: usize,
    /// Soft errors: test images of every per-seed evaluation (the first N of
    /// the test subset; seeds x budgets x 2 evaluations add up).
    #[arg(long, default_value_t = 1000)]
    pub seu_test_samples: usize,
    /// Training images (a seeded draw) the TMR layer choice and the auto
    /// triage measure on.
    #[arg(long, default_value_t = 1000)]
    pub calib_samples: usize,
    /// Stuck-at fault rate of the permanent-fault chip; found by a scan when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// SEU rate per MAC of the soft-error chip; found by a scan when absent.
    #[arg(long)]
    pub seu_rate: Option<f64>,
    /// Seed of the hidden defect map, the retraining data order and the
    /// characterisation's check.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Minimum accuracy loss (points) the scans look for.
    #[arg(long, default_value_t = 10.0)]
    pub min_loss: f64,
    /// Accuracy floor: at most this many points below fault-free.
    #[arg(long, default_value_t = 1.0)]
    pub floor_points: f64,
    /// Permanent faults: partial-TMR budgets tried (% extra MACs).
    #[arg(long, value_delimiter = ',', default_value = "50,200")]
    pub tmr_budgets: Vec<f64>,
    /// Soft errors: partial-TMR budgets (% extra MACs).
    #[arg(long, value_delimiter = ',', default_value = "0,50,100,200")]
    pub seu_budgets: Vec<f64>,
    /// Soft errors: evaluation SEU seeds (101, 102, ...; the retraining uses
    /// seed 1 and the TMR choice seed 2).
    #[arg(long, default_value_t = 5)]
    pub seu_seeds: u32,
    /// Learning rate (Adam; cosine schedule per epoch when retraining).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Weight-update bytes per retraining step at most: bytes (4096), or a
    /// share of a dense rewrite (10% or 0.1).
    #[arg(long, value_name = "B")]
    pub update_budget: Option<UpdateBudget>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Batch size of the demo's evaluations.
const EVAL_BATCH: usize = 500;
/// SEU seeds of the soft-error retraining and TMR analysis; evaluation
/// seeds start at `EVAL_SEED0`.
const SEU_TRAIN_SEED: u32 = 1;
const SEU_CALIB_SEED: u32 = 2;
const EVAL_SEED0: u32 = 101;

/// An accuracy over seeds: mean, with the minimum beside it.
#[derive(Serialize)]
struct MeanMin {
    mean: f64,
    min: f64,
    max: f64,
    values: Vec<f64>,
}

impl From<&Stat> for MeanMin {
    fn from(s: &Stat) -> Self {
        MeanMin { mean: s.mean, min: s.min, max: s.max, values: s.values.clone() }
    }
}

#[derive(Serialize)]
struct TmrOut {
    accuracy: MeanMin,
    extra_macs_pct: f64,
    protected: Vec<String>,
}

fn tmr_map(points: &[TmrPoint]) -> BTreeMap<String, TmrOut> {
    points
        .iter()
        .map(|p| {
            (
                format!("{}", p.budget_pct),
                TmrOut {
                    accuracy: (&p.accuracy).into(),
                    extra_macs_pct: p.extra_macs_pct,
                    protected: p.protected.clone(),
                },
            )
        })
        .collect()
}

/// `permanent` in `--json`.
#[derive(Serialize)]
struct PermanentOut {
    array: String,
    hidden_defects: String,
    characterized_map: String,
    characterize_seconds: f64,
    characterize_patterns: u64,
    fault_rate: f64,
    faulty_pes: usize,
    scan: Vec<ScanPoint>,
    clean_accuracy: f64,
    faulty_accuracy: f64,
    floor: f64,
    /// name → accuracy.
    mitigations: BTreeMap<String, f64>,
    chosen: String,
    chosen_accuracy: f64,
    chosen_reaches_floor: bool,
    deployed_checkpoint: String,
    report: PermanentReport,
    plot: String,
    seconds: f64,
}

/// `soft_errors` in `--json`.
#[derive(Serialize)]
struct SoftOut {
    seu_rate: f64,
    seu_scan: Vec<(f64, f64)>,
    test_samples: usize,
    clean_accuracy: f64,
    unprotected: MeanMin,
    tmr: BTreeMap<String, TmrOut>,
    retrained: MeanMin,
    retrained_tmr: BTreeMap<String, TmrOut>,
    eval_seeds: Vec<u32>,
    report: SoftReport,
    plot: String,
    seconds: f64,
}

#[derive(Serialize)]
struct DemoOut {
    device: String,
    model: String,
    pretrained_now: bool,
    test_samples: usize,
    epochs: usize,
    train_samples_per_epoch: usize,
    seed: u64,
    permanent: Option<PermanentOut>,
    soft_errors: Option<SoftOut>,
    report: String,
    seconds: f64,
}

/// Phase-by-phase progress: one line per phase, a bar while it runs.
struct Phases {
    bar: Option<Bar>,
}

impl Phases {
    fn event(&mut self, e: Event) {
        match e {
            Event::Phase(name) => {
                if let Some(b) = self.bar.as_mut() {
                    b.finish();
                }
                note(format!("  {name}"));
                self.bar = Some(Bar::new(name, 1));
            }
            Event::Eval(p) => {
                if let Some(b) = self.bar.as_mut() {
                    b.eval(p)
                }
            }
            Event::Retrain(p) => {
                if let Some(b) = self.bar.as_mut() {
                    b.retrain(p)
                }
            }
        }
    }

    fn done(&mut self) {
        if let Some(mut b) = self.bar.take() {
            b.finish();
        }
    }
}

pub fn run(a: DemoArgs, open: &OpenOptions) -> Result<()> {
    trainer::init_threads();
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let (spec, name) = match a.model {
        DemoModel::Mlp => (ModelSpec::mlp_default(), "mlp"),
        DemoModel::Cnn => (ModelSpec::cnn_default(), "cnn"),
    };
    let cache = a.out_dir.join(format!("{name}.ckpt"));
    let pretrained_now = if checkpoint::read_meta(&cache).is_ok() {
        note(format!("model: reusing {}", cache.display()));
        false
    } else {
        note(format!("model: pretraining the int8 {name} on the host -> {}", cache.display()));
        let cfg = match a.model {
            DemoModel::Mlp => TrainConfig { epochs: 8, seed: 1, ..Default::default() },
            DemoModel::Cnn => TrainConfig { epochs: 6, lr: 3e-3, seed: 1, ..Default::default() },
        };
        pretrain_with_bar(&a.data, &spec, &cfg, None, &cache)?;
        true
    };
    let test = a.data.test(Some(a.test_samples))?;
    let train = a.data.train()?;
    let calib = mitigate::calibration_subset(&train, &[], a.calib_samples, a.seed);
    let config = RetrainConfig {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        train_samples: a.train_samples,
        seed: a.seed,
        compress: Compress::Sparse,
        threshold: 1,
        update_budget: a.update_budget,
        checkpoint_every: 0,
        eval_batch: EVAL_BATCH,
        ..Default::default()
    };
    let device = a.dev.spec()?;
    note(format!(
        "device: {device}; test subset: first {} images; retraining: {} epochs x {} images \
         (seed {})",
        test.len(),
        a.epochs,
        a.train_samples,
        a.seed
    ));
    let ctx = Ctx { a: &a, open, cache: &cache, test: &test, train: &train, calib: &calib, config };
    let permanent = match a.scenario {
        Scenarios::Both | Scenarios::Permanent => Some(ctx.permanent(&device)?),
        Scenarios::Soft => None,
    };
    let soft_errors = match a.scenario {
        Scenarios::Both | Scenarios::Soft => Some(ctx.soft(&device)?),
        Scenarios::Permanent => None,
    };
    let report = a.out_dir.join("demo.json");
    let out = DemoOut {
        device: device.to_string(),
        model: name.to_string(),
        pretrained_now,
        test_samples: test.len(),
        epochs: a.epochs,
        train_samples_per_epoch: a.train_samples,
        seed: a.seed,
        permanent,
        soft_errors,
        report: report.display().to_string(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    let text = json_sorted(&out);
    trainer::fleetjob::write_atomic(&report, text.as_bytes())
        .with_context(|| format!("writing {}", report.display()))?;
    if a.json {
        print_json_sorted(&out);
    } else {
        print_table(&out, &a);
    }
    Ok(())
}

struct Ctx<'a> {
    a: &'a DemoArgs,
    open: &'a OpenOptions,
    cache: &'a Path,
    test: &'a Dataset,
    train: &'a Dataset,
    calib: &'a Dataset,
    config: RetrainConfig,
}

impl Ctx<'_> {
    /// Scenario 1: fabricate a chip with hidden defects (sim/model devices;
    /// any other device is taken as the chip itself), characterise it,
    /// measure every mitigation, deploy the cheapest that reaches the floor.
    fn permanent(&self, device: &DeviceSpec) -> Result<PermanentOut> {
        let a = self.a;
        let t0 = Instant::now();
        note("scenario 1: a chip with permanent faults");
        let (_vs, model, _) = checkpoint::load(self.cache).with_context(|| loading(self.cache))?;
        let twin_spec = match device {
            DeviceSpec::Chip { base, .. } => base.fast_twin(),
            d => d.fast_twin(),
        };
        let mut twin = open_exec(&twin_spec.to_string(), self.open, None)?;
        let (rows, cols) = (twin.info().rows, twin.info().cols);
        twin.install_model(&model)?;
        let hidden = a.out_dir.join("hidden-defects.json");
        let mut scan = Vec::new();
        let (chip, hidden_name) = match device {
            DeviceSpec::Sim { .. } | DeviceSpec::Model { .. } | DeviceSpec::Board { .. } => {
                let rate = match a.rate {
                    Some(r) => r,
                    None => {
                        note(format!(
                            "  fabricating: scanning stuck-at rates on {twin_spec} for a loss >= \
                             {} points",
                            a.min_loss
                        ));
                        let clean = scenario::reference_accuracy(
                            &model,
                            self.test,
                            EVAL_BATCH,
                            &mut twin,
                            |_| {},
                        )?;
                        let plan = RateScan {
                            rates: DEFAULT_SCAN_RATES,
                            seed: a.seed,
                            clean_accuracy: clean,
                            min_loss_points: a.min_loss,
                            batch: EVAL_BATCH,
                        };
                        let found = experiment::find_harmful_rate(
                            &model,
                            self.test,
                            &mut twin,
                            &plan,
                            |p| {
                                note(format!(
                                    "    rate {:.3}: {:>3} faulty PEs, accuracy {:.2} %",
                                    p.rate,
                                    p.faulty_pes,
                                    100.0 * p.accuracy
                                ))
                            },
                        )?;
                        scan = found.points;
                        found.rate.with_context(|| {
                            format!("no scanned stuck-at rate costs {} points", a.min_loss)
                        })?
                    }
                };
                let map = experiment::random_fault_map(rows, cols, rate, a.seed)?;
                map.save(&hidden)?;
                let chip = DeviceSpec::Chip {
                    base: Box::new(device.clone()),
                    defects: Some(hidden.clone()),
                    seu: None,
                };
                (chip, hidden.display().to_string())
            }
            other => (other.clone(), "(the device's own)".to_string()),
        };
        twin.set_faults(None)?;

        // Characterise over the wire: only the protocol reaches the chip.
        note(format!("  characterising {chip}"));
        let mut dev = Device::open_with(&chip, self.open)
            .with_context(|| format!("opening device {chip}"))?;
        let opts = Options { seed: a.seed, ..Options::default() };
        let mut bar = Bar::new("characterize", 1);
        let found = characterize(&mut dev, &opts, &mut |p| {
            bar.total = p.total;
            bar.set(p.done, p.phase.to_string());
        })
        .with_context(|| format!("characterising {chip}"))?;
        bar.finish();
        drop(dev);
        if !found.verification.ok {
            bail!(
                "{chip}: the characterised map does not reproduce the chip ({} of {} workloads)",
                found.verification.agreed,
                found.verification.workloads
            );
        }
        let map_path = a.out_dir.join("chip.json");
        found.map.save(&map_path)?;
        note(format!(
            "  found {} faulty PEs ({} fault entries) in {:.1} s, {} patterns; the map \
             reproduces the chip on {} random workloads -> {}",
            found.faulty_pes,
            found.faults_found,
            found.seconds,
            found.patterns,
            found.verification.workloads,
            map_path.display()
        ));

        let mut exec = open_exec(&chip.to_string(), self.open, None)?;
        let plan = scenario::PermanentPlan {
            checkpoint: self.cache,
            map: &found.map,
            train: self.train,
            test: self.test,
            calib: self.calib,
            config: self.config.clone(),
            tmr_budgets: &a.tmr_budgets,
            floor_points: a.floor_points,
            out_dir: &a.out_dir,
        };
        let mut ph = Phases { bar: None };
        let r = scenario::permanent(&plan, &mut exec, Some(&mut twin), &mut |e| ph.event(e))?;
        ph.done();
        let plot_path = a.out_dir.join("permanent.svg");
        write_plot(&plot_path, &permanent_chart(&r, exec.device_name()))?;
        Ok(PermanentOut {
            array: format!("{rows}x{cols}"),
            hidden_defects: hidden_name,
            characterized_map: map_path.display().to_string(),
            characterize_seconds: found.seconds,
            characterize_patterns: found.patterns,
            fault_rate: found.map.fault_rate(),
            faulty_pes: found.faulty_pes,
            scan,
            clean_accuracy: r.clean_accuracy,
            faulty_accuracy: r.faulty_accuracy,
            floor: r.floor,
            mitigations: r.mitigations.iter().map(|m| (m.name.clone(), m.accuracy)).collect(),
            chosen: r.chosen.clone(),
            chosen_accuracy: r.deployed.accuracy,
            chosen_reaches_floor: r.chosen_reaches_floor,
            deployed_checkpoint: r.deployed.checkpoint.display().to_string(),
            report: r,
            plot: plot_path.display().to_string(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Scenario 2: soft errors on the device itself (SEU set by the host).
    fn soft(&self, device: &DeviceSpec) -> Result<SoftOut> {
        let a = self.a;
        let t0 = Instant::now();
        note("scenario 2: a chip with soft errors");
        let base = match device {
            DeviceSpec::Chip { base, .. } => (**base).clone(),
            d => d.clone(),
        };
        let (_vs, model, _) = checkpoint::load(self.cache).with_context(|| loading(self.cache))?;
        let mut seu_scan = Vec::new();
        let rate = match a.seu_rate {
            Some(r) => r,
            None => {
                let twin = base.fast_twin().to_string();
                note(format!(
                    "  scanning SEU rates on {twin} (seed {SEU_CALIB_SEED}) for a loss >= {} points",
                    a.min_loss
                ));
                let mut tx = open_exec(&twin, self.open, None)?;
                tx.install_model(&model)?;
                let clean =
                    scenario::reference_accuracy(&model, self.test, EVAL_BATCH, &mut tx, |_| {})?;
                let r = scenario::find_seu_rate(
                    &model,
                    self.test,
                    EVAL_BATCH,
                    &mut tx,
                    clean,
                    a.min_loss,
                    SEU_CALIB_SEED,
                    |rate, acc| {
                        note(format!("    SEU {rate:.0e} per MAC: accuracy {:.2} %", 100.0 * acc));
                        seu_scan.push((rate, acc));
                    },
                )?;
                r.with_context(|| {
                    format!(
                        "no scanned SEU rate up to {:e} costs {} points",
                        scenario::SEU_SCAN_RATES.last().expect("rates"),
                        a.min_loss
                    )
                })?
            }
        };
        let eval_seeds: Vec<u32> = (0..a.seu_seeds).map(|i| EVAL_SEED0 + i).collect();
        let mut exec = open_exec(&base.to_string(), self.open, None)?;
        let test = self.test.take(a.seu_test_samples.min(self.test.len()));
        let plan = scenario::SoftPlan {
            checkpoint: self.cache,
            train: self.train,
            test: &test,
            calib: self.calib,
            seu_rate: rate,
            train_seed: SEU_TRAIN_SEED,
            calib_seed: SEU_CALIB_SEED,
            eval_seeds: &eval_seeds,
            budgets: &a.seu_budgets,
            config: self.config.clone(),
            out_dir: &a.out_dir,
        };
        let mut ph = Phases { bar: None };
        let r = scenario::soft_errors(&plan, &mut exec, &mut |e| ph.event(e))?;
        ph.done();
        let plot_path = a.out_dir.join("soft-errors.svg");
        write_plot(&plot_path, &soft_chart(&r, exec.device_name()))?;
        Ok(SoftOut {
            seu_rate: r.seu_rate,
            seu_scan,
            test_samples: test.len(),
            clean_accuracy: r.clean_accuracy,
            unprotected: (&r.unprotected).into(),
            tmr: tmr_map(&r.tmr),
            retrained: (&r.retrained).into(),
            retrained_tmr: tmr_map(&r.retrained_tmr),
            eval_seeds,
            report: r,
            plot: plot_path.display().to_string(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

fn write_plot(path: &Path, svg: &str) -> Result<()> {
    trainer::fleetjob::write_atomic(path, svg.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Accuracy per retraining epoch of fap, fat and auto, with the other
/// mitigations as levels.
fn permanent_chart(r: &PermanentReport, device: &str) -> String {
    let epochs = r.mitigations.iter().map(|m| m.history.len()).max().unwrap_or(1).max(1) as f64;
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
    let mut series = vec![Series::level("fault-free", "#000000", r.clean_accuracy, 0.0, epochs)];
    for (i, m) in r.mitigations.iter().enumerate() {
        let c = colors[i % colors.len()];
        if m.history.is_empty() {
            series.push(Series::level(&m.name, c, m.accuracy, 0.0, epochs));
        } else {
            let mut pts = vec![(0.0, r.faulty_accuracy)];
            pts.extend(m.history.iter().map(|h| (h.epoch as f64, h.test_accuracy)));
            series.push(Series::new(&m.name, c, pts));
        }
    }
    plot::line_chart(
        &format!("Permanent faults on {device}: {} faulty PEs; chose {}", r.faulty_pes, r.chosen),
        "retraining epoch",
        "test accuracy (%)",
        &series,
        true,
    )
}

/// R2F's trade-off: accuracy against the performance penalty (extra MACs),
/// unprotected and retrained, mean and minimum over the evaluation seeds.
fn soft_chart(r: &SoftReport, device: &str) -> String {
    let pts = |ps: &[TmrPoint], f: fn(&Stat) -> f64| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> =
            ps.iter().map(|p| (p.extra_macs_pct, f(&p.accuracy))).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    };
    let x1 = r.tmr.iter().map(|p| p.extra_macs_pct).fold(1.0, f64::max);
    let series = vec![
        Series::level("fault-free", "#000000", r.clean_accuracy, 0.0, x1),
        Series::new("TMR, pretrained (mean)", "#1f77b4", pts(&r.tmr, |s| s.mean)),
        Series::new("TMR, pretrained (min)", "#aec7e8", pts(&r.tmr, |s| s.min)),
        Series::new("TMR, retrained (mean)", "#d62728", pts(&r.retrained_tmr, |s| s.mean)),
        Series::new("TMR, retrained (min)", "#ff9896", pts(&r.retrained_tmr, |s| s.min)),
    ];
    plot::line_chart(
        &format!(
            "Soft errors on {device}: SEU {:e} per MAC, {} seeds",
            r.seu_rate,
            r.eval_seeds.len()
        ),
        "performance penalty: extra MACs per inference (%)",
        "test accuracy (%)",
        &series,
        true,
    )
}

fn pct(x: f64) -> String {
    format!("{:>6.2} %", 100.0 * x)
}

fn print_table(out: &DemoOut, a: &DemoArgs) {
    println!();
    println!(
        "faultloop demo: int8 {} on {}; first {} test images; retraining {} epochs x {} images, \
         batch {}, Adam lr {}",
        out.model,
        out.device,
        out.test_samples,
        out.epochs,
        out.train_samples_per_epoch,
        a.batch,
        a.lr
    );
    if let Some(p) = &out.permanent {
        let r = &p.report;
        println!();
        println!(
            "1. Permanent faults: chip {} with {} faulty PEs ({:.2} %), characterised over the \
             wire in {:.1} s ({} patterns)",
            p.array,
            p.faulty_pes,
            100.0 * p.fault_rate,
            p.characterize_seconds,
            p.characterize_patterns
        );
        println!(
            "   fault-free {}   floor {} (-{} points)",
            pct(p.clean_accuracy),
            pct(p.floor),
            a.floor_points
        );
        println!(
            "   {:<8} {:>9} {:>9} {:>12} {:>10} {:>8}",
            "", "accuracy", "vs clean", "extra MACs", "retrained", "bypassed"
        );
        for m in &r.mitigations {
            let mark = if m.name == p.chosen { "  <- chosen" } else { "" };
            println!(
                "   {:<8} {} {:>+9.2} {:>11.1}% {:>10} {:>8}{mark}",
                m.name,
                pct(m.accuracy),
                100.0 * (m.accuracy - p.clean_accuracy),
                m.extra_macs_pct + 0.0,
                m.retrain_samples,
                m.bypassed.len()
            );
        }
        println!(
            "   deployed {} -> {} ({}; re-measured from the checkpoint){}",
            p.chosen,
            p.deployed_checkpoint,
            pct(p.chosen_accuracy),
            if p.chosen_reaches_floor { "" } else { "; nothing reaches the floor" }
        );
        println!("   plot {}", p.plot);
    }
    if let Some(s) = &out.soft_errors {
        println!();
        println!(
            "2. Soft errors: SEU {:e} per MAC, no permanent fault; first {} test images; \
             accuracy over {} SEU seeds ({}..) that neither the retraining (seed \
             {SEU_TRAIN_SEED}) nor the TMR choice (seed {SEU_CALIB_SEED}) saw: mean [min]",
            s.seu_rate,
            s.test_samples,
            s.eval_seeds.len(),
            s.eval_seeds.first().copied().unwrap_or(0)
        );
        println!("   fault-free {}", pct(s.clean_accuracy));
        println!(
            "   {:<12} {:>10} {:>20} {:>20}",
            "TMR budget", "extra MACs", "pretrained", "retrained"
        );
        let r = &s.report;
        for (p, q) in r.tmr.iter().zip(&r.retrained_tmr) {
            println!(
                "   {:<12} {:>9.1}% {} [{}] {} [{}]   ({} | {})",
                format!("{} %", p.budget_pct),
                p.extra_macs_pct + 0.0, // no "-0.0"
                pct(p.accuracy.mean),
                pct(p.accuracy.min),
                pct(q.accuracy.mean),
                pct(q.accuracy.min),
                names_or_none(&p.protected),
                names_or_none(&q.protected)
            );
        }
        println!(
            "   unprotected {} [{}]; retrained {} [{}] ({:.1} s of retraining)",
            pct(s.unprotected.mean),
            pct(s.unprotected.min),
            pct(s.retrained.mean),
            pct(s.retrained.min),
            r.retrain_seconds
        );
        println!("   plot {}", s.plot);
    }
    println!();
    println!("time {:.1} s; report {}", out.seconds, out.report);
}

fn names_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}
