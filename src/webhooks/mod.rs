//! Real time through Kustomer's outbound webhooks: a receiver on a listener of its own
//! (`[webhooks]`) verifies each delivery's signature over the raw body ([`signature`]), stores it
//! in a durable inbox before answering 2xx ([`inbox`]), and a drain applies the inbox through the
//! one writer and the one core as pushed records that apply only when newer than the stored row
//! ([`drain`], `mirror::fresh`), logged under the daemon's `webhook` run. Webhooks never move a
//! cursor: polling stays the source of truth and catches what they miss (deletes, notes,
//! companies, kobjects, lost events). [`metrics`] counts it all for `/metrics`.

pub mod drain;
pub mod envelope;
pub mod inbox;
pub mod metrics;
pub mod receiver;
pub mod signature;

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::WebhookSettings;
use crate::destination::Writer;
use crate::mirror::runs::WEBHOOK_KEY;
use crate::write::{Mode, Outcome};

pub use metrics::Metrics;

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No token, or an unreadable token file.
    #[error("{0}")]
    Tokens(#[from] crate::config::ConfigError),
    /// The inbox file.
    #[error(transparent)]
    Inbox(#[from] inbox::InboxError),
    /// The listener.
    #[error("cannot listen on {addr} for webhooks.listen: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The mirror would not start the webhook run.
    #[error("cannot start the webhook run in the mirror: {0}")]
    Run(String),
}

/// The receiver and the drain, running.
#[derive(Debug)]
pub struct Running {
    /// The counters `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Where the receiver listens.
    pub addr: std::net::SocketAddr,
    tasks: JoinSet<()>,
    writer: Writer,
    run_id: i64,
}

/// Starts the receiver on `listener` (else on `webhooks.listen`) and the drain, both stopping when
/// `shutdown` turns true. Errors name the setting to fix.
pub async fn start(
    settings: &WebhookSettings,
    writer: Writer,
    listener: Option<tokio::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, WebhookError> {
    let tokens = receiver::Tokens::load(settings)?;
    let inbox = inbox::Inbox::open(&settings.inbox)?;
    let listener = match (listener, settings.listen) {
        (Some(l), _) => l,
        (None, addr) => {
            let addr = addr.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8089)));
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| WebhookError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?
        }
    };
    let addr = listener.local_addr().map_err(|e| WebhookError::Listen {
        addr: "the given listener".to_string(),
        reason: e.to_string(),
    })?;
    let run_id = writer
        .call(|d| d.begin_run(WEBHOOK_KEY, Mode::Webhook, &[]))
        .await
        .map_err(|e| WebhookError::Run(e.to_string()))?
        .map_err(|e| WebhookError::Run(e.to_string()))?;
    let metrics = Arc::new(Metrics::default());
    let stored = Arc::new(Notify::new());
    let shared = Arc::new(receiver::Shared {
        tokens,
        inbox: inbox.clone(),
        metrics: Arc::clone(&metrics),
        max_body: settings.max_body,
        read_timeout: settings.read_timeout,
        stored: Arc::clone(&stored),
    });
    let mut tasks = JoinSet::new();
    let mut stop = shutdown.clone();
    let app = receiver::router(&settings.path, shared);
    tasks.spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            crate::daemon::stopped(&mut stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the webhook receiver stopped");
        }
    });
    tasks.spawn(drain::run(
        inbox,
        writer.clone(),
        run_id,
        Arc::clone(&metrics),
        stored,
        shutdown,
    ));
    tracing::info!(address = %addr, path = %settings.path, inbox = %settings.inbox.display(), run = run_id, "receiving Kustomer webhooks");
    Ok(Running {
        metrics,
        addr,
        tasks,
        writer,
        run_id,
    })
}

impl Running {
    /// Waits for the receiver to answer the requests in flight and for the drain to finish its
    /// batch (at most `grace`), then ends the webhook run. Events still in the inbox are applied by
    /// the next start.
    pub async fn stop(mut self, grace: std::time::Duration) {
        let tasks = &mut self.tasks;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                "the webhook receiver did not stop in time; what it stored stays in the inbox"
            );
            self.tasks.abort_all();
        }
        let run_id = self.run_id;
        let ended = self
            .writer
            .call(move |d| d.finish_run(WEBHOOK_KEY, run_id, Mode::Webhook, Outcome::Ok, Some(0)))
            .await;
        if !matches!(ended, Ok(Ok(()))) {
            tracing::warn!(
                run = run_id,
                "could not mark the webhook run finished; the next start marks it interrupted"
            );
        }
    }
}
