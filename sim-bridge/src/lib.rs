//! sim-bridge: everything that talks to a faultloop DLA.
pub mod client;
pub mod faultmap;
pub mod layout;
pub mod link;
pub mod model;
pub mod model_link;
pub mod proto;
pub mod rng;
pub mod verilator;
