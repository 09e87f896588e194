//! Escapes written once for the whole crate: SQL text that both dialects write alike, string
//! literals (PostgreSQL sessions pin `standard_conforming_strings = on`, so a backslash is an
//! ordinary character in both) and double-quoted identifiers, for text that cannot be a bound
//! parameter (DDL); and the percent-decoding of URL parts.

/// `text` as an SQL string literal: in single quotes, each quote doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `name` as a quoted SQL identifier: in double quotes, each double quote doubled.
pub fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `%XX` escapes decoded, as libpq decodes URI parts (a `+` stays a `+`, a `%` not followed by two
/// hex digits stays as it is); bytes that do not form UTF-8 are replaced. For the PostgreSQL URL's
/// query and the proxy paths handed to the Membrane CLI.
pub fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_are_doubled() {
        assert_eq!(super::literal("it's"), "'it''s'");
        assert_eq!(super::literal("a\\b"), "'a\\b'");
        assert_eq!(super::identifier("x\"y"), "\"x\"\"y\"");
    }
}
