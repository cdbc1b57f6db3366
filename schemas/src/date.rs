//! Calendar dates without a time zone, as Avro's `date` logical type and Chinese ID numbers use them.
//!
//! The crate needs only a little calendar arithmetic (days since the Unix epoch, leap years, "today in Beijing
//! time"), so it is done here with the proleptic Gregorian algorithms from Howard Hinnant's `chrono`-compatible
//! date paper instead of pulling in a date library.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// China Standard Time (Asia/Shanghai) is UTC+8 all year; there is no daylight saving time since 1991.
const SHANGHAI_OFFSET_MILLIS: i64 = 8 * 3600 * 1000;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// A calendar date (proleptic Gregorian), e.g. a birth date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    year: i32,
    month: u8,
    day: u8,
}

impl CivilDate {
    /// The date `year-month-day`, or `None` when it is not a real calendar date (e.g. 2023-02-29).
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Self { year, month, day })
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1..=12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, 1..=31.
    pub fn day(self) -> u8 {
        self.day
    }

    /// Days since 1970-01-01 (negative before), the value of Avro's `date` logical type.
    pub fn days_since_epoch(self) -> i32 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        // The range of i32 days covers ±5.8 million years; every CivilDate built from an i32 year fits.
        (era * 146_097 + doe - 719_468) as i32
    }

    /// The date that is `days` days after 1970-01-01.
    pub fn from_days_since_epoch(days: i32) -> Self {
        let z = i64::from(days) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month, day }
    }

    /// The calendar date in China (UTC+8) at `epoch_millis` milliseconds since the Unix epoch.
    pub fn from_epoch_millis_shanghai(epoch_millis: i64) -> Self {
        let days = (epoch_millis + SHANGHAI_OFFSET_MILLIS).div_euclid(MILLIS_PER_DAY);
        Self::from_days_since_epoch(days as i32)
    }

    /// Today's date in China (UTC+8), from the system clock.
    pub fn today_shanghai() -> Self {
        let millis = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            // A clock before 1970 is broken; treat it as the epoch rather than failing validation.
            Err(_) => 0,
        };
        Self::from_epoch_millis_shanghai(millis)
    }

    /// Parses the 8-digit `YYYYMMDD` form used inside ID numbers; `None` if it is not a real date.
    pub fn parse_yyyymmdd(text: &str) -> Option<Self> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = text[0..4].parse().ok()?;
        let month = text[4..6].parse().ok()?;
        let day = text[6..8].parse().ok()?;
        Self::new(year, month, day)
    }

    /// Parses the ISO 8601 `YYYY-MM-DD` form; `None` if it is malformed or not a real date.
    pub fn parse_iso(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let compact: String = [&text[0..4], &text[5..7], &text[8..10]].concat();
        Self::parse_yyyymmdd(&compact)
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` (1..=12) of `year`; 0 for a month outside 1..=12.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_days() {
        assert_eq!(CivilDate::new(1970, 1, 1).unwrap().days_since_epoch(), 0);
        assert_eq!(CivilDate::new(1969, 12, 31).unwrap().days_since_epoch(), -1);
        // 2000-03-01 is day 11017 (30 years incl. 7 leap days + Jan/Feb 2000 = 10957 + 31 + 29).
        assert_eq!(
            CivilDate::new(2000, 3, 1).unwrap().days_since_epoch(),
            11_017
        );
        assert_eq!(
            CivilDate::new(1949, 12, 31).unwrap().days_since_epoch(),
            -7_306
        );
    }

    #[test]
    fn days_round_trip_over_two_centuries() {
        for days in (-30_000..50_000).step_by(7) {
            let date = CivilDate::from_days_since_epoch(days);
            assert_eq!(date.days_since_epoch(), days, "{date}");
            assert!(CivilDate::new(date.year(), date.month(), date.day()).is_some());
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rule() {
        assert!(CivilDate::new(2000, 2, 29).is_some());
        assert!(CivilDate::new(2024, 2, 29).is_some());
        assert!(CivilDate::new(1900, 2, 29).is_none());
        assert!(CivilDate::new(2023, 2, 29).is_none());
        assert!(CivilDate::new(2023, 4, 31).is_none());
        assert!(CivilDate::new(2023, 13, 1).is_none());
    }

    #[test]
    fn parses_both_text_forms() {
        let d = CivilDate::new(1949, 12, 31).unwrap();
        assert_eq!(CivilDate::parse_yyyymmdd("19491231"), Some(d));
        assert_eq!(CivilDate::parse_iso("1949-12-31"), Some(d));
        assert_eq!(d.to_string(), "1949-12-31");
        assert_eq!(CivilDate::parse_iso("1949/12/31"), None);
        assert_eq!(CivilDate::parse_yyyymmdd("1949123a"), None);
    }

    #[test]
    fn shanghai_day_starts_at_16_utc() {
        // 2024-06-17T16:00:00Z is 2024-06-18 00:00 in Beijing.
        let millis = 1_718_640_000_000;
        assert_eq!(
            CivilDate::from_epoch_millis_shanghai(millis),
            CivilDate::new(2024, 6, 18).unwrap()
        );
        assert_eq!(
            CivilDate::from_epoch_millis_shanghai(millis - 1),
            CivilDate::new(2024, 6, 17).unwrap()
        );
    }
}
