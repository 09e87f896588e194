//! Canonical JSON of a served resource object, written straight from the response bytes: exactly the
//! text `serde_json` gives for the object parsed into a `Value` and serialised again (keys sorted,
//! the last of duplicate keys kept, compact), without building the `Value` tree. On the way it picks
//! out what the mirror needs (`id`, `attributes.updatedAt` / `deletedAt` / `deleted`, and the names
//! under `attributes.custom` for the custom attribute views).
//!
//! Why: parsing each page into `Value`s and serialising every record again was a third of the sync's
//! CPU on the decoding side (a map node and a string per key, then a walk, then freeing it all). Here
//! each object costs one scratch buffer and one vector of keys. Equality with the `Value` path is what
//! keeps hashes of rows stored by earlier versions stable; the tests pin it on every entity the fake
//! serves and on awkward inputs (unsorted and duplicate keys, escapes, numbers of every kind).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a record's canonical text is built with, and the fields picked out of it.
#[derive(Debug, Default)]
pub struct Picked {
    /// The top-level `id` as text: a string as is, a number as serde_json prints it; `None` when
    /// missing or of another type.
    pub id: Option<String>,
    /// `attributes.updatedAt` when a string.
    pub updated_at: Option<String>,
    /// `attributes.deletedAt` when a string.
    pub deleted_at: Option<String>,
    /// `attributes.deleted == true`.
    pub deleted: bool,
    /// The keys of `attributes.custom` when it is an object, sorted and without duplicates.
    pub custom: Vec<String>,
}

/// Which picked field a value is, by where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// The resource object itself.
    Root,
    /// Top-level `id`.
    Id,
    /// Top-level `attributes`.
    Attributes,
    UpdatedAt,
    DeletedAt,
    Deleted,
    /// `attributes.custom`.
    Custom,
    /// Anything else.
    None,
}

impl Pick {
    fn member(self, key: &str) -> Pick {
        match (self, key) {
            (Pick::Root, "id") => Pick::Id,
            (Pick::Root, "attributes") => Pick::Attributes,
            (Pick::Attributes, "updatedAt") => Pick::UpdatedAt,
            (Pick::Attributes, "deletedAt") => Pick::DeletedAt,
            (Pick::Attributes, "deleted") => Pick::Deleted,
            (Pick::Attributes, "custom") => Pick::Custom,
            _ => Pick::None,
        }
    }
}

/// Writes one JSON value's canonical text to `out`, picking fields into `picked`.
pub struct Canonical<'a> {
    out: &'a mut Vec<u8>,
    picked: &'a mut Picked,
    pick: Pick,
}

impl<'a> Canonical<'a> {
    /// A seed for a resource object (the root of what is picked).
    pub fn record(out: &'a mut Vec<u8>, picked: &'a mut Picked) -> Self {
        Canonical {
            out,
            picked,
            pick: Pick::Root,
        }
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a `&str` into a Vec cannot fail: the writer is infallible and strings need no
    // validation, so the error arm is unreachable; ignoring it keeps this function total.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_number<T: serde::Serialize>(out: &mut Vec<u8>, n: T) {
    // As above: integers and finite floats always serialise.
    let _ = serde_json::to_writer(&mut *out, &n);
}

impl<'de> DeserializeSeed<'de> for Canonical<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canonical<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        self.clear_pick();
        if self.pick == Pick::Deleted {
            self.picked.deleted = v;
        }
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // `Value` turns a float it cannot hold into null; JSON text never yields one, but match it.
        if !v.is_finite() {
            return self.visit_unit();
        }
        self.number(v)
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.clear_pick();
        match self.pick {
            Pick::Id => self.picked.id = Some(v.to_string()),
            Pick::UpdatedAt => self.picked.updated_at = Some(v.to_string()),
            Pick::DeletedAt => self.picked.deleted_at = Some(v.to_string()),
            _ => {}
        }
        write_str(self.out, v);
        Ok(())
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.clear_pick();
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.clear_pick();
        self.out.push(b'[');
        let mut first = true;
        loop {
            let at = self.out.len();
            if !first {
                self.out.push(b',');
            }
            let mut ignored = Picked::default();
            let seed = Canonical {
                out: &mut *self.out,
                picked: &mut ignored,
                pick: Pick::None,
            };
            if seq.next_element_seed(seed)?.is_none() {
                self.out.truncate(at);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.clear_pick();
        // Members' texts go to one scratch buffer; keys are borrowed from the input when unescaped.
        let mut values: Vec<u8> = Vec::new();
        let mut members: Vec<(Cow<'de, str>, usize, usize)> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let start = values.len();
            let pick = self.pick.member(&key);
            map.next_value_seed(Canonical {
                out: &mut values,
                picked: &mut *self.picked,
                pick,
            })?;
            members.push((key, start, values.len()));
        }
        // Stable sort, then keep the last of equal keys: a `BTreeMap` insert's last-wins.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        self.out.push(b'{');
        let mut first = true;
        for (i, (key, start, end)) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            if self.pick == Pick::Custom {
                self.picked.custom.push(key.to_string());
            }
            write_str(self.out, key);
            self.out.push(b':');
            self.out.extend_from_slice(&values[*start..*end]);
        }
        self.out.push(b'}');
        Ok(())
    }
}

impl Canonical<'_> {
    fn number<T: serde::Serialize, E: de::Error>(mut self, v: T) -> Result<(), E> {
        self.clear_pick();
        if self.pick == Pick::Id {
            // `Value::Number`'s Display, which the `Value` path used for numeric ids.
            let mut text = Vec::new();
            write_number(&mut text, &v);
            self.picked.id = String::from_utf8(text).ok();
        }
        write_number(self.out, v);
        Ok(())
    }

    /// Forgets what an earlier duplicate of this member picked (the last one wins, as in a `Value`);
    /// the visit then picks again when the value has the right type.
    fn clear_pick(&mut self) {
        match self.pick {
            Pick::Id => self.picked.id = None,
            Pick::Attributes => {
                self.picked.updated_at = None;
                self.picked.deleted_at = None;
                self.picked.deleted = false;
                self.picked.custom.clear();
            }
            Pick::Deleted => self.picked.deleted = false,
            Pick::Custom => self.picked.custom.clear(),
            Pick::UpdatedAt => self.picked.updated_at = None,
            Pick::DeletedAt => self.picked.deleted_at = None,
            Pick::Root | Pick::None => {}
        }
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::page::{Record, decode_page};

    /// The record as the `Value` path builds it.
    fn via_value(text: &str) -> Result<Record, String> {
        Record::from_value(serde_json::from_str(text).unwrap())
    }

    /// The record as a page decodes it.
    fn via_page(text: &str) -> Result<Record, String> {
        let page = format!(r#"{{"data":[{text}]}}"#);
        decode_page(page.as_bytes()).map(|mut p| p.records.remove(0))
    }

    fn assert_same(text: &str) {
        match (via_value(text), via_page(text)) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.data, b.data, "{text}");
                assert_eq!(a.hash, b.hash);
                assert_eq!(a.id, b.id);
                assert_eq!(a.updated_at, b.updated_at, "{text}");
                assert_eq!(a.deleted_at, b.deleted_at, "{text}");
                assert_eq!(a.deleted, b.deleted, "{text}");
                assert_eq!(a.custom, b.custom, "{text}");
            }
            (Err(a), Err(b)) => assert!(b.ends_with(&a), "{a} / {b}"),
            (a, b) => panic!("{text}: value path {a:?}, page path {b:?}"),
        }
    }

    /// `value` written with every object's keys in reverse order and spaces between tokens.
    fn reversed(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let members: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{} : {}", Value::String(k.clone()), reversed(v)))
                    .collect();
                format!("{{ {} }}", members.join(" , "))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(reversed).collect();
                format!("[ {} ]", items.join(", "))
            }
            other => other.to_string(),
        }
    }

    #[test]
    fn canonical_text_equals_the_value_path_on_awkward_objects() {
        for text in [
            r#"{"id":"a","b":1,"a":2}"#,
            r#"{"id":"a","x":1,"x":{"y":2},"attributes":{"updatedAt":"t1"},"attributes":{"deleted":true}}"#,
            r#"{"id":"a","attributes":{"updatedAt":"t1","updatedAt":5,"deletedAt":"d","deleted":"yes"}}"#,
            r#"{"id":"a","attributes":"not an object"}"#,
            r#"{"id":7,"n":[0,-0,1.0,1e3,-2.5e-7,18446744073709551615,-9223372036854775808,0.1]}"#,
            r#"{"id":1.5}"#,
            r#"{"id":"a","s":"tab\t nl\n quote\" back\\ uni\u00e9 ✍️ \ud83d\ude00 ctl\u0001 slash\/"}"#,
            r#"{"id":"a","k\u0065y":"escaped key","key":"plain","é":1,"Z":2,"a":3,"":4}"#,
            r#"{"id":"a","nested":{"z":[{"b":1,"a":[]},{}],"a":null,"m":{"c":true,"b":false}}}"#,
            r#"{"id":"a","attributes":{"deleted":true,"deletedAt":"2024-01-01T00:00:00.000Z"}}"#,
            r#"{"id":"a","attributes":{"custom":{"zStr":1,"a\"b":{"x":1},"aNum":2,"zStr":3}}}"#,
            r#"{"id":"a","attributes":{"custom":{"aStr":1},"custom":["x"]}}"#,
            r#"{"id":"a","attributes":{"custom":{"aStr":1}},"attributes":{"custom":{"bStr":1}}}"#,
            r#"{"id":"a","attributes":{"custom":"text"},"custom":{"top":1}}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":"b","id":{"x":1}}"#,
            r#"{"id":""}"#,
            r#"{"id":null}"#,
            r#"{"type":"customer"}"#,
            r#"["not","an","object"]"#,
            r#""text""#,
        ] {
            assert_same(text);
        }
    }

    #[test]
    fn canonical_text_equals_the_value_path_for_every_record_the_fake_serves_in_any_key_order() {
        let state = crate::fake::state_for_tests();
        let mut checked = 0;
        for (entity, records) in state {
            for value in records {
                let served = value.to_string();
                assert_same(&served);
                let shuffled = reversed(&value);
                assert_same(&shuffled);
                assert_eq!(
                    via_page(&served).unwrap().hash,
                    via_page(&shuffled).unwrap().hash,
                    "{entity}"
                );
                checked += 1;
            }
        }
        assert!(checked > 1_000, "{checked}");
    }
}
