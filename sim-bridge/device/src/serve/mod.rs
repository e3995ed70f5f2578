//! The daemons, in one place (feature `serve`): what runs *on the device's
//! side* of a link.
//!
//! * [`tcp`] — the remote bridge behind `faultloop serve` (`tcp://` clients).
//! * [`pty`] — [`pty::PtyServer`], one pseudo-terminal server for the
//!   virtual UART board and for any link behind the receiver rules.
//! * [`fault_proxy`] — a TCP proxy that injects link faults.
//!
//! All of them receive through `faultloop_proto::RequestGate` (the device's
//! receiver rules, written once) and forward through one reply-wait loop
//! shared with the client.

pub mod fault_proxy;
mod forward;
pub mod pty;
pub mod tcp;
