//! One delivery's body as the mirror reads it: the event's `name` and `id`, and `data` (the full
//! resource, exactly as `GET /v1/<resource>/{id}` serves it) decoded by the exact record decoder,
//! so a pushed record is stored value for value as a polled one. Everything else (`changes`, `org`,
//! `partition`, fields Kustomer adds later) is skipped unread; a missing `changes` is the same as
//! null (create events omit it). Knows neither HTTP nor SQL.

use crate::record::scan::{Scanner, members};
use crate::record::{self, Record, Rejected};

/// What a delivery carries.
#[derive(Debug)]
pub struct Envelope {
    /// `name`, e.g. `kustomer.conversation.update`, when it is a string.
    pub name: Option<String>,
    /// The event's own `id`, when it is a string.
    pub id: Option<String>,
    /// `data` decoded; `None` when the body has no `data` (or it is null).
    pub item: Option<Result<Record, Rejected>>,
}

/// Reads a delivery body. `Err` names what is wrong when the body is not a JSON object (the event
/// is then set aside whole).
pub fn read(body: &[u8]) -> Result<Envelope, String> {
    let mut s = Scanner::new(body);
    let mut out = Envelope {
        name: None,
        id: None,
        item: None,
    };
    members(&mut s, |s, key| {
        match key {
            b"name" | b"id" if s.peek() == Some(b'"') => {
                let text = s.string()?.text().map(str::to_string);
                if key == b"name" {
                    out.name = text;
                } else {
                    out.id = text;
                }
            }
            b"data" if s.peek() != Some(b'n') => out.item = Some(record::decode_item(s)?),
            _ => {
                s.skip()?;
            }
        }
        Ok(())
    })
    .map_err(|bad| bad.to_string())?;
    if s.peek().is_some() {
        return Err(s.unexpected("the end of the body").to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_id_and_data_exactly_and_skips_the_rest() {
        let body = br#"{"id":"ev1","name":"kustomer.customer.update","org":"o","changes":{"attributes":{"name":{"op":"replace","before":"A","after":"B"}}},
            "data":{"type":"customer","id":"c1","attributes":{"name":"B","score":1.10,"updatedAt":"2026-12-07T12:00:00.000Z"}},"later":[1,{"x":null}]}"#;
        let e = read(body).unwrap();
        assert_eq!(e.name.as_deref(), Some("kustomer.customer.update"));
        assert_eq!(e.id.as_deref(), Some("ev1"));
        let r = e.item.unwrap().unwrap();
        assert_eq!(r.id, "c1");
        assert_eq!(
            r.data,
            r#"{"attributes":{"name":"B","score":1.10,"updatedAt":"2026-12-07T12:00:00.000Z"},"id":"c1","type":"customer"}"#
        );
    }

    #[test]
    fn a_create_without_changes_and_a_null_data_read() {
        let e = read(br#"{"name":"kustomer.tag.create","data":null}"#).unwrap();
        assert!(e.item.is_none());
        assert!(e.id.is_none());
        let e = read(br#"{"name":"kustomer.tag.create","data":{"type":"tag","id":"t"}}"#).unwrap();
        assert_eq!(e.item.unwrap().unwrap().id, "t");
    }

    #[test]
    fn broken_bodies_are_errors_and_bad_data_is_rejected() {
        assert!(read(b"").is_err());
        assert!(read(b"[1]").is_err());
        assert!(read(br#"{"name":"x","data":{"id":"a"}"#).is_err());
        assert!(read(br#"{"name":"x"} trailing"#).is_err());
        let e = read(br#"{"name":"x","data":{"attributes":{}}}"#).unwrap();
        assert!(e.item.unwrap().is_err());
        let e = read(br#"{"name":"x","data":"text"}"#).unwrap();
        assert!(e.item.unwrap().is_err());
    }
}
