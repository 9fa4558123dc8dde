//! The report as one long CSV table (RFC 4180: CRLF line ends, fields quoted when they hold a
//! comma, a quote, CR or LF, quotes doubled), for spreadsheets and for comparing surveys year
//! on year with a join on the label columns.
//!
//! Columns: `section,department,category,service,channel,status,week,name,metric,value`.
//! A row is one value: `section` names the table it comes from (`report`, `headline`,
//! `department`, `survey_category`, `survey_service`, `survey_channel`, `trend_week`,
//! `trend`, `top_unsanctioned`, `uncatalogued` (`name` the domain), `uncatalogued_folded`, `exemption`, `exemption_use`, `after_expiry`, `service`, `methodology`,
//! `sensor`, `named_by_signal`, `unnamed_by_reason`, `withheld`, `risk_weight`, `note`), the label columns
//! that apply are filled (`name` holds a sensor, signal, reason or table name), `metric` says
//! what `value` is. Shares are fractions with 4 decimals (`0.0714`), counts are integers,
//! dates `YYYY-MM-DD`, booleans `true`/`false`, absent values empty.

use std::fmt::Display;

use crate::report::model::{Report, UsageLine, NO_DATA_TEXT, SHARE_DECIMALS, UNSANCTIONED};

/// The header line's columns.
pub const COLUMNS: [&str; 10] = ["section", "department", "category", "service", "channel", "status", "week", "name", "metric", "value"];

/// Label columns of a row (everything but `metric` and `value`).
#[derive(Default, Clone, Copy)]
struct Labels<'a> {
    section: &'a str,
    department: &'a str,
    category: &'a str,
    service: &'a str,
    channel: &'a str,
    status: &'a str,
    week: Option<time::Date>,
    name: &'a str,
}

struct Writer {
    out: String,
}

impl Writer {
    fn line<I: IntoIterator<Item = S>, S: AsRef<str>>(&mut self, fields: I) {
        for (i, f) in fields.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(&quote(f.as_ref()));
        }
        self.out.push_str("\r\n");
    }

    fn value(&mut self, l: &Labels<'_>, metric: &str, value: &str) {
        let week = l.week.map(|w| w.to_string()).unwrap_or_default();
        self.line([l.section, l.department, l.category, l.service, l.channel, l.status, &week, l.name, metric, value]);
    }

    fn usage(&mut self, l: &Labels<'_>, u: &UsageLine) {
        let l = Labels { department: &u.department, category: &u.category, service: &u.service, channel: &u.channel, status: &u.status, ..*l };
        self.value(&l, "hosts", &u.hosts.to_string());
        self.value(&l, "hosts_exact", &u.hosts_exact.to_string());
        self.value(&l, "share", &share(u.share));
        self.value(&l, "flows", &u.flows.to_string());
        self.value(&l, "bytes_up", &u.bytes_up.to_string());
        self.value(&l, "bytes_down", &u.bytes_down.to_string());
    }
}

/// A field as RFC 4180 writes it.
pub fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn share(x: f64) -> String {
    format!("{x:.prec$}", prec = SHARE_DECIMALS as usize)
}

fn opt<T: Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Renders the report as CSV.
pub fn render(r: &Report) -> String {
    let mut w = Writer { out: String::new() };
    w.line(COLUMNS);
    let l = Labels { section: "report", department: &r.scope, ..Labels::default() };
    w.value(&l, "from", &r.period.from.to_string());
    w.value(&l, "to", &r.period.to.to_string());
    w.value(&l, "days", &r.period.days.to_string());
    w.value(&l, "period", &r.period.label);
    w.value(&l, "source", &r.source);
    w.value(&l, "k", &r.k.to_string());
    w.value(&l, "no_data", &r.no_data.to_string());
    w.value(&l, "coverage_share", &share(r.coverage_share));
    w.value(&l, "coverage_warning", r.coverage_warning.as_deref().unwrap_or(""));
    if r.no_data {
        let l = Labels { section: "headline", department: &r.scope, ..Labels::default() };
        w.value(&l, "text", NO_DATA_TEXT);
    }

    for h in &r.headlines {
        let l = Labels { section: "headline", department: &r.scope, category: &h.category, status: &h.status, ..Labels::default() };
        w.value(&l, "share", &opt(h.share.map(share)));
        w.value(&l, "departments_using", &opt(h.departments_using));
        w.value(&l, "departments_total", &opt(h.departments_total));
        w.value(&l, "services", &h.services.join(" "));
        w.value(&l, "text", &h.text);
    }
    if let Some(c) = &r.comparison {
        let l = Labels { section: "comparison", department: &r.scope, ..Labels::default() };
        w.value(&l, "earlier_from", &c.earlier_period.from.to_string());
        w.value(&l, "earlier_to", &c.earlier_period.to.to_string());
        w.value(&l, "earlier_source", &c.earlier_source);
        for x in &c.lines {
            let l = Labels { section: "comparison", department: &x.department, category: &x.category, status: UNSANCTIONED, ..Labels::default() };
            w.value(&l, "now", &opt(x.now.map(share)));
            w.value(&l, "earlier", &opt(x.earlier.map(share)));
            w.value(&l, "delta_pp", &opt(x.delta_pp));
        }
    }
    for d in &r.departments {
        let l = Labels { section: "department", department: &d.department, ..Labels::default() };
        w.value(&l, "active_hosts", &d.active_hosts.to_string());
        w.value(&l, "hosts_exact", &d.hosts_exact.to_string());
        w.value(&l, "observed", &d.observed.to_string());
    }
    for (section, rows) in [("survey_category", &r.survey.categories), ("survey_service", &r.survey.services), ("survey_channel", &r.survey.channels)] {
        for u in rows {
            w.usage(&Labels { section, ..Labels::default() }, u);
        }
    }
    for wk in &r.trend.weeks {
        let l = Labels { section: "trend_week", department: &r.scope, week: Some(wk.start), ..Labels::default() };
        w.value(&l, "days_in_period", &wk.days_in_period.to_string());
        w.value(&l, "active_hosts", &opt(wk.active_hosts));
    }
    for t in &r.trend.lines {
        let l = Labels { section: "trend", department: &t.department, category: &t.category, status: &t.status, week: Some(t.week), ..Labels::default() };
        w.value(&l, "hosts", &t.hosts.to_string());
        w.value(&l, "hosts_exact", &t.hosts_exact.to_string());
        w.value(&l, "share", &share(t.share));
        w.value(&l, "flows", &t.flows.to_string());
    }
    for t in &r.top_unsanctioned {
        let l = Labels { section: "top_unsanctioned", department: &r.scope, category: &t.category, service: &t.service, status: "unsanctioned", ..Labels::default() };
        w.value(&l, "rank", &t.rank.to_string());
        w.value(&l, "hosts", &t.hosts.to_string());
        w.value(&l, "hosts_exact", &t.hosts_exact.to_string());
        w.value(&l, "share", &share(t.share));
        w.value(&l, "flows", &t.flows.to_string());
        w.value(&l, "bytes_up", &t.bytes_up.to_string());
        w.value(&l, "bytes_down", &t.bytes_down.to_string());
        w.value(&l, "departments", &t.departments.to_string());
    }
    for d in &r.uncatalogued {
        let l = Labels { section: "uncatalogued", department: &r.scope, name: &d.domain, ..Labels::default() };
        w.value(&l, "rank", &d.rank.to_string());
        w.value(&l, "devices", &d.devices.to_string());
        w.value(&l, "devices_exact", &d.devices_exact.to_string());
        w.value(&l, "flows", &d.flows.to_string());
        w.value(&l, "bytes", &d.bytes.to_string());
        w.value(&l, "bytes_up", &d.bytes_up.to_string());
        w.value(&l, "bytes_down", &d.bytes_down.to_string());
    }
    if r.scope == crate::report::input::ALL_DEPARTMENTS {
        let f = &r.uncatalogued_folded;
        let l = Labels { section: "uncatalogued_folded", department: &r.scope, ..Labels::default() };
        w.value(&l, "beyond_top_domains", &f.beyond_top_domains.to_string());
        w.value(&l, "beyond_top_flows", &f.beyond_top_flows.to_string());
        w.value(&l, "below_k_domains", &f.below_k_domains.to_string());
        w.value(&l, "below_k_flows", &f.below_k_flows.to_string());
    }
    let e = &r.exemptions;
    for x in &e.list {
        let l = Labels { section: "exemption", department: &x.department, service: &x.service, status: x.state.as_str(), ..Labels::default() };
        w.value(&l, "start", &opt(x.start));
        w.value(&l, "expires", &x.expires.to_string());
        w.value(&l, "reference", x.reference.as_deref().unwrap_or(""));
        w.value(&l, "days_left", &x.days_left.to_string());
    }
    for (section, rows) in [("exemption_use", &e.in_use), ("after_expiry", &e.after_expiry)] {
        for u in rows {
            w.usage(&Labels { section, ..Labels::default() }, &u.usage);
            let l = Labels { section, department: &u.usage.department, category: &u.usage.category, service: &u.usage.service, status: &u.usage.status, ..Labels::default() };
            w.value(&l, "expires", &opt(u.expires));
            w.value(&l, "reference", u.reference.as_deref().unwrap_or(""));
        }
    }
    for x in &r.service_table {
        let l = Labels { section: "service", category: &x.category, service: &x.id, ..Labels::default() };
        w.value(&l, "name", &x.name);
        w.value(&l, "vendor", &x.vendor);
        w.value(&l, "vendor_country", &x.vendor_country);
        w.value(&l, "data_location", &x.data_location);
        w.value(&l, "e2ee", &x.e2ee.to_string());
        w.value(&l, "disappearing_messages", &x.disappearing_messages.to_string());
        if let Some(r) = &x.risk {
            w.value(&l, "risk_score", &r.score.to_string());
            w.value(&l, "risk_level", r.level.as_str());
        }
        for (i, f) in x.references.iter().enumerate() {
            let n = (i + 1).to_string();
            let l = Labels { name: &n, ..l };
            w.value(&l, "reference", &f.to_string());
        }
    }
    let m = &r.methodology;
    let l = Labels { section: "methodology", ..Labels::default() };
    w.value(&l, "as_of", &e.as_of.to_string());
    w.value(&l, "expiring_within_days", &e.expiring_within_days.to_string());
    w.value(&l, "host_method", &m.host_method_text);
    w.value(&l, "host_error", &m.host_error_text);
    w.value(&l, "packets", &m.packets.to_string());
    w.value(&l, "capture_received", &m.capture_received.to_string());
    w.value(&l, "capture_dropped", &m.capture_dropped.to_string());
    w.value(&l, "capture_loss", &opt(m.capture_loss.map(share)));
    w.value(&l, "flows", &m.flows.to_string());
    w.value(&l, "named_flows", &m.named_flows.to_string());
    w.value(&l, "named_share", &opt(m.named_share.map(share)));
    w.value(&l, "ech_flows", &m.ech_flows.to_string());
    w.value(&l, "ech_share", &opt(m.ech_share.map(share)));
    w.value(&l, "unnamed_share", &opt(m.unnamed_share.map(share)));
    w.value(&l, "unanswered_flows", &m.unanswered_flows.to_string());
    w.value(&l, "unanswered_share", &opt(m.unanswered_share.map(share)));
    w.value(&l, "unanswered_as_use", &m.unanswered_as_use.to_string());
    w.value(&l, "mostly_unanswered", &m.mostly_unanswered.to_string());
    for d in &m.catalog_digests {
        w.value(&l, "catalog_digest", d);
    }
    for d in &m.config_digests {
        w.value(&l, "config_digest", d);
    }
    w.value(&l, "k", &m.k.to_string());
    w.value(&l, "k_requested", &m.k_requested.to_string());
    w.value(&l, "k_input", &m.k_input.to_string());
    w.value(&l, "withheld_departments", &m.withheld.departments.to_string());
    for s in &m.sensors {
        let l = Labels { section: "sensor", name: &s.name, ..Labels::default() };
        w.value(&l, "uptime_secs", &s.uptime_secs.to_string());
        w.value(&l, "uptime_share", &share(s.uptime_share));
    }
    for (section, rows) in [("named_by_signal", &m.named_by_signal), ("unnamed_by_reason", &m.unnamed_by_reason)] {
        for f in rows {
            let l = Labels { section, name: &f.name, ..Labels::default() };
            w.value(&l, "flows", &f.flows.to_string());
            w.value(&l, "share", &opt(f.share.map(share)));
        }
    }
    for (table, n) in &m.withheld.rows {
        w.value(&Labels { section: "withheld", name: table, ..Labels::default() }, "rows", &n.to_string());
    }
    if let Some(rw) = &m.risk_weights {
        for (c, p) in &rw.category {
            w.value(&Labels { section: "risk_weight", category: c, ..Labels::default() }, "points", &p.to_string());
        }
        for (name, p) in rw.attributes.pairs() {
            w.value(&Labels { section: "risk_weight", name, ..Labels::default() }, "points", &p.to_string());
        }
        w.value(&Labels { section: "risk_weight", name: "level_medium", ..Labels::default() }, "from", &rw.levels.medium.to_string());
        w.value(&Labels { section: "risk_weight", name: "level_high", ..Labels::default() }, "from", &rw.levels.high.to_string());
    }
    for d in &m.damaged_captures {
        let l = Labels { section: "damaged_capture", name: &d.file, ..Labels::default() };
        w.value(&l, "damage", damage(d.damage));
        w.value(&l, "reason", &d.reason);
    }
    for (key, x) in m.limitations.list() {
        let l = Labels { section: "limitation", name: key, ..Labels::default() };
        w.value(&l, "text", &x.text);
        for (name, f) in &x.figures {
            let v = match f {
                crate::report::model::Figure::Count(n) => n.to_string(),
                crate::report::model::Figure::Share(x) => share(*x),
            };
            w.value(&l, name, &v);
        }
    }
    for (i, note) in m.notes.iter().enumerate() {
        w.value(&Labels { section: "note", name: &(i + 1).to_string(), ..Labels::default() }, "text", note);
    }
    w.out
}

fn damage(d: crate::report::input::CaptureDamage) -> &'static str {
    match d {
        crate::report::input::CaptureDamage::Skipped => "skipped",
        crate::report::input::CaptureDamage::Truncated => "truncated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::render::tests::report;

    /// Splits RFC 4180 text into records of fields (for the tests).
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let (mut row, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        rows
    }

    #[test]
    fn limitations_are_rows() {
        let csv = render(&report());
        assert!(csv.contains("\r\nlimitation,,,,,,,device_definition,text,"), "{csv}");
        assert!(csv.contains("\r\nlimitation,,,,,,,unnamed,unnamed_share,0.2000\r\n"), "{csv}");
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        assert_eq!(quote("cr\r"), "\"cr\r\"");
        assert_eq!(quote(""), "");
    }

    #[test]
    fn every_record_has_every_column_and_hostile_labels_survive() {
        let mut r = report();
        r.survey.services[0].department = "a,\"b\"\r\nc".into();
        let text = render(&r);
        assert!(text.starts_with("section,department,category,service,channel,status,week,name,metric,value\r\n"));
        assert!(text.ends_with("\r\n"));
        let rows = parse(&text);
        assert!(rows.iter().all(|row| row.len() == COLUMNS.len()), "{rows:?}");
        assert!(rows.iter().any(|row| row[1] == "a,\"b\"\r\nc"), "the label round-trips");
        let share = rows.iter().find(|row| row[0] == "survey_category" && row[1] == "legal" && row[2] == "messaging" && row[5] == "unsanctioned" && row[8] == "share").unwrap();
        assert_eq!(share[9], "0.2667");
        let text_row = rows.iter().find(|row| row[0] == "headline" && row[8] == "text").unwrap();
        assert!(text_row[9].contains("; 2 of 2 departments did."));
    }
}
