//! Small server-rendered SVG charts for the dashboard: shares or means by sex with their
//! confidence intervals, and responses over time by sex. Each chart carries a `<title>` and
//! `<desc>` text alternative; every label is escaped.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 190.0;
const BAR: f64 = 12.0;
const FEMALE: &str = "#7b2d8b";
const MALE: &str = "#1f6f5c";

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The words inside the charts, in the planner's language.
pub struct ChartWords {
    pub women: String,
    pub men: String,
    pub suppressed: String,
    /// The legend for the whiskers.
    pub interval: String,
}

/// One row of a chart: a label and, per sex, an estimate with its interval (`None` when
/// suppressed or not computable).
pub struct Row {
    pub label: String,
    pub female: Option<(f64, Option<[f64; 2]>)>,
    pub male: Option<(f64, Option<[f64; 2]>)>,
}

/// Horizontal bars by sex with interval whiskers; `max` is the axis end (1 for shares).
/// `id` must be unique on the page (it ties the chart to its title).
pub fn bars(
    words: &ChartWords,
    id: &str,
    title: &str,
    rows: &[Row],
    max: f64,
    percent: bool,
) -> String {
    let row_height = 2.0 * BAR + 14.0;
    let height = 30.0 + rows.len() as f64 * row_height + 20.0;
    let plot = WIDTH - LABEL_WIDTH - 60.0;
    let max = if max > 0.0 { max } else { 1.0 };
    let x = |v: f64| LABEL_WIDTH + (v / max).clamp(0.0, 1.0) * plot;
    let fmt = |v: f64| {
        if percent {
            format!("{:.0}%", v * 100.0)
        } else {
            format!("{v:.1}")
        }
    };
    let mut desc = String::new();
    let mut svg = String::new();
    for (i, row) in rows.iter().enumerate() {
        let top = 30.0 + i as f64 * row_height;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#1b1b1b">{}</text>"##,
            LABEL_WIDTH - 8.0,
            top + BAR + 2.0,
            escape(&truncate(&row.label, 30))
        );
        let sides = [
            (&row.female, FEMALE, &words.women),
            (&row.male, MALE, &words.men),
        ];
        for (k, (side, colour, name)) in sides.into_iter().enumerate() {
            let y = top + k as f64 * BAR;
            match side {
                Some((estimate, ci)) => {
                    let _ = write!(
                        svg,
                        r#"<rect x="{LABEL_WIDTH}" y="{y}" width="{:.1}" height="{}" fill="{colour}"/>"#,
                        x(*estimate) - LABEL_WIDTH,
                        BAR - 2.0
                    );
                    if let Some([lo, hi]) = ci {
                        let mid = y + BAR / 2.0 - 1.0;
                        let _ = write!(
                            svg,
                            r##"<line x1="{:.1}" x2="{:.1}" y1="{mid}" y2="{mid}" stroke="#1b1b1b" stroke-width="1.5"/>"##,
                            x(*lo),
                            x(*hi)
                        );
                    }
                    let _ = write!(
                        svg,
                        r##"<text x="{:.1}" y="{}" fill="#1b1b1b">{}</text>"##,
                        x(ci.map_or(*estimate, |c| c[1])) + 4.0,
                        y + BAR - 3.0,
                        fmt(*estimate)
                    );
                    let _ = write!(desc, "{} — {name}: {}; ", row.label, fmt(*estimate));
                }
                None => {
                    let _ = write!(
                        svg,
                        r##"<text x="{}" y="{}" fill="#555" font-style="italic">{}: {}</text>"##,
                        LABEL_WIDTH + 2.0,
                        y + BAR - 3.0,
                        escape(name),
                        escape(&words.suppressed)
                    );
                    let _ = write!(desc, "{} — {name}: {}; ", row.label, words.suppressed);
                }
            }
        }
    }
    let legend_y = height - 8.0;
    let _ = write!(
        svg,
        r##"<rect x="{LABEL_WIDTH}" y="{}" width="10" height="10" fill="{FEMALE}"/><text x="{}" y="{legend_y}">{}</text><rect x="{}" y="{}" width="10" height="10" fill="{MALE}"/><text x="{}" y="{legend_y}">{}</text><text x="{}" y="{legend_y}" fill="#555">{}</text>"##,
        legend_y - 9.0,
        LABEL_WIDTH + 14.0,
        escape(&words.women),
        LABEL_WIDTH + 100.0,
        legend_y - 9.0,
        LABEL_WIDTH + 114.0,
        escape(&words.men),
        LABEL_WIDTH + 200.0,
        escape(&words.interval)
    );
    format!(
        r#"<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" aria-labelledby="{id}" font-family="sans-serif" font-size="12"><title id="{id}">{}</title><desc>{}</desc>{svg}</svg>"#,
        escape(title),
        escape(&desc),
    )
}

/// Responses per day by sex as two lines; `desc` is the text alternative.
pub fn timeline(title: &str, desc: &str, days: &[(String, u64, u64)]) -> String {
    let height = 160.0;
    let plot_w = WIDTH - 70.0;
    let plot_h = height - 50.0;
    let max = days
        .iter()
        .map(|(_, f, m)| (*f).max(*m))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = if days.len() > 1 {
        plot_w / (days.len() - 1) as f64
    } else {
        0.0
    };
    let point = |i: usize, v: u64| {
        (
            50.0 + i as f64 * step,
            20.0 + plot_h - v as f64 / max * plot_h,
        )
    };
    let line = |pick: fn(&(String, u64, u64)) -> u64| {
        days.iter()
            .enumerate()
            .map(|(i, d)| {
                let (x, y) = point(i, pick(d));
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = days.first().map_or("", |d| d.0.as_str());
    let last = days.last().map_or("", |d| d.0.as_str());
    format!(
        r##"<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" aria-labelledby="tl" font-family="sans-serif" font-size="12"><title id="tl">{}</title><desc>{}</desc><polyline fill="none" stroke="{FEMALE}" stroke-width="2" points="{}"/><polyline fill="none" stroke="{MALE}" stroke-width="2" stroke-dasharray="5 3" points="{}"/><text x="50" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="45" y="24" text-anchor="end">{}</text><text x="45" y="{}" text-anchor="end">0</text></svg>"##,
        escape(title),
        escape(desc),
        line(|d| d.1),
        line(|d| d.2),
        height - 8.0,
        escape(first),
        WIDTH - 20.0,
        height - 8.0,
        escape(last),
        max,
        20.0 + plot_h
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_suppressed_bars_say_so() {
        let rows = [Row {
            label: "<script>x</script>".into(),
            female: Some((0.4, Some([0.3, 0.5]))),
            male: None,
        }];
        let words = ChartWords {
            women: "Жінки".into(),
            men: "Чоловіки".into(),
            suppressed: "приховано".into(),
            interval: "лінії: 95% інтервал".into(),
        };
        let svg = bars(&words, "t", "A & B", &rows, 1.0, true);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("<title id=\"t\">A &amp; B</title>"));
        assert!(svg.contains("Чоловіки: приховано"), "{svg}");
        assert!(svg.contains(">Жінки</text>") && svg.contains("лінії: 95% інтервал"));
        assert!(svg.contains("40%"));
    }
}
