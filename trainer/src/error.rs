//! The crate's error type.
use std::path::PathBuf;

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
