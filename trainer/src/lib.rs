//! trainer: libtorch training on the DLA (issue 3).
//!
//! * [`data`]: idx (MNIST-format) reader and datasets.
//! * [`quant`]: int8 symmetric per-tensor quantization, fake-quant (STE).
//! * [`exec`]: the [`Int8Matmul`] executor trait and host implementations.
//! * [`model`]: MLP and im2col CNN whose every layer is an int8 matmul.
//! * [`reference`]: the same int8 inference in plain Rust, from an export.
//! * [`train`]: quantization-aware pretraining and int8 evaluation.
//! * [`checkpoint`]: float master weights + scales + layer map on disk.
//! * [`device`]: [`DeviceMatmul`], the executor whose matmuls run on a DLA
//!   (`sim_bridge::client::Device`), with sparse weight increments and
//!   per-layer TMR/host modes.
//! * [`tmr`]: partial TMR — majority vote, rotations, per-layer
//!   vulnerability analysis and layer selection under a MAC budget.
//! * [`retrain`]: hardware-in-the-loop retraining (forward on the device,
//!   straight-through backward on the host) with checkpoint/resume.
//! * [`plot`]: a hand-written SVG line chart (accuracy per epoch).
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
pub mod exec;
pub mod model;
pub mod plot;
pub mod quant;
pub mod reference;
pub mod retrain;
pub mod tmr;
pub mod train;

pub use device::{Compress, DeviceMatmul, LayerMode};
pub use error::{Error, ExecError, Result};
pub use exec::{HostMatmul, Int8Matmul, TorchMatmul};
pub use model::{LayerExport, Model, ModelExport, ModelSpec};
