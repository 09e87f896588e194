//! Canonical JSON of a served resource object, written straight from the response bytes: keys
//! sorted (by their decoded text), the last of duplicate keys kept, no whitespace, strings escaped as
//! serde_json escapes them. Numbers are copied as the exact token served, so no value is ever rounded
//! through `f64` (`123456789.12345679`, `18446744073709552000`, `-0.0` and `1e+21` stay what they
//! were), and a lone surrogate escape (half an emoji, as JavaScript prints it) stays an escape.
//!
//! On the way it picks out what the mirror needs: `id`, `attributes.updatedAt` / `deletedAt` /
//! `deleted`, and the names under `attributes.custom` for the custom attribute views.
//!
//! For every input serde_json can parse exactly (no lone surrogates, numbers as serde_json would
//! print them), the text equals what serde_json prints for the parsed `Value`, so the hashes of rows
//! stored by earlier versions stay the same.

use std::borrow::Cow;

use super::scan::{Bad, Scanner, Str, write_string};

/// Objects and arrays nested deeper than this are refused (serde_json's own limit), so a hostile
/// document cannot overflow the stack.
pub const MAX_DEPTH: u32 = 128;

/// What a record's canonical text is built with, and the fields picked out of it.
#[derive(Debug, Default)]
pub struct Picked {
    /// The top-level `id` as text: a string as is (when valid Unicode), a number as its token;
    /// `None` when missing or of another type.
    pub id: Option<String>,
    /// Why `id` is unusable when it is present but not a string or number (named in rejections).
    pub id_problem: Option<&'static str>,
    /// `attributes.updatedAt` when a string.
    pub updated_at: Option<String>,
    /// `attributes.deletedAt` when a string.
    pub deleted_at: Option<String>,
    /// `attributes.deleted == true`.
    pub deleted: bool,
    /// The keys of `attributes.custom` when it is an object, sorted and without duplicates (keys
    /// holding a lone surrogate are left out: they cannot name a column).
    pub custom: Vec<String>,
    /// Whether the top-level value was an object.
    pub object: bool,
}

/// Which picked field a value is, by where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    Root,
    Id,
    Attributes,
    UpdatedAt,
    DeletedAt,
    Deleted,
    Custom,
    None,
}

impl Pick {
    fn member(self, key: &[u8]) -> Pick {
        match (self, key) {
            (Pick::Root, b"id") => Pick::Id,
            (Pick::Root, b"attributes") => Pick::Attributes,
            (Pick::Attributes, b"updatedAt") => Pick::UpdatedAt,
            (Pick::Attributes, b"deletedAt") => Pick::DeletedAt,
            (Pick::Attributes, b"deleted") => Pick::Deleted,
            (Pick::Attributes, b"custom") => Pick::Custom,
            _ => Pick::None,
        }
    }
}

/// Writes the canonical text of the value at the scanner's position to `out`, picking the record's
/// fields into `picked`. On error the scanner stands somewhere inside the value.
pub fn record(s: &mut Scanner<'_>, out: &mut Vec<u8>, picked: &mut Picked) -> Result<(), Bad> {
    picked.object = s.peek() == Some(b'{');
    value(s, out, picked, Pick::Root, 0)
}

/// Writes the canonical text of any value (nothing picked): `links`, `meta`, the diff's inputs.
pub fn any(s: &mut Scanner<'_>, out: &mut Vec<u8>) -> Result<(), Bad> {
    let mut ignored = Picked::default();
    value(s, out, &mut ignored, Pick::None, 0)
}

fn value(
    s: &mut Scanner<'_>,
    out: &mut Vec<u8>,
    picked: &mut Picked,
    pick: Pick,
    depth: u32,
) -> Result<(), Bad> {
    clear(picked, pick);
    let next = s.peek();
    if matches!(next, Some(b'{' | b'[')) {
        not_an_id(picked, pick);
        if depth >= MAX_DEPTH {
            return Err(Bad::new(
                s.pos,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
    }
    match next {
        Some(b'{') => object(s, out, picked, pick, depth + 1),
        Some(b'[') => array(s, out, picked, depth + 1),
        Some(b'"') => {
            let at = s.pos;
            let body = s.string()?;
            match pick {
                Pick::Id => match body.text() {
                    Some(t) => picked.id = Some(t.to_string()),
                    None => picked.id_problem = Some("an \"id\" that is not valid Unicode"),
                },
                Pick::UpdatedAt => picked.updated_at = body.text().map(str::to_string),
                Pick::DeletedAt => picked.deleted_at = body.text().map(str::to_string),
                _ => {}
            }
            match body {
                // Unescaped and valid UTF-8 without control characters: the served bytes are
                // already what serde_json would print.
                Str::Plain(_) => out.extend_from_slice(&s.bytes[at..s.pos]),
                Str::Decoded(text) => write_string(out, &text),
            }
            Ok(())
        }
        Some(b'-' | b'0'..=b'9') => {
            let token = s.number()?;
            if pick == Pick::Id {
                // ASCII digits and signs only, so this always holds.
                picked.id = std::str::from_utf8(token).ok().map(str::to_string);
            }
            out.extend_from_slice(token);
            Ok(())
        }
        Some(b't') => {
            s.literal(b"true")?;
            if pick == Pick::Deleted {
                picked.deleted = true;
            }
            not_an_id(picked, pick);
            out.extend_from_slice(b"true");
            Ok(())
        }
        Some(b'f') => {
            s.literal(b"false")?;
            not_an_id(picked, pick);
            out.extend_from_slice(b"false");
            Ok(())
        }
        Some(b'n') => {
            s.literal(b"null")?;
            out.extend_from_slice(b"null");
            Ok(())
        }
        _ => Err(s.unexpected("a JSON value")),
    }
}

fn not_an_id(picked: &mut Picked, pick: Pick) {
    if pick == Pick::Id {
        picked.id_problem = Some("an \"id\" that is neither a string nor a number");
    }
}

fn array(
    s: &mut Scanner<'_>,
    out: &mut Vec<u8>,
    picked: &mut Picked,
    depth: u32,
) -> Result<(), Bad> {
    s.pos += 1;
    out.push(b'[');
    if s.peek() == Some(b']') {
        s.pos += 1;
        out.push(b']');
        return Ok(());
    }
    loop {
        value(s, out, picked, Pick::None, depth)?;
        match s.peek() {
            Some(b',') => {
                s.pos += 1;
                out.push(b',');
            }
            Some(b']') => {
                s.pos += 1;
                out.push(b']');
                return Ok(());
            }
            _ => return Err(s.unexpected("',' or ']'")),
        }
    }
}

fn object(
    s: &mut Scanner<'_>,
    out: &mut Vec<u8>,
    picked: &mut Picked,
    pick: Pick,
    depth: u32,
) -> Result<(), Bad> {
    s.pos += 1;
    // Members' texts go to one scratch buffer; keys are borrowed from the input when unescaped.
    let mut values: Vec<u8> = Vec::new();
    let mut members: Vec<(Cow<'_, [u8]>, usize, usize)> = Vec::new();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            if s.peek() != Some(b'"') {
                return Err(s.unexpected("an object key"));
            }
            let key: Cow<'_, [u8]> = match s.string()? {
                Str::Plain(k) => Cow::Borrowed(k),
                Str::Decoded(k) => Cow::Owned(k),
            };
            s.expect(b':', "':'")?;
            let start = values.len();
            let member = pick.member(&key);
            value(s, &mut values, picked, member, depth)?;
            members.push((key, start, values.len()));
            match s.peek() {
                Some(b',') => s.pos += 1,
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                _ => return Err(s.unexpected("',' or '}'")),
            }
        }
    }
    // Stable sort, then keep the last of equal keys: a map insert's last-wins. WTF-8 bytes sort as
    // UTF-8 does, which is the order of serde_json's `BTreeMap<String, _>`.
    members.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(b'{');
    let mut first = true;
    for (i, (key, start, end)) in members.iter().enumerate() {
        if members.get(i + 1).is_some_and(|next| next.0 == *key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if pick == Pick::Custom
            && let Ok(name) = std::str::from_utf8(key)
        {
            picked.custom.push(name.to_string());
        }
        write_string(out, key);
        out.push(b':');
        out.extend_from_slice(&values[*start..*end]);
    }
    out.push(b'}');
    Ok(())
}

/// Forgets what an earlier duplicate of this member picked (the last one wins); the value being
/// read then picks again when it has the right type.
fn clear(picked: &mut Picked, pick: Pick) {
    match pick {
        Pick::Id => {
            picked.id = None;
            picked.id_problem = None;
        }
        Pick::Attributes => {
            picked.updated_at = None;
            picked.deleted_at = None;
            picked.deleted = false;
            picked.custom.clear();
        }
        Pick::Deleted => picked.deleted = false,
        Pick::Custom => picked.custom.clear(),
        Pick::UpdatedAt => picked.updated_at = None,
        Pick::DeletedAt => picked.deleted_at = None,
        Pick::Root | Pick::None => {}
    }
}
