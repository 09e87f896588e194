//! The HTTP client for Kustomer's REST API: bearer auth on every request, connect and request timeouts,
//! relative `links` resolved against the configured base URL, status codes mapped to [`ApiError`], and
//! a bounded retry of transient faults (5xx, 429, dropped connections, truncated bodies).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::cli::{CliBackend, CliFailure};
use super::error::{ApiError, error_message, excerpt};
use super::jwt::Minter;
use super::limiter::{Kind, Limiter};
use super::page::{Page, decode_page, decode_single};
use crate::config::Secret;
use crate::record::Record;

/// Timeouts and retry bounds of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to open a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, body included.
    pub request_timeout: Duration,
    /// Tries per request for transient faults (1 = no retry).
    pub max_attempts: u32,
    /// First backoff delay; doubles per try.
    pub backoff: Duration,
    /// Upper bound of one wait (also bounds waits for a rate-limit window).
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        use crate::config::defaults;
        ClientOptions {
            connect_timeout: defaults::CONNECT_TIMEOUT,
            request_timeout: defaults::REQUEST_TIMEOUT,
            max_attempts: defaults::MAX_RETRIES + 1,
            backoff: defaults::RETRY_BACKOFF,
            max_backoff: defaults::MAX_BACKOFF,
        }
    }
}

/// Counters of what a client sent and got back, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent (every attempt).
    pub requests: u64,
    /// 2xx answers.
    pub status_2xx: u64,
    /// 4xx answers other than 429.
    pub status_4xx: u64,
    /// 429 answers.
    pub status_429: u64,
    /// 5xx answers.
    pub status_5xx: u64,
    /// Requests that got no answer (connection refused or dropped, timeout).
    pub transport_errors: u64,
    /// Retries after transient failures.
    pub retries: u64,
    /// Rate-limit holds cut short because the server asked for more than the limiter's cap.
    pub rate_holds_capped: u64,
    /// Rate-limit headers that could not be read.
    pub rate_headers_unreadable: u64,
    /// The rate-limit hold in force now, in milliseconds (0: none).
    pub rate_hold_remaining_ms: u64,
}

#[derive(Debug, Default)]
struct Counters {
    status_2xx: AtomicU64,
    status_4xx: AtomicU64,
    status_429: AtomicU64,
    status_5xx: AtomicU64,
    transport_errors: AtomicU64,
    retries: AtomicU64,
}

/// How requests are authenticated over HTTP.
#[derive(Debug)]
enum Auth {
    /// A fixed bearer token (a Kustomer API key, or a ready Membrane token), marked sensitive.
    Bearer(HeaderValue),
    /// Membrane tokens minted from the workspace secret and renewed before they expire.
    Minted(Minter),
}

/// How a Membrane-proxied client authenticates.
#[derive(Debug)]
pub enum MembraneAuth {
    /// A ready token (`membrane.token`, `MEMBRANE_ACCESS_TOKEN`).
    Token(Secret),
    /// Mint tokens with the workspace key and secret for a tenant.
    Mint(Minter),
}

fn bearer(token: &str, setting: &str) -> Result<HeaderValue, ApiError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ApiError::Rejected {
        status: 0,
        path: String::new(),
        message: format!("the {setting} contains characters not allowed in an HTTP header; check it for stray quotes or line breaks"),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A Kustomer API client bound to one way in (base URL and credentials, or the Membrane CLI).
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    /// Where requests may go; `None` for the CLI transport, which has no URL of its own.
    origin: Option<Origin>,
    auth: Auth,
    cli: Option<CliBackend>,
    /// The Membrane connection, when requests go through Membrane (for error messages).
    membrane_connection: Option<String>,
    base: String,
    options: ClientOptions,
    requests: AtomicU64,
    counters: Counters,
    limiter: Arc<Limiter>,
}

static CRYPTO_PROVIDER: Once = Once::new();

tokio::task_local! {
    /// Where the requests sent by the current task are also counted (see [`counted`]).
    static ACCOUNT: Arc<AtomicU64>;
}

/// Runs `work`, counting in `counter` every HTTP attempt that any client sends from within it:
/// retries, rate-limited tries and Membrane CLI calls included. This is how a sync run's
/// `requests` equals what the server saw, whatever ended the run.
pub async fn counted<F: std::future::Future>(counter: Arc<AtomicU64>, work: F) -> F::Output {
    ACCOUNT.scope(counter, work).await
}

/// The server's clock, from a `Date` header.
type ServerTime = chrono::DateTime<chrono::Utc>;

/// 429s in a row after which a request gives up (each one waited for a whole window).
const MAX_RATE_LIMITED: u32 = 30;

/// What kind of call a request is: which budget it spends and whether its transient failures are
/// retried.
#[derive(Debug, Clone, Copy)]
struct Call {
    /// The limiter's budget.
    kind: Kind,
    /// Retry 5xx, timeouts, dropped connections and cut-off bodies. Reads and searches may be sent
    /// again; writes may not (the first try may have been carried out). A 429 is waited out either
    /// way: the server refused the request without carrying it out.
    retry: bool,
}

impl Call {
    const READ: Call = Call {
        kind: Kind::Read,
        retry: true,
    };
    const SEARCH: Call = Call {
        kind: Kind::Search,
        retry: true,
    };
    const WRITE: Call = Call {
        kind: Kind::Read,
        retry: false,
    };
}

impl Client {
    /// Builds a client for `base_url` (any path prefix is kept: links `/v1/…` are appended to it)
    /// that sends `Authorization: Bearer <api_key>`. The key is marked sensitive so that it is never
    /// printed by reqwest's or our `Debug` output.
    pub fn new(base_url: &str, api_key: &str, options: ClientOptions) -> Result<Client, ApiError> {
        let auth = Auth::Bearer(bearer(api_key, "API key (kustomer.api_key)")?);
        Client::build(base_url, auth, None, None, options)
    }

    /// A client that reaches Kustomer through Membrane's API proxy:
    /// `{api_uri}/connections/{connection_id}/proxy/v1/…`.
    pub fn membrane(
        api_uri: &str,
        connection_id: &str,
        auth: MembraneAuth,
        options: ClientOptions,
    ) -> Result<Client, ApiError> {
        let base = format!(
            "{}/connections/{connection_id}/proxy",
            api_uri.trim_end_matches('/')
        );
        let auth = match auth {
            MembraneAuth::Token(token) => {
                Auth::Bearer(bearer(token.expose(), "Membrane token (membrane.token)")?)
            }
            MembraneAuth::Mint(minter) => Auth::Minted(minter),
        };
        Client::build(&base, auth, None, Some(connection_id.to_string()), options)
    }

    /// A client that runs the Membrane CLI for every request.
    pub fn membrane_cli(cli: CliBackend, options: ClientOptions) -> Result<Client, ApiError> {
        let connection = cli.connection_id.clone();
        let base = format!("membrane-cli:{connection}");
        Client::build(
            &base,
            Auth::Bearer(HeaderValue::from_static("")),
            Some(cli),
            Some(connection),
            options,
        )
    }

    fn build(
        base_url: &str,
        auth: Auth,
        cli: Option<CliBackend>,
        membrane_connection: Option<String>,
        options: ClientOptions,
    ) -> Result<Client, ApiError> {
        // reqwest is built with `rustls-no-provider`: the process must pick rustls' crypto provider
        // before the first Client. Installing fails only when one is already installed, which is fine.
        CRYPTO_PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let origin = Origin::of(base_url);
        // Redirects are followed only within the configured origin; one that leaves it comes back
        // as its 3xx answer, which `status_error` turns into a refusal naming the host.
        let redirects = {
            let origin = origin.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("more than 5 redirects")
                } else if origin.as_ref().is_some_and(|o| o.admits(attempt.url())) {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            })
        };
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(redirects)
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("kustomer-mirror/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Transport {
                url: base_url.to_string(),
                reason: format!("cannot build the HTTP client: {}", describe(&e)),
                timeout: false,
            })?;
        Ok(Client {
            http,
            origin,
            auth,
            cli,
            membrane_connection,
            base: base_url.trim_end_matches('/').to_string(),
            options,
            requests: AtomicU64::new(0),
            counters: Counters::default(),
            limiter: Arc::new(Limiter::unlimited()),
        })
    }

    /// Sends every request through `limiter` (shared with other clients of the same org).
    pub fn with_limiter(mut self, limiter: Arc<Limiter>) -> Client {
        self.limiter = limiter;
        self
    }

    /// The base URL requests are made against (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// HTTP requests sent so far (every attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How much of the org and search budgets the current window uses.
    pub fn budget_usage(&self) -> super::limiter::Usage {
        self.limiter.usage()
    }

    /// What this client sent and got back so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.counters;
        let holds = self.limiter.holds();
        ClientStats {
            requests: self.requests(),
            status_2xx: c.status_2xx.load(Ordering::Relaxed),
            status_4xx: c.status_4xx.load(Ordering::Relaxed),
            status_429: c.status_429.load(Ordering::Relaxed),
            status_5xx: c.status_5xx.load(Ordering::Relaxed),
            transport_errors: c.transport_errors.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_holds_capped: holds.capped,
            rate_headers_unreadable: holds.unreadable,
            rate_hold_remaining_ms: holds.remaining_ms,
        }
    }

    /// Resolves a path or a `links` value against the base URL, keeping its path prefix. An absolute
    /// link must stay on the configured origin (scheme, host, port) and under the base's path (the
    /// Membrane proxy prefix): the credentials go with every request, so a link elsewhere is refused
    /// before anything is sent.
    pub fn resolve(&self, link: &str) -> Result<String, ApiError> {
        let Some(absolute) = absolute_url(link) else {
            return Ok(if link.starts_with('/') {
                format!("{}{link}", self.base)
            } else {
                format!("{}/{link}", self.base)
            });
        };
        match &self.origin {
            Some(origin) if origin.admits(&absolute) => Ok(absolute.to_string()),
            _ => Err(ApiError::ForeignOrigin {
                what: format!("a link ({})", excerpt(strip_query(link), 120)),
                target: origin_text(&absolute),
                origin: self.base.clone(),
            }),
        }
    }

    /// GETs one page of a list (`/v1/users?page=1&pageSize=500`, or a `links.next` value).
    pub async fn get_page(&self, link: &str) -> Result<Page, ApiError> {
        let (body, attempts, server_time) = self.send(Method::GET, link, None, Call::READ).await?;
        let mut page = decode_page(&body).map_err(|reason| ApiError::Malformed {
            path: link.to_string(),
            reason,
        })?;
        page.attempts = attempts;
        page.server_time = server_time;
        Ok(page)
    }

    /// POSTs a search (`/v1/customers/search`) for one page. The body (queryContext, criteria, sort)
    /// is sent again for every page: Kustomer's search links do not carry it.
    pub async fn search(
        &self,
        body: &Value,
        page: u32,
        page_size: u32,
        ids_only: bool,
    ) -> Result<Page, ApiError> {
        let mut path = format!("/v1/customers/search?page={page}&pageSize={page_size}");
        if ids_only {
            path.push_str("&idsOnly=true");
        }
        let (bytes, attempts, server_time) = self
            .send(Method::POST, &path, Some(body), Call::SEARCH)
            .await?;
        let mut page = decode_page(&bytes).map_err(|reason| ApiError::Malformed {
            path: path.clone(),
            reason,
        })?;
        page.attempts = attempts;
        page.server_time = server_time;
        Ok(page)
    }

    /// GETs one object by path; `Ok(None)` on 404.
    pub async fn get_one(&self, path: &str) -> Result<Option<Record>, ApiError> {
        match self.send(Method::GET, path, None, Call::READ).await {
            Ok((body, _, _)) => {
                decode_single(&body)
                    .map(Some)
                    .map_err(|reason| ApiError::Malformed {
                        path: path.to_string(),
                        reason,
                    })
            }
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GETs any JSON document (a path or a `links` value), with the retries of a read. Unlike
    /// [`Client::get_one`] the document is not decoded as a mirrored record: it is for the
    /// management endpoints (`/v1/outbound-webhooks`), whose answers carry fields nothing may keep
    /// or print, such as a webhook's token.
    pub async fn get_json(&self, link: &str) -> Result<Value, ApiError> {
        let (bytes, _, _) = self.send(Method::GET, link, None, Call::READ).await?;
        json_document(link, &bytes)?.ok_or_else(|| ApiError::Malformed {
            path: strip_query(link).to_string(),
            reason: "the answer is empty".to_string(),
        })
    }

    /// POSTs a JSON body that changes something in Kustomer (creates an object); returns the
    /// answer's JSON, `None` when it has no body. Sent at most once unless Kustomer refused it
    /// unprocessed (429): a timeout or a 5xx may come after the object was created, and a retry
    /// would create it twice.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Option<Value>, ApiError> {
        let (bytes, _, _) = self
            .send(Method::POST, path, Some(body), Call::WRITE)
            .await?;
        json_document(path, &bytes)
    }

    /// DELETEs an object; `Ok` on any 2xx (Kustomer answers 204). Sent at most once unless refused
    /// unprocessed (429), as [`Client::post_json`]: a retry after a lost answer would find the
    /// object gone (404) and report a deletion that did happen as a failure.
    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.send(Method::DELETE, path, None, Call::WRITE)
            .await
            .map(|_| ())
    }

    /// Sends a request, retrying transient failures with exponential backoff (only 429s for
    /// writes, see [`Call`]); returns the body of a 2xx answer, the number of attempts it took and
    /// the server's `Date`, when it sent one.
    async fn send(
        &self,
        method: Method,
        link: &str,
        body: Option<&Value>,
        call: Call,
    ) -> Result<(Vec<u8>, u32, Option<ServerTime>), ApiError> {
        let mut attempt = 0;
        let mut rate_limited = 0u32;
        // The same failure repeating is logged once, then once more with its count at the end.
        let mut repeated: Option<(String, u32)> = None;
        let result = loop {
            attempt += 1;
            let result = self.send_once(method.clone(), link, body, call.kind).await;
            match result {
                Ok((bytes, date)) => break Ok((bytes, attempt + rate_limited, date)),
                // A 429 is not a failure: the limiter now holds requests until the server's window
                // resets. It does not use up a try, but a server that never lets us through still
                // ends the run eventually.
                Err(ApiError::RateLimited { .. }) if rate_limited < MAX_RATE_LIMITED => {
                    rate_limited += 1;
                    attempt -= 1;
                    tracing::debug!(
                        path = link,
                        rate_limited,
                        "rate limited; waiting for the window to reset"
                    );
                }
                Err(err)
                    if call.retry && err.is_transient() && attempt < self.options.max_attempts =>
                {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = self.backoff_for(&err, attempt);
                    let text = err.to_string();
                    match &mut repeated {
                        Some((last, count)) if *last == text => *count += 1,
                        _ => {
                            log_repeats(link, repeated.take());
                            tracing::warn!(path = link, error = %text, "transient failure; retrying with backoff");
                            repeated = Some((text, 1));
                        }
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(err) => break Err(err),
            }
        };
        log_repeats(link, repeated);
        result
    }

    /// Checks that the base URL is Kustomer's API and the key is accepted, before anything is
    /// written: `GET /v1/auth/tokens/current` answers for any valid key whatever its roles.
    pub async fn check_access(&self) -> Result<(), ApiError> {
        let path = "/v1/auth/tokens/current";
        match self.send(Method::GET, path, None, Call::READ).await {
            Ok(_) => Ok(()),
            Err(ApiError::NotFound { .. }) => Err(ApiError::Rejected {
                status: 404,
                path: path.to_string(),
                message: format!(
                    "{} does not look like Kustomer's API; check kustomer.base_url (e.g. https://acme.api.kustomerapp.com)",
                    self.base
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// How long to wait before try `attempt + 1`.
    fn backoff_for(&self, err: &ApiError, attempt: u32) -> Duration {
        if let ApiError::RateLimited {
            reset_secs: Some(secs),
            ..
        } = err
        {
            return Duration::from_secs(*secs).min(self.options.max_backoff);
        }
        let exp = self
            .options
            .backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        // Up to +25 % from a real RNG, so concurrent workers that failed together spread out.
        let jitter = exp.mul_f64(fastrand::f64() / 4.0);
        (exp + jitter).min(self.options.max_backoff)
    }

    async fn send_once(
        &self,
        method: Method,
        link: &str,
        body: Option<&Value>,
        kind: Kind,
    ) -> Result<(Vec<u8>, Option<ServerTime>), ApiError> {
        let url = self.resolve(link)?;
        self.limiter.acquire(kind).await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        // Outside any `counted` scope there is nothing to add to.
        let _ = ACCOUNT.try_with(|account| account.fetch_add(1, Ordering::Relaxed));
        if let Some(cli) = &self.cli {
            return match cli.send(&method, link, body).await {
                Ok(bytes) => {
                    self.counters.status_2xx.fetch_add(1, Ordering::Relaxed);
                    Ok((bytes, None))
                }
                Err(CliFailure::Status(code, bytes)) => {
                    let status =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    self.count_status(status);
                    Err(status_error(
                        status,
                        link,
                        &bytes,
                        None,
                        self.membrane_connection.as_deref(),
                    ))
                }
                Err(CliFailure::Error(e)) => {
                    self.counters
                        .transport_errors
                        .fetch_add(1, Ordering::Relaxed);
                    Err(e)
                }
            };
        }
        let auth = match &self.auth {
            Auth::Bearer(value) => value.clone(),
            Auth::Minted(minter) => bearer(minter.token().expose(), "minted Membrane token")?,
        };
        let mut request = self.http.request(method, &url).header(AUTHORIZATION, auth);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| {
            self.counters
                .transport_errors
                .fetch_add(1, Ordering::Relaxed);
            ApiError::Transport {
                url: url.clone(),
                reason: describe(&e),
                timeout: e.is_timeout(),
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        self.count_status(status);
        let told = super::hold::read(response.headers(), std::time::SystemTime::now());
        let headers_of_redirect = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let reset_secs = told.hold.map(|d| d.as_secs());
        let remaining = response
            .headers()
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        self.limiter.observe(
            kind,
            remaining,
            &told,
            status == StatusCode::TOO_MANY_REQUESTS,
        );
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok((bytes.to_vec(), date));
        }
        if status.is_redirection() {
            // Only a redirect off the origin stops here (the policy follows the others).
            let target = response_location(&headers_of_redirect, &url);
            return Err(ApiError::ForeignOrigin {
                what: format!("a {} redirect from {}", status.as_u16(), strip_query(link)),
                target,
                origin: self.base.clone(),
            });
        }
        Err(status_error(
            status,
            link,
            &bytes,
            reset_secs,
            self.membrane_connection.as_deref(),
        ))
    }

    fn count_status(&self, status: StatusCode) {
        let class = match status.as_u16() {
            200..=299 => &self.counters.status_2xx,
            429 => &self.counters.status_429,
            500..=599 => &self.counters.status_5xx,
            _ => &self.counters.status_4xx,
        };
        class.fetch_add(1, Ordering::Relaxed);
    }
}

/// Logs how often one failure repeated, when it did more than once.
fn log_repeats(path: &str, repeated: Option<(String, u32)>) {
    if let Some((error, count)) = repeated
        && count > 1
    {
        tracing::warn!(path, error = %error, count, "the same failure repeated {count} times");
    }
}

/// A 2xx answer's body as JSON; `None` when it is empty (a 204). The reason of a malformed one
/// never quotes the body, which may hold a secret (a webhook's token).
fn json_document(link: &str, bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| ApiError::Malformed {
            path: strip_query(link).to_string(),
            reason: format!(
                "not JSON ({} at line {}, column {})",
                match e.classify() {
                    serde_json::error::Category::Eof => "cut off",
                    _ => "invalid",
                },
                e.line(),
                e.column()
            ),
        })
}

/// Membrane's own error (`{type, message}` at the top level, where Kustomer has `errors[]`), as a
/// message that says what to do.
fn membrane_error(status: u16, body: &[u8], connection: &str) -> Option<ApiError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let kind = v.get("type")?.as_str()?;
    if v.get("errors").is_some() {
        return None;
    }
    let said = v.get("message").and_then(Value::as_str).unwrap_or(kind);
    let message = match kind {
        "connection_is_defunct" | "connection_not_found" => format!(
            "Membrane says the Kustomer connection is unusable ({status} {kind}: {said}): reconnect Kustomer in Membrane, connection {connection}"
        ),
        "not_authenticated" => format!(
            "Membrane rejected the access token ({status}: {said}): check membrane.token, or membrane.workspace_key, membrane.workspace_secret and membrane.tenant_key"
        ),
        "access_denied" => format!(
            "Membrane denied access to connection {connection} ({status}: {said}): check that the token's tenant owns the connection (membrane.tenant_key, membrane.connection_id)"
        ),
        "rate_limit_exceeded" => {
            return Some(ApiError::RateLimited {
                path: String::new(),
                reset_secs: None,
            });
        }
        _ => format!("Membrane error ({status} {kind}): {said}"),
    };
    Some(ApiError::Membrane { status, message })
}

/// Maps a non-2xx answer to an [`ApiError`].
fn status_error(
    status: StatusCode,
    path: &str,
    body: &[u8],
    reset_secs: Option<u64>,
    membrane: Option<&str>,
) -> ApiError {
    if let Some(connection) = membrane
        && let Some(e) = membrane_error(status.as_u16(), body, connection)
    {
        return e;
    }
    let path = path.to_string();
    let message = error_message(body);
    match status.as_u16() {
        401 => ApiError::Unauthorized {
            status: 401,
            path,
            message,
        },
        403 => ApiError::Forbidden { path, message },
        404 => ApiError::NotFound { path },
        429 => ApiError::RateLimited { path, reset_secs },
        code @ 500..=599 => ApiError::Server {
            status: code,
            path,
            message,
        },
        code => ApiError::Rejected {
            status: code,
            path,
            message,
        },
    }
}

/// The scheme, host, port and path prefix requests may go to.
#[derive(Debug, Clone)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// The base URL's path with a trailing slash (`/` or `/connections/{id}/proxy/`).
    prefix: String,
}

impl Origin {
    /// The origin of an `http(s)` base URL; `None` for anything else (the CLI's `membrane-cli:`).
    fn of(base: &str) -> Option<Origin> {
        let url = absolute_url(base)?;
        let mut prefix = url.path().trim_end_matches('/').to_string();
        prefix.push('/');
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default(),
            prefix,
        })
    }

    /// Whether `url` is on this origin and under its path prefix.
    fn admits(&self, url: &url::Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str().map(str::to_ascii_lowercase).as_deref() == Some(self.host.as_str())
            && url.port_or_known_default() == self.port
            && url.username().is_empty()
            && url.password().is_none()
            && url.path().starts_with(&self.prefix)
    }
}

/// `link` as an absolute `http`/`https` URL, or `None` when it is relative (or of another scheme,
/// which is then resolved as a relative path on the origin).
fn absolute_url(link: &str) -> Option<url::Url> {
    let url = url::Url::parse(link.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// `scheme://host:port` of a URL, never its path, query or credentials.
fn origin_text(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// A link without its query (which may carry anything the server put there).
fn strip_query(link: &str) -> &str {
    link.split(['?', '#']).next().unwrap_or(link)
}

/// The origin a redirect pointed at, from its `Location` (relative to the request's URL).
fn response_location(location: &Option<String>, request: &str) -> String {
    let base = url::Url::parse(request).ok();
    match (location, base) {
        (Some(loc), Some(base)) => base
            .join(loc)
            .map(|u| origin_text(&u))
            .unwrap_or_else(|_| excerpt(loc, 80)),
        (Some(loc), None) => excerpt(loc, 80),
        (None, _) => "a location it did not name".to_string(),
    }
}

/// A short description of a transport failure: the innermost cause, without the URL (which the
/// error carries separately) and never with headers.
fn describe(err: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(inner) = source.source() {
        source = inner;
    }
    let inner = source.to_string();
    if err.is_timeout() {
        format!("timed out ({inner})")
    } else if err.is_connect() {
        format!("connection failed ({inner})")
    } else if err.is_body() || err.is_decode() {
        format!("the connection broke while reading the answer ({inner})")
    } else {
        inner
    }
}
