//! The integration suite, as one test binary. Each file below is the suite of one area (its own
//! `//!` says which); `common` holds the helpers they share: the fake, a mirror on every
//! destination, a throwaway PostgreSQL server, the binary's processes.
//!
//! One binary rather than a binary per file: a release test binary is linked with thin LTO over
//! every dependency, about 25 s each on two cores, and twenty of them made the link most of CI's
//! time. libtest still runs as many tests at once as before (one per core), so the files' tests
//! overlap the way the tests of one file always did.

#[macro_use]
mod common;

mod apply;
mod batches;
mod bi;
mod commands;
mod config;
mod contract;
mod coverage;
mod custom_views;
mod daemon;
mod decoder;
mod exact;
mod fake_api;
mod fake_webhooks;
mod hostile;
mod indexes;
mod membrane;
mod pg_faults;
mod pg_schema;
mod progress;
mod reliability;
mod stop;
mod store;
mod sync;
mod webhook_commands;
mod webhooks;
mod writers;
