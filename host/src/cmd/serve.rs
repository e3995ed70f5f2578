//! `faultloop serve`: expose any device over TCP (the remote bridge). The
//! global `--token-file` is the token clients must present; clients pass the
//! same flag (or `FAULTLOOP_TOKEN`) to reach it.
//!
//! ```text
//! faultloop serve --device serial:/dev/ttyUSB0@921600 --token-file ~/.faultloop-token
//! faultloop --token-file ~/.faultloop-token info --device tcp://127.0.0.1:7878
//! ```
//!
//! The bridge speaks plain TCP: the token authenticates but is not encrypted.
//! It listens on loopback unless `--allow-remote` is given; to reach it from
//! another machine prefer an SSH tunnel (`ssh -L 7878:127.0.0.1:7878 board-host`).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use faultloop_device::handshake::{Token, TOKEN_ENV};
use faultloop_device::open as link;
use faultloop_device::serve::tcp::{ServeOptions, Server};

use super::DeviceArg;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dev: DeviceArg,
    /// Address to listen on; non-loopback needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// Allow a non-loopback listen address (plain TCP: prefer an SSH tunnel).
    #[arg(long)]
    pub allow_remote: bool,
    /// Seconds a new connection has to complete its handshake line; a client
    /// that trickles it slower is dropped.
    #[arg(long, default_value_t = 5.0)]
    pub handshake_timeout_s: f64,
}

/// Serve the device on `--listen` until the process is stopped or the device fails.
pub fn run(a: ServeArgs, token_file: Option<&Path>) -> Result<()> {
    let token_file =
        token_file.ok_or_else(|| anyhow::anyhow!("serve needs --token-file (the shared token)"))?;
    let token = Token::from_file(token_file)?;
    let spec = a.dev.spec()?;
    let link = link::open(&spec).with_context(|| format!("opening {spec}"))?;
    if !(a.handshake_timeout_s.is_finite() && a.handshake_timeout_s > 0.0) {
        anyhow::bail!(
            "bad --handshake-timeout-s {}: expected a positive number of seconds",
            a.handshake_timeout_s
        );
    }
    let opts = ServeOptions {
        allow_remote: a.allow_remote,
        handshake_timeout: std::time::Duration::from_secs_f64(a.handshake_timeout_s),
        ..ServeOptions::default()
    };
    let server = Server::bind(link, &a.listen, token, opts)?;
    let addr = server.local_addr();
    eprintln!(
        "faultloop serve: {spec} on tcp://{addr} (clients: --device tcp://{addr} with the token \
         from {} or ${TOKEN_ENV}); one client at a time, others get BUSY",
        token_file.display()
    );
    server.run().with_context(|| format!("serving {spec} on {addr}"))?;
    Ok(())
}
