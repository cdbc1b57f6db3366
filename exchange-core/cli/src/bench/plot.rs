//! The scale plot of `unsilo bench --plot FILE`: line charts as a self-contained SVG, side by side, so the cost
//! of growth (subscriptions, connectors) is visible in `docs/benchmarks.md` without a plotting toolchain.

use std::fmt::Write as _;

/// One line of a chart: a name for the legend, an SVG colour and its points (x, y), both positive.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// SVG colour.
    pub colour: &'static str,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart: title, axis labels and lines; axes are logarithmic (base 10 on y, base 2 or 10 on x).
pub struct Chart {
    /// Title above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The x values that get a tick and a label.
    pub x_ticks: Vec<f64>,
    /// Lines.
    pub series: Vec<Series>,
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 110.0;

/// Compact tick text: 1.2k, 340k, 1.1M.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    /// The chart as an SVG group, its top-left corner at (`x0`, 0).
    fn render(&self, x0: f64, out: &mut String) {
        let points = self.series.iter().flat_map(|s| &s.points);
        let (mut y_min, mut y_max) = (f64::MAX, f64::MIN);
        for &(_, y) in points.clone() {
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        let x_min = self.x_ticks.iter().copied().fold(f64::MAX, f64::min);
        let x_max = self.x_ticks.iter().copied().fold(f64::MIN, f64::max);
        if !(y_min > 0.0 && y_max >= y_min && x_min > 0.0 && x_max > x_min) {
            return;
        }
        // Whole decades on y, so the grid lines are round numbers.
        let (y_lo, y_hi) = (
            y_min.log10().floor(),
            y_max.log10().ceil().max(y_min.log10().floor() + 1.0),
        );
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| x0 + LEFT + (x.ln() - x_min.ln()) / (x_max.ln() - x_min.ln()) * plot_w;
        let sy = |y: f64| TOP + plot_h - (y.log10() - y_lo) / (y_hi - y_lo) * plot_h;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="22" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"#,
            x0 + LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#888"/>"##,
            x0 + LEFT
        );
        let mut decade = y_lo;
        while decade <= y_hi {
            for step in [1.0, 2.0, 5.0] {
                let v = step * 10f64.powf(decade);
                if v.log10() > y_hi + 1e-9 {
                    break;
                }
                let y = sy(v);
                let _ = writeln!(
                    out,
                    r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                    x0 + LEFT,
                    x0 + LEFT + plot_w,
                    x0 + LEFT - 6.0,
                    y + 4.0,
                    short(v)
                );
            }
            decade += 1.0;
        }
        for &t in &self.x_ticks {
            let x = sx(t);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                short(t)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            x0 + LEFT + plot_w / 2.0,
            TOP + plot_h + 34.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            out,
            r#"<text transform="translate({:.1},{:.1}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
            x0 + 16.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (i, s) in self.series.iter().enumerate() {
            let path: Vec<String> = s
                .points
                .iter()
                .filter(|(x, y)| *x > 0.0 && *y > 0.0)
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                path.join(" "),
                s.colour
            );
            for p in &path {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    out,
                    r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{}"/>"#,
                    s.colour
                );
            }
            let ly = TOP + plot_h + 54.0 + 16.0 * i as f64;
            let _ = writeln!(
                out,
                r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                x0 + LEFT,
                x0 + LEFT + 24.0,
                s.colour,
                x0 + LEFT + 30.0,
                ly + 4.0,
                escape(&s.name)
            );
        }
    }
}

/// `charts` side by side as one SVG document, with `caption` below.
pub fn svg(charts: &[Chart], caption: &str) -> String {
    let width = WIDTH * charts.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{:.0}" viewBox="0 0 {width:.0} {:.0}" font-family="sans-serif">"#,
        HEIGHT + 20.0,
        HEIGHT + 20.0
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, chart) in charts.iter().enumerate() {
        chart.render(WIDTH * i as f64, &mut out);
    }
    let _ = writeln!(
        out,
        r##"<text x="10" y="{:.0}" font-size="10" fill="#555">{}</text>"##,
        HEIGHT + 12.0,
        escape(caption)
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_every_point_and_names_every_line() {
        let chart = Chart {
            title: "Routing <scale>".into(),
            x_label: "subscriptions".into(),
            y_label: "records/s".into(),
            x_ticks: vec![1.0, 10.0, 100.0, 1000.0],
            series: vec![
                Series {
                    name: "indexed".into(),
                    colour: "#1f77b4",
                    points: vec![(1.0, 900e3), (10.0, 700e3), (100.0, 500e3), (1000.0, 270e3)],
                },
                Series {
                    name: "every filter".into(),
                    colour: "#d62728",
                    points: vec![(1.0, 900e3), (1000.0, 17e3)],
                },
            ],
        };
        let doc = svg(&[chart], "caption & notes");
        assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
        assert_eq!(doc.matches("<circle").count(), 6);
        assert_eq!(doc.matches("<polyline").count(), 2);
        assert!(doc.contains("Routing &lt;scale&gt;") && doc.contains("caption &amp; notes"));
        assert!(doc.contains(">indexed<") && doc.contains(">every filter<"));
        assert!(doc.contains(">1.0M<") || doc.contains(">1M<") || doc.contains(">500k<"));
    }
}
