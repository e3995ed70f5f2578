//! faultloop-characterize: find a chip's permanent faults over the protocol
//! alone.
//!
//! [`characterize`] runs a built-in self-test on a [`Device`]: it chooses
//! weights, activations and bypass sets, never reads a fault register, and
//! infers every PE's stuck bits at all three sites (psum, act, weight; both
//! polarities; any number of bits) from the int32 outputs ([`bist`] has the
//! phases, [`solve`] the inference). The result, a [`Report`] with the
//! discovered [`FaultMap`], is judged functionally: loaded into the golden
//! model, the map must reproduce the chip bit for bit on random workloads
//! with random bypass sets and rotations ([`Verification`]). Registers no
//! workload can observe (the act register of the last column feeds no PE)
//! are listed in [`Report::unobservable`], never guessed.
//!
//! Transient flips are switched off with SET_SEU 0 where the device has
//! them; soft errors a real chip makes itself cannot be, so
//! [`Options::repeats`] runs every MATMUL several times and takes the
//! per-bit majority.
//!
//! # Example
//!
//! A 4x4 golden-model chip with a hidden stuck psum bit (`+defects=`, see
//! faultloop-device's `links::chip`), found over the wire:
//!
//! ```
//! use faultloop_characterize::{characterize, Options};
//! use faultloop_device::Device;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("fl-char-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let hidden = dir.join("hidden.json");
//! std::fs::write(&hidden, r#"{"array": {"rows": 4, "cols": 4},
//!   "faults": [{"row": 2, "col": 1, "site": "psum", "stuck_at_1": 4096}]}"#)?;
//! let mut chip = Device::open(&format!("model:4x4+defects={}", hidden.display()))?;
//! let report = characterize(&mut chip, &Options::default(), &mut |_| {})?;
//! assert!(report.verification.ok);
//! assert_eq!(report.map.faults.len(), 1);
//! assert_eq!(report.map.faults[0].stuck_at_1, 4096);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

pub mod bist;
pub mod solve;

pub use bist::{
    characterize, CharacterizeError, Options, Phase, Progress, Report, Unobservable, Verification,
};
pub use faultloop_device::Device;
pub use faultloop_proto::faultmap::FaultMap;
