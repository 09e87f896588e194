//! `cargo bench --bench sync -- [--scale medium|large] [--runs N] [--markdown FILE]`: measures the
//! mirror against the built-in fake (a separate `fake-api` process, no rate limit) and prints a table:
//! initial full sync (wall time, records/s, peak RSS of the syncing process, database size, requests
//! against the tie-safe bound per entity), incremental syncs after 0.1% and 1% of records changed, a
//! sync with nothing changed, the honest floor (the fastest simple loader of the same records into
//! the same schema, see [`floor`]), and a rate-limited initial sync against the minimum its search
//! budget allows.
//! Figures, not assertions: shared machines are noisy, so the initial sync and the floor run `N`
//! times (default 3) in alternation, the table gives medians with the range, the ratio is the median
//! of each run's ratio to the floor run next to it, and a fixed CPU calibration is timed before and
//! after so figures from different moments can be compared. See BENCHMARKS.md.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kustomer_mirror::entity::ENTITIES;
use kustomer_mirror::fake::{FakeOptions, FakeServer, Scale};
use kustomer_mirror::record::Record;
use kustomer_mirror::sqlite::Store;

#[path = "../tests/common/process.rs"]
mod process;

use process::FakeProcess;

const BIN: &str = env!("CARGO_BIN_EXE_kustomer-mirror");
const KEY: &str = "bench-key";

fn sync(url: &str, db: &Path, extra_env: &[(&str, &str)]) -> process::Measured {
    let started = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", url)
        .env("KUSTOMER_API_KEY", KEY)
        .env("KUSTOMER_MIRROR__DATABASE__PATH", db)
        .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
        .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000")
        .env("RUST_LOG", "warn")
        .arg("sync")
        .stdout(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start sync");
    process::wait_measured(child, started)
}

fn q(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
        .expect(sql)
        .unwrap_or(0)
}

fn db_size(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// (records, requests used, tie-safe bound) per entity.
fn requests_per_entity(db: &Path, page_size: i64) -> BTreeMap<String, (i64, i64, i64)> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let mut out = BTreeMap::new();
    for e in ENTITIES {
        let rows: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", e.name), [], |r| {
                r.get(0)
            })
            .unwrap_or(0);
        let used: i64 = conn
            .query_row("SELECT COALESCE(SUM(requests), 0) FROM sync_runs WHERE (entity = ?1 OR entity LIKE ?1 || ':%') AND mode <> 'preflight'", [e.name], |r| r.get(0))
            .unwrap_or(0);
        // The tie-safe bound (issue 17): a search pass re-anchors each page on the last
        // `updatedAt` it served with `gte`, which serves that boundary record again, so each page
        // after the first brings page_size − 1 new records. List endpoints page by offset.
        let per_request = if e.uses_search() {
            page_size.min(500) - 1
        } else {
            page_size.min(i64::from(e.list_max_page_size))
        };
        // kobjects are read per klass: the bound is the sum of each klass's pages.
        let bound: i64 = if e.name == "kobjects" {
            let mut stmt = conn
                .prepare("SELECT COUNT(*) FROM kobjects GROUP BY klass")
                .expect("klass counts");
            stmt.query_map([], |r| r.get::<_, i64>(0))
                .expect("klass counts")
                .map(|n| (n.unwrap_or(0) + per_request - 1) / per_request)
                .sum()
        } else {
            ((rows + per_request - 1) / per_request).max(1)
        };
        out.insert(e.name.to_string(), (rows, used, bound));
    }
    out
}

/// The honest floor: the fastest simple loader of the same rows into the same schema, to compare the
/// sync with. The records are decoded before the clock starts (canonical text and hash already in
/// memory, no HTTP); the clock covers dropping every non-unique index, one transaction per table with
/// prepared statements for the rows and their change-log rows (what a first sync writes), and
/// building every index at the end. Same file format and settings as the mirror's writer (WAL,
/// `synchronous = NORMAL`, its page and cache sizes), since readers may have the file open.
fn floor(scale: Scale) -> (usize, Duration) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let values: Vec<(&'static str, Vec<serde_json::Value>)> = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = FakeServer::start(listener, FakeOptions::new(42, scale, KEY))
            .await
            .expect("fake");
        let h = server.handle();
        let all = ENTITIES
            .iter()
            .map(|e| (e.name, h.records(e.name)))
            .collect();
        server.shutdown().await;
        all
    });
    let records: Vec<(&'static str, Vec<Record>)> = values
        .into_iter()
        .map(|(table, values)| {
            let records = values
                .iter()
                .map(|v| Record::from_value(v).expect("record"))
                .collect();
            (table, records)
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path().join("floor.db")).expect("store");
    let conn = store.conn_mut();
    let n: usize = records.iter().map(|(_, r)| r.len()).sum();
    let now = "2026-12-06T00:00:00.000Z";
    let indexes = kustomer_mirror::sqlite::bulk::schema_indexes();
    let started = Instant::now();
    for def in &indexes {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {}", def.name))
            .expect("drop index");
    }
    for (table, records) in &records {
        let tx = conn.transaction().expect("transaction");
        {
            let klass = *table == "kobjects";
            let mut insert = tx
                .prepare(&format!(
                    "INSERT INTO {table} (id, data, deleted_at, first_synced_at, last_changed_at, hash{}) \
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5{})",
                    if klass { ", klass" } else { "" },
                    if klass { ", 'k'" } else { "" },
                ))
                .expect("insert");
            let mut log = tx
                .prepare(
                    "INSERT INTO change_log (run_id, entity, record_id, op, source_updated_at, synced_at) \
                     VALUES (1, ?1, ?2, 'insert', ?3, ?4)",
                )
                .expect("log");
            for r in records {
                let deleted_at = r.deleted.then(|| {
                    r.deleted_at
                        .as_deref()
                        .or(r.updated_at.as_deref())
                        .unwrap_or(now)
                });
                insert
                    .execute(rusqlite::params![r.id, r.data, deleted_at, now, r.hash])
                    .expect("row");
                log.execute(rusqlite::params![table, r.id, r.updated_at, now])
                    .expect("log row");
            }
        }
        tx.commit().expect("commit");
    }
    for def in &indexes {
        conn.execute_batch(&def.sql).expect("create index");
    }
    (n, started.elapsed())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let scale_name = arg("--scale").unwrap_or_else(|| "medium".to_string());
    let scale = match scale_name.as_str() {
        "small" => Scale::Small,
        "large" => Scale::Large,
        _ => Scale::Medium,
    };
    let page_size: i64 = 500;
    if args.iter().any(|a| a == "--floor-only") {
        let (n, t) = floor(scale);
        println!(
            "floor: {n} records in {:.3} s = {:.0} records/s",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64()
        );
        return;
    }
    let runs: usize = arg("--runs")
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| {
        println!("{k:<58} {v}");
        lines.push((k.to_string(), v));
    };

    let calibration_before = calibrate();
    eprintln!("starting the fake ({scale_name})…");
    let fake = FakeProcess::start(Path::new(BIN), KEY, &scale_name, &[]);
    // Initial syncs into fresh files, each followed by a floor run, so every pair shares the
    // machine's mood of the moment; the last file stays for the incremental steps.
    let mut initials = Vec::new();
    let mut floors = Vec::new();
    let mut db: PathBuf = PathBuf::new();
    for i in 0..runs {
        if i > 0 {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }
        db = dir.path().join(format!("bench-{i}.db"));
        eprintln!("initial sync {} of {runs}…", i + 1);
        let run = sync(&fake.url, &db, &[]);
        assert!(run.ok, "the initial sync failed");
        initials.push(run);
        eprintln!("floor {} of {runs}…", i + 1);
        floors.push(floor_in_child(&scale_name));
    }
    let records = q(&db, "SELECT SUM(fetched) FROM sync_runs");
    let rows: i64 = ENTITIES
        .iter()
        .map(|e| q(&db, &format!("SELECT COUNT(*) FROM {}", e.name)))
        .sum();
    let requests = q(&db, "SELECT SUM(requests) FROM sync_runs");
    let per_entity = requests_per_entity(&db, page_size);
    let bound: i64 = per_entity.values().map(|v| v.2).sum();
    put("scale", scale_name.clone());
    put("rows mirrored", rows.to_string());
    let walls: Vec<f64> = initials.iter().map(|r| r.wall.as_secs_f64()).collect();
    put(
        &format!("initial sync: wall time (s), median of {runs} (range)"),
        spread(&walls, 2),
    );
    let rates: Vec<f64> = walls.iter().map(|w| rows as f64 / w).collect();
    put(
        &format!("initial sync: records/s (end to end), median of {runs} (range)"),
        spread(&rates, 0),
    );
    let peak = initials.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0);
    put(
        &format!("initial sync: peak RSS of the syncing process (MB), max of {runs}"),
        format!("{:.1}", peak as f64 / 1024.0),
    );
    put("initial sync: records fetched", records.to_string());
    // The list endpoints read outside any pass: the access check, the companies probe and the
    // klass listing (`preflight` rows), one request each when nothing fails.
    let preflight = q(
        &db,
        "SELECT COALESCE(SUM(requests), 0) FROM sync_runs WHERE mode = 'preflight'",
    );
    put(
        "initial sync: requests / (tie-safe bound + list endpoints)",
        format!(
            "{requests} / ({bound} + {preflight}) = {:.3}",
            requests as f64 / (bound + preflight) as f64
        ),
    );
    for (entity, (n, used, b)) in &per_entity {
        put(
            &format!("  {entity}: rows, pass requests / bound"),
            format!("{n}, {used} / {b}"),
        );
    }
    put(
        "database size (MB)",
        format!("{:.1}", db_size(&db) as f64 / 1_048_576.0),
    );

    // 0.1%, then 1%, of the records changed, spread over the incremental entities by size.
    let client = reqwest_blocking();
    for (label, per_mille) in [("0.1%", 1), ("1%", 10)] {
        let before = q(&db, "SELECT COALESCE(MAX(id), 0) FROM sync_runs");
        let mut changed = 0;
        for e in [
            "customers",
            "conversations",
            "messages",
            "notes",
            "companies",
        ] {
            let n = q(&db, &format!("SELECT COUNT(*) FROM {e}")) * per_mille / 1000;
            changed += n;
            client(&format!("{}/_fake/{e}/update-many?n={n}", fake.url));
        }
        let incremental = sync(&fake.url, &db, &[]);
        assert!(incremental.ok, "the incremental sync failed");
        let inc_requests = q(
            &db,
            &format!("SELECT SUM(requests) FROM sync_runs WHERE id > {before}"),
        );
        let inc_changed = q(
            &db,
            &format!("SELECT SUM(updated) FROM sync_runs WHERE id > {before}"),
        );
        put(
            &format!("incremental after {label} changed ({changed} records): time (s)"),
            format!("{:.2}", incremental.wall.as_secs_f64()),
        );
        put(
            &format!("incremental after {label} changed: rows updated, requests"),
            format!("{inc_changed}, {inc_requests}"),
        );
    }
    let before = q(&db, "SELECT COALESCE(MAX(id), 0) FROM sync_runs");
    let quiet = sync(&fake.url, &db, &[]);
    let quiet_requests = q(
        &db,
        &format!("SELECT SUM(requests) FROM sync_runs WHERE id > {before}"),
    );
    put(
        "nothing changed: time (s)",
        format!("{:.2}", quiet.wall.as_secs_f64()),
    );
    put(
        "nothing changed: requests (every entity and klass)",
        quiet_requests.to_string(),
    );
    drop(fake);

    let floor_rates: Vec<f64> = floors
        .iter()
        .map(|(n, t)| *n as f64 / t.as_secs_f64())
        .collect();
    put(
        &format!(
            "floor (fastest simple loader, records in memory): records/s, median of {runs} (range)"
        ),
        spread(&floor_rates, 0),
    );
    let ratios: Vec<f64> = rates
        .iter()
        .zip(&floor_rates)
        .map(|(sync, floor)| sync / floor)
        .collect();
    put(
        &format!("end to end / floor, median of {runs} pairs (range)"),
        spread(&ratios, 2),
    );

    // Rate limited: a search budget per short window; the limiter set to the same budget.
    let window = 2u64;
    let budget = 30u32;
    let limited = FakeProcess::start(
        Path::new(BIN),
        KEY,
        "medium",
        &[
            "--search-rate-limit",
            &budget.to_string(),
            "--rate-window-secs",
            &window.to_string(),
        ],
    );
    let limited_db = dir.path().join("limited.db");
    let per_minute = (budget as u64 * 60 / window).to_string();
    let run = sync(
        &limited.url,
        &limited_db,
        &[
            (
                "KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE",
                &per_minute,
            ),
            ("KUSTOMER_MIRROR__SYNC__RATE_WINDOW", &format!("{window}s")),
        ],
    );
    let searches = {
        let stats = client(&format!("{}/_fake/stats", limited.url));
        let v: serde_json::Value = serde_json::from_str(&stats).unwrap_or_default();
        (
            v["search_requests"].as_u64().unwrap_or(0),
            v["served_429"].as_u64().unwrap_or(0),
        )
    };
    // Issue 8's minimum: requests needed ÷ budget. A fixed-window limiter allows a little less (the
    // first window's budget goes at once, every further full budget waits one more window), so that
    // stricter figure is printed too.
    let per_second = budget as f64 / window as f64;
    let by_rate = searches.0 as f64 / per_second;
    let minimum = ((searches.0 as f64 / budget as f64).ceil() - 1.0).max(0.0) * window as f64;
    put(
        "rate-limited (medium, 30 searches / 2 s): time (s)",
        format!("{:.2}", run.wall.as_secs_f64()),
    );
    put(
        "rate-limited: searches, searches ÷ budget (s)",
        format!("{}, {by_rate:.1}", searches.0),
    );
    put("rate-limited: 429s served", searches.1.to_string());
    put(
        "rate-limited: time / (searches ÷ budget)",
        format!("{:.2}", run.wall.as_secs_f64() / by_rate.max(0.001)),
    );
    put(
        "rate-limited: time / fixed-window minimum (s)",
        format!(
            "{:.2} ({minimum:.1} s)",
            run.wall.as_secs_f64() / minimum.max(0.001)
        ),
    );

    put(
        "host calibration: xxh3 of 1 MiB × 8192, before / after (s)",
        format!("{calibration_before:.2} / {:.2}", calibrate()),
    );

    if let Some(path) = arg("--markdown") {
        let mut f = std::fs::File::create(&path).expect("markdown file");
        let _ = writeln!(f, "| measure | {scale_name} |\n|---|---|");
        for (k, v) in &lines {
            let _ = writeln!(f, "| {} | {v} |", k.trim());
        }
        eprintln!("wrote {path}");
    }
}

/// Runs the floor in a process of its own: its records take hundreds of megabytes, and a process
/// spawned afterwards would inherit that figure as its peak RSS (Linux keeps the high-water mark
/// across exec), which would spoil the next sync's measurement.
fn floor_in_child(scale: &str) -> (usize, Duration) {
    let exe = std::env::current_exe().expect("the bench's own path");
    let out = Command::new(exe)
        .args(["--scale", scale, "--floor-only"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the floor");
    let text = String::from_utf8_lossy(&out.stdout);
    // "floor: {n} records in {secs} s = …"
    let words: Vec<&str> = text.split_whitespace().collect();
    let n = words.get(1).and_then(|w| w.parse().ok());
    let secs = words.get(4).and_then(|w| w.parse().ok());
    match (n, secs) {
        (Some(n), Some(secs)) => (n, Duration::from_secs_f64(secs)),
        _ => panic!("unexpected floor output: {text}"),
    }
}

/// `values`' median and range, with `decimals` decimals: `12.34 (11.90–13.02)`.
fn spread(values: &[f64], decimals: usize) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.is_empty() {
        0.0
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    let first = sorted.first().copied().unwrap_or(0.0);
    let last = sorted.last().copied().unwrap_or(0.0);
    if sorted.len() < 2 {
        return format!("{median:.decimals$}");
    }
    format!("{median:.decimals$} ({first:.decimals$}–{last:.decimals$})")
}

/// Times a fixed CPU-bound task (hashing a 1 MiB buffer, which stays in cache, 8192 times), so runs
/// made when the shared host was slower or faster can be told apart. The buffer is small on purpose:
/// this process's peak RSS is inherited by the syncs it spawns (see [`floor_in_child`]).
fn calibrate() -> f64 {
    let buffer: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let mut acc = 0u64;
    for round in 0..8192u64 {
        acc ^= xxhash_rust::xxh3::xxh3_64_with_seed(&buffer, round);
    }
    std::hint::black_box(acc);
    started.elapsed().as_secs_f64()
}

/// A tiny blocking HTTP helper for the fake's control API (a POST for /_fake/*/update-many, else GET).
fn reqwest_blocking() -> impl Fn(&str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = reqwest::Client::new();
    move |url: &str| {
        runtime.block_on(async {
            let req = if url.contains("update-many") {
                client.post(url)
            } else {
                client.get(url)
            };
            match req.send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        })
    }
}
