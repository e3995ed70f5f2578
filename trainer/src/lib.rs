//! trainer: libtorch training on the DLA (issue 3).
//!
//! * [`data`]: idx (MNIST-format) reader and datasets.
//! * [`quant`]: int8 symmetric per-tensor quantization, fake-quant (STE).
//! * [`exec`]: the [`Int8Matmul`] executor trait and host implementations.
//! * [`model`]: MLP and im2col CNN whose every layer is an int8 matmul.
//! * [`reference`]: the same int8 inference in plain Rust, from an export.
//! * [`train`]: quantization-aware pretraining and int8 evaluation.
//! * [`checkpoint`]: float master weights + scales + layer map on disk.
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod exec;
pub mod model;
pub mod quant;
pub mod reference;
pub mod train;

pub use error::{Error, ExecError, Result};
pub use exec::{HostMatmul, Int8Matmul, TorchMatmul};
pub use model::{LayerExport, Model, ModelExport, ModelSpec};
