//! `demo [--db FILE]`: the whole product in one command, with no Kustomer account — starts the
//! built-in fake Kustomer in-process, mirrors it with a progress display, changes a few records
//! upstream and syncs again to show incremental sync, then registers a webhook with the fake and shows
//! a change pushed into the mirror with no sync, then prints a summary and example queries.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::destination::Writer;
use crate::entity::ENTITIES;
use crate::exit::{EXIT_OK, EXIT_SYNC_FAILED};
use crate::fake::{FakeHandle, FakeOptions, FakeServer, Scale};
use crate::kustomer::{Client, ClientOptions};
use crate::sqlite::{Store, WriterLock};
use crate::sync::{Engine, ProgressEvent, SyncOptions, SyncReport};

/// The key the in-process fake accepts; only ever used against 127.0.0.1.
const DEMO_KEY: &str = "demo-api-key";

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Database file to write (kept afterwards, for you to query).
    #[arg(long, value_name = "FILE", default_value = "kustomer-mirror-demo.db")]
    pub db: PathBuf,
    /// Size of the fake organisation.
    #[arg(long, value_enum, default_value = "medium")]
    pub scale: Scale,
    /// Seed of the fake's data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Runs `demo`.
pub fn run(args: DemoArgs) -> ExitCode {
    crate::logging::init("warn", crate::logging::Format::Human);
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    match runtime.block_on(demo(&args)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_SYNC_FAILED)
        }
    }
}

async fn demo(args: &DemoArgs) -> Result<(), String> {
    let started = Instant::now();
    // Held until the demo ends: a second demo (or a sync) on the same file waits its turn.
    let _lock = WriterLock::try_acquire(&args.db).map_err(|e| e.to_string())?;
    println!(
        "Starting the built-in fake Kustomer ({} organisation, seed {})…",
        args.scale, args.seed
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind 127.0.0.1:0 for the fake API: {e}"))?;
    let server = FakeServer::start(listener, FakeOptions::new(args.seed, args.scale, DEMO_KEY))
        .await
        .map_err(|e| format!("cannot start the fake API: {e}"))?;
    let handle = server.handle();
    println!(
        "Fake Kustomer API at {} ({:.1}s)",
        server.base_url(),
        started.elapsed().as_secs_f64()
    );
    let client = Arc::new(
        Client::new(&server.base_url(), DEMO_KEY, ClientOptions::default())
            .map_err(|e| e.to_string())?,
    );
    let store = Store::open(&args.db).map_err(|e| e.to_string())?;
    let writer = Writer::spawn(store).map_err(|e| e.to_string())?;
    let fetched = Arc::new(AtomicU64::new(0));
    let engine = Engine::new(client.clone(), writer.clone(), SyncOptions::default())
        .with_progress(progress_display(fetched.clone()));
    let all: Vec<_> = ENTITIES.iter().collect();

    println!(
        "\nFirst sync: mirroring everything into {}",
        args.db.display()
    );
    let first = engine.run(&all).await;
    finish_line();
    summarize(&first)?;

    let changes = change_upstream(&handle);
    println!("\nChanged upstream: {changes}. Second sync fetches only what changed:");
    fetched.store(0, Ordering::Relaxed);
    let second = engine.run(&all).await;
    finish_line();
    summarize(&second)?;

    real_time(&args.db, &client, &handle, &writer).await?;

    let statuses = writer
        .call(|s| s.status())
        .await
        .and_then(|r| r)
        .map_err(|e| e.to_string())?;
    println!(
        "\nMirror status:\n{}",
        crate::status::render_table(&statuses)
    );
    drop(engine);
    drop(writer);
    server.shutdown().await;
    print_queries(&args.db);
    println!("Done in {:.1}s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// Real time: registers a webhook on the fake pointing at an in-process receiver, changes a
/// conversation upstream and shows how soon the mirror has it, with no sync in between.
async fn real_time(
    db: &std::path::Path,
    client: &Client,
    fake: &FakeHandle,
    writer: &Writer,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind 127.0.0.1:0 for the webhook receiver: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let path = crate::config::defaults::WEBHOOK_PATH;
    let hook = crate::kustomer::webhooks::Webhooks::new(client, None)
        .create("kustomer-mirror demo", &format!("http://{addr}{path}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut inbox = db.as_os_str().to_os_string();
    inbox.push(".webhooks");
    let settings = crate::config::WebhookSettings {
        listen: Some(addr),
        path: path.to_string(),
        token: hook.token.clone(),
        token_file: None,
        inbox: PathBuf::from(inbox),
        max_body: u64::from(crate::config::defaults::WEBHOOK_MAX_BODY),
        read_timeout: crate::config::defaults::WEBHOOK_READ_TIMEOUT,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let receiver = crate::webhooks::start(&settings, writer.clone(), Some(listener), stopped)
        .await
        .map_err(|e| e.to_string())?;
    let id = fake
        .records("conversations")
        .first()
        .and_then(|c| c["id"].as_str().map(str::to_string))
        .ok_or("the fake has no conversations")?;
    let requests = fake.stats().requests;
    let changed = Instant::now();
    let after = fake
        .update("conversations", &id, serde_json::json!({"priority": 5}))
        .ok_or("the fake lost the conversation")?;
    let updated = after["attributes"]["updatedAt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sql = format!(
        "SELECT updated_at FROM conversations WHERE id = {}",
        crate::escape::literal(&id)
    );
    let reader = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    let arrived = loop {
        let stored: Option<String> = reader.query_row(&sql, [], |r| r.get(0)).unwrap_or(None);
        if stored.as_deref() == Some(updated.as_str()) {
            break Some(changed.elapsed());
        }
        if changed.elapsed() > std::time::Duration::from_secs(10) {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let _ = stop.send(true);
    receiver.stop(std::time::Duration::from_secs(5)).await;
    match arrived {
        Some(t) => println!(
            "\nReal time: conversation {id} raised to priority 5 upstream reached the mirror {:.0} ms later through a signed webhook ({} API requests, no sync in between).",
            t.as_secs_f64() * 1000.0,
            fake.stats().requests.saturating_sub(requests)
        ),
        None => println!(
            "\nReal time: the webhook did not arrive within 10 s; the next sync would bring the change."
        ),
    }
    Ok(())
}

/// A live "N records" line on a terminal; one line per finished pass everywhere.
fn progress_display(fetched: Arc<AtomicU64>) -> crate::sync::ProgressFn {
    let tty = std::io::stdout().is_terminal();
    let last = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        u64,
    >::new()));
    Arc::new(move |event: ProgressEvent| {
        let Ok(mut last) = last.lock() else { return };
        let previous = last.insert(event.key.clone(), event.fetched).unwrap_or(0);
        let total = fetched.fetch_add(event.fetched.saturating_sub(previous), Ordering::Relaxed)
            + event.fetched.saturating_sub(previous);
        if event.done {
            last.remove(&event.key);
            print!("{}", if tty { "\r\x1b[2K" } else { "" });
            println!(
                "  ✓ {:<28} {:>8} records, {:>7} written",
                event.key, event.fetched, event.changed
            );
        } else if tty {
            print!(
                "\r\x1b[2K  … {total} records fetched ({} in flight)",
                last.len()
            );
            let _ = std::io::stdout().flush();
        }
    })
}

fn finish_line() {
    if std::io::stdout().is_terminal() {
        print!("\r\x1b[2K");
        let _ = std::io::stdout().flush();
    }
}

fn summarize(report: &SyncReport) -> Result<(), String> {
    let (applied, fetched, requests) = report.totals();
    let secs: f64 = report
        .passes
        .iter()
        .map(|p| p.duration.as_secs_f64())
        .fold(0.0, f64::max);
    println!(
        "  {fetched} records fetched with {requests} requests: {} inserted, {} updated, {} deleted, {} unchanged (slowest entity {secs:.1}s)",
        applied.inserted, applied.updated, applied.deleted, applied.unchanged
    );
    match report.passes.iter().find_map(|p| p.error.clone()) {
        Some(e) => Err(format!("the demo sync failed: {e}")),
        None => Ok(()),
    }
}

/// Makes a few realistic changes upstream; returns a description.
fn change_upstream(handle: &FakeHandle) -> String {
    let updated = handle.update_many("conversations", 25).len();
    for _ in 0..10 {
        handle.insert("customers", None);
    }
    let live: Vec<String> = handle
        .records("customers")
        .iter()
        .filter(|r| r.pointer("/attributes/deleted").and_then(|d| d.as_bool()) != Some(true))
        .filter_map(|r| r.get("id").and_then(|i| i.as_str()).map(str::to_string))
        .take(3)
        .collect();
    let deleted = live
        .iter()
        .filter(|id| handle.soft_delete("customers", id))
        .count();
    format!("{updated} conversations updated, 10 customers created, {deleted} customers deleted")
}

/// The example queries the demo prints, runnable with Debian's sqlite3 3.40.
pub const EXAMPLE_QUERIES: [(&str, &str); 3] = [
    (
        "Open backlog by status and priority",
        "SELECT status, priority, COUNT(*) AS conversations FROM conversations WHERE deleted_at IS NULL GROUP BY status, priority ORDER BY status, priority;",
    ),
    (
        "Busiest channels in the last 30 days of data",
        "SELECT channel, COUNT(*) AS messages FROM messages WHERE deleted_at IS NULL AND created_at >= (SELECT strftime('%Y-%m-%dT%H:%M:%fZ', MAX(created_at), '-30 days') FROM messages) GROUP BY channel ORDER BY messages DESC;",
    ),
    (
        "What the last sync changed, field by field",
        "SELECT c.entity, c.op, c.record_id, k.key AS field, json_extract(k.value, '$.old') AS old, json_extract(k.value, '$.new') AS new FROM change_log c LEFT JOIN json_each(c.changes) k ORDER BY c.seq DESC LIMIT 12;",
    ),
];

fn print_queries(db: &std::path::Path) {
    println!("\nThe mirror is a plain SQLite file. Try:");
    for (title, sql) in EXAMPLE_QUERIES {
        println!("\n  # {title}");
        println!(
            "  sqlite3 -header -column {} \"{sql}\"",
            shell_quote(&db.display().to_string())
        );
    }
    println!();
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
