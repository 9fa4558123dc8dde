//! The report as Markdown: the sections of the HTML page as GitHub tables (no charts), for a
//! wiki, a ticket or a pull request. Labels are escaped for Markdown and for the HTML that
//! Markdown renderers let through.

use crate::report::display;
use crate::report::input::ALL_DEPARTMENTS;
use crate::report::model::{category_label, Names, Report, UsageLine, NOT_OBSERVED, NO_DATA_TEXT};

/// Escapes text for a Markdown table cell: Markdown punctuation gets a backslash, HTML's
/// `<`, `>` and `&` become entities, line breaks become spaces.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' | '\n' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn dept(n: &Names, d: &str) -> String {
    if d == ALL_DEPARTMENTS {
        "**Organisation**".into()
    } else {
        esc(n.department(d))
    }
}

fn table(head: &[&str], right: usize, rows: Vec<Vec<String>>) -> String {
    let mut s = format!("| {} |\n|", head.join(" | "));
    for i in 0..head.len() {
        s += if i + right >= head.len() { " ---: |" } else { " --- |" };
    }
    s += "\n";
    for r in rows {
        s += &format!("| {} |\n", r.join(" | "));
    }
    s + "\n"
}

fn usage(n: &Names, title: &str, rows: &[UsageLine], service: bool, channel: bool) -> String {
    if rows.is_empty() {
        return format!("*{title}: nothing to show.*\n\n");
    }
    let mut head = vec!["Department", "Category"];
    if service {
        head.push("Service");
    }
    if channel {
        head.push("Channel");
    }
    head.extend(["Status", "Devices", "Share", "Flows", "Up", "Down"]);
    let rows = rows
        .iter()
        .map(|u| {
            let mut r = vec![dept(n, &u.department), esc(&category_label(&u.category))];
            if service {
                r.push(esc(n.service(&u.service)));
            }
            if channel {
                r.push(esc(&u.channel));
            }
            r.extend([
                esc(&u.status),
                format!("{}{}", display::count(u.hosts), if u.hosts_exact { "" } else { " (est.)" }),
                display::percent(u.share),
                display::count(u.flows),
                display::bytes(u.bytes_up),
                display::bytes(u.bytes_down),
            ]);
            r
        })
        .collect();
    format!("### {title}\n\n{}", table(&head, 5, rows))
}

fn pct(v: Option<f64>) -> String {
    v.map(display::percent).unwrap_or_else(|| "n/a".into())
}

/// Renders the report as Markdown.
pub fn render(r: &Report) -> String {
    let org = r.scope == ALL_DEPARTMENTS;
    let mut s = format!(
        "# Shadow-IT survey: {}\n\n{}, {} ({}). Source: {}. Minimum group size k = {}.\n\n",
        esc(&display::period_words(r.period.from, r.period.to)),
        if org { "Whole organisation".to_string() } else { format!("Department {}", esc(&r.scope)) },
        super::iso_range(r.period.from, r.period.to),
        super::days(r.period.days),
        esc(&r.source),
        r.k
    );

    s += "## Findings\n\n";
    if let Some(text) = &r.coverage_warning {
        s += &format!("> **Warning.** {}\n\n", esc(text));
    }
    if r.no_data {
        s += &format!("> **{}**\n\n", esc(NO_DATA_TEXT));
    } else if let Some(text) = r.scope_not_observed() {
        s += &format!("> **{}**\n\n", esc(&text));
    } else if r.headlines.is_empty() {
        s += "No unsanctioned use by a group of at least k devices.\n\n";
    }
    for h in &r.headlines {
        s += &format!("- {}\n", esc(&h.text));
    }
    s += "\n";

    if let Some(c) = &r.comparison {
        s += &format!("## Compared with {}\n\n", esc(&display::period_words(c.earlier_period.from, c.earlier_period.to)));
        s += &format!("{}\n\n", esc(&super::comparison_intro(c, &display::period_words(r.period.from, r.period.to))));
        let head = ["Department", "Category", "Now", "Earlier", "Change"];
        let rows = c
            .lines
            .iter()
            .map(|l| {
                let cell = |v: Option<f64>| v.map(display::percent).unwrap_or_else(|| "withheld".into());
                vec![dept(&r.names, &l.department), esc(&category_label(&l.category)), cell(l.now), cell(l.earlier), l.delta_pp.map(super::delta_pp).unwrap_or_else(|| "withheld".into())]
            })
            .collect();
        s += &table(&head, 3, rows);
    }

    s += "## Top unsanctioned services\n\n";
    if r.top_unsanctioned.is_empty() {
        s += "No unsanctioned service used by at least k devices.\n\n";
    } else {
        let rows = r
            .top_unsanctioned
            .iter()
            .map(|t| {
                vec![
                    t.rank.to_string(),
                    esc(r.names.service(&t.service)),
                    esc(&category_label(&t.category)),
                    display::count(t.hosts),
                    display::percent(t.share),
                    display::count(t.flows),
                    display::bytes(t.bytes_up),
                    display::bytes(t.bytes_down),
                    display::count(t.departments),
                ]
            })
            .collect();
        s += &table(&["#", "Service", "Category", "Devices", "Share", "Flows", "Up", "Down", "Departments"], 6, rows);
    }

    s += "## Destinations outside the catalog\n\n";
    if r.scope != ALL_DEPARTMENTS {
        s += "Listed in organisation-wide reports only.\n\n";
    } else {
        s += &format!("{}\n\n", esc(&super::uncatalogued_intro(r)));
        if r.uncatalogued.is_empty() {
            s += "No domain outside the catalog used by at least k devices.\n\n";
        } else {
            let rows = r
                .uncatalogued
                .iter()
                .map(|d| {
                    vec![d.rank.to_string(), esc(&d.domain), display::count(d.devices), display::count(d.flows), display::bytes(d.bytes)]
                })
                .collect();
            s += &table(&["#", "Domain", "Devices", "Flows", "Bytes"], 2, rows);
        }
        if let Some(t) = super::uncatalogued_folded(r) {
            s += &format!("{}\n\n", esc(&t));
        }
    }

    s += "## Trend by week\n\n";
    if r.trend.weeks.is_empty() {
        s += "No weekly data.\n\n";
    } else {
        let rows = r
            .trend
            .weeks
            .iter()
            .map(|w| vec![w.start.to_string(), w.days_in_period.to_string(), w.active_hosts.map(display::count).unwrap_or_else(|| "–".into())])
            .collect();
        s += &table(&["Week of", "Days in period", "Active devices"], 2, rows);
        let rows = r
            .trend
            .lines
            .iter()
            .map(|l| vec![l.week.to_string(), dept(&r.names, &l.department), esc(&category_label(&l.category)), esc(&l.status), display::count(l.hosts), display::percent(l.share), display::count(l.flows)])
            .collect();
        s += &table(&["Week of", "Department", "Category", "Status", "Devices", "Share", "Flows"], 3, rows);
    }

    s += "## Survey\n\n";
    let rows = r
        .departments
        .iter()
        .map(|d| {
            let note = if !d.observed {
                format!(" ({NOT_OBSERVED})")
            } else if d.hosts_exact {
                String::new()
            } else {
                " (est.)".into()
            };
            vec![dept(&r.names, &d.department), format!("{}{note}", display::count(d.active_hosts))]
        })
        .collect();
    s += &table(&["Department", "Active devices"], 1, rows);
    s += &usage(&r.names, "By category", &r.survey.categories, false, false);
    s += &usage(&r.names, "By service", &r.survey.services, true, false);
    s += &usage(&r.names, "By service and channel", &r.survey.channels, true, true);
    s += &format!(
        "No group of fewer than {} is shown, nor any department with fewer than {} active {}.\n\n",
        display::counted(r.k, "device", "devices"),
        display::count(r.k),
        if r.k == 1 { "device" } else { "devices" }
    );

    let e = &r.exemptions;
    s += &format!("## Exemptions\n\nState as of {}; expiring means ending within {}.\n\n", e.as_of, super::days(e.expiring_within_days));
    if e.list.is_empty() {
        s += "No exemption.\n\n";
    } else {
        let rows = e
            .list
            .iter()
            .map(|x| {
                vec![
                    dept(&r.names, &x.department),
                    esc(r.names.service(&x.service)),
                    esc(x.reference.as_deref().unwrap_or("")),
                    x.start.map(|d| d.to_string()).unwrap_or_default(),
                    x.expires.to_string(),
                    x.state.as_str().to_string(),
                    x.days_left.to_string(),
                ]
            })
            .collect();
        s += &table(&["Department", "Service", "Reference", "From", "Until", "State", "Days left"], 1, rows);
    }
    let in_use: Vec<UsageLine> = e.in_use.iter().map(|u| u.usage.clone()).collect();
    s += &usage(&r.names, "Use under an exemption", &in_use, true, false);
    let after: Vec<UsageLine> = e.after_expiry.iter().map(|u| u.usage.clone()).collect();
    s += &usage(&r.names, "Unsanctioned use after the department's exemption expired", &after, true, false);

    let m = &r.methodology;
    s += "## Services\n\n";
    if r.service_table.is_empty() {
        s += "The source does not describe the services of this report (the catalog is not at hand): they are shown by their ids.\n\n";
    } else {
        let rows = r
            .service_table
            .iter()
            .map(|x| {
                vec![
                    esc(&x.name),
                    esc(&category_label(&x.category)),
                    esc(&x.vendor),
                    esc(&x.vendor_country),
                    esc(&x.data_location),
                    super::yes_no(x.e2ee).to_string(),
                    super::yes_no(x.disappearing_messages).to_string(),
                    super::risk_cell(x),
                    esc(&x.references_line()),
                ]
            })
            .collect();
        s += &table(&["Service", "Category", "Vendor", "Vendor country", "Data location", "End-to-end encrypted", "Disappearing messages", "Risk", "References"], 0, rows);
    }

    s += "## Methodology and coverage\n\n";
    let digests = |v: &[String]| if v.is_empty() { "not recorded".to_string() } else { v.iter().map(|d| format!("`{}`", d.replace('`', ""))).collect::<Vec<_>>().join(", ") };
    let facts = vec![
        vec!["Period".into(), format!("{} ({}, UTC)", super::iso_range(r.period.from, r.period.to), super::days(r.period.days))],
        vec!["Source".into(), esc(&m.source)],
        vec!["Devices counted".into(), format!("{} {}", esc(&m.host_method_text), esc(&m.host_error_text))],
        vec!["Minimum group size".into(), format!("k = {} (asked {}, sensors {})", m.k, m.k_requested, m.k_input)],
        vec![
            "Withheld".into(),
            format!(
                "{}; rows: {}",
                display::counted(m.withheld.departments, "department", "departments"),
                m.withheld.rows.iter().map(|(t, n)| format!("{} {n}", esc(t))).collect::<Vec<_>>().join(", ")
            ),
        ],
        vec!["Packets".into(), display::count(m.packets)],
        vec![
            "Capture loss".into(),
            format!("{} ({} dropped of {} received)", pct(m.capture_loss), display::count(m.capture_dropped), display::count(m.capture_received)),
        ],
        vec![
            "Flows".into(),
            format!("{}; named {}, ECH {}, unnamed {}", display::count(m.flows), pct(m.named_share), pct(m.ech_share), pct(m.unnamed_share)),
        ],
        vec!["Never answered".into(), super::unanswered_line(m, &display::count(m.unanswered_flows), &pct(m.unanswered_share))],
        vec!["Catalog".into(), digests(&m.catalog_digests)],
        vec!["Configuration".into(), digests(&m.config_digests)],
    ];
    s += &table(&["", ""], 0, facts);
    let rows = m.sensors.iter().map(|x| vec![esc(&x.name), format!("{:.1} days", x.uptime_secs as f64 / 86_400.0), display::percent(x.uptime_share)]).collect();
    s += &table(&["Sensor", "Uptime", "of the period"], 2, rows);
    for (title, rows) in [("Named flows by signal", &m.named_by_signal), ("Unnamed flows by reason", &m.unnamed_by_reason)] {
        let rows = rows.iter().map(|f| vec![esc(&f.name), display::count(f.flows), pct(f.share)]).collect();
        s += &format!("### {title}\n\n{}", table(&["Name", "Flows", "Share of all flows"], 2, rows));
    }
    if !m.damaged_captures.is_empty() {
        let rows = m.damaged_captures.iter().map(|d| vec![esc(&d.file), super::damage_text(d.damage).to_string(), esc(&d.reason)]).collect();
        s += &format!("### Damaged capture files\n\n{}", table(&["File", "Outcome", "Reason"], 0, rows));
    }
    s += "### Limitations\n\n";
    for (_, l) in m.limitations.list() {
        s += &format!("- {}\n", esc(&l.text));
    }
    s += "\n### Risk rating\n\n";
    for n in super::risk_method(m.risk_weights.as_ref()) {
        s += &format!("- {}\n", super::code_spans(&n, esc, |c| format!("`{}`", c.replace('`', ""))));
    }
    s += "\n### Definitions\n\n";
    for n in &m.notes {
        s += &format!("- {}\n", super::code_spans(n, esc, |c| format!("`{}`", c.replace('`', ""))));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::render::tests::report;

    #[test]
    fn labels_cannot_break_tables_or_inject_html() {
        assert_eq!(esc("a|b"), "a\\|b");
        assert_eq!(esc("<img src=x>"), "&lt;img src=x&gt;");
        assert_eq!(esc("line\nbreak"), "line break");
        assert_eq!(esc("file-sharing"), "file-sharing");
        assert_eq!(esc("_all*"), "\\_all\\*");
    }

    #[test]
    fn quoted_identifiers_are_code_spans_and_k_reads_as_a_sentence() {
        let md = render(&report());
        assert!(md.contains("`unmapped` addresses"), "{md}");
        assert!(!md.contains("\\`"), "an escaped backtick");
        assert!(md.contains("No group of fewer than 5 devices is shown, nor any department with fewer than 5 active devices."), "{md}");
    }

    #[test]
    fn sections_and_tables_are_there() {
        let md = render(&report());
        for h in ["## Findings", "## Survey", "## Trend by week", "## Top unsanctioned services", "## Exemptions", "## Methodology and coverage"] {
            assert!(md.contains(h), "{h}");
        }
        assert!(md.contains("| legal | messaging | unsanctioned | 8 | 26.7% | 300 |"), "{md}");
        assert!(md.contains("### Limitations\n\n- A device is a client address: over a long period, DHCP churn"), "{md}");
        let cols = |l: &str| l.matches(" | ").count();
        for block in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let n = cols(block.lines().next().unwrap());
            assert!(block.lines().all(|l| cols(l) == n), "a table keeps its columns:\n{block}");
        }
    }
}
