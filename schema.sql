-- kustomer-mirror data model, schema version 7 (the whole model; see docs/schema.md).
--
-- Applied by the binary when it opens a database (never by hand): a new file gets this script and
-- PRAGMA user_version = 7; older versions are upgraded by the migrations in src/sqlite/migrate.rs.
--
-- Every entity table has:
--   id               the Kustomer id (24-hex), primary key
--   data             the JSON:API resource object (type, id, attributes, relationships, links) as served,
--                    with object keys in canonical (sorted) order; nothing Kustomer sends is dropped,
--                    custom attributes included
--   created_at, updated_at   source timestamps (attributes.createdAt / updatedAt), ISO-8601 UTC text
--   deleted_at       NULL while live; set when the record was seen deleted upstream (soft delete via
--                    includeDeleted, missing from a complete full-refresh read, or a confirmed 404)
--   first_synced_at  when the mirror first stored the record
--   last_changed_at  when a sync last stored a real change (unchanged records are never rewritten)
--   hash             xxh3-128 of the canonical JSON in `data` (hex), used to skip unchanged records
-- plus typed columns for what reports filter and join on. Typed columns are STORED generated columns
-- computed from `data`, so they can never disagree with it; each is indexed where reports use it.
-- Tables are not STRICT on purpose: an unexpected upstream type must never make an insert fail.

CREATE TABLE customers (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    display_name    TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.displayName')) STORED,
    external_id     TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.externalId')) STORED,
    email           TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.emails[0].email')) STORED,
    phone           TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.phones[0].phone')) STORED,
    company_id      TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.company.data.id')) STORED,
    locale          TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.locale')) STORED,
    time_zone       TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.timeZone')) STORED,
    verified        INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.verified')) STORED,
    last_activity_at TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.lastActivityAt')) STORED,
    conversations_all  INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.conversationCounts.all')) STORED,
    conversations_open INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.conversationCounts.open')) STORED
);
CREATE INDEX customers_updated_at ON customers (updated_at);
CREATE INDEX customers_email ON customers (email);
CREATE INDEX customers_external_id ON customers (external_id);
CREATE INDEX customers_company_id ON customers (company_id);

CREATE TABLE companies (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    external_id     TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.externalId')) STORED,
    domain          TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.domains[0]')) STORED
);
CREATE INDEX companies_updated_at ON companies (updated_at);
CREATE INDEX companies_name ON companies (name);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    customer_id     TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.customer.data.id')) STORED,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    status          TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.status')) STORED,
    priority        INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.priority')) STORED,
    direction       TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.direction')) STORED,
    channel         TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.channels[0]')) STORED,
    queue_id        TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.queue.data.id')) STORED,
    brand_id        TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.brand.data.id')) STORED,
    assigned_user_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.assignedUsers[0]')) STORED,
    assigned_team_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.assignedTeams[0]')) STORED,
    message_count   INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.messageCount')) STORED,
    inbound_message_count  INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.inboundMessageCount')) STORED,
    outbound_message_count INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.outboundMessageCount')) STORED,
    note_count      INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.noteCount')) STORED,
    done_count      INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.doneCount')) STORED,
    reopen_count    INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.reopenCount')) STORED,
    last_message_at TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.lastMessageAt')) STORED,
    ended           INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.ended')) STORED,
    spam            INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.spam')) STORED
);
CREATE INDEX conversations_updated_at ON conversations (updated_at);
CREATE INDEX conversations_customer_id ON conversations (customer_id);
CREATE INDEX conversations_status ON conversations (status);
CREATE INDEX conversations_channel ON conversations (channel);
CREATE INDEX conversations_queue_id ON conversations (queue_id);
CREATE INDEX conversations_assigned_user_id ON conversations (assigned_user_id);
CREATE INDEX conversations_created_at ON conversations (created_at);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    conversation_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.conversation.data.id')) STORED,
    customer_id     TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.customer.data.id')) STORED,
    channel         TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.channel')) STORED,
    direction       TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.direction')) STORED,
    direction_type  TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.directionType')) STORED,
    status          TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.status')) STORED,
    app             TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.app')) STORED,
    subject         TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.subject')) STORED,
    auto            INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.auto')) STORED,
    size            INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.size')) STORED,
    sent_at         TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.sentAt')) STORED,
    created_by_id   TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.createdBy.data.id')) STORED
);
CREATE INDEX messages_updated_at ON messages (updated_at);
CREATE INDEX messages_conversation_id ON messages (conversation_id);
CREATE INDEX messages_customer_id ON messages (customer_id);
CREATE INDEX messages_channel ON messages (channel);
CREATE INDEX messages_created_at ON messages (created_at);

CREATE TABLE notes (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    conversation_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.conversation.data.id')) STORED,
    customer_id     TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.customer.data.id')) STORED,
    created_by_id   TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.createdBy.data.id')) STORED,
    body            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.body')) STORED
);
CREATE INDEX notes_updated_at ON notes (updated_at);
CREATE INDEX notes_conversation_id ON notes (conversation_id);
CREATE INDEX notes_customer_id ON notes (customer_id);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    display_name    TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.displayName')) STORED,
    email           TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.email')) STORED,
    user_type       TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.userType')) STORED
);
CREATE INDEX users_email ON users (email);

CREATE TABLE teams (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    display_name    TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.displayName')) STORED,
    member_count    INTEGER GENERATED ALWAYS AS (json_array_length(data, '$.attributes.members')) STORED
);

CREATE TABLE tags (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    color           TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.color')) STORED
);
CREATE INDEX tags_name ON tags (name);

CREATE TABLE queues (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    display_name    TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.displayName')) STORED,
    priority        INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.priority')) STORED,
    system          INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.system')) STORED
);

CREATE TABLE klasses (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    display_name    TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.displayName')) STORED,
    status          TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.status')) STORED
);
CREATE UNIQUE INDEX klasses_name ON klasses (name) WHERE deleted_at IS NULL;

-- Custom objects of every klass; `klass` is the klass name (as used in API paths), set by the sync.
CREATE TABLE kobjects (
    id              TEXT PRIMARY KEY,
    klass           TEXT NOT NULL,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    klass_id        TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.klass.data.id')) STORED,
    title           TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.title')) STORED,
    external_id     TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.externalId')) STORED,
    customer_id     TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.customer.data.id')) STORED,
    company_id      TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.company.data.id')) STORED
);
CREATE INDEX kobjects_klass_updated_at ON kobjects (klass, updated_at);
CREATE INDEX kobjects_customer_id ON kobjects (customer_id);

-- @coverage: the entities beyond the first eleven (schema version 7 on SQLite, 5 on PostgreSQL;
-- the upgrade step creates this section as written here). Full refresh, except work_sessions
-- (search on work_session_updated_at where the org offers it). See docs/schema.md.
CREATE TABLE work_sessions (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    user_id         TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.user.data.id')) STORED,
    team_id         TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.team.data.id')) STORED,
    status_type     TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.statusType')) STORED,
    signed_in_at    TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.signedInAt')) STORED,
    signed_out_at   TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.signedOutAt')) STORED,
    routable        INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.routable')) STORED,
    total_capacity  INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.totalCapacity')) STORED,
    work_item_count INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.workItemCount')) STORED,
    handled_item_count INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.handledItemCount')) STORED,
    handled_conversation_count INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.handledConversationCount')) STORED,
    available_ms    INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.totalAvailable.time')) STORED,
    available_business_ms INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.totalAvailable.businessTime')) STORED
);
CREATE INDEX work_sessions_updated_at ON work_sessions (updated_at);
CREATE INDEX work_sessions_user_id ON work_sessions (user_id);
CREATE INDEX work_sessions_signed_in_at ON work_sessions (signed_in_at);

CREATE TABLE slas (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    description     TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.description')) STORED,
    enabled         INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.enabled')) STORED,
    version         INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.version')) STORED
);

CREATE TABLE schedules (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    timezone        TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.timezone')) STORED,
    is_default      INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.default')) STORED
);

CREATE TABLE holidays (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    start_date      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.startDate')) STORED,
    end_date        TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.endDate')) STORED,
    enabled         INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.enabled')) STORED
);

CREATE TABLE snoozes (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    snooze_type     TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.type')) STORED,
    enabled         INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.enabled')) STORED
);

CREATE TABLE brands (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    is_default      INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.default')) STORED
);

CREATE TABLE shortcuts (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    text            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.draft.text')) STORED,
    is_private      INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.isPrivate')) STORED,
    parent_id       TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.parent.data.id')) STORED
);

CREATE TABLE satisfaction_forms (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    form_type       TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.formType')) STORED,
    channel         TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.channel')) STORED,
    enabled         INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.enabled')) STORED
);

CREATE TABLE team_routing_settings (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    team_id         TEXT GENERATED ALWAYS AS (json_extract(data, '$.relationships.team.data.id')) STORED,
    enabled         INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.enabled')) STORED,
    capacity        INTEGER GENERATED ALWAYS AS (json_extract(data, '$.attributes.capacity')) STORED
);
CREATE INDEX team_routing_settings_team_id ON team_routing_settings (team_id);

CREATE TABLE assistants (
    id              TEXT PRIMARY KEY,
    data            TEXT NOT NULL,
    created_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.createdAt')) STORED,
    updated_at      TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.updatedAt')) STORED,
    deleted_at      TEXT,
    first_synced_at TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    hash            TEXT NOT NULL,
    name            TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.name')) STORED,
    description     TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.description')) STORED,
    assistant_type  TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.type')) STORED,
    machine_user_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.attributes.machineUserId')) STORED
);
-- @end coverage

-- One row per sync pass of one entity (kobjects: one per klass): the cheapest dashboard there is.
CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('incremental', 'full', 'reconcile', 'preflight', 'webhook')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    requests    INTEGER NOT NULL DEFAULT 0,
    fetched     INTEGER NOT NULL DEFAULT 0,
    inserted    INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    rejected    INTEGER NOT NULL DEFAULT 0,
    expected    INTEGER
);
CREATE INDEX sync_runs_entity ON sync_runs (entity, id);

-- Items Kustomer served that could not be kept as records (not an object, no usable id, text that
-- cannot be read): set aside here so the rest of their page and entity sync on. A later sync that
-- receives the record in good form stores it and deletes its row here.
CREATE TABLE rejected_records (
    entity        TEXT NOT NULL,
    record_key    TEXT NOT NULL,
    record_id     TEXT,
    updated_at    TEXT,
    reason        TEXT NOT NULL,
    raw           TEXT NOT NULL,
    page          TEXT NOT NULL,
    run_id        INTEGER NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    times_seen    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (entity, record_key)
);

-- Custom attribute views (`*_custom`) that could not be built from the names in the data: the rows
-- are stored all the same, the view is tried again with a later page or when the sync ends, and
-- its row here goes once it is built. `status` and `/metrics` report them.
CREATE TABLE view_problems (
    view      TEXT PRIMARY KEY,
    entity    TEXT NOT NULL,
    error     TEXT NOT NULL,
    failed_at TEXT NOT NULL
);

-- The last outbound-webhook event applied per entity, and how many were applied since the table
-- began (`changed`: wrote a row; `stale`: not newer than the row, left alone; `rejected`: set
-- aside in rejected_records; the rest left the row as it was). The events' changes are in change_log under the `webhook` run.
CREATE TABLE webhook_events (
    entity      TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    event_id    TEXT,
    record_id   TEXT,
    received_at TEXT NOT NULL,
    applied_at  TEXT NOT NULL,
    events      INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    stale       INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0
);

-- One row per real change (never for an unchanged record). For an update, `changes` is a JSON object
-- mapping each changed attribute path (e.g. "attributes.status") to {"old": …, "new": …}.
CREATE TABLE change_log (
    seq               INTEGER PRIMARY KEY,
    run_id            INTEGER NOT NULL,
    entity            TEXT NOT NULL,
    record_id         TEXT NOT NULL,
    op                TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    source_updated_at TEXT,
    synced_at         TEXT NOT NULL,
    changes           TEXT
);
CREATE INDEX change_log_record ON change_log (entity, record_id, seq);
CREATE INDEX change_log_run ON change_log (run_id);

-- The incremental position and status of each entity (kobjects: one row per klass, `kobjects:<klass>`).
-- `cursor` is the source updatedAt the next incremental pass starts from (minus the overlap);
-- `cursor_ids` the JSON array of ids already stored at exactly that timestamp.
CREATE TABLE sync_state (
    entity               TEXT PRIMARY KEY,
    strategy             TEXT,
    cursor               TEXT,
    cursor_ids           TEXT NOT NULL DEFAULT '[]',
    last_run_id          INTEGER,
    last_success_at      TEXT,
    last_full_at         TEXT,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    unsupported          TEXT
);

-- @views ------------------------------------------------------------------------------------------
-- Everything below is derived (views only): a new database runs it with the tables, and every schema
-- upgrade drops and recreates it, so a view change never needs its own upgrade step. Numbers computed
-- from JSON are untyped in views: DuckDB's SQLite reader sees them as text, so portable queries CAST
-- them (docs/queries.md does); DuckDB also re-renders view SQL, so views avoid count(*) (it becomes
-- count_star(), unknown to SQLite). Per-org custom attribute views (<entity>_custom) are made by the sync.

DROP VIEW IF EXISTS customers_live;
DROP VIEW IF EXISTS companies_live;
DROP VIEW IF EXISTS conversations_live;
DROP VIEW IF EXISTS messages_live;
DROP VIEW IF EXISTS notes_live;
DROP VIEW IF EXISTS users_live;
DROP VIEW IF EXISTS teams_live;
DROP VIEW IF EXISTS tags_live;
DROP VIEW IF EXISTS queues_live;
DROP VIEW IF EXISTS klasses_live;
DROP VIEW IF EXISTS kobjects_live;
DROP VIEW IF EXISTS conversation_tags;
DROP VIEW IF EXISTS conversation_assigned_users;
DROP VIEW IF EXISTS conversation_assigned_teams;
DROP VIEW IF EXISTS team_members;
DROP VIEW IF EXISTS customer_emails;
DROP VIEW IF EXISTS customer_phones;
DROP VIEW IF EXISTS conversation_facts;
DROP VIEW IF EXISTS message_facts;
DROP VIEW IF EXISTS conversation_status_history;
DROP VIEW IF EXISTS work_sessions_live;
DROP VIEW IF EXISTS slas_live;
DROP VIEW IF EXISTS schedules_live;
DROP VIEW IF EXISTS holidays_live;
DROP VIEW IF EXISTS schedule_holidays;
DROP VIEW IF EXISTS snoozes_live;
DROP VIEW IF EXISTS brands_live;
DROP VIEW IF EXISTS shortcuts_live;
DROP VIEW IF EXISTS satisfaction_forms_live;
DROP VIEW IF EXISTS team_routing_settings_live;
DROP VIEW IF EXISTS assistants_live;
DROP VIEW IF EXISTS agent_availability_daily;
DROP VIEW IF EXISTS conversation_sla;
DROP VIEW IF EXISTS conversation_csat;

-- Rows not deleted upstream. Columns are listed (not *) so DuckDB's SQLite reader sees the generated
-- ones too.
CREATE VIEW customers_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, display_name, external_id, email, phone, company_id, locale, time_zone, verified, last_activity_at, conversations_all, conversations_open
    FROM customers WHERE deleted_at IS NULL;
CREATE VIEW companies_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, external_id, domain
    FROM companies WHERE deleted_at IS NULL;
CREATE VIEW conversations_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, customer_id, name, status, priority, direction, channel, queue_id, brand_id, assigned_user_id, assigned_team_id, message_count, inbound_message_count, outbound_message_count, note_count, done_count, reopen_count, last_message_at, ended, spam
    FROM conversations WHERE deleted_at IS NULL;
CREATE VIEW messages_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, conversation_id, customer_id, channel, direction, direction_type, status, app, subject, auto, size, sent_at, created_by_id
    FROM messages WHERE deleted_at IS NULL;
CREATE VIEW notes_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, conversation_id, customer_id, created_by_id, body
    FROM notes WHERE deleted_at IS NULL;
CREATE VIEW users_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, display_name, email, user_type
    FROM users WHERE deleted_at IS NULL;
CREATE VIEW teams_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, display_name, member_count
    FROM teams WHERE deleted_at IS NULL;
CREATE VIEW tags_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, color
    FROM tags WHERE deleted_at IS NULL;
CREATE VIEW queues_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, display_name, priority, system
    FROM queues WHERE deleted_at IS NULL;
CREATE VIEW klasses_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, display_name, status
    FROM klasses WHERE deleted_at IS NULL;
CREATE VIEW kobjects_live AS SELECT id, klass, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, klass_id, title, external_id, customer_id, company_id
    FROM kobjects WHERE deleted_at IS NULL;

-- Link views: one row per element of a JSON array, joined to the row it names (live parents only).
CREATE VIEW conversation_tags AS
SELECT c.id AS conversation_id, t.value AS tag_id, g.name AS tag_name
FROM conversations c CROSS JOIN json_each(c.data, '$.attributes.tags') t LEFT JOIN tags g ON g.id = t.value
WHERE c.deleted_at IS NULL;

CREATE VIEW conversation_assigned_users AS
SELECT c.id AS conversation_id, a.value AS user_id, u.name AS user_name
FROM conversations c CROSS JOIN json_each(c.data, '$.attributes.assignedUsers') a LEFT JOIN users u ON u.id = a.value
WHERE c.deleted_at IS NULL;

CREATE VIEW conversation_assigned_teams AS
SELECT c.id AS conversation_id, a.value AS team_id, t.name AS team_name
FROM conversations c CROSS JOIN json_each(c.data, '$.attributes.assignedTeams') a LEFT JOIN teams t ON t.id = a.value
WHERE c.deleted_at IS NULL;

CREATE VIEW team_members AS
SELECT t.id AS team_id, t.name AS team_name, m.value AS user_id, u.name AS user_name
FROM teams t CROSS JOIN json_each(t.data, '$.attributes.members') m LEFT JOIN users u ON u.id = m.value
WHERE t.deleted_at IS NULL;

CREATE VIEW customer_emails AS
SELECT c.id AS customer_id, e.key AS position, json_extract(e.value, '$.email') AS email,
       json_extract(e.value, '$.type') AS type, json_extract(e.value, '$.verified') AS verified
FROM customers c CROSS JOIN json_each(c.data, '$.attributes.emails') e
WHERE c.deleted_at IS NULL;

CREATE VIEW customer_phones AS
SELECT c.id AS customer_id, p.key AS position, json_extract(p.value, '$.phone') AS phone,
       json_extract(p.value, '$.type') AS type, json_extract(p.value, '$.verified') AS verified
FROM customers c CROSS JOIN json_each(c.data, '$.attributes.phones') p
WHERE c.deleted_at IS NULL;

-- One row per live conversation with what support reports ask about. Times in minutes.
CREATE VIEW conversation_facts AS
SELECT c.id AS conversation_id, c.customer_id, c.name AS subject, c.status, c.channel, c.priority,
       c.direction, c.queue_id, q.name AS queue_name, c.assigned_user_id, u.name AS assigned_user_name,
       c.assigned_team_id, t.name AS assigned_team_name,
       c.created_at, substr(c.created_at, 1, 10) AS created_day,
       strftime('%Y-W%W', c.created_at) AS created_week, substr(c.created_at, 1, 7) AS created_month,
       json_extract(c.data, '$.attributes.firstResponse.createdAt') AS first_response_at,
       round((julianday(json_extract(c.data, '$.attributes.firstResponse.createdAt'))
              - julianday(c.created_at)) * 1440, 2) AS first_response_minutes,
       json_extract(c.data, '$.attributes.firstDone.createdAt') AS resolved_at,
       round((julianday(json_extract(c.data, '$.attributes.firstDone.createdAt'))
              - julianday(c.created_at)) * 1440, 2) AS resolution_minutes,
       c.message_count, c.inbound_message_count, c.outbound_message_count, c.note_count,
       (SELECT count(m.id) FROM messages m WHERE m.conversation_id = c.id AND m.deleted_at IS NULL)
           AS mirrored_message_count,
       json_array_length(c.data, '$.attributes.tags') AS tag_count,
       json_extract(c.data, '$.attributes.satisfaction') AS satisfaction,
       c.reopen_count, c.done_count, c.spam, c.updated_at
FROM conversations c
LEFT JOIN queues q ON q.id = c.queue_id
LEFT JOIN users u ON u.id = c.assigned_user_id
LEFT JOIN teams t ON t.id = c.assigned_team_id
WHERE c.deleted_at IS NULL;

-- One row per live message, with its author and its conversation's status.
CREATE VIEW message_facts AS
SELECT m.id AS message_id, m.conversation_id, m.customer_id, m.channel, m.direction, m.direction_type,
       m.status, m.app, m.auto, m.size, m.subject, m.created_at, substr(m.created_at, 1, 10) AS created_day,
       m.sent_at, m.created_by_id, u.name AS created_by_name, c.status AS conversation_status
FROM messages m
LEFT JOIN users u ON u.id = m.created_by_id
LEFT JOIN conversations c ON c.id = m.conversation_id
WHERE m.deleted_at IS NULL;

-- Every status change the mirror saw, from the change log, in order (seq).
CREATE VIEW conversation_status_history AS
SELECT l.seq, l.record_id AS conversation_id,
       json_extract(l.changes, '$."attributes.status".old') AS from_status,
       json_extract(l.changes, '$."attributes.status".new') AS to_status,
       l.source_updated_at AS changed_at, l.synced_at
FROM change_log l
WHERE l.entity = 'conversations' AND l.op IN ('update', 'delete')
  AND json_extract(l.changes, '$."attributes.status"') IS NOT NULL;

-- The coverage entities' rows not deleted upstream, and their reporting views (docs/schema.md,
-- docs/queries.md).

CREATE VIEW work_sessions_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, user_id, team_id, status_type, signed_in_at, signed_out_at, routable, total_capacity, work_item_count, handled_item_count, handled_conversation_count, available_ms, available_business_ms
    FROM work_sessions WHERE deleted_at IS NULL;

CREATE VIEW slas_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, description, enabled, version
    FROM slas WHERE deleted_at IS NULL;

CREATE VIEW schedules_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, timezone, is_default
    FROM schedules WHERE deleted_at IS NULL;

CREATE VIEW holidays_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, start_date, end_date, enabled
    FROM holidays WHERE deleted_at IS NULL;

CREATE VIEW snoozes_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, snooze_type, enabled
    FROM snoozes WHERE deleted_at IS NULL;

CREATE VIEW brands_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, is_default
    FROM brands WHERE deleted_at IS NULL;

CREATE VIEW shortcuts_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, text, is_private, parent_id
    FROM shortcuts WHERE deleted_at IS NULL;

CREATE VIEW satisfaction_forms_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, form_type, channel, enabled
    FROM satisfaction_forms WHERE deleted_at IS NULL;

CREATE VIEW team_routing_settings_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, team_id, enabled, capacity
    FROM team_routing_settings WHERE deleted_at IS NULL;

CREATE VIEW assistants_live AS SELECT id, data, created_at, updated_at, deleted_at, first_synced_at, last_changed_at, hash, name, description, assistant_type, machine_user_id
    FROM assistants WHERE deleted_at IS NULL;

-- One row per holiday of a live schedule (schedules.relationships.holidays), with the holiday's
-- dates when the mirror holds it live.
CREATE VIEW schedule_holidays AS
SELECT s.id AS schedule_id, s.name AS schedule_name, json_extract(j.value, '$.id') AS holiday_id,
       h.name AS holiday_name, h.start_date, h.end_date, h.enabled
FROM schedules s CROSS JOIN json_each(s.data, '$.relationships.holidays.data') j
LEFT JOIN holidays h ON h.id = json_extract(j.value, '$.id') AND h.deleted_at IS NULL
WHERE s.deleted_at IS NULL;

-- Agent availability per UTC day of sign-in, agent and team, from work sessions: signed-in minutes
-- of the sessions that ended, available minutes (totalAvailable.time) and conversations handled.
CREATE VIEW agent_availability_daily AS
SELECT substr(w.signed_in_at, 1, 10) AS day, w.user_id, u.name AS user_name, w.team_id,
       t.name AS team_name, count(w.id) AS sessions,
       round(sum((julianday(w.signed_out_at) - julianday(w.signed_in_at)) * 1440), 1) AS signed_in_minutes,
       round(sum(w.available_ms) / 60000.0, 1) AS available_minutes,
       sum(w.handled_conversation_count) AS handled_conversations
FROM work_sessions w
LEFT JOIN users u ON u.id = w.user_id
LEFT JOIN teams t ON t.id = w.team_id
WHERE w.deleted_at IS NULL
GROUP BY substr(w.signed_in_at, 1, 10), w.user_id, u.name, w.team_id, t.name;

-- One row per live conversation an SLA applies to (attributes.sla): which SLA, its status, whether
-- and on which metric it was breached.
CREATE VIEW conversation_sla AS
SELECT c.id AS conversation_id, c.assigned_team_id, t.name AS assigned_team_name, c.created_at,
       strftime('%Y-W%W', c.created_at) AS created_week,
       json_extract(c.data, '$.attributes.sla.id') AS sla_id,
       json_extract(c.data, '$.attributes.sla.name') AS sla_name,
       json_extract(c.data, '$.attributes.sla.version') AS sla_version,
       json_extract(c.data, '$.attributes.sla.status') AS sla_status,
       CASE WHEN json_extract(c.data, '$.attributes.sla.breached') = 1 THEN 1 ELSE 0 END AS breached,
       json_extract(c.data, '$.attributes.sla.breach.metric') AS breach_metric,
       json_extract(c.data, '$.attributes.sla.breach.at') AS breach_at
FROM conversations c
LEFT JOIN teams t ON t.id = c.assigned_team_id
WHERE c.deleted_at IS NULL AND json_extract(c.data, '$.attributes.sla.name') IS NOT NULL;

-- One row per live conversation a satisfaction survey was sent for (attributes.satisfactionLevel):
-- the survey's status, rating and score; responded is 1 when it was rated.
CREATE VIEW conversation_csat AS
SELECT c.id AS conversation_id, c.assigned_user_id, u.name AS assigned_user_name,
       c.assigned_team_id, t.name AS assigned_team_name, c.channel, c.created_at,
       strftime('%Y-W%W', c.created_at) AS created_week,
       json_extract(c.data, '$.attributes.satisfactionLevel.form') AS form_id,
       json_extract(c.data, '$.attributes.satisfactionLevel.formResponse') AS form_response_id,
       json_extract(c.data, '$.attributes.satisfactionLevel.status') AS survey_status,
       json_extract(c.data, '$.attributes.satisfactionLevel.sentAt') AS sent_at,
       json_extract(c.data, '$.attributes.satisfactionLevel.rating') AS rating,
       json_extract(c.data, '$.attributes.satisfactionLevel.score') AS score,
       CASE WHEN json_extract(c.data, '$.attributes.satisfactionLevel.rating') IS NOT NULL THEN 1 ELSE 0 END
           AS responded
FROM conversations c
LEFT JOIN users u ON u.id = c.assigned_user_id
LEFT JOIN teams t ON t.id = c.assigned_team_id
WHERE c.deleted_at IS NULL AND json_extract(c.data, '$.attributes.satisfactionLevel.sentAt') IS NOT NULL;
