//! The report as one self-contained HTML page: inline CSS with print rules (A4, each section on
//! a new page, rows never split), inline SVG charts, the system's fonts, no script and no
//! reference to anything outside the page, so it can be mailed, archived and printed to PDF
//! as it is. Every label is escaped.
//!
//! Sections, each starting a page in print: findings (the auditor's sentences, their figures,
//! and the survey matrix of departments × categories), top unsanctioned services, the weekly
//! trend, the survey tables (by category, service, channel), exemptions, methodology.
//!
//! `data-key` names (`/`-separated; labels as in the JSON, `_all` for the organisation):
//!
//! | key | value |
//! |---|---|
//! | `coverage_share` | the share of the period covered, in page 1's banner (only below 90%) |
//! | `headline/{category}/{status}/{share,using,total}` | a finding's share and N of M departments |
//! | `dept/{department}/active_hosts` | active devices |
//! | `heat/{department}/{category}/{status}/share` | a cell of the survey matrix |
//! | `cat/{department}/{category}/{status}/{metric}` | survey by category |
//! | `svc/{department}/{service}/{status}/{metric}` | survey by service |
//! | `chan/{department}/{service}/{channel}/{status}/{metric}` | survey by channel |
//! | `week/{monday}/{days,active_hosts}` | a week of the trend |
//! | `trend/{monday}/{department}/{category}/{status}/{share,flows}` | a trend value |
//! | `top/{rank}/{metric}`, `chart/top/{rank}/share` | top unsanctioned services (table, chart) |
//! | `exemption/{department}/{service}/days_left` | days to an exemption's end |
//! | `exempt-use/...`, `after-expiry/...` | as `svc/` |
//! | `meth/{name}`, `meth/sensor/{name}/uptime_share`, `meth/named/{signal}/share`, `meth/unnamed/{reason}/share`, `meth/withheld/{table}` | methodology |
//!
//! where `{metric}` is `hosts`, `share`, `flows`, `bytes_up` or `bytes_down`.

use std::collections::BTreeSet;

use super::escape::{checked, esc};
use super::svg;
use crate::report::display;
use crate::report::input::ALL_DEPARTMENTS;
use crate::report::model::{category_label, Names, Report, UsageLine, NOT_OBSERVED, NO_DATA_TEXT, UNSANCTIONED};

/// The page's style: system fonts only, A4 print rules, colours kept in print.
const CSS: &str = r#"
:root { --ink: #1b1f24; --muted: #5b6570; --rule: #d0d7de; --accent: #0b5cad; --band: #f6f8fa; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; margin: 0 auto; max-width: 1120px; padding: 28px 32px; font-size: 14px; line-height: 1.45; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 10px; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 28px 0 8px; color: var(--accent); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.sub, p.note, figcaption, .muted { color: var(--muted); }
p.note { font-size: 12px; }
p.warn { border-left: 4px solid #b45309; background: #fff7ed; padding: 6px 10px; font-weight: 600; }
ul.findings { padding-left: 20px; }
ul.findings li { margin: 4px 0; font-size: 15px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
td.est { font-style: italic; }
td.c { text-align: center; white-space: nowrap; }
td.risk-high { font-weight: 600; color: #9a3412; }
td small { color: var(--muted); }
code, .digest { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.status { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; background: var(--band); }
.status-unsanctioned, .status-expired { background: #fde2d4; }
.status-exempted, .status-expiring { background: #fff1c2; }
.status-sanctioned, .status-valid { background: #dcf2e0; }
figure { margin: 8px 0 16px; }
svg.chart { max-width: 100%; height: auto; font-family: inherit; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  h2 { margin-top: 0; }
  section { break-before: page; }
  section.first { break-before: auto; }
  tr, li, figure, dl.facts, .keep { break-inside: avoid; }
  thead { display: table-header-group; }
  h2, h3, caption { break-after: avoid; }
}
"#;

/// A department id for people: the organisation has a name of its own.
fn dept_label(n: &Names, d: &str) -> String {
    if d == ALL_DEPARTMENTS {
        "Organisation".into()
    } else {
        esc(n.department(d))
    }
}

fn status(s: &str) -> String {
    let class: String = s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    format!("<span class=\"status status-{class}\">{}</span>", esc(s))
}

/// A right-aligned numeric cell.
fn num(key: &str, ptr: &str, fmt: &str, text: &str, exact: bool) -> String {
    let class = if exact { "n" } else { "n est" };
    format!("<td class=\"{class}\"{}>{}</td>", checked(key, ptr, fmt), esc(text))
}

/// A share cell: coloured like the heatmap when it measures unsanctioned use (`heat`), plain
/// otherwise (sanctioned use is not a finding).
fn share_cell(key: &str, ptr: &str, share: f64, heat: bool) -> String {
    let style = if heat {
        let (bg, fg) = svg::heat(share);
        format!(" style=\"background:{bg};color:{fg}\"")
    } else {
        String::new()
    };
    format!("<td class=\"n\"{style}{}>{}</td>", checked(key, ptr, "percent"), display::percent(share))
}

/// Which label columns a usage table has.
#[derive(Clone, Copy)]
struct Columns {
    category: bool,
    service: bool,
    channel: bool,
}

fn usage_table(n: &Names, caption: &str, prefix: &str, ptr_base: &str, rows: &[UsageLine], cols: Columns) -> String {
    if rows.is_empty() {
        return format!("<p class=\"note\">{}: nothing to show.</p>\n", esc(caption));
    }
    let mut s = format!("<table>\n<caption>{}</caption>\n<thead><tr><th>Department</th>", esc(caption));
    if cols.category {
        s += "<th>Category</th>";
    }
    if cols.service {
        s += "<th>Service</th>";
    }
    if cols.channel {
        s += "<th>Channel</th>";
    }
    s += "<th>Status</th><th class=\"n\">Devices</th><th class=\"n\">Share</th><th class=\"n\">Flows</th><th class=\"n\">Up</th><th class=\"n\">Down</th></tr></thead>\n<tbody>\n";
    for (i, u) in rows.iter().enumerate() {
        let mut labels = vec![u.department.as_str()];
        s += &format!("<tr><td>{}</td>", dept_label(n, &u.department));
        if cols.category {
            s += &format!("<td>{}</td>", esc(&category_label(&u.category)));
        }
        if cols.service {
            labels.push(&u.service);
            s += &format!("<td>{}</td>", esc(n.service(&u.service)));
        }
        if cols.channel {
            labels.push(&u.channel);
            s += &format!("<td>{}</td>", esc(&u.channel));
        }
        if !cols.service {
            labels.push(&u.category);
        }
        labels.push(&u.status);
        let key = |metric: &str| format!("{prefix}/{}/{metric}", labels.join("/"));
        let ptr = |metric: &str| format!("{ptr_base}/{i}/{metric}");
        s += &format!("<td>{}</td>", status(&u.status));
        s += &num(&key("hosts"), &ptr("hosts"), "count", &display::count(u.hosts), u.hosts_exact);
        s += &share_cell(&key("share"), &ptr("share"), u.share, u.status == UNSANCTIONED);
        s += &num(&key("flows"), &ptr("flows"), "count", &display::count(u.flows), true);
        s += &num(&key("bytes_up"), &ptr("bytes_up"), "bytes", &display::bytes(u.bytes_up), true);
        s += &num(&key("bytes_down"), &ptr("bytes_down"), "bytes", &display::bytes(u.bytes_down), true);
        s += "</tr>\n";
    }
    s + "</tbody>\n</table>\n"
}

fn header(r: &Report) -> String {
    let scope = if r.scope == ALL_DEPARTMENTS { "Whole organisation".to_string() } else { format!("Department {}", esc(r.names.department(&r.scope))) };
    format!(
        "<header>\n<h1>Shadow-IT survey: {}</h1>\n<p class=\"sub\">{scope}, {} ({}) &middot; source: {} &middot; \
         minimum group size k = <span{}>{}</span></p>\n</header>\n",
        esc(&display::period_words(r.period.from, r.period.to)),
        super::iso_range(r.period.from, r.period.to),
        super::days(r.period.days),
        esc(&r.source),
        checked("meth/k", "/k", "int"),
        r.k
    )
}

fn findings(r: &Report) -> String {
    let mut s = String::from("<section class=\"first\" id=\"findings\">\n<h2>Findings</h2>\n");
    if let Some(text) = &r.coverage_warning {
        // The share in the sentence is a checked number like any other.
        let pct = display::percent(r.coverage_share);
        let span = format!("<span{}>{}</span>", checked("coverage_share", "/coverage_share", "percent"), esc(&pct));
        s += &format!("<p class=\"warn\" id=\"coverage-warning\">{}</p>\n", esc(text).replacen(&esc(&pct), &span, 1));
    }
    if r.no_data {
        s += &format!("<p class=\"warn\" id=\"no-data\">{}</p>\n", esc(NO_DATA_TEXT));
    } else if let Some(text) = r.scope_not_observed() {
        s += &format!("<p class=\"warn\" id=\"not-observed\">{}</p>\n", esc(&text));
    } else if r.headlines.is_empty() {
        s += "<p>No unsanctioned use by a group of at least k devices.</p>\n";
    } else {
        s += "<ul class=\"findings\">\n";
        for h in &r.headlines {
            s += &format!("<li>{}</li>\n", esc(&h.text));
        }
        s += "</ul>\n<table class=\"keep\">\n<thead><tr><th>Category</th><th>Status</th><th class=\"n\">Share of devices</th>";
        let org = r.scope == ALL_DEPARTMENTS;
        if org {
            s += "<th class=\"n\">Departments using</th><th class=\"n\">of</th>";
        }
        s += "<th>Most used services</th></tr></thead>\n<tbody>\n";
        for (i, h) in r.headlines.iter().enumerate() {
            let key = |m: &str| format!("headline/{}/{}/{m}", h.category, h.status);
            let ptr = |m: &str| format!("/headlines/{i}/{m}");
            s += &format!("<tr><td>{}</td><td>{}</td>", esc(&category_label(&h.category)), status(&h.status));
            s += &match h.share {
                Some(x) => share_cell(&key("share"), &ptr("share"), x, h.status == UNSANCTIONED),
                None => "<td class=\"n\">&ndash;</td>".into(),
            };
            if let (true, Some(n), Some(m)) = (org, h.departments_using, h.departments_total) {
                s += &num(&key("using"), &ptr("departments_using"), "count", &display::count(n), true);
                s += &num(&key("total"), &ptr("departments_total"), "count", &display::count(m), true);
            }
            s += &format!("<td>{}</td></tr>\n", esc(&h.services.iter().map(|x| r.names.service(x)).collect::<Vec<_>>().join(", ")));
        }
        s += "</tbody>\n</table>\n";
    }
    s += &format!(
        "<p class=\"note\">Share: devices that used a category over the active devices of the {}. No group of fewer than \
         {} is shown; see Methodology.</p>\n",
        if r.scope == ALL_DEPARTMENTS { "organisation" } else { "department" },
        display::counted(r.k, "device", "devices")
    );
    s += &matrix(r);
    s + "</section>\n"
}

/// Two periods compared (`--compare`): shares now and then, and the change in points.
fn comparison(r: &Report) -> String {
    let Some(c) = &r.comparison else { return String::new() };
    let then = display::period_words(c.earlier_period.from, c.earlier_period.to);
    let mut s = format!("<section id=\"comparison\">\n<h2>Compared with {}</h2>\n", esc(&then));
    s += &format!("<p class=\"note\">{}</p>\n", esc(&super::comparison_intro(c, &display::period_words(r.period.from, r.period.to))));
    s += "<table class=\"keep\">\n<thead><tr><th>Department</th><th>Category</th><th class=\"n\">Now</th><th class=\"n\">Earlier</th><th class=\"n\">Change</th></tr></thead>\n<tbody>\n";
    for (i, l) in c.lines.iter().enumerate() {
        let key = |m: &str| format!("cmp/{}/{}/{m}", l.department, l.category);
        let ptr = |m: &str| format!("/comparison/lines/{i}/{m}");
        let cell = |m: &str, v: Option<f64>| match v {
            Some(x) => num(&key(m), &ptr(m), "percent", &display::percent(x), true),
            None => "<td class=\"n\">withheld</td>".into(),
        };
        s += &format!("<tr><td>{}</td><td>{}</td>", dept_label(&r.names, &l.department), esc(&category_label(&l.category)));
        s += &cell("now", l.now);
        s += &cell("earlier", l.earlier);
        s += &format!("<td class=\"n\">{}</td></tr>\n", l.delta_pp.map(super::delta_pp).unwrap_or_else(|| "withheld".into()));
    }
    s + "</tbody>\n</table>\n</section>\n"
}

/// The survey at a glance: departments × categories, share of devices with unsanctioned use.
fn matrix(r: &Report) -> String {
    let mut s = String::new();
    let categories: BTreeSet<&str> =
        r.survey.categories.iter().filter(|l| l.status == UNSANCTIONED).map(|l| l.category.as_str()).collect();
    s += "<table class=\"heat keep\">\n<caption>Share of active devices with unsanctioned use, by department and category</caption>\n\
          <thead><tr><th>Department</th><th class=\"n\">Active devices</th>";
    for c in &categories {
        s += &format!("<th class=\"c\">{}</th>", esc(&category_label(c)));
    }
    s += "</tr></thead>\n<tbody>\n";
    for (di, d) in r.departments.iter().enumerate() {
        let label = if d.observed { dept_label(&r.names, &d.department) } else { format!("{} <small>({NOT_OBSERVED})</small>", dept_label(&r.names, &d.department)) };
        s += &format!("<tr><td>{label}</td>");
        s += &num(&format!("dept/{}/active_hosts", d.department), &format!("/departments/{di}/active_hosts"), "count", &display::count(d.active_hosts), d.hosts_exact);
        for c in &categories {
            let found = r
                .survey
                .categories
                .iter()
                .enumerate()
                .find(|(_, l)| l.department == d.department && l.category == *c && l.status == UNSANCTIONED);
            s += &match found {
                Some((i, l)) => share_cell(
                    &format!("heat/{}/{c}/{UNSANCTIONED}/share", d.department),
                    &format!("/survey/categories/{i}/share"),
                    l.share,
                    true,
                )
                .replacen("class=\"n\"", "class=\"c\"", 1),
                None => "<td class=\"c\">&ndash;</td>".into(),
            };
        }
        s += "</tr>\n";
    }
    s += &format!(
        "</tbody>\n</table>\n<p class=\"note\">&ndash;: no use, or use by fewer than {} (not shown). Colour: white 0% to dark \
         orange 50% and more. Italic counts are estimates. A configured department without any traffic in the period \
         is marked ({NOT_OBSERVED}) with 0 devices: not seen, which is not the same as no use.</p>\n",
        display::counted(r.k, "device", "devices")
    );
    s
}

fn survey(r: &Report) -> String {
    let mut s = String::from("<section id=\"survey\">\n<h2>Survey</h2>\n");
    let all = Columns { category: true, service: true, channel: true };
    s += &usage_table(&r.names, "By category (every status)", "cat", "/survey/categories", &r.survey.categories, Columns { service: false, channel: false, ..all });
    s += &usage_table(&r.names, "By service", "svc", "/survey/services", &r.survey.services, Columns { channel: false, ..all });
    s += &usage_table(&r.names, "By service and channel", "chan", "/survey/channels", &r.survey.channels, all);
    s + "</section>\n"
}

/// `5 Oct` for a Monday.
fn short_date(d: time::Date) -> String {
    let month = d.month().to_string();
    format!("{} {}", d.day(), &month[..3.min(month.len())])
}

fn trend(r: &Report) -> String {
    let mut s = String::from("<section id=\"trend\">\n<h2>Trend by week</h2>\n");
    let t = &r.trend;
    if t.weeks.is_empty() {
        return s + "<p>No weekly data.</p>\n</section>\n";
    }
    let labels: Vec<String> = t.weeks.iter().map(|w| short_date(w.start)).collect();
    let keys: BTreeSet<(&str, &str)> =
        t.lines.iter().filter(|l| l.department == r.scope).map(|l| (l.category.as_str(), l.status.as_str())).collect();
    let series: Vec<svg::Series> = keys
        .iter()
        .filter(|(_, st)| *st == UNSANCTIONED)
        .map(|(c, st)| svg::Series {
            label: category_label(c),
            points: t
                .weeks
                .iter()
                .map(|w| t.lines.iter().find(|l| l.week == w.start && l.department == r.scope && l.category == *c && l.status == *st).map(|l| l.share))
                .collect(),
        })
        .collect();
    if series.is_empty() {
        // An empty chart with axes reads like a measured zero: say what there is instead.
        s += "<p>Nothing to chart: no week has a share of at least k devices to show.</p>\n";
    } else {
        s += &format!(
            "<figure>\n{}<figcaption>Share of the {}'s active devices with unsanctioned use, per category and week (weeks start on Monday).</figcaption>\n</figure>\n",
            svg::lines("Weekly share of devices with unsanctioned use, by category", &labels, &series),
            if r.scope == ALL_DEPARTMENTS { "organisation" } else { "department" }
        );
    }
    s += &trend_table(r, &labels, &keys, "Share of active devices per week", "share", "percent");
    s += &trend_table(r, &labels, &keys, "Flows per week", "flows", "count");
    s += "<p class=\"note\">Weeks start on Monday; the first and last may be partial (days in the period).</p>\n";
    s + "</section>\n"
}

/// One trend table: a row per category and status, a column per week, `metric` in the cells.
fn trend_table(r: &Report, labels: &[String], keys: &BTreeSet<(&str, &str)>, caption: &str, metric: &str, fmt: &str) -> String {
    let t = &r.trend;
    let mut s = format!("<table class=\"keep\">\n<caption>{}</caption>\n<thead><tr><th>Category</th><th>Status</th>", esc(caption));
    for l in labels {
        s += &format!("<th class=\"n\">{}</th>", esc(l));
    }
    s += "</tr></thead>\n<tbody>\n";
    if metric == "share" {
        s += "<tr><td colspan=\"2\">Days in the period</td>";
        for (i, w) in t.weeks.iter().enumerate() {
            s += &num(&format!("week/{}/days", w.start), &format!("/trend/weeks/{i}/days_in_period"), "count", &w.days_in_period.to_string(), true);
        }
        s += "</tr>\n<tr><td colspan=\"2\">Active devices</td>";
        for (i, w) in t.weeks.iter().enumerate() {
            s += &match w.active_hosts {
                Some(n) => num(&format!("week/{}/active_hosts", w.start), &format!("/trend/weeks/{i}/active_hosts"), "count", &display::count(n), true),
                None => "<td class=\"n\">&ndash;</td>".into(),
            };
        }
        s += "</tr>\n";
    }
    for (c, st) in keys {
        s += &format!("<tr><td>{}</td><td>{}</td>", esc(c), status(st));
        for w in &t.weeks {
            let found = t.lines.iter().enumerate().find(|(_, l)| l.week == w.start && l.department == r.scope && l.category == *c && l.status == *st);
            s += &match found {
                Some((i, l)) => {
                    let key = format!("trend/{}/{}/{c}/{st}/{metric}", w.start, l.department);
                    let ptr = format!("/trend/lines/{i}/{metric}");
                    if metric == "share" {
                        share_cell(&key, &ptr, l.share, *st == UNSANCTIONED)
                    } else {
                        num(&key, &ptr, fmt, &display::count(l.flows), true)
                    }
                }
                None => "<td class=\"n\">&ndash;</td>".into(),
            };
        }
        s += "</tr>\n";
    }
    s + "</tbody>\n</table>\n"
}

fn top(r: &Report) -> String {
    let mut s = String::from("<section id=\"top\">\n<h2>Top unsanctioned services</h2>\n");
    if r.top_unsanctioned.is_empty() {
        return s + "<p>No unsanctioned service used by at least k devices.</p>\n</section>\n";
    }
    let bars: Vec<svg::Bar<'_>> = r
        .top_unsanctioned
        .iter()
        .enumerate()
        .map(|(i, t)| svg::Bar { label: r.names.service(&t.service), share: t.share, key: format!("chart/top/{}/share", t.rank), ptr: format!("/top_unsanctioned/{i}/share") })
        .collect();
    s += &format!(
        "<figure>\n{}<figcaption>Share of active devices that used each service although it is not sanctioned for their department.</figcaption>\n</figure>\n",
        svg::bars("Top unsanctioned services by share of devices", &bars)
    );
    s += "<table>\n<thead><tr><th class=\"n\">#</th><th>Service</th><th>Category</th><th class=\"n\">Devices</th><th class=\"n\">Share</th>\
          <th class=\"n\">Flows</th><th class=\"n\">Up</th><th class=\"n\">Down</th><th class=\"n\">Departments</th></tr></thead>\n<tbody>\n";
    for (i, t) in r.top_unsanctioned.iter().enumerate() {
        let key = |m: &str| format!("top/{}/{m}", t.rank);
        let ptr = |m: &str| format!("/top_unsanctioned/{i}/{m}");
        s += &format!("<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td>", t.rank, esc(r.names.service(&t.service)), esc(&category_label(&t.category)));
        s += &num(&key("hosts"), &ptr("hosts"), "count", &display::count(t.hosts), t.hosts_exact);
        s += &share_cell(&key("share"), &ptr("share"), t.share, true);
        s += &num(&key("flows"), &ptr("flows"), "count", &display::count(t.flows), true);
        s += &num(&key("bytes_up"), &ptr("bytes_up"), "bytes", &display::bytes(t.bytes_up), true);
        s += &num(&key("bytes_down"), &ptr("bytes_down"), "bytes", &display::bytes(t.bytes_down), true);
        s += &num(&key("departments"), &ptr("departments"), "count", &display::count(t.departments), true);
        s += "</tr>\n";
    }
    s + "</tbody>\n</table>\n</section>\n"
}

fn uncatalogued(r: &Report) -> String {
    let mut s = String::from("<section id=\"uncatalogued\">\n<h2>Destinations outside the catalog</h2>\n");
    if r.scope != ALL_DEPARTMENTS {
        return s + "<p>Listed in organisation-wide reports only.</p>\n</section>\n";
    }
    s += &format!("<p>{}</p>\n", esc(&super::uncatalogued_intro(r)));
    if r.uncatalogued.is_empty() {
        s += "<p>No domain outside the catalog used by at least k devices.</p>\n";
    } else {
        s += "<table>\n<thead><tr><th class=\"n\">#</th><th>Domain</th><th class=\"n\">Devices</th><th class=\"n\">Flows</th>\
              <th class=\"n\">Bytes</th></tr></thead>\n<tbody>\n";
        for (i, d) in r.uncatalogued.iter().enumerate() {
            let key = |m: &str| format!("uncatalogued/{}/{m}", d.rank);
            let ptr = |m: &str| format!("/uncatalogued/{i}/{m}");
            s += &format!("<tr><td class=\"n\">{}</td><td>{}</td>", d.rank, esc(&d.domain));
            s += &num(&key("devices"), &ptr("devices"), "count", &display::count(d.devices), d.devices_exact);
            s += &num(&key("flows"), &ptr("flows"), "count", &display::count(d.flows), true);
            s += &num(&key("bytes"), &ptr("bytes"), "bytes", &display::bytes(d.bytes), true);
            s += "</tr>\n";
        }
        s += "</tbody>\n</table>\n";
    }
    if let Some(t) = super::uncatalogued_folded(r) {
        s += &format!("<p>{}</p>\n", esc(&t));
    }
    s + "</section>\n"
}

fn exemptions(r: &Report) -> String {
    let e = &r.exemptions;
    let mut s = format!(
        "<section id=\"exemptions\">\n<h2>Exemptions</h2>\n<p class=\"sub\">State as of {}; expiring means ending within {}.</p>\n",
        e.as_of, super::days(e.expiring_within_days)
    );
    if e.list.is_empty() {
        s += "<p>No exemption.</p>\n";
    } else {
        s += "<table>\n<caption>Exemptions</caption>\n<thead><tr><th>Department</th><th>Service</th><th>Reference</th><th>From</th><th>Until</th><th>State</th><th class=\"n\">Days left</th></tr></thead>\n<tbody>\n";
        for (i, x) in e.list.iter().enumerate() {
            s += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                dept_label(&r.names, &x.department),
                esc(r.names.service(&x.service)),
                esc(x.reference.as_deref().unwrap_or("")),
                x.start.map(|d| d.to_string()).unwrap_or_default(),
                x.expires,
                status(x.state.as_str())
            );
            s += &num(&format!("exemption/{}/{}/days_left", x.department, x.service), &format!("/exemptions/list/{i}/days_left"), "int", &x.days_left.to_string(), true);
            s += "</tr>\n";
        }
        s += "</tbody>\n</table>\n";
    }
    let svc = Columns { category: true, service: true, channel: false };
    let in_use: Vec<UsageLine> = e.in_use.iter().map(|u| u.usage.clone()).collect();
    s += &usage_table(&r.names, "Use under an exemption", "exempt-use", "/exemptions/in_use", &in_use, svc);
    let after: Vec<UsageLine> = e.after_expiry.iter().map(|u| u.usage.clone()).collect();
    s += &usage_table(&r.names, "Unsanctioned use after the department's exemption expired", "after-expiry", "/exemptions/after_expiry", &after, svc);
    s + "</section>\n"
}

/// The service table: what each service of the report means for records and data location.
fn services(r: &Report) -> String {
    let mut s = String::from("<section id=\"services\">\n<h2>Services</h2>\n");
    if r.service_table.is_empty() {
        s += "<p class=\"note\">The source does not describe the services of this report (the catalog is not at hand): they are shown by their ids.</p>\n";
    } else {
        s += "<table>\n<caption>Services in this report, as the catalog describes them</caption>\n<thead><tr><th>Service</th><th>Category</th><th>Vendor</th><th>Vendor country</th><th>Data location</th><th>End-to-end encrypted</th><th>Disappearing messages</th><th>Risk</th><th>References</th></tr></thead>\n<tbody>\n";
        for x in &r.service_table {
            s += &format!(
                "<tr data-service=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td></tr>\n",
                esc(&x.id),
                esc(&x.name),
                esc(&category_label(&x.category)),
                esc(&x.vendor),
                esc(&x.vendor_country),
                esc(&x.data_location),
                super::yes_no(x.e2ee),
                super::yes_no(x.disappearing_messages),
                x.risk.as_ref().map(|r| format!(" class=\"risk-{}\" title=\"{}\"", r.level.as_str(), esc(&super::risk_terms(r)))).unwrap_or_default(),
                super::risk_cell(x),
                esc(&x.references_line())
            );
        }
        s += "</tbody>\n</table>\n";
    }
    s + "</section>\n"
}

fn opt_share(key: &str, ptr: &str, v: Option<f64>) -> String {
    match v {
        Some(x) => format!("<span{}>{}</span>", checked(key, ptr, "percent"), display::percent(x)),
        None => "not applicable".into(),
    }
}

fn methodology(r: &Report) -> String {
    let m = &r.methodology;
    let mut s = String::from("<section id=\"methodology\">\n<h2>Methodology and coverage</h2>\n<dl class=\"facts\">\n");
    s += &format!("<dt>Period</dt><dd>{} ({}, UTC)</dd>\n", super::iso_range(r.period.from, r.period.to), super::days(r.period.days));
    s += &format!("<dt>Source</dt><dd>{}</dd>\n", esc(&m.source));
    s += &format!("<dt>Devices counted</dt><dd>{} {}</dd>\n", esc(&m.host_method_text), esc(&m.host_error_text));
    s += &format!(
        "<dt>Minimum group size</dt><dd>k = <span{}>{}</span> (asked {}, sensors {})</dd>\n",
        checked("meth/k", "/methodology/k", "int"),
        m.k,
        m.k_requested,
        m.k_input
    );
    s += &format!(
        "<dt>Withheld</dt><dd><span{}>{}</span> {}; rows: {}</dd>\n",
        checked("meth/withheld_departments", "/methodology/withheld/departments", "count"),
        display::count(m.withheld.departments),
        if m.withheld.departments == 1 { "department" } else { "departments" },
        m.withheld
            .rows
            .iter()
            .map(|(t, n)| format!("{} <span{}>{}</span>", esc(t), checked(&format!("meth/withheld/{t}"), &format!("/methodology/withheld/rows/{t}"), "count"), display::count(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s += &format!("<dt>Packets</dt><dd><span{}>{}</span></dd>\n", checked("meth/packets", "/methodology/packets", "count"), display::count(m.packets));
    s += &format!(
        "<dt>Capture loss</dt><dd>{} ({} dropped of {} received before the sensors)</dd>\n",
        opt_share("meth/capture_loss", "/methodology/capture_loss", m.capture_loss),
        display::count(m.capture_dropped),
        display::count(m.capture_received)
    );
    s += &format!(
        "<dt>Flows</dt><dd><span{}>{}</span>; named {}, ECH {}, unnamed {}</dd>\n",
        checked("meth/flows", "/methodology/flows", "count"),
        display::count(m.flows),
        opt_share("meth/named_share", "/methodology/named_share", m.named_share),
        opt_share("meth/ech_share", "/methodology/ech_share", m.ech_share),
        opt_share("meth/unnamed_share", "/methodology/unnamed_share", m.unnamed_share)
    );
    s += &format!(
        "<dt>Never answered</dt><dd>{}</dd>\n",
        super::unanswered_line(
            m,
            &format!("<span{}>{}</span>", checked("meth/unanswered_flows", "/methodology/unanswered_flows", "count"), display::count(m.unanswered_flows)),
            &opt_share("meth/unanswered_share", "/methodology/unanswered_share", m.unanswered_share)
        )
    );
    let digests = |v: &[String]| if v.is_empty() { "not recorded".to_string() } else { v.iter().map(|d| format!("<span class=\"digest\">{}</span>", esc(d))).collect::<Vec<_>>().join("<br>") };
    s += &format!("<dt>Catalog</dt><dd>{}</dd>\n", digests(&m.catalog_digests));
    s += &format!("<dt>Configuration</dt><dd>{}</dd>\n", digests(&m.config_digests));
    s += "</dl>\n";

    s += "<table class=\"keep\">\n<caption>Sensors</caption>\n<thead><tr><th>Sensor</th><th class=\"n\">Uptime</th><th class=\"n\">of the period</th></tr></thead>\n<tbody>\n";
    if m.sensors.is_empty() {
        s += "<tr><td colspan=\"3\">not recorded</td></tr>\n";
    }
    for (i, x) in m.sensors.iter().enumerate() {
        s += &format!("<tr><td>{}</td><td class=\"n\">{:.1} days</td>", esc(&x.name), x.uptime_secs as f64 / 86_400.0);
        s += &num(&format!("meth/sensor/{}/uptime_share", x.name), &format!("/methodology/sensors/{i}/uptime_share"), "percent", &display::percent(x.uptime_share), true);
        s += "</tr>\n";
    }
    s += "</tbody>\n</table>\n";
    for (caption, what, base, rows) in [
        ("Named flows by signal", "named", "/methodology/named_by_signal", &m.named_by_signal),
        ("Unnamed flows by reason", "unnamed", "/methodology/unnamed_by_reason", &m.unnamed_by_reason),
    ] {
        s += &format!("<table class=\"keep\">\n<caption>{caption}</caption>\n<thead><tr><th>Name</th><th class=\"n\">Flows</th><th class=\"n\">Share of all flows</th></tr></thead>\n<tbody>\n");
        if rows.is_empty() {
            s += "<tr><td colspan=\"3\">none</td></tr>\n";
        }
        for (i, f) in rows.iter().enumerate() {
            s += &format!("<tr><td>{}</td>", esc(&f.name));
            s += &num(&format!("meth/{what}/{}/flows", f.name), &format!("{base}/{i}/flows"), "count", &display::count(f.flows), true);
            s += &match f.share {
                Some(x) => num(&format!("meth/{what}/{}/share", f.name), &format!("{base}/{i}/share"), "percent", &display::percent(x), true),
                None => "<td class=\"n\">&ndash;</td>".into(),
            };
            s += "</tr>\n";
        }
        s += "</tbody>\n</table>\n";
    }
    if !m.damaged_captures.is_empty() {
        s += "<table class=\"keep\">\n<caption>Damaged capture files</caption>\n<thead><tr><th>File</th><th>Outcome</th><th>Reason</th></tr></thead>\n<tbody>\n";
        for d in &m.damaged_captures {
            s += &format!("<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", esc(&d.file), super::damage_text(d.damage), esc(&d.reason));
        }
        s += "</tbody>\n</table>\n";
    }
    s += "<h3>Limitations</h3>\n<ul>\n";
    for (key, l) in m.limitations.list() {
        let mark = |name: &str, x: crate::report::model::Figure| {
            let fmt = if matches!(x, crate::report::model::Figure::Count(_)) { "count" } else { "percent" };
            format!(
                "<span{}>{}</span>",
                checked(&format!("meth/limitations/{key}/{name}"), &format!("/methodology/limitations/{key}/figures/{name}"), fmt),
                esc(&crate::report::model::figure_words(name, x))
            )
        };
        let text = crate::report::model::limitation_text(key, &l.figures, &mark);
        // Sentences of earlier builds' reports that this build would not write: shown as saved.
        let text = if text.is_empty() { esc(&l.text) } else { text };
        s += &format!("<li>{text}</li>\n");
    }
    s += "</ul>\n<h3>Risk rating</h3>\n<ul>\n";
    for n in super::risk_method(m.risk_weights.as_ref()) {
        s += &format!("<li>{}</li>\n", super::code_spans(&n, esc, |c| format!("<code>{}</code>", esc(c))));
    }
    s += "</ul>\n<h3>Definitions</h3>\n<ul>\n";
    for n in &m.notes {
        s += &format!("<li>{}</li>\n", super::code_spans(n, esc, |c| format!("<code>{}</code>", esc(c))));
    }
    s + "</ul>\n</section>\n"
}

/// Renders the report as a self-contained HTML page.
pub fn render(r: &Report) -> String {
    let title = format!(
        "Shadow-IT survey, {}{}",
        display::period_words(r.period.from, r.period.to),
        if r.scope == ALL_DEPARTMENTS { String::new() } else { format!(", {}", r.names.department(&r.scope)) }
    );
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    s += &header(r);
    s += &findings(r);
    s += &comparison(r);
    s += &top(r);
    s += &uncatalogued(r);
    s += &trend(r);
    s += &survey(r);
    s += &exemptions(r);
    s += &services(r);
    s += &methodology(r);
    s + "</body>\n</html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{tests::input, ReportOptions};
    use crate::report::render::tests::report;

    #[test]
    fn no_markdown_backticks_leak_into_the_page() {
        let page = render(&report());
        let body = &page[page.find("<body>").unwrap()..];
        assert!(!body.contains('`'), "a backtick in the page's text");
        assert!(body.contains("<code>unmapped</code> addresses"));
    }

    #[test]
    fn limitations_are_listed_with_their_figures_marked() {
        let html = render(&report());
        let meth = &html[html.find("id=\"methodology\"").unwrap()..];
        assert!(meth.contains("<h3>Limitations</h3>"), "{meth}");
        assert!(meth.contains(crate::report::model::DEVICE_DEFINITION_TEXT), "{meth}");
        assert!(meth.contains("data-ptr=\"/methodology/limitations/unnamed/figures/unnamed_share\""), "{meth}");
    }

    #[test]
    fn the_page_is_self_contained() {
        let html = render(&report());
        let lower = html.to_ascii_lowercase();
        for banned in ["<script", "http:", "https:", "//", "url(", "@import", "@font-face", "<link", "<iframe", "<img", "<object", "<embed", "src=", "href="] {
            assert!(!lower.contains(banned), "the page contains {banned:?}");
        }
        assert!(html.contains("@media print") && html.contains("size: A4"));
        assert!(html.contains("<svg") && html.contains("</html>\n"));
    }

    #[test]
    fn hostile_labels_are_escaped() {
        let hostile = "<script>alert('x')</script>\"&amp;";
        let mut i = input();
        for row in i.services.iter_mut().chain(i.categories.iter_mut()).chain(i.weeks[0].categories.iter_mut()) {
            if row.department == "finance" {
                row.department = hostile.into();
            }
            if row.department == "_all" && row.service == "whatsapp" {
                row.service = hostile.into();
            }
        }
        for d in &mut i.departments {
            if d.department == "finance" {
                d.department = hostile.into();
            }
        }
        i.source = hostile.into();
        i.exemptions[0].reference = Some(hostile.into());
        i.exemptions[0].department = hostile.into();
        let r = Report::build(&i, &ReportOptions::for_input(&i));
        assert!(r.survey.services.iter().any(|l| l.department == hostile), "the hostile department is shown");
        let html = render(&r);
        assert!(!html.contains("<script"), "escaped everywhere");
        assert!(!html.contains("alert('x')"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;amp;"));
    }

    #[test]
    fn every_number_carries_its_key_and_pointer() {
        let html = render(&report());
        let keys = html.matches(" data-key=\"").count();
        assert_eq!(keys, html.matches(" data-ptr=\"").count());
        assert!(html.contains("data-key=\"cat/legal/messaging/unsanctioned/share\" data-ptr=\"/survey/categories/"));
        assert!(html.contains("data-key=\"heat/finance/messaging/unsanctioned/share\""));
        assert!(html.contains("data-key=\"top/1/hosts\" data-ptr=\"/top_unsanctioned/0/hosts\" data-fmt=\"count\">20</td>"));
        let json: serde_json::Value = serde_json::from_str(&crate::report::render::json(&report())).unwrap();
        for part in html.split(" data-ptr=\"").skip(1) {
            let ptr = &part[..part.find('"').unwrap()];
            assert!(json.pointer(ptr).is_some(), "{ptr} resolves in the JSON");
        }
    }
}
