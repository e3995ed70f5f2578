//! `faultloop serve` against adversaries while a legitimate client works
//! beside them, every answer checked against the golden model: clients that
//! drop mid-frame, impossible lengths, 50 simultaneous connections, wrong and
//! empty tokens, and a slowloris handshake (dropped at the deadline, which is
//! set short here). The server's memory stays bounded.
use std::time::Duration;

use faultloop_device::testing::adversary::{run_adversaries, spawn_server, AdversaryOptions};

const TOKEN: &str = "adversary-test-token-42";

#[test]
fn the_bridge_survives_adversaries_and_the_legitimate_client_sees_no_wrong_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let deadline = Duration::from_millis(400);
    let (mut server, addr) =
        spawn_server(env!("CARGO_BIN_EXE_faultloop").as_ref(), "model:4x4", &token_file, deadline);
    let mut o = AdversaryOptions::new(addr, TOKEN, 4, 4);
    o.handshake_timeout = deadline;
    o.server_pid = Some(server.id());
    let rep = run_adversaries(&o);
    let _ = server.kill();
    let _ = server.wait();
    let table = serde_json::to_string_pretty(&rep).unwrap();

    // The legitimate client never sees a wrong answer, nor an error.
    assert!(rep.legit_requests >= 100, "{table}");
    assert_eq!((rep.legit_wrong, rep.legit_errors), (0, 0), "{table}");
    let row = |name: &str| rep.rows.iter().find(|r| r.attack == name).unwrap();
    // Every mid-frame dropper got in and left nothing behind.
    assert_eq!(row("drop mid-frame").answered("dropped by the client"), 100, "{table}");
    // Impossible lengths are answered at header time.
    assert_eq!(row("huge lengths").answered("BAD_LENGTH"), 100, "{table}");
    // 50 at once: the holder has the device; 15 more fit under the cap of 16
    // connections and get BUSY, the rest are refused (docs/protocol.md §6).
    let crowd = row("simultaneous connections");
    assert_eq!(crowd.answered("BUSY"), 15, "{table}");
    assert_eq!(crowd.answered("ERR too many connections"), 35, "{table}");
    // No bad token is ever accepted; each gets its reason.
    let tokens = row("wrong and empty tokens");
    assert_eq!(tokens.answered("ACCEPTED"), 0, "{table}");
    assert_eq!(tokens.answered("ERR wrong token"), 20, "{table}");
    assert_eq!(tokens.answered("ERR missing token"), 20, "{table}");
    // The slowloris is dropped by the whole-line deadline, not the line limit.
    assert_eq!(row("slowloris handshake").answered("ERR no handshake in time"), 1, "{table}");
    // Memory stays bounded: a model:4x4 server under all of this.
    let peak = rep.server_peak_rss_kib.expect("VmHWM of the server");
    assert!(peak < 256 * 1024, "server peak RSS {peak} KiB: {table}");
}
