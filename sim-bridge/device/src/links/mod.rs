//! The transports this crate implements: a serial port, a TCP bridge, and a
//! wrapper that injects link faults into any link.

pub mod chip;
pub mod link_faults;
pub mod serial;
pub mod tcp;
