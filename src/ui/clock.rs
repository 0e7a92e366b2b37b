//! Turn times as the visitor reads them: RFC 3339 timestamps from the BFF shown as `HH:MM`
//! on the visitor's own clock. Parsing is plain Rust (tested natively); only the local
//! offset comes from the browser.

/// Seconds since the Unix epoch of an RFC 3339 timestamp (`2026-11-29T08:30:01Z`,
/// `2026-11-29T09:30:01.25+01:00`), or `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = bytes.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0i64, |n, d| Some(n * 10 + i64::from(d - b'0')))
    };
    let at = |index: usize, allowed: &[u8]| bytes.get(index).is_some_and(|b| allowed.contains(b));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return None;
        }
        rest = &fraction[end..];
    }
    let offset_minutes = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let number = |a: &u8, b: &u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (hours, minutes) = (number(h1, h2)?, number(m1, m2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60)
}

/// `HH:MM` of the instant on a clock `offset_minutes` east of UTC.
pub fn hh_mm(epoch_seconds: i64, offset_minutes: i32) -> String {
    let local = epoch_seconds + i64::from(offset_minutes) * 60;
    let minute_of_day = local.div_euclid(60).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// The instant as `YYYY-MM-DDTHH:MM:SSZ`: a valid HTML `datetime` value whatever precision
/// or offset the BFF wrote.
pub fn iso_utc(epoch_seconds: i64) -> String {
    let days = epoch_seconds.div_euclid(86_400);
    let second_of_day = epoch_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// The browser's offset from UTC at that instant, in minutes east, so times either side of
/// a daylight-saving change are both right.
pub fn local_offset_minutes(epoch_seconds: i64) -> i32 {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        epoch_seconds as f64 * 1000.0,
    ));
    let west = date.get_timezone_offset();
    if west.is_finite() { -(west as i32) } else { 0 }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01, the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_parse_to_epoch_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_rfc3339("2026-11-29T08:30:01Z"), Some(1_795_941_001));
        assert_eq!(
            parse_rfc3339("2026-11-29T08:30:01.123456z"),
            Some(1_795_941_001)
        );
    }

    #[test]
    fn offsets_are_honoured() {
        assert_eq!(
            parse_rfc3339("2026-11-29T09:30:01+01:00"),
            parse_rfc3339("2026-11-29T08:30:01Z")
        );
        assert_eq!(
            parse_rfc3339("2026-11-29T03:00:01-05:30"),
            parse_rfc3339("2026-11-29T08:30:01Z")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "yesterday",
            "2026-11-29",
            "2026-11-29T08:30Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T08:30:01",
            "2026-11-29T08:30:01.Z",
            "2026-11-29T08:30:01+0100",
            "2026-11-29T08:30:01Z trailing",
            "２０２６-11-29T08:30:01Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(
            parse_rfc3339("2024-02-29T00:00:00Z").is_some(),
            "a leap day"
        );
    }

    #[test]
    fn clock_time_on_the_visitors_offset() {
        let at = parse_rfc3339("2026-11-29T08:30:01Z").expect("valid");
        assert_eq!(hh_mm(at, 0), "08:30");
        assert_eq!(hh_mm(at, 60), "09:30");
        assert_eq!(hh_mm(at, -9 * 60), "23:30", "the day before in Alaska");
        assert_eq!(hh_mm(at, 16 * 60), "00:30", "the next day");
        assert_eq!(hh_mm(-1, 0), "23:59", "before the epoch");
    }

    #[test]
    fn datetime_attributes_are_normalised_to_utc() {
        for (given, expected) in [
            ("2026-11-29T09:30:01.123456+01:00", "2026-11-29T08:30:01Z"),
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
            ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
            ("2000-01-01T00:30:00+01:00", "1999-12-31T23:30:00Z"),
        ] {
            let at = parse_rfc3339(given).expect("valid");
            assert_eq!(iso_utc(at), expected, "{given}");
        }
    }
}
