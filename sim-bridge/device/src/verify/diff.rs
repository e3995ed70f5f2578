//! Replies as raw bytes, and the first field in which two replies differ.

use std::time::{Duration, Instant};

use faultloop_proto::{
    decode, Decoded, Link, Request, Status, COUNTERS_LEN, FRAME_OVERHEAD, INFO_LEN, REPLY_SYNC,
};

/// What one device answered to one request: the raw bytes of its reply
/// frame (and anything it sent after it), or why there was none.
pub type Reply = Result<Vec<u8>, String>;

/// Send one frame and collect the reply: bytes until they hold a whole
/// frame (or bytes that cannot start one), or `timeout`. Garbage, a bad
/// frame or extra bytes stay in the bytes, so they show up as a difference;
/// only a failed link or silence is an `Err`.
pub fn exchange(link: &mut dyn Link, frame: &[u8], timeout: Duration) -> Reply {
    link.send(frame).map_err(|e| format!("send: {e}"))?;
    read_reply(link, timeout)
}

/// The reply half of [`exchange`]; also the tests' raw-frame reader.
pub fn read_reply(link: &mut dyn Link, timeout: Duration) -> Reply {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match decode(&buf, REPLY_SYNC, usize::MAX / 2) {
            Decoded::Frame { .. } | Decoded::Skip { .. } => return Ok(buf),
            Decoded::Incomplete => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(if buf.is_empty() {
                format!("no reply within {timeout:?}")
            } else {
                format!("an incomplete reply within {timeout:?}: {:02x?}", head(&buf))
            });
        }
        let n = link.recv(&mut chunk, deadline - now).map_err(|e| format!("recv: {e}"))?;
        if n == 0 && link.sim_cycles().is_some() {
            // The Verilated device returns 0 only when it is idle: nothing more comes.
            if buf.is_empty() {
                return Err("no reply (the device went idle)".into());
            }
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn head(b: &[u8]) -> &[u8] {
    &b[..b.len().min(32)]
}

/// The first difference between two replies to `req`, by field name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    /// E.g. `MATMUL reply row 3 col 1`, `COUNTERS reply cycles`, `status`.
    pub field: String,
    /// The field's value on each side, as text.
    pub device: String,
    pub against: String,
}

impl FieldDiff {
    /// `FIELD: DEV VALUE, AGAINST VALUE`, with the devices' short names.
    pub fn describe(&self, device: &str, against: &str) -> String {
        format!("{}: {device} {}, {against} {}", self.field, self.device, self.against)
    }
}

fn status_name(code: u8) -> String {
    match Status::from_u8(code) {
        Some(s) => s.name().to_string(),
        None => format!("{code:#04x}"),
    }
}

/// `None` when the replies are identical.
pub fn first_difference(req: &Request, device: &Reply, against: &Reply) -> Option<FieldDiff> {
    if device == against {
        return None;
    }
    let d = |field: &str, a: String, b: String| FieldDiff {
        field: field.into(),
        device: a,
        against: b,
    };
    let (a, b) = match (device, against) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let show = |r: &Reply| match r {
                Ok(bytes) => format!("{} bytes {:02x?}", bytes.len(), head(bytes)),
                Err(e) => e.clone(),
            };
            return Some(d("reply", show(a), show(b)));
        }
    };
    let frame = |x: &[u8]| match decode(x, REPLY_SYNC, usize::MAX / 2) {
        Decoded::Frame { frame, consumed } => Some((frame, consumed)),
        _ => None,
    };
    let (fa, fb) = match (frame(a), frame(b)) {
        (Some(fa), Some(fb)) => (fa, fb),
        (x, y) => {
            let show = |f: &Option<_>, bytes: &[u8]| match f {
                Some(_) => "a good frame".to_string(),
                None => format!("bad bytes {:02x?}", head(bytes)),
            };
            return Some(d("reply frame", show(&x, a), show(&y, b)));
        }
    };
    let ((fa, ca), (fb, cb)) = (fa, fb);
    if fa.code != fb.code {
        return Some(d("status", status_name(fa.code), status_name(fb.code)));
    }
    if fa.seq != fb.seq {
        return Some(d("seq", fa.seq.to_string(), fb.seq.to_string()));
    }
    let (pa, pb) = (&fa.payload, &fb.payload);
    if pa.len() != pb.len() {
        return Some(d("payload length", pa.len().to_string(), pb.len().to_string()));
    }
    let name = req.name();
    if let Some(i) = (0..pa.len()).find(|&i| pa[i] != pb[i]) {
        let word = |p: &[u8], at: usize, len: usize| {
            let mut v = [0u8; 8];
            v[..len].copy_from_slice(&p[at..at + len]);
            u64::from_le_bytes(v)
        };
        let (field, at, len, signed) = match req {
            Request::Info if pa.len() == INFO_LEN => {
                const F: [(&str, usize, usize); 8] = [
                    ("proto_version", 0, 1),
                    ("rtl_version", 1, 1),
                    ("rows", 2, 1),
                    ("cols", 3, 1),
                    ("wmem_bytes", 4, 4),
                    ("buf_bytes", 8, 4),
                    ("acc_words", 12, 4),
                    ("features", 16, 4),
                ];
                let &(f, at, len) = F.iter().rev().find(|f| f.1 <= i).unwrap();
                (f.to_string(), at, len, false)
            }
            Request::Counters if pa.len() == COUNTERS_LEN => {
                (["cycles", "macs", "flips"][i / 8].to_string(), i / 8 * 8, 8, false)
            }
            Request::Matmul { n, .. } if *n > 0 && pa.len() % 4 == 0 => {
                let j = i / 4;
                (format!("row {} col {}", j / *n as usize, j % *n as usize), j * 4, 4, true)
            }
            _ => (format!("byte {i}"), i, 1, false),
        };
        let show = |p: &[u8]| {
            let v = word(p, at, len);
            if signed {
                (v as u32 as i32).to_string()
            } else {
                v.to_string()
            }
        };
        return Some(d(&format!("{name} reply {field}"), show(pa), show(pb)));
    }
    // Same frame: what differs comes after it.
    let tail = |x: &[u8], c: usize| {
        format!("{} bytes after the reply {:02x?}", x.len() - c, head(&x[c..]))
    };
    debug_assert_eq!(ca, FRAME_OVERHEAD + pa.len());
    Some(d("after the reply", tail(a, ca), tail(b, cb)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultloop_proto::encode_reply;

    fn matmul(m: u16, n: u16) -> Request {
        Request::Matmul { base: 0, m, k: 1, n, rot: (0, 0), a: vec![0; m as usize] }
    }

    fn words(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn names_the_matmul_element_counter_info_field_and_status() {
        let req = matmul(2, 3);
        let a = encode_reply(0, 7, &words(&[1, 2, 3, 4, 5, 6]));
        let b = encode_reply(0, 7, &words(&[1, 2, 3, 4, -5, 6]));
        assert_eq!(first_difference(&req, &Ok(a.clone()), &Ok(a.clone())), None);
        let f = first_difference(&req, &Ok(a.clone()), &Ok(b)).unwrap();
        assert_eq!(f.describe("sim", "model"), "MATMUL reply row 1 col 1: sim 5, model -5");

        let c = |cy: u64, fl: u64| {
            let mut p = cy.to_le_bytes().to_vec();
            p.extend_from_slice(&0u64.to_le_bytes());
            p.extend_from_slice(&fl.to_le_bytes());
            encode_reply(0, 1, &p)
        };
        let f = first_difference(&Request::Counters, &Ok(c(9, 2)), &Ok(c(9, 3))).unwrap();
        assert_eq!(f.describe("sim", "model"), "COUNTERS reply flips: sim 2, model 3");

        let info = faultloop_proto::Info::sim(4, 4);
        let mut other = info.clone();
        other.acc_words += 1;
        let ia = encode_reply(0, 1, &info.to_bytes());
        let ib = encode_reply(0, 1, &other.to_bytes());
        let f = first_difference(&Request::Info, &Ok(ia), &Ok(ib)).unwrap();
        assert_eq!(f.field, "INFO reply acc_words");

        let refused = encode_reply(4, 7, &[]);
        let f = first_difference(&req, &Ok(a), &Ok(refused)).unwrap();
        assert_eq!(f.describe("sim", "model"), "status: sim OK, model OUT_OF_RANGE");
        let f = first_difference(&req, &Err("no reply".into()), &Ok(vec![0x5a])).unwrap();
        assert_eq!(f.field, "reply");
    }
}
