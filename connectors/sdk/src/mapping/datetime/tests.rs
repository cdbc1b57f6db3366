//! Tests of `datetime`.

use super::*;

const SH: Zone = Zone::Fixed(SHANGHAI_OFFSET);

fn millis(text: &str, format: &str) -> Option<i64> {
    let f = Format::parse(format).unwrap();
    let p = parse(Input::Text(text), &[f])?;
    Some(utc_micros(p, &Zone::default()).ok()? / 1000)
}

/// 2021-09-14 09:21:00 in Beijing = 01:21:00Z.
const T: i64 = 1_631_582_460_000;

#[test]
fn auto_reads_what_chinese_systems_emit() {
    for text in [
        "2021/9/14 9:21",
        "2021-09-14 09:21:00",
        "2021-09-14 09:21",
        "2021年9月14日 9时21分",
        "2021年9月14日9时21分0秒",
        "2021年09月14日 09:21:00",
        "20210914092100",
        "202109140921",
        "2021-09-14T09:21:00+08:00",
        "2021-09-14T01:21:00Z",
        "2021-09-14T01:21:00.000Z",
        "2021-09-14 09:21:00.0",
        "2021.09.14 09:21",
        "1631582460",
        "1631582460000",
        "  2021-09-14 09:21:00  ",
        "2021-09-14 09:21:00 +0800",
        "2021-09-14\u{3000}09:21",
    ] {
        assert_eq!(millis(text, "auto"), Some(T), "{text}");
    }
    assert_eq!(millis("20210914", "auto"), Some(T - (9 * 60 + 21) * 60_000));
    assert_eq!(millis("2021-09-14T01:21:00.123456Z", "auto"), Some(T + 123));
    let p = parse(Input::Int(1_631_582_460), &[Format::Auto]).unwrap();
    assert_eq!(utc_micros(p, &SH).unwrap() / 1000, T);
    let p = parse(Input::Int(T), &[Format::Auto]).unwrap();
    assert_eq!(utc_micros(p, &SH).unwrap() / 1000, T);
    let p = parse(Input::Int(20_210_914_092_100), &[Format::Auto]).unwrap();
    assert_eq!(utc_micros(p, &SH).unwrap() / 1000, T);
}

#[test]
fn auto_rejects_garbage_and_impossible_dates() {
    for text in [
        "",
        "abc",
        "2021-13-01",
        "2021-02-29",
        "2021-09-14 24:00",
        "2021-09-14 09:60",
        "2021/9/14 9",
        "2021-09-14x",
        "2021-09-14 09:21:00 +25:00",
        "99999999999999999999",
        "2021年9月",
        "2021-9/14",
        "12345678901234567",
        "-",
    ] {
        assert_eq!(millis(text, "auto"), None, "{text:?}");
    }
    assert!(parse(Input::Float(f64::NAN), &[Format::Auto]).is_none());
    assert!(parse(Input::Int(i64::MAX), &[Format::EpochSeconds]).is_none());
    assert!(parse(Input::Int(i64::MIN), &[Format::Auto]).is_none());
}

#[test]
fn patterns_read_exactly_what_they_say() {
    assert_eq!(millis("2021/9/14 9:21", "%Y/%m/%d %H:%M"), Some(T));
    assert_eq!(millis("20210914092100", "%Y%m%d%H%M%S"), Some(T));
    assert_eq!(
        millis("2021年9月14日 9时21分", "%Y年%m月%d日 %H时%M分"),
        Some(T)
    );
    assert_eq!(millis("2021-09-14 09:21:00.5", "%F %T%.f"), Some(T + 500));
    assert_eq!(millis("2021-09-14 09:21:00", "%F %T%.f"), Some(T));
    assert_eq!(
        millis("14/09/2021 01:21 +0000", "%d/%m/%Y %H:%M %z"),
        Some(T)
    );
    assert_eq!(millis("2021-09-14", "%Y/%m/%d"), None);
    assert_eq!(millis("2021/9/14 9:21:00", "%Y/%m/%d %H:%M"), None);
    assert_eq!(millis("2021091409210", "%Y%m%d%H%M%S"), None);
    let p = parse(Input::Int(20_210_914), &[Format::parse("%Y%m%d").unwrap()]).unwrap();
    assert_eq!(date_days(p, &SH), 18_884);
}

#[test]
fn bad_patterns_are_rejected_with_a_reason() {
    for (bad, needle) in [
        ("%Y-%m", "no %d"),
        ("%Y-%m-%d %Q", "%Q is not supported"),
        ("%Y-%m-%d %", "lone %"),
        ("yyyy-MM-dd", "neither"),
        ("%Y-%m-%d %S", "%S needs %M"),
    ] {
        let e = Format::parse(bad).unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn epoch_formats_and_zones() {
    let p = parse(Input::Text("1631582460"), &[Format::EpochSeconds]).unwrap();
    assert_eq!(utc_micros(p, &SH).unwrap(), T * 1000);
    let p = parse(Input::Text("1631582460000"), &[Format::EpochMillis]).unwrap();
    assert_eq!(utc_micros(p, &SH).unwrap(), T * 1000);
    let p = parse(Input::Float(1_631_582_460.25), &[Format::EpochSeconds]).unwrap();
    assert_eq!(utc_micros(p, &SH).unwrap(), T * 1000 + 250_000);
    // The same wall-clock time in New York (EDT, UTC-4, in September).
    let ny = Zone::parse("America/New_York").unwrap();
    let p = parse(Input::Text("2021-09-14 09:21"), &[Format::Auto]).unwrap();
    assert_eq!(utc_micros(p, &ny).unwrap() / 1000, T + 12 * 3_600_000);
    assert_eq!(Zone::parse("+05:30").unwrap(), Zone::Fixed(19_800));
    assert_eq!(Zone::parse("UTC").unwrap(), Zone::Fixed(0));
    assert!(Zone::parse("Mars/Olympus").is_err());
    assert!(Zone::parse("+25:00").is_err());
    // 1988 had daylight saving time in China: 1988-07-01 12:00 was UTC+9.
    let p = parse(Input::Text("1988-07-01 12:00"), &[Format::Auto]).unwrap();
    assert_eq!(
        utc_micros(p, &Zone::default()).unwrap() / 1000,
        583_729_200_000
    );
    // A wall-clock time the clocks skipped (New York, 2021-03-14 02:30).
    let p = parse(Input::Text("2021-03-14 02:30"), &[Format::Auto]).unwrap();
    assert!(utc_micros(p, &ny).is_err());
}

#[test]
fn dates_and_text_in_the_zone() {
    // 2021-09-13T20:00:00Z is already the 14th in Beijing.
    let p = parse(Input::Text("2021-09-13T20:00:00Z"), &[Format::Auto]).unwrap();
    assert_eq!(date_days(p, &Zone::default()), 18_884);
    assert_eq!(date_days(p, &Zone::Fixed(0)), 18_883);
    assert_eq!(
        to_text(p, &Zone::default()).unwrap(),
        "2021-09-14T04:00:00+08:00"
    );
    let p = parse(Input::Text("2021/9/14"), &[Format::Auto]).unwrap();
    assert_eq!(to_text(p, &Zone::default()).unwrap(), "2021-09-14");
    let p = parse(Input::Text("2021-09-14 09:21:00.25"), &[Format::Auto]).unwrap();
    assert_eq!(
        to_text(p, &Zone::default()).unwrap(),
        "2021-09-14T09:21:00.250+08:00"
    );
    assert_eq!(
        local_micros(p, &Zone::default()) / 1000,
        T + 8 * 3_600_000 + 250
    );
}

/// The parsers against chrono + the IANA database on random instants 1900–2099 (with the DST years of
/// 1919–1991 and leap days), in the forms the engine reads by pattern and by `auto`.
#[test]
fn agrees_with_chrono_on_random_instants() {
    use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
    let tz = Tz::Asia__Shanghai;
    let zone = Zone::default();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let first = NaiveDate::from_ymd_opt(1900, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let last = NaiveDate::from_ymd_opt(2099, 12, 31)
        .unwrap()
        .and_hms_opt(23, 59, 59)
        .unwrap()
        .and_utc()
        .timestamp();
    let formats: Vec<(&str, Vec<Format>, bool)> = vec![
        (
            "%Y-%m-%d %H:%M:%S",
            vec![Format::parse("%Y-%m-%d %H:%M:%S").unwrap()],
            true,
        ),
        ("%Y-%m-%d %H:%M:%S", vec![Format::Auto], true),
        (
            "%Y%m%d%H%M%S",
            vec![Format::parse("%Y%m%d%H%M%S").unwrap()],
            true,
        ),
        ("%Y%m%d%H%M%S", vec![Format::Auto], true),
        (
            "%Y/%-m/%-d %-H:%M",
            vec![Format::parse("%Y/%m/%d %H:%M").unwrap()],
            false,
        ),
        ("%Y/%-m/%-d %-H:%M", vec![Format::Auto], false),
        ("%Y年%-m月%-d日 %-H时%M分%S秒", vec![Format::Auto], true),
        ("%Y-%m-%dT%H:%M:%S", vec![Format::Iso8601], true),
    ];
    let (mut checked, mut leap_days, mut before_1992) = (0, 0, 0);
    for i in 0..20_000 {
        let n = next();
        let mut secs = first + (n % (last - first) as u64) as i64;
        if i % 10 == 0 {
            // Move to 29 February of a leap year near the instant.
            let d = DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            let year = d.year() - d.year() % 4;
            if let Some(leap) = NaiveDate::from_ymd_opt(year, 2, 29) {
                secs = leap.and_time(d.time()).and_utc().timestamp();
            }
        }
        let instant = DateTime::from_timestamp(secs, 0).unwrap();
        let wall = instant.with_timezone(&tz).naive_local();
        leap_days += usize::from(wall.month() == 2 && wall.day() == 29);
        before_1992 += usize::from(wall.year() < 1992);
        for (chrono_format, ours, has_seconds) in &formats {
            let text = wall.format(chrono_format).to_string();
            let naive: NaiveDateTime = if *has_seconds {
                wall
            } else {
                wall.date()
                    .and_hms_opt(wall.hour(), wall.minute(), 0)
                    .unwrap()
            };
            let want = tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|dt| dt.timestamp() * MICROS_PER_SEC);
            let parsed = parse(Input::Text(&text), ours)
                .unwrap_or_else(|| panic!("{text:?} with {chrono_format} did not parse"));
            assert_eq!(
                utc_micros(parsed, &zone).ok(),
                want,
                "{text:?} ({chrono_format})"
            );
            if let Some(want) = want {
                let back = tz.timestamp_opt(want / MICROS_PER_SEC, 0).unwrap();
                // Before 1901 Shanghai was on local mean time (+08:05:43), which the text form shows
                // truncated to whole minutes; compare the text only for whole-minute offsets.
                let whole_minutes = back.offset().fix().local_minus_utc() % 60 == 0;
                if whole_minutes {
                    assert_eq!(
                        to_text(parsed, &zone).unwrap(),
                        back.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                        "{text:?}"
                    );
                }
                assert_eq!(
                    date_days(parsed, &zone),
                    i64::from(naive.date().num_days_from_ce() - 719_163),
                    "{text:?}"
                );
            }
            checked += 1;
        }
        // The instant itself, as epoch seconds and as RFC 3339 in UTC.
        let p = parse(Input::Int(secs), &[Format::EpochSeconds]).unwrap();
        assert_eq!(utc_micros(p, &zone), Ok(secs * MICROS_PER_SEC));
        let rfc = instant.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let p = parse(Input::Text(&rfc), &[Format::Auto]).unwrap();
        assert_eq!(utc_micros(p, &zone), Ok(secs * MICROS_PER_SEC), "{rfc}");
        assert_eq!(
            local_micros(p, &zone),
            wall.and_utc().timestamp() * MICROS_PER_SEC,
            "{rfc}"
        );
    }
    assert!(checked >= 160_000 && leap_days > 1_000 && before_1992 > 5_000);
}

/// The position-based readers give exactly what the general parsers give, on valid and broken text.
#[test]
fn fast_paths_agree_with_the_general_parsers() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let patterns: Vec<(Format, FastPattern)> = [
        ("%Y-%m-%d %H:%M:%S", FastPattern::DashedSeconds),
        ("%F %T", FastPattern::DashedSeconds),
        ("%Y-%m-%d %H:%M", FastPattern::DashedMinutes),
        ("%Y%m%d%H%M%S", FastPattern::Compact),
    ]
    .into_iter()
    .map(|(p, want)| (Format::parse(p).unwrap(), want))
    .collect();
    for (format, want) in &patterns {
        let Format::Pattern { fast, .. } = format else {
            panic!("{format}")
        };
        assert_eq!(*fast, Some(*want), "{format}");
    }
    for p in [
        "%Y/%m/%d %H:%M",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S",
        "%Y%m%d",
    ] {
        assert!(
            matches!(
                Format::parse(p).unwrap(),
                Format::Pattern { fast: None, .. }
            ),
            "{p}"
        );
    }
    let noise = [
        "0", "9", "-", ":", " ", "T", "/", "a", "\u{3000}", "一", "+", ".", "5", "",
    ];
    let (mut fast_hits, mut valid) = (0, 0);
    for _ in 0..300_000 {
        let n = next();
        let mut text = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            (n % 10_000),
            (n >> 14) % 14,
            (n >> 18) % 33,
            (n >> 24) % 26,
            (n >> 30) % 62,
            (n >> 36) % 62
        );
        match (n >> 42) % 6 {
            0 => text.truncate(16),
            1 => text = text.replace(['-', ' ', ':'], ""),
            2 => {
                let pos = ((n >> 46) % text.len() as u64) as usize;
                let with = noise[((n >> 52) % noise.len() as u64) as usize];
                text.replace_range(pos..pos + 1, with);
            }
            3 => text.replace_range(10..11, "T"),
            _ => {}
        }
        for iso_only in [false, true] {
            if let Some(fast) = fixed_width(text.as_bytes()) {
                fast_hits += 1;
                assert_eq!(fast, flexible_general(&text, iso_only), "{text:?}");
            }
        }
        for (format, _) in &patterns {
            let Format::Pattern { items, fast, .. } = format else {
                continue;
            };
            let general = pattern(text.trim(), items);
            valid += usize::from(general.is_some());
            assert_eq!(
                parse(Input::Text(&text), std::slice::from_ref(format)),
                general,
                "{text:?} with {format}"
            );
            if let Some(f) = fast {
                if let Some(read) = f.read(text.trim()) {
                    assert_eq!(read, general, "{text:?} with {format}");
                }
            }
        }
    }
    assert!(fast_hits > 100_000 && valid > 50_000, "{fast_hits} {valid}");
}
