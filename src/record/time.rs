//! `updatedAt` as an instant: served timestamps are untrusted text, so the cursor logic works on
//! one normal form, RFC 3339 in UTC with milliseconds (`2026-12-07T12:00:00.500Z`), whose text order
//! is time order. Anything that is not RFC 3339 has no normal form and never enters a cursor.

/// The normal form of an RFC 3339 timestamp: UTC, millisecond precision (finer digits are cut,
/// which moves a cursor back by under a millisecond, never forward), `Z`. `None` for anything else
/// (empty, `not-a-date`, a date without a time, a year outside 0000–9999).
pub fn normal(text: &str) -> Option<String> {
    let text = text.trim();
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    // Kustomer's own form is already normal (`2026-12-07T12:00:00.500Z`): a valid timestamp of 24
    // bytes with `T`, `.` and `Z` where the normal form has them is kept without formatting it again
    // (this runs for every record served).
    let b = text.as_bytes();
    if b.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z' {
        return Some(text.to_string());
    }
    let utc = t.with_timezone(&chrono::Utc);
    let out = utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    // Years past 9999 print with more digits (or a sign), which would break the text order.
    (out.len() == 24).then_some(out)
}

/// Whether cursor text `a` is later than `b`, as instants; a text that is not a timestamp (a cursor
/// saved by an older version from a bad record) counts as earlier than any timestamp, so a good
/// one replaces it.
pub fn later(a: &str, b: &str) -> bool {
    match (normal(a), normal(b)) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Whether two cursor texts name the same instant (`…:00Z` and `…:00.000Z` do).
pub fn same(a: &str, b: &str) -> bool {
    match (normal(a), normal(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form_is_utc_with_milliseconds() {
        let cases = [
            ("2026-12-07T12:00:00Z", Some("2026-12-07T12:00:00.000Z")),
            ("2026-12-07T12:00:00.5Z", Some("2026-12-07T12:00:00.500Z")),
            (
                "2026-12-07T12:00:00.123456789Z",
                Some("2026-12-07T12:00:00.123Z"),
            ),
            (
                "2026-12-07T14:00:00+02:00",
                Some("2026-12-07T12:00:00.000Z"),
            ),
            ("2026-12-07t12:00:00.250z", Some("2026-12-07T12:00:00.250Z")),
            (
                "2026-12-07T00:30:00-01:00",
                Some("2026-12-07T01:30:00.000Z"),
            ),
            ("not-a-date", None),
            ("", None),
            ("null", None),
            ("2026-12-07", None),
            ("2026-12-07T12:00:00", None),
            ("1796644800", None),
            ("2026-13-07T12:00:00Z", None),
        ];
        for (text, want) in cases {
            assert_eq!(normal(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn instants_order_whatever_their_text() {
        assert!(later("2026-12-07T12:00:00.500Z", "2026-12-07T12:00:00Z"));
        assert!(!later("2026-12-07T12:00:00Z", "2026-12-07T12:00:00.500Z"));
        assert!(later(
            "2026-12-07T12:00:01+00:00",
            "2026-12-07T13:00:00+02:00"
        ));
        assert!(later("2026-12-07T12:00:00Z", "not-a-date"));
        assert!(!later("not-a-date", "2026-12-07T12:00:00Z"));
        assert!(same("2026-12-07T12:00:00Z", "2026-12-07T12:00:00.000Z"));
        assert!(same("2026-12-07T14:00:00+02:00", "2026-12-07T12:00:00Z"));
        assert!(!same("2026-12-07T12:00:00Z", "2026-12-07T12:00:00.001Z"));
    }
}
