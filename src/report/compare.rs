//! Two periods compared (`report --compare EARLIER`): for each category (organisation-wide)
//! and each department × category, the share of active devices that used unsanctioned
//! services now and in the earlier period, and the change in percentage points.
//!
//! Both periods are built with the same minimum group size k (the report's), each with its own
//! suppression: a group withheld in either period shows as withheld (`None`), never a number.


use super::input::ReportInput;
pub use super::model::{Comparison, ComparisonLine};
use super::model::{Report, ReportOptions, UNSANCTIONED};

/// A group's share in one built report: `Some(share)` when shown, `Some(0.0)` when its
/// department is shown and the input has no unsanctioned use of the category there, `None`
/// when withheld (or its department is not shown).
fn share_of(report: &Report, input: &ReportInput, department: &str, category: &str) -> Option<f64> {
    if !report.departments.iter().any(|d| d.department == department && d.observed) {
        return None;
    }
    if let Some(l) = report.survey.categories.iter().find(|l| l.department == department && l.category == category && l.status == UNSANCTIONED) {
        return Some(l.share);
    }
    let used = input.categories.iter().any(|r| r.department == department && r.category == category && r.status == UNSANCTIONED && r.hosts.count > 0);
    if used {
        None // in the input but not shown: withheld
    } else {
        Some(0.0)
    }
}

impl Comparison {
    /// Compares `report` (built from `now` with `opts`) with the `earlier` input, built with
    /// the same options and the report's k.
    pub fn build(report: &Report, now: &ReportInput, earlier: &ReportInput, opts: &ReportOptions) -> Comparison {
        let opts = ReportOptions { k: report.k, as_of: earlier.to, ..opts.clone() };
        let then = Report::build(earlier, &opts);
        let mut departments: Vec<&str> = report.departments.iter().chain(&then.departments).filter(|d| d.observed).map(|d| d.department.as_str()).collect();
        departments.sort_unstable();
        departments.dedup();
        // The organisation first.
        departments.sort_by_key(|d| *d != super::input::ALL_DEPARTMENTS);
        let mut categories: Vec<&str> = [now, earlier]
            .iter()
            .flat_map(|i| i.categories.iter())
            .filter(|r| r.status == UNSANCTIONED && r.hosts.count > 0)
            .map(|r| r.category.as_str())
            .collect();
        categories.sort_unstable();
        categories.dedup();
        let mut lines = Vec::new();
        for d in &departments {
            for c in &categories {
                let a = share_of(report, now, d, c);
                let b = share_of(&then, earlier, d, c);
                let delta_pp = match (a, b) {
                    (Some(a), Some(b)) => Some(((a - b) * 10_000.0).round() / 100.0),
                    _ => None,
                };
                lines.push(ComparisonLine { department: d.to_string(), category: c.to_string(), now: a, earlier: b, delta_pp });
            }
        }
        Comparison { earlier_period: then.period, earlier_source: earlier.source.clone(), k: then.k, lines }
    }
}
