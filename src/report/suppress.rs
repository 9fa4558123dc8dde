//! Minimum group size k for reports: which departments and rows may be shown.
//!
//! The daemon already folds groups smaller than k (`aggregate`), but a report adds two ways to
//! single out a small group that a live exposition does not have, and this module closes both:
//!
//! * **Primary suppression.** A row with fewer than k hosts is withheld, and so is every row of
//!   a department with fewer than k active hosts (a share over such a denominator would describe
//!   fewer than k devices, whatever its numerator). A row whose department has no active-host
//!   row is withheld too: its share could not be stated, and a missing denominator usually
//!   means the source withheld it.
//! * **Secondary suppression.** Departments partition the organisation, so hosts add up across
//!   them: the organisation-wide ([`ALL_DEPARTMENTS`]) figure minus the departments shown is
//!   the figure of the departments withheld. When that difference is between 1 and k − 1, the
//!   smallest department shown for the same key is withheld as well; the difference then covers
//!   at least k hosts. Categories over services and services over channels are unions, not
//!   sums, so no other difference singles out a group.
//!
//! Suppression is decided over every department before a report narrows to one, so reports of
//! the same input never contradict each other.

use std::collections::BTreeMap;

use super::input::{DepartmentRow, UsageRow, ALL_DEPARTMENTS};

/// The departments a report may show.
#[derive(Debug, Default)]
pub struct Departments<'a> {
    /// Shown departments (and [`ALL_DEPARTMENTS`]) by id.
    pub shown: BTreeMap<&'a str, &'a DepartmentRow>,
    /// Ids of the departments withheld (fewer than k active hosts, or secondary suppression).
    pub withheld: Vec<&'a str>,
}

/// The usage rows a report may show.
#[derive(Debug, Default)]
pub struct Rows<'a> {
    /// Rows shown, in input order.
    pub shown: Vec<&'a UsageRow>,
    /// Rows withheld, in input order.
    pub withheld: Vec<&'a UsageRow>,
}

/// Splits department rows into shown and withheld for minimum group size `k`.
pub fn departments(rows: &[DepartmentRow], k: u64) -> Departments<'_> {
    let mut out = Departments::default();
    for row in rows {
        if out.shown.contains_key(row.department.as_str()) || out.withheld.contains(&row.department.as_str()) {
            continue; // a duplicate row (corrupt input): the first one counts
        }
        if row.active_hosts.count >= k {
            out.shown.insert(&row.department, row);
        } else {
            out.withheld.push(&row.department);
        }
    }
    let parts: Vec<(&str, u64)> =
        out.shown.iter().filter(|(d, _)| **d != ALL_DEPARTMENTS).map(|(d, r)| (*d, r.active_hosts.count)).collect();
    if let Some(all) = out.shown.get(ALL_DEPARTMENTS) {
        if let Some(victim) = secondary(all.active_hosts.count, &parts, k) {
            out.shown.remove(victim);
            out.withheld.push(victim);
        }
    }
    out.withheld.sort_unstable();
    out.withheld.dedup();
    out
}

/// Splits usage rows into shown and withheld, given the departments shown.
pub fn usage<'a>(rows: &'a [UsageRow], departments: &Departments<'_>, k: u64) -> Rows<'a> {
    let mut shown: Vec<&UsageRow> = Vec::new();
    let mut withheld: Vec<&UsageRow> = Vec::new();
    for row in rows {
        if row.hosts.count >= k && departments.shown.contains_key(row.department.as_str()) {
            shown.push(row);
        } else {
            withheld.push(row);
        }
    }
    // Secondary suppression, per key (service, channel, category, status).
    type Key<'k> = (&'k str, &'k str, &'k str, &'k str);
    let key = |r: &'a UsageRow| -> Key<'a> { (&r.service, &r.channel, &r.category, &r.status) };
    // The all-departments count of a key, and each department's.
    type Counts<'k> = (Option<u64>, Vec<(&'k str, u64)>);
    let mut groups: BTreeMap<Key<'a>, Counts<'a>> = BTreeMap::new();
    for r in &shown {
        let g = groups.entry(key(r)).or_default();
        if r.department == ALL_DEPARTMENTS {
            g.0 = Some(r.hosts.count);
        } else {
            g.1.push((&r.department, r.hosts.count));
        }
    }
    let mut victims: Vec<(Key<'a>, &str)> = Vec::new();
    for (k_, (all, parts)) in &groups {
        if let Some(victim) = all.and_then(|all| secondary(all, parts, k)) {
            victims.push((*k_, victim));
        }
    }
    if !victims.is_empty() {
        let (keep, drop): (Vec<&UsageRow>, Vec<&UsageRow>) =
            shown.into_iter().partition(|r| !victims.iter().any(|(k_, d)| *k_ == key(r) && r.department == *d));
        shown = keep;
        withheld.extend(drop);
    }
    Rows { shown, withheld }
}

/// The part to withhold so that `all` minus the parts shown is 0 or at least `k`: the smallest
/// part (then the first by id), or none.
fn secondary<'a>(all: u64, parts: &[(&'a str, u64)], k: u64) -> Option<&'a str> {
    let sum: u64 = parts.iter().map(|(_, n)| *n).fold(0, u64::saturating_add);
    let residual = all.checked_sub(sum)?;
    if residual == 0 || residual >= k {
        return None;
    }
    parts.iter().min_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0))).map(|(d, _)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::input::{Hosts, Volume};

    fn dept(d: &str, n: u64) -> DepartmentRow {
        DepartmentRow { department: d.into(), active_hosts: Hosts { count: n, exact: true }, unnamed_flows: BTreeMap::new(), unanswered_flows: BTreeMap::new() }
    }

    fn row(d: &str, service: &str, n: u64) -> UsageRow {
        UsageRow {
            department: d.into(),
            service: service.into(),
            channel: String::new(),
            category: "messaging".into(),
            status: "unsanctioned".into(),
            volume: Volume { flows: n * 10, bytes_up: 1, bytes_down: 2 },
            hosts: Hosts { count: n, exact: true },
        }
    }

    #[test]
    fn small_departments_and_their_rows_are_withheld() {
        let d = [dept("_all", 60), dept("finance", 50), dept("tiny", 10)];
        let sel = departments(&d, 5);
        assert_eq!(sel.shown.keys().copied().collect::<Vec<_>>(), ["_all", "finance", "tiny"]);
        let d = [dept("_all", 56), dept("finance", 50), dept("tiny", 3), dept("wee", 3)];
        let sel = departments(&d, 5);
        assert_eq!(sel.withheld, ["tiny", "wee"]);
        let rows = [row("tiny", "whatsapp", 3), row("finance", "whatsapp", 7), row("nodept", "whatsapp", 9)];
        let r = usage(&rows, &sel, 1);
        assert_eq!(r.shown.len(), 1, "a row of a withheld or unknown department is withheld whatever its size");
        assert_eq!(r.shown[0].department, "finance");
        assert_eq!(r.withheld.len(), 2);
    }

    #[test]
    fn rows_below_k_are_never_shown() {
        let d = [dept("finance", 50)];
        let sel = departments(&d, 5);
        let rows: Vec<UsageRow> = (0..10).map(|n| row("finance", &format!("s{n}"), n)).collect();
        for k in 1..12 {
            let r = usage(&rows, &sel, k);
            assert!(r.shown.iter().all(|r| r.hosts.count >= k));
            assert_eq!(r.shown.len() + r.withheld.len(), rows.len());
        }
    }

    #[test]
    fn a_difference_below_k_withholds_the_smallest_department_shown() {
        // _all 20 = finance 9 + legal 8 + hr 3 (withheld): 20 - 17 = 3 < 5 would single out hr.
        let d = [dept("_all", 300), dept("finance", 100), dept("legal", 100), dept("hr", 100)];
        let sel = departments(&d, 5);
        let rows = [row("_all", "whatsapp", 20), row("finance", "whatsapp", 9), row("legal", "whatsapp", 8), row("hr", "whatsapp", 3)];
        let r = usage(&rows, &sel, 5);
        let shown: Vec<&str> = r.shown.iter().map(|r| r.department.as_str()).collect();
        assert_eq!(shown, ["_all", "finance"], "legal (the smallest shown) is withheld too: 20 - 9 = 11 >= 5");
        // A difference of 0 or of k or more needs nothing more.
        let rows = [row("_all", "whatsapp", 22), row("finance", "whatsapp", 9), row("legal", "whatsapp", 8), row("hr", "whatsapp", 5)];
        assert_eq!(usage(&rows, &sel, 5).shown.len(), 4);
        let rows = [row("_all", "whatsapp", 22), row("finance", "whatsapp", 9), row("legal", "whatsapp", 8)];
        assert_eq!(usage(&rows, &sel, 5).shown.len(), 3, "22 - 17 = 5 hosts elsewhere: not below k");
    }

    #[test]
    fn a_duplicate_department_row_is_ignored() {
        let d = [dept("finance", 50), dept("finance", 2), dept("tiny", 2), dept("tiny", 50)];
        let sel = departments(&d, 5);
        assert_eq!(sel.shown["finance"].active_hosts.count, 50);
        assert_eq!(sel.withheld, ["tiny"]);
    }

    #[test]
    fn department_differences_are_protected_too() {
        let d = [dept("_all", 112), dept("finance", 50), dept("legal", 60), dept("tiny", 2)];
        let sel = departments(&d, 5);
        assert_eq!(sel.withheld, ["finance", "tiny"]);
        assert!(sel.shown.contains_key("legal") && sel.shown.contains_key("_all"));
    }
}
