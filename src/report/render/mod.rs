//! Renderings of a [`Report`]: self-contained HTML (inline CSS and SVG, prints to A4),
//! Markdown (GitHub tables), CSV (one long table) and JSON (the report itself).
//!
//! All four are pure functions of the report: the same report gives the same bytes. None of
//! them reads a clock, a locale or an environment variable.
//!
//! **Checkable numbers (HTML).** Every number the HTML shows sits in an element with two
//! attributes: `data-key`, a stable name built from the row's labels (`cat/finance/messaging/
//! unsanctioned/share`: table, department, labels, metric; see [`html`]), and `data-ptr`, the
//! JSON pointer (RFC 6901) of the value in the JSON rendering of the same report
//! (`/survey/categories/3/share`), with `data-fmt` saying how it is printed (`percent`,
//! `count`, `bytes`, `int`, `text`). The Chromium test reads the rendered page, resolves each
//! pointer in the JSON and compares.

pub mod csv;
mod escape;
pub mod html;
pub mod markdown;
mod svg;

use super::model::Report;

/// An output format of `shadowtap report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A self-contained HTML page (no script, no external resource), for screens and PDF.
    Html,
    /// Markdown with GitHub tables.
    Markdown,
    /// CSV, one long table (see [`csv`] for the columns), RFC 4180.
    Csv,
    /// The report as pretty-printed JSON.
    Json,
}

impl Format {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Markdown => "md",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Html => html::render(report),
        Format::Markdown => markdown::render(report),
        Format::Csv => csv::render(report),
        Format::Json => json(report),
    }
}

/// The report as pretty JSON with a final newline; fields in declaration order.
pub fn json(report: &Report) -> String {
    // Serialising a report cannot fail: every map key is a string and serde_json writes
    // non-finite numbers as null. The fallback keeps the function total all the same.
    match serde_json::to_string_pretty(report) {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(e) => format!("{{\"error\": {}}}\n", serde_json::Value::String(e.to_string())),
    }
}

/// A change in percentage points as printed (HTML and Markdown): `+3.5 pp`, `-1.0 pp`, `0.0 pp`.
/// A catalog yes/no attribute in words.
pub(crate) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A service's risk rating in a table cell: "75 high", or "not rated" (an input of an earlier
/// build, or a source without the catalog).
pub(crate) fn risk_cell(x: &crate::report::input::ServiceInfo) -> String {
    x.risk.as_ref().map_or_else(|| "not rated".to_string(), |r| format!("{} {}", r.score, r.level.as_str()))
}

/// The terms of a rating in words ("messaging 30, disappearing messages 25"): what the score
/// adds up.
pub(crate) fn risk_terms(r: &crate::classify::risk::Rating) -> String {
    r.terms.iter().map(|t| format!("{} {:+}", risk_factor_words(&t.factor), t.points)).collect::<Vec<_>>().join(", ")
}

/// A rating factor's key in words.
fn risk_factor_words(factor: &str) -> String {
    match factor {
        "disappearing_messages" => "disappearing messages".into(),
        "not_e2ee" => "not end-to-end encrypted".into(),
        "vendor_outside_adequate" => "vendor outside the adequate countries".into(),
        "vendor_country_unknown" => "no vendor country".into(),
        "corporate" => "organisation's own tenant possible".into(),
        other => other.strip_prefix("category:").map_or_else(|| other.replace('_', " "), |c| format!("category {}", crate::report::model::category_label(c))),
    }
}

/// The rating method in sentences, with the weights, for Methodology; none when the source
/// did not record the weights.
pub(crate) fn risk_method(w: Option<&crate::classify::risk::Weights>) -> Vec<String> {
    let Some(w) = w else {
        return vec!["Risk rating: the source does not record the weights, so services are not rated.".into()];
    };
    let a = &w.attributes;
    let categories = w.category.iter().map(|(c, p)| format!("{} {p}", crate::report::model::category_label(c))).collect::<Vec<_>>().join(", ");
    let countries = w.adequate.countries.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    vec![
        format!(
            "A service's risk is the sum of its category's points and the points of each attribute that applies, capped to 0 to {}: low below {}, medium from {}, high from {}. The weights are the configuration's (`rules/risk.toml` as shipped), open so that anyone can redo a rating from the service table.",
            crate::classify::risk::MAX_SCORE,
            w.levels.medium,
            w.levels.medium,
            w.levels.high
        ),
        format!("Category points: {categories}."),
        format!(
            "Attribute points: disappearing messages {:+} (records are lost); not end-to-end encrypted {:+} (the vendor can read content); vendor outside the adequate countries {:+}; no vendor country named {:+}; organisation's own tenant possible {:+}.",
            a.disappearing_messages, a.not_e2ee, a.vendor_outside_adequate, a.vendor_country_unknown, a.corporate
        ),
        format!("Adequate countries (the EU and EEA, and those with an EU adequacy decision): {countries}."),
    ]
}

pub(crate) fn delta_pp(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v };
    format!("{}{v:.1} pp", if v > 0.0 { "+" } else { "" })
}

/// The sentence above a comparison table (HTML and Markdown), before escaping.
pub(crate) fn comparison_intro(c: &crate::report::compare::Comparison, now: &str) -> String {
    format!(
        "Share of active devices that used unsanctioned services, {now} against {} ({}), and the change in percentage \
         points. Both periods under the same minimum group size k = {}: a group below it in either period is withheld.",
        crate::report::display::period_words(c.earlier_period.from, c.earlier_period.to),
        c.earlier_source,
        c.k
    )
}

/// The sentence that opens "Destinations outside the catalog" (HTML and Markdown).
pub(crate) fn uncatalogued_intro(r: &Report) -> String {
    format!(
        "Named destinations that no service of the catalog matched, by registrable domain (the public suffix and one \
         label), organisation-wide, with the distinct devices that used each over the period. They are candidate \
         services to add to the catalog: until then their use is only counted as uncatalogued. Only domains used by \
         at least k = {} devices are named.",
        r.k
    )
}

/// The sentences on what "Destinations outside the catalog" does not name (HTML and Markdown),
/// or none when it leaves nothing out.
pub(crate) fn uncatalogued_folded(r: &Report) -> Option<String> {
    let f = &r.uncatalogued_folded;
    let mut out = Vec::new();
    if f.beyond_top_domains > 0 {
        out.push(format!(
            "{} further {} of at least k devices ({}) are not listed.",
            crate::report::display::count(f.beyond_top_domains),
            if f.beyond_top_domains == 1 { "domain" } else { "domains" },
            crate::report::display::counted(f.beyond_top_flows, "flow", "flows"),
        ));
    }
    if f.below_k_domains > 0 {
        out.push(format!(
            "{} further {} used by fewer than k devices ({}): not named.",
            crate::report::display::count(f.below_k_domains),
            if f.below_k_domains == 1 { "domain was" } else { "domains were" },
            crate::report::display::counted(f.below_k_flows, "flow", "flows"),
        ));
    }
    (!out.is_empty()).then(|| out.join(" "))
}

/// What became of a damaged capture file, in words (HTML and Markdown).
pub(crate) fn damage_text(d: crate::report::input::CaptureDamage) -> &'static str {
    match d {
        crate::report::input::CaptureDamage::Skipped => "skipped from the damage on",
        crate::report::input::CaptureDamage::Truncated => "truncated: used up to the cut",
    }
}

/// The methodology's line on flows never answered, around their count and share already
/// formatted (and escaped) by the renderer; the words are the same in every format.
pub(crate) fn unanswered_line(m: &crate::report::model::Methodology, flows: &str, share: &str) -> String {
    let how = if m.unanswered_as_use { "counted as use too (count_unanswered)" } else { "spoofed or blocked connection attempts, not counted as use" };
    let noun = if m.unanswered_flows == 1 { "flow" } else { "flows" };
    format!("{flows} {noun} ({share} of the flows seen): {how}")
}

/// Text whose `quoted` parts are code: `plain` renders the text between them, `code` the quoted
/// parts (an unpaired backtick is plain text). The model's sentences quote identifiers this way.
pub(crate) fn code_spans(text: &str, plain: impl Fn(&str) -> String, code: impl Fn(&str) -> String) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && i + 1 < parts.len() {
            out += &code(part);
        } else {
            if i % 2 == 1 {
                out += &plain("`");
            }
            out += &plain(part);
        }
    }
    out
}

/// The period's days in ISO form: `2026-11-23` for one day, else `2026-11-01 to 2026-11-15`.
pub(crate) fn iso_range(from: time::Date, to: time::Date) -> String {
    if from == to { from.to_string() } else { format!("{from} to {to}") }
}

/// "1 day", "31 days".
pub(crate) fn days(n: impl std::fmt::Display + PartialEq<u32>) -> String {
    if n == 1 { "1 day".to_string() } else { format!("{n} days") }
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn quoted_identifiers_become_code() {
        let html = |t: &str| super::code_spans(t, |p| p.to_uppercase(), |c| format!("<code>{c}</code>"));
        assert_eq!(html("`unmapped` addresses"), "<code>unmapped</code> ADDRESSES");
        assert_eq!(html("a `b` c `d"), "A <code>b</code> C `D");
    }

    use super::*;
    use crate::report::model::{tests::input, Report, ReportOptions};

    pub(crate) fn report() -> Report {
        let i = input();
        Report::build(&i, &ReportOptions::for_input(&i))
    }

    #[test]
    fn every_format_is_deterministic() {
        for f in [Format::Html, Format::Markdown, Format::Csv, Format::Json] {
            assert_eq!(render(&report(), f), render(&report(), f), "{f:?}");
        }
    }

    #[test]
    fn every_format_names_damaged_captures_and_none_when_none() {
        use crate::report::input::{CaptureDamage, DamagedCapture};
        for f in [Format::Html, Format::Markdown, Format::Csv, Format::Json] {
            assert!(!render(&report(), f).contains("amaged capture"), "{f:?}: nothing said when none was");
        }
        let mut i = input();
        i.damaged_captures = vec![
            DamagedCapture { file: "x<1>.pcap".into(), damage: CaptureDamage::Skipped, reason: "not a capture".into() },
            DamagedCapture { file: "cut.pcap".into(), damage: CaptureDamage::Truncated, reason: "the last record is cut short".into() },
        ];
        let r = Report::build(&i, &ReportOptions::for_input(&i));
        assert_eq!(r.methodology.damaged_captures[0].file, "cut.pcap", "sorted");
        let html = render(&r, Format::Html);
        assert!(html.contains("<td>x&lt;1&gt;.pcap</td><td>skipped from the damage on</td><td>not a capture</td>"), "{html}");
        let md = render(&r, Format::Markdown);
        assert!(md.contains("### Damaged capture files") && md.contains("cut.pcap | truncated: used up to the cut |"), "{md}");
        let csv = render(&r, Format::Csv);
        assert!(csv.contains("damaged_capture,,,,,,,cut.pcap,damage,truncated\r\n"), "{csv}");
        let json = render(&r, Format::Json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["methodology"]["damaged_captures"][1]["damage"], "skipped");
        for text in [&html, &md, &csv, &json] {
            assert!(text.contains("Damaged capture files: 1 could not be read"), "the note, in every format");
        }
        let old: crate::report::input::ReportInput = serde_json::from_str(&serde_json::to_string(&input()).unwrap()).unwrap();
        assert!(old.damaged_captures.is_empty(), "an input saved without the field loads");
    }

    #[test]
    fn every_format_states_the_flows_never_answered() {
        let mut i = input();
        i.departments[0].unanswered_flows.insert("telegram".into(), 1_372);
        let r = Report::build(&i, &ReportOptions::for_input(&i));
        let html = render(&r, Format::Html);
        assert!(html.contains("<dt>Never answered</dt>"), "html");
        assert!(html.contains("data-key=\"meth/unanswered_flows\" data-ptr=\"/methodology/unanswered_flows\""), "html marks the count");
        assert!(html.contains(">1,372</span> flows ("), "html");
        let md = render(&r, Format::Markdown);
        assert!(md.contains("| Never answered | 1,372 flows (87.3% of the flows seen): spoofed or blocked connection attempts, not counted as use |"), "{md}");
        let csv = render(&r, Format::Csv);
        assert!(csv.contains("\r\nmethodology,,,,,,,,unanswered_flows,1372\r\n"), "{csv}");
        assert!(csv.contains("\r\nmethodology,,,,,,,,mostly_unanswered,true\r\n"), "{csv}");
        let json = render(&r, Format::Json);
        assert!(json.contains("\"unanswered_flows\": 1372"), "{json}");
        for text in [&html, &md, &csv, &json] {
            assert!(text.contains("1,372 flows were never answered by their server"), "the note, in every format");
        }
    }

    #[test]
    fn every_format_says_no_data_on_page_one() {
        let i = crate::report::model::tests::empty_input();
        let r = Report::build(&i, &ReportOptions::for_input(&i));
        let md = render(&r, Format::Markdown);
        let html = render(&r, Format::Html);
        let csv = render(&r, Format::Csv);
        let json = render(&r, Format::Json);
        for text in [&md, &html, &csv, &json] {
            assert!(!text.contains("No unsanctioned use"), "never all clear: {text}");
        }
        let findings = &md[md.find("## Findings").unwrap()..md.find("## Top unsanctioned").unwrap()];
        assert!(findings.contains("No data for this period") && findings.contains("nothing can be concluded"), "{findings}");
        let page1 = &html[html.find("id=\"findings\"").unwrap()..];
        let page1 = &page1[..page1.find("</section>").unwrap()];
        assert!(page1.contains("id=\"no-data\">No data for this period"), "{page1}");
        assert!(csv.contains("\r\nreport,_all,,,,,,,no_data,true\r\n"), "{csv}");
        assert!(csv.contains("\r\nheadline,_all,,,,,,,text,\"No data for this period"), "{csv}");
        assert!(json.contains("\"no_data\": true"), "{json}");
        let full = report();
        assert!(render(&full, Format::Json).contains("\"no_data\": false"));
        assert!(!render(&full, Format::Markdown).contains("No data for this period"));
    }

    #[test]
    fn every_format_warns_of_half_coverage_on_page_one() {
        let r = report(); // one sensor up half of the period
        let sentence = "the sensors covered 50.0% of the period";
        let md = render(&r, Format::Markdown);
        let findings = &md[md.find("## Findings").unwrap()..md.find("## Top unsanctioned").unwrap()];
        assert!(findings.contains("> **Warning.** Partial coverage: the sensors covered 50.0% of the period") && findings.contains("lower bound"), "{findings}");
        let html = render(&r, Format::Html);
        let warn = &html[html.find("id=\"coverage-warning\"").expect("banner")..];
        let warn = &warn[..warn.find("</p>").unwrap()];
        assert!(warn.contains("data-key=\"coverage_share\" data-ptr=\"/coverage_share\""), "{warn}");
        assert!(warn.contains(">50.0%</span> of the period") && warn.contains("lower bound"), "{warn}");
        assert!(html.find("id=\"coverage-warning\"").unwrap() < html.find("id=\"methodology\"").unwrap(), "on page 1");
        let csv = render(&r, Format::Csv);
        assert!(csv.contains("\r\nreport,_all,,,,,,,coverage_share,0.5000\r\n"), "{csv}");
        assert!(csv.contains(sentence), "{csv}");
        let json = render(&r, Format::Json);
        assert!(json.contains("\"coverage_share\": 0.5,") && json.contains("\"coverage_warning\": \"Partial coverage: the sensors covered 50.0%"), "{json}");
        let mut i = input();
        i.coverage.sensors[0].uptime_secs = 31 * 86_400;
        let full = Report::build(&i, &ReportOptions::for_input(&i));
        for f in [Format::Html, Format::Markdown, Format::Csv, Format::Json] {
            assert!(!render(&full, f).contains("Partial coverage"), "{f:?}");
        }
        assert!(render(&full, Format::Json).contains("\"coverage_warning\": null"));
    }

    #[test]
    fn every_format_lists_a_configured_department_not_observed() {
        let mut i = input();
        i.departments_configured = vec!["finance".into(), "hr".into(), "legal".into()];
        let r = Report::build(&i, &ReportOptions::for_input(&i));
        let md = render(&r, Format::Markdown);
        assert!(md.contains("| hr | 0 (not observed) |"), "{md}");
        let html = render(&r, Format::Html);
        assert!(html.contains("<tr><td>hr <small>(not observed)</small></td><td class=\"n\" data-key=\"dept/hr/active_hosts\""), "{html}");
        let csv = render(&r, Format::Csv);
        assert!(csv.contains("\r\ndepartment,hr,,,,,,,active_hosts,0\r\ndepartment,hr,,,,,,,hosts_exact,true\r\ndepartment,hr,,,,,,,observed,false\r\n"), "{csv}");
        assert!(csv.contains("\r\ndepartment,finance,,,,,,,observed,true\r\n"), "{csv}");
        let one = Report::build(&i, &ReportOptions { department: Some("hr".into()), ..ReportOptions::for_input(&i) });
        for f in [Format::Html, Format::Markdown] {
            let text = render(&one, f);
            assert!(text.contains("Department hr had no traffic in this period (not observed)") && !text.contains("No unsanctioned use"), "{f:?}: {text}");
        }
        let json = render(&r, Format::Json);
        assert!(json.contains("\"department\": \"hr\",\n      \"active_hosts\": 0,\n      \"hosts_exact\": true,\n      \"observed\": false"), "{json}");
    }

    #[test]
    fn json_round_trips_to_the_same_report() {
        let r = report();
        let text = json(&r);
        assert!(text.ends_with("}\n"));
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert!(text.contains("\"from\": \"2026-10-01\""), "dates as text");
    }
}
