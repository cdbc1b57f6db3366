//! The working-day calendar the 政务数据共享条例's deadlines run on (Art. 21–22, 26: answers within 1 or 10
//! working days, delivery within 20): Monday to Friday, less the public holidays and make-up days off of the
//! year (放假调休), plus the weekend days worked instead (调休上班), as the State Council's notice for each year
//! sets them.
//!
//! One TOML file per year (`data/calendar/<year>.toml`): `year`, `source` (the notice), `holidays` and `workdays`
//! as dates or inclusive ranges `"A..B"`. The years shipped are compiled in ([`WorkingCalendar::shipped`]); an
//! operator adds the next year's notice, or corrects one, with files of their own
//! ([`WorkingCalendar::with_dir`]), which replace a shipped year of the same number. A date in a year no file
//! covers is an error naming the year — a deadline is never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;

/// The years shipped with unsilo, from the State Council's notices.
const SHIPPED: &[(&str, &str)] = &[
    ("2025.toml", include_str!("../data/calendar/2025.toml")),
    ("2026.toml", include_str!("../data/calendar/2026.toml")),
];

/// Beijing time's offset from UTC, in milliseconds (China has no daylight saving time).
const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;

/// The calendar day in Beijing of an instant (ms since the epoch).
pub fn beijing_day(ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms.saturating_add(BEIJING_OFFSET_MS))
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// An instant as `YYYY-MM-DD HH:MM:SS`, Beijing time (`—` for one no calendar can show).
pub fn beijing_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms.saturating_add(BEIJING_OFFSET_MS))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// The first millisecond of `day` in Beijing (its midnight, ms since the epoch).
pub fn start_of_beijing_day(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_millis()
        - BEIJING_OFFSET_MS
}

/// The last millisecond of `day` in Beijing (ms since the epoch).
pub fn end_of_beijing_day(day: NaiveDate) -> i64 {
    start_of_beijing_day(day + Days::new(1)) - 1
}

/// Why a calendar could not be read, or a date not placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A year's file is not what it should be.
    #[error("calendar file {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// No file covers the year.
    #[error("the working-day calendar has no year {0}: add data/calendar/{0}.toml from the State Council's notice for {0} to the calendar directory")]
    YearNotCovered(i32),
}

/// One year's file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    source: String,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    workdays: Vec<String>,
}

/// One year: its days off on weekdays and its worked weekend days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Year {
    /// The notice it comes from.
    pub source: String,
    /// Days off (holidays and make-up days off), whatever the weekday.
    pub holidays: BTreeSet<NaiveDate>,
    /// Weekend days worked (调休上班).
    pub workdays: BTreeSet<NaiveDate>,
}

/// The working days of the years the calendar covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkingCalendar {
    years: BTreeMap<i32, Year>,
}

fn invalid(file: &str, reason: impl Into<String>) -> CalendarError {
    CalendarError::Invalid {
        file: file.to_owned(),
        reason: reason.into(),
    }
}

/// The dates of `entries` (dates and inclusive ranges `A..B`), all in `year`.
fn dates(file: &str, year: i32, entries: &[String]) -> Result<BTreeSet<NaiveDate>, CalendarError> {
    let parse = |text: &str| {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| invalid(file, format!("`{text}` is not a date (YYYY-MM-DD)")))
    };
    let mut out = BTreeSet::new();
    for entry in entries {
        let (from, to) = match entry.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let d = parse(entry)?;
                (d, d)
            }
        };
        if to < from || to.signed_duration_since(from).num_days() > 31 {
            return Err(invalid(
                file,
                format!("`{entry}` is not a range of at most a month"),
            ));
        }
        let mut day = from;
        while day <= to {
            if day.year() != year {
                return Err(invalid(file, format!("{day} is not in {year}")));
            }
            out.insert(day);
            day = day + Days::new(1);
        }
    }
    Ok(out)
}

fn is_weekend(day: NaiveDate) -> bool {
    matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

impl WorkingCalendar {
    /// The years shipped with unsilo (2025 and 2026).
    pub fn shipped() -> Result<Self, CalendarError> {
        let mut calendar = Self::default();
        for (name, text) in SHIPPED {
            calendar.add(name, text)?;
        }
        Ok(calendar)
    }

    /// The shipped years, with the `*.toml` files of `dir` added (a year of the same number replaces the
    /// shipped one).
    pub fn with_dir(dir: &Path) -> Result<Self, CalendarError> {
        let mut calendar = Self::shipped()?;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| invalid(&dir.display().to_string(), e.to_string()))?;
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| invalid(&name, e.to_string()))?;
            calendar.add(&name, &text)?;
        }
        Ok(calendar)
    }

    /// Adds (or replaces) the year a file describes; the file is checked: dates in its year, worked days on
    /// weekends only, no day both off and worked.
    pub fn add(&mut self, file: &str, text: &str) -> Result<(), CalendarError> {
        let parsed: YearFile = toml::from_str(text).map_err(|e| invalid(file, e.to_string()))?;
        let holidays = dates(file, parsed.year, &parsed.holidays)?;
        let workdays = dates(file, parsed.year, &parsed.workdays)?;
        if let Some(day) = workdays.iter().find(|d| !is_weekend(**d)) {
            return Err(invalid(
                file,
                format!(
                    "{day} is a {} — a make-up working day (调休上班) is a Saturday or Sunday",
                    day.weekday()
                ),
            ));
        }
        if let Some(day) = holidays.intersection(&workdays).next() {
            return Err(invalid(
                file,
                format!("{day} is both a holiday and a working day"),
            ));
        }
        if parsed.source.trim().is_empty() {
            return Err(invalid(
                file,
                "`source` must name the notice the year comes from",
            ));
        }
        self.years.insert(
            parsed.year,
            Year {
                source: parsed.source,
                holidays,
                workdays,
            },
        );
        Ok(())
    }

    /// The shipped years, with those of `dir` (if given) added or replacing them.
    pub fn for_deployment(dir: Option<&Path>) -> Result<Self, CalendarError> {
        match dir {
            Some(dir) => Self::with_dir(dir),
            None => Self::shipped(),
        }
    }

    /// The years covered.
    pub fn years(&self) -> impl Iterator<Item = (&i32, &Year)> {
        self.years.iter()
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> Result<bool, CalendarError> {
        let year = self
            .years
            .get(&day.year())
            .ok_or(CalendarError::YearNotCovered(day.year()))?;
        Ok(if year.holidays.contains(&day) {
            false
        } else {
            !is_weekend(day) || year.workdays.contains(&day)
        })
    }

    /// The day a time limit of `working_days` ends when it starts on `start` (a request filed that day): the
    /// `working_days`-th working day after `start` (`start` itself never counts). The limit runs to the end of
    /// that day, Beijing time.
    pub fn due_day(&self, start: NaiveDate, working_days: u32) -> Result<NaiveDate, CalendarError> {
        match self.due_day_or_weekdays(start, working_days) {
            (day, None) => Ok(day),
            (_, Some(year)) => Err(CalendarError::YearNotCovered(year)),
        }
    }

    /// Like [`Self::due_day`], but where a day lies in a year no file covers, Monday to Friday count as working
    /// days there, and the uncovered year is returned beside the day: the deadline is then provisional (shown
    /// as such, with the year to add), never silently treated as exact.
    pub fn due_day_or_weekdays(
        &self,
        start: NaiveDate,
        working_days: u32,
    ) -> (NaiveDate, Option<i32>) {
        let mut day = start;
        let mut left = working_days;
        let mut uncovered = None;
        while left > 0 {
            day = day + Days::new(1);
            let working = self.is_working_day(day).unwrap_or_else(|_| {
                uncovered.get_or_insert(day.year());
                !is_weekend(day)
            });
            if working {
                left -= 1;
            }
        }
        (day, uncovered)
    }

    /// The due time of a limit of `working_days` that starts at `start_ms`: the last millisecond of the due
    /// working day, Beijing time, and the uncovered year if the deadline is provisional (see
    /// [`Self::due_day_or_weekdays`]).
    pub fn due_time(&self, start_ms: i64, working_days: u32) -> (i64, Option<i32>) {
        let (day, uncovered) = self.due_day_or_weekdays(beijing_day(start_ms), working_days);
        (end_of_beijing_day(day), uncovered)
    }

    /// Working days after `from` up to and including `to` (0 when `to` is not after `from`).
    pub fn working_days_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<u32, CalendarError> {
        let mut n = 0;
        let mut day = from;
        while day < to {
            day = day + Days::new(1);
            if self.is_working_day(day)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_shipped_years_follow_the_notices() {
        let c = WorkingCalendar::shipped().unwrap();
        // 2026: 春节 nine days off, two Saturdays worked; 国庆 seven days, a Sunday and a Saturday worked.
        let y = &c.years[&2026];
        assert_eq!(y.holidays.iter().filter(|h| h.month() == 2).count(), 9);
        assert_eq!(y.workdays.len(), 6);
        assert!(y.source.contains("2026"));
        // 2025: 国庆节、中秋节 eight days.
        assert_eq!(
            c.years[&2025]
                .holidays
                .iter()
                .filter(|h| h.month() == 10)
                .count(),
            8
        );
    }

    #[test]
    fn a_make_up_saturday_counts_and_a_holiday_does_not() {
        let c = WorkingCalendar::shipped().unwrap();
        assert!(c.is_working_day(d("2026-02-14")).unwrap(), "调休 Saturday");
        assert!(c.is_working_day(d("2026-09-20")).unwrap(), "调休 Sunday");
        assert!(!c.is_working_day(d("2026-10-01")).unwrap(), "国庆节");
        assert!(
            !c.is_working_day(d("2026-02-23")).unwrap(),
            "a Monday off (春节)"
        );
        assert!(
            !c.is_working_day(d("2026-03-07")).unwrap(),
            "an ordinary Saturday"
        );
        assert!(
            c.is_working_day(d("2026-03-09")).unwrap(),
            "an ordinary Monday"
        );
        // A request filed on Friday 18 September 2026 for 1 working day is due on the worked Sunday.
        assert_eq!(c.due_day(d("2026-09-18"), 1).unwrap(), d("2026-09-20"));
        // 10 working days from 24 September cross 中秋 and 国庆 (and count the worked Saturday 10 October):
        // due 15 October.
        assert_eq!(c.due_day(d("2026-09-24"), 10).unwrap(), d("2026-10-15"));
        // Extended once by 10 more working days.
        assert_eq!(c.due_day(d("2026-10-15"), 10).unwrap(), d("2026-10-29"));
        assert_eq!(
            c.working_days_between(d("2026-09-24"), d("2026-10-15"))
                .unwrap(),
            10
        );
        assert_eq!(c.due_day(d("2026-09-24"), 0).unwrap(), d("2026-09-24"));
    }

    #[test]
    fn a_year_without_a_notice_is_an_error_never_a_guess() {
        let c = WorkingCalendar::shipped().unwrap();
        let err = c.due_day(d("2026-12-28"), 10).unwrap_err();
        assert_eq!(err, CalendarError::YearNotCovered(2027));
        assert!(err.to_string().contains("2027.toml"), "{err}");
        // An operator adds the year; a weekday listed as a make-up working day is refused.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("2027.toml"),
            "year = 2027\nsource = \"notice\"\nholidays = [\"2027-01-01\"]\nworkdays = [\"2027-01-04\"]\n",
        )
        .unwrap();
        let err = WorkingCalendar::with_dir(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Saturday or Sunday"), "{err}");
        std::fs::write(
            dir.path().join("2027.toml"),
            "year = 2027\nsource = \"notice\"\nholidays = [\"2027-01-01\"]\n",
        )
        .unwrap();
        let c = WorkingCalendar::with_dir(dir.path()).unwrap();
        assert_eq!(c.due_day(d("2026-12-31"), 1).unwrap(), d("2027-01-04"));
        let err = WorkingCalendar::default()
            .add(
                "x.toml",
                "year = 2027\nsource = \"n\"\nholidays = [\"2026-01-01\"]\n",
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("not in 2027"), "{err}");
    }

    #[test]
    fn a_deadline_into_an_uncovered_year_is_provisional_and_ends_at_midnight_beijing() {
        let c = WorkingCalendar::shipped().unwrap();
        // Friday 25 December 2026 + 10 working days: weekdays counted in 2027, and 2027 named.
        assert_eq!(
            c.due_day_or_weekdays(d("2026-12-25"), 10),
            (d("2027-01-08"), Some(2027))
        );
        assert_eq!(
            c.due_day_or_weekdays(d("2026-09-18"), 1),
            (d("2026-09-20"), None)
        );
        // 2026-09-18 10:00 Beijing = 02:00 UTC; due at the end of Sunday 20 September, Beijing.
        let start = chrono::NaiveDate::from_ymd_opt(2026, 9, 18)
            .unwrap()
            .and_hms_opt(2, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let (due, uncovered) = c.due_time(start, 1);
        assert_eq!(uncovered, None);
        let due_utc = chrono::DateTime::from_timestamp_millis(due).unwrap();
        assert_eq!(due_utc.to_rfc3339(), "2026-09-20T15:59:59.999+00:00");
        assert_eq!(beijing_day(due), d("2026-09-20"));
        assert_eq!(beijing_day(due + 1), d("2026-09-21"));
    }
}
