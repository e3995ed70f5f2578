//! `tcp://host:port`: a device behind a remote bridge (`faultloop serve`, the
//! server in `serve::tcp` behind the `serve` feature).
//!
//! [`TcpLink::connect`] resolves the address, connects (with a timeout),
//! sends the handshake `FAULTLOOP/1 <token>\n` and waits for `OK <device>\n`;
//! an `ERR <reason>\n` answer becomes [`TcpError::Refused`]. After that the
//! link is a plain byte stream carrying frames, like a serial port, and the
//! usual [`crate::client::Device`] runs over it: same timeouts, resync,
//! retries.
//!
//! The token comes from [`crate::open::OpenOptions`] (a token or a token
//! file) or the environment variable [`TOKEN_ENV`] (`FAULTLOOP_TOKEN`); the handshake
//! rules, both halves, are in [`crate::handshake`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use std::time::{Duration, Instant};

use faultloop_proto::Link;

use crate::handshake::{client_line, Token, TokenError, MAX_HANDSHAKE_LINE, TOKEN_ENV};

/// Default connect and handshake timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures opening a `tcp://` link.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// No token was given.
    #[error(
        "no token for the bridge: set {TOKEN_ENV} or pass --token-file (the file the server \
         was started with)"
    )]
    NoToken,
    /// The token is unusable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The address does not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// No address accepted the connection.
    #[error("cannot connect to {addr}: {source} (is `faultloop serve` running there?)")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The server refused the handshake.
    #[error("the bridge at {addr} refused the connection: {reason}")]
    Refused { addr: String, reason: String },
    /// The handshake failed on the wire (timeout, closed connection, garbage).
    #[error("handshake with {addr} failed: {problem}")]
    Handshake { addr: String, problem: String },
}

/// A device behind a remote bridge.
pub struct TcpLink {
    name: String,
    remote_device: String,
    stream: TcpStream,
    peer: SocketAddr,
    read_timeout: Option<Duration>,
    nonblocking: bool,
}

impl fmt::Debug for TcpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpLink")
            .field("name", &self.name)
            .field("remote_device", &self.remote_device)
            .finish()
    }
}

impl TcpLink {
    /// Connect to `host:port`, authenticate with `token`. The link is named
    /// `tcp://host:port`.
    pub fn connect(addr: &str, token: &Token, timeout: Duration) -> Result<TcpLink, TcpError> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|source| TcpError::Resolve { addr: addr.into(), source })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
        let mut stream = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut stream =
            stream.ok_or_else(|| TcpError::Connect { addr: addr.into(), source: last })?;
        let hs = |problem: String| TcpError::Handshake { addr: addr.into(), problem };
        let peer = stream.peer_addr().map_err(|e| hs(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        stream.set_read_timeout(Some(timeout)).map_err(|e| hs(e.to_string()))?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| hs(e.to_string()))?;
        let line = client_line(token);
        stream.write_all(line.as_bytes()).map_err(|e| hs(format!("sending: {e}")))?;
        // Read the answer one byte at a time: nothing after the newline may be
        // consumed (the server sends nothing until a request comes, but be exact).
        let deadline = Instant::now() + timeout;
        let mut answer = Vec::new();
        let mut b = [0u8; 1];
        loop {
            if Instant::now() >= deadline {
                return Err(hs(format!("no answer within {timeout:?}")));
            }
            match stream.read(&mut b) {
                Ok(0) => {
                    return Err(hs(if answer.is_empty() {
                        "the server closed the connection without answering".into()
                    } else {
                        format!("connection closed after '{}'", String::from_utf8_lossy(&answer))
                    }))
                }
                Ok(_) if b[0] == b'\n' => break,
                Ok(_) => {
                    answer.push(b[0]);
                    if answer.len() > MAX_HANDSHAKE_LINE {
                        return Err(hs("answer line too long (not a faultloop bridge?)".into()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    return Err(hs(format!("no answer within {timeout:?}")))
                }
                Err(e) => return Err(hs(e.to_string())),
            }
        }
        let answer = String::from_utf8_lossy(&answer).trim_end_matches('\r').to_string();
        if let Some(reason) = answer.strip_prefix("ERR") {
            return Err(TcpError::Refused { addr: addr.into(), reason: reason.trim().to_string() });
        }
        let remote_device = match answer.strip_prefix("OK") {
            Some(rest) => rest.trim().to_string(),
            None => {
                return Err(hs(format!("unexpected answer '{answer}' (not a faultloop bridge?)")))
            }
        };
        stream.set_write_timeout(Some(Duration::from_secs(30))).map_err(|e| hs(e.to_string()))?;
        log::info!("tcp://{addr}: connected to {remote_device}");
        Ok(TcpLink {
            name: format!("tcp://{addr}"),
            remote_device,
            stream,
            peer,
            read_timeout: Some(timeout),
            nonblocking: false,
        })
    }

    /// The name of the device the server bridges (`model:16x16`, `serial:/dev/ttyUSB0@115200`).
    pub fn remote_device(&self) -> &str {
        &self.remote_device
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn gone(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("connection to the bridge {} lost: {e}", self.peer))
    }
}

impl Link for TcpLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.nonblocking {
            self.stream.set_nonblocking(false)?;
            self.nonblocking = false;
        }
        self.stream.write_all(bytes).map_err(|e| {
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the bridge {} did not take bytes for 30 s", self.peer),
                )
            } else {
                self.gone(e)
            }
        })
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if timeout.is_zero() {
            if !self.nonblocking {
                self.stream.set_nonblocking(true)?;
                self.nonblocking = true;
            }
        } else {
            if self.nonblocking {
                self.stream.set_nonblocking(false)?;
                self.nonblocking = false;
            }
            if self.read_timeout != Some(timeout) {
                self.stream.set_read_timeout(Some(timeout))?;
                self.read_timeout = Some(timeout);
            }
        }
        loop {
            return match self.stream.read(buf) {
                Ok(0) if !buf.is_empty() => Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!(
                        "the bridge {} closed the connection (server stopped, or its device failed)",
                        self.peer
                    ),
                )),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    Ok(0)
                }
                Err(e) => Err(self.gone(e)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_refused_is_clear() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let t = Token::new("x").unwrap();
        let e = TcpLink::connect(&format!("127.0.0.1:{port}"), &t, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot connect") && e.contains("faultloop serve"), "{e}");
    }
}
