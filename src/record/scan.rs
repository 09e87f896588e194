//! The JSON lexer under the canonical decoder and the change-log diff: whitespace, string bodies
//! decoded to WTF-8 (so a lone UTF-16 surrogate escape such as `\ud83d`, which the JSON grammar allows
//! and JavaScript prints for half an emoji, survives), number tokens validated and returned as the
//! exact bytes served, literals, and a structure-only skip that finds where a value ends even when
//! its content is bad (so one bad record can be cut out of a page).
//!
//! Nothing here goes through `f64`: numbers are text from end to end.

/// Why a value could not be read, and where (byte offset into the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub at: usize,
    pub what: String,
}

impl Bad {
    pub fn new(at: usize, what: impl Into<String>) -> Bad {
        Bad {
            at,
            what: what.into(),
        }
    }
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// A string's decoded body: borrowed from the input when it had no escapes (then it is valid
/// UTF-8 and needs no escaping on output), else decoded into WTF-8 bytes.
pub enum Str<'a> {
    Plain(&'a [u8]),
    Decoded(Vec<u8>),
}

impl Str<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Str::Plain(b) => b,
            Str::Decoded(b) => b,
        }
    }

    /// The text when it is valid Unicode (no lone surrogate).
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(self.bytes()).ok()
    }
}

/// A cursor over JSON bytes.
pub struct Scanner<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { bytes, pos: 0 }
    }

    /// Skips whitespace and answers the next byte, if any.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                return Some(b);
            }
        }
        None
    }

    /// Consumes `b` (after whitespace) or fails naming what was expected.
    pub fn expect(&mut self, b: u8, what: &str) -> Result<(), Bad> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// An error for an unexpected byte or the end of input where `what` was expected.
    pub fn unexpected(&self, what: &str) -> Bad {
        match self.bytes.get(self.pos) {
            None => Bad::new(
                self.pos,
                format!("unexpected end of input, expected {what}"),
            ),
            Some(&b) => Bad::new(
                self.pos,
                format!("unexpected {}, expected {what}", describe(b)),
            ),
        }
    }

    /// Reads a string whose opening quote is at `pos`.
    pub fn string(&mut self) -> Result<Str<'a>, Bad> {
        let start = self.pos;
        if self.bytes.get(start) != Some(&b'"') {
            return Err(self.unexpected("a string"));
        }
        let body = start + 1;
        let mut i = body;
        // Fast path: no escape, no control character.
        while let Some(&b) = self.bytes.get(i) {
            match b {
                b'"' => {
                    let raw = &self.bytes[body..i];
                    if std::str::from_utf8(raw).is_err() {
                        return Err(Bad::new(body, "a string is not valid UTF-8"));
                    }
                    self.pos = i + 1;
                    return Ok(Str::Plain(raw));
                }
                b'\\' => break,
                0x00..=0x1f => {
                    return Err(Bad::new(i, "a control character inside a string"));
                }
                _ => i += 1,
            }
        }
        let mut out = Vec::with_capacity(i - body + 16);
        // The part before the first escape must be valid UTF-8 on its own (an escape is ASCII, so
        // a multi-byte sequence cannot straddle it).
        if std::str::from_utf8(&self.bytes[body..i]).is_err() {
            return Err(Bad::new(body, "a string is not valid UTF-8"));
        }
        out.extend_from_slice(&self.bytes[body..i]);
        let mut run = i;
        loop {
            let Some(&b) = self.bytes.get(i) else {
                return Err(Bad::new(i, "unexpected end of input inside a string"));
            };
            match b {
                b'"' => {
                    flush(&mut out, &self.bytes[run..i], run)?;
                    self.pos = i + 1;
                    return Ok(Str::Decoded(out));
                }
                b'\\' => {
                    flush(&mut out, &self.bytes[run..i], run)?;
                    i = self.escape(i, &mut out)?;
                    run = i;
                }
                0x00..=0x1f => {
                    return Err(Bad::new(i, "a control character inside a string"));
                }
                _ => i += 1,
            }
        }
    }

    /// Decodes the escape at `at` (a backslash) into `out`; answers the offset after it.
    fn escape(&self, at: usize, out: &mut Vec<u8>) -> Result<usize, Bad> {
        let Some(&c) = self.bytes.get(at + 1) else {
            return Err(Bad::new(at, "unexpected end of input inside an escape"));
        };
        let simple = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let first = self.hex4(at + 2)?;
                let mut next = at + 6;
                let code = if (0xd800..0xdc00).contains(&first)
                    && self.bytes.get(next) == Some(&b'\\')
                    && self.bytes.get(next + 1) == Some(&b'u')
                {
                    let second = self.hex4(next + 2)?;
                    if (0xdc00..0xe000).contains(&second) {
                        next += 6;
                        0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                    } else {
                        // A high surrogate followed by something else: it stays lone, and the next
                        // escape is read on its own.
                        first
                    }
                } else {
                    first
                };
                push_code_point(out, code);
                return Ok(next);
            }
            other => {
                return Err(Bad::new(
                    at,
                    format!("invalid escape \\{}", char::from(other).escape_default()),
                ));
            }
        };
        out.push(simple);
        Ok(at + 2)
    }

    fn hex4(&self, at: usize) -> Result<u32, Bad> {
        let digits = self
            .bytes
            .get(at..at + 4)
            .ok_or_else(|| Bad::new(at, "unexpected end of input inside a \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(Bad::new(at, "a \\u escape needs four hex digits")),
            };
            v = v * 16 + u32::from(n);
        }
        Ok(v)
    }

    /// Reads a number token at `pos` and answers its exact bytes (validated against JSON's grammar:
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`).
    pub fn number(&mut self) -> Result<&'a [u8], Bad> {
        let start = self.pos;
        let b = self.bytes;
        let mut i = start;
        let digits = |mut i: usize| {
            let from = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            (i, i - from)
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i).0,
            _ => return Err(Bad::new(start, "an invalid number")),
        }
        if b.get(i) == Some(&b'.') {
            let (end, n) = digits(i + 1);
            if n == 0 {
                return Err(Bad::new(start, "an invalid number (no digit after '.')"));
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let (end, n) = digits(i);
            if n == 0 {
                return Err(Bad::new(
                    start,
                    "an invalid number (no digit in the exponent)",
                ));
            }
            i = end;
        }
        // A number runs into the next token only through a delimiter.
        if b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.')
        {
            return Err(Bad::new(start, "an invalid number"));
        }
        self.pos = i;
        Ok(&b[start..i])
    }

    /// Consumes the literal `word` (`true`, `false`, `null`).
    pub fn literal(&mut self, word: &'static [u8]) -> Result<(), Bad> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word)
            && !self
                .bytes
                .get(self.pos + word.len())
                .is_some_and(u8::is_ascii_alphanumeric)
        {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.unexpected("a JSON value"))
        }
    }

    /// Skips one value from `pos` by its structure alone (brackets and string quotes), without
    /// judging its content; iterative, so no depth can overflow the stack. Answers where it ends.
    pub fn skip(&mut self) -> Result<usize, Bad> {
        let b = self.bytes;
        match self.peek() {
            None => return Err(self.unexpected("a JSON value")),
            Some(b'"') => {
                self.pos = skip_string(b, self.pos)?;
                return Ok(self.pos);
            }
            Some(b'{' | b'[') => {}
            Some(_) => {
                // A scalar: up to the next delimiter.
                while let Some(&c) = b.get(self.pos) {
                    if matches!(c, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.pos += 1;
                }
                return Ok(self.pos);
            }
        }
        let mut depth = 0usize;
        while let Some(&c) = b.get(self.pos) {
            match c {
                b'"' => {
                    self.pos = skip_string(b, self.pos)?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(self.pos);
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(Bad::new(self.pos, "unexpected end of input inside a value"))
    }
}

/// The offset after the string whose opening quote is at `at`.
fn skip_string(b: &[u8], at: usize) -> Result<usize, Bad> {
    let mut i = at + 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(Bad::new(at, "unexpected end of input inside a string"))
}

/// Appends an unescaped run of a string, checking it is UTF-8 (a run between escapes is whole
/// characters, since escapes are ASCII).
fn flush(out: &mut Vec<u8>, run: &[u8], at: usize) -> Result<(), Bad> {
    if std::str::from_utf8(run).is_err() {
        return Err(Bad::new(at, "a string is not valid UTF-8"));
    }
    out.extend_from_slice(run);
    Ok(())
}

/// Appends `code` as WTF-8: UTF-8, extended to encode a lone surrogate (U+D800..U+DFFF) as the
/// three bytes UTF-8 would give it. Valid UTF-8 never holds `ED A0..BF`, so such a sequence in the
/// output is unambiguously a lone surrogate.
fn push_code_point(out: &mut Vec<u8>, code: u32) {
    // Every `as u8` below takes bits masked or shifted to fit, so nothing is truncated.
    if code < 0x80 {
        out.push(code as u8);
    } else if code < 0x800 {
        out.extend_from_slice(&[0xc0 | (code >> 6) as u8, 0x80 | (code & 0x3f) as u8]);
    } else if code < 0x10000 {
        out.extend_from_slice(&[
            0xe0 | (code >> 12) as u8,
            0x80 | ((code >> 6) & 0x3f) as u8,
            0x80 | (code & 0x3f) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xf0 | (code >> 18) as u8,
            0x80 | ((code >> 12) & 0x3f) as u8,
            0x80 | ((code >> 6) & 0x3f) as u8,
            0x80 | (code & 0x3f) as u8,
        ]);
    }
}

/// Walks the members of the object at the scanner (its `{` next), calling `f` with each key's
/// decoded bytes and the scanner before the value.
pub fn members(
    s: &mut Scanner<'_>,
    mut f: impl FnMut(&mut Scanner<'_>, &[u8]) -> Result<(), Bad>,
) -> Result<(), Bad> {
    s.expect(b'{', "'{'")?;
    if s.peek() == Some(b'}') {
        s.pos += 1;
        return Ok(());
    }
    loop {
        if s.peek() != Some(b'"') {
            return Err(s.unexpected("an object key"));
        }
        let key = s.string()?.bytes().to_vec();
        s.expect(b':', "':'")?;
        f(s, &key)?;
        match s.peek() {
            Some(b',') => s.pos += 1,
            Some(b'}') => {
                s.pos += 1;
                return Ok(());
            }
            _ => return Err(s.unexpected("',' or '}'")),
        }
    }
}

/// Appends WTF-8 `text` as a JSON string, escaped exactly as serde_json escapes a `str` (quote,
/// backslash and control characters only; `\b \f \n \r \t` short, others `\u00xx`), with each lone
/// surrogate written back as its `\uxxxx` escape.
pub fn write_string(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            _ => None,
        };
        if let Some(e) = escape {
            out.extend_from_slice(&text[run..i]);
            out.extend_from_slice(e);
            i += 1;
            run = i;
        } else if b < 0x20 {
            out.extend_from_slice(&text[run..i]);
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
            i += 1;
            run = i;
        } else if b == 0xed && text.get(i + 1).is_some_and(|c| (0xa0..=0xbf).contains(c)) {
            // A lone surrogate in WTF-8: ED, 101xxxxx, 10xxxxxx.
            let c1 = u32::from(text[i + 1]);
            let c2 = u32::from(text.get(i + 2).copied().unwrap_or(0x80));
            let code = 0xd000 | ((c1 & 0x3f) << 6) | (c2 & 0x3f);
            out.extend_from_slice(&text[run..i]);
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[((code >> shift) & 0xf) as usize]);
            }
            i += 3;
            run = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&text[run..]);
    out.push(b'"');
}

fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical_string(json: &str) -> Result<String, Bad> {
        let mut s = Scanner::new(json.as_bytes());
        let body = s.string()?;
        let mut out = Vec::new();
        write_string(&mut out, body.bytes());
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn lone_surrogates_stay_escapes_and_pairs_become_characters() {
        assert_eq!(canonical_string(r#""a\ud83d""#).unwrap(), r#""a\ud83d""#);
        assert_eq!(canonical_string(r#""\uD83D!""#).unwrap(), r#""\ud83d!""#);
        assert_eq!(canonical_string(r#""\ude00x""#).unwrap(), r#""\ude00x""#);
        assert_eq!(canonical_string(r#""\ud83d\ude00""#).unwrap(), "\"😀\"");
        assert_eq!(
            canonical_string(r#""\ud83d\ud83d\ude00""#).unwrap(),
            "\"\\ud83d😀\""
        );
        assert_eq!(
            canonical_string(r#""\ud83d\u0041""#).unwrap(),
            r#""\ud83dA""#
        );
    }

    #[test]
    fn escapes_are_written_as_serde_json_writes_them() {
        let served = r#""tab\t nl\n q\" b\\ \u00e9 \/ ctl\u0001 \u007f é""#;
        let expected =
            serde_json::to_string(&serde_json::from_str::<String>(served).unwrap()).unwrap();
        assert_eq!(canonical_string(served).unwrap(), expected);
    }

    #[test]
    fn bad_strings_are_errors() {
        assert!(canonical_string("\"a\u{1}b\"").is_err());
        assert!(canonical_string(r#""\x""#).is_err());
        assert!(canonical_string(r#""\u12""#).is_err());
        assert!(canonical_string(r#""open"#).is_err());
        let mut s = Scanner::new(b"\"\xff\"");
        assert!(s.string().is_err());
    }

    #[test]
    fn numbers_are_their_exact_text() {
        for n in [
            "0",
            "-0",
            "-0.0",
            "123456789.12345679",
            "18446744073709552000",
            "1e21",
            "1E+21",
            "5e-324",
            "2.2250738585072014e-308",
        ] {
            let text = format!("{n},");
            let mut s = Scanner::new(text.as_bytes());
            assert_eq!(s.number().unwrap(), n.as_bytes());
        }
        for bad in ["01", "1.", ".5", "-", "1e", "1e+", "1.5x", "NaN"] {
            let mut s = Scanner::new(bad.as_bytes());
            assert!(s.number().is_err(), "{bad}");
        }
    }

    #[test]
    fn skip_finds_the_end_of_a_value_whatever_its_content() {
        let text = br#"{"a":[1,"x\"]",{"b":"\q"}],"c":01} ,"#;
        let mut s = Scanner::new(text);
        let end = s.skip().unwrap();
        assert_eq!(&text[end..], b" ,");
        let mut s = Scanner::new(br#"{"a":[1,2}"#);
        assert!(s.skip().is_err());
    }
}
