//! The replay file of a failing case: the shrunk request program, the two
//! devices and the mismatch, as JSON (`faultloop verify --replay FILE`).
//! Requests are written field by field (data bytes in hex), so a user can
//! read and edit them.

use std::path::Path;

use faultloop_proto::{Request, Site};
use serde::{Deserialize, Serialize};

use super::program::Program;
use super::VerifyError;

/// Written in every case file; a file without it is not one.
pub const CASE_FORMAT: &str = "faultloop-verify-case";

/// A replayable case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseFile {
    /// Always [`CASE_FORMAT`].
    pub format: String,
    /// The device under test and the reference, as device strings.
    pub device: String,
    pub against: String,
    /// The run's seed and the case's number and seed (to regenerate the
    /// unshrunk program).
    pub seed: u64,
    pub case: usize,
    pub case_seed: u64,
    /// Request `i` goes out with sequence number `seq0 + i + 1`.
    pub seq0: u16,
    pub requests: Vec<CaseRequest>,
    /// What differed when the file was written (informative; replay
    /// compares afresh).
    pub mismatch: Option<String>,
}

/// One request, field by field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaseRequest {
    Info,
    Reset,
    WriteWeights { addr: u32, data: String },
    PatchWeights { entries: Vec<(u32, i8)> },
    SetFault { row: u8, col: u8, site: Site, sa0: u32, sa1: u32 },
    SetBypass { row: u8, col: u8, on: bool },
    ClearFaults,
    SetSeu { rate: u32, seed: u32 },
    Matmul { base: u32, m: u16, k: u16, n: u16, rot: [u8; 2], a: String },
    Counters,
}

fn hex(b: impl Iterator<Item = u8>) -> String {
    b.map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("hex data of odd length {}", s.len()));
    }
    (0..s.len() / 2)
        .map(|i| {
            u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| {
                format!("'{}' at offset {} is not a hex byte", &s[2 * i..2 * i + 2], 2 * i)
            })
        })
        .collect()
}

impl From<&Request> for CaseRequest {
    fn from(r: &Request) -> CaseRequest {
        match r {
            Request::Info => CaseRequest::Info,
            Request::Reset => CaseRequest::Reset,
            Request::WriteWeights { addr, data } => {
                CaseRequest::WriteWeights { addr: *addr, data: hex(data.iter().copied()) }
            }
            Request::PatchWeights(e) => CaseRequest::PatchWeights { entries: e.clone() },
            &Request::SetFault { row, col, site, sa0, sa1 } => {
                CaseRequest::SetFault { row, col, site, sa0, sa1 }
            }
            &Request::SetBypass { row, col, on } => CaseRequest::SetBypass { row, col, on },
            Request::ClearFaults => CaseRequest::ClearFaults,
            &Request::SetSeu { rate, seed } => CaseRequest::SetSeu { rate, seed },
            Request::Matmul { base, m, k, n, rot, a } => CaseRequest::Matmul {
                base: *base,
                m: *m,
                k: *k,
                n: *n,
                rot: [rot.0, rot.1],
                a: hex(a.iter().map(|&v| v as u8)),
            },
            Request::Counters => CaseRequest::Counters,
        }
    }
}

impl CaseRequest {
    /// The typed request (hex fields decoded).
    pub fn to_request(&self) -> Result<Request, String> {
        Ok(match self {
            CaseRequest::Info => Request::Info,
            CaseRequest::Reset => Request::Reset,
            CaseRequest::WriteWeights { addr, data } => {
                Request::WriteWeights { addr: *addr, data: unhex(data)? }
            }
            CaseRequest::PatchWeights { entries } => Request::PatchWeights(entries.clone()),
            &CaseRequest::SetFault { row, col, site, sa0, sa1 } => {
                Request::SetFault { row, col, site, sa0, sa1 }
            }
            &CaseRequest::SetBypass { row, col, on } => Request::SetBypass { row, col, on },
            CaseRequest::ClearFaults => Request::ClearFaults,
            &CaseRequest::SetSeu { rate, seed } => Request::SetSeu { rate, seed },
            CaseRequest::Matmul { base, m, k, n, rot, a } => Request::Matmul {
                base: *base,
                m: *m,
                k: *k,
                n: *n,
                rot: (rot[0], rot[1]),
                a: unhex(a)?.into_iter().map(|v| v as i8).collect(),
            },
            CaseRequest::Counters => Request::Counters,
        })
    }
}

impl CaseFile {
    /// The program it holds.
    pub fn program(&self) -> Result<Program, String> {
        let requests = self
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| r.to_request().map_err(|e| format!("request {i}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Program { seq0: self.seq0, requests })
    }

    /// Read and check a case file; errors name the file.
    pub fn load(path: &Path) -> Result<CaseFile, VerifyError> {
        let bad = |problem: String| VerifyError::CaseFile { path: path.to_path_buf(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let c: CaseFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if c.format != CASE_FORMAT {
            return Err(bad(format!("format is '{}', not '{CASE_FORMAT}'", c.format)));
        }
        c.program().map_err(bad)?;
        Ok(c)
    }

    /// Write it as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), VerifyError> {
        let text = serde_json::to_string_pretty(self).expect("case files serialise");
        std::fs::write(path, text + "\n")
            .map_err(|e| VerifyError::CaseFile { path: path.to_path_buf(), problem: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::super::program::{case_seed, random_program};
    use super::*;
    use faultloop_proto::rng::Rng;

    #[test]
    fn case_requests_round_trip_through_json() {
        for k in 0..40 {
            let p = random_program(&mut Rng::new(case_seed(9, k)), 4, 8);
            let reqs: Vec<CaseRequest> = p.requests.iter().map(CaseRequest::from).collect();
            let json = serde_json::to_string(&reqs).unwrap();
            let back: Vec<CaseRequest> = serde_json::from_str(&json).unwrap();
            let again: Vec<Request> = back.iter().map(|r| r.to_request().unwrap()).collect();
            assert_eq!(again, p.requests);
        }
        let r: CaseRequest = serde_json::from_str(
            r#"{"op":"MATMUL","base":0,"m":1,"k":1,"n":1,"rot":[0,0],"a":"zz"}"#,
        )
        .unwrap();
        assert!(r.to_request().unwrap_err().contains("'zz'"));
    }
}
