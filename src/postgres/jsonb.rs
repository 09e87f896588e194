//! Making the mirror's canonical JSON text storable in `jsonb`, and binding it without a copy.
//!
//! jsonb holds values, not text, and it cannot hold three things a served record may contain: a
//! `\u0000` escape, a lone surrogate escape (half an emoji, as JavaScript prints it) and the sign of a
//! negative zero. It also re-renders numbers written with an exponent (`1e+21` comes back as
//! `1000000000000000000000`). [`storable`] replaces the first two with U+FFFD for the jsonb copy and
//! says whether the canonical text must also be kept in `data_exact`: then the row's exact text is
//! `data_exact`, and otherwise `data::text` gives back every value, number tokens included, as served.

use std::borrow::Cow;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// The replacement for what jsonb cannot hold.
const REPLACEMENT: &str = "\\ufffd";

/// `text` (canonical JSON) as jsonb can store it, and whether it differs from what jsonb gives back
/// in any value (so the caller keeps `text` itself in `data_exact`).
pub fn storable(text: &str) -> (Cow<'_, str>, bool) {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut exact = false;
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'"' => in_string = false,
                b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                    let code = hex4(bytes, i + 2);
                    let lone = match code {
                        Some(0) => true,
                        Some(0xD800..=0xDBFF) => {
                            // A high surrogate is fine only when a low one follows at once.
                            !(bytes.get(i + 6) == Some(&b'\\')
                                && bytes.get(i + 7) == Some(&b'u')
                                && matches!(hex4(bytes, i + 8), Some(0xDC00..=0xDFFF)))
                        }
                        Some(0xDC00..=0xDFFF) => true,
                        _ => false,
                    };
                    if lone {
                        let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                        out.push_str(&text[copied..i]);
                        out.push_str(REPLACEMENT);
                        copied = i + 6;
                        exact = true;
                        i += 6;
                        continue;
                    }
                    // A valid pair: skip both halves, so the low one is not seen alone.
                    if matches!(code, Some(0xD800..=0xDBFF)) {
                        i += 12;
                        continue;
                    }
                    i += 6;
                    continue;
                }
                b'\\' => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &bytes[start..i];
                let negative_zero =
                    token[0] == b'-' && !token.iter().any(|c| matches!(c, b'1'..=b'9'));
                if negative_zero || token.iter().any(|c| matches!(c, b'e' | b'E')) {
                    exact = true;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            (Cow::Owned(out), exact)
        }
        None => (Cow::Borrowed(text), exact),
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// Text for a `text` column: PostgreSQL's text cannot hold NUL, which becomes U+FFFD.
pub fn text(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// JSON text bound as a `jsonb` parameter or COPY field as is (jsonb's binary form is a version byte
/// and the text), so no value is re-rendered on the way. The text must be [`storable`].
#[derive(Debug, Clone, Copy)]
pub struct Jsonb<'a>(pub &'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_jsonb_cannot_hold_is_replaced_and_flagged() {
        let cases = [
            (r#"{"a":"x"}"#, r#"{"a":"x"}"#, false),
            (r#"{"a":"x\u0000y"}"#, r#"{"a":"x\ufffdy"}"#, true),
            (r#"{"a":"\ud83d"}"#, r#"{"a":"\ufffd"}"#, true),
            (r#"{"a":"\ude00x"}"#, r#"{"a":"\ufffdx"}"#, true),
            (r#"{"a":"\ud83d\ude00"}"#, r#"{"a":"\ud83d\ude00"}"#, false),
            (r#"{"\u0000":1}"#, r#"{"\ufffd":1}"#, true),
            (r#"{"a":"\\u0000"}"#, r#"{"a":"\\u0000"}"#, false),
            (r#"{"a":-0.0}"#, r#"{"a":-0.0}"#, true),
            (r#"{"a":-0}"#, r#"{"a":-0}"#, true),
            (r#"{"a":1e+21}"#, r#"{"a":1e+21}"#, true),
            (
                r#"{"a":-10.5,"b":[0,-0.01]}"#,
                r#"{"a":-10.5,"b":[0,-0.01]}"#,
                false,
            ),
            (r#"{"a":"-0 1e5"}"#, r#"{"a":"-0 1e5"}"#, false),
        ];
        for (input, stored, exact) in cases {
            let (out, flag) = storable(input);
            assert_eq!((out.as_ref(), flag), (stored, exact), "{input}");
        }
    }
}
