//! Printing shared by the commands: JSON on stdout, status lines on stderr,
//! and the table lines several reports have in common.

use serde::{Serialize, Serializer};

/// `v` as pretty JSON on stdout (the `--json` output of every command).
pub fn print_json(v: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
}

/// [`print_json`] with every object's keys sorted, at every depth (the
/// output of `info`, `faults check` and `demo` has always been in that order).
pub fn print_json_sorted(v: &impl Serialize) {
    println!("{}", json_sorted(v));
}

/// `v` as pretty JSON with every object's keys sorted, at every depth (a
/// `serde_json::Value` map is ordered): what [`print_json_sorted`] prints.
pub fn json_sorted(v: &impl Serialize) -> String {
    let value = serde_json::to_value(v).expect("serialisable");
    serde_json::to_string_pretty(&value).expect("serialisable")
}

/// `#[serde(serialize_with = "sorted")]`: a field whose objects print with
/// sorted keys (a `serde_json::Value` map is ordered), as the `tmr` object
/// of `eval` and `retrain` always has.
pub fn sorted<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(v).map_err(serde::ser::Error::custom)?.serialize(s)
}

/// A status line on stderr, so stdout stays clean (JSON with `--json`).
pub fn note(msg: impl AsRef<str>) {
    eprintln!("{}", msg.as_ref());
}

/// The `device` table line: `sim:16x16 with faults f.json (1.6 % of PEs)`.
pub fn device_line(device: &str, faults: Option<&str>, fault_rate: f64) -> String {
    format!(
        "device       {device}{}",
        faults
            .map(|f| format!(" with faults {f} ({:.1} % of PEs)", 100.0 * fault_rate))
            .unwrap_or_default()
    )
}

/// A list of layer names as JSON text (`["fc1","fc3"]`), as the TMR lines print it.
pub fn names(v: &[String]) -> String {
    serde_json::to_string(v).expect("serialisable")
}
