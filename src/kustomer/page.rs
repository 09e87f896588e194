//! JSON:API documents from Kustomer: a page of resource objects (`data[]`, `links.next`, `meta.total`)
//! or a single object (`data{}`), decoded into [`Record`]s that carry their canonical JSON and hash.
//!
//! Decoding is tolerant: unknown fields are ignored, `links`/`meta` may be missing, `data` may be null.
//! One bad item (not an object, no usable `id`, a bad escape or invalid UTF-8 inside it) does not
//! sink its page: it is set aside as [`Rejected`] for the quarantine, and the rest is kept. Only a
//! document whose structure is broken (an item's end cannot be found) is refused whole.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::record::scan::{Bad, Scanner, members};
use crate::record::{self, Record, Rejected, canonical};

/// One page of a list or search answer.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records in the order served.
    pub records: Vec<Record>,
    /// Items of `data` that could not be kept as records (quarantined; the rest of the page stands).
    pub rejected: Vec<Rejected>,
    /// The resource objects of `included` (related records a list sends along when asked, such as
    /// `GET /v1/schedules?include=holidays`), of any type, decoded like `data`'s.
    pub included: Vec<Record>,
    /// Items of `included` that could not be kept as records.
    pub included_rejected: Vec<Rejected>,
    /// `links.next` verbatim (a relative path), `None` on the last page.
    pub next: Option<String>,
    /// `meta.total` where the endpoint reports it (customers list, search).
    pub total: Option<u64>,
    /// HTTP attempts this page took (1 unless transient faults were retried).
    pub attempts: u32,
    /// The server's clock when it answered (its `Date` header), when it sent one.
    pub server_time: Option<DateTime<Utc>>,
}

impl Page {
    /// Items served on this page, kept or not.
    pub fn served(&self) -> u64 {
        (self.records.len() + self.rejected.len()) as u64
    }
}

/// Decodes a list or search document. `Err` carries the reason, for [`super::ApiError::Malformed`].
/// Records are canonicalised straight from the bytes ([`crate::record`]), one pass per page; an item
/// that cannot be a record is set aside in [`Page::rejected`] when its end can still be found.
pub fn decode_page(body: &[u8]) -> Result<Page, String> {
    let invalid = |bad: Bad| format!("invalid JSON ({bad})");
    let mut s = Scanner::new(body);
    let mut page = Page {
        attempts: 1,
        ..Page::default()
    };
    if s.peek() != Some(b'{') {
        // Still JSON? Then say what it is, else why it is not.
        let mut sink = Vec::new();
        canonical::any(&mut s, &mut sink).map_err(invalid)?;
        return Err("the document is not a JSON object".to_string());
    }
    let mut not_array = false;
    members(&mut s, |s, key| {
        match key {
            b"data" => {
                page.records.clear();
                page.rejected.clear();
                not_array = false;
                match s.peek() {
                    Some(b'[') => {
                        let (records, rejected) = items(s)?;
                        page.records = records;
                        page.rejected = rejected;
                    }
                    Some(b'n') => s.literal(b"null")?,
                    _ => {
                        not_array = true;
                        s.skip()?;
                    }
                }
            }
            b"included" => {
                page.included.clear();
                page.included_rejected.clear();
                match s.peek() {
                    Some(b'[') => {
                        let (records, rejected) = items(s)?;
                        page.included = records;
                        page.included_rejected = rejected;
                    }
                    // Anything else is not a list of related records: nothing to take from it.
                    _ => {
                        s.skip()?;
                    }
                }
            }
            b"links" => {
                let links = value(s)?;
                page.next = links
                    .as_ref()
                    .and_then(|l| l.get("next"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
            }
            b"meta" => {
                let meta = value(s)?;
                page.total = meta
                    .as_ref()
                    .and_then(|m| m.get("total"))
                    .and_then(Value::as_u64);
            }
            _ => {
                s.skip()?;
            }
        }
        Ok(())
    })
    .map_err(invalid)?;
    if s.peek().is_some() {
        return Err(invalid(s.unexpected("the end of the document")));
    }
    if not_array {
        return Err("\"data\" is not an array".to_string());
    }
    Ok(page)
}

/// Reads the items of an array of resource objects (`data` or `included`, its `[` next): the
/// records, and the items that could not be records.
fn items(s: &mut Scanner<'_>) -> Result<(Vec<Record>, Vec<Rejected>), Bad> {
    let (mut records, mut rejected) = (Vec::new(), Vec::new());
    s.pos += 1;
    if s.peek() == Some(b']') {
        s.pos += 1;
        return Ok((records, rejected));
    }
    loop {
        match record::decode_item(s)? {
            Ok(record) => records.push(record),
            Err(bad) => rejected.push(bad),
        }
        match s.peek() {
            Some(b',') => s.pos += 1,
            Some(b']') => {
                s.pos += 1;
                return Ok((records, rejected));
            }
            _ => return Err(s.unexpected("',' or ']'")),
        }
    }
}

/// A small member (`links`, `meta`) as a `Value`; `None` when it holds what a `Value` cannot (a lone
/// surrogate), which only loses what the mirror reads from it, never a record.
fn value(s: &mut Scanner<'_>) -> Result<Option<Value>, Bad> {
    let mut text = Vec::new();
    canonical::any(s, &mut text)?;
    Ok(serde_json::from_slice(&text).ok())
}

/// Decodes a single-object document (`{"data": {...}}`).
pub fn decode_single(body: &[u8]) -> Result<Record, String> {
    let invalid = |bad: Bad| format!("invalid JSON ({bad})");
    let mut s = Scanner::new(body);
    if s.peek() != Some(b'{') {
        return Err("the document is not a JSON object".to_string());
    }
    let mut found: Option<Result<Record, Rejected>> = None;
    members(&mut s, |s, key| {
        if key == b"data" && s.peek() == Some(b'{') {
            found = Some(record::decode_item(s)?);
        } else {
            if key == b"data" {
                found = None;
            }
            s.skip()?;
        }
        Ok(())
    })
    .map_err(invalid)?;
    if s.peek().is_some() {
        return Err(invalid(s.unexpected("the end of the document")));
    }
    match found {
        Some(Ok(record)) => Ok(record),
        Some(Err(rejected)) => Err(rejected.reason),
        None => Err("\"data\" is not an object".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn included_objects_are_decoded_beside_data_and_a_bad_one_is_set_aside() {
        let page = decode_page(
            r#"{"data":[{"type":"schedule","id":"s1","relationships":{"holidays":{"data":[{"type":"holiday","id":"h1"}]}}}],
                "included":[{"type":"holiday","id":"h1","attributes":{"name":"Noël","startDate":"2025-12-25"}},
                            {"type":"holiday","attributes":{}},
                            {"type":"team","id":"t1"}],
                "links":{"next":null}}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.served(), 1, "paging counts the list's own items");
        let ids: Vec<&str> = page.included.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["h1", "t1"]);
        assert!(page.included[0].data.contains(r#""name":"Noël""#));
        assert_eq!(page.included_rejected.len(), 1, "the holiday without an id");
        // `included` that is not an array is ignored; the page stands.
        let page = decode_page(br#"{"data":[],"included":{"x":1}}"#).unwrap();
        assert!(page.included.is_empty());
    }

    #[test]
    fn pages_tolerate_unknown_fields_and_missing_links() {
        let page = decode_page(
            br#"{"meta":{"page":1,"total":2,"x":1},"data":[{"type":"customer","id":"a","attributes":{"updatedAt":"2024-01-01T00:00:00.000Z","deleted":true}},{"id":"b","type":"customer"}],"included":[]}"#,
        )
        .unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.total, Some(2));
        assert_eq!(page.next, None);
        assert!(page.records[0].deleted);
        assert_eq!(
            page.records[0].updated_at.as_deref(),
            Some("2024-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a = Record::from_text(br#"{"id":"x","a":1,"b":{"c":2,"d":3}}"#).unwrap();
        let b = Record::from_text(br#"{"b":{"d":3,"c":2},"a":1,"id":"x"}"#).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.data, r#"{"a":1,"b":{"c":2,"d":3},"id":"x"}"#);
        assert_eq!(a.data, b.data);
    }

    #[test]
    fn a_record_without_an_id_is_set_aside_and_the_page_stands() {
        let page = decode_page(
            br#"{"data":[{"type":"customer"},{"id":"a"}],"links":{"next":"/v1/x?page=2"}}"#,
        )
        .unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.rejected.len(), 1);
        assert_eq!(page.rejected[0].reason, "the record has no \"id\"");
        assert_eq!(page.rejected[0].raw, r#"{"type":"customer"}"#);
        assert_eq!(page.next.as_deref(), Some("/v1/x?page=2"));
    }

    #[test]
    fn half_emoji_anywhere_is_kept_as_served() {
        // A lone high surrogate at the end of a string, in a nested string, in a key, in an array,
        // and a lone low one: JavaScript's JSON.stringify prints these for cut strings.
        let body = br#"{"data":[
            {"id":"m1","attributes":{"preview":"Thanks! \ud83d","meta":{"deep":{"deeper":["ok \ud83d", "\ude00 end"]}}}},
            {"id":"m2","attributes":{"custom":{"k\ud83d":"v","nameStr":"\uD83D"}}}
        ],"meta":{"total":2}}"#;
        let page = decode_page(body).unwrap();
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        assert_eq!(page.total, Some(2));
        assert_eq!(
            page.records[0].data,
            r#"{"attributes":{"meta":{"deep":{"deeper":["ok \ud83d","\ude00 end"]}},"preview":"Thanks! \ud83d"},"id":"m1"}"#
        );
        assert_eq!(
            page.records[1].data,
            r#"{"attributes":{"custom":{"k\ud83d":"v","nameStr":"\ud83d"}},"id":"m2"}"#
        );
        // The key with a lone surrogate cannot name a view column; the other one does.
        assert_eq!(page.records[1].custom, vec!["nameStr".to_string()]);
    }

    #[test]
    fn undecodable_items_are_set_aside_with_their_reason_and_text() {
        let body = "{\"data\":[\
            \"just text\",\
            {\"id\":{\"oid\":\"x\"},\"attributes\":{}},\
            {\"id\":true},\
            {\"id\":\"bad-escape\",\"attributes\":{\"note\":\"\\x\"}},\
            {\"id\":\"ctl\",\"attributes\":{\"note\":\"a\u{1}b\"}},\
            {\"id\":\"num\",\"n\":01},\
            [1,2],\
            {\"id\":7,\"attributes\":{\"updatedAt\":\"2024-01-01T00:00:00.000Z\"}}\
        ]}";
        let page = decode_page(body.as_bytes()).unwrap();
        let reasons: Vec<(Option<&str>, &str)> = page
            .rejected
            .iter()
            .map(|r| (r.id.as_deref(), r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (None, "the item is not a JSON object"),
                (
                    None,
                    "the record has an \"id\" that is neither a string nor a number"
                ),
                (
                    None,
                    "the record has an \"id\" that is neither a string nor a number"
                ),
                (
                    Some("bad-escape"),
                    "invalid escape \\x at byte 41 of the record"
                ),
                (
                    Some("ctl"),
                    "a control character inside a string at byte 35 of the record"
                ),
                (Some("num"), "an invalid number at byte 16 of the record"),
                (None, "the item is not a JSON object"),
            ]
        );
        assert_eq!(
            page.rejected[1].raw,
            r#"{"id":{"oid":"x"},"attributes":{}}"#
        );
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].id, "7");
    }

    #[test]
    fn invalid_utf8_in_one_item_does_not_sink_the_page() {
        let mut body = br#"{"data":[{"id":"a","s":""#.to_vec();
        body.extend_from_slice(b"\xff\xfe");
        body.extend_from_slice(br#""},{"id":"b"}]}"#);
        let page = decode_page(&body).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.rejected[0].id.as_deref(), Some("a"));
        assert!(page.rejected[0].reason.contains("not valid UTF-8"));
    }

    #[test]
    fn a_broken_structure_refuses_the_page() {
        for body in [
            &br#"{"data":[{"id":"a"},{"id":"b""#[..],
            br#"{"data":[{"id":"a"}]} trailing"#,
            br#"{"data":[{"id":"a"} {"id":"b"}]}"#,
            br#"[1,2]"#,
            br#"{"data":{"id":"a"}}"#,
        ] {
            assert!(
                decode_page(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
