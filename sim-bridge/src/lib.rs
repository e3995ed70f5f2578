//! sim-bridge: everything that talks to a faultloop DLA.
//!
//! The DLA is a weight-stationary systolic array with fault-injection
//! registers; its contract is docs/protocol.md. This crate holds:
//!
//! * [`proto`] — the framed protocol: [`proto::crc16`], [`proto::Opcode`],
//!   [`proto::Status`], [`proto::Site`], [`proto::Frame`] with
//!   [`proto::encode_request`] / [`proto::encode_reply`], the resynchronising
//!   stream decoder [`proto::decode`] → [`proto::Decoded`], typed
//!   [`proto::Request`]s and the [`proto::Info`] / [`proto::Counters`] replies.
//! * [`link`] — the byte-stream [`link::Link`] trait, device strings
//!   ([`link::DeviceSpec`]: `sim`, `sim:RxC`, `model`, `model:RxC`,
//!   `serial:PATH[@baud]`, `tcp://host:port`) and [`link::open`].
//! * [`model`] — the golden model, a bit-exact Rust twin of the RTL, and
//!   [`model_link::ModelLink`], which puts it behind the device's frame
//!   receiver rules so it is a device like any other.
//! * [`verilator`] — the in-process Verilated RTL ([`verilator::SimLink`]).
//! * [`board`] — the virtual board: the Verilated UART top driven bit by bit
//!   ([`board::UartSim`]), hidden defects, and [`board::PtyBoard`] serving it
//!   on a pseudo-terminal (`faultloop board --pty`).
//! * [`client`] — [`client::Device`]: typed requests with sequence numbers,
//!   timeouts, retries and [`client::DeviceError`]s that name the device, the
//!   request and the cause; splits large writes and MATMULs to fit the device.
//! * [`layout`] — the weight-memory layout ([`layout::MatrixLayout`],
//!   [`layout::pack`]) and a [`layout::WeightAllocator`].
//! * [`faultmap`] — [`faultmap::FaultMap`], the JSON fault-map format, with
//!   validation, random generation and `apply` to a device.
//! * [`rng`] — [`rng::Rng`] (SplitMix64), the project's one generator, so a
//!   seed gives the same data and fault maps everywhere.
//!
//! # Example
//!
//! Run a small matmul on the golden model with a stuck weight bit:
//!
//! ```
//! use sim_bridge::client::Device;
//! use sim_bridge::faultmap::FaultMap;
//! use sim_bridge::rng::Rng;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut dev = Device::open("model:4x4")?;
//! let info = dev.info()?;
//! assert_eq!((info.rows, info.cols), (4, 4));
//!
//! // A 6x5 weight matrix and 3x6 activations from a seed.
//! let (m, k, n) = (3, 6, 5);
//! let mut rng = Rng::new(1);
//! let w = rng.vec_i8(k * n);
//! let a = rng.vec_i8(m * k);
//! let layout = dev.load_matrix(0, k, n, &w)?;
//!
//! let y = dev.matmul(layout.base as u32, m, k, n, (0, 0), &a)?;
//! let want: Vec<i32> = (0..m * n)
//!     .map(|i| (0..k).map(|j| a[i / n * k + j] as i32 * w[j * n + i % n] as i32).sum())
//!     .collect();
//! assert_eq!(y, want);
//!
//! // The weight register of PE (0, 0) stuck at 0: that PE holds W[0][0] and
//! // W[4][0] (column tile 0) and W[0][4], W[4][4] (column tile 1), so exactly
//! // those products drop out.
//! let map = FaultMap::from_json_str(
//!     r#"{"array": {"rows": 4, "cols": 4},
//!         "faults": [{"row": 0, "col": 0, "site": "weight", "stuck_at_0": 255}]}"#,
//! )?;
//! map.apply(&mut dev)?;
//! let faulty = dev.matmul(layout.base as u32, m, k, n, (0, 0), &a)?;
//! let mut expect = want.clone();
//! for i in 0..m {
//!     for kk in [0, 4] {
//!         for nn in [0, 4] {
//!             expect[i * n + nn] -= a[i * k + kk] as i32 * w[kk * n + nn] as i32;
//!         }
//!     }
//! }
//! assert_eq!(faulty, expect);
//! dev.clear_faults()?;
//! assert_eq!(dev.matmul(layout.base as u32, m, k, n, (0, 0), &a)?, want);
//! println!("{} bytes sent, {} received", dev.bytes_sent(), dev.bytes_received());
//! # Ok(())
//! # }
//! ```
pub mod board;
pub mod bridge;
pub mod client;
pub mod faultmap;
pub mod faulty;
pub mod layout;
pub mod link;
pub mod model;
pub mod model_link;
pub mod proto;
pub mod rng;
pub mod serial;
pub mod tcp;
pub mod verilator;
