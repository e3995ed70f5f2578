//! faultloop-verilated: the faultloop RTL (rtl/) compiled by Verilator and
//! linked in process. The only crate of the workspace with a build script:
//! everything else builds and tests without Verilator.
//!
//! * [`SimLink`] — `dla_sim_top` (8-byte stream port) as a
//!   [`Link`](faultloop_proto::Link): `sim`, `sim:RxC`, and the iCE40
//!   bitstream's exact core configuration ([`SimLink::open_ice40`]).
//!   With [`SimLink::open_traced`] it records an FST waveform (a time
//!   window of clock cycles).
//! * [`UartSim`] — `dla_uart_top` driven bit by bit through its RX/TX pins
//!   (the virtual board), with hidden defects written through its defect port
//!   ([`UartSim::apply_hidden`]).
//!
//! `build.rs` verilates the core (file list `rtl/dla_core.f`) once per size in
//! `FAULTLOOP_SIM_SIZES` (default `4x4,8x8,16x16`) and `FAULTLOOP_BOARD_SIZES`
//! (default `4x4,8x8`); [`sim_sizes`] and [`board_sizes`] say what a build
//! holds. Both tops sit behind one FFI helper (the private `ffi` module).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use faultloop_proto::{decode, encode_request, Decoded, Info, Link, Opcode, REPLY_SYNC};
//! use faultloop_verilated::SimLink;
//!
//! let mut sim = SimLink::open(4, 4).unwrap();
//! sim.send(&encode_request(Opcode::Info, 1, &[])).unwrap();
//! let mut buf = vec![0u8; 64];
//! let n = sim.recv(&mut buf, Duration::from_secs(5)).unwrap();
//! let Decoded::Frame { frame, .. } = decode(&buf[..n], REPLY_SYNC, 64) else { panic!() };
//! assert_eq!(Info::parse(&frame.payload).unwrap(), Info::sim(4, 4));
//! ```

mod ffi;
pub mod sim;
pub mod uart;

pub use sim::{built_sizes as sim_sizes, SimError, SimLink};
pub use uart::{built_sizes as board_sizes, BoardError, UartSim};
