//! `cargo bench --bench webhooks -- [--seconds N] [--rates 10,100,1000] [--sync-scale medium|large]
//! [--markdown FILE]`: how fresh the mirror is through webhooks. For each rate, signed events (each
//! a changed customer whose `updatedAt` is the moment it is sent) are posted to the receiver for N
//! seconds, alone and then while a first sync of a fake organisation of `--sync-scale` fills the
//! same SQLite mirror. Reports the receiver's answer time (p50/p95/p99, measured by the sender) and
//! the freshness (commit minus `updatedAt`, from the receiver's own histogram, interpolated as
//! Prometheus's `histogram_quantile` does), the events per second achieved, and the API requests
//! the fake saw while only webhooks ran (expected 0). Figures, not assertions. See BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kustomer_mirror::config::{Secret, WebhookSettings};
use kustomer_mirror::destination::Writer;
use kustomer_mirror::entity::ENTITIES;
use kustomer_mirror::fake::{FakeOptions, FakeServer, Scale};
use kustomer_mirror::kustomer::{Client, ClientOptions};
use kustomer_mirror::sqlite::Store;
use kustomer_mirror::sync::{Engine, SyncOptions};
use kustomer_mirror::webhooks;

const TOKEN: &str = "bench-webhook-token";
const KEY: &str = "bench-key";

struct Row {
    case: String,
    sent: u64,
    ok: u64,
    rate: f64,
    answer: [f64; 3],
    fresh: [Option<f64>; 3],
    requests: Option<u64>,
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn body(n: u64) -> Vec<u8> {
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    serde_json::json!({"id": format!("ev{n}"), "name": "kustomer.customer.update", "org": "bench",
        "data": {"type": "customer", "id": format!("pushed{:06}", n % 5000), "attributes": {
            "name": format!("Pushed {n}"), "rev": n + 1, "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": now}}})
    .to_string()
    .into_bytes()
}

/// Posts events at `rate` per second for `seconds` and answers (sent, ok, answer times).
async fn send(url: &str, rate: u64, seconds: u64, first: u64) -> (u64, u64, Vec<f64>) {
    let http = reqwest::Client::new();
    let total = rate * seconds;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(started + gap.mul_f64(i as f64)).await;
        let b = body(first + i);
        let sig = webhooks::signature::sign(TOKEN, &b);
        let req = http
            .post(url)
            .header("x-kustomer-webhook-event", "kustomer.customer.update")
            .header("x-kustomer-webhook-signature", sig)
            .body(b);
        tasks.spawn(async move {
            let t = Instant::now();
            let ok = req
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            (ok, t.elapsed().as_secs_f64())
        });
    }
    let mut ok = 0;
    let mut times = Vec::new();
    while let Some(Ok((good, t))) = tasks.join_next().await {
        ok += u64::from(good);
        times.push(t);
    }
    times.sort_by(f64::total_cmp);
    (total, ok, times)
}

async fn case(name: &str, rate: u64, seconds: u64, sync_scale: Option<Scale>, first: u64) -> Row {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let writer = Writer::spawn(Store::open(&db).expect("open db")).expect("writer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let settings = WebhookSettings {
        listen: Some(addr),
        path: "/webhooks/kustomer".into(),
        token: Some(Secret::new(TOKEN)),
        token_file: None,
        inbox: dir.path().join("inbox.db"),
        max_body: 8 << 20,
        read_timeout: Duration::from_secs(10),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = webhooks::start(&settings, writer.clone(), Some(listener), stopped)
        .await
        .expect("receiver");
    let scale = sync_scale.unwrap_or(Scale::Small);
    let fake = FakeServer::start(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        FakeOptions::new(7, scale, KEY),
    )
    .await
    .expect("fake");
    let before = fake.handle().stats().requests;
    let sync = sync_scale.map(|_| {
        let client = Client::new(&fake.base_url(), KEY, ClientOptions::default()).expect("client");
        let engine = Engine::new(Arc::new(client), writer.clone(), SyncOptions::default());
        tokio::spawn(async move {
            let all: Vec<_> = ENTITIES.iter().collect();
            engine.run(&all).await
        })
    });
    if sync.is_some() {
        // Let the first sync get going (its queue of pages full) before the events start.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let url = format!("http://{addr}/webhooks/kustomer");
    let started = Instant::now();
    let (sent, ok, times) = send(&url, rate, seconds, first).await;
    // Until the drain has committed everything (or 60 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.metrics.freshness_seconds.count() < ok && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = sync
        .is_none()
        .then(|| fake.handle().stats().requests.saturating_sub(before));
    let f = &running.metrics.freshness_seconds;
    let row = Row {
        case: name.to_string(),
        sent,
        ok,
        rate: f.count() as f64 / elapsed,
        answer: [pct(&times, 0.5), pct(&times, 0.95), pct(&times, 0.99)],
        fresh: [f.quantile(0.5), f.quantile(0.95), f.quantile(0.99)],
        requests,
    };
    let _ = stop.send(true);
    running.stop(Duration::from_secs(10)).await;
    if let Some(sync) = sync {
        let _ = sync.await;
    }
    fake.shutdown().await;
    row
}

fn ms(v: f64) -> String {
    format!("{:.0}", v * 1000.0)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let rates: Vec<u64> = arg("--rates")
        .unwrap_or_else(|| "10,100,1000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let sync_scale = match arg("--sync-scale").as_deref() {
        Some("large") => Scale::Large,
        Some("small") => Scale::Small,
        _ => Scale::Medium,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let mut first = 0;
    for &rate in &rates {
        for during in [None, Some(sync_scale)] {
            let name = match during {
                None => format!("{rate}/s alone"),
                Some(s) => format!("{rate}/s during a first sync ({s})"),
            };
            eprintln!("running {name} for {seconds} s…");
            let row = runtime.block_on(case(&name, rate, seconds, during, first));
            first += rate * seconds;
            rows.push(row);
        }
    }
    let mut out = String::from(
        "| case | events sent | 2xx | committed/s | answer p50/p95/p99 ms | freshness p50/p95/p99 ms | API requests |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let f = |v: Option<f64>| v.map_or("-".to_string(), ms);
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {}/{}/{} | {}/{}/{} | {} |\n",
            r.case,
            r.sent,
            r.ok,
            r.rate,
            ms(r.answer[0]),
            ms(r.answer[1]),
            ms(r.answer[2]),
            f(r.fresh[0]),
            f(r.fresh[1]),
            f(r.fresh[2]),
            r.requests
                .map_or("(sync running)".to_string(), |n| n.to_string()),
        ));
    }
    print!("{out}");
    if let Some(path) = arg("--markdown") {
        std::fs::write(&path, &out).expect("write markdown");
    }
}
