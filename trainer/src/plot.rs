//! Charts drawn with plotters, as SVG or PNG: line charts (accuracy per
//! epoch, TMR accuracy against budget, the fleet's per-chip charts), the
//! resilience heatmap and the fault-map heatmap of an array.
//!
//! A chart is a value that implements [`Chart`]; [`render`] draws it in a
//! [`Format`], [`save`] picks the format from the file name (`.svg`, `.png`).
//! Text is laid out with an embedded font (a Latin-1 cut of DejaVu Sans,
//! trainer/fonts/), so PNG and SVG come out the same on any machine, fonts
//! installed or not. [`line_chart`] and [`heatmap`] are the SVG shortcuts the
//! demo, resilience and fleet code call.
use std::path::{Path, PathBuf};
use std::sync::Once;

use faultloop_proto::faultmap::FaultMap;
use faultloop_proto::Site;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The embedded font (17 KB; its license is trainer/fonts/LICENSE).
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
/// The family every text style here names (the one [`FONT`] is registered as).
const FAMILY: &str = "sans-serif";

/// Register [`FONT`] once per process, before anything measures text.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            // The bytes are compiled in: only a corrupt checkout gets here.
            panic!("the embedded font trainer/fonts/DejaVuSans-subset.ttf does not parse");
        }
    });
}

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: cannot tell the plot format from the name (it must end in .svg or .png)", path.display())]
    Format { path: PathBuf },
    /// plotters failed (a backend error; drawing in memory should not).
    #[error("drawing the chart: {0}")]
    Draw(String),
    #[error("encoding the PNG: {0}")]
    Png(#[from] png::EncodingError),
    #[error("writing the plot {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// The format a file name asks for: `.svg` or `.png` (any case).
    pub fn from_path(path: &Path) -> Result<Format, PlotError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError::Format { path: path.into() }),
        }
    }
}

/// Something [`render`] can draw: a size in pixels and the drawing itself,
/// on any plotters backend.
pub trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draw on `area` (the whole canvas).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// `chart` as an SVG document or a PNG file's bytes.
pub fn render(chart: &impl Chart, format: Format) -> Result<Vec<u8>, PlotError> {
    register_font();
    let (w, h) = chart.size();
    match format {
        Format::Svg => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
                chart.draw(&root).map_err(PlotError::Draw)?;
                root.present().map_err(|e| PlotError::Draw(err(e)))?;
            }
            Ok(s.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; 3 * w as usize * h as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                chart.draw(&root).map_err(PlotError::Draw)?;
                root.present().map_err(|e| PlotError::Draw(err(e)))?;
            }
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&rgb)?;
            Ok(out)
        }
    }
}

/// Write `chart` to `path` in the format its extension names.
pub fn save(chart: &impl Chart, path: &Path) -> Result<(), PlotError> {
    let bytes = render(chart, Format::from_path(path)?)?;
    std::fs::write(path, bytes).map_err(|source| PlotError::Io { path: path.into(), source })
}

/// `chart` as SVG text. Drawing into a string with the embedded font has no
/// failure left but a bug, hence the panic.
fn svg_string(chart: &impl Chart) -> String {
    let bytes = render(chart, Format::Svg).expect("an SVG drawn in memory");
    String::from_utf8(bytes).expect("plotters writes UTF-8")
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// `#rgb` or `#rrggbb` (anything else draws grey).
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

/// `#rgb` / `#rrggbb` as a colour; grey for anything else.
fn color(css: &str) -> RGBColor {
    let hex = css.trim().trim_start_matches('#');
    let digit = |i: usize, n: usize| u8::from_str_radix(hex.get(i..i + n)?, 16).ok();
    let rgb = match hex.len() {
        6 => (|| Some((digit(0, 2)?, digit(2, 2)?, digit(4, 2)?)))(),
        3 => (|| Some((digit(0, 1)? * 17, digit(1, 1)? * 17, digit(2, 1)? * 17)))(),
        _ => None,
    };
    let (r, g, b) = rgb.unwrap_or((128, 128, 128));
    RGBColor(r, g, b)
}

/// A line chart: axes, a light grid, the series (dashed or solid, with or
/// without markers) and a legend of every series' name.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// Label y values ×100 (accuracies in 0–1 shown as percent).
    pub y_percent: bool,
}

/// The x and y ranges of `series` (finite points only), padded so no line
/// sits on the frame; a unit square when there is nothing to show.
fn ranges(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.1).max(0.01);
    ((x0, x1), (y0 - pad, y1 + pad))
}

impl Chart for LineChart<'_> {
    fn size(&self) -> (u32, u32) {
        (760, 440)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        area.fill(&WHITE).map_err(err)?;
        let ((x0, x1), (y0, y1)) = ranges(self.series);
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, (FAMILY, 17))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let whole_x = x1 - x0 >= 2.0
            && self
                .series
                .iter()
                .all(|s| s.points.iter().all(|p| !p.0.is_finite() || p.0.fract() == 0.0));
        let x_fmt = |x: &f64| if whole_x { format!("{x:.0}") } else { format!("{x:.2}") };
        let pct = self.y_percent;
        let y_fmt = |y: &f64| if pct { format!("{:.0}", 100.0 * y) } else { format!("{y:.3}") };
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_labels(if whole_x { ((x1 - x0) as usize + 1).min(12) } else { 8 })
            .label_style((FAMILY, 13))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(err)?;
        for s in self.series {
            let c = color(&s.color);
            let style = c.stroke_width(2);
            let pts: Vec<(f64, f64)> =
                s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
            let legend = move |(x, y): (i32, i32)| PathElement::new([(x, y), (x + 24, y)], style);
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 7, 5, style))
                    .map_err(err)?
                    .label(s.name.as_str())
                    .legend(legend);
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(err)?
                    .label(s.name.as_str())
                    .legend(legend);
            }
            if s.markers {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                    .map_err(err)?;
            }
        }
        if !self.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(170, 170, 170))
                .label_font((FAMILY, 13))
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

/// An SVG line chart (see [`LineChart`]); `y_percent` multiplies y values
/// by 100 in the labels.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_percent: bool,
) -> String {
    svg_string(&LineChart { title, x_label, y_label, series, y_percent })
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

/// A grid of labelled cells: what [`Heatmap`] and [`FaultMapPlot`] draw.
struct Grid {
    title: String,
    note: String,
    x_label: String,
    y_label: String,
    cols: Vec<String>,
    rows: Vec<String>,
    /// Cell size in pixels.
    cell: (u32, u32),
    /// `(row, col)` → fill, text, outlined, crossed.
    cells: Vec<GridCell>,
    /// Swatches under the grid: colour and name.
    legend: Vec<(RGBColor, String)>,
}

struct GridCell {
    row: usize,
    col: usize,
    fill: RGBColor,
    text: String,
    outlined: bool,
    crossed: bool,
}

const LEFT: u32 = 90;
const RIGHT: u32 = 24;
const TOP: u32 = 66;

impl Grid {
    fn bottom(&self) -> u32 {
        56 + if self.legend.is_empty() { 0 } else { 30 }
    }
}

impl Chart for Grid {
    fn size(&self) -> (u32, u32) {
        let (nr, nc) = (self.rows.len().max(1) as u32, self.cols.len().max(1) as u32);
        // Wide enough for the note and the title too (about 7 px a character).
        let text = 7 * self.note.chars().count().max(self.title.chars().count()) as u32 + 40;
        ((LEFT + RIGHT + self.cell.0 * nc).max(text), TOP + self.bottom() + self.cell.1 * nr)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        area.fill(&WHITE).map_err(err)?;
        let (w, _) = self.size();
        let centre = Pos::new(HPos::Center, VPos::Center);
        let title = TextStyle::from((FAMILY, 17).into_font()).pos(centre);
        area.draw(&Text::new(self.title.as_str(), (w as i32 / 2, 20), title)).map_err(err)?;
        let note =
            TextStyle::from((FAMILY, 13).into_font()).color(&RGBColor(85, 85, 85)).pos(centre);
        area.draw(&Text::new(self.note.as_str(), (w as i32 / 2, 42), note)).map_err(err)?;
        let (nr, nc) = (self.rows.len().max(1), self.cols.len().max(1));
        let cw = self.cell.0 as i32;
        let grid_w = cw * nc as i32;
        // Centre the grid when the title made the canvas wider.
        let left = LEFT as i32 + ((w as i32 - LEFT as i32 - RIGHT as i32 - grid_w) / 2).max(0);
        let mut chart = ChartBuilder::on(area)
            .margin_top(TOP)
            .margin_left(left - LEFT as i32 + 8)
            .margin_right(RIGHT)
            .margin_bottom(self.bottom() - 52)
            .x_label_area_size(48)
            .y_label_area_size(LEFT - 8)
            .build_cartesian_2d((0..nc as i32).into_segmented(), (0..nr as i32).into_segmented())
            .map_err(err)?;
        // Row 0 at the top: the y axis counts up, so row r sits at nr-1-r.
        let y_of = |r: usize| (nr - 1 - r) as i32;
        let col_fmt = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(j) => self.cols.get(*j as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let row_fmt = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(y) if (*y as usize) < nr => {
                self.rows.get(nr - 1 - *y as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc)
            .y_labels(nr)
            .x_label_formatter(&col_fmt)
            .y_label_formatter(&row_fmt)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style((FAMILY, 14))
            .draw()
            .map_err(err)?;
        let exact = |j: usize, y: i32| (SegmentValue::Exact(j as i32), SegmentValue::Exact(y));
        chart
            .draw_series(self.cells.iter().map(|c| {
                let (j, y) = (c.col, y_of(c.row));
                Rectangle::new([exact(j, y), exact(j + 1, y + 1)], c.fill.filled())
            }))
            .map_err(err)?;
        // Thin white gaps between cells.
        chart
            .draw_series(self.cells.iter().map(|c| {
                let (j, y) = (c.col, y_of(c.row));
                Rectangle::new([exact(j, y), exact(j + 1, y + 1)], WHITE.stroke_width(1))
            }))
            .map_err(err)?;
        let plot = chart.plotting_area();
        for c in self.cells.iter().filter(|c| c.outlined) {
            // A closed 3 px path, 2 px in (plotters' rectangles stroke 1 px only).
            let (x, y) = plot.map_coordinate(&exact(c.col, y_of(c.row) + 1));
            let (x1, y1) = plot.map_coordinate(&exact(c.col + 1, y_of(c.row)));
            let (x0, y0, x1, y1) = (x + 2, y + 2, x1 - 2, y1 - 2);
            let corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)];
            area.draw(&PathElement::new(corners, BLACK.stroke_width(3))).map_err(err)?;
        }
        for c in self.cells.iter().filter(|c| c.crossed) {
            // The cell's corners in pixels, 4 px in.
            let (x, y) = plot.map_coordinate(&exact(c.col, y_of(c.row) + 1));
            let (x1, y1) = plot.map_coordinate(&exact(c.col + 1, y_of(c.row)));
            let (x1, y1) = (x1 - 4, y1 - 4);
            let (x, y) = (x + 4, y + 4);
            let pen = BLACK.stroke_width(2);
            area.draw(&PathElement::new([(x, y), (x1, y1)], pen)).map_err(err)?;
            area.draw(&PathElement::new([(x, y1), (x1, y)], pen)).map_err(err)?;
        }
        let label = TextStyle::from((FAMILY, 13).into_font()).pos(centre);
        for c in self.cells.iter().filter(|c| !c.text.is_empty()) {
            let mid = (SegmentValue::CenterOf(c.col as i32), SegmentValue::CenterOf(y_of(c.row)));
            plot.draw(&Text::new(c.text.as_str(), mid, label.clone())).map_err(err)?;
        }
        // Legend swatches along the bottom edge.
        let (_, h) = self.size();
        let mut x = left;
        let sw = TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (c, name) in &self.legend {
            let y = h as i32 - 16;
            area.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled())).map_err(err)?;
            area.draw(&Text::new(name.as_str(), (x + 19, y), sw.clone())).map_err(err)?;
            x += 19 + 8 * name.chars().count() as i32 + 18;
        }
        Ok(())
    }
}

impl Heatmap<'_> {
    fn grid(&self) -> Grid {
        let span = (self.top - self.floor).max(1e-9);
        let mut cells = Vec::new();
        for (i, row) in self.values.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                // Below the floor red, darker the lower; from the floor up
                // yellow (60°) to green (120°) at the top.
                let fill = if v.is_finite() && v < self.floor {
                    let l = 0.40 + 0.30 * (v / self.floor.max(1e-9)).clamp(0.0, 1.0);
                    HSLColor(0.0, 0.70, l).to_rgba()
                } else if v.is_finite() {
                    let hue = 60.0 + 60.0 * ((v - self.floor) / span).clamp(0.0, 1.0);
                    HSLColor(hue / 360.0, 0.65, 0.60).to_rgba()
                } else {
                    RGBColor(204, 204, 204).to_rgba()
                };
                let RGBAColor(r, g, b, _) = fill;
                cells.push(GridCell {
                    row: i,
                    col: j,
                    fill: RGBColor(r, g, b),
                    text: if v.is_finite() { format!("{:.1}", 100.0 * v) } else { "–".into() },
                    outlined: self.outlined.contains(&(i, j)),
                    crossed: false,
                });
            }
        }
        Grid {
            title: self.title.into(),
            note: self.note.into(),
            x_label: self.x_label.into(),
            y_label: self.y_label.into(),
            cols: self.cols.to_vec(),
            rows: self.rows.to_vec(),
            cell: (72, 34),
            cells,
            legend: Vec::new(),
        }
    }
}

impl Chart for Heatmap<'_> {
    fn size(&self) -> (u32, u32) {
        self.grid().size()
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        self.grid().draw(area)
    }
}

/// The SVG of a [`Heatmap`].
pub fn heatmap(m: &Heatmap<'_>) -> String {
    svg_string(m)
}

/// What one PE of a fault-map plot shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeMark {
    pub row: usize,
    pub col: usize,
    /// The sites with a stuck bit (code order, no repeats).
    pub sites: Vec<Site>,
    /// `(bit, value)` of every stuck bit over all sites, ascending.
    pub stuck: Vec<(u32, u8)>,
    pub bypassed: bool,
}

impl PeMark {
    /// The cell's text: site letters, then the stuck bits as `bit=value`
    /// (`P7=1`, `AW2=0,5=1`), or the count when more than two.
    pub fn label(&self) -> String {
        let sites: String = self
            .sites
            .iter()
            .map(|s| match s {
                Site::Psum => 'P',
                Site::Act => 'A',
                Site::Weight => 'W',
            })
            .collect();
        let bits = match self.stuck.len() {
            0 => String::new(),
            1 | 2 => {
                self.stuck.iter().map(|(b, v)| format!("{b}={v}")).collect::<Vec<_>>().join(",")
            }
            n => format!(" {n} bits"),
        };
        format!("{sites}{bits}")
    }
}

/// Every PE of `map` worth marking: those with a stuck bit and those
/// bypassed (the map's list plus `extra_bypass`), by (row, col).
pub fn pe_marks(map: &FaultMap, extra_bypass: &[[usize; 2]]) -> Vec<PeMark> {
    let mut marks: std::collections::BTreeMap<(usize, usize), PeMark> = Default::default();
    let blank = |(row, col): (usize, usize)| PeMark {
        row,
        col,
        sites: Vec::new(),
        stuck: Vec::new(),
        bypassed: false,
    };
    for f in map.faults.iter().filter(|f| f.stuck_at_0 | f.stuck_at_1 != 0) {
        let m = marks.entry((f.row, f.col)).or_insert_with(|| blank((f.row, f.col)));
        if !m.sites.contains(&f.site) {
            m.sites.push(f.site);
        }
        for bit in 0..64 {
            if f.stuck_at_0 >> bit & 1 == 1 {
                m.stuck.push((bit, 0));
            }
            if f.stuck_at_1 >> bit & 1 == 1 {
                m.stuck.push((bit, 1));
            }
        }
    }
    for &[row, col] in map.bypass.iter().chain(extra_bypass) {
        marks.entry((row, col)).or_insert_with(|| blank((row, col))).bypassed = true;
    }
    let mut out: Vec<PeMark> = marks.into_values().collect();
    for m in &mut out {
        m.sites.sort_by_key(|s| *s as u8);
        m.stuck.sort_unstable();
        m.stuck.dedup();
    }
    out
}

/// The fault-map heatmap: the array as a grid of PEs, each faulty PE
/// coloured by its site (several sites: brown) and labelled with its stuck
/// bits, each bypassed PE crossed out.
pub struct FaultMapPlot<'a> {
    pub map: &'a FaultMap,
    /// Bypassed PEs on top of the map's own list (e.g. a checkpoint's).
    pub bypass: &'a [[usize; 2]],
    /// The title (e.g. the map's file name).
    pub title: &'a str,
}

const SITE_COLORS: [(Site, RGBColor, &str); 3] = [
    (Site::Psum, RGBColor(214, 39, 40), "psum"),
    (Site::Act, RGBColor(255, 127, 14), "act"),
    (Site::Weight, RGBColor(148, 103, 189), "weight"),
];
const MIXED: RGBColor = RGBColor(140, 86, 75);
const HEALTHY: RGBColor = RGBColor(226, 236, 226);

impl FaultMapPlot<'_> {
    fn grid(&self) -> Grid {
        let note = self.note();
        let (rows, cols) = (self.map.array.rows, self.map.array.cols);
        let marks = pe_marks(self.map, self.bypass);
        let mut cells: Vec<GridCell> = (0..rows)
            .flat_map(|r| (0..cols).map(move |c| (r, c)))
            .map(|(row, col)| GridCell {
                row,
                col,
                fill: HEALTHY,
                text: String::new(),
                outlined: false,
                crossed: false,
            })
            .collect();
        for m in marks.iter().filter(|m| m.row < rows && m.col < cols) {
            let cell = &mut cells[m.row * cols + m.col];
            cell.fill = match m.sites.as_slice() {
                [] => HEALTHY,
                [s] => SITE_COLORS.iter().find(|c| c.0 == *s).map_or(MIXED, |c| c.1),
                _ => MIXED,
            };
            cell.text = m.label();
            cell.crossed = m.bypassed;
        }
        let mut legend: Vec<(RGBColor, String)> =
            SITE_COLORS.iter().map(|(_, c, n)| (*c, n.to_string())).collect();
        legend.push((MIXED, "several sites".into()));
        legend.push((HEALTHY, "healthy; × = bypassed".into()));
        Grid {
            title: self.title.into(),
            note,
            x_label: "column".into(),
            y_label: "row".into(),
            cols: (0..cols).map(|c| c.to_string()).collect(),
            rows: (0..rows).map(|r| r.to_string()).collect(),
            cell: (68, 32),
            cells,
            legend,
        }
    }

    fn note(&self) -> String {
        let marks = pe_marks(self.map, self.bypass);
        format!(
            "{}x{} array: {} faulty PEs ({:.1} %), {} bypassed; label: sites, bit=stuck value",
            self.map.array.rows,
            self.map.array.cols,
            self.map.faulty_pes(),
            100.0 * self.map.fault_rate(),
            marks.iter().filter(|m| m.bypassed).count()
        )
    }
}

impl Chart for FaultMapPlot<'_> {
    fn size(&self) -> (u32, u32) {
        self.grid().size()
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        self.grid().draw(area)
    }
}

/// One evaluation for [`tmr_series`]: the fault map it ran under (`None`:
/// fault-free), its TMR budget (% extra MACs; 0 without TMR) and accuracy.
#[derive(Debug, Clone, PartialEq)]
pub struct TmrPoint {
    pub faults: Option<String>,
    pub budget_pct: f64,
    pub accuracy: f64,
}

/// The series of "TMR accuracy against budget": one line per fault map
/// (points sorted by budget), and each fault-free accuracy as a dashed level
/// over the budgets shown.
pub fn tmr_series(points: &[TmrPoint]) -> Vec<Series> {
    const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for p in points {
        lo = lo.min(p.budget_pct);
        hi = hi.max(p.budget_pct);
    }
    if lo > hi {
        return Vec::new();
    }
    let mut maps: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    let mut out = Vec::new();
    for p in points {
        match &p.faults {
            None => {
                out.push(Series::level("fault-free", "#2a8a2a", p.accuracy, lo, hi.max(lo + 1.0)))
            }
            Some(f) => match maps.iter_mut().find(|m| m.0 == f) {
                Some(m) => m.1.push((p.budget_pct, p.accuracy)),
                None => maps.push((f, vec![(p.budget_pct, p.accuracy)])),
            },
        }
    }
    out.truncate(1);
    for (i, (name, mut pts)) in maps.into_iter().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.push(Series::new(name, COLORS[i % COLORS.len()], pts));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultloop_proto::faultmap::Fault;

    /// The PNG's width and height from its IHDR chunk, after checking the
    /// signature and that the chunk is IHDR.
    pub(crate) fn png_size(png: &[u8]) -> (u32, u32) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&png[12..16], b"IHDR");
        let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    /// Decode `png` (8-bit RGB) and count the pixels that are not white.
    fn ink(png: &[u8]) -> usize {
        let mut r = png::Decoder::new(png).read_info().expect("a PNG that decodes");
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).expect("its pixels decode");
        buf[..info.buffer_size()].chunks(3).filter(|p| p != &[255, 255, 255]).count()
    }

    /// Well formed enough for a viewer: one root `<svg>`, every element
    /// closed. A tiny tag matcher (the SVG backend writes no comments,
    /// CDATA or doctype).
    fn assert_well_formed(svg: &str) {
        assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let j = rest[i..].find('>').expect("every tag closes") + i;
            let tag = &rest[i + 1..j];
            rest = &rest[j + 1..];
            if tag.starts_with('?') {
                continue;
            }
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            if let Some(_closing) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(!svg.contains("NaN"));
    }

    /// The text of every `<text>` element, trimmed.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>').map(|(_, r)| r.split('<').next().unwrap_or("")))
            .map(|t| t.trim().to_string())
            .collect()
    }

    fn demo_series() -> Vec<Series> {
        vec![
            Series::level("fault-free", "#2a8a2a", 0.88, 0.0, 3.0),
            Series::level("faulty, not retrained", "#c22", 0.6, 0.0, 3.0),
            Series::new(
                "retrained",
                "#22c",
                vec![(0.0, 0.6), (1.0, 0.8), (2.0, 0.86), (3.0, 0.87)],
            ),
        ]
    }

    #[test]
    fn line_chart_svg_is_well_formed_and_names_every_series() {
        let series = demo_series();
        let svg = line_chart("accuracy <per> epoch", "epoch", "accuracy (%)", &series, true);
        assert_well_formed(&svg);
        for s in &series {
            assert!(texts(&svg).contains(&s.name), "{}", s.name);
        }
        assert!(svg.contains("accuracy &lt;per&gt; epoch"));
        // One marker per point of the marked series.
        assert_eq!(svg.matches("<circle").count(), 4);
        // Percent labels on the y axis (0.6–0.88 shown as 60–88).
        let t = texts(&svg);
        assert!(t.iter().any(|x| x == "70" || x == "80"), "percent ticks: {t:?}");
        // Empty input does not panic.
        assert_well_formed(&line_chart("", "", "", &[], false));
    }

    #[test]
    fn png_follows_the_extension_decodes_and_is_not_blank() {
        let series = demo_series();
        let chart =
            LineChart { title: "t", x_label: "x", y_label: "y", series: &series, y_percent: true };
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        save(&chart, &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(png_size(&bytes), chart.size());
        let (w, h) = chart.size();
        // Lines, text and axes: well over 1 % of the canvas, well under all of it.
        let n = ink(&bytes);
        assert!(n > (w * h) as usize / 100 && n < (w * h) as usize / 2, "{n} ink pixels");
        assert!(!dir.path().join("a.svg").exists(), "no SVG beside the PNG");
        let svg = dir.path().join("a.SVG");
        save(&chart, &svg).unwrap();
        assert_well_formed(&std::fs::read_to_string(&svg).unwrap());
        let e = save(&chart, &dir.path().join("a.jpg")).unwrap_err();
        assert!(e.to_string().contains("a.jpg") && e.to_string().contains(".png"), "{e}");
    }

    #[test]
    fn tmr_series_is_a_line_per_map_over_the_budgets() {
        let pt = |f: Option<&str>, b, a| TmrPoint {
            faults: f.map(Into::into),
            budget_pct: b,
            accuracy: a,
        };
        let s = tmr_series(&[
            pt(Some("a.json"), 100.0, 0.8),
            pt(Some("b.json"), 0.0, 0.5),
            pt(None, 0.0, 0.89),
            pt(Some("a.json"), 0.0, 0.6),
            pt(Some("a.json"), 50.0, 0.78),
        ]);
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fault-free", "a.json", "b.json"]);
        assert_eq!(s[0].points, [(0.0, 0.89), (100.0, 0.89)]);
        assert_eq!(s[1].points, [(0.0, 0.6), (50.0, 0.78), (100.0, 0.8)]);
        assert!(tmr_series(&[]).is_empty());
    }

    #[test]
    fn heatmap_has_every_cell_and_the_outlines() {
        let cols = vec!["0".to_string(), "1".into(), "2".into()];
        let rows = vec!["1 %".to_string(), "5 %".into()];
        let values = vec![vec![0.5, 0.8, 0.9], vec![0.2, f64::NAN, 0.85]];
        let m = Heatmap {
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
        };
        let svg = heatmap(&m);
        assert_well_formed(&svg);
        for v in ["50.0", "80.0", "90.0", "20.0", "–", "85.0", "1 %", "5 %", "epochs", "rate"] {
            assert!(texts(&svg).iter().any(|t| t == v), "{v}");
        }
        assert!(svg.contains("map &lt;x&gt;"));
        assert_eq!(svg.matches(r#"stroke-width="3""#).count(), 2, "two outlined cells");
        let png = render(&m, Format::Png).unwrap();
        assert_eq!(png_size(&png), m.size());
        assert!(ink(&png) > 0);
    }

    fn fault(row: usize, col: usize, site: Site, sa0: u64, sa1: u64) -> Fault {
        Fault { row, col, site, stuck_at_0: sa0, stuck_at_1: sa1 }
    }

    #[test]
    fn fault_map_plot_marks_every_faulty_and_bypassed_pe() {
        let mut map = FaultMap::empty(4, 5);
        map.faults = vec![
            fault(0, 1, Site::Psum, 0, 1 << 7),
            fault(2, 3, Site::Act, 1 << 2, 0),
            fault(2, 3, Site::Weight, 0, 1 << 5),
            fault(3, 0, Site::Weight, 0b111, 0),
            // An all-zero mask is no fault.
            fault(1, 1, Site::Psum, 0, 0),
        ];
        map.bypass = vec![[0, 1]];
        let extra = [[3, 4]];
        let marks = pe_marks(&map, &extra);
        let at = |r, c| marks.iter().find(|m| (m.row, m.col) == (r, c));
        assert_eq!(marks.len(), 4);
        assert_eq!(at(0, 1).unwrap().label(), "P7=1");
        assert!(at(0, 1).unwrap().bypassed);
        assert_eq!(at(2, 3).unwrap().label(), "AW2=0,5=1");
        assert_eq!(at(3, 0).unwrap().label(), "W 3 bits");
        assert!(at(3, 4).unwrap().bypassed && at(3, 4).unwrap().sites.is_empty());
        assert!(at(1, 1).is_none());

        let plot = FaultMapPlot { map: &map, bypass: &extra, title: "chip" };
        let svg = String::from_utf8(render(&plot, Format::Svg).unwrap()).unwrap();
        assert_well_formed(&svg);
        for label in ["P7=1", "AW2=0,5=1", "W 3 bits"] {
            assert_eq!(texts(&svg).iter().filter(|t| *t == label).count(), 1, "{label}");
        }
        // Two strokes (2 px; the axes are 1 px) per bypassed PE.
        assert_eq!(
            svg.split("<polyline").skip(1).filter(|e| e.contains(r#"stroke-width="2""#)).count(),
            2 * 2
        );
        assert!(svg.contains("3 faulty PEs") && svg.contains("2 bypassed"), "note");
        let png = render(&plot, Format::Png).unwrap();
        assert_eq!(png_size(&png), plot.size());
        assert!(ink(&png) > 0);
    }
}
