//! kustomer-mirror keeps a faithful, queryable SQLite or PostgreSQL mirror of a Kustomer organisation.
//!
//! The design (data flow, the keyset algorithm, the transaction and cursor rule, the data model
//! contract, the rate limiter, the first-sync bulk load) is in `docs/design.md`; the schema in
//! `docs/schema.md`.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap): parses arguments and dispatches to commands.
//! - [`failpoint`]: failure injection for the tests that drive the real binary
//!   (`KUSTOMER_MIRROR_FAILPOINTS`; unset in production).
//! - [`exit`]: the exit codes every command answers with (0 ok, 1 sync failed, another writer or
//!   a failed request of `webhooks`, 2 bad usage or config, 130 second signal).
//! - [`commands`]: one file per command (`sync`, `run`, `status`, `demo`, `fake-api`,
//!   `check-config`, `webhooks`, `completions`, `man`): settings to engine, the writer lock,
//!   printed reports, exit codes. `commands::webhooks` registers, lists and removes the outbound
//!   webhook and keeps `webhooks.token_file` (atomic rewrites, mode 0600).
//! - [`config`]: settings: defaults (`config::defaults`, shared with the options' `Default`) → TOML
//!   file → environment, validation with messages that name the key, secrets that never print (the
//!   PostgreSQL URL's password included), the effective settings as `check-config` shows them.
//! - [`custom`]: the naming rules of the per-org custom attribute views (view per table or klass,
//!   column and kind per attribute, identifiers bounded to 63 bytes); no SQL.
//! - [`ddl`]: reading parts of a schema file: the index definitions, for the first-sync bulk loads,
//!   and named sections, which upgrade steps create as written (`-- @coverage`).
//! - [`destination`]: the seam between the engine and the database: the `Destination` trait (what
//!   the writer does with a batch), its SQLite and PostgreSQL implementations over the two
//!   executors, the writer thread that owns one (and commits queued pages together), and the
//!   `Reader` behind `status`, `/healthz` and `/metrics`.
//! - [`mirror`]: the core, the mirror's rules written once for both destinations, with no SQL and
//!   no I/O: what a page writes (`mirror::plan`: inserts, updates with their change-log diff,
//!   unchanged records, tombstones, quarantine), how a cursor moves (`mirror::cursor`), what a run
//!   records (`mirror::runs`), what each custom view shows (`mirror::views`), whether a pushed record is newer than its row
//!   (`mirror::fresh`).
//! - [`escape`]: SQL literals and identifiers, percent-decoding: written once.
//! - [`daemon`]: `run`: cron jobs feeding one dispatcher (`daemon::dispatch`: runs going, deferred
//!   runs, backoff, panicked tasks) over the sync engine, graceful stop,
//!   systemd notify and watchdog, `/healthz` and `/metrics`.
//! - [`entity`]: the entities as data: table, API paths, strategy, search attributes, and for the
//!   coverage entities the role they need and whether an org may not offer them.
//! - [`logging`]: tracing setup (human or JSON, level from config).
//! - [`progress`]: what `sync` shows while it runs: live bars per entity on a terminal (totals,
//!   records/s, ETA, the rate budgets' use), a log line per entity every `log.progress_interval`
//!   elsewhere, nothing with `--quiet`.
//! - [`record`]: a served resource object as the mirror keeps it: the exact canonical decoder
//!   (numbers as their served text, lone surrogate escapes kept), quarantined items, the change-log
//!   diff, `updatedAt` in one normal form for cursors (`record::time`). Knows neither HTTP nor SQL.
//! - [`sync`]: the sync engine: search-incremental, full refresh and reconcile passes over entities,
//!   exact request accounting, the cursor bounded by the server's clock; an optional entity the org
//!   or key does not offer is marked unsupported (`sync::unsupported`) rather than failed.
//! - [`status`]: the one status model (rows, quarantined records, cursor, last run with its typed
//!   state, lag), assembled from the reads each destination answers (`status::Source`); a cheaper
//!   scope for `/healthz`; the terminal table.
//! - [`postgres`]: the PostgreSQL executor: connecting (rustls, libpq's sslmode, errors a user can
//!   fix), the data model twin (`postgres/schema.sql`) and its upgrades, the schema's advisory lock,
//!   carrying out the core's page plans (binary COPY and set-based upserts in one transaction,
//!   record-by-record fallback), reconnects with backoff, first-sync index deferral, the custom
//!   views' dialect and the status reads.
//! - [`sqlite`]: the SQLite executor: opening (WAL, busy timeout), schema versions and upgrades,
//!   carrying out the core's page plans (rows, change log, quarantine, counters and cursor in one
//!   transaction, or several queued pages in one), first-sync bulk loading with deferred indexes
//!   (`sqlite::bulk`), WAL checkpoints on a thread of their own (`sqlite::checkpoint`), the
//!   one-writer lock (`sqlite::lock`), the custom views' dialect (`sqlite::views`), the status reads
//!   and the 0640 mode of the files it creates (`sqlite::mode`).
//! - [`write`](mod@write): what the engine hands a destination to write (a page of records with its
//!   cursor) and the run bookkeeping types (mode, outcome, typed run state); knows no SQL.
//! - [`kustomer`]: the Kustomer HTTP client: bearer auth, timeouts, retries, JSON:API page decoding
//!   into records, typed errors that say what to do; links and redirects followed only on the
//!   configured origin; rate-limit headers read as bounded hints (`kustomer::hold`) by the limiter;
//!   the outbound-webhook management calls (`kustomer::webhooks`), writes sent at most once.
//! - [`webhooks`]: real time through Kustomer's outbound webhooks: the receiver on its own
//!   listener (signature over the raw body in constant time, size and time limits), the durable
//!   inbox that holds each event from its 2xx until it is applied, the drain that hands pushed
//!   records to the one writer's urgent lane (applied only when newer: `mirror::fresh`), and their
//!   metrics. Never moves a cursor.
//! - [`fake`]: the built-in fake Kustomer API used by `demo`, `fake-api` and the tests: deterministic
//!   data, JSON:API lists and search, rate limits, fault injection, a control API, and outbound
//!   webhooks (the management endpoints and a sender that POSTs signed events for every change,
//!   with Kustomer's retries and switches to drop, duplicate, reorder and delay them).

pub mod cli;
pub mod commands;

pub mod config;
pub mod custom;
pub mod daemon;
pub mod ddl;
pub mod destination;
pub mod entity;
pub mod escape;
pub mod exit;
pub mod failpoint;
pub mod fake;
pub mod kustomer;
pub mod logging;
pub mod mirror;
pub mod postgres;
pub mod progress;
pub mod record;
pub mod sqlite;
pub mod status;
pub mod sync;
pub mod webhooks;
pub mod write;
