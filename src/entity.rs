//! The mirrored entities described as data (docs/design.md §2): table, API paths, sync strategy and
//! search attributes. The engine (`sync`), the core (`mirror`) and both executors (`sqlite`,
//! `postgres`) are generic over these descriptors: no code path names an entity.
//!
//! # Adding an entity
//!
//! What a new entity touches, and what checks that it was not forgotten:
//! 1. A descriptor in [`ENTITIES`] (and `custom_views` if it carries `attributes.custom`).
//! 2. Its table in `schema.sql` and its twin in `src/postgres/schema.sql`: the same columns and
//!    typed columns (`tests/pg_schema.rs` compares the two models on real databases, and
//!    `tests/store.rs` checks every entity table has the contract columns).
//! 3. An upgrade step in `sqlite/migrate.rs` and one in `postgres/migrate.rs` that creates the
//!    table in an existing mirror (the upgrade tests compare an upgraded database with a new one).
//! 4. The fake: its name in `fake::state::ENTITIES` (the fake keeps its own list, as Kustomer does:
//!    the tests compare the mirror with it) and records in `fake::state` generation.
//! 5. The README's entity list and docs/schema.md.
//!
//! Nothing else: the writes, change log, cursor, runs, status, views and `/metrics` follow the
//! descriptor.

/// How an entity is kept up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `POST /v1/customers/search` on `<context>_updated_at`, keyset-paged (docs/design.md §2).
    Search,
    /// Search if the org accepts the context, else a full refresh (companies, work sessions).
    SearchOrFull,
    /// Page the GET list to the end; rows not seen become tombstones.
    FullRefresh,
    /// One search-incremental pass per klass, klasses discovered from `GET /v1/klasses`.
    PerKlass,
}

impl Strategy {
    /// The name `sync_state.strategy` saves for the way an entity is synced (`search` or `full`,
    /// the two an entity that may use either ends up with; the others for completeness).
    pub fn saved_name(self) -> &'static str {
        match self {
            Strategy::Search => "search",
            Strategy::FullRefresh => "full",
            Strategy::SearchOrFull => "search-or-full",
            Strategy::PerKlass => "per-klass",
        }
    }

    /// Reads `sync_state.strategy`: `search` or `full`; anything else (hand-edited) is no choice,
    /// and the next sync probes again.
    pub fn from_stored(text: &str) -> Option<Strategy> {
        match text {
            "search" => Some(Strategy::Search),
            "full" => Some(Strategy::FullRefresh),
            _ => None,
        }
    }
}

/// One mirrored entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    /// Plural name: the table, the `sync_state`/`sync_runs` key and the `--entity` value.
    pub name: &'static str,
    /// Search `queryContext` (for kobjects, the prefix of `kobject_<klass>`).
    pub context: &'static str,
    /// The GET list path (`/v1/...`); for kobjects, `/v1/klasses` + `/{klass}`.
    pub list_path: &'static str,
    /// Query parameters the list needs besides paging (`include=holidays`), or empty.
    pub list_query: &'static str,
    /// Where one record is read by id: `<item_path>/<id>` (the list path, except for records that
    /// only arrive inside another list, such as holidays at `/v1/holidays`).
    pub item_path: &'static str,
    /// For records that only arrive as related objects: the JSON:API type taken from the `included`
    /// of `list_path`'s pages instead of `data` (holidays, from the schedules list).
    pub included: Option<&'static str>,
    /// Largest `pageSize` the GET list accepts (design: most lists 100, users and teams 500).
    pub list_max_page_size: u32,
    /// How it is synced.
    pub strategy: Strategy,
    /// Whether its records carry `attributes.custom`, shown by `<table>_custom` views (per klass for
    /// kobjects).
    pub custom_views: bool,
    /// Whether Kustomer's outbound webhooks send `kustomer.<context>.{create,update}` events for it
    /// (customers, conversations, messages, users, teams and tags; no deletes for any).
    pub webhook_events: bool,
    /// Whether an org or a key may not offer the entity at all (the coverage entities: routing,
    /// SLAs, schedules…). Its first request answering 404, 403 or 400 marks it unsupported in
    /// `sync_state.unsupported`, with the reason, instead of failing the run.
    pub optional: bool,
    /// The Kustomer role a key needs to read it, named when Kustomer answers 403 (the roles of
    /// `../shared/kustomer-api.md` §12; empty for the first eleven, whose 403 message is generic).
    pub role: &'static str,
}

impl Entity {
    /// Search attribute the cursor follows, e.g. `conversation_updated_at`.
    pub fn updated_attr(&self) -> String {
        format!("{}_updated_at", self.context)
    }

    /// Search attribute for creation time, used by the hard-delete reconcile.
    pub fn created_attr(&self) -> String {
        format!("{}_created_at", self.context)
    }

    /// Path of one record by id (kobjects need their klass).
    pub fn by_id_path(&self, id: &str, klass: Option<&str>) -> String {
        // Ids come from the data: percent-encoded, one cannot add a path segment or a query.
        let id = segment(id);
        match klass {
            Some(klass) => format!("/v1/klasses/{}/{id}", segment(klass)),
            None => format!("{}/{id}", self.item_path),
        }
    }

    /// Whether the entity is synced, keyed and viewed per klass (kobjects): its `sync_state` keys are
    /// `<name>:<klass>` ([`StateKey`]) and its table has a `klass` column.
    pub fn per_klass(&self) -> bool {
        self.strategy == Strategy::PerKlass
    }

    /// Whether search is how this entity is normally read.
    pub fn uses_search(&self) -> bool {
        matches!(
            self.strategy,
            Strategy::Search | Strategy::SearchOrFull | Strategy::PerKlass
        )
    }
}

/// `text` as one URL path segment: everything but RFC 3986's unreserved characters percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

const fn entity(
    name: &'static str,
    context: &'static str,
    list_path: &'static str,
    list_max_page_size: u32,
    strategy: Strategy,
) -> Entity {
    Entity {
        name,
        context,
        list_path,
        list_query: "",
        item_path: list_path,
        included: None,
        list_max_page_size,
        strategy,
        custom_views: false,
        webhook_events: false,
        optional: false,
        role: "",
    }
}

/// `e` as an entity an org or key may not offer, read with `role`.
const fn optional(e: Entity, role: &'static str) -> Entity {
    Entity {
        optional: true,
        role,
        ..e
    }
}

/// `e` with outbound-webhook events.
const fn with_webhook_events(e: Entity) -> Entity {
    Entity {
        webhook_events: true,
        ..e
    }
}

/// `e` with custom attribute views.
const fn with_custom_views(e: Entity) -> Entity {
    Entity {
        custom_views: true,
        ..e
    }
}

/// All entities in the order a full pass syncs them (klasses before kobjects).
pub const ENTITIES: [Entity; 21] = [
    with_webhook_events(entity(
        "users",
        "user",
        "/v1/users",
        500,
        Strategy::FullRefresh,
    )),
    with_webhook_events(entity(
        "teams",
        "team",
        "/v1/teams",
        500,
        Strategy::FullRefresh,
    )),
    with_webhook_events(entity(
        "tags",
        "tag",
        "/v1/tags",
        100,
        Strategy::FullRefresh,
    )),
    entity(
        "queues",
        "queue",
        "/v1/routing/queues",
        100,
        Strategy::FullRefresh,
    ),
    entity(
        "klasses",
        "klass",
        "/v1/klasses",
        100,
        Strategy::FullRefresh,
    ),
    with_custom_views(entity(
        "companies",
        "company",
        "/v1/companies",
        100,
        Strategy::SearchOrFull,
    )),
    with_webhook_events(with_custom_views(entity(
        "customers",
        "customer",
        "/v1/customers",
        100,
        Strategy::Search,
    ))),
    with_webhook_events(with_custom_views(entity(
        "conversations",
        "conversation",
        "/v1/conversations",
        100,
        Strategy::Search,
    ))),
    with_webhook_events(with_custom_views(entity(
        "messages",
        "message",
        "/v1/messages",
        100,
        Strategy::Search,
    ))),
    entity("notes", "note", "/v1/notes", 100, Strategy::Search),
    with_custom_views(entity(
        "kobjects",
        "kobject",
        "/v1/klasses",
        100,
        Strategy::PerKlass,
    )),
    // The coverage entities (../shared/kustomer-api.md §12). Page sizes: no maximum is documented
    // for these lists (uncertain), so 100, which every Kustomer list accepts. `work_session` as a
    // search context is only seen in unofficial code (uncertain): probed, with the full list as the
    // fallback, as for companies.
    optional(
        entity(
            "work_sessions",
            "work_session",
            "/v1/routing/work-sessions",
            100,
            Strategy::SearchOrFull,
        ),
        "org.permission.work_session.read",
    ),
    optional(
        entity("slas", "sla", "/v1/slas", 100, Strategy::FullRefresh),
        "org.permission.sla.read",
    ),
    optional(
        entity(
            "schedules",
            "schedule",
            "/v1/schedules",
            100,
            Strategy::FullRefresh,
        ),
        "org.permission.schedule.read",
    ),
    // Holidays have no list of their own: they arrive as the `included` objects of the schedules
    // list, and are read one by one at `/v1/holidays/{id}` (their self link) to confirm a delete.
    optional(
        Entity {
            list_query: "include=holidays",
            item_path: "/v1/holidays",
            included: Some("holiday"),
            ..entity(
                "holidays",
                "holiday",
                "/v1/schedules",
                100,
                Strategy::FullRefresh,
            )
        },
        "org.permission.schedule.read",
    ),
    optional(
        entity(
            "snoozes",
            "snooze",
            "/v1/snoozes",
            100,
            Strategy::FullRefresh,
        ),
        "org.permission.snooze.read",
    ),
    optional(
        entity("brands", "brand", "/v1/brands", 100, Strategy::FullRefresh),
        "org.permission.brand.read",
    ),
    optional(
        entity(
            "shortcuts",
            "shortcut",
            "/v1/shortcuts",
            100,
            Strategy::FullRefresh,
        ),
        "org.permission.shortcut.read",
    ),
    optional(
        entity(
            "satisfaction_forms",
            "satisfaction",
            "/v1/satisfaction",
            100,
            Strategy::FullRefresh,
        ),
        "org.permission.satisfaction.read",
    ),
    optional(
        entity(
            "team_routing_settings",
            "team_routing_settings",
            "/v1/routing/settings",
            100,
            Strategy::FullRefresh,
        ),
        "org.permission.routing.read",
    ),
    optional(
        entity(
            "assistants",
            "assistant",
            "/v1/ai/automations",
            100,
            Strategy::FullRefresh,
        ),
        "org.permission.assistant.read",
    ),
];

/// Looks an entity up by its plural name.
pub fn by_name(name: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.name == name)
}

/// The entity and whether the event is a create, for an outbound-webhook event name such as
/// `kustomer.conversation.update`; `None` for any other name (an event Kustomer may add later).
pub fn by_webhook_event(event: &str) -> Option<(&'static Entity, bool)> {
    let rest = event.strip_prefix("kustomer.")?;
    let (context, verb) = rest.split_once('.')?;
    let create = match verb {
        "create" => true,
        "update" => false,
        _ => return None,
    };
    ENTITIES
        .iter()
        .find(|e| e.webhook_events && e.context == context)
        .map(|e| (e, create))
}

/// Every outbound-webhook event name the mirror applies (`webhooks register` subscribes to these).
pub fn webhook_event_names() -> Vec<String> {
    ENTITIES
        .iter()
        .filter(|e| e.webhook_events)
        .flat_map(|e| ["create", "update"].map(|verb| format!("kustomer.{}.{verb}", e.context)))
        .collect()
}

/// The tables with custom attribute views.
pub fn custom_view_tables() -> impl Iterator<Item = &'static str> {
    ENTITIES.iter().filter(|e| e.custom_views).map(|e| e.name)
}

/// What one pass syncs and one `sync_state` / `sync_runs` row is about: an entity, or one klass of a
/// per-klass entity. Written `customers` or `kobjects:<klass>`; this type is the one place that
/// builds and parses that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateKey {
    /// The entity.
    pub entity: &'static Entity,
    /// The klass, for per-klass entities.
    pub klass: Option<String>,
}

impl StateKey {
    /// The key of a whole entity.
    pub fn entity(entity: &'static Entity) -> StateKey {
        StateKey {
            entity,
            klass: None,
        }
    }

    /// The key of one klass of a per-klass entity.
    pub fn klass(entity: &'static Entity, klass: impl Into<String>) -> StateKey {
        StateKey {
            entity,
            klass: Some(klass.into()),
        }
    }

    /// Reads `customers` or `kobjects:<klass>`; `None` for an unknown entity.
    pub fn parse(text: &str) -> Option<StateKey> {
        match text.split_once(':') {
            Some((name, klass)) => {
                let entity = by_name(name)?;
                entity.per_klass().then(|| StateKey::klass(entity, klass))
            }
            None => by_name(text).map(StateKey::entity),
        }
    }

    /// The table the key's rows live in.
    pub fn table(&self) -> &'static str {
        self.entity.name
    }
}

impl std::fmt::Display for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.klass {
            Some(klass) => write!(f, "{}:{klass}", self.entity.name),
            None => f.write_str(self.entity.name),
        }
    }
}

/// The entity names, for messages and help.
pub fn names() -> Vec<&'static str> {
    ENTITIES.iter().map(|e| e.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SCHEMA_SQL;

    #[test]
    fn every_entity_has_a_table_in_the_schema() {
        for e in ENTITIES {
            assert!(
                SCHEMA_SQL.contains(&format!("CREATE TABLE {} (", e.name)),
                "no table for {}",
                e.name
            );
        }
    }

    #[test]
    fn state_keys_are_written_and_read_back() {
        let k = by_name("kobjects").unwrap();
        let key = StateKey::klass(k, "ecomm-order");
        assert_eq!(key.to_string(), "kobjects:ecomm-order");
        assert_eq!(StateKey::parse("kobjects:ecomm-order"), Some(key));
        assert_eq!(
            StateKey::parse("customers")
                .map(|k| k.to_string())
                .as_deref(),
            Some("customers")
        );
        assert_eq!(StateKey::parse("customers:x"), None);
        assert_eq!(StateKey::parse("nothing"), None);
        assert_eq!(
            custom_view_tables().collect::<Vec<_>>(),
            [
                "companies",
                "customers",
                "conversations",
                "messages",
                "kobjects"
            ]
        );
    }

    #[test]
    fn kobjects_by_id_paths_name_their_klass() {
        let k = by_name("kobjects").unwrap();
        assert_eq!(
            k.by_id_path("abc", Some("ecomm-order")),
            "/v1/klasses/ecomm-order/abc"
        );
        assert_eq!(
            by_name("customers").unwrap().by_id_path("x", None),
            "/v1/customers/x"
        );
        assert_eq!(k.updated_attr(), "kobject_updated_at");
    }
}
