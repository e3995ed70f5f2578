//! JUnit XML of a verify run, in the subset GitLab, Jenkins and GitHub
//! (test-report actions) all render: one `<testsuite>` per run, one
//! `<testcase>` per case, `<failure>` on the mismatching case, `<skipped>`
//! on the cases a failure stopped.

use std::fmt::Write as _;

use super::{CaseStatus, VerifyReport};

/// XML-escape text for attributes and element content.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// The report as a JUnit XML document.
pub fn junit_xml(r: &VerifyReport) -> String {
    let failures = r.cases.iter().filter(|c| matches!(c.status, CaseStatus::Failed)).count();
    let skipped = r.cases.iter().filter(|c| matches!(c.status, CaseStatus::Skipped)).count();
    let suite = format!("faultloop verify {} against {}", r.device, r.against);
    let class = format!("verify.{}", r.device.replace([':', '.', '/'], "_"));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"faultloop verify\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"{skipped}\" time=\"{:.3}\">",
        r.cases.len(),
        r.seconds
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"{skipped}\" time=\"{:.3}\">",
        esc(&suite),
        r.cases.len(),
        r.seconds
    );
    x.push_str("    <properties>\n");
    for (k, v) in [
        ("device", r.device.clone()),
        ("against", r.against.clone()),
        ("seed", r.seed.to_string()),
        ("shard", r.shard.to_string()),
    ] {
        let _ = writeln!(x, "      <property name=\"{k}\" value=\"{}\"/>", esc(&v));
    }
    x.push_str("    </properties>\n");
    for c in &r.cases {
        let name = format!("case {} (seed {:#018x})", c.case, c.case_seed);
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.4}\"",
            esc(&class),
            esc(&name),
            c.seconds
        );
        match &c.status {
            CaseStatus::Passed => {
                let _ = writeln!(x, "{open}/>");
            }
            CaseStatus::Skipped => {
                let _ = writeln!(x, "{open}>\n      <skipped message=\"not run: an earlier case failed\"/>\n    </testcase>");
            }
            CaseStatus::Failed => {
                let f = r.failure.as_ref().filter(|f| f.case == c.case);
                let (msg, body) = match f {
                    Some(f) => (f.message.clone(), f.details()),
                    None => ("mismatch".to_string(), String::new()),
                };
                let _ = writeln!(
                    x,
                    "{open}>\n      <failure message=\"{}\" type=\"mismatch\">{}</failure>\n    </testcase>",
                    esc(&msg),
                    esc(&body)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(esc("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot; ");
    }
}
