//! A bending proxy: an HTTP server on 127.0.0.1:0 that forwards every request to an upstream (the
//! fake Kustomer) and lets the test change the answer before it is returned, to play a hostile
//! upstream; and a `Recorder`, a "foreign host" that answers everything with one fixed answer and
//! records what reached it (to prove that no credentials are sent there).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// What the proxy got back from upstream, which a bend may change.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, or None when it is not JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Replaces the body with `v` (the content-length follows the final body).
    pub fn set_json(&mut self, v: &Value) {
        self.body = serde_json::to_vec(v).unwrap();
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every value of header `name` (case-insensitive) with `value`, or adds it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers.push((name.to_string(), value.to_string()));
    }

    /// Removes every value of header `name` (case-insensitive).
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// One request as the proxy (or a recorder) saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A rule: given the request (as [`Seen`]) and how many requests with the same method and path
/// (without the query) the proxy has received so far, this one included (1 for the first), it
/// changes the upstream answer in place; leaving it alone passes the upstream answer through.
pub type Bend = Arc<dyn Fn(&Seen, u64, &mut Answer) + Send + Sync>;

/// Makes a [`Bend`] of a closure (naming the argument types is then not needed).
pub fn bend(f: impl Fn(&Seen, u64, &mut Answer) + Send + Sync + 'static) -> Bend {
    Arc::new(f)
}

/// The bend that changes nothing.
pub fn pass() -> Bend {
    bend(|_, _, _| {})
}

/// Headers that belong to one connection, never forwarded either way.
const HOP_BY_HOP: &[&str] = &["connection", "transfer-encoding", "content-length"];

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    bend: Mutex<Bend>,
    seen: Mutex<Vec<Seen>>,
    counts: Mutex<HashMap<(String, String), u64>>,
}

/// The proxy; serves until dropped.
pub struct BendProxy {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    shared: Arc<Proxy>,
    task: tokio::task::JoinHandle<()>,
}

impl BendProxy {
    /// Serves on 127.0.0.1:0, forwarding to `upstream` (a base URL such as `http://127.0.0.1:PORT`)
    /// and applying `bend` to every answer.
    pub async fn start(upstream: &str, bend: Bend) -> BendProxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let shared = Arc::new(Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            http,
            bend: Mutex::new(bend),
            seen: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let (url, task) = serve(app).await;
        BendProxy { url, shared, task }
    }

    /// Swaps the rule; requests from now on get the new one.
    pub fn set_bend(&self, bend: Bend) {
        *self.shared.bend.lock().unwrap() = bend;
    }

    /// Every request received, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for BendProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let seen = read(request).await;
    let count = {
        let mut counts = proxy.counts.lock().unwrap();
        let n = counts
            .entry((seen.method.clone(), seen.path().to_string()))
            .or_insert(0);
        *n += 1;
        *n
    };
    proxy.seen.lock().unwrap().push(seen.clone());

    let method = reqwest::Method::from_bytes(seen.method.as_bytes()).unwrap();
    let mut outbound = proxy
        .http
        .request(method, format!("{}{}", proxy.upstream, seen.path_and_query))
        .body(seen.body.clone());
    for (name, value) in &seen.headers {
        if name.eq_ignore_ascii_case("host") || is_hop_by_hop(name) {
            continue;
        }
        outbound = outbound.header(name.as_str(), value.as_str());
    }
    let mut answer = match outbound.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let headers = r
                .headers()
                .iter()
                .filter(|(n, _)| !is_hop_by_hop(n.as_str()))
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            match r.bytes().await {
                Ok(body) => Answer {
                    status,
                    headers,
                    body: body.to_vec(),
                },
                Err(e) => bad_gateway(&e),
            }
        }
        Err(e) => bad_gateway(&e),
    };
    let bend = proxy.bend.lock().unwrap().clone();
    bend(&seen, count, &mut answer);
    respond(answer)
}

/// The answer when upstream could not be reached or read (the bend still sees it).
fn bad_gateway(e: &reqwest::Error) -> Answer {
    Answer {
        status: 502,
        headers: vec![("content-type".to_string(), "text/plain".to_string())],
        body: format!("bend proxy: upstream failed: {e}").into_bytes(),
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The request as a [`Seen`], with its whole body.
async fn read(request: Request) -> Seen {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Seen {
        method: parts.method.as_str().to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// The HTTP response of `answer`, its content-length that of the final body.
fn respond(answer: Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body.clone()));
    *response.status_mut() = StatusCode::from_u16(answer.status)
        .unwrap_or_else(|_| panic!("bend proxy: invalid status {}", answer.status));
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if is_hop_by_hop(name) {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("bend proxy: invalid header name {name:?}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("bend proxy: invalid header value {value:?}"));
        headers.append(name, value);
    }
    headers.insert(
        axum::http::header::CONTENT_LENGTH,
        HeaderValue::from(answer.body.len()),
    );
    response
}

/// Binds 127.0.0.1:0 and serves `app` on the current runtime.
async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

struct Recorded {
    status: u16,
    body: String,
    seen: Mutex<Vec<Seen>>,
}

/// A foreign host: answers every request with a fixed status and body and records what reached it.
/// Serves until dropped.
pub struct Recorder {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    shared: Arc<Recorded>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Serves on 127.0.0.1:0, answering `status` with `body` (as JSON when it parses as JSON).
    pub async fn start(status: u16, body: &str) -> Recorder {
        // Tests then build reqwest clients (built `rustls-no-provider`) to reach it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Arc::new(Recorded {
            status,
            body: body.to_string(),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(record).with_state(shared.clone());
        let (url, task) = serve(app).await;
        Recorder { url, shared, task }
    }

    /// Every request received, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(recorded): State<Arc<Recorded>>, request: Request) -> Response {
    let seen = read(request).await;
    recorded.seen.lock().unwrap().push(seen);
    let content_type = if serde_json::from_str::<Value>(&recorded.body).is_ok() {
        "application/json"
    } else {
        "text/plain"
    };
    respond(Answer {
        status: recorded.status,
        headers: vec![("content-type".to_string(), content_type.to_string())],
        body: recorded.body.clone().into_bytes(),
    })
}
