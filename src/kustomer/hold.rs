//! Kustomer's rate-limit headers read as hints: `Retry-After` (delta seconds or an HTTP-date) and
//! `x-ratelimit-reset` (delta seconds, epoch seconds or epoch milliseconds, told apart by magnitude)
//! become a hold of bounded length, or nothing when the text cannot be read. The limiter caps what
//! comes out of here; nothing here can overflow, whatever the server sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// Below this, `x-ratelimit-reset` is seconds from now: 10^9 s is 31 years, far beyond any window,
/// and as an epoch it is September 2001, long past. From here up to [`EPOCH_MILLIS_FROM`] it is
/// epoch seconds (2001 to the year 5138).
pub const EPOCH_SECONDS_FROM: f64 = 1e9;
/// From here on, `x-ratelimit-reset` is epoch milliseconds: 10^11 ms is March 1973, while 10^11 s
/// is the year 5138, which no clock that sends us headers can mean.
pub const EPOCH_MILLIS_FROM: f64 = 1e11;

/// What the server's headers said about waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// The wait the server asked for, before any cap; `None` when it said nothing readable.
    pub hold: Option<Duration>,
    /// The header it came from, as `name: text` (for the warning when it is capped or ignored).
    pub header: Option<String>,
    /// A header was there but could not be read (empty, negative, not a number, not a date).
    pub unreadable: bool,
}

/// Reads `Retry-After` first (it names this answer's wait), else `x-ratelimit-reset`.
pub fn read(headers: &HeaderMap, now: SystemTime) -> Told {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut unreadable = None;
    if let Some(t) = text("retry-after") {
        match retry_after(&t, now) {
            Some(hold) => return told(hold, "retry-after", &t),
            None => unreadable = Some(format!("retry-after: {}", shorten(&t))),
        }
    }
    if let Some(t) = text("x-ratelimit-reset") {
        match ratelimit_reset(&t, now) {
            Some(hold) => return told(hold, "x-ratelimit-reset", &t),
            None => {
                unreadable.get_or_insert(format!("x-ratelimit-reset: {}", shorten(&t)));
            }
        }
    }
    Told {
        hold: None,
        unreadable: unreadable.is_some(),
        header: unreadable,
    }
}

fn told(hold: Duration, name: &str, text: &str) -> Told {
    Told {
        hold: Some(hold),
        header: Some(format!("{name}: {}", shorten(text))),
        unreadable: false,
    }
}

/// At most 80 characters of a header's text, for logs.
fn shorten(text: &str) -> String {
    let mut t: String = text.trim().chars().take(80).collect();
    if text.trim().chars().count() > 80 {
        t.push('…');
    }
    t
}

/// `Retry-After`: delta seconds (RFC 9110 says a non-negative integer; a decimal is accepted and
/// rounded up) or an HTTP-date. A date in the past means no wait.
pub fn retry_after(text: &str, now: SystemTime) -> Option<Duration> {
    let t = text.trim();
    if let Some(secs) = number(t) {
        return seconds(secs);
    }
    let at = chrono::DateTime::parse_from_rfc2822(t).ok()?;
    let at = epoch_seconds(at.timestamp() as f64 + f64::from(at.timestamp_subsec_millis()) / 1e3);
    Some(until(at, now))
}

/// `x-ratelimit-reset`: delta seconds below 10^9, epoch seconds below 10^11, epoch milliseconds
/// above (see [`EPOCH_SECONDS_FROM`], [`EPOCH_MILLIS_FROM`]). A reset in the past means no wait.
pub fn ratelimit_reset(text: &str, now: SystemTime) -> Option<Duration> {
    let v = number(text.trim())?;
    if v < EPOCH_SECONDS_FROM {
        seconds(v)
    } else if v < EPOCH_MILLIS_FROM {
        Some(until(epoch_seconds(v), now))
    } else {
        Some(until(epoch_seconds(v / 1e3), now))
    }
}

/// A finite, non-negative decimal number; anything else (empty, `-5`, `soon`, `inf`) is `None`.
fn number(t: &str) -> Option<f64> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// Whole seconds, rounded up; saturating at `Duration::MAX` for absurd values.
fn seconds(v: f64) -> Option<Duration> {
    Some(Duration::try_from_secs_f64(v.ceil()).unwrap_or(Duration::MAX))
}

/// An epoch time in seconds as a `SystemTime`, saturating far in the future.
fn epoch_seconds(v: f64) -> SystemTime {
    let d = Duration::try_from_secs_f64(v.max(0.0)).unwrap_or(Duration::MAX);
    UNIX_EPOCH.checked_add(d).unwrap_or_else(far_future)
}

/// The latest time this platform can add to the epoch without overflow, in practice: ~10^11 years
/// is beyond any cap the limiter applies.
fn far_future() -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::from(u32::MAX) * 1_000))
        .unwrap_or(UNIX_EPOCH)
}

/// The wait from `now` until `at`, rounded up to whole seconds; zero when `at` has passed.
fn until(at: SystemTime, now: SystemTime) -> Duration {
    match at.duration_since(now) {
        Ok(d) if d.subsec_nanos() > 0 => Duration::from_secs(d.as_secs().saturating_add(1)),
        Ok(d) => d,
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// 2026-12-07T12:00:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_644_800)
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn reset_is_delta_epoch_seconds_or_epoch_millis_by_magnitude() {
        assert_eq!(ratelimit_reset("30", now()), secs(30));
        assert_eq!(ratelimit_reset("0", now()), secs(0));
        assert_eq!(ratelimit_reset("2.2", now()), secs(3));
        assert_eq!(ratelimit_reset("1796644845", now()), secs(45));
        assert_eq!(ratelimit_reset("1796644845000", now()), secs(45));
        assert_eq!(ratelimit_reset("1796644845500", now()), secs(46));
        // Far past, as epoch seconds or milliseconds: no wait.
        assert_eq!(ratelimit_reset("1000000000", now()), secs(0));
        assert_eq!(ratelimit_reset("100000000000", now()), secs(0));
        // Absurd values come out absurd (the limiter caps them); nothing overflows.
        let absurd = ratelimit_reset("99999999999999999999", now()).unwrap();
        assert!(
            absurd > Duration::from_secs(1_000_000_000_000),
            "{absurd:?}"
        );
        // Beyond any float: unreadable, which holds one window.
        assert_eq!(ratelimit_reset(&"9".repeat(400), now()), None);
        assert_eq!(ratelimit_reset("999999999", now()), secs(999_999_999));
    }

    #[test]
    fn unreadable_values_are_none() {
        for t in [
            "", " ", "-5", "-0.5", "soon", "1e3", "inf", "NaN", "0x10", "12 s",
        ] {
            assert_eq!(ratelimit_reset(t, now()), None, "{t:?}");
            assert_eq!(retry_after(t, now()), None, "{t:?}");
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(retry_after("120", now()), secs(120));
        assert_eq!(retry_after(" 7 ", now()), secs(7));
        assert_eq!(
            retry_after("99999999999999999999", now()),
            Some(Duration::MAX)
        );
        assert_eq!(
            retry_after("Mon, 07 Dec 2026 12:01:30 GMT", now()),
            secs(90)
        );
        assert_eq!(retry_after("Mon, 07 Dec 2026 11:00:00 GMT", now()), secs(0));
        assert_eq!(retry_after("Fri, 01 Jan 1971 00:00:00 GMT", now()), secs(0));
        assert_eq!(retry_after("Mon, 07 Dec 2026 25:00:00 GMT", now()), None);
    }

    #[test]
    fn retry_after_wins_and_an_unreadable_one_falls_back_to_the_reset() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("20"));
        h.insert("retry-after", HeaderValue::from_static("5"));
        let t = read(&h, now());
        assert_eq!(t.hold, secs(5));
        assert_eq!(t.header.as_deref(), Some("retry-after: 5"));
        h.insert("retry-after", HeaderValue::from_static("later"));
        let t = read(&h, now());
        assert_eq!(t.hold, secs(20));
        h.insert("x-ratelimit-reset", HeaderValue::from_static(""));
        let t = read(&h, now());
        assert_eq!(t.hold, None);
        assert!(t.unreadable);
        assert_eq!(t.header.as_deref(), Some("retry-after: later"));
        assert_eq!(read(&HeaderMap::new(), now()).hold, None);
        assert!(!read(&HeaderMap::new(), now()).unreadable);
    }
}
