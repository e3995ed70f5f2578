//! The crate's errors: [`Error`] for the library as a whole, [`ExecutorError`]
//! for the DLA-backed executor ([`crate::DeviceMatmul`]), [`ShapeError`] for
//! the shape contract every executor checks, [`InteropError`] for safetensors
//! export and import, and [`ExecError`], the boxed
//! error of the [`crate::Int8Matmul`] trait.
use std::path::PathBuf;

use faultloop_device::client::{ApplyError, DeviceError};
use faultloop_device::open::LinkError;
use faultloop_proto::faultmap::FaultMapError;
use faultloop_proto::layout::LayoutError;

/// Error from an [`crate::Int8Matmul`] executor (device link, shape, ...).
pub type ExecError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A malformed idx file: bad magic, truncated, trailing bytes, bad gzip, ...
    #[error("{}: {msg}", path.display())]
    Idx { path: PathBuf, msg: String },

    /// The images and labels of a split disagree, or a split's files are missing.
    #[error("dataset {}: {msg}", dir.display())]
    Dataset { dir: PathBuf, msg: String },

    #[error("{}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },

    #[error("{}: {source}", path.display())]
    Json { path: PathBuf, source: serde_json::Error },

    #[error("shape: {0}")]
    Shape(String),

    #[error("invalid configuration: {0}")]
    Config(String),

    /// The matmul executor failed for layer `layer` (index in device order).
    #[error("layer {layer} ({name}): matmul executor: {source}")]
    Exec { layer: usize, name: String, source: ExecError },

    /// The DLA-backed executor failed outside a layer's matmul (opening the
    /// device, applying a fault map).
    #[error(transparent)]
    Executor(#[from] ExecutorError),

    /// A fault map could not be made.
    #[error(transparent)]
    FaultMap(#[from] FaultMapError),

    /// A malformed list option (`--rates`, `--amounts`).
    #[error("bad {what} `{input}`: {msg}")]
    List { what: &'static str, input: String, msg: String },

    /// A malformed `--shard i/n`.
    #[error(transparent)]
    Shard(#[from] faultloop_device::shard::ShardError),

    /// Shard or job files that do not add up to one resilience map.
    #[error("cannot merge: {0}")]
    Merge(String),

    /// A retraining run that stopped part way (the device failed, ...),
    /// with what it saved.
    #[error("retraining on {device} stopped: {source}; {saved}")]
    Stopped {
        device: String,
        saved: String,
        #[source]
        source: Box<Error>,
    },
    /// A chart could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// A bad safetensors file on export or import (names the file and tensor).
    #[error(transparent)]
    Interop(#[from] InteropError),

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn idx(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Idx { path: path.into(), msg: msg.into() }
    }
}

/// A weight install or matmul that breaks an executor's shape contract (see
/// [`crate::exec::check_weights`] and [`crate::exec::check_matmul`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A matmul (or probe) of a layer whose weights were never installed.
    #[error("layer {layer}: no weights installed")]
    NoWeights { layer: usize },
    /// The weight slice does not hold K×N values.
    #[error("layer {layer}: weights have {len} values, K×N = {k}×{n}")]
    WeightCount { layer: usize, len: usize, k: usize, n: usize },
    /// New weights of another shape than the device region allocated for the layer.
    #[error("layer {layer}: weights {k}×{n}, but {held_k}×{held_n} is allocated")]
    Allocated { layer: usize, k: usize, n: usize, held_k: usize, held_n: usize },
    /// Activations or dimensions that do not match the installed weights.
    #[error(
        "layer {layer}: matmul {m}×{k}×{n} with {len} activations against weights \
         {held_k}×{held_n}"
    )]
    Matmul { layer: usize, m: usize, k: usize, n: usize, len: usize, held_k: usize, held_n: usize },
}

/// What [`crate::DeviceMatmul`] reports: a broken shape contract, or the
/// device, its weight memory, the fault map or the link failing. Callers can
/// tell "no weights installed" (`Shape(ShapeError::NoWeights { .. })`) from a
/// device failure (`Device(..)`).
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A request to the device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A layer does not fit the device's weight memory.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A fault map could not be applied.
    #[error(transparent)]
    Faults(#[from] ApplyError),
    /// An update budget too small for a single PATCH_WEIGHTS entry.
    #[error(
        "update budget {budget} B is smaller than one PATCH_WEIGHTS frame with one entry \
         ({min} B): no update could ever be sent"
    )]
    Budget { budget: u64, min: u64 },
    /// A byte budget with dense rewrites (which always send everything).
    #[error("an update budget needs sparse updates, not --compress dense")]
    BudgetDense,
    /// The device string does not parse, or its link does not open.
    #[error("cannot open device: {0}")]
    Open(#[source] LinkError),
}

/// A bad safetensors file on import: every variant names the file, and the
/// tensor where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Not a safetensors file (bad header, offsets, ...).
    #[error("{}: not a readable safetensors file: {source}", path.display())]
    Format { path: PathBuf, source: safetensors::SafeTensorError },
    #[error("{}: no tensor `{tensor}` (the {spec} model needs it)", path.display())]
    Missing { path: PathBuf, tensor: String, spec: String },
    #[error("{}: tensor `{tensor}` has shape {got:?}, expected {want:?}", path.display())]
    Shape { path: PathBuf, tensor: String, got: Vec<usize>, want: Vec<usize> },
    #[error("{}: tensor `{tensor}` is {got}, expected {want}", path.display())]
    Dtype { path: PathBuf, tensor: String, got: String, want: &'static str },
    #[error("{}: tensor `{tensor}` holds a non-finite value at element {at}", path.display())]
    NotFinite { path: PathBuf, tensor: String, at: usize },
    /// `__metadata__` that does not parse or contradicts the options.
    #[error("{}: {msg}", path.display())]
    Metadata { path: PathBuf, msg: String },
    /// A file that says nothing about its architecture, imported without a spec.
    #[error("{}: no faultloop metadata in the file; give the architecture (--spec)", path.display())]
    NoSpec { path: PathBuf },
}
