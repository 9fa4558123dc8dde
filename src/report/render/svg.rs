//! Inline SVG charts for the HTML report: a horizontal bar chart and weekly trend lines. Plain
//! SVG elements with presentation attributes only (no script, no link, no font file), so they
//! print as vectors; every label is escaped.

use super::escape::{checked, esc};
use crate::report::display;

/// Line colours, in the order of the series (colour-blind friendly, readable in grey print).
pub const PALETTE: [&str; 8] = ["#d94801", "#2171b5", "#238b45", "#6a51a3", "#b8860b", "#525252", "#cb181d", "#0b8a8a"];

/// One bar: its label, its share (0..1) and where its value comes from.
pub struct Bar<'a> {
    /// Label left of the bar.
    pub label: &'a str,
    /// The share the bar shows.
    pub share: f64,
    /// `data-key` of the value printed at the end of the bar.
    pub key: String,
    /// `data-ptr` of that value.
    pub ptr: String,
}

/// A line of the trend chart: one value per week (none where withheld).
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Shares, one per week.
    pub points: Vec<Option<f64>>,
}

/// The smallest of 1%, 2%, 5%, 10%, 20%, 25%, 50%, 100% at or above `max`.
fn nice_ceiling(max: f64) -> f64 {
    [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0].into_iter().find(|c| *c >= max).unwrap_or(1.0)
}

/// A horizontal bar chart of shares.
pub fn bars(title: &str, bars: &[Bar<'_>]) -> String {
    const W: f64 = 720.0;
    const LABEL: f64 = 170.0;
    const AREA: f64 = 450.0;
    const ROW: f64 = 26.0;
    const TOP: f64 = 24.0;
    let h = TOP + ROW * bars.len() as f64 + 8.0;
    let top = nice_ceiling(bars.iter().map(|b| b.share).fold(0.0, f64::max));
    let mut s = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {W} {h:.0}\" width=\"{W}\" height=\"{h:.0}\" aria-label=\"{}\">\n",
        esc(title)
    );
    for i in 0..=4 {
        let t = top * i as f64 / 4.0;
        let x = LABEL + AREA * i as f64 / 4.0;
        s += &format!(
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#d0d7de\" stroke-width=\"1\"/>\
             <text x=\"{x:.1}\" y=\"14\" font-size=\"11\" text-anchor=\"middle\" fill=\"#5b6570\">{}</text>\n",
            TOP - 4.0,
            h - 4.0,
            display::percent(t)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let w = (AREA * b.share / top).clamp(0.0, AREA);
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\"{}>{}</text>\n",
            LABEL - 8.0,
            y + 17.0,
            esc(b.label),
            y + 5.0,
            ROW - 10.0,
            PALETTE[0],
            LABEL + w + 6.0,
            y + 17.0,
            checked(&b.key, &b.ptr, "percent"),
            display::percent(b.share)
        );
    }
    s + "</svg>\n"
}

/// Weekly lines of shares, one per series, with a legend; `weeks` are the x labels.
pub fn lines(title: &str, weeks: &[String], series: &[Series]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 190.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 34.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let max = series.iter().flat_map(|s| s.points.iter().flatten()).copied().fold(0.0, f64::max);
    let top = nice_ceiling(max);
    let x = |i: usize| if weeks.len() < 2 { LEFT + pw / 2.0 } else { LEFT + pw * i as f64 / (weeks.len() - 1) as f64 };
    let y = |v: f64| TOP + ph * (1.0 - (v / top).clamp(0.0, 1.0));
    let mut s = format!(
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" aria-label=\"{}\">\n",
        esc(title)
    );
    for i in 0..=4 {
        let v = top * i as f64 / 4.0;
        s += &format!(
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#d0d7de\" stroke-width=\"1\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6570\">{4}</text>\n",
            y(v),
            LEFT + pw,
            LEFT - 6.0,
            y(v) + 4.0,
            display::percent(v)
        );
    }
    for (i, w) in weeks.iter().enumerate() {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#5b6570\">{}</text>\n",
            x(i),
            H - BOTTOM + 18.0,
            esc(w)
        );
    }
    for (n, line) in series.iter().enumerate() {
        let colour = PALETTE[n % PALETTE.len()];
        // A withheld week breaks the line rather than joining across it.
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, s: &mut String| {
            if segment.len() > 1 {
                *s += &format!("<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n", segment.join(" "));
            }
            segment.clear();
        };
        for (i, p) in line.points.iter().enumerate() {
            match p {
                Some(v) => {
                    segment.push(format!("{:.1},{:.1}", x(i), y(*v)));
                    s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>\n", x(i), y(*v));
                }
                None => flush(&mut segment, &mut s),
            }
        }
        flush(&mut segment, &mut s);
        let ly = TOP + 8.0 + 20.0 * n as f64;
        s += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>\n",
            W - RIGHT + 16.0,
            ly - 2.0,
            W - RIGHT + 36.0,
            ly + 4.0,
            esc(&line.label)
        );
    }
    s + "</svg>\n"
}

/// Background and text colours of a heatmap cell for a share: white to dark orange over
/// 0..50% (50% and more are the darkest).
pub fn heat(share: f64) -> (String, &'static str) {
    let t = (share / 0.5).clamp(0.0, 1.0);
    let (from, to) = ([255.0, 245.0, 235.0], [166.0, 54.0, 3.0]);
    let c: Vec<u8> = (0..3).map(|i| (from[i] + (to[i] - from[i]) * t).round() as u8).collect();
    (format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]), if t > 0.55 { "#ffffff" } else { "#1b1f24" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_labels_and_scale() {
        let b = [Bar { label: "<b>&", share: 0.07, key: "k".into(), ptr: "/p".into() }];
        let svg = bars("t\"", &b);
        assert!(svg.contains("&lt;b&gt;&amp;") && !svg.contains("<b>"));
        assert!(svg.contains("aria-label=\"t&quot;\""));
        assert!(svg.contains(">7.0%</text>"));
        assert_eq!(nice_ceiling(0.07), 0.1);
        assert_eq!(nice_ceiling(0.0), 0.01);
        assert_eq!(nice_ceiling(3.0), 1.0);
        let l = lines("t", &["a".into(), "b".into(), "c".into()], &[Series { label: "<x>".into(), points: vec![Some(0.1), None, Some(0.2)] }]);
        assert!(!l.contains("<polyline"), "a gap leaves single points: no line across it");
        assert_eq!(l.matches("<circle").count(), 2);
        assert!(l.contains("&lt;x&gt;"));
        assert_eq!(heat(0.0), ("#fff5eb".to_string(), "#1b1f24"));
        assert_eq!(heat(0.9).0, "#a63603");
    }
}
