//! faultloop-model: the golden model of the faultloop DLA, a pure-Rust,
//! bit-exact twin of the RTL (docs/protocol.md is the contract both follow).
//!
//! * [`Model`] — the device semantics: [`Model::execute`] takes one request
//!   that passed the receiver's CRC and length checks and returns exactly the
//!   status and payload the RTL sends: validation order, state effects,
//!   counters, and MATMUL with every fault site, bypass, rotation and
//!   counter-hash transient flip ([`seu_hash`]). The MATMUL kernel is written
//!   for speed (AVX2 where present, threads), because the model is also the
//!   fault-emulation backend for fault-aware training; a literal reference
//!   (tests only) holds it to the spec bit for bit.
//! * [`ModelLink`] — the model behind the device's receiver rules
//!   (faultloop-proto's `RequestGate`), as a [`Link`](faultloop_proto::Link):
//!   the `model` / `model:RxC` device.
//!
//! The model is configured with the [`Info`](faultloop_proto::Info) it
//! reports (`Info::sim(rows, cols)` for the twin of `dla_sim_top`,
//! `Info::ice40()` for the iCE40 core). The differential tests hold the
//! Verilated RTL and this crate to the same reply bytes.
//!
//! # Example
//!
//! ```
//! use faultloop_model::Model;
//! use faultloop_proto::{Info, Opcode, Status};
//!
//! let mut m = Model::new(Info::sim(4, 4));
//! let (status, payload) = m.execute(Opcode::Info as u8, &[]);
//! assert_eq!(status, Status::Ok as u8);
//! assert_eq!(Info::parse(&payload).unwrap(), Info::sim(4, 4));
//! // A SET_FAULT with a mask wider than the 8-bit act register is refused.
//! let mut p = vec![0, 0, 1];
//! p.extend(0x100u32.to_le_bytes());
//! p.extend(0u32.to_le_bytes());
//! assert_eq!(m.execute(Opcode::SetFault as u8, &p).0, Status::OutOfRange as u8);
//! ```

mod link;
mod semantics;

pub use link::ModelLink;
pub use semantics::{seu_hash, Model};
