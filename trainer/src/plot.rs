//! A small hand-written SVG line chart (no plotting crate): accuracy per
//! epoch for the demo (clean and faulty baselines as dashed lines, the
//! retrained curve with markers).
use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// CSS colour.
    pub color: String,
    pub dashed: bool,
    pub markers: bool,
}

impl Series {
    pub fn new(name: &str, color: &str, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), points, color: color.into(), dashed: false, markers: true }
    }

    /// A horizontal line at `y` over `[x0, x1]`, dashed.
    pub fn level(name: &str, color: &str, y: f64, x0: f64, x1: f64) -> Series {
        Series {
            name: name.into(),
            points: vec![(x0, y), (x1, y)],
            color: color.into(),
            dashed: true,
            markers: false,
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// "Nice" tick step for a range.
fn tick_step(span: f64, want: f64) -> f64 {
    let raw = (span / want).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// An SVG line chart, 720×420, axes with ticks, legend at the bottom right.
/// `y_percent` multiplies y values by 100 in the labels.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_percent: bool,
) -> String {
    let (w, h) = (720.0, 420.0);
    let (l, r, t, b) = (70.0, 20.0, 40.0, 55.0);
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.1).max(0.01);
    y0 -= pad;
    y1 += pad;
    let ystep = tick_step(y1 - y0, 6.0);
    y0 = (y0 / ystep).floor() * ystep;
    y1 = (y1 / ystep).ceil() * ystep;
    let xstep = tick_step(x1 - x0, 8.0).max(if x1 - x0 >= 1.0 { 1.0 } else { 0.0 });
    let px = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
    let py = |y: f64| t + (y1 - y) / (y1 - y0) * (h - t - b);
    let mut s = svg_start(w, h, title);
    // Grid and ticks.
    let mut y = y0;
    while y <= y1 + ystep * 1e-6 {
        let yy = py(y);
        let label = if y_percent { format!("{:.0}", y * 100.0) } else { format!("{y:.3}") };
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            w - r,
            l - 6.0,
            yy + 4.0
        );
        y += ystep;
    }
    let mut x = (x0 / xstep).ceil() * xstep;
    while x <= x1 + xstep * 1e-6 {
        let xx = px(x);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            h - b,
            h - b + 5.0,
            h - b + 19.0,
            if xstep >= 1.0 { format!("{x:.0}") } else { format!("{x:.2}") }
        );
        x += xstep;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{l}" y="{t}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        w - l - r,
        h - t - b
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        l + (w - l - r) / 2.0,
        h - 12.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        t + (h - t - b) / 2.0,
        t + (h - t - b) / 2.0,
        esc(y_label)
    );
    // Lines.
    for se in series {
        let path: Vec<String> =
            se.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let dash = if se.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            esc(&se.color)
        );
        if se.markers {
            for &(x, y) in &se.points {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                    px(x),
                    py(y),
                    esc(&se.color)
                );
            }
        }
    }
    // Legend.
    let lx = w - r - 210.0;
    let mut ly = h - b - 14.0 - 18.0 * (series.len() as f64 - 1.0);
    let _ = writeln!(
        s,
        r##"<rect x="{:.1}" y="{:.1}" width="200" height="{:.1}" fill="white" stroke="#aaa"/>"##,
        lx - 8.0,
        ly - 14.0,
        18.0 * series.len() as f64 + 6.0
    );
    for se in series {
        let dash = if se.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            ly - 4.0,
            lx + 24.0,
            ly - 4.0,
            esc(&se.color),
            lx + 30.0,
            ly,
            esc(&se.name)
        );
        ly += 18.0;
    }
    s.push_str("</svg>\n");
    s
}

/// A heatmap: one row per `rows` label (top to bottom), one column per
/// `cols` label, `values[row][col]` in 0–1 shown as a percentage and
/// coloured from red (the floor or below) to green (`top` and above);
/// cells in `outlined` (`(row, col)`) get a thick black border. NaN cells
/// are grey.
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub cols: &'a [String],
    pub rows: &'a [String],
    pub values: &'a [Vec<f64>],
    /// The colour scale's ends (values, 0–1).
    pub floor: f64,
    pub top: f64,
    pub outlined: &'a [(usize, usize)],
    /// A line under the title (e.g. the floor and percentile).
    pub note: &'a str,
}

/// An SVG document of `w`×`h` on white with `title` centred on top: the
/// opening every chart here shares (the caller closes it with `</svg>`).
fn svg_start(w: f64, h: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    s
}

/// The SVG of a [`Heatmap`].
pub fn heatmap(m: &Heatmap<'_>) -> String {
    let (nr, nc) = (m.rows.len().max(1), m.cols.len().max(1));
    let (cw, ch) = (72.0, 34.0);
    let (l, r, t, b) = (80.0, 20.0, 62.0, 55.0);
    // Wide enough for the note line too (about 6 px a character).
    let w = (l + r + cw * nc as f64).max(6.2 * m.note.chars().count() as f64 + 20.0);
    let h = t + b + ch * nr as f64;
    let mut s = svg_start(w, h, m.title);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="42" text-anchor="middle" fill="#555">{}</text>"##,
        w / 2.0,
        esc(m.note)
    );
    let span = (m.top - m.floor).max(1e-9);
    for (i, row) in m.values.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let (x, y) = (l + cw * j as f64, t + ch * i as f64);
            // Below the floor red, darker the lower; from the floor up
            // yellow (60°) to green (120°) at the top.
            let fill = if v.is_finite() && v < m.floor {
                format!("hsl(0,70%,{:.0}%)", 40.0 + 30.0 * (v / m.floor.max(1e-9)).clamp(0.0, 1.0))
            } else if v.is_finite() {
                format!("hsl({:.0},65%,60%)", 60.0 + 60.0 * ((v - m.floor) / span).clamp(0.0, 1.0))
            } else {
                "#ccc".into()
            };
            let _ = writeln!(
                s,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{cw}" height="{ch}" fill="{fill}" stroke="#fff"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                x + cw / 2.0,
                y + ch / 2.0 + 4.0,
                if v.is_finite() { format!("{:.1}", 100.0 * v) } else { "–".into() }
            );
        }
    }
    for &(i, j) in m.outlined {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#000" stroke-width="3"/>"##,
            l + cw * j as f64 + 1.5,
            t + ch * i as f64 + 1.5,
            cw - 3.0,
            ch - 3.0
        );
    }
    for (j, c) in m.cols.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            l + cw * (j as f64 + 0.5),
            t + ch * nr as f64 + 17.0,
            esc(c)
        );
    }
    for (i, rw) in m.rows.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            l - 6.0,
            t + ch * (i as f64 + 0.5) + 4.0,
            esc(rw)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        l + cw * nc as f64 / 2.0,
        h - 12.0,
        esc(m.x_label)
    );
    let mid = t + ch * nr as f64 / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="16" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 16 {mid:.1})">{}</text>"#,
        esc(m.y_label)
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_every_series_and_is_well_formed() {
        let svg = line_chart(
            "accuracy <per> epoch",
            "epoch",
            "accuracy (%)",
            &[
                Series::level("clean", "#2a2", 0.88, 0.0, 3.0),
                Series::level("faulty", "#c22", 0.6, 0.0, 3.0),
                Series::new(
                    "retrained",
                    "#22c",
                    vec![(0.0, 0.6), (1.0, 0.8), (2.0, 0.86), (3.0, 0.87)],
                ),
            ],
            true,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("accuracy &lt;per&gt; epoch"));
        assert!(!svg.contains("NaN"));
        // Empty input does not panic.
        let _ = line_chart("", "", "", &[], false);
    }

    #[test]
    fn heatmap_has_every_cell_and_the_outlines() {
        let cols = vec!["0".to_string(), "1".into(), "2".into()];
        let rows = vec!["1 %".to_string(), "5 %".into()];
        let values = vec![vec![0.5, 0.8, 0.9], vec![0.2, f64::NAN, 0.85]];
        let svg = heatmap(&Heatmap {
            title: "map <x>",
            x_label: "epochs",
            y_label: "rate",
            cols: &cols,
            rows: &rows,
            values: &values,
            floor: 0.5,
            top: 0.9,
            outlined: &[(0, 1), (1, 2)],
            note: "floor",
        });
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("hsl(").count(), 5);
        assert_eq!(svg.matches(r#"stroke-width="3""#).count(), 2);
        assert!(svg.contains(">85.0<") && svg.contains("map &lt;x&gt;"));
        assert!(!svg.contains("NaN"));
    }
}
