//! Test harnesses shared by tests, examples and the hardware test (feature
//! `testkit`).

pub mod adversary;
pub mod soak;

pub use soak::{soak, SoakOptions, SoakReport};
