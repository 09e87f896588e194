-- kustomer-mirror data model for PostgreSQL 15+: the twin of schema.sql (SQLite), same tables, columns,
-- indexes and views (see docs/schema.md), with PostgreSQL's own types.
--
-- Applied by the binary (never by hand) with `SET search_path TO "<schema>"` already done, inside one
-- transaction, so every name here is unqualified. The part before the views marker line runs once, on
-- an empty schema; the part after it is rerun after every upgrade, so it only drops and recreates views
-- (the marker's text must not appear anywhere above it: the code splits at its first occurrence).
--
-- Differences from the SQLite file, on purpose:
--   data         jsonb; data_exact keeps the exact canonical text when jsonb cannot hold it value for
--                value (jsonb refuses \u0000 and lone surrogates and turns -0 into 0)
--   *_at         timestamptz (SQLite keeps the served text); a source time that is not strict ISO-8601
--                with an explicit zone gives NULL in its typed column (the text stays in `data`)
--   flags        boolean (verified, ended, spam, system, auto); counts and priority integer
--   typed columns are NULL when the JSON value has the wrong type, where SQLite would store the odd
--                value as is (e.g. priority "high"): an insert must never fail on upstream data
-- The km_* helpers below do those conversions; they never raise, whatever the JSON value.

-- JSON value -> typed value helpers, for the generated columns and views. They never raise, whatever
-- the JSON value: a generated column that raised would make the record's insert fail. LANGUAGE sql,
-- IMMUTABLE (generated columns require it), STRICT (a missing path, the common case, is NULL at once),
-- and no plpgsql EXCEPTION block (a subtransaction per call: far too slow for bulk loads), so every
-- input is checked before any cast. Most bodies are one jsonpath query in silent mode (the 4th
-- argument `true`: a wrong type or a bad number gives no result instead of an error), because a
-- STRICT SQL function whose body is one strict call is inlined into the column's expression: several
-- times cheaper per call than a CASE body, which PostgreSQL cannot inline into a STRICT function.

-- A JSON string in strict ISO-8601 with an explicit zone (`2024-10-21T14:05:40.118Z`, `...+02:00`),
-- years 1000-9999, a real day of its month (leap years included) and a zone offset PostgreSQL accepts
-- (up to 15:59): such text always casts, and to the same instant whatever the session's TimeZone or
-- DateStyle, which is what makes IMMUTABLE honest (the text -> timestamptz cast itself is only
-- STABLE, so this one is not inlined). Text without a zone (`2024-10-21T14:05:40`) would depend on
-- TimeZone, so it gives NULL, as do other text and other types: the text of a non-string (a number,
-- true, an object) never has this shape. More than 6 decimals are rounded to the microsecond.
CREATE FUNCTION km_ts(v jsonb) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT CASE WHEN (v #>> '{}') ~ ('^(?:'
        || '[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])'       -- days 01-28 of any month
        || '|[1-9][0-9]{3}-(?:0[13-9]|1[0-2])-(?:29|30)'                   -- 29, 30 except February
        || '|[1-9][0-9]{3}-(?:0[13578]|1[02])-31'                          -- 31 of long months
        || '|(?:[1-9][0-9](?:0[48]|[2468][048]|[13579][26])'               -- 29 February of leap years
        ||   '|(?:[13579][26]|[2468][048])00)-02-29'
        || ')T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?'
        || '(?:Z|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])$')
    THEN (v #>> '{}')::timestamptz
END
$$;

-- A whole number in integer range, as SQLite's INTEGER affinity keeps one: a JSON number whose value
-- is whole (3, 3.0, 3e2), or a string holding a decimal literal of one ("3", " 3 ", "3.0", "1e3").
-- Values go through double precision, as in SQLite (exact in this range). Unlike SQLite, a fraction
-- (3.5), true/false, other text ("high") and numbers out of range give NULL instead of being stored as
-- they are. Hex ("0x10"), which strtod would read, is refused by the literal filter, as by SQLite.
CREATE FUNCTION km_int4(v jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT jsonb_path_query_first(v,
    'strict $ ? (@.type() == "number" || @ like_regex "^ *[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)? *$")'
    ' .double() ? (@ == @.floor() && @ >= -2147483648 && @ <= 2147483647)', '{}', true)::integer
$$;

-- km_int4 for bigint. A JSON number is taken exactly; a string only below 10^15 in magnitude: it goes
-- through double precision, and back to a number with 15 significant digits. Not inlined (two
-- branches); no column uses it.
CREATE FUNCTION km_int(v jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT CASE jsonb_typeof(v)
    WHEN 'number' THEN jsonb_path_query_first(v,
        'strict $ ? (@ == @.floor() && @ >= -9223372036854775808 && @ <= 9223372036854775807)', '{}', true)::bigint
    WHEN 'string' THEN jsonb_path_query_first(v,
        'strict $ ? (@ like_regex "^ *[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)? *$")'
        ' .double() ? (@ == @.floor() && @ > -1000000000000000 && @ < 1000000000000000)', '{}', true)::bigint
END
$$;

-- JSON true/false; anything else NULL (SQLite would keep a number or a string as is).
CREATE FUNCTION km_bool(v jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT jsonb_path_query_first(v, 'strict $ ? (@.type() == "boolean")', '{}', true)::boolean
$$;

-- A JSON number, with its exact digits; anything else NULL.
CREATE FUNCTION km_num(v jsonb) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT jsonb_path_query_first(v, 'strict $ ? (@.type() == "number")', '{}', true)::numeric
$$;

-- Length of a JSON array; NULL for anything else (jsonb_array_length raises on non-arrays; SQLite's
-- json_array_length gives 0 for a present non-array value).
CREATE FUNCTION km_len(v jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT jsonb_path_query_first(v, 'strict $.size()', '{}', true)::integer
$$;

-- The first element of a JSON array (SQLite's `[0]`); NULL for anything else. Neither jsonb operator
-- does this alone: `-> 0` returns a scalar itself ('"abc"' -> 0 is "abc") and `#> '{0}'` reads an
-- object's key "0".
CREATE FUNCTION km_first(v jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT jsonb_path_query_first(v, 'strict $[0]', '{}', true)
$$;

-- A JSON string's value; for another non-null value its JSON text (`42`, `true`, `{"a": 1}`); JSON null
-- gives NULL. As SQLite's json_extract in a TEXT column, except that SQLite writes true/false as 1/0,
-- re-renders numbers as it reads them (1e3 -> 1000.0) and prints objects without spaces.
CREATE FUNCTION km_text(v jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
SELECT v #>> '{}'
$$;

-- Every entity table has:
--   id               the Kustomer id (24-hex), primary key
--   data             the JSON:API resource object (type, id, attributes, relationships, links) as served;
--                    nothing Kustomer sends is dropped, custom attributes included
--   data_exact       the record's exact canonical JSON text, only when jsonb cannot hold it value for
--                    value: a lone surrogate escape, a \u0000, a negative zero; NULL otherwise
--   created_at, updated_at   source timestamps (attributes.createdAt / updatedAt)
--   deleted_at       NULL while live; set when the record was seen deleted upstream (soft delete via
--                    includeDeleted, missing from a complete full-refresh read, or a confirmed 404)
--   first_synced_at  when the mirror first stored the record
--   last_changed_at  when a sync last stored a real change (unchanged records are never rewritten)
--   hash             xxh3-128 of the record's canonical JSON text (hex), used to skip unchanged records
-- plus typed columns for what reports filter and join on. Typed columns are STORED generated columns
-- computed from `data`, so they can never disagree with it; each is indexed where reports use it.
-- Array element 0 (SQLite's `[0]`) is read with km_first.

CREATE TABLE customers (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    display_name    text GENERATED ALWAYS AS (km_text(data #> '{attributes,displayName}')) STORED,
    external_id     text GENERATED ALWAYS AS (km_text(data #> '{attributes,externalId}')) STORED,
    email           text GENERATED ALWAYS AS (km_text(km_first(data #> '{attributes,emails}') -> 'email')) STORED,
    phone           text GENERATED ALWAYS AS (km_text(km_first(data #> '{attributes,phones}') -> 'phone')) STORED,
    company_id      text GENERATED ALWAYS AS (km_text(data #> '{relationships,company,data,id}')) STORED,
    locale          text GENERATED ALWAYS AS (km_text(data #> '{attributes,locale}')) STORED,
    time_zone       text GENERATED ALWAYS AS (km_text(data #> '{attributes,timeZone}')) STORED,
    verified        boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,verified}')) STORED,
    last_activity_at timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,lastActivityAt}')) STORED,
    conversations_all  integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,conversationCounts,all}')) STORED,
    conversations_open integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,conversationCounts,open}')) STORED
);
CREATE INDEX customers_updated_at ON customers (updated_at);
CREATE INDEX customers_email ON customers (email);
CREATE INDEX customers_external_id ON customers (external_id);
CREATE INDEX customers_company_id ON customers (company_id);

CREATE TABLE companies (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    external_id     text GENERATED ALWAYS AS (km_text(data #> '{attributes,externalId}')) STORED,
    domain          text GENERATED ALWAYS AS (km_text(km_first(data #> '{attributes,domains}'))) STORED
);
CREATE INDEX companies_updated_at ON companies (updated_at);
CREATE INDEX companies_name ON companies (name);

CREATE TABLE conversations (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    customer_id     text GENERATED ALWAYS AS (km_text(data #> '{relationships,customer,data,id}')) STORED,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    status          text GENERATED ALWAYS AS (km_text(data #> '{attributes,status}')) STORED,
    priority        integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,priority}')) STORED,
    direction       text GENERATED ALWAYS AS (km_text(data #> '{attributes,direction}')) STORED,
    channel         text GENERATED ALWAYS AS (km_text(km_first(data #> '{attributes,channels}'))) STORED,
    queue_id        text GENERATED ALWAYS AS (km_text(data #> '{relationships,queue,data,id}')) STORED,
    brand_id        text GENERATED ALWAYS AS (km_text(data #> '{relationships,brand,data,id}')) STORED,
    assigned_user_id text GENERATED ALWAYS AS (km_text(km_first(data #> '{attributes,assignedUsers}'))) STORED,
    assigned_team_id text GENERATED ALWAYS AS (km_text(km_first(data #> '{attributes,assignedTeams}'))) STORED,
    message_count   integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,messageCount}')) STORED,
    inbound_message_count  integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,inboundMessageCount}')) STORED,
    outbound_message_count integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,outboundMessageCount}')) STORED,
    note_count      integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,noteCount}')) STORED,
    done_count      integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,doneCount}')) STORED,
    reopen_count    integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,reopenCount}')) STORED,
    last_message_at timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,lastMessageAt}')) STORED,
    ended           boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,ended}')) STORED,
    spam            boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,spam}')) STORED
);
CREATE INDEX conversations_updated_at ON conversations (updated_at);
CREATE INDEX conversations_customer_id ON conversations (customer_id);
CREATE INDEX conversations_status ON conversations (status);
CREATE INDEX conversations_channel ON conversations (channel);
CREATE INDEX conversations_queue_id ON conversations (queue_id);
CREATE INDEX conversations_assigned_user_id ON conversations (assigned_user_id);
CREATE INDEX conversations_created_at ON conversations (created_at);

CREATE TABLE messages (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    conversation_id text GENERATED ALWAYS AS (km_text(data #> '{relationships,conversation,data,id}')) STORED,
    customer_id     text GENERATED ALWAYS AS (km_text(data #> '{relationships,customer,data,id}')) STORED,
    channel         text GENERATED ALWAYS AS (km_text(data #> '{attributes,channel}')) STORED,
    direction       text GENERATED ALWAYS AS (km_text(data #> '{attributes,direction}')) STORED,
    direction_type  text GENERATED ALWAYS AS (km_text(data #> '{attributes,directionType}')) STORED,
    status          text GENERATED ALWAYS AS (km_text(data #> '{attributes,status}')) STORED,
    app             text GENERATED ALWAYS AS (km_text(data #> '{attributes,app}')) STORED,
    subject         text GENERATED ALWAYS AS (km_text(data #> '{attributes,subject}')) STORED,
    auto            boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,auto}')) STORED,
    size            integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,size}')) STORED,
    sent_at         timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,sentAt}')) STORED,
    created_by_id   text GENERATED ALWAYS AS (km_text(data #> '{relationships,createdBy,data,id}')) STORED
);
CREATE INDEX messages_updated_at ON messages (updated_at);
CREATE INDEX messages_conversation_id ON messages (conversation_id);
CREATE INDEX messages_customer_id ON messages (customer_id);
CREATE INDEX messages_channel ON messages (channel);
CREATE INDEX messages_created_at ON messages (created_at);

CREATE TABLE notes (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    conversation_id text GENERATED ALWAYS AS (km_text(data #> '{relationships,conversation,data,id}')) STORED,
    customer_id     text GENERATED ALWAYS AS (km_text(data #> '{relationships,customer,data,id}')) STORED,
    created_by_id   text GENERATED ALWAYS AS (km_text(data #> '{relationships,createdBy,data,id}')) STORED,
    body            text GENERATED ALWAYS AS (km_text(data #> '{attributes,body}')) STORED
);
CREATE INDEX notes_updated_at ON notes (updated_at);
CREATE INDEX notes_conversation_id ON notes (conversation_id);
CREATE INDEX notes_customer_id ON notes (customer_id);

CREATE TABLE users (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    display_name    text GENERATED ALWAYS AS (km_text(data #> '{attributes,displayName}')) STORED,
    email           text GENERATED ALWAYS AS (km_text(data #> '{attributes,email}')) STORED,
    user_type       text GENERATED ALWAYS AS (km_text(data #> '{attributes,userType}')) STORED
);
CREATE INDEX users_email ON users (email);

CREATE TABLE teams (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    display_name    text GENERATED ALWAYS AS (km_text(data #> '{attributes,displayName}')) STORED,
    member_count    integer GENERATED ALWAYS AS (km_len(data #> '{attributes,members}')) STORED
);

CREATE TABLE tags (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    color           text GENERATED ALWAYS AS (km_text(data #> '{attributes,color}')) STORED
);
CREATE INDEX tags_name ON tags (name);

CREATE TABLE queues (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    display_name    text GENERATED ALWAYS AS (km_text(data #> '{attributes,displayName}')) STORED,
    priority        integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,priority}')) STORED,
    system          boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,system}')) STORED
);

CREATE TABLE klasses (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    display_name    text GENERATED ALWAYS AS (km_text(data #> '{attributes,displayName}')) STORED,
    status          text GENERATED ALWAYS AS (km_text(data #> '{attributes,status}')) STORED
);
-- A klass name is its API path: two live klasses may not share one.
CREATE UNIQUE INDEX klasses_name ON klasses (name) WHERE deleted_at IS NULL;

-- Custom objects of every klass; `klass` is the klass name (as used in API paths), set by the sync.
CREATE TABLE kobjects (
    id              text PRIMARY KEY,
    klass           text NOT NULL,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    klass_id        text GENERATED ALWAYS AS (km_text(data #> '{relationships,klass,data,id}')) STORED,
    title           text GENERATED ALWAYS AS (km_text(data #> '{attributes,title}')) STORED,
    external_id     text GENERATED ALWAYS AS (km_text(data #> '{attributes,externalId}')) STORED,
    customer_id     text GENERATED ALWAYS AS (km_text(data #> '{relationships,customer,data,id}')) STORED,
    company_id      text GENERATED ALWAYS AS (km_text(data #> '{relationships,company,data,id}')) STORED
);
CREATE INDEX kobjects_klass_updated_at ON kobjects (klass, updated_at);
CREATE INDEX kobjects_customer_id ON kobjects (customer_id);

-- @coverage: the entities beyond the first eleven (schema version 7 on SQLite, 5 on PostgreSQL;
-- the upgrade step creates this section as written here). Full refresh, except work_sessions
-- (search on work_session_updated_at where the org offers it). See docs/schema.md.
CREATE TABLE work_sessions (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    user_id         text GENERATED ALWAYS AS (km_text(data #> '{relationships,user,data,id}')) STORED,
    team_id         text GENERATED ALWAYS AS (km_text(data #> '{relationships,team,data,id}')) STORED,
    status_type     text GENERATED ALWAYS AS (km_text(data #> '{attributes,statusType}')) STORED,
    signed_in_at    timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,signedInAt}')) STORED,
    signed_out_at   timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,signedOutAt}')) STORED,
    routable        boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,routable}')) STORED,
    total_capacity  integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,totalCapacity}')) STORED,
    work_item_count integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,workItemCount}')) STORED,
    handled_item_count integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,handledItemCount}')) STORED,
    handled_conversation_count integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,handledConversationCount}')) STORED,
    available_ms    bigint GENERATED ALWAYS AS (km_int(data #> '{attributes,totalAvailable,time}')) STORED,
    available_business_ms bigint GENERATED ALWAYS AS (km_int(data #> '{attributes,totalAvailable,businessTime}')) STORED
);
CREATE INDEX work_sessions_updated_at ON work_sessions (updated_at);
CREATE INDEX work_sessions_user_id ON work_sessions (user_id);
CREATE INDEX work_sessions_signed_in_at ON work_sessions (signed_in_at);

CREATE TABLE slas (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    description     text GENERATED ALWAYS AS (km_text(data #> '{attributes,description}')) STORED,
    enabled         boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,enabled}')) STORED,
    version         integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,version}')) STORED
);

CREATE TABLE schedules (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    timezone        text GENERATED ALWAYS AS (km_text(data #> '{attributes,timezone}')) STORED,
    is_default      boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,default}')) STORED
);

CREATE TABLE holidays (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    start_date      text GENERATED ALWAYS AS (km_text(data #> '{attributes,startDate}')) STORED,
    end_date        text GENERATED ALWAYS AS (km_text(data #> '{attributes,endDate}')) STORED,
    enabled         boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,enabled}')) STORED
);

CREATE TABLE snoozes (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    snooze_type     text GENERATED ALWAYS AS (km_text(data #> '{attributes,type}')) STORED,
    enabled         boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,enabled}')) STORED
);

CREATE TABLE brands (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    is_default      boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,default}')) STORED
);

CREATE TABLE shortcuts (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    text            text GENERATED ALWAYS AS (km_text(data #> '{attributes,draft,text}')) STORED,
    is_private      boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,isPrivate}')) STORED,
    parent_id       text GENERATED ALWAYS AS (km_text(data #> '{relationships,parent,data,id}')) STORED
);

CREATE TABLE satisfaction_forms (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    form_type       text GENERATED ALWAYS AS (km_text(data #> '{attributes,formType}')) STORED,
    channel         text GENERATED ALWAYS AS (km_text(data #> '{attributes,channel}')) STORED,
    enabled         boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,enabled}')) STORED
);

CREATE TABLE team_routing_settings (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    team_id         text GENERATED ALWAYS AS (km_text(data #> '{relationships,team,data,id}')) STORED,
    enabled         boolean GENERATED ALWAYS AS (km_bool(data #> '{attributes,enabled}')) STORED,
    capacity        integer GENERATED ALWAYS AS (km_int4(data #> '{attributes,capacity}')) STORED
);
CREATE INDEX team_routing_settings_team_id ON team_routing_settings (team_id);

CREATE TABLE assistants (
    id              text PRIMARY KEY,
    data            jsonb NOT NULL,
    data_exact      text,
    created_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,createdAt}')) STORED,
    updated_at      timestamptz GENERATED ALWAYS AS (km_ts(data #> '{attributes,updatedAt}')) STORED,
    deleted_at      timestamptz,
    first_synced_at timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    hash            text NOT NULL,
    name            text GENERATED ALWAYS AS (km_text(data #> '{attributes,name}')) STORED,
    description     text GENERATED ALWAYS AS (km_text(data #> '{attributes,description}')) STORED,
    assistant_type  text GENERATED ALWAYS AS (km_text(data #> '{attributes,type}')) STORED,
    machine_user_id text GENERATED ALWAYS AS (km_text(data #> '{attributes,machineUserId}')) STORED
);
-- @end coverage

-- One row per sync pass of one entity (kobjects: one per klass): the cheapest dashboard there is.
CREATE TABLE sync_runs (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    entity      text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('incremental', 'full', 'reconcile', 'preflight', 'webhook')),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    status      text NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    requests    bigint NOT NULL DEFAULT 0,
    fetched     bigint NOT NULL DEFAULT 0,
    inserted    bigint NOT NULL DEFAULT 0,
    updated     bigint NOT NULL DEFAULT 0,
    unchanged   bigint NOT NULL DEFAULT 0,
    deleted     bigint NOT NULL DEFAULT 0,
    error       text,
    rejected    bigint NOT NULL DEFAULT 0,
    expected    bigint
);
CREATE INDEX sync_runs_entity ON sync_runs (entity, id);

-- Items Kustomer served that could not be kept as records (not an object, no usable id, text that
-- cannot be read): set aside here so the rest of their page and entity sync on. A later sync that
-- receives the record in good form stores it and deletes its row here. `raw` is text, not jsonb: it
-- is often not valid JSON. `updated_at` is the served string, which may not be a time at all.
CREATE TABLE rejected_records (
    entity        text NOT NULL,
    record_key    text NOT NULL,
    record_id     text,
    updated_at    text,
    reason        text NOT NULL,
    raw           text NOT NULL,
    page          text NOT NULL,
    run_id        bigint NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    times_seen    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (entity, record_key)
);

-- Custom attribute views (`*_custom`) that could not be built from the names in the data: the rows
-- are stored all the same, the view is tried again with a later page or when the sync ends, and
-- its row here goes once it is built. `status` and `/metrics` report them.
CREATE TABLE view_problems (
    view      text PRIMARY KEY,
    entity    text NOT NULL,
    error     text NOT NULL,
    failed_at timestamptz NOT NULL
);

-- The last outbound-webhook event applied per entity, and how many were applied since the table
-- began (`changed`: wrote a row; `stale`: not newer than the row, left alone; `rejected`: set
-- aside in rejected_records; the rest left the row as it was). The events' changes are in change_log under the `webhook` run.
CREATE TABLE webhook_events (
    entity      text PRIMARY KEY,
    event       text NOT NULL,
    event_id    text,
    record_id   text,
    received_at timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL,
    events      bigint NOT NULL DEFAULT 0,
    changed     bigint NOT NULL DEFAULT 0,
    stale       bigint NOT NULL DEFAULT 0,
    rejected    bigint NOT NULL DEFAULT 0
);

-- One row per real change (never for an unchanged record). For an update, `changes` is a JSON object
-- mapping each changed attribute path (e.g. "attributes.status") to {"old": …, "new": …}.
-- `source_updated_at` is the record's updatedAt as served (text: it is not always a valid time).
-- `changes` is jsonb, so like `data` it cannot hold a \u0000 or a lone surrogate escape, and it has no
-- exact twin: the writer has to make such values storable.
CREATE TABLE change_log (
    seq               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    run_id            bigint NOT NULL,
    entity            text NOT NULL,
    record_id         text NOT NULL,
    op                text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    source_updated_at text,
    synced_at         timestamptz NOT NULL,
    changes           jsonb
);
CREATE INDEX change_log_record ON change_log (entity, record_id, seq);
CREATE INDEX change_log_run ON change_log (run_id);

-- The incremental position and status of each entity (kobjects: one row per klass, `kobjects:<klass>`).
-- `cursor` is the source updatedAt the next incremental pass starts from (minus the overlap), as
-- served (text, so it goes back to Kustomer exactly as it came); `cursor_ids` the JSON array of ids
-- already stored at exactly that timestamp.
CREATE TABLE sync_state (
    entity               text PRIMARY KEY,
    strategy             text,
    cursor               text,
    cursor_ids           jsonb NOT NULL DEFAULT '[]',
    last_run_id          bigint,
    last_success_at      timestamptz,
    last_full_at         timestamptz,
    last_error           text,
    consecutive_failures bigint NOT NULL DEFAULT 0,
    unsupported          text
);

-- The schema version (SQLite keeps it in PRAGMA user_version): one row, written by the binary.
CREATE TABLE schema_meta (
    version integer NOT NULL
);
CREATE UNIQUE INDEX schema_meta_one_row ON schema_meta ((true));

-- @views
-- Everything below is derived (views only): a new schema runs it with the tables, and every upgrade
-- drops and recreates it, so a view change never needs its own upgrade step. CASCADE also drops what
-- users built on these views. Per-org custom attribute views (<entity>_custom) are made by the sync.
-- Days, weeks and months are computed in UTC whatever the session's TimeZone.

DROP VIEW IF EXISTS customers_live CASCADE;
DROP VIEW IF EXISTS companies_live CASCADE;
DROP VIEW IF EXISTS conversations_live CASCADE;
DROP VIEW IF EXISTS messages_live CASCADE;
DROP VIEW IF EXISTS notes_live CASCADE;
DROP VIEW IF EXISTS users_live CASCADE;
DROP VIEW IF EXISTS teams_live CASCADE;
DROP VIEW IF EXISTS tags_live CASCADE;
DROP VIEW IF EXISTS queues_live CASCADE;
DROP VIEW IF EXISTS klasses_live CASCADE;
DROP VIEW IF EXISTS kobjects_live CASCADE;
DROP VIEW IF EXISTS conversation_tags CASCADE;
DROP VIEW IF EXISTS conversation_assigned_users CASCADE;
DROP VIEW IF EXISTS conversation_assigned_teams CASCADE;
DROP VIEW IF EXISTS team_members CASCADE;
DROP VIEW IF EXISTS customer_emails CASCADE;
DROP VIEW IF EXISTS customer_phones CASCADE;
DROP VIEW IF EXISTS conversation_facts CASCADE;
DROP VIEW IF EXISTS message_facts CASCADE;
DROP VIEW IF EXISTS conversation_status_history CASCADE;
DROP VIEW IF EXISTS work_sessions_live CASCADE;
DROP VIEW IF EXISTS slas_live CASCADE;
DROP VIEW IF EXISTS schedules_live CASCADE;
DROP VIEW IF EXISTS holidays_live CASCADE;
DROP VIEW IF EXISTS schedule_holidays CASCADE;
DROP VIEW IF EXISTS snoozes_live CASCADE;
DROP VIEW IF EXISTS brands_live CASCADE;
DROP VIEW IF EXISTS shortcuts_live CASCADE;
DROP VIEW IF EXISTS satisfaction_forms_live CASCADE;
DROP VIEW IF EXISTS team_routing_settings_live CASCADE;
DROP VIEW IF EXISTS assistants_live CASCADE;
DROP VIEW IF EXISTS agent_availability_daily CASCADE;
DROP VIEW IF EXISTS conversation_sla CASCADE;
DROP VIEW IF EXISTS conversation_csat CASCADE;

-- Rows not deleted upstream. Same columns as SQLite's views, so data_exact is left out: a report that
-- needs the exact text of the rare record that has one reads the table.
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
-- A value that is not an array gives no rows (jsonb_array_elements would raise on it).
CREATE VIEW conversation_tags AS
SELECT c.id AS conversation_id, t.value AS tag_id, g.name AS tag_name
FROM conversations c
CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(c.data #> '{attributes,tags}') = 'array'
    THEN c.data #> '{attributes,tags}' ELSE '[]' END) AS t(value)
LEFT JOIN tags g ON g.id = t.value
WHERE c.deleted_at IS NULL;

CREATE VIEW conversation_assigned_users AS
SELECT c.id AS conversation_id, a.value AS user_id, u.name AS user_name
FROM conversations c
CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(c.data #> '{attributes,assignedUsers}') = 'array'
    THEN c.data #> '{attributes,assignedUsers}' ELSE '[]' END) AS a(value)
LEFT JOIN users u ON u.id = a.value
WHERE c.deleted_at IS NULL;

CREATE VIEW conversation_assigned_teams AS
SELECT c.id AS conversation_id, a.value AS team_id, t.name AS team_name
FROM conversations c
CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(c.data #> '{attributes,assignedTeams}') = 'array'
    THEN c.data #> '{attributes,assignedTeams}' ELSE '[]' END) AS a(value)
LEFT JOIN teams t ON t.id = a.value
WHERE c.deleted_at IS NULL;

CREATE VIEW team_members AS
SELECT t.id AS team_id, t.name AS team_name, m.value AS user_id, u.name AS user_name
FROM teams t
CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.data #> '{attributes,members}') = 'array'
    THEN t.data #> '{attributes,members}' ELSE '[]' END) AS m(value)
LEFT JOIN users u ON u.id = m.value
WHERE t.deleted_at IS NULL;

-- `position` is 0-based, like SQLite json_each's key.
CREATE VIEW customer_emails AS
SELECT c.id AS customer_id, e.ordinality - 1 AS position, km_text(e.value -> 'email') AS email,
       km_text(e.value -> 'type') AS type, km_bool(e.value -> 'verified') AS verified
FROM customers c
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(c.data #> '{attributes,emails}') = 'array'
    THEN c.data #> '{attributes,emails}' ELSE '[]' END) WITH ORDINALITY AS e(value, ordinality)
WHERE c.deleted_at IS NULL;

CREATE VIEW customer_phones AS
SELECT c.id AS customer_id, p.ordinality - 1 AS position, km_text(p.value -> 'phone') AS phone,
       km_text(p.value -> 'type') AS type, km_bool(p.value -> 'verified') AS verified
FROM customers c
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(c.data #> '{attributes,phones}') = 'array'
    THEN c.data #> '{attributes,phones}' ELSE '[]' END) WITH ORDINALITY AS p(value, ordinality)
WHERE c.deleted_at IS NULL;

-- One row per live conversation with what support reports ask about. Times in minutes.
-- created_week is SQLite's strftime('%Y-W%W'): calendar year, then the week 00-53 where weeks start on
-- Monday and week 01 begins on the year's first Monday (days before it are week 00).
CREATE VIEW conversation_facts AS
SELECT c.id AS conversation_id, c.customer_id, c.name AS subject, c.status, c.channel, c.priority,
       c.direction, c.queue_id, q.name AS queue_name, c.assigned_user_id, u.name AS assigned_user_name,
       c.assigned_team_id, t.name AS assigned_team_name,
       c.created_at, (c.created_at AT TIME ZONE 'UTC')::date AS created_day,
       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY') || '-W'
           || lpad(((extract(doy FROM c.created_at AT TIME ZONE 'UTC')::integer + 7
                     - extract(isodow FROM c.created_at AT TIME ZONE 'UTC')::integer) / 7)::text, 2, '0')
           AS created_week,
       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM') AS created_month,
       km_ts(c.data #> '{attributes,firstResponse,createdAt}') AS first_response_at,
       round(extract(epoch FROM (km_ts(c.data #> '{attributes,firstResponse,createdAt}') - c.created_at)) / 60, 2)
           AS first_response_minutes,
       km_ts(c.data #> '{attributes,firstDone,createdAt}') AS resolved_at,
       round(extract(epoch FROM (km_ts(c.data #> '{attributes,firstDone,createdAt}') - c.created_at)) / 60, 2)
           AS resolution_minutes,
       c.message_count, c.inbound_message_count, c.outbound_message_count, c.note_count,
       (SELECT count(m.id) FROM messages m WHERE m.conversation_id = c.id AND m.deleted_at IS NULL)
           AS mirrored_message_count,
       km_len(c.data #> '{attributes,tags}') AS tag_count,
       km_num(c.data #> '{attributes,satisfaction}') AS satisfaction,
       c.reopen_count, c.done_count, c.spam, c.updated_at
FROM conversations c
LEFT JOIN queues q ON q.id = c.queue_id
LEFT JOIN users u ON u.id = c.assigned_user_id
LEFT JOIN teams t ON t.id = c.assigned_team_id
WHERE c.deleted_at IS NULL;

-- One row per live message, with its author and its conversation's status.
CREATE VIEW message_facts AS
SELECT m.id AS message_id, m.conversation_id, m.customer_id, m.channel, m.direction, m.direction_type,
       m.status, m.app, m.auto, m.size, m.subject, m.created_at,
       (m.created_at AT TIME ZONE 'UTC')::date AS created_day,
       m.sent_at, m.created_by_id, u.name AS created_by_name, c.status AS conversation_status
FROM messages m
LEFT JOIN users u ON u.id = m.created_by_id
LEFT JOIN conversations c ON c.id = m.conversation_id
WHERE m.deleted_at IS NULL;

-- Every status change the mirror saw, from the change log, in order (seq). `->>` gives NULL for a JSON
-- null, as SQLite's json_extract does, so a change recorded as null is left out here too.
CREATE VIEW conversation_status_history AS
SELECT l.seq, l.record_id AS conversation_id,
       l.changes -> 'attributes.status' ->> 'old' AS from_status,
       l.changes -> 'attributes.status' ->> 'new' AS to_status,
       l.source_updated_at AS changed_at, l.synced_at
FROM change_log l
WHERE l.entity = 'conversations' AND l.op IN ('update', 'delete')
  AND l.changes ->> 'attributes.status' IS NOT NULL;

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
SELECT s.id AS schedule_id, s.name AS schedule_name, r.value AS holiday_id, h.name AS holiday_name,
       h.start_date, h.end_date, h.enabled
FROM schedules s
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(s.data #> '{relationships,holidays,data}') = 'array'
    THEN s.data #> '{relationships,holidays,data}' ELSE '[]' END) AS j(value)
CROSS JOIN LATERAL (SELECT km_text(j.value -> 'id') AS value) AS r
LEFT JOIN holidays h ON h.id = r.value AND h.deleted_at IS NULL
WHERE s.deleted_at IS NULL;

-- Agent availability per UTC day of sign-in, agent and team, from work sessions: signed-in minutes
-- of the sessions that ended, available minutes (totalAvailable.time) and conversations handled.
CREATE VIEW agent_availability_daily AS
SELECT (w.signed_in_at AT TIME ZONE 'UTC')::date AS day, w.user_id, u.name AS user_name, w.team_id,
       t.name AS team_name, count(w.id) AS sessions,
       round(sum(extract(epoch FROM (w.signed_out_at - w.signed_in_at))) / 60, 1) AS signed_in_minutes,
       round(sum(w.available_ms) / 60000.0, 1) AS available_minutes,
       sum(w.handled_conversation_count) AS handled_conversations
FROM work_sessions w
LEFT JOIN users u ON u.id = w.user_id
LEFT JOIN teams t ON t.id = w.team_id
WHERE w.deleted_at IS NULL
GROUP BY (w.signed_in_at AT TIME ZONE 'UTC')::date, w.user_id, u.name, w.team_id, t.name;

-- One row per live conversation an SLA applies to (attributes.sla): which SLA, its status, whether
-- and on which metric it was breached.
CREATE VIEW conversation_sla AS
SELECT c.id AS conversation_id, c.assigned_team_id, t.name AS assigned_team_name, c.created_at,
       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY') || '-W'
           || lpad(((extract(doy FROM c.created_at AT TIME ZONE 'UTC')::integer + 7
                     - extract(isodow FROM c.created_at AT TIME ZONE 'UTC')::integer) / 7)::text, 2, '0') AS created_week,
       km_text(c.data #> '{attributes,sla,id}') AS sla_id,
       km_text(c.data #> '{attributes,sla,name}') AS sla_name,
       km_int4(c.data #> '{attributes,sla,version}') AS sla_version,
       km_text(c.data #> '{attributes,sla,status}') AS sla_status,
       CASE WHEN km_bool(c.data #> '{attributes,sla,breached}') THEN 1 ELSE 0 END AS breached,
       km_text(c.data #> '{attributes,sla,breach,metric}') AS breach_metric,
       km_ts(c.data #> '{attributes,sla,breach,at}') AS breach_at
FROM conversations c
LEFT JOIN teams t ON t.id = c.assigned_team_id
WHERE c.deleted_at IS NULL AND km_text(c.data #> '{attributes,sla,name}') IS NOT NULL;

-- One row per live conversation a satisfaction survey was sent for (attributes.satisfactionLevel):
-- the survey's status, rating and score; responded is 1 when it was rated.
CREATE VIEW conversation_csat AS
SELECT c.id AS conversation_id, c.assigned_user_id, u.name AS assigned_user_name,
       c.assigned_team_id, t.name AS assigned_team_name, c.channel, c.created_at,
       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY') || '-W'
           || lpad(((extract(doy FROM c.created_at AT TIME ZONE 'UTC')::integer + 7
                     - extract(isodow FROM c.created_at AT TIME ZONE 'UTC')::integer) / 7)::text, 2, '0') AS created_week,
       km_text(c.data #> '{attributes,satisfactionLevel,form}') AS form_id,
       km_text(c.data #> '{attributes,satisfactionLevel,formResponse}') AS form_response_id,
       km_text(c.data #> '{attributes,satisfactionLevel,status}') AS survey_status,
       km_ts(c.data #> '{attributes,satisfactionLevel,sentAt}') AS sent_at,
       km_num(c.data #> '{attributes,satisfactionLevel,rating}') AS rating,
       km_num(c.data #> '{attributes,satisfactionLevel,score}') AS score,
       CASE WHEN km_num(c.data #> '{attributes,satisfactionLevel,rating}') IS NOT NULL THEN 1 ELSE 0 END
           AS responded
FROM conversations c
LEFT JOIN users u ON u.id = c.assigned_user_id
LEFT JOIN teams t ON t.id = c.assigned_team_id
WHERE c.deleted_at IS NULL AND km_ts(c.data #> '{attributes,satisfactionLevel,sentAt}') IS NOT NULL;
