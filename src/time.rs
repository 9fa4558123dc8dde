//! Packet time.
//!
//! Time inside the pipeline is the capture timestamp of the packet being handled, never the wall
//! clock: replaying a capture twice gives the same flows, timeouts and records.

use std::fmt;

/// A capture timestamp: microseconds since the Unix epoch (UTC).
///
/// Microseconds are what classic pcap records carry and what the `inspect` output promises; a
/// signed 64-bit count covers ±292,000 years, so hostile timestamps cannot overflow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock, in whole seconds. For the drivers and the store's flush time only: the
    /// packet path runs on packet timestamps, never on this.
    pub fn wall_clock() -> Timestamp {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Timestamp::from_parts(secs, 0)
    }

    /// Builds a timestamp from the seconds and microseconds of a pcap record header.
    pub fn from_parts(secs: i64, micros: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// Whole seconds since the epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This timestamp plus `secs` seconds, saturating.
    pub fn plus_secs(self, secs: u64) -> Self {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }

    /// Microseconds from `earlier` to `self`, zero when `earlier` is later (capture files are not
    /// always in time order).
    pub fn micros_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0).max(0) as u64
    }

    /// The UTC calendar day of this timestamp; None beyond the calendar's range (±9999 years:
    /// only a corrupt record gets there).
    pub fn utc_date(self) -> Option<time::Date> {
        from_unix_day(self.secs().div_euclid(86_400))
    }
}

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Days from 1970-01-01 to `d` (negative before): how the rollup store keys its days.
pub fn unix_day(d: time::Date) -> i64 {
    i64::from(d.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
}

/// The date `n` days after 1970-01-01; None beyond the calendar's range.
pub fn from_unix_day(n: i64) -> Option<time::Date> {
    let julian = i32::try_from(n.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()?;
    time::Date::from_julian_day(julian).ok()
}

/// RFC 3339 in UTC with exactly six fractional digits, e.g. `2024-05-01T12:00:00.000123Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        match time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1000) {
            Ok(t) => match t.format(FORMAT) {
                Ok(s) => f.write_str(&s),
                Err(_) => write!(f, "{}", self.0),
            },
            // Out of the calendar's range (a corrupt record): print the raw count rather than lie.
            Err(_) => write!(f, "@{}us", self.0),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_micros() {
        assert_eq!(Timestamp::from_parts(0, 0).to_string(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Timestamp::from_parts(1_714_564_800, 123).to_string(),
            "2024-05-01T12:00:00.000123Z"
        );
    }

    #[test]
    fn utc_days() {
        let t = Timestamp::from_parts(1_714_564_800, 0);
        assert_eq!(t.utc_date(), Some(time::macros::date!(2024 - 05 - 01)));
        assert_eq!(Timestamp::from_parts(-1, 0).utc_date(), Some(time::macros::date!(1969 - 12 - 31)));
        assert_eq!(unix_day(time::macros::date!(1970 - 01 - 02)), 1);
        assert_eq!(from_unix_day(19_844), Some(time::macros::date!(2024 - 05 - 01)));
        assert_eq!(Timestamp(i64::MAX).utc_date(), None);
        assert_eq!(from_unix_day(i64::MIN), None);
    }

    #[test]
    fn hostile_values_do_not_panic() {
        let s = Timestamp(i64::MAX).to_string();
        assert!(s.starts_with('@'));
        assert_eq!(Timestamp(5).micros_since(Timestamp(10)), 0);
        assert_eq!(Timestamp(i64::MAX).plus_secs(u64::MAX), Timestamp(i64::MAX));
    }
}
