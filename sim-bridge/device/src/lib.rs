//! faultloop-device: talk to a faultloop DLA over any link.
//!
//! * [`client`] — [`Device`]: typed requests with sequence numbers,
//!   timeouts, retries and [`DeviceError`]s that name the device, the request
//!   and the cause; splits large writes and MATMULs to fit the device;
//!   [`Device::apply_fault_map`] loads a fault map.
//! * [`open`] — device strings ([`DeviceSpec`]: `sim`, `sim:RxC`, `model`,
//!   `model:RxC`, `serial:PATH[@baud]`, `tcp://host:port`), [`OpenOptions`]
//!   and [`Device::open_with`].
//! * [`links`] — the serial port and the TCP bridge client, and link-fault
//!   injection ([`links::link_faults::LinkFaultRates`],
//!   [`links::link_faults::FaultyLink`]); [`handshake`] holds both halves of
//!   the bridge handshake.
//! * `serve` (feature `serve`) — the daemons: the TCP bridge server, the
//!   pseudo-terminal server (virtual boards), the link-fault proxy.
//! * `testing` (feature `testkit`) — the soak harness.
//! * [`trace`] — FST waveforms of `sim` devices ([`OpenOptions::trace`]).
//! * [`verify`] — the RTL-vs-model differential regression behind
//!   `faultloop verify`: random request programs, byte-for-byte replies,
//!   shrinking, replay files, JUnit reports; [`shard`] splits it.
//!
//! Features: `sim` (default) links the Verilated RTL through
//! faultloop-verilated (needs Verilator); without it `sim` device strings are
//! refused and nothing here needs Verilator. The golden model
//! (faultloop-model) is always there.
//!
//! # Example
//!
//! Run a small matmul on the golden model with a stuck weight bit:
//!
//! ```
//! use faultloop_device::Device;
//! use faultloop_proto::{FaultMap, Rng};
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
//! dev.apply_fault_map(&map)?;
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

pub mod client;
pub mod handshake;
pub mod links;
pub mod open;
mod reply;
#[cfg(feature = "serve")]
pub mod serve;
pub mod shard;
#[cfg(feature = "testkit")]
pub mod testing;
pub mod trace;
pub mod verify;

pub use client::{ApplyError, ClientOptions, Device, DeviceError};
/// The Verilated models (`sim`, the virtual UART board), with feature `sim`.
#[cfg(feature = "sim")]
pub use faultloop_verilated as verilated;
pub use open::{DeviceSpec, OpenOptions};
