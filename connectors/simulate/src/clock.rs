//! Time helpers the simulators share: Beijing time (UTC+8, no daylight saving since 1991), millisecond
//! arithmetic, and formatting epoch milliseconds the way each source system writes times.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset, Offset, Utc};

/// One second in milliseconds.
pub(crate) const SECOND: i64 = 1_000;
/// One minute in milliseconds.
pub(crate) const MINUTE: i64 = 60 * SECOND;
/// One hour in milliseconds.
pub(crate) const HOUR: i64 = 60 * MINUTE;
/// One day in milliseconds.
pub(crate) const DAY: i64 = 24 * HOUR;
/// Beijing time's offset from UTC, in seconds.
pub(crate) const BEIJING_OFFSET_SECS: i32 = 8 * 3600;

/// The Beijing time zone as a fixed offset.
pub(crate) fn beijing() -> FixedOffset {
    // UTC+8 is always a valid offset; the fallback only keeps this free of panics.
    FixedOffset::east_opt(BEIJING_OFFSET_SECS).unwrap_or(Utc.fix())
}

/// Epoch milliseconds formatted in Beijing time with a chrono `pattern` (empty if out of range).
pub(crate) fn format_with(ms: i64, pattern: &str) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&beijing()).format(pattern).to_string())
        .unwrap_or_default()
}

/// Whole seconds (source systems write times to the second).
pub(crate) fn floor_second(ms: i64) -> i64 {
    ms.div_euclid(SECOND) * SECOND
}

/// 18:00 Beijing time on the day `ms` falls on (deadlines end at close of business).
pub(crate) fn close_of_business(ms: i64) -> i64 {
    let offset = i64::from(BEIJING_OFFSET_SECS) * SECOND;
    ms.saturating_add(offset).div_euclid(DAY) * DAY + 18 * HOUR - offset
}

/// Now, in epoch milliseconds.
pub(crate) fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A fixed start for the simulators' tests: 2024-09-14 08:00 Beijing time.
#[cfg(test)]
pub(crate) fn test_start() -> chrono::DateTime<FixedOffset> {
    chrono::DateTime::parse_from_rfc3339("2024-09-14T08:00:00+08:00").expect("valid time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_of_business_is_six_pm_beijing_on_the_same_day() {
        // 2024-06-18 09:32:15 +08:00
        let ms = 1_718_674_335_000;
        assert_eq!(
            format_with(close_of_business(ms), "%Y-%m-%d %H:%M:%S"),
            "2024-06-18 18:00:00"
        );
        // 2024-06-18 23:30 +08:00 is still the 18th in Beijing.
        let late = 1_718_724_600_000;
        assert_eq!(
            format_with(close_of_business(late), "%Y-%m-%d %H:%M"),
            "2024-06-18 18:00"
        );
        assert_eq!(floor_second(1_500), 1_000);
    }
}
