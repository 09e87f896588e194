//! What changed between two versions of a record, for the change log: `path → {old, new}` for every
//! leaf that differs, over canonical texts. Objects are walked; arrays and scalars are compared
//! whole (a changed tag list is one entry); a missing member counts as `null`. Paths are dotted from
//! the resource root (`attributes.status`, `attributes.custom.tierStr`). Values are copied as text,
//! so the old and new values in the log are exactly what was stored and served.

use std::collections::BTreeMap;

use super::canonical::{self, MAX_DEPTH};
use super::scan::{Bad, Scanner, write_string};

/// The changed leaves, by path (WTF-8 bytes, sorted as serde_json sorts keys).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    entries: BTreeMap<Vec<u8>, Change>,
}

/// A leaf's old and new JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub old: String,
    pub new: String,
}

/// A parsed canonical value: objects keep their members, everything else is its canonical text.
enum Node {
    Object(Vec<(Vec<u8>, Node)>),
    Leaf(String),
}

const NULL: &str = "null";

impl Diff {
    /// The changes from `old` to `new` (both JSON texts). `Err` when either does not parse.
    pub fn between(old: &str, new: &str) -> Result<Diff, Bad> {
        let old = parse(old)?;
        let new = parse(new)?;
        let mut diff = Diff::default();
        let mut path = Vec::new();
        walk(&mut path, Some(&old), Some(&new), &mut diff);
        Ok(diff)
    }

    /// Every leaf of `new` as changed from null (what an unreadable old version is diffed as).
    pub fn from_nothing(new: &str) -> Result<Diff, Bad> {
        let new = parse(new)?;
        let mut diff = Diff::default();
        walk(&mut Vec::new(), None, Some(&new), &mut diff);
        Ok(diff)
    }

    /// Adds a change of a path outside the record (e.g. `deleted_at`); values are JSON texts.
    pub fn insert(&mut self, path: &str, old: String, new: String) {
        self.entries
            .insert(path.as_bytes().to_vec(), Change { old, new });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The changes with their paths as text (a lone surrogate in a key shows as U+FFFD here).
    pub fn iter(&self) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, &Change)> {
        self.entries
            .iter()
            .map(|(path, change)| (String::from_utf8_lossy(path), change))
    }

    /// Whether these changes may take a name out of a custom attribute view: a key under
    /// `attributes.custom` went (a diff cannot tell a removed key from one set to null, so both
    /// count), or `custom`, `attributes` or the whole record was replaced.
    pub fn may_remove_custom(&self) -> bool {
        self.iter().any(
            |(path, change)| match path.strip_prefix("attributes.custom") {
                Some("") => true,
                Some(name) => name.starts_with('.') && change.new == NULL,
                None => path == "attributes" || path.is_empty(),
            },
        )
    }

    /// `{"path":{"new":…,"old":…},…}`, keys sorted: the `change_log.changes` text.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(64 * self.entries.len() + 2);
        out.push(b'{');
        for (i, (path, change)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(&mut out, path);
            out.extend_from_slice(b":{\"new\":");
            out.extend_from_slice(change.new.as_bytes());
            out.extend_from_slice(b",\"old\":");
            out.extend_from_slice(change.old.as_bytes());
            out.push(b'}');
        }
        out.push(b'}');
        // Built from UTF-8 strings and `write_string`, which writes lone surrogates as ASCII
        // escapes: always UTF-8. The lossy conversion never replaces anything.
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn parse(text: &str) -> Result<Node, Bad> {
    let mut s = Scanner::new(text.as_bytes());
    let node = node(&mut s, 0)?;
    if s.peek().is_some() {
        return Err(s.unexpected("the end of the text"));
    }
    Ok(node)
}

fn node(s: &mut Scanner<'_>, depth: u32) -> Result<Node, Bad> {
    if s.peek() != Some(b'{') {
        let mut out = Vec::new();
        canonical::any(s, &mut out)?;
        // The canonical writer writes UTF-8 only (see `Diff::to_json`).
        return Ok(Node::Leaf(String::from_utf8_lossy(&out).into_owned()));
    }
    if depth >= MAX_DEPTH {
        return Err(Bad::new(
            s.pos,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    s.pos += 1;
    let mut members = Vec::new();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            let key = s.string()?.bytes().to_vec();
            s.expect(b':', "':'")?;
            members.push((key, node(s, depth + 1)?));
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
    // Canonical text is sorted already; older or hand-made text may not be. Last duplicate wins.
    members.reverse();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|later, earlier| later.0 == earlier.0);
    Ok(Node::Object(members))
}

fn walk(path: &mut Vec<u8>, old: Option<&Node>, new: Option<&Node>, out: &mut Diff) {
    match (old, new) {
        (Some(Node::Object(a)), Some(Node::Object(b))) => {
            let (mut i, mut j) = (0, 0);
            while i < a.len() || j < b.len() {
                let (key, x, y) = match (a.get(i), b.get(j)) {
                    (Some(x), Some(y)) if x.0 == y.0 => {
                        i += 1;
                        j += 1;
                        (&x.0, Some(&x.1), Some(&y.1))
                    }
                    (Some(x), Some(y)) if x.0 < y.0 => {
                        i += 1;
                        (&x.0, Some(&x.1), None)
                    }
                    (Some(x), None) => {
                        i += 1;
                        (&x.0, Some(&x.1), None)
                    }
                    (_, Some(y)) => {
                        j += 1;
                        (&y.0, None, Some(&y.1))
                    }
                    (None, None) => break,
                };
                let len = path.len();
                if !path.is_empty() {
                    path.push(b'.');
                }
                path.extend_from_slice(key);
                walk(path, x, y, out);
                path.truncate(len);
            }
        }
        // A leaf, or an object that appeared, went or replaced a leaf: one entry, whole.
        _ => {
            let old = old.map_or_else(|| NULL.to_string(), text);
            let new = new.map_or_else(|| NULL.to_string(), text);
            if old != new {
                out.entries.insert(path.clone(), Change { old, new });
            }
        }
    }
}

/// A node's canonical text.
fn text(node: &Node) -> String {
    match node {
        Node::Leaf(t) => t.clone(),
        Node::Object(members) => {
            let mut out = Vec::new();
            write_object(&mut out, members);
            String::from_utf8_lossy(&out).into_owned()
        }
    }
}

fn write_object(out: &mut Vec<u8>, members: &[(Vec<u8>, Node)]) {
    out.push(b'{');
    for (i, (key, node)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        match node {
            Node::Leaf(t) => out.extend_from_slice(t.as_bytes()),
            Node::Object(m) => write_object(out, m),
        }
    }
    out.push(b'}');
}
