//! How numbers read in the HTML and Markdown reports and in headline sentences. CSV and JSON
//! carry the numbers themselves; these functions only decide their printed form, and the
//! Chromium test parses them back (so they stay simple: no locale, no non-ASCII characters).

/// A share (a fraction 0..1) as a percentage with one decimal: `0.0714` → `7.1%`.
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// A count with thousands separated by commas: `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in decimal units with one decimal (`1.2 GB`); below 1 kB, exact (`999 B`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A count and its noun, singular for exactly one: `(1, "device", "devices")` → `1 device`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// A day in words: `23 November 2026`.
pub fn day(d: time::Date) -> String {
    format!("{} {} {}", d.day(), d.month(), d.year())
}

/// A period in words, as a title names it: `23 November 2026`, `November 2026` (a calendar
/// month), `1 to 9 November 2026`, `28 November to 3 December 2026`,
/// `28 December 2026 to 3 January 2027`. JSON and CSV keep ISO dates.
pub fn period_words(from: time::Date, to: time::Date) -> String {
    let whole_month = from.day() == 1
        && to.month() == from.month()
        && to.year() == from.year()
        && to.day() == from.month().length(from.year());
    if whole_month {
        format!("{} {}", from.month(), from.year())
    } else if from == to {
        day(from)
    } else if from.year() != to.year() {
        format!("{} to {}", day(from), day(to))
    } else if from.month() != to.month() {
        format!("{} {} to {}", from.day(), from.month(), day(to))
    } else {
        format!("{} to {}", from.day(), day(to))
    }
}

/// A period as it opens a sentence: `On 23 November 2026`, `In November 2026`,
/// `From 1 to 9 November 2026` ([`period_words`] with its preposition).
pub fn period_phrase(from: time::Date, to: time::Date) -> String {
    let words = period_words(from, to);
    let preposition = if from == to {
        "On"
    } else if words.contains(" to ") {
        "From"
    } else {
        "In"
    };
    format!("{preposition} {words}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn numbers_read_as_documented() {
        assert_eq!(percent(0.0714), "7.1%");
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(999_949), "999.9 kB");
        assert_eq!(bytes(999_950), "1.0 MB", "never 1000.0 kB");
        assert_eq!(bytes(1_234_567_890), "1.2 GB");
        assert_eq!(bytes(u64::MAX), "18.4 EB");
    }

    #[test]
    fn one_day_reads_on_day_month_year() {
        assert_eq!(period_phrase(date!(2026 - 11 - 23), date!(2026 - 11 - 23)), "On 23 November 2026");
    }

    #[test]
    fn days_of_one_month_share_the_month() {
        assert_eq!(period_phrase(date!(2026 - 11 - 01), date!(2026 - 11 - 30)), "In November 2026");
        assert_eq!(period_phrase(date!(2026 - 11 - 01), date!(2026 - 11 - 29)), "From 1 to 29 November 2026");
        assert_eq!(period_phrase(date!(2026 - 02 - 01), date!(2026 - 02 - 28)), "In February 2026");
    }

    #[test]
    fn days_across_months_and_years_name_both() {
        assert_eq!(period_phrase(date!(2026 - 11 - 28), date!(2026 - 12 - 03)), "From 28 November to 3 December 2026");
        assert_eq!(period_phrase(date!(2026 - 12 - 28), date!(2027 - 01 - 03)), "From 28 December 2026 to 3 January 2027");
    }

    #[test]
    fn titles_name_the_period_without_a_preposition() {
        assert_eq!(period_words(date!(2026 - 11 - 23), date!(2026 - 11 - 23)), "23 November 2026");
        assert_eq!(period_words(date!(2026 - 10 - 01), date!(2026 - 10 - 31)), "October 2026");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(counted(0, "device", "devices"), "0 devices");
        assert_eq!(counted(1, "device", "devices"), "1 device");
        assert_eq!(counted(2, "department", "departments"), "2 departments");
        assert_eq!(counted(1234, "flow", "flows"), "1,234 flows");
    }
}
