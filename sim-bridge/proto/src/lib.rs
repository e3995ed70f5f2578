//! faultloop-proto: the contract between the host and a faultloop DLA.
//!
//! Everything here is data and rules, no transport and no device: the RTL,
//! the golden model (faultloop-model), the Verilated models
//! (faultloop-verilated) and the device client (faultloop-device) all build
//! on it. docs/protocol.md is normative; where it and this crate disagree,
//! one of them is a bug.
//!
//! * [`frame`] (re-exported at the root) — CRC-16 ([`crc16`]), [`Opcode`],
//!   [`Status`], [`Site`], [`Frame`] with [`encode_request`] /
//!   [`encode_reply`], the resynchronising stream decoder [`decode`] →
//!   [`Decoded`], typed [`Request`]s, the [`Info`] / [`Counters`] replies and
//!   the `FEATURE_*` bits.
//! * [`receiver`] — [`RequestGate`], the device's frame receiver rules,
//!   written once for every place that receives on the device's behalf.
//! * [`link`] — the byte-stream [`Link`] trait every backend implements.
//! * [`layout`] — the weight-memory layout ([`layout::MatrixLayout`]) and a
//!   [`layout::WeightAllocator`].
//! * [`faultmap`] — [`FaultMap`], the JSON fault-map format: parsing,
//!   validation that names the entry, seeded random maps.
//! * [`atomic`] — [`atomic::write_atomic`], the one atomic file write.
//! * [`rng`] — [`Rng`] (SplitMix64), the project's one generator, so a seed
//!   gives the same data and fault maps everywhere.
//!
//! # Example
//!
//! Encode an INFO request, decode it back from a stream with garbage in
//! front, and parse a fault map:
//!
//! ```
//! use faultloop_proto::{decode, encode_request, Decoded, FaultMap, Opcode, REQUEST_SYNC};
//!
//! let mut stream = vec![0x00, 0x13];
//! stream.extend(encode_request(Opcode::Info, 7, &[]));
//! let mut at = 0;
//! let frame = loop {
//!     match decode(&stream[at..], REQUEST_SYNC, 1024) {
//!         Decoded::Frame { frame, .. } => break frame,
//!         Decoded::Skip { n, .. } => at += n,
//!         Decoded::Incomplete => unreachable!("the whole frame is there"),
//!     }
//! };
//! assert_eq!((frame.code, frame.seq), (Opcode::Info as u8, 7));
//!
//! let map = FaultMap::from_json_str(
//!     r#"{"array": {"rows": 4, "cols": 4},
//!         "faults": [{"row": 1, "col": 2, "site": "psum", "stuck_at_1": 1024}]}"#,
//! )
//! .unwrap();
//! assert_eq!(map.faulty_pes(), 1);
//! assert!(FaultMap::from_json_str(r#"{"array": {"rows": 4, "cols": 4},
//!     "faults": [{"row": 9, "col": 0, "site": "act", "stuck_at_1": 1}]}"#).is_err());
//! ```

pub mod atomic;
pub mod faultmap;
pub mod frame;
pub mod layout;
pub mod link;
pub mod receiver;
pub mod rng;

pub use faultmap::{FaultMap, FaultMapError};
pub use frame::*;
pub use link::Link;
pub use receiver::{GateEvent, RequestGate};
pub use rng::Rng;
