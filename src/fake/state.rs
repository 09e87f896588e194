//! The fake organisation's data: generation at a scale, and the mutations tests make (update, insert,
//! soft and hard delete, many records at one timestamp), each written to a journal of changes that
//! the webhook sender turns into events (hard deletes are not: Kustomer sends no delete events).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::Scale;
use super::coverage;
use super::data::{self, DATA_END_MS, KLASSES, Pools, iso};
use super::rng::Rng;
use super::sender::Change;
use super::table::{Rec, Table};

/// Entity names the fake serves: the original eleven, then the resources of [`coverage`].
pub const ENTITIES: [&str; 20] = [
    "customers",
    "companies",
    "conversations",
    "messages",
    "notes",
    "users",
    "teams",
    "tags",
    "queues",
    "klasses",
    "kobjects",
    "work_sessions",
    "slas",
    "schedules",
    "snoozes",
    "brands",
    "shortcuts",
    "satisfaction_forms",
    "team_routing_settings",
    "assistants",
];

/// The original eleven entities, whose generated records never change with new resources.
pub const ORIGINAL: usize = 11;

/// How many of each entity a scale has.
struct Counts {
    customers: usize,
    companies: usize,
    conversations: usize,
    messages: usize,
    notes: usize,
    users: usize,
    teams: usize,
    tags: usize,
    queues: usize,
    klasses: usize,
    kobjects: usize,
}

fn counts(scale: Scale) -> Counts {
    match scale {
        Scale::Small => Counts {
            customers: 200,
            companies: 40,
            conversations: 400,
            messages: 1_200,
            notes: 300,
            users: 25,
            teams: 6,
            tags: 30,
            queues: 5,
            klasses: 3,
            kobjects: 150,
        },
        Scale::Medium => Counts {
            customers: 5_000,
            companies: 500,
            conversations: 10_000,
            messages: 30_000,
            notes: 5_000,
            users: 120,
            teams: 15,
            tags: 80,
            queues: 12,
            klasses: 4,
            kobjects: 3_000,
        },
        Scale::Large => Counts {
            customers: 50_000,
            companies: 2_000,
            conversations: 100_000,
            messages: 300_000,
            notes: 40_000,
            users: 400,
            teams: 40,
            tags: 200,
            queues: 30,
            klasses: 5,
            kobjects: 20_000,
        },
    }
}

/// All the fake's records and the generator state mutations continue from.
#[derive(Debug)]
pub struct State {
    /// Entity name (or `kobjects:<klass>`) → table.
    pub tables: BTreeMap<String, Table>,
    /// (klass name, klass id)
    pub klasses: Vec<(String, String)>,
    pools: Pools,
    rng: Rng,
    /// The RNG of the resources added after the original eleven (their generation and inserts).
    cover_rng: Rng,
    last_ts: i64,
    serial: usize,
    rotate: usize,
    /// Delay before search sees a change.
    pub index_lag: Duration,
    /// Changes since the last drain, oldest first (creates, updates, soft deletes, raw puts).
    pub journal: Vec<Change>,
}

/// A generation under way: the tables so far, the pools later records refer to, the RNG and the
/// last `updatedAt` handed out.
struct Generator {
    tables: BTreeMap<String, Table>,
    pools: Pools,
    rng: Rng,
    last: i64,
}

impl Generator {
    /// Adds to table `key` the record `make(rng, id, created, updated)` at the next times; its id.
    fn add(
        &mut self,
        key: &str,
        make: &mut dyn FnMut(&mut Rng, &str, i64, i64) -> Value,
    ) -> String {
        let (c, u) = data::times(&mut self.rng, &mut self.last);
        let id = self.rng.object_id(c / 1000);
        let value = make(&mut self.rng, &id, c, u);
        self.tables
            .entry(key.to_string())
            .or_default()
            .add_indexed(id.clone(), Rec::from_value(&value));
        id
    }

    /// Generates the directory other records refer to: users, teams, tags, queues and klasses.
    fn directory(&mut self, n: &Counts) {
        for i in 0..n.users {
            let id = self.add("users", &mut |r, id, c, u| data::user(r, id, c, u, i));
            self.pools.users.push(id);
        }
        for i in 0..n.teams {
            let p = self.pools.clone();
            let id = self.add("teams", &mut |r, id, c, u| data::team(r, id, c, u, i, &p));
            self.pools.teams.push(id);
        }
        for i in 0..n.tags {
            let id = self.add("tags", &mut |r, id, c, u| data::tag(r, id, c, u, i));
            self.pools.tags.push(id);
        }
        for i in 0..n.queues {
            let id = self.add("queues", &mut |r, id, c, u| data::queue(r, id, c, u, i));
            self.pools.queues.push(id);
        }
        for i in 0..n.klasses {
            let id = self.add("klasses", &mut |_, id, c, u| data::klass(id, c, u, i));
            self.pools
                .klasses
                .push((KLASSES[i % KLASSES.len()].0.to_string(), id));
        }
    }

    /// Generates companies, then customers (who may belong to them).
    fn companies_and_customers(&mut self, n: &Counts) {
        let p = self.pools.clone_small();
        for i in 0..n.companies {
            let id = self.add("companies", &mut |r, id, c, u| {
                data::company(r, id, c, u, i, &p)
            });
            self.pools.companies.push(id);
        }
        let p = self.pools.clone_small();
        for i in 0..n.customers {
            let id = self.add("customers", &mut |r, id, c, u| {
                data::customer(r, id, c, u, i, &p)
            });
            self.pools.customers.push(id);
        }
    }

    /// Generates conversations of random customers, then their messages and notes.
    fn conversations(&mut self, n: &Counts) {
        let small = self.pools.clone_small();
        for _ in 0..n.conversations {
            let customer = self.rng.pick(&self.pools.customers).clone();
            let id = self.add("conversations", &mut |r, id, c, u| {
                data::conversation(r, id, &customer, c, u, &small)
            });
            self.pools.conversations.push((id, customer));
        }
        for _ in 0..n.messages {
            let (conv, customer) = self.rng.pick(&self.pools.conversations).clone();
            self.add("messages", &mut |r, id, c, u| {
                data::message(r, id, &conv, &customer, c, u, &small)
            });
        }
        for _ in 0..n.notes {
            let (conv, customer) = self.rng.pick(&self.pools.conversations).clone();
            self.add("notes", &mut |r, id, c, u| {
                data::note(r, id, &conv, &customer, c, u, &small)
            });
        }
    }

    /// Generates custom objects of random klasses, each linked to a random customer.
    fn kobjects(&mut self, n: &Counts) {
        for i in 0..n.kobjects {
            let (name, klass_id) = self.rng.pick(&self.pools.klasses).clone();
            let customer = self.rng.pick(&self.pools.customers).clone();
            self.add(&format!("kobjects:{name}"), &mut |r, id, c, u| {
                data::kobject(r, id, (&name, &klass_id), &customer, c, u, i)
            });
        }
    }
}

impl State {
    /// Generates the organisation for `seed` at `scale`.
    pub fn generate(seed: u64, scale: Scale, index_lag: Duration) -> State {
        let n = counts(scale);
        let mut g = Generator {
            rng: Rng::new(seed),
            tables: BTreeMap::new(),
            pools: Pools::default(),
            last: 0,
        };
        g.directory(&n);
        g.companies_and_customers(&n);
        g.conversations(&n);
        g.kobjects(&n);
        let Generator {
            mut tables,
            pools,
            rng,
            ..
        } = g;
        let klasses = pools.klasses.clone();
        for (name, _) in &klasses {
            tables.entry(format!("kobjects:{name}")).or_default();
        }
        // After everything else, from its own RNG: the original records and `rng` stay as they were.
        let mut cover_rng = Rng::new(seed ^ coverage::SALT);
        coverage::generate(&mut cover_rng, scale, &mut tables, &pools);
        let mut state = State {
            tables,
            klasses,
            pools,
            rng,
            cover_rng,
            last_ts: DATA_END_MS,
            serial: 1_000_000,
            rotate: 0,
            index_lag,
            journal: Vec::new(),
        };
        state.delete_some_before_start();
        state
    }

    /// Soft-deletes a few percent of customers and conversations before we ever looked (within the
    /// data's time range, so a first sync's cursor stays in it).
    fn delete_some_before_start(&mut self) {
        for entity in ["customers", "conversations"] {
            let ids = self.pick_live(entity, self.count(entity) / 40);
            let Some(table) = self.tables.get_mut(entity) else {
                continue;
            };
            for id in ids {
                let Some(rec) = table.records.get(&id) else {
                    continue;
                };
                let mut value = rec.value();
                let updated = chrono::DateTime::parse_from_rfc3339(&rec.updated)
                    .map(|t| t.timestamp_millis())
                    .unwrap_or(DATA_END_MS - 1);
                let at = iso((updated + 3_600_000).min(DATA_END_MS - 1));
                value["attributes"]["deleted"] = json!(true);
                value["attributes"]["updatedAt"] = json!(at);
                value["attributes"]["modifiedAt"] = json!(at);
                table.put(&id, Rec::from_value(&value), None);
            }
        }
    }

    /// Table keys of `entity` (kobjects: one per klass).
    pub fn keys(&self, entity: &str) -> Vec<String> {
        if entity == "kobjects" {
            self.klasses
                .iter()
                .map(|(k, _)| format!("kobjects:{k}"))
                .collect()
        } else {
            vec![entity.to_string()]
        }
    }

    /// Records not hard-deleted, soft-deleted included, as served.
    pub fn records(&self, entity: &str) -> Vec<Value> {
        self.keys(entity)
            .iter()
            .filter_map(|k| self.tables.get(k))
            .flat_map(|t| {
                t.order
                    .iter()
                    .filter_map(|id| t.records.get(id))
                    .map(Rec::value)
            })
            .collect()
    }

    /// Number of records not hard-deleted.
    pub fn count(&self, entity: &str) -> usize {
        self.keys(entity)
            .iter()
            .filter_map(|k| self.tables.get(k))
            .map(|t| t.records.len())
            .sum()
    }

    /// The table key holding `id` of `entity`.
    pub fn key_of(&self, entity: &str, id: &str) -> Option<String> {
        self.keys(entity).into_iter().find(|k| {
            self.tables
                .get(k)
                .is_some_and(|t| t.records.contains_key(id))
        })
    }

    /// The next mutation timestamp: now, never earlier than the last one (so equal milliseconds tie).
    pub fn next_ts(&mut self) -> String {
        let now = chrono::Utc::now().timestamp_millis();
        self.last_ts = self.last_ts.max(now);
        iso(self.last_ts)
    }

    fn visible_at(&self, immediate: Option<bool>) -> Option<Instant> {
        match immediate {
            Some(false) => None,
            _ if self.index_lag.is_zero() => None,
            _ => Some(Instant::now() + self.index_lag),
        }
    }

    /// Applies `change(value, timestamp)` to a record; bumps `rev`. `None` if there is no such record.
    pub fn modify(
        &mut self,
        entity: &str,
        id: &str,
        change: impl FnOnce(&mut Value, &str),
        immediate: Option<bool>,
    ) -> Option<Value> {
        let key = self.key_of(entity, id)?;
        let ts = self.next_ts();
        let visible = self.visible_at(immediate);
        let table = self.tables.get_mut(&key)?;
        let before = table.records.get(id)?.text.clone();
        let mut value = table.records.get(id)?.value();
        if let Some(rev) = value["attributes"]["rev"].as_u64() {
            value["attributes"]["rev"] = json!(rev + 1);
        }
        value["attributes"]["updatedAt"] = json!(ts);
        if value["attributes"].get("modifiedAt").is_some() {
            value["attributes"]["modifiedAt"] = json!(ts);
        }
        change(&mut value, &ts);
        let rec = Rec::from_value(&value);
        let after = rec.text.clone();
        table.put(id, rec, visible);
        self.journal.push(Change {
            key,
            id: id.to_string(),
            before: Some(before),
            after,
        });
        Some(value)
    }

    /// Up to `n` live record ids of `entity`, spread over the table, different on each call.
    pub fn pick_live(&mut self, entity: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for key in self.keys(entity) {
            if let Some(t) = self.tables.get(&key) {
                ids.extend(
                    t.order
                        .iter()
                        .filter(|id| t.records.get(*id).is_some_and(|r| !r.deleted))
                        .cloned(),
                );
            }
        }
        if ids.is_empty() {
            return Vec::new();
        }
        let len = ids.len();
        let stride = [7919usize, 104_729, 15_485_863]
            .into_iter()
            .find(|p| len % p != 0)
            .unwrap_or(1);
        let start = self.rotate % len;
        self.rotate = self.rotate.wrapping_add(n.max(1) * stride + 1);
        (0..n.min(len))
            .map(|i| ids[(start + i * stride) % len].clone())
            .collect()
    }

    /// A realistic change to one record: conversations change status, everything changes its `rev`.
    pub fn touch(value: &mut Value, serial: usize) {
        if let Some(status) = value["attributes"]["status"].as_str() {
            let next = match status {
                "open" => "snoozed",
                "snoozed" => "done",
                _ => "open",
            };
            if value["type"] == "conversation" {
                value["attributes"]["status"] = json!(next);
            }
        }
        value["attributes"]["preview"] = json!(format!("updated #{serial} ✏️"));
    }

    /// Updates `n` live records, each at its own next timestamp.
    pub fn update_many(&mut self, entity: &str, n: usize) -> Vec<String> {
        let ids = self.pick_live(entity, n);
        for id in &ids {
            self.serial += 1;
            let serial = self.serial;
            self.modify(entity, id, |v, _| State::touch(v, serial), None);
        }
        ids
    }

    /// Updates `n` live records to one identical `updatedAt`.
    pub fn touch_same(&mut self, entity: &str, n: usize) -> (Vec<String>, String) {
        let ids = self.pick_live(entity, n);
        let ts = self.next_ts();
        for id in &ids {
            self.serial += 1;
            let serial = self.serial;
            let same = ts.clone();
            self.modify(
                entity,
                id,
                |v, _| {
                    State::touch(v, serial);
                    v["attributes"]["updatedAt"] = json!(same);
                    if v["attributes"].get("modifiedAt").is_some() {
                        v["attributes"]["modifiedAt"] = json!(same);
                    }
                },
                None,
            );
        }
        (ids, ts)
    }

    /// Soft-deletes a record: `deleted: true` (teams, tags and the resources of [`coverage`] also
    /// get `deletedAt`).
    pub fn soft_delete(&mut self, entity: &str, id: &str) -> bool {
        let dated = matches!(entity, "teams" | "tags") || coverage::by_key(entity).is_some();
        self.modify(
            entity,
            id,
            |v, ts| {
                v["attributes"]["deleted"] = json!(true);
                if dated {
                    v["attributes"]["deletedAt"] = json!(ts);
                }
            },
            None,
        )
        .is_some()
    }

    /// Removes a record everywhere.
    pub fn hard_delete(&mut self, entity: &str, id: &str) -> bool {
        match self.key_of(entity, id) {
            Some(key) => self.tables.get_mut(&key).is_some_and(|t| t.remove(id)),
            None => false,
        }
    }

    /// Serves `text` verbatim as the record `id` of table `key` (an entity, or `kobjects:<klass>`),
    /// listed and searched as updated at `updated`, visible to search at once: how tests serve what
    /// a `Value` cannot hold (lone surrogate escapes, numbers in any spelling, items that are not
    /// objects). Replaces a record of that id.
    pub fn put_raw(&mut self, key: &str, id: &str, text: &str, updated: &str) {
        let rec = Rec {
            text: text.into(),
            created: updated.to_string(),
            updated: updated.to_string(),
            deleted: false,
            customer: None,
            conversation: None,
            indexed: None,
        };
        let after = rec.text.clone();
        let table = self.tables.entry(key.to_string()).or_default();
        let before = table.records.get(id).map(|r| r.text.clone());
        table.put(id, rec, None);
        self.journal.push(Change {
            key: key.to_string(),
            id: id.to_string(),
            before,
            after,
        });
    }

    /// Creates a new record of `entity` (kobjects: of `klass`, default the first) now.
    pub fn insert(&mut self, entity: &str, klass: Option<&str>) -> Option<String> {
        if coverage::by_key(entity).is_some() {
            return self.insert_extra(entity);
        }
        let ts_ms = {
            self.next_ts();
            self.last_ts
        };
        self.serial += 1;
        let i = self.serial;
        let id = self.rng.object_id(ts_ms / 1000);
        let pools = self.pools.clone_small();
        let rng = &mut self.rng;
        let (key, value) = match entity {
            "customers" => (
                "customers".to_string(),
                data::customer(rng, &id, ts_ms, ts_ms, i, &pools),
            ),
            "companies" => (
                "companies".to_string(),
                data::company(rng, &id, ts_ms, ts_ms, i, &pools),
            ),
            "conversations" => {
                let customer = rng.pick(&self.pools.customers).clone();
                (
                    "conversations".to_string(),
                    data::conversation(rng, &id, &customer, ts_ms, ts_ms, &pools),
                )
            }
            "messages" | "notes" => {
                let (conv, customer) = rng.pick(&self.pools.conversations).clone();
                let v = if entity == "messages" {
                    data::message(rng, &id, &conv, &customer, ts_ms, ts_ms, &pools)
                } else {
                    data::note(rng, &id, &conv, &customer, ts_ms, ts_ms, &pools)
                };
                (entity.to_string(), v)
            }
            "users" => ("users".to_string(), data::user(rng, &id, ts_ms, ts_ms, i)),
            "teams" => (
                "teams".to_string(),
                data::team(rng, &id, ts_ms, ts_ms, i, &pools),
            ),
            "tags" => ("tags".to_string(), data::tag(rng, &id, ts_ms, ts_ms, i)),
            "queues" => ("queues".to_string(), data::queue(rng, &id, ts_ms, ts_ms, i)),
            "kobjects" => {
                let (name, klass_id) = match klass {
                    Some(k) => self.klasses.iter().find(|(n, _)| n == k)?.clone(),
                    None => self.klasses.first()?.clone(),
                };
                let customer = rng.pick(&self.pools.customers).clone();
                (
                    format!("kobjects:{name}"),
                    data::kobject(rng, &id, (&name, &klass_id), &customer, ts_ms, ts_ms, i),
                )
            }
            _ => return None,
        };
        self.store_new(key, &id, &value);
        Some(id)
    }

    /// Creates a new record of one of the resources of [`coverage`] now, drawing on its own RNG.
    fn insert_extra(&mut self, entity: &str) -> Option<String> {
        self.next_ts();
        let ts_ms = self.last_ts;
        self.serial += 1;
        let i = self.serial;
        let id = self.cover_rng.object_id(ts_ms / 1000);
        let (agents, machines) = coverage::user_kinds(&self.tables);
        let pools = self.pools.clone_small();
        let refs = coverage::Refs {
            pools: &pools,
            agents: &agents,
            machines: &machines,
        };
        let value = coverage::make(entity, &mut self.cover_rng, &id, ts_ms, i, &refs)?;
        self.store_new(entity.to_string(), &id, &value);
        Some(id)
    }

    /// Stores a created record (search sees it after the index lag) and journals its creation.
    fn store_new(&mut self, key: String, id: &str, value: &Value) {
        let visible = self.visible_at(None);
        let rec = Rec::from_value(value);
        let after = rec.text.clone();
        self.tables
            .entry(key.clone())
            .or_default()
            .put(id, rec, visible);
        self.journal.push(Change {
            key,
            id: id.to_string(),
            before: None,
            after,
        });
    }
}

impl Pools {
    /// The pools relationships of new records draw from (without the big customer/conversation
    /// lists, which generators pick from directly).
    pub fn clone_small(&self) -> Pools {
        Pools {
            users: self.users.clone(),
            teams: self.teams.clone(),
            tags: self.tags.clone(),
            queues: self.queues.clone(),
            companies: self.companies.clone(),
            ..Pools::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash of every record of the eleven original tables (conversations without the `sla` and
    /// `satisfactionLevel` attributes added later) in serving order, and of the mutation RNG.
    pub(crate) fn fingerprint(state: &State) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut count = 0usize;
        for (key, table) in &state.tables {
            let original =
                ENTITIES[..ORIGINAL].contains(&key.as_str()) || key.starts_with("kobjects:");
            if !original {
                continue;
            }
            h.update(key.as_bytes());
            for id in &table.order {
                let Some(rec) = table.records.get(id) else {
                    continue;
                };
                let text = if key == "conversations" {
                    let mut v = rec.value();
                    if let Some(a) = v["attributes"].as_object_mut() {
                        a.remove("sla");
                        a.remove("satisfactionLevel");
                    }
                    v.to_string()
                } else {
                    rec.text.to_string()
                };
                h.update(id.as_bytes());
                h.update(text.as_bytes());
                count += 1;
            }
        }
        h.update(format!("{:?}", state.rng).as_bytes());
        format!("{count}:{:016x}", h.digest())
    }

    /// The fingerprints were taken on `main` before the resources of `coverage` were added: the
    /// original records (conversations less their two new attributes), their order, and the RNG
    /// later mutations draw from must stay exactly as they were.
    #[test]
    fn the_original_tables_are_unchanged() {
        let state = State::generate(7, Scale::Small, Duration::ZERO);
        assert_eq!(fingerprint(&state), "2359:6309c140beae2804");
    }

    #[test]
    #[ignore = "medium generation takes ~25 s in debug builds"]
    fn the_original_tables_are_unchanged_at_medium_scale() {
        let state = State::generate(42, Scale::Medium, Duration::ZERO);
        assert_eq!(fingerprint(&state), "53731:97bca70f1243fed5");
    }

    #[test]
    fn inserting_and_soft_deleting_new_resources_work() {
        let mut state = State::generate(7, Scale::Small, Duration::ZERO);
        for entity in &ENTITIES[ORIGINAL..] {
            let before = state.count(entity);
            let id = state.insert(entity, None).unwrap();
            assert_eq!(state.count(entity), before + 1, "{entity}");
            assert!(state.soft_delete(entity, &id), "{entity}");
            let key = state.key_of(entity, &id).unwrap();
            let v = state.tables[&key].records[&id].value();
            assert_eq!(v["attributes"]["deleted"], true, "{entity}");
            assert!(v["attributes"]["deletedAt"].is_string(), "{entity}");
            assert!(state.hard_delete(entity, &id), "{entity}");
            assert_eq!(state.count(entity), before, "{entity}");
        }
    }
}
