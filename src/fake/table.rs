//! One collection of the fake's records (an entity, or the kobjects of one klass): the records as
//! pre-serialised JSON, their creation order for lists, and the search index — which may lag behind
//! the records by the configured index lag, as Kustomer's does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

/// The version of a record search sees.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub text: Arc<str>,
    pub updated: String,
    pub deleted: bool,
}

/// One record.
#[derive(Debug, Clone)]
pub struct Rec {
    /// The resource object as served by lists and by-id reads.
    pub text: Arc<str>,
    pub created: String,
    pub updated: String,
    pub deleted: bool,
    pub customer: Option<String>,
    pub conversation: Option<String>,
    /// What search sees; `None` until a new record is indexed.
    pub indexed: Option<Indexed>,
}

impl Rec {
    /// Builds a record from its resource object.
    pub fn from_value(value: &Value) -> Rec {
        let text: Arc<str> = Arc::from(value.to_string());
        let attr = |k: &str| {
            value["attributes"][k]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let parent = |k: &str| {
            value["relationships"][k]["data"]["id"]
                .as_str()
                .map(str::to_string)
        };
        Rec {
            text,
            created: attr("createdAt"),
            updated: attr("updatedAt"),
            deleted: value["attributes"]["deleted"].as_bool() == Some(true),
            customer: parent("customer"),
            conversation: parent("conversation"),
            indexed: None,
        }
    }

    /// The parsed resource object.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// A collection with its indexes.
#[derive(Debug, Default)]
pub struct Table {
    pub records: HashMap<String, Rec>,
    /// Ids in creation order (= createdAt order: new records are created "now", after all data).
    pub order: Vec<String>,
    /// (indexed updatedAt, id) → indexed deleted flag.
    pub by_updated: BTreeMap<(String, String), bool>,
    pending: VecDeque<(Instant, String)>,
}

impl Table {
    /// Adds a generated record, indexed at once.
    pub fn add_indexed(&mut self, id: String, rec: Rec) {
        self.order.push(id.clone());
        self.records.insert(id.clone(), rec);
        self.reindex(&id);
    }

    /// Replaces (or adds) a record; search sees the new version at `visible_at`.
    pub fn put(&mut self, id: &str, rec: Rec, visible_at: Option<Instant>) {
        if !self.records.contains_key(id) {
            self.order.push(id.to_string());
        }
        let indexed = self.records.get(id).and_then(|r| r.indexed.clone());
        self.records.insert(id.to_string(), Rec { indexed, ..rec });
        match visible_at {
            None => self.reindex(id),
            Some(at) => self.pending.push_back((at, id.to_string())),
        }
    }

    /// Removes a record everywhere.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(rec) = self.records.remove(id) else {
            return false;
        };
        if let Some(ix) = rec.indexed {
            self.by_updated.remove(&(ix.updated, id.to_string()));
        }
        self.order.retain(|x| x != id);
        true
    }

    /// Makes due pending versions visible to search.
    pub fn refresh(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, id)) = self.pending.pop_front() {
                self.reindex(&id);
            }
        }
    }

    fn reindex(&mut self, id: &str) {
        let Some(rec) = self.records.get_mut(id) else {
            return;
        };
        if let Some(old) = rec.indexed.take() {
            self.by_updated.remove(&(old.updated, id.to_string()));
        }
        rec.indexed = Some(Indexed {
            text: rec.text.clone(),
            updated: rec.updated.clone(),
            deleted: rec.deleted,
        });
        self.by_updated
            .insert((rec.updated.clone(), id.to_string()), rec.deleted);
    }
}
