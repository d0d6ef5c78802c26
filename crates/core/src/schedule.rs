//! When a campaign may send: a daily window in a time zone (ICTCore/SCFM operators send
//! 08:00–20:00 local time), and the pacing slots a `rate_per_minute` gives.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Local times of day between which sending is allowed, in a time zone. `start > end`
/// spans midnight (22:00–06:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub tz: Tz,
}

/// Parse `HH:MM` (or `HH:MM:SS`).
pub fn parse_time_of_day(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M:%S"))
        .ok()
}

/// Parse an IANA time zone name (`Africa/Nairobi`, `UTC`).
pub fn parse_time_zone(s: &str) -> Option<Tz> {
    s.trim().parse().ok()
}

impl DailyWindow {
    /// Is sending allowed at `t`?
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.tz).time();
        if self.start <= self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// When the window that is open at `t` closes (the first instant after `t` at which
    /// it is shut). `None` when it is not open at `t`.
    pub fn closes_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.is_open(t) {
            return None;
        }
        self.next_boundary(t, self.end)
    }

    /// When the window next opens at or after `t` (`t` itself when open).
    pub fn opens_at(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_open(t) {
            return t;
        }
        self.next_boundary(t, self.start).unwrap_or(t)
    }

    /// The first instant after `t` whose local time is `at`, looking up to two days on
    /// (a local time skipped by a daylight-saving change is taken an hour later).
    fn next_boundary(&self, t: DateTime<Utc>, at: NaiveTime) -> Option<DateTime<Utc>> {
        let day = t.with_timezone(&self.tz).date_naive();
        (0..3).find_map(|d| {
            let date = day + Duration::days(d);
            let local = date.and_time(at);
            let instant = self
                .tz
                .from_local_datetime(&local)
                .earliest()
                .or_else(|| self.tz.from_local_datetime(&(local + Duration::hours(1))).earliest())?
                .with_timezone(&Utc);
            (instant > t).then_some(instant)
        })
    }
}

/// The gap between two sends at `per_minute`.
pub fn slot_interval(per_minute: i64) -> Duration {
    Duration::microseconds(60_000_000 / per_minute.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn nairobi() -> DailyWindow {
        DailyWindow {
            start: parse_time_of_day("08:00").unwrap(),
            end: parse_time_of_day("20:00").unwrap(),
            tz: parse_time_zone("Africa/Nairobi").unwrap(),
        }
    }

    #[test]
    fn a_window_is_read_in_its_time_zone() {
        let w = nairobi();
        // Nairobi is UTC+3: 08:00 local is 05:00 UTC.
        assert!(!w.is_open(at("2026-12-01T04:59:59Z")));
        assert!(w.is_open(at("2026-12-01T05:00:00Z")));
        assert!(w.is_open(at("2026-12-01T16:59:59Z")));
        assert!(!w.is_open(at("2026-12-01T17:00:00Z")));
        assert_eq!(
            w.closes_after(at("2026-12-01T10:00:00Z")),
            Some(at("2026-12-01T17:00:00Z"))
        );
        assert_eq!(w.closes_after(at("2026-12-01T18:00:00Z")), None);
        assert_eq!(w.opens_at(at("2026-12-01T18:00:00Z")), at("2026-12-02T05:00:00Z"));
        assert_eq!(w.opens_at(at("2026-12-01T02:00:00Z")), at("2026-12-01T05:00:00Z"));
    }

    #[test]
    fn a_window_may_span_midnight() {
        let w = DailyWindow {
            start: parse_time_of_day("22:00").unwrap(),
            end: parse_time_of_day("06:00").unwrap(),
            tz: parse_time_zone("UTC").unwrap(),
        };
        assert!(w.is_open(at("2026-12-01T23:00:00Z")));
        assert!(w.is_open(at("2026-12-02T05:59:00Z")));
        assert!(!w.is_open(at("2026-12-02T12:00:00Z")));
        assert_eq!(
            w.closes_after(at("2026-12-01T23:00:00Z")),
            Some(at("2026-12-02T06:00:00Z"))
        );
        assert_eq!(w.opens_at(at("2026-12-02T12:00:00Z")), at("2026-12-02T22:00:00Z"));
    }

    #[test]
    fn bad_names_and_times_are_refused() {
        assert!(parse_time_zone("Mars/Olympus").is_none());
        assert!(parse_time_of_day("25:00").is_none());
        assert!(parse_time_of_day("8am").is_none());
        assert_eq!(slot_interval(6000), Duration::milliseconds(10));
    }
}
