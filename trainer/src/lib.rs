//! trainer: libtorch training on the DLA, and the training jobs the
//! `faultloop` CLI runs.
//!
//! The main types: [`Model`] (built from a [`ModelSpec`]) whose every layer
//! is an int8 matmul run by an [`Int8Matmul`] executor: [`HostMatmul`] and
//! [`TorchMatmul`] on the host, [`DeviceMatmul`] on a DLA. Training is
//! [`train::pretrain`] (host, quantization-aware) and [`retrain::retrain`]
//! (hardware in the loop, from a [`retrain::RetrainRun`] to a
//! [`retrain::RetrainReport`]); protection is [`tmr::protect`] (a
//! [`tmr::Protection`]).
//!
//! * [`data`]: idx (MNIST-format) reader and datasets.
//! * [`quant`]: int8 symmetric per-tensor quantization, fake-quant (STE).
//! * [`exec`]: the [`Int8Matmul`] executor trait, host implementations and
//!   the shape checks every executor shares.
//! * [`model`]: MLP and im2col CNN whose every layer is an int8 matmul.
//! * [`mod@reference`]: the same int8 inference in plain Rust, from an export.
//! * [`eval`]: accuracy on any executor, with a per-batch callback.
//! * [`train`]: quantization-aware pretraining, prediction, and the whole
//!   pretraining job ([`train::pretrain_to_checkpoint`]).
//! * [`checkpoint`]: float master weights + scales + layer map on disk.
//! * [`vote`]: the TMR mechanism (tile rotations, bitwise majority).
//! * [`device`]: [`DeviceMatmul`], the executor whose matmuls run on a DLA
//!   (`faultloop_device::client::Device`), with sparse weight increments,
//!   per-layer TMR/host modes and its counters ([`device::DeviceUsage`]).
//! * [`tmr`]: partial TMR policy — calibrated rotations, per-layer
//!   vulnerability analysis, layer selection under a MAC budget.
//! * [`retrain`]: hardware-in-the-loop retraining (forward on the device,
//!   straight-through backward on the host) with checkpoint/resume.
//! * [`mitigate`]: `--mitigate none|fap|fat|auto` — bypass lists, pruning
//!   and freezing the weights on bypassed PEs, the per-PE triage.
//! * [`resilience`]: the eFAT resilience map (rate × retraining amount →
//!   accuracy) and the least amount per rate under an accuracy floor.
//! * [`fleet`]: fleet planning — fused maps, resilience-driven grouping,
//!   one retraining per group, sharded jobs and their merge.
//! * [`fleetjob`]: the per-chip jobs that fill a resilience map, their
//!   shards, job files and merge.
//! * [`interop`]: PyTorch in and out — export to and import from
//!   safetensors (docs/pytorch.md).
//! * [`link_model`]: the link-time (bandwidth) model of every report.
//! * [`experiment`]: the jobs of `faultloop eval`, `retrain` and `demo` (device
//!   evaluation with optional TMR, the fault-rate scan, the demo's chart).
//! * [`scenario`]: the demo's two scenarios — a chip with permanent faults
//!   (every mitigation measured, the cheapest that reaches the floor
//!   deployed) and a chip with soft errors (TMR and retraining over SEU
//!   seeds).
//! * [`plot`]: charts (plotters, SVG or PNG): line charts, the resilience
//!   heatmap, the fault-map heatmap of an array.
//! * [`error`]: [`Error`], the executor's [`ExecutorError`] and [`ShapeError`].
//!
//! Modules depend on each other as a DAG: `device → vote, exec, model`;
//! `eval → model, exec`; `tmr → device, eval`; `mitigate → device, model`;
//! `checkpoint → mitigate`; `retrain → device, eval, mitigate`;
//! `experiment → tmr, retrain, eval, plot`; `scenario → tmr, retrain,
//! mitigate, checkpoint, eval`; `fleet → retrain, checkpoint,
//! eval, resilience, plot, fleetjob`; `fleetjob → retrain, eval, resilience,
//! checkpoint`; `interop → checkpoint, mitigate, model`.
//!
//! A layer's int8 matmul on the golden-model DLA equals the host reference
//! when the device is fault-free (`no_run`: doctest binaries are linked in a
//! temporary directory where the `$ORIGIN` rpath to libtorch does not reach;
//! tests/device_retrain.rs runs the same check):
//!
//! ```no_run
//! use trainer::{exec::matmul_i8_ref, DeviceMatmul, Int8Matmul};
//!
//! let (m, k, n) = (3, 20, 7);
//! let a: Vec<i8> = (0..m * k).map(|i| (i % 13) as i8 - 6).collect();
//! let w: Vec<i8> = (0..k * n).map(|i| (i % 11) as i8 - 5).collect();
//! let mut dla = DeviceMatmul::open("model:4x4", None).unwrap();
//! dla.set_weights(0, &w, k, n).unwrap();
//! assert_eq!(dla.matmul(0, &a, m, k, n).unwrap(), matmul_i8_ref(&a, &w, m, k, n));
//! ```
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod exec;
pub mod experiment;
pub mod fleet;
pub mod fleetjob;
pub mod interop;
pub mod link_model;
pub mod mitigate;
pub mod model;
pub mod plot;
pub mod quant;
pub mod reference;
pub mod resilience;
pub mod retrain;
pub mod scenario;
pub mod tmr;
pub mod train;
pub mod vote;

pub use device::{Compress, DeviceMatmul, LayerMode};
pub use error::{Error, ExecError, ExecutorError, Result, ShapeError};
pub use exec::{HostMatmul, Int8Matmul, TorchMatmul};
pub use model::{LayerExport, Model, ModelExport, ModelSpec};

/// The environment variable that sets libtorch's thread count ([`init_threads`]).
pub const THREADS_ENV: &str = "FAULTLOOP_TORCH_THREADS";

/// Set libtorch's intra-op thread count from [`THREADS_ENV`], 1 by default:
/// on the shared 2-core machines libtorch's spin-waiting OpenMP pool made 2
/// threads 3-8x slower (docs/training.md). Returns the count set.
pub fn init_threads() -> i32 {
    let n = std::env::var(THREADS_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    tch::set_num_threads(n);
    n
}
