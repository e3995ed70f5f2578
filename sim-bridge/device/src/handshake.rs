//! The bridge handshake, both halves in one place (docs/protocol.md §6).
//!
//! Before any frame, a `tcp://` client sends `FAULTLOOP/1 <token>\n`; the
//! server ([`check_handshake`], used by `serve::tcp`) answers `OK <device
//! name>\n` or `ERR <reason>\n` and closes. The client half is
//! [`client_line`] and the answer parsing in [`crate::links::tcp`]. Tokens are
//! compared in time independent of where they differ ([`Token::matches`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Environment variable holding the bridge token for `tcp://` clients.
pub const TOKEN_ENV: &str = "FAULTLOOP_TOKEN";
/// First word of the handshake line (protocol version 1).
pub const HANDSHAKE_MAGIC: &str = "FAULTLOOP/1";
/// Longest handshake line either side accepts.
pub const MAX_HANDSHAKE_LINE: usize = 1024;

/// A shared secret for the bridge. Printable ASCII without spaces, 1–512
/// bytes. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes>)", self.0.len())
    }
}

/// A token that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file cannot be read.
    #[error("token file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The token is empty or has characters outside printable ASCII.
    #[error("{origin}: {problem}")]
    Invalid { origin: String, problem: String },
}

impl Token {
    /// A token from a string (surrounding whitespace is trimmed).
    pub fn new(s: &str) -> Result<Token, TokenError> {
        Token::parse(s, "token")
    }

    fn parse(s: &str, origin: &str) -> Result<Token, TokenError> {
        let t = s.trim();
        let invalid = |problem: &str| TokenError::Invalid {
            origin: origin.to_string(),
            problem: problem.to_string(),
        };
        if t.is_empty() {
            return Err(invalid("the token is empty"));
        }
        if t.len() > 512 {
            return Err(invalid("the token is longer than 512 bytes"));
        }
        if !t.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
            return Err(invalid("the token must be printable ASCII without spaces"));
        }
        Ok(Token(t.to_string()))
    }

    /// Read a token file (its whole content, trimmed). On Unix a file that
    /// others can read is accepted with a warning.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let s = std::fs::read_to_string(path)
            .map_err(|source| TokenError::Read { path: path.to_path_buf(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    log::warn!(
                        "token file {} is readable by others (chmod 600 it)",
                        path.display()
                    );
                }
            }
        }
        Token::parse(&s, &format!("token file {}", path.display()))
    }

    /// The token from [`TOKEN_ENV`], if set.
    pub fn from_env() -> Result<Option<Token>, TokenError> {
        match std::env::var(TOKEN_ENV) {
            Ok(s) => Token::parse(&s, &format!("environment variable {TOKEN_ENV}")).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::Invalid {
                origin: format!("environment variable {TOKEN_ENV}"),
                problem: "not valid UTF-8".into(),
            }),
        }
    }

    /// Compare with a candidate in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let a = self.0.as_bytes();
        let n = a.len().max(candidate.len());
        let mut diff = (a.len() ^ candidate.len()) as u64;
        for i in 0..n {
            let x = a.get(i).copied().unwrap_or(0);
            let y = candidate.get(i).copied().unwrap_or(0);
            diff |= (x ^ y) as u64;
        }
        // Keep the optimiser from short-circuiting the loop.
        std::hint::black_box(diff) == 0
    }

    /// The secret itself (for sending it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Client half: the line a client sends for `token`.
pub fn client_line(token: &Token) -> String {
    format!("{HANDSHAKE_MAGIC} {}\n", token.expose())
}

/// Server half: check a handshake line (without its `\n`); `Err(reason)`
/// is what the server answers after `ERR `.
pub fn check_handshake(line: &[u8], token: &Token) -> Result<(), &'static str> {
    let magic = HANDSHAKE_MAGIC.as_bytes();
    if line.len() > MAX_HANDSHAKE_LINE {
        return Err("handshake line too long");
    }
    if !line.starts_with(magic) {
        return Err("expected 'FAULTLOOP/1 <token>' (a faultloop client, protocol 1)");
    }
    let rest = &line[magic.len()..];
    let candidate = match rest.split_first() {
        Some((b' ', t)) => t,
        None => &[][..],
        Some(_) => return Err("expected 'FAULTLOOP/1 <token>' (a faultloop client, protocol 1)"),
    };
    if candidate.is_empty() {
        return Err("missing token");
    }
    if !token.matches(candidate) {
        return Err("wrong token");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        assert_eq!(Token::new("  abc\n").unwrap().expose(), "abc");
        assert!(Token::new("").is_err());
        assert!(Token::new("a b").is_err());
        assert!(Token::new("é").is_err());
        assert!(!format!("{:?}", Token::new("secret").unwrap()).contains("secret"));
    }

    #[test]
    fn token_compare() {
        let t = Token::new("abcdef").unwrap();
        assert!(t.matches(b"abcdef"));
        assert!(!t.matches(b"abcdeF"));
        assert!(!t.matches(b"abcde"));
        assert!(!t.matches(b"abcdefg"));
        assert!(!t.matches(b""));
    }

    #[test]
    fn handshake_rules() {
        let t = Token::new("s3cret-token").unwrap();
        assert_eq!(check_handshake(b"FAULTLOOP/1 s3cret-token", &t), Ok(()));
        assert_eq!(check_handshake(b"FAULTLOOP/1 s3cret-tokeN", &t), Err("wrong token"));
        assert_eq!(check_handshake(b"FAULTLOOP/1 ", &t), Err("missing token"));
        assert_eq!(check_handshake(b"FAULTLOOP/1", &t), Err("missing token"));
        assert!(check_handshake(b"GET / HTTP/1.1", &t).is_err());
        assert!(check_handshake(b"FAULTLOOP/2 s3cret-token", &t).is_err());
    }

    #[test]
    fn the_client_line_passes_the_server_check() {
        let t = Token::new("abc").unwrap();
        let line = client_line(&t);
        assert_eq!(check_handshake(line.trim_end().as_bytes(), &t), Ok(()));
    }
}
