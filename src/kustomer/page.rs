//! JSON:API documents from Kustomer: a page of resource objects (`data[]`, `links.next`, `meta.total`)
//! or a single object (`data{}`), decoded into [`Record`]s that carry their canonical JSON and hash.
//!
//! Decoding is tolerant: unknown fields are ignored, `links`/`meta` may be missing, `data` may be null.
//! It is strict only where the mirror's correctness needs it: every record must have a string `id`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::canonical::{Canonical, Picked};

/// Why a resource object is refused.
const NO_ID: &str = "a resource object has no string \"id\"";

/// One resource object as served, with what the mirror needs pulled out of it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The resource id (24-hex Mongo-style id in practice; any non-empty string accepted).
    pub id: String,
    /// `attributes.updatedAt`, the cursor value of search-incremental syncs.
    pub updated_at: Option<String>,
    /// True when Kustomer marks the record deleted (`attributes.deleted: true`).
    pub deleted: bool,
    /// `attributes.deletedAt` when present (teams, tags).
    pub deleted_at: Option<String>,
    /// The resource object as canonical JSON text (keys sorted), stored in the `data` column.
    pub data: String,
    /// xxh3-128 of `data`, hex: equal hashes mean nothing changed.
    pub hash: String,
    /// The names under `attributes.custom` (sorted, distinct): what the custom views need to know.
    pub custom: Vec<String>,
}

impl Record {
    /// Builds a record from one resource object; errors name what is missing. The parsed object is
    /// dropped here (on the decoding task): the writer gets only text, and parses it again only for
    /// the rare update that needs a diff ([`Record::value`]).
    pub fn from_value(value: Value) -> Result<Record, String> {
        let id = match value.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            // Kustomer ids are strings; tolerate a numeric id rather than dropping the record.
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(NO_ID.to_string()),
        };
        let attrs = value.get("attributes");
        let text = |key: &str| {
            attrs
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let updated_at = text("updatedAt");
        let deleted_at = text("deletedAt");
        let deleted = attrs
            .and_then(|a| a.get("deleted"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // serde_json's map is a BTreeMap (no `preserve_order` feature), so serialising sorts keys:
        // the same content always gives the same text and hash, whatever order Kustomer sent.
        let custom = attrs
            .and_then(|a| a.get("custom"))
            .and_then(Value::as_object)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        let data = value.to_string();
        Ok(Record::new(
            id, updated_at, deleted, deleted_at, data, custom,
        ))
    }

    /// Builds a record from canonical text written by [`super::canonical`] and what it picked.
    fn from_canonical(data: Vec<u8>, picked: Picked) -> Result<Record, String> {
        let id = picked
            .id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| NO_ID.to_string())?;
        // serde_json wrote every byte from `&str`s, so this holds; the error arm keeps it total.
        let data =
            String::from_utf8(data).map_err(|_| "canonical text is not UTF-8".to_string())?;
        Ok(Record::new(
            id,
            picked.updated_at,
            picked.deleted,
            picked.deleted_at,
            data,
            picked.custom,
        ))
    }

    fn new(
        id: String,
        updated_at: Option<String>,
        deleted: bool,
        deleted_at: Option<String>,
        data: String,
        custom: Vec<String>,
    ) -> Record {
        let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data.as_bytes()));
        Record {
            id,
            updated_at,
            deleted,
            deleted_at,
            data,
            hash,
            custom,
        }
    }

    /// The resource object parsed from `data` (which this module wrote, so it is valid JSON; `Null`
    /// would only mean a bug, and a diff against `Null` still records the whole new value).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// One page of a list or search answer.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records in the order served.
    pub records: Vec<Record>,
    /// `links.next` verbatim (a relative path), `None` on the last page.
    pub next: Option<String>,
    /// `meta.total` where the endpoint reports it (customers list, search).
    pub total: Option<u64>,
    /// HTTP attempts this page took (1 unless transient faults were retried).
    pub attempts: u32,
}

/// Decodes a list or search document. `Err` carries the reason, for [`super::ApiError::Malformed`].
/// Records are canonicalised straight from the bytes ([`super::canonical`]), one pass per page.
pub fn decode_page(body: &[u8]) -> Result<Page, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let doc = DocVisitor
        .deserialize(&mut de)
        .and_then(|doc| de.end().map(|()| doc))
        .map_err(|e| format!("invalid JSON ({e})"))?;
    let Some(doc) = doc else {
        return Err("the document is not a JSON object".to_string());
    };
    let next = doc
        .links
        .as_ref()
        .and_then(|l| l.get("next"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let total = doc
        .meta
        .as_ref()
        .and_then(|m| m.get("total"))
        .and_then(Value::as_u64);
    let records = match doc.data {
        Data::Items(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| item.map_err(|e| format!("item {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        Data::Empty => Vec::new(),
        Data::NotArray => return Err("\"data\" is not an array".to_string()),
    };
    Ok(Page {
        records,
        next,
        total,
        attempts: 1,
    })
}

/// The parts of a list document the mirror reads (the last of duplicate members wins, as in a
/// `Value`).
struct Doc {
    data: Data,
    links: Option<Value>,
    meta: Option<Value>,
}

enum Data {
    /// Each item decoded, or why it could not be.
    Items(Vec<Result<Record, String>>),
    /// `data` missing or null.
    Empty,
    NotArray,
}

/// The document: `Some` for an object, `None` for any other JSON value.
struct DocVisitor;

impl<'de> DeserializeSeed<'de> for DocVisitor {
    type Value = Option<Doc>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Option<Doc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON:API document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut doc = Doc {
            data: Data::Empty,
            links: None,
            meta: None,
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "data" => doc.data = map.next_value_seed(DataVisitor)?,
                "links" => doc.links = Some(map.next_value()?),
                "meta" => doc.meta = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(doc))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A document's `data`: an array of resource objects, null, or something else.
struct DataVisitor;

impl<'de> DeserializeSeed<'de> for DataVisitor {
    type Value = Data;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of resource objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(ItemSeed)? {
            items.push(item);
        }
        Ok(Data::Items(items))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Data, E> {
        Ok(Data::Empty)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Data::NotArray)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Data, E> {
        Ok(Data::NotArray)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Data, E> {
        Ok(Data::NotArray)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Data, E> {
        Ok(Data::NotArray)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Data, E> {
        Ok(Data::NotArray)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Data, E> {
        Ok(Data::NotArray)
    }
}

/// One item of `data`, canonicalised; `Err` names what the mirror needs and it lacks.
struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Result<Record, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let mut out = Vec::with_capacity(2048);
        let mut picked = Picked::default();
        Canonical::record(&mut out, &mut picked).deserialize(deserializer)?;
        Ok(Record::from_canonical(out, picked))
    }
}

/// Decodes a single-object document (`{"data": {...}}`).
pub fn decode_single(body: &[u8]) -> Result<Record, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON ({e})"))?;
    match doc {
        Value::Object(mut doc) => match doc.remove("data") {
            Some(data @ Value::Object(_)) => Record::from_value(data),
            _ => Err("\"data\" is not an object".to_string()),
        },
        _ => Err("the document is not a JSON object".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let a = Record::from_value(
            serde_json::from_str(r#"{"id":"x","a":1,"b":{"c":2,"d":3}}"#).unwrap(),
        )
        .unwrap();
        let b = Record::from_value(
            serde_json::from_str(r#"{"b":{"d":3,"c":2},"a":1,"id":"x"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.data, b.data);
    }

    #[test]
    fn a_record_without_an_id_is_an_error() {
        assert!(decode_page(br#"{"data":[{"type":"customer"}]}"#).is_err());
        assert!(
            decode_page(br#"{"data":[{"id":"a"}],"links":{"next":"/v1/x?page=2"}}"#)
                .unwrap()
                .next
                .is_some()
        );
    }
}
