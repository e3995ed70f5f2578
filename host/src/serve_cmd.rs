//! `faultloop serve`: expose any device over TCP (the remote bridge), and the
//! global `--token-file` that `tcp://` clients use.
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
use faultloop_device::handshake::{Token, TOKEN_ENV};
use faultloop_device::open::{self as link, DeviceSpec};
use faultloop_device::serve::tcp::{ServeOptions, Server};

/// Serve `device` on `listen` until the process is stopped or the device fails.
pub fn serve(device: &str, listen: &str, token_file: &Path, allow_remote: bool) -> Result<()> {
    let token = Token::from_file(token_file)?;
    let spec: DeviceSpec = device.parse()?;
    let link = link::open(&spec).with_context(|| format!("opening {spec}"))?;
    let opts = ServeOptions { allow_remote, ..ServeOptions::default() };
    let server = Server::bind(link, listen, token, opts)?;
    let addr = server.local_addr();
    eprintln!(
        "faultloop serve: {spec} on tcp://{addr} (clients: --device tcp://{addr} with the token \
         from {} or ${TOKEN_ENV}); one client at a time, others get BUSY",
        token_file.display()
    );
    server.run().with_context(|| format!("serving {spec} on {addr}"))?;
    Ok(())
}

/// The global `--token-file`: every `tcp://` device this process opens
/// presents the token in `path` (it overrides `FAULTLOOP_TOKEN`). Call before
/// any thread starts.
pub fn use_token_file(path: &Path) -> Result<()> {
    let token = Token::from_file(path)?;
    std::env::set_var(TOKEN_ENV, token.expose());
    Ok(())
}
