//! HTTP-date (RFC 9110 §5.6.7) to and from Unix seconds.
//!
//! Providers send `Retry-After` either as seconds or as an HTTP-date, and every response carries a
//! `Date`; the machine compares the two to learn how long to wait without reading a clock. The mock
//! provider writes `Date` with [`format_http_date`]. Pure calendar arithmetic (Howard Hinnant's
//! days-from-civil), no crates, no clock.

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP-date into Unix seconds.
///
/// Accepts the three forms RFC 9110 tells recipients to accept:
/// - IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` (what every current server sends),
/// - obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit years 70-99 are 19xx, 00-69 20xx),
/// - obsolete asctime `Sun Nov  6 08:49:37 1994`.
///
/// Returns `None` for anything else: surrounding whitespace is trimmed, but a wrong or unknown
/// weekday name (`Zun`, or `Mon` for a Sunday), an out-of-range field (`31 Feb`, `24:00:00`), a
/// zone other than `GMT`, or a date before 1970 is rejected, so garbage never becomes a wait.
/// A leap second (`:60`) is accepted and counts as the next second.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    if !s.is_ascii() {
        return None;
    }
    let parsed = parse_imf_fixdate(s)
        .or_else(|| parse_rfc850(s))
        .or_else(|| parse_asctime(s))?;
    parsed.to_unix()
}

/// Formats Unix seconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form a `Date`
/// header must use. Years past 9999 print with more digits (never reached by a real clock).
pub fn format_http_date(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    // u64::MAX / 86_400 fits an i64 comfortably.
    let (year, month, day) = civil_from_days(days as i64);
    let weekday = weekday_from_days(days as i64);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[weekday],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// The fields of a date before checking, with the weekday as an index into [`DAYS`].
#[derive(Debug)]
struct Parts {
    weekday: usize,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Parts {
    fn to_unix(&self) -> Option<u64> {
        if !(1970..=9999).contains(&self.year)
            || !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        if weekday_from_days(days) != self.weekday {
            return None;
        }
        let secs = days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second);
        u64::try_from(secs).ok()
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`: fixed width, 29 bytes.
fn parse_imf_fixdate(s: &str) -> Option<Parts> {
    let b = s.as_bytes();
    if b.len() != 29
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || &s[25..] != " GMT"
    {
        return None;
    }
    let (hour, minute, second) = parse_time(&s[17..25])?;
    Some(Parts {
        weekday: DAYS.iter().position(|d| *d == &s[..3])?,
        day: digits(&s[5..7])?,
        month: month(&s[8..11])?,
        year: i64::from(digits(&s[12..16])?),
        hour,
        minute,
        second,
    })
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`.
fn parse_rfc850(s: &str) -> Option<Parts> {
    let (day_name, rest) = s.split_once(", ")?;
    let weekday = LONG_DAYS.iter().position(|d| *d == day_name)?;
    let b = rest.as_bytes();
    // `06-Nov-94 08:49:37 GMT`: 22 bytes.
    if b.len() != 22 || b[2] != b'-' || b[6] != b'-' || b[9] != b' ' || &rest[18..] != " GMT" {
        return None;
    }
    let yy = i64::from(digits(&rest[7..9])?);
    let (hour, minute, second) = parse_time(&rest[10..18])?;
    Some(Parts {
        weekday,
        day: digits(&rest[..2])?,
        month: month(&rest[3..6])?,
        year: if yy < 70 { 2000 + yy } else { 1900 + yy },
        hour,
        minute,
        second,
    })
}

/// `Sun Nov  6 08:49:37 1994`: fixed width, 24 bytes, the day padded with a space.
fn parse_asctime(s: &str) -> Option<Parts> {
    let b = s.as_bytes();
    if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    let day = match (b[8], b[9]) {
        (b' ', d) if d.is_ascii_digit() => u32::from(d - b'0'),
        _ => digits(&s[8..10])?,
    };
    let (hour, minute, second) = parse_time(&s[11..19])?;
    Some(Parts {
        weekday: DAYS.iter().position(|d| *d == &s[..3])?,
        day,
        month: month(&s[4..7])?,
        year: i64::from(digits(&s[20..24])?),
        hour,
        minute,
        second,
    })
}

/// `08:49:37`.
fn parse_time(s: &str) -> Option<(u32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((digits(&s[..2])?, digits(&s[3..5])?, digits(&s[6..])?))
}

/// A run of ASCII digits only (no sign, no spaces: `str::parse` would accept `+1`).
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant, `days_from_civil`); also used by
/// the RFC 3339 parser in `state::rate_limit_headers`.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant, `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Index into [`DAYS`] (Monday = 0); 1970-01-01 was a Thursday.
fn weekday_from_days(days: i64) -> usize {
    (days + 3).rem_euclid(7) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const RFC_EXAMPLE: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn the_three_rfc_9110_forms_of_one_instant() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT\t"),
            Some(RFC_EXAMPLE)
        );
    }

    #[test]
    fn known_instants() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        // The Anthropic SDK test's fixed clock.
        assert_eq!(
            parse_http_date("Fri, 29 Sep 2023 16:26:37 GMT"),
            Some(1_696_004_797)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799)
        );
        assert_eq!(
            parse_http_date("Sunday, 01-Jan-17 00:00:00 GMT"),
            Some(1_483_228_800)
        );
        assert_eq!(
            parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT"),
            Some(1_483_228_800)
        );
        assert_eq!(
            format_http_date(RFC_EXAMPLE),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(1_696_004_797),
            "Fri, 29 Sep 2023 16:26:37 GMT"
        );
    }

    #[test]
    fn rejects_garbage_and_out_of_range_fields() {
        for s in [
            "",
            "garbage",
            "20",
            "Zun, 29 Sep 2023 16:26:27 GMT", // unknown weekday
            "Mon, 29 Sep 2023 16:26:27 GMT", // 29 Sep 2023 was a Friday
            "Fri, 29 Sep 2023 16:26:27 UTC",
            "Fri, 29 Sep 2023 16:26:27 +0000",
            "Fri, 29 Sep 2023 16:26:27",
            "Fri, 29 Zep 2023 16:26:27 GMT",
            "Fri, 29 Sep 2023 24:00:00 GMT",
            "Fri, 29 Sep 2023 16:60:00 GMT",
            "Fri, 29 Sep 2023 16:26:61 GMT",
            "Sat, 00 Sep 2023 16:26:27 GMT",
            "Sun, 31 Sep 2023 16:26:27 GMT",
            "Thu, 29 Feb 2023 00:00:00 GMT", // 2023 is not a leap year
            "Mon, 29 Feb 1900 00:00:00 GMT", // before 1970 (and 1900 was not leap)
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Fri, 29 Sep 2023 1a:26:27 GMT",
            "Fri, 29 Sep +023 16:26:27 GMT",
            "Fri,  29 Sep 2023 16:26:27 GMT",
            "fri, 29 sep 2023 16:26:27 GMT",
            "Friday, 29-Sep-2023 16:26:27 GMT",
            "Fri, 29-Sep-23 16:26:27 GMT",
            "Fri Sep 29 16:26:27 2023 GMT",
            "Fri, 29 Sép 2023 16:26:27 GM",
        ] {
            assert_eq!(parse_http_date(s), None, "{s:?}");
        }
    }

    #[test]
    fn round_trips_every_form_over_many_instants() {
        let mut rng = Rng::new(0x5eed);
        let last = 253_402_300_799; // Fri, 31 Dec 9999 23:59:59 GMT
        let edges = [
            0,
            1,
            86_399,
            86_400,
            951_782_400,
            951_868_800,
            1_696_004_797,
            last,
        ];
        let random = (0..20_000).map(|_| rng.below(last + 1));
        for t in edges.into_iter().chain(random) {
            let imf = format_http_date(t);
            assert_eq!(imf.len(), 29, "{imf}");
            assert_eq!(parse_http_date(&imf), Some(t), "{imf}");

            let (year, month, day) = civil_from_days((t / 86_400) as i64);
            let wd = weekday_from_days((t / 86_400) as i64);
            let hms = &imf[17..25];
            let asctime = format!(
                "{} {} {day:>2} {hms} {year:04}",
                DAYS[wd],
                MONTHS[month as usize - 1]
            );
            assert_eq!(parse_http_date(&asctime), Some(t), "{asctime}");
            if (1970..2070).contains(&year) {
                let rfc850 = format!(
                    "{}, {day:02}-{}-{:02} {hms} GMT",
                    LONG_DAYS[wd],
                    MONTHS[month as usize - 1],
                    year % 100
                );
                assert_eq!(parse_http_date(&rfc850), Some(t), "{rfc850}");
            }
        }
    }

    #[test]
    fn civil_arithmetic_agrees_day_by_day() {
        // Walk every day from 1970 to 2400 and check against a naive calendar.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..days_from_civil(2400, 1, 1) {
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(civil_from_days(days), (y, m, d));
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn formatting_never_panics_on_huge_values() {
        let s = format_http_date(u64::MAX);
        assert!(s.ends_with(" GMT"), "{s}");
        assert_eq!(parse_http_date(&s), None);
    }
}
