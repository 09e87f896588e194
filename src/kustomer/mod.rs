//! Talking to Kustomer: the HTTP client (bearer auth, timeouts, retries of transient faults), JSON:API
//! page decoding and the typed errors every request can end in.
//!
//! The seam to Kustomer is a base URL plus an auth header: the org host, a regional host, the fake's
//! `http://127.0.0.1:PORT` or Membrane's proxy (with minted, renewed tokens) all look the same from
//! here; only the Membrane CLI transport runs a program instead ([`cli`]). Besides the reads the
//! mirror makes, [`webhooks`] manages Kustomer's outbound webhooks (create, list, read, delete).

pub mod cli;
mod client;
pub mod error;
pub mod hold;
pub mod jwt;
pub mod limiter;
mod page;
pub mod webhooks;

pub use client::{Client, ClientOptions, ClientStats, MembraneAuth, counted};
pub use error::ApiError;
pub use limiter::{Budget, Limiter};
pub use page::{Page, decode_page, decode_single};
