//! kustomer-mirror keeps a faithful, queryable SQLite mirror of a Kustomer organisation.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap): parses arguments, loads settings, dispatches to commands and maps
//!   outcomes to exit codes (0 ok, 1 sync failed, 2 bad usage or config).
//! - [`commands`]: `sync`, `status` and `demo`: settings to engine, printed reports, exit codes.
//! - [`config`]: settings: defaults → TOML file → environment, validation with messages that name the
//!   key, secrets that never print.
//! - [`daemon`]: `run`: cron jobs feeding one dispatcher over the sync engine, backoff, graceful stop,
//!   systemd notify and watchdog, `/healthz` and `/metrics`.
//! - [`entity`]: the eleven entities as data: table, API paths, strategy, search attributes.
//! - [`logging`]: tracing setup (human or JSON, level from config).
//! - [`sync`]: the sync engine: search-incremental, full refresh and reconcile passes over entities.
//! - [`status`]: per-entity status read from the mirror (rows, cursor, last run, lag).
//! - [`views`]: per-org custom attribute views (`<entity>_custom`): a page that brings a new attribute
//!   name adds its column in the page's transaction; a sync that removed one rescans at the end.
//! - [`store`]: the SQLite mirror: opening (WAL, busy timeout), schema versions and upgrades, page
//!   writes on one writer thread, first-sync bulk loading with deferred indexes (`store::bulk`).
//! - [`kustomer`]: the Kustomer HTTP client: bearer auth, timeouts, retries, JSON:API page decoding
//!   straight to canonical record text, typed errors that say what to do.
//! - [`fake`]: the built-in fake Kustomer API used by `demo`, `fake-api` and the tests: deterministic
//!   data, JSON:API lists and search, rate limits, fault injection and a control API.

pub mod cli;
pub mod commands;

pub mod config;
pub mod daemon;
pub mod entity;
pub mod fake;
pub mod kustomer;
pub mod logging;
pub mod record;
pub mod status;
pub mod store;
pub mod sync;
pub mod views;
